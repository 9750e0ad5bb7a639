package bolt_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/bolt"
)

// filledFile writes a closed database file of many pages: n tokens (every
// third with a reuse row) and a client. The tokens are issued concurrently,
// so that they share commits.
func filledFile(t *testing.T, n int) (string, []store.Token) {
	t.Helper()
	path := dbPath(t)
	s, err := bolt.Open(path, bolt.Options{SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	toks := make([]store.Token, n)
	var wg sync.WaitGroup
	for i := range n {
		toks[i] = token(time.Now(), "c", fmt.Sprintf("k%d", i), time.Hour)
		wg.Go(func() {
			var cur *store.Current
			if i%3 == 0 {
				cur = currentOf(toks[i], time.Minute)
			}
			issue(t, s, toks[i], cur)
		})
	}
	wg.Wait()
	if err := s.CreateClient(context.Background(), store.Client{ID: "c", SecretHash: "$2a$10$abc", Scopes: []string{"read"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path, toks
}

// wantDamaged: err wraps ErrCorrupt and names the file.
func wantDamaged(t *testing.T, what string, err error, path string) {
	t.Helper()
	if !errors.Is(err, bolt.ErrCorrupt) {
		t.Fatalf("%s: err = %v, want ErrCorrupt", what, err)
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "restore the file from a backup") {
		t.Fatalf("%s: %q does not name the file and what to do", what, err)
	}
}

// TestTruncatedFile: a file cut short of its pages' end at any length (a
// copy that ran out of disk) is refused by Open and CheckFile with an error
// wrapping ErrCorrupt that names the file, and is left as it is. Without
// the probe, bbolt panics ("invalid freelist page") or faults past the end
// of the mapping, which kills the process. A file cut only in the space
// bbolt allocated ahead (past the pages' end) is whole: it opens with every
// token.
func TestTruncatedFile(t *testing.T) {
	ctx := context.Background()
	orig, toks := filledFile(t, 1500)
	raw, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	end, err := bolt.BackupFile(ctx, orig, io.Discard, 0) // a copy is the pages, to their end
	if err != nil {
		t.Fatal(err)
	}
	if end < 64*4096 || int(end) > len(raw) {
		t.Fatalf("the pages end at %d of %d bytes, want many pages", end, len(raw))
	}
	need := int(end)
	for _, cut := range []int{need - 1, need - 4096, need * 9 / 10, need / 2, need / 10, 2*4096 + 100, 4096, 100} {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			path := dbPath(t)
			if err := os.WriteFile(path, raw[:cut], 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := bolt.Open(path, bolt.Options{SweepInterval: -1})
			if err == nil {
				_ = s.Close()
				t.Fatalf("Open of a file cut to %d bytes, its pages ending at %d, succeeded", cut, need)
			}
			wantDamaged(t, "Open", err, path)
			wantDamaged(t, "CheckFile", bolt.CheckFile(ctx, path, 0), path)
			if fi, err := os.Stat(path); err != nil || fi.Size() != int64(cut) {
				t.Fatalf("the refused file was changed: %v, %v", fi.Size(), err)
			}
		})
	}
	t.Run("AtTheEnd", func(t *testing.T) {
		path := dbPath(t)
		if err := os.WriteFile(path, raw[:need], 0o600); err != nil {
			t.Fatal(err)
		}
		if err := bolt.CheckFile(ctx, path, 0); err != nil {
			t.Fatalf("CheckFile: %v", err)
		}
		s := open(t, path, bolt.Options{SweepInterval: -1})
		for _, tok := range toks {
			if _, err := s.Token(ctx, tok.Hash); err != nil {
				t.Fatalf("Token: %v", err)
			}
		}
	})
}

// TestDamagedPage: a leaf page in use overwritten with garbage (the file's
// length intact) is found by Check and CheckFile; the store's reads of it return
// an error, not a panic.
func TestDamagedPage(t *testing.T) {
	ctx := context.Background()
	orig, toks := filledFile(t, 600)
	raw, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	if err := bolt.CheckFile(ctx, orig, 0); err != nil {
		t.Fatalf("CheckFile of the intact file: %v", err)
	}
	leaves := bolt.LeafPages(t, orig)
	if len(leaves) < 8 {
		t.Fatalf("%d leaf pages, want more", len(leaves))
	}
	for _, page := range []int{leaves[0], leaves[1], leaves[len(leaves)/2], leaves[len(leaves)-1]} {
		t.Run(fmt.Sprint(page), func(t *testing.T) {
			path := dbPath(t)
			b := append([]byte(nil), raw...)
			for i := page * 4096; i < (page+1)*4096; i++ {
				b[i] = 0xA5
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			wantDamaged(t, "CheckFile", bolt.CheckFile(ctx, path, 0), path)
			s, err := bolt.Open(path, bolt.Options{SweepInterval: -1})
			if err != nil { // the damage is in a page Open reads
				wantDamaged(t, "Open", err, path)
				return
			}
			defer s.Close()
			wantDamaged(t, "Check", s.Check(ctx), path)
			for _, tok := range toks { // every read returns, some with an error
				if _, err := s.Token(ctx, tok.Hash); err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, bolt.ErrCorrupt) {
					t.Fatalf("Token on a damaged file: %v", err)
				}
			}
		})
	}
}

// TestDamagedFreelist: a damaged free-list page passes the read-only probe
// (which does not read the free list) and makes bbolt panic when it opens
// the file for writing: Open returns ErrCorrupt naming the file, and lets
// go of the file's lock.
func TestDamagedFreelist(t *testing.T) {
	orig, _ := filledFile(t, 300)
	raw, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	free := bolt.FreelistPages(t, orig)
	if len(free) == 0 {
		t.Fatal("no free-list page")
	}
	for i := free[0] * 4096; i < (free[0]+1)*4096; i++ {
		raw[i] = 0xA5
	}
	path := dbPath(t)
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := bolt.Open(path, bolt.Options{SweepInterval: -1, Timeout: 100 * time.Millisecond})
	if err == nil {
		_ = s.Close()
		t.Fatal("Open of a file with a damaged free list succeeded")
	}
	wantDamaged(t, "Open", err, path)
	// The lock is free again: a check gets to read the file.
	wantDamaged(t, "CheckFile", bolt.CheckFile(context.Background(), path, 100*time.Millisecond), path)
}

// TestCheckWhileServing: Check passes on a healthy store while writers
// run, and they go on after it.
func TestCheckWhileServing(t *testing.T) {
	ctx := context.Background()
	s := open(t, dbPath(t), bolt.Options{SweepInterval: time.Millisecond})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var issued [4]int
	first := make(chan struct{}, 4) // each writer's first acknowledged Issue
	for g := range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				tok := token(time.Now(), "c", fmt.Sprintf("g%d", g), time.Hour)
				if _, _, err := s.Issue(ctx, tok, currentOf(tok, time.Millisecond)); err != nil {
					t.Errorf("Issue: %v", err)
					return
				}
				if issued[g]++; issued[g] == 1 {
					first <- struct{}{}
				}
			}
		})
	}
	for range 3 {
		if err := s.Check(ctx); err != nil {
			t.Fatalf("Check while serving: %v", err)
		}
	}
	for range 4 { // observable: every writer got at least one write in
		<-first
	}
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check while serving: %v", err)
	}
	close(stop)
	wg.Wait()
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check after: %v", err)
	}
	for g, n := range issued {
		if n == 0 {
			t.Fatalf("writer %d issued nothing", g)
		}
	}
}
