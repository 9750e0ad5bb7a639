// Package introspect answers "is this opaque token live, and whose is it"
// (RFC 7662) from a small local cache in front of the store, so a resource
// server polling the same token costs no store trip.
//
// A cached answer is used while the token has not expired and the entry is
// younger than LocalTTL (reuse.local_ttl): a token revoked through another
// replica is reported inactive here within that bound; one revoked through
// this process is forgotten at once (Forget). Only live tokens are cached:
// an unknown token cannot fill the cache.
package introspect

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokengw/tokengw/internal/generation"
	"github.com/tokengw/tokengw/internal/store"
)

// Tokens is the part of the store introspection needs.
type Tokens interface {
	Token(ctx context.Context, hash []byte) (store.Token, error)
}

// Options configures a Cache.
type Options struct {
	Store Tokens
	// LocalTTL bounds how long a cached answer is trusted. 0 disables caching.
	LocalTTL time.Duration
	// MaxEntries bounds the cache (default 100,000).
	MaxEntries int
	// StoreTimeout bounds each store lookup (default 2s).
	StoreTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Info describes a live token.
type Info struct {
	ClientID  string
	Scope     string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

type entry struct {
	info     Info
	cachedAt time.Time
	seq      uint64 // the insertion that made it, for the eviction queue
}

// queued is one insertion, in insertion order.
type queued struct {
	key string
	seq uint64
}

// Cache looks tokens up. It is safe for concurrent use.
type Cache struct {
	opts Options
	gen  *generation.Guard // Forget and ForgetClient win over lookups in flight

	mu      sync.RWMutex
	entries map[string]entry // key: string(token hash)
	// order lists insertions oldest first; an item whose entry was replaced
	// or forgotten since (seq differs) is skipped. Eviction pops from its
	// head: each insertion is popped once, so eviction is O(1) amortised.
	order []queued
	seq   uint64

	hits, misses atomic.Uint64
}

// New builds a Cache.
func New(opts Options) (*Cache, error) {
	if opts.Store == nil {
		return nil, errors.New("introspect: a Store is required")
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 100_000
	}
	if opts.StoreTimeout <= 0 {
		opts.StoreTimeout = 2 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Cache{opts: opts, gen: generation.New(), entries: make(map[string]entry)}, nil
}

// Lookup reports whether the token with this hash is live (issued, not
// expired, not revoked) and its details. An error means the store could not
// answer (the caller answers 503), never that the token is inactive.
func (c *Cache) Lookup(ctx context.Context, hash []byte) (Info, bool, error) {
	now := c.opts.Now()
	c.mu.RLock()
	e, ok := c.entries[string(hash)]
	c.mu.RUnlock()
	if ok && now.Before(e.info.ExpiresAt) && now.Sub(e.cachedAt) < c.opts.LocalTTL {
		c.hits.Add(1)
		return e.info, true, nil
	}
	c.misses.Add(1)
	// Taken before the store is read: a revocation that lands while this
	// lookup is reading must not be undone by caching what it read.
	stamp := c.gen.Stamp(string(hash))
	sctx, cancel := context.WithTimeout(ctx, c.opts.StoreTimeout)
	defer cancel()
	tok, err := c.opts.Store.Token(sctx, hash)
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.Forget(hash)
		return Info{}, false, nil
	case err != nil:
		return Info{}, false, err
	}
	if tok.Revoked || !now.Before(tok.ExpiresAt) {
		c.Forget(hash)
		return Info{}, false, nil
	}
	info := Info{ClientID: tok.ClientID, Scope: tok.Scope, IssuedAt: tok.IssuedAt, ExpiresAt: tok.ExpiresAt}
	if c.opts.LocalTTL > 0 {
		c.put(string(hash), entry{info: info, cachedAt: now}, stamp)
	}
	return info, true, nil
}

// put caches e under k unless an invalidation happened since stamp,
// evicting the oldest insertion when full.
func (c *Cache) put(k string, e entry, stamp generation.Stamp) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.gen.Valid(stamp) {
		return
	}
	if _, ok := c.entries[k]; !ok {
		for len(c.entries) >= c.opts.MaxEntries && len(c.order) > 0 {
			old := c.order[0]
			c.order = c.order[1:]
			if cur, ok := c.entries[old.key]; ok && cur.seq == old.seq {
				delete(c.entries, old.key)
			}
		}
	}
	c.seq++
	e.seq = c.seq
	c.entries[k] = e
	c.order = append(c.order, queued{key: k, seq: e.seq})
	if len(c.order) > 2*c.opts.MaxEntries {
		// Mostly skipped items (replaced or forgotten): rebuild from the
		// live entries, oldest first — O(n) once per n insertions.
		live := make([]queued, 0, len(c.entries))
		for _, q := range c.order {
			if cur, ok := c.entries[q.key]; ok && cur.seq == q.seq {
				live = append(live, q)
			}
		}
		c.order = live
	}
}

// Forget drops a token (revoked through this process); a lookup of it in
// flight does not cache what it read.
func (c *Cache) Forget(hash []byte) {
	c.mu.Lock()
	c.gen.Bump(string(hash))
	delete(c.entries, string(hash))
	c.mu.Unlock()
}

// ForgetClient drops every cached answer about a client's tokens (all of
// them were revoked), and voids every lookup in flight (it cannot know
// whose token it reads). It scans the cache: an operator action, not a hot
// path.
func (c *Cache) ForgetClient(clientID string) {
	c.mu.Lock()
	c.gen.BumpAll()
	for k, e := range c.entries {
		if e.info.ClientID == clientID {
			delete(c.entries, k)
		}
	}
	c.mu.Unlock()
}

// Len is the number of cached entries.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// Hits and Misses count lookups answered from the cache and from the store.
func (c *Cache) Hits() uint64 { return c.hits.Load() }

// Misses counts lookups that went to the store.
func (c *Cache) Misses() uint64 { return c.misses.Load() }
