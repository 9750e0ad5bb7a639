package server

import (
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
)

// perIPLimit counts the requests in flight per caller address
// (server.max_in_flight_per_ip). The hot path takes no lock: an address's
// counter is found with a lock-free map load and moved with atomic adds,
// so requests from one address (every keep-alive connection of a busy
// client) contend on nothing but that counter. Counters stay in the map at
// zero after their last request ends, so a caller that comes back costs no
// insert; an insert that takes the map past sweepAt entries sweeps out the
// idle ones, which bounds the map by about twice the larger of
// minSweepEntries and the addresses in flight, however many come and go.
type perIPLimit struct {
	max     int32
	m       sync.Map // netip.Addr -> *ipSlot
	entries atomic.Int64
	sweepAt atomic.Int64
	sweepMu sync.Mutex // one sweep at a time
}

// minSweepEntries is how many entries the map may hold before an insert
// sweeps it.
const minSweepEntries = 1024

// ipSlot is one address's count of requests in flight. A sweep retires an
// idle slot (count 0 to ipRetired) before it deletes it, so an acquire that
// loaded the slot just before sees a negative count and starts over.
type ipSlot struct{ n atomic.Int32 }

const ipRetired = math.MinInt32 / 2

func newPerIPLimit(max int) *perIPLimit {
	p := &perIPLimit{max: int32(min(max, math.MaxInt32))}
	p.sweepAt.Store(minSweepEntries)
	return p
}

// acquire counts one more request in flight from a, or returns nil when a
// already has max. The request gives its slot back with release.
func (p *perIPLimit) acquire(a netip.Addr) *ipSlot {
	for {
		v, ok := p.m.Load(a)
		if !ok {
			var loaded bool
			v, loaded = p.m.LoadOrStore(a, &ipSlot{})
			if !loaded && p.entries.Add(1) > p.sweepAt.Load() {
				p.sweep()
			}
		}
		s := v.(*ipSlot)
		switch n := s.n.Add(1); {
		case n <= 0: // retired by a sweep since the load: take it out and retry
			if p.m.CompareAndDelete(a, s) {
				p.entries.Add(-1)
			}
			continue
		case n > p.max:
			s.n.Add(-1)
			return nil
		}
		return s
	}
}

// release gives back one request of the slot acquire returned.
func (s *ipSlot) release() { s.n.Add(-1) }

// sweep deletes the entries with nothing in flight and sets the size of the
// next sweep to twice what is left (at least minSweepEntries), so sweeps
// cost O(1) per insert. An insert that finds a sweep running does not wait.
func (p *perIPLimit) sweep() {
	if !p.sweepMu.TryLock() {
		return
	}
	defer p.sweepMu.Unlock()
	p.m.Range(func(k, v any) bool {
		if s := v.(*ipSlot); s.n.CompareAndSwap(0, ipRetired) && p.m.CompareAndDelete(k, s) {
			p.entries.Add(-1)
		}
		return true
	})
	p.sweepAt.Store(max(minSweepEntries, 2*p.entries.Load()))
}
