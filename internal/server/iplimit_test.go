package server

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
)

func addr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

// mapLen counts p's map and checks it against p's entry count.
func mapLen(t *testing.T, p *perIPLimit) int {
	t.Helper()
	n := 0
	p.m.Range(func(any, any) bool { n++; return true })
	if got := p.entries.Load(); got != int64(n) {
		t.Fatalf("entry count %d, map holds %d", got, n)
	}
	return n
}

// TestPerIPLimit: at most max in flight per address, a slot freed by
// release, and the map bounded however many addresses come and go, without
// ever dropping an address that has requests in flight.
func TestPerIPLimit(t *testing.T) {
	p := newPerIPLimit(2)
	a := netip.MustParseAddr("192.0.2.1")
	s1, s2 := p.acquire(a), p.acquire(a)
	if s1 == nil || s2 == nil {
		t.Fatal("first two acquires refused")
	}
	if p.acquire(a) != nil {
		t.Fatal("third acquire allowed with max 2")
	}
	s1.release()
	s3 := p.acquire(a)
	if s3 == nil {
		t.Fatal("acquire after release refused")
	}

	// a keeps two in flight while 5000 other addresses come and go: the
	// idle ones are swept, a is not.
	for i := range 5000 {
		s := p.acquire(addr(i))
		if s == nil {
			t.Fatalf("acquire %v refused", addr(i))
		}
		s.release()
	}
	if n := mapLen(t, p); n > minSweepEntries+1 {
		t.Fatalf("%d entries after 5000 addresses came and went, want at most %d", n, minSweepEntries+1)
	}
	if p.acquire(a) != nil {
		t.Fatal("a sweep dropped an address with requests in flight: a third acquire was allowed")
	}
	s2.release()
	s3.release()
	if s := p.acquire(a); s == nil || p.acquire(a) == nil || p.acquire(a) != nil {
		t.Fatal("a returning address does not get exactly max")
	}

	// Addresses held in flight are never swept, and the next sweep waits
	// for twice as many entries, so inserts do not sweep every time.
	held := make([]*ipSlot, 3000)
	for i := range held {
		if held[i] = p.acquire(addr(100000 + i)); held[i] == nil {
			t.Fatalf("hold %d refused", i)
		}
	}
	if n := mapLen(t, p); n < len(held) {
		t.Fatalf("%d entries while %d addresses are in flight", n, len(held))
	}
	if at := p.sweepAt.Load(); at < int64(len(held)) {
		t.Fatalf("next sweep at %d entries with %d in flight: every insert would sweep", at, len(held))
	}
	for _, s := range held {
		if s.n.Load() != 1 {
			t.Fatalf("held slot count %d, want 1", s.n.Load())
		}
		s.release()
	}
}

// TestPerIPLimitConcurrent races acquires and releases on a few addresses
// against sweeps forced by a stream of fresh ones: no address ever has more
// than max requests admitted at once, and every count ends at zero.
func TestPerIPLimitConcurrent(t *testing.T) {
	const max, hot, workers, rounds = 3, 4, 8, 4000
	p := newPerIPLimit(max)
	var admitted [hot]atomic.Int32
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				h := (w + i) % hot
				s := p.acquire(addr(h))
				if s == nil {
					continue
				}
				if n := admitted[h].Add(1); n > max {
					t.Errorf("address %d: %d admitted at once, max %d", h, n, max)
				}
				admitted[h].Add(-1)
				s.release()
			}
		})
	}
	wg.Go(func() { // fresh addresses: sweeps run while the workers do
		for i := range 20 * minSweepEntries {
			if s := p.acquire(addr(1000 + i)); s != nil {
				s.release()
			}
		}
	})
	wg.Wait()
	p.m.Range(func(k, v any) bool {
		if n := v.(*ipSlot).n.Load(); n != 0 {
			t.Errorf("%v: count %d with nothing in flight", k, n)
		}
		return true
	})
	mapLen(t, p)
}
