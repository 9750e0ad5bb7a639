package assertion

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"

	"github.com/tokengw/tokengw/internal/store"
)

// claimFlights collapses concurrent claims of one jti in this process into
// one store call. Without it, fifty copies of one captured assertion sent at
// once are fifty lightweight transactions on one Cassandra partition: Paxos
// contention then times some of them out, and a request that should have
// been refused as a replay is answered 503 instead.
//
// Followers never win: when the leader's claim succeeded or was refused,
// the jti is used (by the leader or by someone before it), so a follower is
// a replay; when the leader's outcome is unknown (a store error), a
// follower cannot know more and gets the same error. The store still
// decides among processes; only this process's duplicates skip it.
type claimFlights struct {
	mu sync.Mutex
	m  map[string]*claimFlight

	onWait func() // test hook: a follower starts waiting (set before use)
}

type claimFlight struct {
	done chan struct{}
	err  error // the leader's result, set before done is closed
}

// claim runs do once per key at a time: the first caller (the leader) runs
// it; callers arriving while it runs wait for its result and get
// store.ErrReplay when it was nil or store.ErrReplay, its error otherwise.
func (f *claimFlights) claim(ctx context.Context, key string, do func() error) error {
	f.mu.Lock()
	if fl, ok := f.m[key]; ok {
		f.mu.Unlock()
		if f.onWait != nil {
			f.onWait()
		}
		select {
		case <-fl.done:
		case <-ctx.Done():
			return fmt.Errorf("assertion: wait for a concurrent claim of the same jti: %w", ctx.Err())
		}
		if fl.err == nil || errors.Is(fl.err, store.ErrReplay) {
			return store.ErrReplay
		}
		return fl.err
	}
	if f.m == nil {
		f.m = make(map[string]*claimFlight)
	}
	fl := &claimFlight{done: make(chan struct{})}
	f.m[key] = fl
	f.mu.Unlock()

	defer func() {
		f.mu.Lock()
		delete(f.m, key)
		f.mu.Unlock()
		close(fl.done)
	}()
	fl.err = do()
	return fl.err
}

// claimJTI is the last check: a one-time assertion's jti is claimed
// store-wide until exp plus the skew (one store call per jti at a time in
// this process: claimFlights).
func (v *Verifier) claimJTI(ctx context.Context, p Principal, c *Claims) error {
	if !p.OneTime {
		return nil
	}
	h := sha256.Sum256([]byte(c.JTI))
	ctx, cancel := context.WithTimeout(ctx, v.opts.StoreTimeout)
	defer cancel()
	until := c.Expiry.Add(v.opts.ClockSkew)
	key := p.ID + "\x00" + string(h[:])
	err := v.flights.claim(ctx, key, func() error {
		return v.opts.JTIs.ClaimAssertion(ctx, p.ID, h[:], until)
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrReplay):
		return refused(CheckReplay, "assertion already used (jti)")
	default:
		return fmt.Errorf("assertion: claim jti: %w", err)
	}
}
