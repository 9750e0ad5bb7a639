// Package generation is the one guard tokengw's caches use against an
// invalidation that lands while a lookup is in flight.
//
// A cache that answers from memory and fills itself from the store (the
// reuse layer's L1, the client registry, the introspection cache) has one
// race in common: a lookup reads the store, an invalidation (a revocation,
// a rotated secret) lands and clears the cache, and then the lookup caches
// what it read before the change, undoing the invalidation for as long as
// the entry lives. The guard closes it: a lookup takes a Stamp before it
// reads the store and caches its answer only if the Stamp is still Valid;
// an invalidation Bumps the key first.
//
// Generations are kept per stripe of keys, not per key, so the guard's
// memory is fixed however many keys (token hashes, client ids) pass
// through; a Bump of one key also voids in-flight lookups of the keys that
// share its stripe, which costs them a cache fill, never correctness.
package generation

import (
	"hash/maphash"
	"sync/atomic"
)

// stripes is the number of generation counters of a Guard (8 KiB).
const stripes = 1024

// Guard holds the generations. The zero value is not usable: use New. Safe
// for concurrent use.
//
// The contract that makes it sound: a cache takes the Stamp before reading
// the store, and checks Valid and stores its entry under the same lock
// under which an invalidation calls Bump (or BumpAll) and removes entries;
// a cache whose entries carry their generation (Current at the time of the
// read) compares it with Current when reading them back, without a lock.
type Guard struct {
	seed maphash.Seed
	all  atomic.Uint64
	gen  [stripes]atomic.Uint64
}

// New returns a Guard.
func New() *Guard { return &Guard{seed: maphash.MakeSeed()} }

// Stamp is the generations a lookup saw before reading the store.
type Stamp struct {
	stripe  uint32
	gen     uint64
	all     uint64
	guarded bool
}

func (g *Guard) stripe(key string) uint32 {
	return uint32(maphash.String(g.seed, key) % stripes)
}

// Stamp records key's generation and the guard-wide one.
func (g *Guard) Stamp(key string) Stamp {
	i := g.stripe(key)
	return Stamp{stripe: i, gen: g.gen[i].Load(), all: g.all.Load(), guarded: true}
}

// Valid reports whether neither key's generation nor the guard-wide one
// moved since s was taken. The zero Stamp is never valid.
func (g *Guard) Valid(s Stamp) bool {
	return s.guarded && g.gen[s.stripe].Load() == s.gen && g.all.Load() == s.all
}

// Current is key's generation now, for entries that carry it.
func (g *Guard) Current(key string) uint64 { return g.gen[g.stripe(key)].Load() }

// Bump invalidates key: Stamps taken before it are no longer valid, and
// entries that carry an older generation of key are stale.
func (g *Guard) Bump(key string) { g.gen[g.stripe(key)].Add(1) }

// BumpAll invalidates every in-flight lookup at once, for an invalidation
// whose keys a lookup cannot know in advance (all the tokens of a client).
func (g *Guard) BumpAll() { g.all.Add(1) }
