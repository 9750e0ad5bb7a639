package reuse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/issue"
	"github.com/tokengw/tokengw/internal/seal"
	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/memory"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)} }
func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// faulty wraps a real store and fails on demand (fault injection, not a mock:
// every call that does not fail goes to the real store).
type faulty struct {
	Tokens
	mu   sync.Mutex
	fail bool
}

func (f *faulty) set(fail bool) { f.mu.Lock(); f.fail = fail; f.mu.Unlock() }
func (f *faulty) failing() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.fail }
func (f *faulty) Issue(ctx context.Context, t store.Token, c *store.Current) (store.Current, bool, error) {
	if f.failing() {
		return store.Current{}, false, fmt.Errorf("down: %w", store.ErrUnavailable)
	}
	return f.Tokens.Issue(ctx, t, c)
}
func (f *faulty) Current(ctx context.Context, id, k string) (store.Current, error) {
	if f.failing() {
		return store.Current{}, fmt.Errorf("down: %w", store.ErrUnavailable)
	}
	return f.Tokens.Current(ctx, id, k)
}

func testSealer(t testing.TB) *seal.Sealer {
	s, err := seal.New([][]byte{bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type env struct {
	clk *clock
	mem *memory.Store
	st  *faulty
	r   *Reuser
}

func newEnv(t testing.TB, enabled bool) *env {
	clk := newClock()
	mem := memory.New(memory.Options{Now: clk.Now})
	e := &env{clk: clk, mem: mem, st: &faulty{Tokens: mem}}
	e.r = e.reuser(t, enabled)
	return e
}

func (e *env) reuser(t testing.TB, enabled bool) *Reuser {
	r, err := New(Options{
		Enabled: enabled, Policy: Policy{MinRemaining: time.Minute, MaxElapsedFraction: 0.5},
		CacheSizeMB: 1, LocalTTL: 5 * time.Second, Store: e.st, Minter: issue.Opaque{},
		Sealer: testSealer(t), Now: e.clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func req(client string) Request {
	return Request{ClientID: client, Scope: "read write", Lifetime: time.Hour, Fingerprint: "fp1"}
}

func TestConcurrentRequestsShareOneToken(t *testing.T) {
	e := newEnv(t, true)
	const n = 200
	tokens := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := e.r.Token(context.Background(), req("c1"))
			tokens[i], errs[i] = res.Token, err
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		if tokens[i] != tokens[0] {
			t.Fatalf("request %d got another token", i)
		}
	}
	if got := e.mem.TokenCount(); got != 1 {
		t.Fatalf("stored tokens = %d, want 1", got)
	}
	if s := e.r.Stats(); s.Mints != 1 || s.L1Hits+s.L2Hits+s.Mints < 1 {
		t.Fatalf("stats = %+v, want exactly 1 mint", s)
	}
}

func TestExpiresInFallsWithTheClock(t *testing.T) {
	e := newEnv(t, true)
	first, err := e.r.Token(context.Background(), req("c1"))
	if err != nil {
		t.Fatal(err)
	}
	if got := first.ExpiresIn(e.clk.Now()); got != 3600 {
		t.Fatalf("fresh expires_in = %d, want 3600", got)
	}
	for _, step := range []struct {
		advance time.Duration
		want    int64
	}{{1500 * time.Millisecond, 3598}, {10 * time.Second, 3588}, {20 * time.Minute, 2388}} {
		e.clk.Advance(step.advance)
		res, err := e.r.Token(context.Background(), req("c1"))
		if err != nil {
			t.Fatal(err)
		}
		if res.Token != first.Token {
			t.Fatalf("after %v: another token", step.advance)
		}
		if got := res.ExpiresIn(e.clk.Now()); got != step.want {
			t.Fatalf("expires_in = %d, want %d", got, step.want)
		}
	}
	// Exactly at half the lifetime: a new token.
	e.clk.Advance(first.IssuedAt.Add(30 * time.Minute).Sub(e.clk.Now()))
	res, err := e.r.Token(context.Background(), req("c1"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Token == first.Token || res.Outcome != Minted || res.ExpiresIn(e.clk.Now()) != 3600 {
		t.Fatalf("at 30m: outcome %v, same token %v", res.Outcome, res.Token == first.Token)
	}
}

func TestManyConsumersStoreOneTokenEach(t *testing.T) {
	e := newEnv(t, true)
	var wg sync.WaitGroup
	errs := make(chan error, 50*200)
	for c := range 50 {
		for range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := e.r.Token(context.Background(), req(fmt.Sprintf("consumer-%d", c))); err != nil {
					errs <- err
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := e.mem.TokenCount(); got != 50 {
		t.Fatalf("stored tokens = %d, want 50", got)
	}
}

func TestDisabledMintsEveryTime(t *testing.T) {
	e := newEnv(t, false)
	seen := map[string]bool{}
	for range 20 {
		res, err := e.r.Token(context.Background(), req("c1"))
		if err != nil {
			t.Fatal(err)
		}
		if seen[res.Token] || res.Outcome != Minted {
			t.Fatalf("reused a token with reuse disabled")
		}
		seen[res.Token] = true
	}
	if got := e.mem.TokenCount(); got != 20 {
		t.Fatalf("stored tokens = %d, want 20", got)
	}
}

func TestAnotherProcessReusesFromTheStore(t *testing.T) {
	e := newEnv(t, true)
	a, err := e.r.Token(context.Background(), req("c1"))
	if err != nil {
		t.Fatal(err)
	}
	other := e.reuser(t, true) // a second replica (or a restart) on the same store
	e.clk.Advance(time.Minute)
	b, err := other.Token(context.Background(), req("c1"))
	if err != nil {
		t.Fatal(err)
	}
	if b.Token != a.Token || b.Outcome != L2Hit || b.ExpiresIn(e.clk.Now()) != 3540 {
		t.Fatalf("other process: outcome %v, same %v, expires_in %d", b.Outcome, b.Token == a.Token, b.ExpiresIn(e.clk.Now()))
	}
	c, _ := other.Token(context.Background(), req("c1"))
	if c.Outcome != L1Hit {
		t.Fatalf("second call on the other process: %v, want L1 hit", c.Outcome)
	}
}

func TestRevocationElsewhereIsSeenWithinLocalTTL(t *testing.T) {
	e := newEnv(t, true)
	a, _ := e.r.Token(context.Background(), req("c1"))
	if err := e.mem.Revoke(context.Background(), issue.Hash(a.Token)); err != nil {
		t.Fatal(err)
	}
	// Within local_ttl this replica may still serve its L1 copy...
	e.clk.Advance(4 * time.Second)
	if b, _ := e.r.Token(context.Background(), req("c1")); b.Token != a.Token {
		t.Fatalf("L1 entry dropped before local_ttl")
	}
	// ...but not after.
	e.clk.Advance(time.Second)
	b, err := e.r.Token(context.Background(), req("c1"))
	if err != nil {
		t.Fatal(err)
	}
	if b.Token == a.Token || b.Outcome != Minted {
		t.Fatalf("revoked token handed out after local_ttl (outcome %v)", b.Outcome)
	}
}

func TestEvictDropsL1AtOnce(t *testing.T) {
	e := newEnv(t, true)
	a, _ := e.r.Token(context.Background(), req("c1"))
	if err := e.mem.Revoke(context.Background(), issue.Hash(a.Token)); err != nil {
		t.Fatal(err)
	}
	e.r.Evict("c1", ReuseKey(req("c1")))
	b, _ := e.r.Token(context.Background(), req("c1"))
	if b.Token == a.Token {
		t.Fatal("evicted, revoked token handed out again")
	}
}

// TestStoreDownRefusesStaleL1AndMints: within local_ttl of its last store
// answer an L1 entry is served with the store down; past it, the re-check
// fails and the entry is not served (local_ttl bounds how long a token
// revoked through another replica is handed out here, outage or not), and
// a mint cannot be persisted: both ErrUnavailable (503 + Retry-After).
func TestStoreDownRefusesStaleL1AndMints(t *testing.T) {
	e := newEnv(t, true)
	a, _ := e.r.Token(context.Background(), req("c1"))
	e.st.set(true)
	e.clk.Advance(e.r.opts.LocalTTL / 2)
	if b, err := e.r.Token(context.Background(), req("c1")); err != nil || b.Token != a.Token || b.Outcome != L1Hit {
		t.Fatalf("store down, entry within local_ttl: %v %v, want the L1 token", b.Outcome, err)
	}
	e.clk.Advance(e.r.opts.LocalTTL) // past local_ttl: the re-check fails
	b, err := e.r.Token(context.Background(), req("c1"))
	if !errors.Is(err, store.ErrUnavailable) || b.Token != "" {
		t.Fatalf("store down, entry past local_ttl: token %q err %v, want ErrUnavailable and no token", b.Token, err)
	}
	_, err = e.r.Token(context.Background(), req("c2"))
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("mint with the store down: err = %v, want ErrUnavailable", err)
	}
	e.st.set(false)
	if b, err := e.r.Token(context.Background(), req("c1")); err != nil || b.Token != a.Token {
		t.Fatalf("after recovery: %v (token reused: %v)", err, b.Token == a.Token)
	}
	if _, err := e.r.Token(context.Background(), req("c2")); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	if e.r.Stats().StoreErrors < 2 {
		t.Fatalf("store errors not counted: %+v", e.r.Stats())
	}
}

// TestRevokedElsewhereNotServedThroughOutage is issue 18's cluster finding:
// a token revoked through another replica, after which the store stops
// answering, must not be handed out from L1 beyond local_ttl — not once,
// not for the length of the outage.
func TestRevokedElsewhereNotServedThroughOutage(t *testing.T) {
	e := newEnv(t, true)
	a, _ := e.r.Token(context.Background(), req("c1"))
	if err := e.mem.Revoke(context.Background(), issue.Hash(a.Token)); err != nil { // the other replica's revocation
		t.Fatal(err)
	}
	e.st.set(true) // then the store goes down
	for i := range 10 {
		e.clk.Advance(e.r.opts.LocalTTL)
		if b, err := e.r.Token(context.Background(), req("c1")); b.Token == a.Token {
			t.Fatalf("after %v of outage: the revoked token was handed out (%v, err %v)", time.Duration(i+1)*e.r.opts.LocalTTL, b.Outcome, err)
		}
	}
}

func TestFingerprintChangeStopsReuse(t *testing.T) {
	e := newEnv(t, true)
	a, _ := e.r.Token(context.Background(), req("c1"))
	r2 := req("c1")
	r2.Fingerprint = "fp2" // secret rotated or scopes changed
	b, _ := e.r.Token(context.Background(), r2)
	if b.Token == a.Token {
		t.Fatal("token reused across a registration change")
	}
	r3 := req("c1")
	r3.Scope = "read"
	c, _ := e.r.Token(context.Background(), r3)
	if c.Token == a.Token || c.Token == b.Token {
		t.Fatal("token reused for another scope")
	}
}

func TestShortLifetimeIsNeverReused(t *testing.T) {
	e := newEnv(t, true)
	r := req("c1")
	r.Lifetime = 30 * time.Second // shorter than min_remaining
	a, _ := e.r.Token(context.Background(), r)
	b, _ := e.r.Token(context.Background(), r)
	if a.Token == b.Token {
		t.Fatal("a token shorter than min_remaining was reused")
	}
}

func TestClaimLostToAnotherReplica(t *testing.T) {
	e := newEnv(t, true)
	other := e.reuser(t, true)
	a, _ := other.Token(context.Background(), req("c1"))
	// This replica has nothing in L1; its Current lookup is bypassed by
	// calling mint directly, as if the other replica won the race in between.
	b, err := e.r.mint(context.Background(), req("c1"), ReuseKey(req("c1")), e.r.gen.Current("c1"))
	if err != nil {
		t.Fatal(err)
	}
	if b.Token != a.Token {
		t.Fatal("loser of the claim did not hand out the winner's token")
	}
	if got := e.mem.TokenCount(); got != 1 {
		t.Fatalf("stored tokens = %d, want 1 (the loser must not persist)", got)
	}
}

// TestUnsealableRowIsCounted: a replica without the key that sealed the
// reuse row never hands that token out; it mints without a claim, and its
// counters say so (the operator's signal that it mints per request).
func TestUnsealableRowIsCounted(t *testing.T) {
	e := newEnv(t, true)
	a, err := e.r.Token(context.Background(), req("c1"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := seal.New([][]byte{bytes.Repeat([]byte{9}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	lacking, err := New(Options{
		Enabled: true, Policy: Policy{MinRemaining: time.Minute, MaxElapsedFraction: 0.5},
		CacheSizeMB: 1, LocalTTL: 5 * time.Second, Store: e.st, Minter: issue.Opaque{},
		Sealer: other, Now: e.clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lacking.Close() })
	for i := range 2 {
		b, err := lacking.Token(context.Background(), req("c1"))
		if err != nil || b.Token == a.Token || b.Outcome != Minted {
			t.Fatalf("request %d on the replica lacking the key: %v, %v (same token: %v)", i, b.Outcome, err, b.Token == a.Token)
		}
	}
	if st := lacking.Stats(); st.Unsealable < 2 || st.UnclaimedMints != 2 || st.Mints != 2 {
		t.Fatalf("stats = %+v, want every request counted as unsealable and as an unclaimed mint", st)
	}
	if st := e.r.Stats(); st.Unsealable != 0 || st.UnclaimedMints != 0 {
		t.Fatalf("the replica holding the key: %+v", st)
	}
}

func TestSealedCopyIsNotTheToken(t *testing.T) {
	e := newEnv(t, true)
	a, _ := e.r.Token(context.Background(), req("c1"))
	cur, err := e.mem.Current(context.Background(), "c1", ReuseKey(req("c1")))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(cur.Sealed, []byte(a.Token)) {
		t.Fatal("the reuse row holds the bearer token in clear")
	}
}

func TestEvictClientDropsAllItsL1Entries(t *testing.T) {
	e := newEnv(t, true)
	a, _ := e.r.Token(context.Background(), req("c1"))
	r2 := req("c1")
	r2.Scope = "read"
	b, _ := e.r.Token(context.Background(), r2)
	other, _ := e.r.Token(context.Background(), req("c2"))
	if n, err := e.mem.RevokeClient(context.Background(), "c1"); err != nil || n != 2 {
		t.Fatalf("RevokeClient = %d, %v", n, err)
	}
	e.r.EvictClient("c1")
	a2, _ := e.r.Token(context.Background(), req("c1"))
	b2, _ := e.r.Token(context.Background(), r2)
	if a2.Token == a.Token || b2.Token == b.Token || a2.Outcome != Minted {
		t.Fatal("a revoked client's token was handed out from L1")
	}
	if o, _ := e.r.Token(context.Background(), req("c2")); o.Token != other.Token || o.Outcome != L1Hit {
		t.Fatal("another client's L1 entry was dropped")
	}
	// New entries of c1 are cached again.
	if a3, _ := e.r.Token(context.Background(), req("c1")); a3.Token != a2.Token || a3.Outcome != L1Hit {
		t.Fatalf("after EvictClient: %v", a3.Outcome)
	}
}

// TestL1TokenSurvivesOverwrite: the token an L1 read returns is a view of
// the bytes bigcache handed out, so it must not change when the cache
// writes over that entry and fills its shards with other entries.
func TestL1TokenSurvivesOverwrite(t *testing.T) {
	e := newEnv(t, true)
	res, err := e.r.Token(context.Background(), req("c1"))
	if err != nil {
		t.Fatal(err)
	}
	_, ck := keys(req("c1"))
	got, ok := e.r.l1(ck)
	if !ok {
		t.Fatal("no L1 entry after a mint")
	}
	want := string([]byte(got.token)) // an independent copy
	if want != res.Token {
		t.Fatalf("L1 token %q, minted %q", want, res.Token)
	}
	other := Result{Token: string(bytes.Repeat([]byte{'x'}, len(res.Token))), IssuedAt: res.IssuedAt, ExpiresAt: res.ExpiresAt}
	e.r.setL1(ck, other, e.clk.Now(), 0)
	for i := range 20000 {
		e.r.setL1(fmt.Sprintf("fill-%d", i), other, e.clk.Now(), 0)
	}
	if got.token != want {
		t.Fatalf("the token read from L1 changed when the cache was overwritten: %q, was %q", got.token, want)
	}
}
