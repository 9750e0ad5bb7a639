package bolt_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/bolt"
	"github.com/tokengw/tokengw/internal/store/storetest"
)

func TestUpstreamConformance(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sweep time.Duration
	}{
		{"NoSweeper", -1},
		{"SweeperRunning", time.Millisecond}, // it must never take a live row
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			storetest.RunUpstream(t, storetest.Harness{
				New: func(t *testing.T) store.Store {
					s, err := bolt.Open(dbPath(t), bolt.Options{Now: c.Now, SweepInterval: tc.sweep})
					if err != nil {
						t.Fatalf("Open: %v", err)
					}
					return s
				},
				Now:     c.Now,
				Advance: c.Advance,
			})
		})
	}
}

// TestUpstreamSurvivesRestart: a refresh result, its index row and its
// replay count are in the file: reopened, the store serves the replay
// within its window, and a lease of the process before is free; past their
// expiry nothing is served and the sweeper purges every row.
func TestUpstreamSurvivesRestart(t *testing.T) {
	ctx := t.Context()
	c := newClock()
	path := dbPath(t)
	opts := bolt.Options{Now: c.Now, SweepInterval: -1}
	key, ix, lease := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32), bytes.Repeat([]byte{3}, 32)
	now := c.Now()

	s, err := bolt.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []store.UpstreamEntry{
		{Key: key, Sealed: []byte("sealed result"), StoredAt: now, ExpiresAt: now.Add(5 * time.Second)},
		{Key: ix, Ref: key, StoredAt: now, ExpiresAt: now.Add(5 * time.Second)},
	} {
		if err := s.PutUpstream(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if _, took, err := s.TakeUpstreamReplay(ctx, key, 3); err != nil || !took {
		t.Fatalf("first replay: %v %v", took, err)
	}
	if got, err := s.UpstreamLease(ctx, lease, "before", 10*time.Second); err != nil || !got {
		t.Fatalf("lease: %v %v", got, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	c.Advance(2 * time.Second) // within the window
	s = open(t, path, opts)
	e, err := s.UpstreamEntry(ctx, key)
	if err != nil || string(e.Sealed) != "sealed result" || e.Replays != 1 || !e.ExpiresAt.Equal(now.Add(5*time.Second)) {
		t.Fatalf("after the restart: %+v, %v", e, err)
	}
	if e, took, err := s.TakeUpstreamReplay(ctx, key, 3); err != nil || !took || e.Replays != 2 {
		t.Fatalf("replay after the restart: %+v %v %v", e, took, err)
	}
	if e, err := s.UpstreamEntry(ctx, ix); err != nil || !bytes.Equal(e.Ref, key) {
		t.Fatalf("index row after the restart: %+v, %v", e, err)
	}
	// The lease's holder was the process that had the file before: with
	// the file lock, nobody holds it now.
	if got, err := s.UpstreamLease(ctx, lease, "after", 10*time.Second); err != nil || !got {
		t.Fatalf("the previous process's lease was not free after the restart: %v %v", got, err)
	}
	if got, err := s.UpstreamLease(ctx, lease, "other", 10*time.Second); err != nil || got {
		t.Fatalf("a lease of this process was taken twice: %v %v", got, err)
	}

	c.Advance(4 * time.Second) // past the 5 s window
	for _, k := range [][]byte{key, ix} {
		if _, err := s.UpstreamEntry(ctx, k); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("expired row served: %v", err)
		}
	}
	if _, _, err := s.TakeUpstreamReplay(ctx, key, 3); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("replay of an expired row: %v, want ErrNotFound", err)
	}
	c.Advance(7 * time.Second) // past the lease too
	n, err := s.Sweep(ctx)
	if err != nil || n != 3 {
		t.Fatalf("sweep: %d rows, %v; want 3 (entry, index row, lease)", n, err)
	}
	for _, b := range []string{bolt.BucketUpstream, bolt.BucketUpstreamExpiry} {
		if l := bolt.BucketLen(t, s, b); l != 0 {
			t.Fatalf("bucket %s holds %d keys after the sweep", b, l)
		}
	}
	if got, err := s.UpstreamLease(ctx, lease, "after", 10*time.Second); err != nil || !got {
		t.Fatalf("an expired lease was not released: %v %v", got, err)
	}
}

// TestUpstreamReplacedRowsLeaveNoIndex: a row written again (a lease
// turned into nothing, an entry replaced with another expiry) keeps one
// expiry entry, so the sweeper's count is the rows'.
func TestUpstreamReplacedRowsLeaveNoIndex(t *testing.T) {
	ctx := t.Context()
	c := newClock()
	s := open(t, dbPath(t), bolt.Options{Now: c.Now, SweepInterval: -1})
	key := bytes.Repeat([]byte{4}, 32)
	now := c.Now()
	for i := range 3 {
		if err := s.PutUpstream(ctx, store.UpstreamEntry{Key: key, Sealed: []byte("s"), StoredAt: now, ExpiresAt: now.Add(time.Duration(i+1) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	if l := bolt.BucketLen(t, s, bolt.BucketUpstreamExpiry); l != 1 {
		t.Fatalf("%d expiry entries for one row", l)
	}
	if err := s.DeleteUpstream(ctx, key, bytes.Repeat([]byte{5}, 32)); err != nil {
		t.Fatal(err)
	}
	if l := bolt.BucketLen(t, s, bolt.BucketUpstreamExpiry); l != 0 {
		t.Fatalf("%d expiry entries after the delete", l)
	}
}
