package bolt_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/bolt"
)

// killChildEnv names the database file the re-executed test binary writes
// to in TestGroupCommitSurvivesKill.
const killChildEnv = "TOKENGW_TEST_BOLT_KILL_CHILD"

// TestGroupCommitSurvivesKill: a write acknowledged by the store is on
// disk. The test binary is run again as a child process that writes from
// 16 goroutines at once (tokens, some claiming a reuse slot; revocations;
// new clients) and reports every acknowledged write on a pipe; once 2,000
// acknowledgements have arrived the child is killed with SIGKILL while it
// is still writing. Every write it acknowledged, before the kill or in the
// pipe at the time, is then found in the file.
func TestGroupCommitSurvivesKill(t *testing.T) {
	if path := os.Getenv(killChildEnv); path != "" {
		killChild(path) // does not return
	}
	path := dbPath(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var stderr bytes.Buffer
	cmd := exec.Command(os.Args[0], "-test.run=^TestGroupCommitSurvivesKill$", "-test.count=1")
	cmd.Env = append(os.Environ(), killChildEnv+"="+path)
	cmd.ExtraFiles = []*os.File{w} // fd 3 in the child
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()

	const killAfter = 2000
	var tokens, revoked [][]byte
	var clients []string
	acks, killed := 0, false
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		kind, arg, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			t.Fatalf("child sent %q", sc.Text())
		}
		switch kind {
		case "T", "R":
			h, err := hex.DecodeString(arg)
			if err != nil {
				t.Fatalf("child sent %q", sc.Text())
			}
			if kind == "T" {
				tokens = append(tokens, h)
			} else {
				revoked = append(revoked, h)
			}
		case "C":
			clients = append(clients, arg)
		default:
			t.Fatalf("child sent %q", sc.Text())
		}
		if acks++; acks == killAfter && !killed {
			killed = true
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
		}
	}
	err = cmd.Wait()
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !killed || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended on its own after %d acknowledgements (%v): %s", acks, err, stderr.String())
	}
	if len(revoked) == 0 || len(clients) == 0 {
		t.Fatalf("the child acknowledged %d tokens, %d revocations, %d clients: want some of each", len(tokens), len(revoked), len(clients))
	}

	s := open(t, path, bolt.Options{SweepInterval: -1})
	ctx := context.Background()
	for _, h := range tokens {
		if _, err := s.Token(ctx, h); err != nil {
			t.Fatalf("acknowledged token %x lost after kill -9: %v", h, err)
		}
	}
	for _, h := range revoked {
		if tok, err := s.Token(ctx, h); err != nil || !tok.Revoked {
			t.Fatalf("acknowledged revocation of %x lost after kill -9: %+v, %v", h, tok, err)
		}
	}
	for _, id := range clients {
		if _, err := s.Client(ctx, id); err != nil {
			t.Fatalf("acknowledged client %s lost after kill -9: %v", id, err)
		}
	}
	t.Logf("%d acknowledgements before the kill, %d read in all (%d tokens, %d revocations, %d clients): all on disk",
		killAfter, acks, len(tokens), len(revoked), len(clients))
}

// killChild is the child of TestGroupCommitSurvivesKill: it writes until it
// is killed, and reports each write the store acknowledged on fd 3, one
// line (one write(2), atomic on a pipe) per acknowledgement.
func killChild(path string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "kill child:", err)
		os.Exit(3)
	}
	acks := os.NewFile(3, "acks")
	// Not killed within a minute: the parent is gone.
	time.AfterFunc(time.Minute, func() { fail(errors.New("not killed after a minute")) })
	s, err := bolt.Open(path, bolt.Options{SweepInterval: -1})
	if err != nil {
		fail(err)
	}
	var mu sync.Mutex
	ack := func(kind, arg string) {
		mu.Lock()
		defer mu.Unlock()
		if _, err := acks.Write([]byte(kind + " " + arg + "\n")); err != nil {
			fail(err)
		}
	}
	ctx := context.Background()
	for g := range 16 {
		go func() {
			for i := 0; ; i++ {
				now := time.Now().Truncate(time.Millisecond)
				h := sha256.Sum256(fmt.Appendf(nil, "kill-%d-%d", g, i))
				tok := store.Token{Hash: h[:], ClientID: fmt.Sprintf("w%d", g), Scope: "read",
					IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
				var cur *store.Current
				if i%4 == 0 {
					tok.ReuseKey = fmt.Sprintf("k%d", i)
					cur = &store.Current{ClientID: tok.ClientID, ReuseKey: tok.ReuseKey, TokenHash: tok.Hash,
						Sealed: []byte("sealed"), Scope: tok.Scope, IssuedAt: now, ExpiresAt: tok.ExpiresAt,
						ReuseUntil: now.Add(time.Minute)}
				}
				if _, _, err := s.Issue(ctx, tok, cur); err != nil {
					fail(err)
				}
				ack("T", hex.EncodeToString(h[:]))
				if i%8 == 0 {
					if err := s.Revoke(ctx, h[:]); err != nil {
						fail(err)
					}
					ack("R", hex.EncodeToString(h[:]))
				}
				if i%64 == 0 {
					id := fmt.Sprintf("w%d-%d", g, i)
					if err := s.CreateClient(ctx, store.Client{ID: id, SecretHash: "$2a$10$abc", Scopes: []string{"read"},
						CreatedAt: now, UpdatedAt: now}); err != nil {
						fail(err)
					}
					ack("C", id)
				}
			}
		}()
	}
	select {}
}

// TestWritePanicIsolated: a write that panics inside a shared transaction
// (bbolt panics on some damaged pages) fails alone, with an error wrapping
// ErrCorrupt; the writes queued with it are committed, and the store goes
// on serving.
func TestWritePanicIsolated(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := open(t, dbPath(t), bolt.Options{Now: c.Now, SweepInterval: -1})
	taken, queued, release := bolt.HoldCommitter(s)
	defer release()
	plug := token(c.Now(), "plug", "", time.Hour)
	plugDone := make(chan error, 1)
	go func() { _, _, err := s.Issue(ctx, plug, nil); plugDone <- err }()
	<-taken

	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	toks := make([]store.Token, n)
	var panicErr error
	wg.Go(func() { panicErr = bolt.WritePanic(s, "boom") })
	for i := range n {
		toks[i] = token(c.Now(), "c", "", time.Hour)
		wg.Go(func() { _, _, errs[i] = s.Issue(ctx, toks[i], nil) })
	}
	for q := 0; q < n+1; q = <-queued {
	}
	release()
	wg.Wait()
	if err := <-plugDone; err != nil {
		t.Fatalf("Issue(plug): %v", err)
	}
	if size := <-taken; size != n+1 {
		t.Fatalf("batch of %d, want %d", size, n+1)
	}
	if !errors.Is(panicErr, bolt.ErrCorrupt) {
		t.Fatalf("panicking write: err = %v, want ErrCorrupt", panicErr)
	}
	for i, tok := range toks {
		if errs[i] != nil {
			t.Fatalf("Issue %d queued with a panicking write: %v", i, errs[i])
		}
		if _, err := s.Token(ctx, tok.Hash); err != nil {
			t.Fatalf("Token %d: %v", i, err)
		}
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after a panicking write: %v", err)
	}
}
