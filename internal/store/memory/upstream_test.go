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
