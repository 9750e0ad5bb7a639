package upstream

import (
	"net/http"
	"sync"
	"time"
)

// The one negative entry upstream mode keeps. Errors are not cached, with
// one exception: the provider's invalid_grant to one exact refresh request
// (the same refresh token, credentials and fields) is answered again, as
// the provider sent it, for a short time (Options.NegativeTTL, default 2s)
// by the process that got it. RFC 6749 §5.2 makes invalid_grant the answer
// for a refresh token that is "invalid, expired, revoked" or "issued to
// another client"; for one exact request that answer does not change, and a
// client retrying a dead refresh token in a loop then costs the provider one
// call per entry's life instead of one per retry. Any other error, and any
// other request with the same token, still goes to the provider.

// DefaultNegativeTTL and MaxNegativeTTL bound the negative entry's life.
const (
	DefaultNegativeTTL = 2 * time.Second
	MaxNegativeTTL     = 5 * time.Second
)

// negEntry is a remembered refusal.
type negEntry struct {
	rep   reply // never modified once stored
	until time.Time
}

// negCache holds the negative entries of this process, bounded by max (when
// full, expired entries leave, then arbitrary ones).
type negCache struct {
	mu  sync.Mutex
	max int
	m   map[cacheKey]negEntry
}

func newNegCache(max int) *negCache {
	return &negCache{max: max, m: map[cacheKey]negEntry{}}
}

func (n *negCache) get(k cacheKey, now time.Time) (reply, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e, ok := n.m[k]
	if !ok {
		return reply{}, false
	}
	if !now.Before(e.until) {
		delete(n.m, k)
		return reply{}, false
	}
	return e.rep, true
}

func (n *negCache) put(k cacheKey, rep reply, until time.Time, now time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.m[k]; !ok && len(n.m) >= n.max {
		for key, e := range n.m {
			if !now.Before(e.until) {
				delete(n.m, key)
			}
		}
		for key := range n.m {
			if len(n.m) < n.max {
				break
			}
			delete(n.m, key)
		}
	}
	n.m[k] = negEntry{rep: rep, until: until}
}

// deterministicRefusal reports whether a provider's answer to a refresh
// request is the one that may be remembered: 400 invalid_grant.
func deterministicRefusal(rep *reply) bool {
	return rep != nil && rep.status == http.StatusBadRequest && providerErrorCode(rep.body) == "invalid_grant"
}
