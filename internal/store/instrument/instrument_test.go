package instrument_test

import (
	"sync"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/instrument"
	"github.com/tokengw/tokengw/internal/store/memory"
	"github.com/tokengw/tokengw/internal/store/storetest"
)

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

// The wrapper changes nothing: it passes the conformance suite, and every
// operation is observed.
func TestConformanceAndObservation(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)}
	var mu sync.Mutex
	ops := map[string]int{}
	obs := func(op string, _ time.Duration, _ error) {
		mu.Lock()
		ops[op]++
		mu.Unlock()
	}
	storetest.Run(t, storetest.Harness{
		New: func(*testing.T) store.Store {
			return instrument.Wrap(memory.New(memory.Options{Now: c.Now}), obs, c.Now)
		},
		Now:     c.Now,
		Advance: c.Advance,
	})
	for _, op := range []string{"issue", "current", "token", "revoke", "clear_currents", "revoke_client", "client", "clients", "create_client", "update_client", "delete_client", "ping"} {
		if ops[op] == 0 {
			t.Errorf("operation %q never observed", op)
		}
	}
}

// The wrapper passes the upstream conformance suite and observes every
// upstream operation.
func TestUpstreamConformanceAndObservation(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)}
	var mu sync.Mutex
	ops := map[string]int{}
	obs := func(op string, _ time.Duration, _ error) {
		mu.Lock()
		ops[op]++
		mu.Unlock()
	}
	storetest.RunUpstream(t, storetest.Harness{
		New: func(*testing.T) store.Store {
			return instrument.Wrap(memory.New(memory.Options{Now: c.Now}), obs, c.Now)
		},
		Now:     c.Now,
		Advance: c.Advance,
	})
	for _, op := range []string{"upstream_lease", "upstream_release", "upstream_put", "upstream_get", "upstream_replay", "upstream_delete"} {
		if ops[op] == 0 {
			t.Errorf("operation %q never observed", op)
		}
	}
}
