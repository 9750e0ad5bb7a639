// Package storetest is the conformance suite every store.Store driver runs:
// the memory and bolt drivers with an injected clock, the Cassandra driver
// against a real Cassandra with its real clock.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/store"
)

// Harness tells the suite how to get a store and how its time passes.
type Harness struct {
	// New returns a fresh, empty store. The suite closes it.
	New func(t *testing.T) store.Store
	// Now is the clock the store uses for expiry.
	Now func() time.Time
	// Advance moves the store's clock forward. Nil means the store runs on
	// real time (database TTLs): the suite then uses windows of a couple of
	// seconds and polls until the expiry is observed.
	Advance func(d time.Duration)
}

var seq atomic.Uint64

// hashOf returns a fresh, unique 32-byte token hash.
func hashOf(label string) []byte {
	h := sha256.Sum256(fmt.Appendf(nil, "%s-%d-%d", label, time.Now().UnixNano(), seq.Add(1)))
	return h[:]
}

func ms(t time.Time) time.Time { return t.Truncate(time.Millisecond) }

type fixture struct {
	h   Harness
	s   store.Store
	ctx context.Context
}

func (f *fixture) now() time.Time { return ms(f.h.Now()) }

func (f *fixture) token(client, reuseKey string, lifetime time.Duration) store.Token {
	now := f.now()
	return store.Token{
		Hash: hashOf(client), ClientID: client, Scope: "read write", ReuseKey: reuseKey,
		IssuedAt: now, ExpiresAt: now.Add(lifetime),
	}
}

func current(tok store.Token, window time.Duration) *store.Current {
	return &store.Current{
		ClientID: tok.ClientID, ReuseKey: tok.ReuseKey, TokenHash: tok.Hash,
		Sealed: append([]byte("sealed:"), tok.Hash[:4]...), Scope: tok.Scope,
		IssuedAt: tok.IssuedAt, ExpiresAt: tok.ExpiresAt, ReuseUntil: tok.IssuedAt.Add(window),
	}
}

// waitUntil advances the clock past d, or with a real clock polls cond until
// it holds (deadline 20 s).
func (f *fixture) waitUntil(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	if f.h.Advance != nil {
		f.h.Advance(d)
		if !cond() {
			t.Fatalf("condition not met after advancing the clock by %v", d)
		}
		return
	}
	deadline := time.Now().Add(d + 20*time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d+20*time.Second)
		}
		<-tick.C
	}
}

// window is the reuse window / lifetime used for expiry tests: short on a
// real clock (TTLs are whole seconds in Cassandra).
func (f *fixture) window() time.Duration {
	if f.h.Advance != nil {
		return time.Minute
	}
	return 2 * time.Second
}

// Run runs the whole suite.
func Run(t *testing.T, h Harness) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(*testing.T, *fixture)
	}{
		{"IssueWithoutReuse", testIssueWithoutReuse},
		{"TokenUnknown", testTokenUnknown},
		{"ClaimOnce", testClaimOnce},
		{"SlotsIndependent", testSlotsIndependent},
		{"ConcurrentClaim", testConcurrentClaim},
		{"CurrentExpires", testCurrentExpires},
		{"TokenExpires", testTokenExpires},
		{"Revoke", testRevoke},
		{"RevokeOtherTokenKeepsCurrent", testRevokeOtherKeepsCurrent},
		{"ClearCurrents", testClearCurrents},
		{"RevokeClient", testRevokeClient},
		{"RevokeClientSkipsExpired", testRevokeClientSkipsExpired},
		{"RevokeClientConcurrentIssue", testRevokeClientConcurrentIssue},
		{"RevokeClientCanceledContext", testRevokeClientCanceled},
		{"Clients", testClients},
		{"ClientAuthFields", testClientAuthFields},
		{"ClientUpdateConditional", testClientUpdateConditional},
		{"ClientUpdateConcurrent", testClientUpdateConcurrent},
		{"DeleteClientClearsCurrents", testDeleteClientClearsCurrents},
		{"CanceledContext", testCanceledContext},
		{"Assertions", testAssertions},
		{"Close", testClose},
		{"SigningKeys", testSigningKeys},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := h.New(t)
			closed := false
			t.Cleanup(func() {
				if !closed {
					_ = s.Close()
				}
			})
			f := &fixture{h: h, s: s, ctx: context.Background()}
			if tc.name == "Close" {
				closed = true
			}
			tc.fn(t, f)
		})
	}
}

func sameToken(t *testing.T, got, want store.Token) {
	t.Helper()
	if !bytes.Equal(got.Hash, want.Hash) || got.ClientID != want.ClientID || got.Scope != want.Scope ||
		got.ReuseKey != want.ReuseKey || !got.IssuedAt.Equal(want.IssuedAt) ||
		!got.ExpiresAt.Equal(want.ExpiresAt) || got.Revoked != want.Revoked {
		t.Fatalf("token = %+v, want %+v", got, want)
	}
}

func sameCurrent(t *testing.T, got, want store.Current) {
	t.Helper()
	if got.ClientID != want.ClientID || got.ReuseKey != want.ReuseKey ||
		!bytes.Equal(got.TokenHash, want.TokenHash) || !bytes.Equal(got.Sealed, want.Sealed) ||
		got.Scope != want.Scope || !got.IssuedAt.Equal(want.IssuedAt) ||
		!got.ExpiresAt.Equal(want.ExpiresAt) || !got.ReuseUntil.Equal(want.ReuseUntil) {
		t.Fatalf("current = %+v, want %+v", got, want)
	}
}

func testIssueWithoutReuse(t *testing.T, f *fixture) {
	tok := f.token("c1", "", time.Hour)
	cur, claimed, err := f.s.Issue(f.ctx, tok, nil)
	if err != nil || claimed || cur.ClientID != "" {
		t.Fatalf("Issue = %+v, %v, %v; want zero, false, nil", cur, claimed, err)
	}
	got, err := f.s.Token(f.ctx, tok.Hash)
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	sameToken(t, got, tok)
}

func testTokenUnknown(t *testing.T, f *fixture) {
	if _, err := f.s.Token(f.ctx, hashOf("nope")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Token(unknown) err = %v, want ErrNotFound", err)
	}
	if _, err := f.s.Current(f.ctx, "nobody", "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Current(unknown) err = %v, want ErrNotFound", err)
	}
	if err := f.s.Revoke(f.ctx, hashOf("nope")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Revoke(unknown) err = %v, want ErrNotFound", err)
	}
}

func testClaimOnce(t *testing.T, f *fixture) {
	t1 := f.token("c1", "k", time.Hour)
	c1 := current(t1, 30*time.Minute)
	got, claimed, err := f.s.Issue(f.ctx, t1, c1)
	if err != nil || !claimed {
		t.Fatalf("first Issue: claimed=%v err=%v", claimed, err)
	}
	sameCurrent(t, got, *c1)

	t2 := f.token("c1", "k", time.Hour)
	got, claimed, err = f.s.Issue(f.ctx, t2, current(t2, 30*time.Minute))
	if err != nil || claimed {
		t.Fatalf("second Issue: claimed=%v err=%v, want false, nil", claimed, err)
	}
	sameCurrent(t, got, *c1)
	if _, err := f.s.Token(f.ctx, t2.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the losing token was persisted (err = %v)", err)
	}
	have, err := f.s.Current(f.ctx, "c1", "k")
	if err != nil {
		t.Fatalf("Current: %v", err)
	}
	sameCurrent(t, have, *c1)
	tok, err := f.s.Token(f.ctx, t1.Hash)
	if err != nil {
		t.Fatalf("Token(winner): %v", err)
	}
	sameToken(t, tok, t1)
}

func testSlotsIndependent(t *testing.T, f *fixture) {
	for _, s := range []struct{ client, key string }{{"a", "k1"}, {"a", "k2"}, {"b", "k1"}} {
		tok := f.token(s.client, s.key, time.Hour)
		if _, claimed, err := f.s.Issue(f.ctx, tok, current(tok, time.Minute)); err != nil || !claimed {
			t.Fatalf("Issue(%s,%s): claimed=%v err=%v", s.client, s.key, claimed, err)
		}
	}
}

func testConcurrentClaim(t *testing.T, f *fixture) {
	const n = 16
	var wg sync.WaitGroup
	var claims atomic.Int32
	winners := make([][]byte, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := f.token("race", "k", time.Hour)
			cur, claimed, err := f.s.Issue(f.ctx, tok, current(tok, 30*time.Minute))
			errs[i] = err
			winners[i] = cur.TokenHash
			if claimed {
				claims.Add(1)
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Issue %d: %v", i, err)
		}
	}
	if got := claims.Load(); got != 1 {
		t.Fatalf("%d callers claimed the slot, want exactly 1", got)
	}
	for i := range winners {
		if !bytes.Equal(winners[i], winners[0]) {
			t.Fatalf("caller %d saw winner %x, caller 0 saw %x", i, winners[i], winners[0])
		}
	}
	if _, err := f.s.Token(f.ctx, winners[0]); err != nil {
		t.Fatalf("winning token not persisted: %v", err)
	}
}

func testCurrentExpires(t *testing.T, f *fixture) {
	w := f.window()
	t1 := f.token("c1", "k", time.Hour)
	if _, claimed, err := f.s.Issue(f.ctx, t1, current(t1, w)); err != nil || !claimed {
		t.Fatalf("Issue: claimed=%v err=%v", claimed, err)
	}
	f.waitUntil(t, w, func() bool {
		_, err := f.s.Current(f.ctx, "c1", "k")
		return errors.Is(err, store.ErrNotFound)
	})
	t2 := f.token("c1", "k", time.Hour)
	got, claimed, err := f.s.Issue(f.ctx, t2, current(t2, w))
	if err != nil || !claimed || !bytes.Equal(got.TokenHash, t2.Hash) {
		t.Fatalf("Issue after the window: claimed=%v err=%v", claimed, err)
	}
	// The first token itself outlives its reuse window.
	if _, err := f.s.Token(f.ctx, t1.Hash); err != nil {
		t.Fatalf("token gone with its reuse row: %v", err)
	}
}

func testTokenExpires(t *testing.T, f *fixture) {
	w := f.window()
	tok := f.token("c1", "", w)
	if _, _, err := f.s.Issue(f.ctx, tok, nil); err != nil {
		t.Fatalf("Issue: %v", err)
	}
	f.waitUntil(t, w, func() bool {
		_, err := f.s.Token(f.ctx, tok.Hash)
		return errors.Is(err, store.ErrNotFound)
	})
}

func testRevoke(t *testing.T, f *fixture) {
	tok := f.token("c1", "k", time.Hour)
	if _, _, err := f.s.Issue(f.ctx, tok, current(tok, 30*time.Minute)); err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if err := f.s.Revoke(f.ctx, tok.Hash); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	got, err := f.s.Token(f.ctx, tok.Hash)
	if err != nil {
		t.Fatalf("Token after Revoke: %v", err)
	}
	if !got.Revoked {
		t.Fatalf("Token after Revoke: Revoked = false")
	}
	if !got.ExpiresAt.Equal(tok.ExpiresAt) || got.ClientID != tok.ClientID {
		t.Fatalf("Revoke changed the token: %+v", got)
	}
	if _, err := f.s.Current(f.ctx, "c1", "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Current after Revoke: err = %v, want ErrNotFound", err)
	}
	// Idempotent.
	if err := f.s.Revoke(f.ctx, tok.Hash); err != nil {
		t.Fatalf("second Revoke: %v", err)
	}
	t2 := f.token("c1", "k", time.Hour)
	if _, claimed, err := f.s.Issue(f.ctx, t2, current(t2, 30*time.Minute)); err != nil || !claimed {
		t.Fatalf("Issue after Revoke: claimed=%v err=%v", claimed, err)
	}
}

func testRevokeOtherKeepsCurrent(t *testing.T, f *fixture) {
	cur := f.token("c1", "k", time.Hour)
	if _, _, err := f.s.Issue(f.ctx, cur, current(cur, 30*time.Minute)); err != nil {
		t.Fatalf("Issue: %v", err)
	}
	other := f.token("c1", "k", time.Hour)
	if _, _, err := f.s.Issue(f.ctx, other, nil); err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if err := f.s.Revoke(f.ctx, other.Hash); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	got, err := f.s.Current(f.ctx, "c1", "k")
	if err != nil || !bytes.Equal(got.TokenHash, cur.Hash) {
		t.Fatalf("Current after revoking another token: %x, %v", got.TokenHash, err)
	}
}

func testClearCurrents(t *testing.T, f *fixture) {
	for _, s := range []struct{ client, key string }{{"a", "k1"}, {"a", "k2"}, {"b", "k1"}} {
		tok := f.token(s.client, s.key, time.Hour)
		if _, _, err := f.s.Issue(f.ctx, tok, current(tok, 30*time.Minute)); err != nil {
			t.Fatalf("Issue: %v", err)
		}
	}
	if err := f.s.ClearCurrents(f.ctx, "a"); err != nil {
		t.Fatalf("ClearCurrents: %v", err)
	}
	for _, k := range []string{"k1", "k2"} {
		if _, err := f.s.Current(f.ctx, "a", k); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Current(a,%s) after ClearCurrents: %v", k, err)
		}
	}
	if _, err := f.s.Current(f.ctx, "b", "k1"); err != nil {
		t.Fatalf("ClearCurrents(a) removed b's row: %v", err)
	}
	if err := f.s.ClearCurrents(f.ctx, "nobody"); err != nil {
		t.Fatalf("ClearCurrents(unknown): %v", err)
	}
}

// issueClaim issues tok claiming its reuse slot for 30 minutes.
func (f *fixture) issueClaim(t *testing.T, tok store.Token) {
	t.Helper()
	if _, claimed, err := f.s.Issue(f.ctx, tok, current(tok, 30*time.Minute)); err != nil || !claimed {
		t.Fatalf("Issue(%s,%s): claimed=%v err=%v", tok.ClientID, tok.ReuseKey, claimed, err)
	}
}

func (f *fixture) issuePlain(t *testing.T, tok store.Token) {
	t.Helper()
	if _, _, err := f.s.Issue(f.ctx, tok, nil); err != nil {
		t.Fatalf("Issue(%s): %v", tok.ClientID, err)
	}
}

// wantRevoked checks that Token returns tok, unchanged but for Revoked.
func (f *fixture) wantRevoked(t *testing.T, tok store.Token, revoked bool) {
	t.Helper()
	got, err := f.s.Token(f.ctx, tok.Hash)
	if err != nil {
		t.Fatalf("Token(%s,%q): %v", tok.ClientID, tok.ReuseKey, err)
	}
	want := tok
	want.Revoked = revoked
	sameToken(t, got, want)
}

func testRevokeClient(t *testing.T, f *fixture) {
	// Client rc: two reuse slots, a token without reuse, one revoked
	// before. Clients rc2 (rc is a prefix of its id) and other: untouched.
	var mine []store.Token
	for _, key := range []string{"k1", "k2"} {
		tok := f.token("rc", key, time.Hour)
		f.issueClaim(t, tok)
		mine = append(mine, tok)
	}
	plain := f.token("rc", "", time.Hour)
	f.issuePlain(t, plain)
	mine = append(mine, plain)
	already := f.token("rc", "", time.Hour)
	f.issuePlain(t, already)
	if err := f.s.Revoke(f.ctx, already.Hash); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	var theirs []store.Token
	for _, client := range []string{"rc2", "other"} {
		tok := f.token(client, "k1", time.Hour)
		f.issueClaim(t, tok)
		theirs = append(theirs, tok)
		tok = f.token(client, "", time.Hour)
		f.issuePlain(t, tok)
		theirs = append(theirs, tok)
	}

	n, err := f.s.RevokeClient(f.ctx, "rc")
	if err != nil || n != len(mine) {
		t.Fatalf("RevokeClient = %d, %v; want %d, nil (the token revoked before is not counted)", n, err, len(mine))
	}
	for _, tok := range append(mine, already) {
		f.wantRevoked(t, tok, true)
	}
	for _, k := range []string{"k1", "k2"} {
		if _, err := f.s.Current(f.ctx, "rc", k); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Current(rc,%s) after RevokeClient: err = %v, want ErrNotFound", k, err)
		}
	}
	for _, tok := range theirs {
		f.wantRevoked(t, tok, false)
		if tok.ReuseKey == "" {
			continue
		}
		if got, err := f.s.Current(f.ctx, tok.ClientID, tok.ReuseKey); err != nil || !bytes.Equal(got.TokenHash, tok.Hash) {
			t.Fatalf("Current(%s,%s) after RevokeClient(rc) = %x, %v; want it kept", tok.ClientID, tok.ReuseKey, got.TokenHash, err)
		}
	}

	// Idempotent: nothing left to revoke.
	if n, err := f.s.RevokeClient(f.ctx, "rc"); err != nil || n != 0 {
		t.Fatalf("second RevokeClient = %d, %v; want 0, nil", n, err)
	}
	// The slot is free again: a new token claims it and is live.
	fresh := f.token("rc", "k1", time.Hour)
	f.issueClaim(t, fresh)
	f.wantRevoked(t, fresh, false)
	if got, err := f.s.Current(f.ctx, "rc", "k1"); err != nil || !bytes.Equal(got.TokenHash, fresh.Hash) {
		t.Fatalf("Current(rc,k1) after a new claim = %x, %v", got.TokenHash, err)
	}
	// Only the token issued since then is counted by a third call.
	if n, err := f.s.RevokeClient(f.ctx, "rc"); err != nil || n != 1 {
		t.Fatalf("third RevokeClient = %d, %v; want 1, nil", n, err)
	}
	f.wantRevoked(t, fresh, true)

	if n, err := f.s.RevokeClient(f.ctx, "nobody"); err != nil || n != 0 {
		t.Fatalf("RevokeClient(unknown) = %d, %v; want 0, nil", n, err)
	}
}

// testRevokeClientSkipsExpired: an expired token is not live: it is not
// counted (and stays gone).
func testRevokeClientSkipsExpired(t *testing.T, f *fixture) {
	w := f.window()
	short := f.token("rc", "", w)
	f.issuePlain(t, short)
	long := f.token("rc", "", time.Hour)
	f.issuePlain(t, long)
	f.waitUntil(t, w, func() bool {
		_, err := f.s.Token(f.ctx, short.Hash)
		return errors.Is(err, store.ErrNotFound)
	})
	if n, err := f.s.RevokeClient(f.ctx, "rc"); err != nil || n != 1 {
		t.Fatalf("RevokeClient = %d, %v; want 1 (the expired token is not live)", n, err)
	}
	f.wantRevoked(t, long, true)
	if _, err := f.s.Token(f.ctx, short.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Token(expired) after RevokeClient: err = %v, want ErrNotFound", err)
	}
}

// testRevokeClientConcurrentIssue: RevokeClient while the client keeps
// minting on several slots. Every token issued before the call is revoked,
// and once it has returned no reuse row hands out a revoked token.
func testRevokeClientConcurrentIssue(t *testing.T, f *fixture) {
	const slots = 4
	var before []store.Token
	for i := range slots {
		tok := f.token("rc", fmt.Sprintf("k%d", i), time.Hour)
		f.issueClaim(t, tok)
		before = append(before, tok)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, slots)
	for i := range slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				tok := f.token("rc", fmt.Sprintf("k%d", i), time.Hour)
				var cur *store.Current
				if j%2 == 0 {
					cur = current(tok, 30*time.Minute)
				} else {
					tok.ReuseKey = ""
				}
				if _, _, err := f.s.Issue(f.ctx, tok, cur); err != nil {
					errs[i] = err
					return
				}
			}
		}()
	}
	n, err := f.s.RevokeClient(f.ctx, "rc")
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("RevokeClient: %v", err)
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if n < slots {
		t.Fatalf("RevokeClient = %d, want at least the %d tokens issued before it", n, slots)
	}
	for _, tok := range before {
		f.wantRevoked(t, tok, true)
	}
	for i := range slots {
		cur, err := f.s.Current(f.ctx, "rc", fmt.Sprintf("k%d", i))
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("Current: %v", err)
		}
		tok, err := f.s.Token(f.ctx, cur.TokenHash)
		if err != nil {
			t.Fatalf("Token(current of k%d): %v", i, err)
		}
		if tok.Revoked {
			t.Fatalf("after RevokeClient the reuse row of k%d hands out a revoked token", i)
		}
	}
}

// testRevokeClientCanceled: a done context changes nothing.
func testRevokeClientCanceled(t *testing.T, f *fixture) {
	tok := f.token("rc", "k", time.Hour)
	f.issueClaim(t, tok)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n, err := f.s.RevokeClient(ctx, "rc")
	if !errors.Is(err, context.Canceled) || n != 0 {
		t.Fatalf("RevokeClient(canceled) = %d, %v; want 0, context.Canceled", n, err)
	}
	f.wantRevoked(t, tok, false)
	if got, err := f.s.Current(f.ctx, "rc", "k"); err != nil || !bytes.Equal(got.TokenHash, tok.Hash) {
		t.Fatalf("Current after a canceled RevokeClient = %x, %v; want the row kept", got.TokenHash, err)
	}
}

func sameClient(t *testing.T, got, want store.Client) {
	t.Helper()
	ok := got.ID == want.ID && got.SecretHash == want.SecretHash && fmt.Sprint(got.Scopes) == fmt.Sprint(want.Scopes) &&
		got.TokenTTL == want.TokenTTL && got.Introspect == want.Introspect &&
		got.CreatedAt.Equal(want.CreatedAt) && got.UpdatedAt.Equal(want.UpdatedAt) &&
		(got.Limit == nil) == (want.Limit == nil) && (got.Limit == nil || *got.Limit == *want.Limit) &&
		got.AuthMethod == want.AuthMethod && got.JWKS == want.JWKS && got.JWKSURI == want.JWKSURI &&
		fmt.Sprint(got.Resources) == fmt.Sprint(want.Resources) && len(got.Resources) == len(want.Resources)
	if !ok {
		t.Fatalf("client = %+v (limit %v), want %+v (limit %v)", got, got.Limit, want, want.Limit)
	}
}

func testClients(t *testing.T, f *fixture) {
	now := f.now()
	a := store.Client{ID: "alpha", SecretHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", Scopes: []string{"read", "write"},
		TokenTTL: 30 * time.Minute, Limit: &store.Limit{Rate: 0.5, Burst: 3}, Introspect: true, CreatedAt: now, UpdatedAt: now}
	b := store.Client{ID: "beta:with %odd+chars", SecretHash: "$2a$10$abc", Scopes: []string{"read"}, CreatedAt: now, UpdatedAt: now}
	if _, err := f.s.Client(f.ctx, "alpha"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Client(absent) err = %v", err)
	}
	for _, c := range []store.Client{b, a} {
		if err := f.s.CreateClient(f.ctx, c); err != nil {
			t.Fatalf("CreateClient(%s): %v", c.ID, err)
		}
	}
	if err := f.s.CreateClient(f.ctx, a); !errors.Is(err, store.ErrExists) {
		t.Fatalf("CreateClient(dup) err = %v, want ErrExists", err)
	}
	got, err := f.s.Client(f.ctx, "alpha")
	if err != nil {
		t.Fatalf("Client: %v", err)
	}
	sameClient(t, got, a)
	list, err := f.s.Clients(f.ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("Clients = %d, %v", len(list), err)
	}
	sameClient(t, list[0], a)
	sameClient(t, list[1], b)

	a.SecretHash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdDI$aGFzaDI"
	a.Limit = nil
	a.UpdatedAt = now.Add(time.Second)
	if err := f.s.UpdateClient(f.ctx, a, now); err != nil {
		t.Fatalf("UpdateClient: %v", err)
	}
	got, _ = f.s.Client(f.ctx, "alpha")
	sameClient(t, got, a)
	if err := f.s.UpdateClient(f.ctx, store.Client{ID: "ghost"}, time.Time{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateClient(absent) err = %v", err)
	}
	if err := f.s.DeleteClient(f.ctx, "alpha"); err != nil {
		t.Fatalf("DeleteClient: %v", err)
	}
	if _, err := f.s.Client(f.ctx, "alpha"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Client after delete err = %v", err)
	}
	if err := f.s.DeleteClient(f.ctx, "alpha"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeleteClient(absent) err = %v", err)
	}
	list, _ = f.s.Clients(f.ctx)
	if len(list) != 1 || list[0].ID != b.ID {
		t.Fatalf("Clients after delete = %+v", list)
	}
}

// testClientAuthFields: a private_key_jwt client's method, key source and
// resource indicators round-trip, and an update replaces each of them
// (jwks by jwks_uri, resources changed, then cleared).
func testClientAuthFields(t *testing.T, f *fixture) {
	now := f.now()
	const jwks = `{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"k1"}]}`
	c := store.Client{ID: "pkj", Scopes: []string{"read"}, AuthMethod: "private_key_jwt", JWKS: jwks,
		Resources: []string{"https://api.example/", "urn:example:billing"}, CreatedAt: now, UpdatedAt: now}
	plain := store.Client{ID: "plain", SecretHash: "$2a$10$abc", Scopes: []string{"read"}, CreatedAt: now, UpdatedAt: now}
	for _, cl := range []store.Client{c, plain} {
		if err := f.s.CreateClient(f.ctx, cl); err != nil {
			t.Fatalf("CreateClient(%s): %v", cl.ID, err)
		}
	}
	got, err := f.s.Client(f.ctx, "pkj")
	if err != nil {
		t.Fatalf("Client: %v", err)
	}
	sameClient(t, got, c)
	if got, err := f.s.Client(f.ctx, "plain"); err != nil {
		t.Fatalf("Client(plain): %v", err)
	} else {
		sameClient(t, got, plain)
	}
	list, err := f.s.Clients(f.ctx)
	if err != nil || len(list) != 2 || list[0].ID != "pkj" {
		t.Fatalf("Clients = %+v, %v", list, err)
	}
	sameClient(t, list[0], c)

	c.JWKS, c.JWKSURI = "", "https://idp.example/jwks"
	c.Resources = []string{"urn:example:other"}
	c.UpdatedAt = now.Add(time.Second)
	if err := f.s.UpdateClient(f.ctx, c, now); err != nil {
		t.Fatalf("UpdateClient(jwks_uri): %v", err)
	}
	got, _ = f.s.Client(f.ctx, "pkj")
	sameClient(t, got, c)

	// Back to a secret: method, key source and resources all cleared.
	c.AuthMethod, c.JWKSURI, c.Resources, c.SecretHash = "", "", nil, "$2a$10$def"
	c.UpdatedAt = now.Add(2 * time.Second)
	if err := f.s.UpdateClient(f.ctx, c, now.Add(time.Second)); err != nil {
		t.Fatalf("UpdateClient(secret): %v", err)
	}
	got, _ = f.s.Client(f.ctx, "pkj")
	sameClient(t, got, c)
}

// testClientUpdateConditional: UpdateClient writes only over the version
// it names. Two writers that read the same version: the first wins, the
// second gets ErrConflict and changes nothing (the first's keys stay);
// a deleted client is ErrNotFound, not a conflict, and is not brought back.
func testClientUpdateConditional(t *testing.T, f *fixture) {
	now := f.now()
	v1 := store.Client{ID: "cond", Scopes: []string{"read"}, AuthMethod: "private_key_jwt", JWKSURI: "https://idp.example/k1",
		CreatedAt: now, UpdatedAt: now}
	if err := f.s.CreateClient(f.ctx, v1); err != nil {
		t.Fatalf("CreateClient: %v", err)
	}
	rekey := v1 // writer B: new keys
	rekey.JWKSURI, rekey.UpdatedAt = "https://idp.example/k2", now.Add(time.Millisecond)
	scopes := v1 // writer A, from the same read: more scopes, the old keys
	scopes.Scopes, scopes.UpdatedAt = []string{"read", "write"}, now.Add(time.Millisecond)
	if err := f.s.UpdateClient(f.ctx, rekey, v1.UpdatedAt); err != nil {
		t.Fatalf("UpdateClient(B): %v", err)
	}
	if err := f.s.UpdateClient(f.ctx, scopes, v1.UpdatedAt); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("UpdateClient(A, from the version B replaced) err = %v, want ErrConflict", err)
	}
	got, err := f.s.Client(f.ctx, "cond")
	if err != nil {
		t.Fatal(err)
	}
	sameClient(t, got, rekey)
	// A reads again and re-applies its change over B's version.
	scopes.JWKSURI, scopes.UpdatedAt = rekey.JWKSURI, now.Add(2*time.Millisecond)
	if err := f.s.UpdateClient(f.ctx, scopes, got.UpdatedAt); err != nil {
		t.Fatalf("UpdateClient(A, re-applied): %v", err)
	}
	got, _ = f.s.Client(f.ctx, "cond")
	sameClient(t, got, scopes)
	if err := f.s.DeleteClient(f.ctx, "cond"); err != nil {
		t.Fatal(err)
	}
	late := scopes
	late.UpdatedAt = now.Add(3 * time.Millisecond)
	if err := f.s.UpdateClient(f.ctx, late, scopes.UpdatedAt); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateClient(deleted) err = %v, want ErrNotFound", err)
	}
	if _, err := f.s.Client(f.ctx, "cond"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Client after an update of a deleted client: %v, want ErrNotFound (not resurrected)", err)
	}
}

// testClientUpdateConcurrent: writers that all read one version race to
// replace it; exactly one succeeds, every other gets ErrConflict, and the
// stored client is the winner's.
func testClientUpdateConcurrent(t *testing.T, f *fixture) {
	now := f.now()
	v1 := store.Client{ID: "race", SecretHash: "$2a$10$abc", Scopes: []string{"read"}, CreatedAt: now, UpdatedAt: now}
	if err := f.s.CreateClient(f.ctx, v1); err != nil {
		t.Fatalf("CreateClient: %v", err)
	}
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := v1
			c.SecretHash = fmt.Sprintf("$2a$10$w%d", i)
			c.UpdatedAt = now.Add(time.Millisecond)
			errs[i] = f.s.UpdateClient(f.ctx, c, v1.UpdatedAt)
		}()
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("writers %d and %d both replaced the same version", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("writer %d: %v, want nil or ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no writer succeeded: %v", errs)
	}
	got, err := f.s.Client(f.ctx, "race")
	if err != nil || got.SecretHash != fmt.Sprintf("$2a$10$w%d", winner) {
		t.Fatalf("stored = %+v, %v; want writer %d's", got, err, winner)
	}
}

func testDeleteClientClearsCurrents(t *testing.T, f *fixture) {
	now := f.now()
	if err := f.s.CreateClient(f.ctx, store.Client{ID: "gone", SecretHash: "x", Scopes: []string{"read"}, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatalf("CreateClient: %v", err)
	}
	tok := f.token("gone", "k", time.Hour)
	if _, _, err := f.s.Issue(f.ctx, tok, current(tok, 30*time.Minute)); err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if err := f.s.DeleteClient(f.ctx, "gone"); err != nil {
		t.Fatalf("DeleteClient: %v", err)
	}
	if _, err := f.s.Current(f.ctx, "gone", "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Current after DeleteClient: %v", err)
	}
}

func testCanceledContext(t *testing.T, f *fixture) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tok := f.token("c1", "k", time.Hour)
	if _, _, err := f.s.Issue(ctx, tok, current(tok, time.Minute)); err == nil {
		t.Fatalf("Issue with a canceled context succeeded")
	}
	if _, err := f.s.Token(f.ctx, tok.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a canceled Issue persisted the token (err = %v)", err)
	}
}

func testClose(t *testing.T, f *fixture) {
	if err := f.s.Ping(f.ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := f.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := f.s.Token(f.ctx, hashOf("x")); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Token after Close err = %v, want ErrClosed", err)
	}
	if n, err := f.s.RevokeClient(f.ctx, "c1"); !errors.Is(err, store.ErrClosed) || n != 0 {
		t.Fatalf("RevokeClient after Close = %d, %v; want 0, ErrClosed", n, err)
	}
	if err := f.s.Ping(f.ctx); err == nil {
		t.Fatalf("Ping after Close succeeded")
	}
}
