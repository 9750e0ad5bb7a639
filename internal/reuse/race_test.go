package reuse

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/issue"
	"github.com/tokengw/tokengw/internal/store"
)

// hooked wraps a real store and runs a hook once, right after the real
// Current or Issue answered and before the Reuser sees the answer: a
// revocation that lands while a lookup or mint is in flight. With fail set,
// that Current call then reports the store unavailable.
type hooked struct {
	Tokens
	mu                   sync.Mutex
	onCurrent, onIssue   func(store.Current)
	failCurrentAfterHook bool
}

func (h *hooked) take(p *func(store.Current)) func(store.Current) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := *p
	*p = nil
	return f
}

func (h *hooked) Current(ctx context.Context, id, k string) (store.Current, error) {
	cur, err := h.Tokens.Current(ctx, id, k)
	if f := h.take(&h.onCurrent); f != nil {
		f(cur)
		if h.failCurrentAfterHook {
			return store.Current{}, fmt.Errorf("down: %w", store.ErrUnavailable)
		}
	}
	return cur, err
}

func (h *hooked) Issue(ctx context.Context, t store.Token, c *store.Current) (store.Current, bool, error) {
	cur, claimed, err := h.Tokens.Issue(ctx, t, c)
	if f := h.take(&h.onIssue); f != nil && err == nil {
		f(store.Current{TokenHash: t.Hash})
	}
	return cur, claimed, err
}

// revokeOne revokes the token in the store, then evicts its slot, as the
// revocation endpoint does; revokeAll does the same for all of c1's tokens,
// as the admin API does.
func revokeOne(e *env, r *Reuser, h []byte) {
	_ = e.mem.Revoke(context.Background(), h)
	r.Evict("c1", ReuseKey(req("c1")))
}

func revokeAll(e *env, r *Reuser, _ []byte) {
	_, _ = e.mem.RevokeClient(context.Background(), "c1")
	r.EvictClient("c1")
}

// TestRevocationDuringFlightIsNotCached: a revocation (and this process's
// eviction) that completes while a lookup or mint for the same slot is in
// flight must not leave the revoked token in L1; the flight's own callers
// may get it (they raced the revocation), later callers must not.
func TestRevocationDuringFlightIsNotCached(t *testing.T) {
	tests := []struct {
		name string
		// prime makes the token the flight will see; nil: the flight mints.
		prime bool
		// stale: the flight re-checks an L1 entry older than local_ttl.
		stale     bool
		onIssue   bool
		storeDown bool
		revoke    func(e *env, r *Reuser, hash []byte)
	}{
		{"Evict during an L2 lookup", true, false, false, false, revokeOne},
		{"EvictClient during an L2 lookup", true, false, false, false, revokeAll},
		{"EvictClient during a mint", false, false, true, false, revokeAll},
		{"Evict during a mint", false, false, true, false, revokeOne},
		{"EvictClient during a failed re-check", true, true, false, true, revokeAll},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, true)
			h := &hooked{Tokens: e.mem, failCurrentAfterHook: tc.storeDown}
			e.st = &faulty{Tokens: h}
			r := e.reuser(t, true)
			var (
				primed Result
				err    error
			)
			if tc.prime {
				src := e.r // another replica minted it
				if tc.stale {
					src = r // this replica minted it and holds it in L1
				}
				if primed, err = src.Token(context.Background(), req("c1")); err != nil {
					t.Fatal(err)
				}
			}
			if tc.stale {
				e.clk.Advance(10 * time.Second)
			}
			hook := func(cur store.Current) { tc.revoke(e, r, cur.TokenHash) }
			if tc.onIssue {
				h.onIssue = hook
			} else {
				h.onCurrent = hook
			}
			inFlight, err := r.Token(context.Background(), req("c1"))
			switch {
			case tc.storeDown:
				// A re-check the store cannot answer serves nothing.
				if !errors.Is(err, store.ErrUnavailable) || inFlight.Token != "" {
					t.Fatalf("failed re-check: token %q err %v, want ErrUnavailable", inFlight.Token, err)
				}
				inFlight = primed
			case err != nil:
				t.Fatal(err)
			}
			e.clk.Advance(time.Second) // within local_ttl of the flight
			after, err := r.Token(context.Background(), req("c1"))
			if err != nil {
				t.Fatal(err)
			}
			if after.Token == inFlight.Token {
				tok, _ := e.mem.Token(context.Background(), issue.Hash(after.Token))
				t.Fatalf("token handed out again from L1 after its revocation and eviction (outcome %v, revoked in store %v)",
					after.Outcome, tok.Revoked)
			}
		})
	}
}

// TestWallClockStepBackStillRechecks: an L1 entry whose check time lies
// ahead of now (the wall clock was stepped back) has an unknown age: it is
// re-checked, not trusted until the clock catches up.
func TestWallClockStepBackStillRechecks(t *testing.T) {
	for _, back := range []time.Duration{time.Nanosecond, 10 * time.Second, 10 * time.Minute} {
		t.Run(back.String(), func(t *testing.T) {
			e := newEnv(t, true)
			a, err := e.r.Token(context.Background(), req("c1"))
			if err != nil {
				t.Fatal(err)
			}
			if err := e.mem.Revoke(context.Background(), issue.Hash(a.Token)); err != nil {
				t.Fatal(err)
			}
			e.clk.Advance(-back)
			b, err := e.r.Token(context.Background(), req("c1"))
			if err != nil {
				t.Fatal(err)
			}
			if b.Token == a.Token {
				t.Fatalf("clock stepped back %v: revoked token served from L1 without a re-check", back)
			}
		})
	}
}
