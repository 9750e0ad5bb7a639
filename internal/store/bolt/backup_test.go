package bolt_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/bolt"
)

// writers issues tokens from n goroutines until stop is called, and keeps
// the ones acknowledged.
type writers struct {
	mu    sync.Mutex
	acked []store.Token
	stop  func()
}

func startWriters(t *testing.T, s *bolt.Store, n int) *writers {
	t.Helper()
	w := &writers{}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for g := range n {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				tok := token(time.Now(), fmt.Sprintf("w%d", g), fmt.Sprintf("k%d", i%16), time.Hour)
				var cur *store.Current
				if i%2 == 0 {
					cur = currentOf(tok, time.Millisecond)
				}
				if _, _, err := s.Issue(context.Background(), tok, cur); err != nil {
					t.Errorf("Issue: %v", err)
					return
				}
				w.mu.Lock()
				w.acked = append(w.acked, tok)
				w.mu.Unlock()
			}
		})
	}
	var once sync.Once
	w.stop = func() { once.Do(func() { close(done); wg.Wait() }) }
	t.Cleanup(w.stop)
	return w
}

// snapshot returns the tokens acknowledged so far, once there are at least min.
func (w *writers) snapshot(t *testing.T, s *bolt.Store, min int) []store.Token {
	t.Helper()
	for {
		w.mu.Lock()
		n := len(w.acked)
		w.mu.Unlock()
		if n >= min {
			break
		}
		// Wait for the next commit to be acknowledged, not for a time.
		tok := token(time.Now(), "pacer", "", time.Hour)
		if _, _, err := s.Issue(context.Background(), tok, nil); err != nil {
			t.Fatal(err)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]store.Token(nil), w.acked...)
}

// wantBackup checks a backup file: it passes CheckFile, opens, and holds
// every token of before.
func wantBackup(t *testing.T, path string, before []store.Token) {
	t.Helper()
	ctx := context.Background()
	if err := bolt.CheckFile(ctx, path, 0); err != nil {
		t.Fatalf("CheckFile(backup): %v", err)
	}
	s := open(t, path, bolt.Options{SweepInterval: -1})
	for _, tok := range before {
		got, err := s.Token(ctx, tok.Hash)
		if err != nil || got.ClientID != tok.ClientID {
			t.Fatalf("token acknowledged before the backup: %+v, %v", got, err)
		}
	}
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check(opened backup): %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestBackupWhileWriting: a backup taken while 8 writers run is a
// database file that passes the consistency check and holds every token
// acknowledged before the backup began; the writers are not stopped by it.
func TestBackupWhileWriting(t *testing.T) {
	ctx := context.Background()
	s := open(t, dbPath(t), bolt.Options{SweepInterval: time.Millisecond})
	w := startWriters(t, s, 8)
	before := w.snapshot(t, s, 500)

	out := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.Backup(ctx, f)
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	after := w.snapshot(t, s, len(before)+100) // writers went on
	w.stop()
	if fi, err := os.Stat(out); err != nil || fi.Size() != n {
		t.Fatalf("Backup returned %d, the file has %v (%v)", n, fi.Size(), err)
	}
	wantBackup(t, out, before)
	t.Logf("backup of %d bytes with %d tokens acknowledged before it; %d after", n, len(before), len(after))
}

// TestBackupContext: a backup whose context ends stops with the context's
// error.
func TestBackupContext(t *testing.T) {
	s := open(t, dbPath(t), bolt.Options{SweepInterval: -1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Backup(ctx, io.Discard); !errors.Is(err, context.Canceled) {
		t.Fatalf("Backup with a cancelled context: %v", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	w := &cancelAfter{n: 4096, cancel: cancel}
	if _, err := s.Backup(ctx, w); !errors.Is(err, context.Canceled) {
		t.Fatalf("Backup cancelled part-way: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Backup(context.Background(), io.Discard); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Backup after Close: %v", err)
	}
}

// cancelAfter cancels its context once n bytes were written to it.
type cancelAfter struct {
	n      int
	cancel func()
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	if c.n -= len(p); c.n <= 0 {
		c.cancel()
	}
	return len(p), nil
}

// TestBackupHandler: POST through a real HTTP server streams a backup taken
// while writers run, with its Content-Length; it passes the check and holds
// every token acknowledged before the request. Other methods get 405 and a
// closed store 503.
func TestBackupHandler(t *testing.T) {
	s := open(t, dbPath(t), bolt.Options{SweepInterval: time.Millisecond})
	var logged []error
	var mu sync.Mutex
	srv := httptest.NewServer(bolt.BackupHandler(s, func(_ *http.Request, err error) {
		mu.Lock()
		logged = append(logged, err)
		mu.Unlock()
	}))
	defer srv.Close()
	w := startWriters(t, s, 8)
	before := w.snapshot(t, s, 300)

	resp, err := http.Post(srv.URL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST: %d, %v", resp.StatusCode, err)
	}
	if cl, _ := strconv.Atoi(resp.Header.Get("Content-Length")); cl != len(body) || cl == 0 {
		t.Fatalf("Content-Length %q, body %d bytes", resp.Header.Get("Content-Length"), len(body))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	w.stop()
	out := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(out, body, 0o600); err != nil {
		t.Fatal(err)
	}
	wantBackup(t, out, before)

	resp, err = http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Fatalf("GET: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	resp, err = http.Post(srv.URL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !bytes.Contains(msg, []byte(`"temporarily_unavailable"`)) {
		t.Fatalf("POST on a closed store: %d %s", resp.StatusCode, msg)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(logged) != 1 || !errors.Is(logged[0], store.ErrClosed) {
		t.Fatalf("onError saw %v, want the closed store", logged)
	}
}
