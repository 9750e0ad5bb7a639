package memory_test

import (
	"sync"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/memory"
	"github.com/tokengw/tokengw/internal/store/storetest"
)

// clock is a manual clock shared by the suite and the stores it creates.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d + time.Millisecond)
	c.mu.Unlock()
}

func TestConformance(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)}
	storetest.Run(t, storetest.Harness{
		New:     func(*testing.T) store.Store { return memory.New(memory.Options{Now: c.Now}) },
		Now:     c.Now,
		Advance: c.Advance,
	})
}
