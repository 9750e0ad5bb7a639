package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/bolt"
)

// storeFile writes a closed bolt file with n tokens (issued from 8
// goroutines, so that the file has many pages) and returns their hashes.
func storeFile(t *testing.T, path string, n int) [][]byte {
	t.Helper()
	s, err := bolt.Open(path, bolt.Options{SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	hashes := make([][]byte, n)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := g; i < n; i += 8 {
				h := sha256.Sum256(fmt.Appendf(nil, "%s-%d", path, i))
				hashes[i] = h[:]
				now := time.Now().Truncate(time.Millisecond)
				if _, _, err := s.Issue(context.Background(), store.Token{Hash: h[:], ClientID: "demo", Scope: "read",
					IssuedAt: now, ExpiresAt: now.Add(time.Hour)}, nil); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return hashes
}

// truncateHalf cuts the file at path to half its pages.
func truncateHalf(t *testing.T, path string) {
	t.Helper()
	n, err := bolt.BackupFile(context.Background(), path, io.Discard, 0) // the pages' end
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, n/2); err != nil {
		t.Fatal(err)
	}
}

// tokengw runs the binary with the example config and env, and returns its
// exit code, stdout and stderr.
func tokengw(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = append(append(os.Environ(),
		"TOKENGW_SERVER__ADDR=127.0.0.1:0",
		"TOKENGW_SERVER__ADMIN_ADDR=127.0.0.1:0",
	), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("tokengw %v did not end: %s", args, stderr.String())
	}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// TestServeDamagedStore: `tokengw serve` on a bolt file cut short exits 1
// with an error that names the file and what to do, and no Go panic.
func TestServeDamagedStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokengw.db")
	storeFile(t, path, 2000)
	truncateHalf(t, path)
	code, _, stderr := tokengw(t, []string{"TOKENGW_STORE__BOLT__PATH=" + path},
		"serve", "--config", "../../config.example.yaml")
	if code != 1 {
		t.Fatalf("serve on a damaged file: exit %d, want 1\n%s", code, stderr)
	}
	if strings.Contains(stderr, "panic:") || strings.Contains(stderr, "goroutine ") {
		t.Fatalf("serve on a damaged file panicked:\n%s", stderr)
	}
	for _, want := range []string{path, "damaged", "cut short", "restore the file from a backup"} {
		if !strings.Contains(stderr, want) {
			t.Fatalf("stderr does not say %q:\n%s", want, stderr)
		}
	}
}

// TestStoreCheckAndBackup: with no server running, `store check` passes on
// a good file, `store backup` writes a copy that passes the check and holds
// every token, refuses an --out that exists; on a damaged file both exit 1
// naming it.
func TestStoreCheckAndBackup(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokengw.db")
	hashes := storeFile(t, path, 500)
	env := []string{"TOKENGW_STORE__BOLT__PATH=" + path}
	cfg := []string{"--config", "../../config.example.yaml"}

	code, stdout, stderr := tokengw(t, env, append([]string{"store", "check"}, cfg...)...)
	if code != 0 || !strings.Contains(stdout, "ok") {
		t.Fatalf("store check: exit %d\n%s%s", code, stdout, stderr)
	}
	out := filepath.Join(dir, "backup.db")
	code, stdout, stderr = tokengw(t, env, append([]string{"store", "backup", "--out", out}, cfg...)...)
	if code != 0 || !strings.Contains(stdout, "from "+path) {
		t.Fatalf("store backup: exit %d\n%s%s", code, stdout, stderr)
	}
	wantTokens(t, out, hashes)
	code, _, stderr = tokengw(t, env, append([]string{"store", "backup", "--out", out}, cfg...)...)
	if code != 1 || !strings.Contains(stderr, "exists") {
		t.Fatalf("store backup onto an existing file: exit %d\n%s", code, stderr)
	}
	code, stdout, stderr = tokengw(t, nil, "store", "check", "--file", out)
	if code != 0 || !strings.Contains(stdout, out+": ok") {
		t.Fatalf("store check --file: exit %d\n%s%s", code, stdout, stderr)
	}

	truncateHalf(t, path)
	for _, args := range [][]string{{"store", "check"}, {"store", "backup", "--out", filepath.Join(dir, "b2.db")}} {
		code, _, stderr = tokengw(t, env, append(args, cfg...)...)
		if code != 1 || !strings.Contains(stderr, path) || !strings.Contains(stderr, "damaged") || strings.Contains(stderr, "panic:") {
			t.Fatalf("%v on a damaged file: exit %d\n%s", args, code, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "b2.db")); err == nil {
		t.Fatal("a failed backup left its --out behind")
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.partial")); len(m) != 0 {
		t.Fatalf("a failed backup left %v behind", m)
	}
}

// wantTokens opens the bolt file at path and finds every hash in it.
func wantTokens(t *testing.T, path string, hashes [][]byte) {
	t.Helper()
	if err := bolt.CheckFile(context.Background(), path, 0); err != nil {
		t.Fatalf("CheckFile(%s): %v", path, err)
	}
	s, err := bolt.Open(path, bolt.Options{SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, h := range hashes {
		if _, err := s.Token(context.Background(), h); err != nil {
			t.Fatalf("token %x missing from %s: %v", h, path, err)
		}
	}
}

// TestStoreBackupThroughAdminAPI: while a process holds the file (here the
// test, with writers running; in production `tokengw serve`), `store backup`
// takes the copy from the admin API at server.admin_addr with
// server.admin_token, as the server serves it with bolt.BackupHandler
// behind its bearer check. The copy passes the check and holds every token
// acknowledged before the command ran. A wrong token and a server without
// the route are reported; `store check` on the locked file says what to do.
func TestStoreBackupThroughAdminAPI(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokengw.db")
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const adminToken = "admin-token-0123456789"
	mux := http.NewServeMux()
	backup := bolt.BackupHandler(s, nil)
	mux.HandleFunc("/admin/store/backup", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+adminToken {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		backup.ServeHTTP(w, r)
	})
	adminAddr := httptestServer(t, mux)

	// Writers run throughout; acked holds what was acknowledged.
	var (
		mu    sync.Mutex
		acked [][]byte
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				h := sha256.Sum256(fmt.Appendf(nil, "admin-%d-%d", g, i))
				now := time.Now().Truncate(time.Millisecond)
				if _, _, err := s.Issue(context.Background(), store.Token{Hash: h[:], ClientID: "demo", Scope: "read",
					IssuedAt: now, ExpiresAt: now.Add(time.Hour)}, nil); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked = append(acked, h[:])
				mu.Unlock()
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	for { // some writes acknowledged before the command runs
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 200 {
			break
		}
		if err := s.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	before := append([][]byte(nil), acked...)
	mu.Unlock()

	env := []string{"TOKENGW_STORE__BOLT__PATH=" + path, "TOKENGW_SERVER__ADMIN_ADDR=" + adminAddr,
		"TOKENGW_SERVER__ADMIN_TOKEN=" + adminToken}
	cfg := []string{"--config", "../../config.example.yaml"}
	out := filepath.Join(dir, "backup.db")
	code, stdout, stderr := tokengw(t, env, append([]string{"store", "backup", "--out", out}, cfg...)...)
	if code != 0 || !strings.Contains(stdout, "through the admin API") {
		t.Fatalf("store backup of a locked file: exit %d\n%s%s", code, stdout, stderr)
	}
	wantTokens(t, out, before)

	bad := append(env[:2:2], "TOKENGW_SERVER__ADMIN_TOKEN=wrong-token-0123456789")
	code, _, stderr = tokengw(t, bad, append([]string{"store", "backup", "--out", filepath.Join(dir, "b2.db")}, cfg...)...)
	if code != 1 || !strings.Contains(stderr, "refused server.admin_token") {
		t.Fatalf("store backup with a wrong token: exit %d\n%s", code, stderr)
	}
	noToken := env[:2:2]
	code, _, stderr = tokengw(t, noToken, append([]string{"store", "backup", "--out", filepath.Join(dir, "b3.db")}, cfg...)...)
	if code != 1 || !strings.Contains(stderr, "server.admin_token is not set") {
		t.Fatalf("store backup without a token: exit %d\n%s", code, stderr)
	}
	old := httptestServer(t, http.NotFoundHandler()) // a server without the route
	noRoute := append(env[:1:1], "TOKENGW_SERVER__ADMIN_ADDR="+old, "TOKENGW_SERVER__ADMIN_TOKEN="+adminToken)
	code, _, stderr = tokengw(t, noRoute, append([]string{"store", "backup", "--out", filepath.Join(dir, "b4.db")}, cfg...)...)
	if code != 1 || !strings.Contains(stderr, "has no /admin/store/backup") {
		t.Fatalf("store backup from a server without the route: exit %d\n%s", code, stderr)
	}
	code, _, stderr = tokengw(t, env, append([]string{"store", "check"}, cfg...)...)
	if code != 1 || !strings.Contains(stderr, "locked") || !strings.Contains(stderr, "store check --file") {
		t.Fatalf("store check of a locked file: exit %d\n%s", code, stderr)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "b*.db*")); len(m) != 1 {
		t.Fatalf("files left behind: %v", m)
	}
}

// httptestServer serves h on a loopback listener until the test ends and
// returns its address.
func httptestServer(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}
