package clustertest

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// The checker must fail on the histories it exists to catch, and pass a
// clean one: each case is a small history written by hand.
func TestCheck(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	clients := map[string]Client{"c": {ID: "c", TTL: 10 * time.Minute}, "s": {ID: "s", TTL: 4 * time.Second}}
	p := Params{MaxElapsedFraction: 0.5, MinRemaining: time.Second, LocalTTL: 2 * time.Second, ClientRefresh: time.Second, Slack: 1500 * time.Millisecond}
	// tok is a 200 handing out token v, minted at `minted` (seconds), for a
	// client with lifetime ttl, answered at s.
	tok := func(client, v string, replica int, s, minted float64) Op {
		ttl := clients[client].TTL
		exp := at(minted).Add(ttl)
		return Op{Kind: KindToken, Client: client, Replica: replica, Start: at(s), End: at(s + 0.01),
			Status: http.StatusOK, Token: "token-" + v, ExpiresIn: int64(exp.Sub(at(s)) / time.Second)}
	}
	phases := []Phase{
		{Name: "healthy", Mode: Healthy, Start: at(0), End: at(100)},
		{Name: "two-down", Mode: TwoDown, Start: at(100), End: at(200)},
	}
	tests := []struct {
		name string
		ops  []Op
		want string // a violation containing this, or "" for none
	}{
		{name: "one token per window, reused on both replicas", ops: []Op{
			tok("c", "A", 0, 1, 1), tok("c", "A", 1, 2, 1), tok("c", "A", 0, 50, 1),
			tok("s", "X", 0, 1, 1), tok("s", "Y", 1, 3.5, 3.5), tok("s", "Y", 0, 4, 3.5),
		}},
		{name: "two replicas minted for one key in one window", ops: []Op{
			tok("c", "A", 0, 1, 1), tok("c", "B", 1, 1.2, 1.2), tok("c", "A", 0, 3, 1),
		}, want: "invariant 1: key c||gen0: tokens …token-A"},
		// Issue 18's rehearsal, with its recorded spans: replica 1 minted A
		// at once (expires_in 4, a mint's ceil), replica 0 answered a slow
		// request with B (expires_in 3), and B again with expires_in 2 by
		// 31.305, so B was minted by 30.305, while A's window runs to
		// 31.955 at the earliest (30.955 if A's answer was a joined mint's
		// ceil): a certain overlap even with the 1.5 s slack. The store's
		// cause: A's slot row died at the whole second of its write plus
		// its TTL (31.000), and replica 0's claim applied after that.
		{name: "issue 18: a slow replica's mint inside a short window", ops: []Op{
			{Kind: KindToken, Client: "s", Replica: 1, Start: at(29.955), End: at(30.052), Status: http.StatusOK, Token: "token-A", ExpiresIn: 4},
			{Kind: KindToken, Client: "s", Replica: 0, Start: at(29.954), End: at(31.195), Status: http.StatusOK, Token: "token-B", ExpiresIn: 3},
			{Kind: KindToken, Client: "s", Replica: 0, Start: at(31.250), End: at(31.305), Status: http.StatusOK, Token: "token-B", ExpiresIn: 2},
			{Kind: KindToken, Client: "s", Replica: 1, Start: at(31.100), End: at(31.150), Status: http.StatusOK, Token: "token-A", ExpiresIn: 2},
		}, want: "invariant 1: key s||gen0: tokens …token-A"},
		{name: "handed out after its window", ops: []Op{
			tok("s", "X", 0, 1, 1), tok("s", "X", 1, 6, 1),
		}, want: "after its reuse window"},
		{name: "a revocation ends the window", ops: []Op{
			tok("c", "A", 0, 1, 1),
			{Kind: KindRevoke, Client: "c", Replica: 0, Start: at(2), End: at(2.1), Status: 200, Token: "token-A"},
			tok("c", "B", 1, 2.5, 2.5),
		}},
		{name: "revoked token handed out again by the replica that acknowledged it", ops: []Op{
			tok("c", "A", 0, 1, 1),
			{Kind: KindRevoke, Client: "c", Replica: 0, Start: at(2), End: at(2.1), Status: 200, Token: "token-A"},
			tok("c", "A", 0, 2.2, 1),
		}, want: "then handed out by the same replica"},
		{name: "revoked token on the other replica within local_ttl", ops: []Op{
			tok("c", "A", 0, 1, 1),
			{Kind: KindRevoke, Client: "c", Replica: 0, Start: at(2), End: at(2.1), Status: 200, Token: "token-A"},
			tok("c", "A", 1, 3, 1),
		}},
		{name: "revoked token on the other replica beyond local_ttl", ops: []Op{
			tok("c", "A", 0, 1, 1),
			{Kind: KindRevokeAll, Client: "c", Replica: 0, Start: at(2), End: at(2.1), Status: 200},
			tok("c", "A", 1, 9, 1),
		}, want: "beyond reuse.local_ttl"},
		{name: "an error while healthy", ops: []Op{
			{Kind: KindToken, Client: "c", Replica: 1, Start: at(5), End: at(5.1), Status: http.StatusInternalServerError},
		}, want: "failed in phase healthy"},
		{name: "two down: a mint may be 503 with Retry-After", ops: []Op{
			{Kind: KindToken, Client: "s", Replica: 1, Start: at(150), End: at(150.1), Status: 503, RetryAfter: "1"},
		}},
		{name: "two down: 503 without Retry-After", ops: []Op{
			{Kind: KindToken, Client: "s", Replica: 1, Start: at(150), End: at(150.1), Status: 503},
		}, want: "neither 2xx nor 503 with Retry-After"},
		{name: "a mint sent just before two nodes died, answered 503 after", ops: []Op{
			{Kind: KindToken, Client: "s", Replica: 1, Start: at(99.8), End: at(101), Status: 503, RetryAfter: "1"},
		}},
		{name: "a mint that ended before two nodes died is judged healthy", ops: []Op{
			{Kind: KindToken, Client: "s", Replica: 1, Start: at(99.8), End: at(99.9), Status: 503, RetryAfter: "1"},
		}, want: "failed in phase healthy"},
		{name: "a reuse hit refused across the boundary into two down", ops: []Op{
			tok("c", "A", 1, 90, 90),
			{Kind: KindToken, Client: "c", Replica: 1, Start: at(99.8), End: at(101), Status: 503, RetryAfter: "1"},
		}, want: "a reuse hit was refused"},
		{name: "two down: a reuse hit refused while a revoke-all (503) of its client ran", ops: []Op{
			tok("c", "A", 1, 90, 90),
			{Kind: KindToken, Client: "c", Replica: 1, Start: at(150), End: at(153), Status: 503, RetryAfter: "1"},
			{Kind: KindRevokeAll, Client: "c", Replica: 0, Start: at(150.2), End: at(151.2), Status: 503, RetryAfter: "1"},
		}},
		{name: "two down: a reuse hit refused", ops: []Op{
			tok("c", "A", 1, 90, 90),
			{Kind: KindToken, Client: "c", Replica: 1, Start: at(150), End: at(150.1), Status: 503, RetryAfter: "1"},
		}, want: "a reuse hit was refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := Check(tc.ops, phases, clients, p)
			joined := strings.Join(rep.Violations, "\n")
			switch {
			case tc.want == "" && len(rep.Violations) > 0:
				t.Errorf("violations on a clean history:\n%s", joined)
			case tc.want != "" && !strings.Contains(joined, tc.want):
				t.Errorf("want a violation containing %q, got:\n%s", tc.want, joined)
			}
		})
	}
}

func TestSurvivorsAndRevoked(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	clients := map[string]Client{"c": {ID: "c", TTL: time.Hour}}
	p := Params{MaxElapsedFraction: 0.5, MinRemaining: time.Second, LocalTTL: 2 * time.Second, Slack: time.Second}
	op := func(v string, s time.Duration) Op {
		return Op{Kind: KindToken, Client: "c", Start: t0.Add(s), End: t0.Add(s), Status: 200, Token: v, ExpiresIn: 3600}
	}
	ops := []Op{
		op("live", 0), op("gone", 0),
		{Kind: KindRevoke, Client: "c", Start: t0.Add(time.Second), End: t0.Add(time.Second), Status: 200, Token: "gone"},
	}
	after := t0.Add(time.Minute)
	if s := Survivors(ops, clients, p, after); len(s) != 1 || s[0].Value != "live" {
		t.Errorf("Survivors = %v, want only live", s)
	}
	if r := Revoked(ops, clients, p, after); len(r) != 1 || r[0].Value != "gone" {
		t.Errorf("Revoked = %v, want only gone", r)
	}
}
