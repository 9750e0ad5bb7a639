package server

import (
	"net/netip"
	"testing"
)

// TestPerIPLimit: at most max in flight per address, a slot freed by
// release, and the map bounded by the requests in flight plus idleKeep
// idle entries per shard however many addresses come and go.
func TestPerIPLimit(t *testing.T) {
	p := newPerIPLimit(2)
	a := netip.MustParseAddr("192.0.2.1")
	if !p.acquire(a) || !p.acquire(a) {
		t.Fatal("first two acquires refused")
	}
	if p.acquire(a) {
		t.Fatal("third acquire allowed with max 2")
	}
	p.release(a)
	if !p.acquire(a) {
		t.Fatal("acquire after release refused")
	}
	p.release(a)
	p.release(a)
	p.release(a) // one more than acquired: ignored, not negative
	if !p.acquire(a) || !p.acquire(a) || p.acquire(a) {
		t.Fatal("an extra release changed the limit")
	}
	p.release(a)
	p.release(a)

	// Many addresses, each done: only idle entries remain, idleKeep per shard.
	for i := range 5000 {
		b := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if !p.acquire(b) {
			t.Fatalf("acquire %v refused", b)
		}
		p.release(b)
	}
	total := 0
	for i := range p.shards {
		sh := &p.shards[i]
		if len(sh.n) > idleKeep || sh.idle != len(sh.n) {
			t.Fatalf("shard %d: %d entries, %d idle; want at most %d, all idle", i, len(sh.n), sh.idle, idleKeep)
		}
		for _, n := range sh.n {
			if n != 0 {
				t.Fatalf("shard %d holds a count %d with nothing in flight", i, n)
			}
		}
		total += len(sh.n)
	}
	if total > idleKeep*len(p.shards) {
		t.Fatalf("%d entries left", total)
	}
	// An idle entry taken again counts as in flight, not idle.
	if !p.acquire(a) {
		t.Fatal("acquire of a returning address refused")
	}
	sh := p.shard(a)
	if n := sh.n[a]; n != 1 {
		t.Fatalf("count = %d, want 1", n)
	}
	p.release(a)
}
