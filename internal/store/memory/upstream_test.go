package memory_test

import (
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/memory"
	"github.com/tokengw/tokengw/internal/store/storetest"
)

func TestUpstreamConformance(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)}
	storetest.RunUpstream(t, storetest.Harness{
		New:     func(*testing.T) store.Store { return memory.New(memory.Options{Now: c.Now}) },
		Now:     c.Now,
		Advance: c.Advance,
	})
}

// TestUpstreamSweep: rows nobody reads again leave once expired.
func TestUpstreamSweep(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)}
	u := memory.NewUpstream(c.Now)
	put := func(i int) {
		k := []byte{byte(i), byte(i >> 8), byte(i >> 16)}
		if err := u.PutUpstream(t.Context(), store.UpstreamEntry{Key: k, Sealed: k, ExpiresAt: c.Now().Add(time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3000 {
		put(i)
	}
	c.Advance(2 * time.Second)
	for i := range 3000 {
		put(3000 + i)
	}
	if n := u.Len(); n > 3000+1024 {
		t.Fatalf("%d entries held, want at most %d (expired ones swept)", n, 3000+1024)
	}
}
