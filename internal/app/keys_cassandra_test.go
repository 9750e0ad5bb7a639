//go:build cassandra

package app_test

import (
	"context"
	"io"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/tokengw/tokengw/internal/app"
	"github.com/tokengw/tokengw/internal/config"
)

// fakeClock is the replicas' shared clock: it starts at the real time (the
// Cassandra TTLs run on the server's clock, and only ever get longer when
// the fake clock is ahead) and is moved by the test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// startClocked is startReplica with the injected clock.
func startClocked(t *testing.T, cfg *config.Config, clk *fakeClock) *replica {
	t.Helper()
	a, err := app.New(context.Background(), cfg, app.Options{Now: clk.Now})
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	r := &replica{app: a, srv: httptest.NewServer(a.Server.Handler())}
	t.Cleanup(r.close)
	return r
}

// minted is a token and the kid that signed it.
type minted struct {
	token, kid string
	exp        time.Time
}

// TestKeyRotationTwoReplicas: two replicas share a Cassandra key ring. They
// sign with the same key before and after a rotation (by hand, then on
// schedule); a token signed before a rotation keeps validating, against
// either replica's JWKS, until it expires; the JWKS never lacks the key of
// a live token; a scheduled rotation due on both replicas at once is done
// once.
func TestKeyRotationTwoReplicas(t *testing.T) {
	addr := cassandraAddr(t)
	ks := newKeyspace(t, addr)
	seal := newSealKey()
	clk := &fakeClock{t: time.Now().Truncate(time.Second)}
	env := []string{
		"TOKENGW_ISSUER__TOKEN_FORMAT=jwt", "TOKENGW_ISSUER__URL=https://issuer.example",
		"TOKENGW_ISSUER__AUDIENCE=https://api.example", "TOKENGW_ISSUER__TOKEN_TTL=1h",
		"TOKENGW_ISSUER__SIGNING__ROTATION_PERIOD=6h", "TOKENGW_REUSE__ENABLED=false",
	}
	a := startClocked(t, gatewayConfig(t, addr, ks, seal, env...), clk)
	b := startClocked(t, gatewayConfig(t, addr, ks, seal, env...), clk)
	hc := newHTTPClient(t, 4)
	ctx := context.Background()

	var live []minted
	mint := func(r *replica) minted {
		t.Helper()
		tr := mustToken(t, hc, r, "demo", demoSecret, "read")
		if tr.Status != 200 {
			t.Fatalf("token: %s", tr)
		}
		msg, err := jws.Parse([]byte(tr.AccessToken))
		if err != nil {
			t.Fatal(err)
		}
		kid, _ := msg.Signatures()[0].ProtectedHeaders().KeyID()
		m := minted{token: tr.AccessToken, kid: kid, exp: clk.Now().Add(time.Hour)}
		live = append(live, m)
		return m
	}
	jwks := func(r *replica) jwk.Set {
		t.Helper()
		status, h := get(t, hc, r.url("/.well-known/jwks.json"))
		if status != 200 || h.Get("Cache-Control") != "public, max-age=300" {
			t.Fatalf("jwks: %d %q", status, h.Get("Cache-Control"))
		}
		resp, err := hc.Get(r.url("/.well-known/jwks.json"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		set, err := jwk.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		return set
	}
	// checkLive: every unexpired token validates against both replicas'
	// key sets (a different JOSE library than the one that signed); expired
	// ones are refused.
	checkLive := func(step string) {
		t.Helper()
		for _, r := range []*replica{a, b} {
			set := jwks(r)
			for _, m := range live {
				_, err := jwt.Parse([]byte(m.token), jwt.WithKeySet(set), jwt.WithValidate(true),
					jwt.WithIssuer("https://issuer.example"), jwt.WithAudience("https://api.example"),
					jwt.WithClock(jwt.ClockFunc(clk.Now)), jwt.WithAcceptableSkew(0))
				alive := clk.Now().Before(m.exp)
				if alive && err != nil {
					t.Fatalf("%s: live token of kid %s does not validate against %s's JWKS: %v", step, m.kid, r.srv.URL, err)
				}
				if !alive && err == nil {
					t.Fatalf("%s: an expired token validated", step)
				}
			}
		}
	}
	sameKey := func(step, want string) string {
		t.Helper()
		ma, mb := mint(a), mint(b)
		if ma.kid != mb.kid || (want != "" && ma.kid != want) {
			t.Fatalf("%s: replicas sign with %s and %s, want both %s", step, ma.kid, mb.kid, want)
		}
		return ma.kid
	}
	tick := func() {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, r := range []*replica{a, b} {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = r.app.Keys.Tick(ctx) }()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("Tick: %v", err)
			}
		}
	}

	k1 := sameKey("start", "")
	if n := len(a.app.Keys.Keys()); n != 1 {
		t.Fatalf("two replicas starting on an empty ring made %d keys, want 1", n)
	}
	checkLive("start")

	// By hand on replica a: the new key is published at once on a, and on
	// b at its next refresh, but signs only after the lead.
	k2, err := a.app.Keys.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tick()
	sameKey("after rotate, before the lead", k1)
	checkLive("rotated, pending")
	clk.Advance(a.app.Keys.Lead())
	tick()
	sameKey("after the lead", k2.ID)
	checkLive("rotated, active")

	// Half an hour on: the first tokens still validate; past their hour
	// they do not.
	clk.Advance(30 * time.Minute)
	tick()
	checkLive("k1 tokens half-way")
	clk.Advance(31 * time.Minute)
	tick()
	checkLive("k1 tokens expired")

	// The schedule: 6h after k2 activated, minus the lead, a rotation is
	// due on both replicas at once; one of them adds the key.
	clk.Advance(6*time.Hour - 61*time.Minute - a.app.Keys.Lead())
	tick()
	keys := b.app.Keys.Keys()
	if len(keys) != 3 {
		t.Fatalf("after a scheduled rotation due on two replicas the ring has %d keys, want 3", len(keys))
	}
	k3 := keys[2]
	if k3.Slot != "successor/"+k2.ID || k3.ActivateAt.Sub(k2.ActivateAt) != 6*time.Hour {
		t.Fatalf("scheduled key: slot %q, activates %v after k2", k3.Slot, k3.ActivateAt.Sub(k2.ActivateAt))
	}
	tick() // a second refresh finds nothing due
	if n := len(a.app.Keys.Keys()); n != 3 {
		t.Fatalf("ring has %d keys after another refresh, want 3", n)
	}
	sameKey("scheduled, pending", k2.ID)
	clk.Advance(a.app.Keys.Lead())
	tick()
	sameKey("scheduled, active", k3.ID)
	checkLive("scheduled, active")

	// k1 retired when k2 activated; it stays published for the longest
	// token lifetime plus jwks_max_age, then leaves the ring.
	for _, k := range a.app.Keys.Keys() {
		if k.ID == k1 && !k.RemoveAt.Equal(k2.ActivateAt.Add(app.MaxTokenTTL+300*time.Second)) {
			t.Fatalf("k1 is removed at %v, want k2's activation + %v", k.RemoveAt, app.MaxTokenTTL+300*time.Second)
		}
	}
	clk.Advance(app.MaxTokenTTL)
	tick()
	for _, r := range []*replica{a, b} {
		if _, ok := jwks(r).LookupKeyID(k1); ok {
			t.Fatalf("k1 still published %v after it retired", app.MaxTokenTTL+300*time.Second)
		}
	}
	checkLive("k1 removed") // every token is expired by now; none validates
}
