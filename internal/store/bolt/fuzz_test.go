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

// FuzzOpenFile: whatever bytes a database file holds, the probe every Open
// starts with, and the read-only copy behind BackupFile, answer or fail
// with an error wrapping ErrCorrupt (a file system error for a path they
// cannot open), never a panic or a fault, and a copy is as long as it says.
//
// It stops there. Past the probe, bbolt trusts the free list: a crafted
// free-list count makes opening for writing, and bbolt's consistency check,
// run for minutes, and an open that panics leaves its memory mapping
// behind, which thousands of fuzzed opens would pile up. Open and Check on
// damaged files are tested by TestTruncatedFile, TestDamagedPage and
// TestDamagedFreelist.
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
		if len(b) > 1<<17 {
			return // large inputs only slow the search
		}
		path := filepath.Join(t.TempDir(), "tokengw.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		var out countWriter
		n, err := bolt.BackupFile(context.Background(), path, &out, 10*time.Millisecond)
		if err != nil {
			var pe *fs.PathError
			if !errors.Is(err, bolt.ErrCorrupt) && !errors.As(err, &pe) {
				t.Fatalf("BackupFile: %v, want ErrCorrupt", err)
			}
			return
		}
		if n != out.n || n > int64(len(b)) {
			t.Fatalf("BackupFile of %d bytes returned %d and wrote %d", len(b), n, out.n)
		}
	})
}

// countWriter counts what is written to it.
type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
