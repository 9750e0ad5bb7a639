package assertion

import (
	"sync"
	"time"
)

// DefaultCacheEntries is the verified-JWT cache bound when none is set.
const DefaultCacheEntries = 100_000

// verified is a cache entry: what a signature check established.
// Immutable once stored.
type verified struct {
	claims    Claims
	principal string   // Principal.ID it was verified for
	thumb     [32]byte // the key that verified it
	exp       time.Time
}

// verifiedCache maps SHA-256 of an assertion's exact compact bytes to its
// verified claims, so the same JWT is not verified twice. It is bounded; an
// entry is never used at or after the JWT's exp.
type verifiedCache struct {
	max int
	mu  sync.RWMutex
	m   map[[32]byte]*verified
}

func newVerifiedCache(max int) *verifiedCache {
	return &verifiedCache{max: max, m: make(map[[32]byte]*verified)}
}

func (c *verifiedCache) get(k [32]byte, now time.Time) (*verified, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.RLock()
	e := c.m[k]
	c.mu.RUnlock()
	if e == nil {
		return nil, false
	}
	if !now.Before(e.exp) {
		c.drop(k, e)
		return nil, false
	}
	return e, true
}

// drop deletes k if it still holds e.
func (c *verifiedCache) drop(k [32]byte, e *verified) {
	c.mu.Lock()
	if c.m[k] == e {
		delete(c.m, k)
	}
	c.mu.Unlock()
}

// put stores e; when full it first drops expired entries (looking at a
// bounded number), then arbitrary ones (Go's map iteration starts at a
// random place).
func (c *verifiedCache) put(k [32]byte, e *verified, now time.Time) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		looked := 0
		for key, v := range c.m {
			if !now.Before(v.exp) {
				delete(c.m, key)
			}
			if looked++; looked >= 64 {
				break
			}
		}
		for key := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, key)
		}
	}
	c.m[k] = e
}

func (c *verifiedCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
