package store

import (
	"context"
	"time"
)

// UpstreamEntry is one row of upstream mode's shared cache: a provider's
// success sealed by the caller (Sealed), or an index row pointing at one
// (Ref). Key is a keyed hash made by the caller (package upstream); the
// store never sees a token, a secret or a request in clear.
type UpstreamEntry struct {
	Key       []byte    // keyed hash, 32 bytes
	Ref       []byte    // index rows: the Key of the entry they point at
	Sealed    []byte    // the provider's response, sealed (nil on index rows)
	Replays   int       // how many times the entry was replayed (refresh results)
	StoredAt  time.Time // when the provider's response arrived
	ExpiresAt time.Time // the row is gone after this (a TTL where the database has them)
}

// Upstream is what upstream mode persists: cached provider responses, index
// rows, and leases that make one upstream call per key across every
// process sharing the store. Implementations are safe for concurrent use.
type Upstream interface {
	// UpstreamLease claims key for holder until ttl has passed,
	// exclusively: among concurrent callers on any number of processes
	// sharing the store, one gets true; the others get false until the
	// lease is released or has expired.
	UpstreamLease(ctx context.Context, key []byte, holder string, ttl time.Duration) (bool, error)
	// UpstreamRelease ends holder's lease of key (no-op when another holds it).
	UpstreamRelease(ctx context.Context, key []byte, holder string) error
	// PutUpstream writes entries, in order, each replacing the one with
	// the same key; an entry whose ExpiresAt has passed is not written.
	// After an error, the entries before the failing one may be written
	// (so the one that matters goes first); a driver that can writes them
	// all in one transaction.
	PutUpstream(ctx context.Context, entries ...UpstreamEntry) error
	// UpstreamEntry returns the live entry of key, or ErrNotFound.
	UpstreamEntry(ctx context.Context, key []byte) (UpstreamEntry, error)
	// TakeUpstreamReplay counts one replay of key's entry if it has had
	// fewer than max: it returns true and the entry as counted, or false
	// when max is reached (or ErrNotFound when there is no live entry).
	// Concurrent callers across processes never take more than max.
	TakeUpstreamReplay(ctx context.Context, key []byte, max int) (UpstreamEntry, bool, error)
	// DeleteUpstream removes the entries of keys (missing keys are fine).
	DeleteUpstream(ctx context.Context, keys ...[]byte) error
}
