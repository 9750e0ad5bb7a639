package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/tokengw/tokengw/internal/app"
	"github.com/tokengw/tokengw/internal/config"
	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/memory"
)

// jwtClient registers a private_key_jwt client with an inline key set.
func jwtClient(id, jwks string) config.Client {
	return config.Client{ID: id, TokenEndpointAuthMethod: config.MethodPrivateKeyJWT, JWKS: jwks, Scopes: []string{"read", "write"}, Introspect: true}
}

// noFailedAuthLimit lets one address fail without 429s: the tests count
// 401s.
const noFailedAuthLimit = "TOKENGW_LIMITS__PER_IP_FAILED_AUTH__RATE=0"

// One assertion is accepted once: sent twice in a row, and 50 times at
// once, exactly one request gets a token; every other answer is 401
// invalid_client. On the bolt store.
func TestPrivateKeyJWTOnce(t *testing.T) {
	key := newECKey(t, "k1")
	cfg := testConfig(t, boltConfig(t, t.TempDir(), noFailedAuthLimit)...)
	cfg.Clients = append(cfg.Clients, jwtClient("svc", jwksOf(t, key)))
	g := start(t, cfg, nil)

	a := key.sign(t, clientClaims("svc", cfg.Issuer.URL, g.clk.Now()))
	if got := send(http.DefaultClient, g.url(), assertionBody(a)); got.status != 200 || got.tok.AccessToken == "" {
		t.Fatalf("first use: %d %s", got.status, got.raw)
	}
	if got := send(http.DefaultClient, g.url(), assertionBody(a)); got.status != 401 || got.tok.Error != "invalid_client" {
		t.Fatalf("second use: %d %s, want 401 invalid_client", got.status, got.raw)
	}

	a = key.sign(t, clientClaims("svc", cfg.Issuer.URL, g.clk.Now()))
	const n = 50
	answers := make([]answer, n)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			answers[i] = send(http.DefaultClient, g.url(), assertionBody(a))
		}()
	}
	close(gate)
	wg.Wait()
	ok := 0
	for i, got := range answers {
		switch {
		case got.err != nil:
			t.Fatalf("request %d: %v", i, got.err)
		case got.status == 200:
			ok++
		case got.status != 401 || got.tok.Error != "invalid_client":
			t.Fatalf("request %d: %d %s, want 200 or 401 invalid_client", i, got.status, got.raw)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d concurrent uses of one assertion got a token, want exactly 1", ok, n)
	}
}

// jwksServer serves a key set and counts its fetches.
type jwksServer struct {
	srv     *httptest.Server
	fetches atomic.Int64
	mu      sync.Mutex
	body    string
}

func newJWKSServer(t *testing.T, jwks string) *jwksServer {
	js := &jwksServer{body: jwks}
	js.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		js.fetches.Add(1)
		js.mu.Lock()
		body := js.body
		js.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "max-age=3600")
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(js.srv.Close)
	return js
}

func (js *jwksServer) set(jwks string) {
	js.mu.Lock()
	js.body = jwks
	js.mu.Unlock()
}

// The refusals of the table, each by the check meant to refuse it
// (the description says which), through the token endpoint: 401
// invalid_client every time. A valid assertion of each client is accepted
// first, so the setup is not what refuses them.
func TestPrivateKeyJWTRefusals(t *testing.T) {
	inline, remote, other := newECKey(t, "inline-1"), newRSAKey(t, "remote-1"), newECKey(t, "inline-1")
	js := newJWKSServer(t, jwksOf(t, remote))
	cfg := testConfig(t, noFailedAuthLimit, "TOKENGW_ASSERTIONS__ALLOW_HTTP_JWKS_URI=true", "TOKENGW_SERVER__MAX_BODY_BYTES=32768")
	cfg.Clients = append(cfg.Clients, jwtClient("inline", jwksOf(t, inline)),
		config.Client{ID: "remote", TokenEndpointAuthMethod: config.MethodPrivateKeyJWT, JWKSURI: js.srv.URL, Scopes: []string{"read"}})
	g := start(t, cfg, nil)
	aud := cfg.Issuer.URL
	now := g.clk.Now()

	for _, c := range []struct {
		id  string
		key *signingKey
	}{{"inline", inline}, {"remote", remote}} {
		if got := send(http.DefaultClient, g.url(), assertionBody(c.key.sign(t, clientClaims(c.id, aud, now)))); got.status != 200 {
			t.Fatalf("valid assertion of %s: %d %s", c.id, got.status, got.raw)
		}
	}
	if n := js.fetches.Load(); n != 1 {
		t.Fatalf("jwks_uri fetched %d times, want 1", n)
	}
	// Past assertions.jwks_min_refresh (1m) since that fetch, an unknown
	// kid may make one refetch. (The set itself is fresh for its max-age.)
	g.clk.Advance(2 * time.Minute)

	with := func(id string, edit func(map[string]any)) map[string]any {
		c := clientClaims(id, aud, now)
		edit(c)
		return c
	}
	big := strings.Repeat("x", 9<<10)
	cases := []struct {
		name, body, want string
	}{
		{"alg none", assertionBody(unsigned(t, clientClaims("inline", aud, now))), "alg \"none\" is not accepted"},
		{"HS256 with the public key as secret", assertionBody(inline.signAs(t, jwa.HS256(), inline.publicJWK(t), "inline-1", clientClaims("inline", aud, now))), "alg \"HS256\" is not accepted"},
		{"wrong aud", assertionBody(inline.sign(t, with("inline", func(c map[string]any) { c["aud"] = "https://elsewhere.example" }))), "aud does not name"},
		{"two audiences", assertionBody(inline.sign(t, with("inline", func(c map[string]any) { c["aud"] = []string{aud, g.url()} }))), "exactly one value"},
		{"no exp", assertionBody(inline.sign(t, with("inline", func(c map[string]any) { delete(c, "exp") }))), "exp is missing"},
		{"expired", assertionBody(inline.sign(t, with("inline", func(c map[string]any) {
			c["iat"], c["exp"] = now.Add(-10*time.Minute).Unix(), now.Add(-5*time.Minute).Unix()
		}))), "expired"},
		{"iat in the future", assertionBody(inline.sign(t, with("inline", func(c map[string]any) {
			c["iat"], c["exp"] = now.Add(5*time.Minute).Unix(), now.Add(10*time.Minute).Unix()
		}))), "iat is in the future"},
		{"lifetime above the maximum", assertionBody(inline.sign(t, with("inline", func(c map[string]any) { c["exp"] = now.Add(2 * time.Hour).Unix() }))), "lifetime above"},
		{"iss differs from sub", assertionBody(inline.sign(t, with("inline", func(c map[string]any) { c["iss"] = "someone-else" }))), "iss and sub"},
		{"client_id differs from sub", assertionBody(inline.sign(t, clientClaims("inline", aud, now)), "client_id", "remote"), "client_id does not match"},
		{"unknown kid after one refetch", assertionBody(remote.signAs(t, remote.alg, remote.raw, "rotated-away", clientClaims("remote", aud, now))), "no registered key with this kid"},
		{"another key's signature", assertionBody(other.sign(t, clientClaims("inline", aud, now))), "signature does not verify"},
		{"no jti", assertionBody(inline.sign(t, with("inline", func(c map[string]any) { delete(c, "jti") }))), "jti is missing"},
		{"not a compact JWS", assertionBody(`{"payload":"e30","signatures":[]}`), "not a JWS compact serialization"},
		{"over 8 KiB", assertionBody(inline.sign(t, with("inline", func(c map[string]any) { c["pad"] = big }))), "larger than 8192 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := send(http.DefaultClient, g.url(), tc.body)
			if got.status != 401 || got.tok.Error != "invalid_client" {
				t.Fatalf("%d %s, want 401 invalid_client", got.status, got.raw)
			}
			if !strings.Contains(got.tok.Description, tc.want) {
				t.Fatalf("error_description %q does not say %q", got.tok.Description, tc.want)
			}
		})
	}
	// The unknown kid made exactly one refetch; a second unknown kid
	// within assertions.jwks_min_refresh makes none.
	if n := js.fetches.Load(); n != 2 {
		t.Fatalf("jwks_uri fetched %d times, want 2 (one refetch for the unknown kid)", n)
	}
	got := send(http.DefaultClient, g.url(), assertionBody(remote.signAs(t, remote.alg, remote.raw, "another-unknown", clientClaims("remote", aud, now))))
	if got.status != 401 || js.fetches.Load() != 2 {
		t.Fatalf("second unknown kid: %d, %d fetches; want 401 and still 2 fetches", got.status, js.fetches.Load())
	}
	// A key added to the set is found by the refetch an unknown kid
	// makes once jwks_min_refresh has passed.
	added := newRSAKey(t, "remote-2")
	js.set(jwksOf(t, remote, added))
	g.clk.Advance(2 * time.Minute)
	if got := send(http.DefaultClient, g.url(), assertionBody(added.sign(t, clientClaims("remote", aud, g.clk.Now())))); got.status != 200 {
		t.Fatalf("new key after min refresh: %d %s", got.status, got.raw)
	}
}

// flakyJTIs fails the next n jti claims with store.ErrUnavailable: the
// failure comes after the signature check, as a store outage would.
type flakyJTIs struct {
	store.Store
	fail atomic.Int64
}

func (f *flakyJTIs) ClaimAssertion(ctx context.Context, scope string, h []byte, until time.Time) error {
	if f.fail.Add(-1) >= 0 {
		return fmt.Errorf("test: injected: %w", store.ErrUnavailable)
	}
	return f.Store.(store.Assertions).ClaimAssertion(ctx, scope, h, until)
}

// A store failure on the jti claim is 503 temporarily_unavailable, the
// assertion is not used up by it, and the same assertion sent again gets a
// token (then, a third time, 401).
func TestPrivateKeyJWTStoreFailure(t *testing.T) {
	key := newRSAKey(t, "k")
	clk := newClock()
	st := &flakyJTIs{Store: memory.New(memory.Options{Now: clk.Now})}
	cfg := testConfig(t)
	cfg.Clients = append(cfg.Clients, jwtClient("svc", jwksOf(t, key)))
	a, err := app.New(context.Background(), cfg, app.Options{Now: clk.Now, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Server.Handler())
	t.Cleanup(func() { srv.Close(); a.Close() })
	target := srv.URL + "/oauth2/token"

	as := key.sign(t, clientClaims("svc", cfg.Issuer.URL, clk.Now()))
	st.fail.Store(1)
	got := send(http.DefaultClient, target, assertionBody(as))
	if got.status != 503 || got.tok.Error != "temporarily_unavailable" || got.header.Get("Retry-After") == "" {
		t.Fatalf("claim failing: %d %s, want 503 temporarily_unavailable with Retry-After", got.status, got.raw)
	}
	if n := a.Assertions.Verifier.Verifications(); n != 1 {
		t.Fatalf("%d signature verifications, want 1: the failure must come after the signature", n)
	}
	if got := send(http.DefaultClient, target, assertionBody(as)); got.status != 200 || got.tok.AccessToken == "" {
		t.Fatalf("retry after the failure: %d %s, want a token", got.status, got.raw)
	}
	if got := send(http.DefaultClient, target, assertionBody(as)); got.status != 401 {
		t.Fatalf("third use: %d %s, want 401", got.status, got.raw)
	}
}

// Revocation and introspection accept client assertions too; an assertion
// whose aud is the URL of the endpoint it is sent to is accepted there.
func TestPrivateKeyJWTRevokeAndIntrospect(t *testing.T) {
	key := newECKey(t, "k")
	cfg := testConfig(t)
	cfg.Clients = append(cfg.Clients, jwtClient("svc", jwksOf(t, key)))
	g := start(t, cfg, nil)
	tokAns := send(http.DefaultClient, g.url(), assertionBody(key.sign(t, clientClaims("svc", cfg.Issuer.URL, g.clk.Now()))))
	if tokAns.status != 200 {
		t.Fatalf("token: %d %s", tokAns.status, tokAns.raw)
	}
	call := func(endpoint, aud string) answer {
		v := url.Values{
			"client_assertion_type": {clientAssertionType},
			"client_assertion":      {key.sign(t, clientClaims("svc", aud, g.clk.Now()))},
			"token":                 {tokAns.tok.AccessToken},
		}
		return send(http.DefaultClient, g.srv.URL+endpoint, v.Encode())
	}
	iss := cfg.Issuer.URL
	if got := call("/oauth2/introspect", iss+"/oauth2/introspect"); got.status != 200 ||
		!strings.Contains(got.raw, `"active":true`) || !strings.Contains(got.raw, `"client_id":"svc"`) {
		t.Fatalf("introspect: %d %s", got.status, got.raw)
	}
	// The revocation endpoint's URL is no audience at introspection.
	if got := call("/oauth2/introspect", iss+"/oauth2/revoke"); got.status != 401 || got.tok.Error != "invalid_client" {
		t.Fatalf("introspect with aud = revocation endpoint: %d %s", got.status, got.raw)
	}
	if got := call("/oauth2/revoke", iss+"/oauth2/revoke"); got.status != 200 {
		t.Fatalf("revoke: %d %s", got.status, got.raw)
	}
	if got := call("/oauth2/introspect", iss); got.status != 200 || got.raw != "{\"active\":false}\n" {
		t.Fatalf("introspect after revoke: %d %q", got.status, got.raw)
	}
}

// A signature verification is charged to the caller's failed-auth budget
// before it runs and refunded when it verifies: valid assertions cost
// nothing, bad signatures spend the budget, and once it is spent the next
// assertion is refused with 429 before its signature is checked. A
// private_key_jwt client has no secret to authenticate with.
func TestPrivateKeyJWTBudget(t *testing.T) {
	key, other := newECKey(t, "k"), newECKey(t, "k")
	cfg := testConfig(t, "TOKENGW_LIMITS__PER_IP_FAILED_AUTH__RATE=0.001", "TOKENGW_LIMITS__PER_IP_FAILED_AUTH__BURST=3")
	cfg.Clients = append(cfg.Clients, jwtClient("svc", jwksOf(t, key)))
	g := start(t, cfg, nil)
	iss := cfg.Issuer.URL
	for i := range 5 {
		if got := send(http.DefaultClient, g.url(), assertionBody(key.sign(t, clientClaims("svc", iss, g.clk.Now())))); got.status != 200 {
			t.Fatalf("valid assertion %d: %d %s", i, got.status, got.raw)
		}
	}
	for i := range 3 {
		if got := send(http.DefaultClient, g.url(), assertionBody(other.sign(t, clientClaims("svc", iss, g.clk.Now())))); got.status != 401 {
			t.Fatalf("bad signature %d: %d %s, want 401", i, got.status, got.raw)
		}
	}
	before := g.app.Assertions.Verifier.Verifications()
	got := send(http.DefaultClient, g.url(), assertionBody(other.sign(t, clientClaims("svc", iss, g.clk.Now()))))
	if got.status != 429 || got.header.Get("Retry-After") == "" {
		t.Fatalf("with the budget spent: %d %s, want 429 with Retry-After", got.status, got.raw)
	}
	if n := g.app.Assertions.Verifier.Verifications(); n != before {
		t.Fatalf("%d signatures verified after the budget was spent, want none", n-before)
	}

	cfg3 := testConfig(t, noFailedAuthLimit)
	cfg3.Clients = append(cfg3.Clients, jwtClient("svc", jwksOf(t, key)))
	g3 := start(t, cfg3, nil)
	if resp, tj := post(t, g3.url(), basic("svc", ""), "grant_type=client_credentials"); resp.StatusCode != 401 || tj.Error != "invalid_client" {
		t.Fatalf("private_key_jwt client with an empty secret: %d %s", resp.StatusCode, tj.Error)
	}
}
