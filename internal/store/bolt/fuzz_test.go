package bolt_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/bolt"
)

// FuzzOpenFile: whatever bytes the store's file holds, Open returns a store
// or an error (ErrCorrupt for a file it cannot read), never a panic or a
// fault; a store it returns passes Check or fails it with ErrCorrupt, and
// its reads and writes give answers or errors instead of panicking.
func FuzzOpenFile(f *testing.F) {
	seed := filepath.Join(f.TempDir(), "seed.db")
	s, err := bolt.Open(seed, bolt.Options{SweepInterval: -1})
	if err != nil {
		f.Fatal(err)
	}
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	for i := range 40 {
		tok := token(now, "c", "k", time.Hour)
		var cur *store.Current
		if i == 0 {
			cur = currentOf(tok, time.Hour)
		}
		issue(f, s, tok, cur)
	}
	if err := s.CreateClient(context.Background(), store.Client{ID: "c", Scopes: []string{"read"}}); err != nil {
		f.Fatal(err)
	}
	if err := s.Close(); err != nil {
		f.Fatal(err)
	}
	raw, err := os.ReadFile(seed)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add(raw[:len(raw)/2])
	f.Add(raw[:4096*2])
	f.Add(bytes.Repeat([]byte{0xA5}, 4096*4))

	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 || len(b) > 1<<17 {
			return // empty is a new store; large inputs only slow the search
		}
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "tokengw.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := bolt.Open(path, bolt.NoSync(bolt.Options{Now: func() time.Time { return now }, SweepInterval: -1, Timeout: 10 * time.Millisecond}))
		if err != nil {
			var pe *fs.PathError
			if !errors.Is(err, bolt.ErrCorrupt) && !errors.As(err, &pe) {
				t.Fatalf("Open: %v, want ErrCorrupt", err)
			}
			return
		}
		defer s.Close()
		if err := s.Check(ctx); err != nil && !errors.Is(err, bolt.ErrCorrupt) {
			t.Fatalf("Check: %v", err)
		}
		_, _ = s.Current(ctx, "c", "k")
		_, _ = s.Clients(ctx)
		_, _ = s.TokenCount(ctx)
		tok := token(now, "c", "k2", time.Hour)
		_, _, _ = s.Issue(ctx, tok, currentOf(tok, time.Hour))
	})
}
