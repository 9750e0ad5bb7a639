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
}

// Cache looks tokens up. It is safe for concurrent use.
type Cache struct {
	opts Options

	mu      sync.RWMutex
	entries map[string]entry // key: string(token hash)

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
	return &Cache{opts: opts, entries: make(map[string]entry)}, nil
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
		c.put(string(hash), entry{info: info, cachedAt: now}, now)
	}
	return info, true, nil
}

func (c *Cache) put(k string, e entry, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.opts.MaxEntries {
		// Full: drop stale entries; if none, an arbitrary one (map order).
		dropped := 0
		for key, old := range c.entries {
			if !now.Before(old.info.ExpiresAt) || now.Sub(old.cachedAt) >= c.opts.LocalTTL {
				delete(c.entries, key)
				dropped++
			}
		}
		if dropped == 0 {
			for key := range c.entries {
				delete(c.entries, key)
				break
			}
		}
	}
	c.entries[k] = e
}

// Forget drops a token (revoked through this process).
func (c *Cache) Forget(hash []byte) {
	c.mu.Lock()
	delete(c.entries, string(hash))
	c.mu.Unlock()
}

// ForgetClient drops every cached answer about a client's tokens (all of
// them were revoked). It scans the cache: an operator action, not a hot path.
func (c *Cache) ForgetClient(clientID string) {
	c.mu.Lock()
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
