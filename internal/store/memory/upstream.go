package memory

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/tokengw/tokengw/internal/store"
)

var _ store.Upstream = (*Upstream)(nil)

type lease struct {
	holder string
	until  time.Time
}

// Upstream is the in-memory store.Upstream. Store embeds one; NewUpstream
// makes one on its own (for a store that has none, such as bolt's single
// process). Expired rows and leases are dropped lazily.
type Upstream struct {
	now     func() time.Time
	mu      sync.Mutex
	entries map[string]store.UpstreamEntry
	leases  map[string]lease
	puts    int // since the last sweep
}

// sweepEvery is how many writes pass between sweeps of expired rows, so
// rows nobody reads again (index rows, spent refresh results) do not pile
// up: the cost of a sweep is spread over that many writes.
const sweepEvery = 1024

// NewUpstream returns an empty upstream cache on the clock now (nil: time.Now).
func NewUpstream(now func() time.Time) *Upstream {
	if now == nil {
		now = time.Now
	}
	return &Upstream{now: now, entries: map[string]store.UpstreamEntry{}, leases: map[string]lease{}}
}

func cloneEntry(e store.UpstreamEntry) store.UpstreamEntry {
	e.Key, e.Ref, e.Sealed = bytes.Clone(e.Key), bytes.Clone(e.Ref), bytes.Clone(e.Sealed)
	return e
}

// UpstreamLease implements store.Upstream.
func (u *Upstream) UpstreamLease(ctx context.Context, key []byte, holder string, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	now := u.now()
	if l, ok := u.leases[string(key)]; ok && now.Before(l.until) {
		return false, nil
	}
	u.leases[string(key)] = lease{holder: holder, until: now.Add(ttl)}
	return true, nil
}

// UpstreamRelease implements store.Upstream.
func (u *Upstream) UpstreamRelease(ctx context.Context, key []byte, holder string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if l, ok := u.leases[string(key)]; ok && l.holder == holder {
		delete(u.leases, string(key))
	}
	return nil
}

// PutUpstream implements store.Upstream.
func (u *Upstream) PutUpstream(ctx context.Context, entries ...store.UpstreamEntry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	now := u.now()
	for _, e := range entries {
		if !now.Before(e.ExpiresAt) {
			continue
		}
		u.entries[string(e.Key)] = cloneEntry(e)
		if u.puts++; u.puts >= sweepEvery || u.puts >= len(u.entries) && len(u.entries) > sweepEvery {
			u.sweep()
		}
	}
	return nil
}

// sweep drops every expired entry and lease; the caller holds mu.
func (u *Upstream) sweep() {
	u.puts = 0
	now := u.now()
	for k, e := range u.entries {
		if !now.Before(e.ExpiresAt) {
			delete(u.entries, k)
		}
	}
	for k, l := range u.leases {
		if !now.Before(l.until) {
			delete(u.leases, k)
		}
	}
}

// Len reports how many entries are held, expired or not (for tests).
func (u *Upstream) Len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.entries)
}

// live returns key's entry if it has not expired; the caller holds mu.
func (u *Upstream) live(key []byte) (store.UpstreamEntry, bool) {
	e, ok := u.entries[string(key)]
	if !ok {
		return e, false
	}
	if !u.now().Before(e.ExpiresAt) {
		delete(u.entries, string(key))
		return e, false
	}
	return e, true
}

// UpstreamEntry implements store.Upstream.
func (u *Upstream) UpstreamEntry(ctx context.Context, key []byte) (store.UpstreamEntry, error) {
	if err := ctx.Err(); err != nil {
		return store.UpstreamEntry{}, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	e, ok := u.live(key)
	if !ok {
		return store.UpstreamEntry{}, store.ErrNotFound
	}
	return cloneEntry(e), nil
}

// TakeUpstreamReplay implements store.Upstream.
func (u *Upstream) TakeUpstreamReplay(ctx context.Context, key []byte, max int) (store.UpstreamEntry, bool, error) {
	if err := ctx.Err(); err != nil {
		return store.UpstreamEntry{}, false, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	e, ok := u.live(key)
	if !ok {
		return store.UpstreamEntry{}, false, store.ErrNotFound
	}
	if e.Replays >= max {
		return cloneEntry(e), false, nil
	}
	e.Replays++
	u.entries[string(key)] = e
	return cloneEntry(e), true, nil
}

// DeleteUpstream implements store.Upstream.
func (u *Upstream) DeleteUpstream(ctx context.Context, keys ...[]byte) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, k := range keys {
		delete(u.entries, string(k))
	}
	return nil
}
