package server_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/app"
	"github.com/tokengw/tokengw/internal/config"
)

const workloadIssuer = "https://kubernetes.default.svc.cluster.local"

// workloadConfig trusts workloadIssuer's key for the jwt-bearer grant.
func workloadConfig(t testing.TB, key *signingKey, replay string, env ...string) *config.Config {
	cfg := testConfig(t, env...)
	cfg.TrustedIssuers = []config.TrustedIssuer{{
		Issuer: workloadIssuer, JWKS: jwksOf(t, key), Subjects: []string{"system:serviceaccount:ns:app"},
		Scopes: []string{"read", "write"}, TokenTTL: 30 * time.Minute, Replay: replay,
	}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func workloadClaims(aud string, now time.Time) map[string]any {
	return map[string]any{
		"iss": workloadIssuer, "sub": "system:serviceaccount:ns:app", "aud": aud,
		"iat": now.Unix(), "exp": now.Add(50 * time.Minute).Unix(), "jti": newJTI(),
	}
}

func bearerBody(assertion string, extra ...string) string {
	v := url.Values{"grant_type": {jwtBearerGrant}, "assertion": {assertion}}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return v.Encode()
}

// A replay: allow issuer's token presented 10,000 times: one signature
// verification (the metric says so), one token minted, the same access
// token every time, its expires_in recomputed.
func TestJWTBearerReplayAllow(t *testing.T) {
	key := newRSAKey(t, "sa-1")
	cfg := workloadConfig(t, key, "allow")
	g := start(t, cfg, nil)
	as := key.sign(t, workloadClaims(cfg.Issuer.URL, g.clk.Now()))
	body := bearerBody(as, "scope", "read")

	first := send(http.DefaultClient, g.url(), body)
	if first.status != 200 || first.tok.AccessToken == "" || first.tok.Scope != "read" || first.tok.ExpiresIn != 1800 {
		t.Fatalf("first: %d %s", first.status, first.raw)
	}
	const n = 10_000
	for i := 1; i < n; i++ {
		if i == n/2 {
			g.clk.Advance(10 * time.Second)
		}
		got := send(http.DefaultClient, g.url(), body)
		if got.status != 200 || got.tok.AccessToken != first.tok.AccessToken {
			t.Fatalf("presentation %d: %d %s, want the first token again", i+1, got.status, got.raw)
		}
		if i == n-1 && got.tok.ExpiresIn != 1790 {
			t.Fatalf("expires_in = %d after 10s, want 1790", got.tok.ExpiresIn)
		}
	}
	if v := g.app.Assertions.Verifier.Verifications(); v != 1 {
		t.Fatalf("%d signature verifications for one token presented %d times, want 1", v, n)
	}
	if m := g.app.Reuser.Stats().Mints; m != 1 {
		t.Fatalf("%d tokens minted, want 1", m)
	}
	if got := metric(t, g.app, "tokengw_assertion_signature_verifications_total"); got != "1" {
		t.Fatalf("tokengw_assertion_signature_verifications_total = %q, want 1", got)
	}
	if got := metric(t, g.app, "tokengw_assertion_cache_hits_total"); got != "9999" {
		t.Fatalf("tokengw_assertion_cache_hits_total = %q, want 9999", got)
	}
	// Another subject's token is its own.
	other := workloadClaims(cfg.Issuer.URL, g.clk.Now())
	other["sub"] = "system:serviceaccount:ns:other"
	if got := send(http.DefaultClient, g.url(), bearerBody(key.sign(t, other))); got.status != 400 || got.tok.Error != "invalid_grant" {
		t.Fatalf("unlisted subject: %d %s, want 400 invalid_grant", got.status, got.raw)
	}
}

// metric reads one sample of the admin listener's /metrics.
func metric(t *testing.T, a *app.App, name string) string {
	t.Helper()
	srv := httptest.NewServer(a.Server.AdminHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return v
		}
	}
	return ""
}

// replay: reject makes the grant's assertions one-time, like client
// assertions; the refusals of the grant are invalid_grant.
func TestJWTBearerReplayReject(t *testing.T) {
	key := newECKey(t, "sa-1")
	cfg := workloadConfig(t, key, "reject", noFailedAuthLimit)
	g := start(t, cfg, nil)
	as := key.sign(t, workloadClaims(cfg.Issuer.URL, g.clk.Now()))
	if got := send(http.DefaultClient, g.url(), bearerBody(as)); got.status != 200 || got.tok.Scope != "read write" {
		t.Fatalf("first: %d %s", got.status, got.raw)
	}
	if got := send(http.DefaultClient, g.url(), bearerBody(as)); got.status != 400 || got.tok.Error != "invalid_grant" ||
		!strings.Contains(got.tok.Description, "already used") {
		t.Fatalf("replay: %d %s, want 400 invalid_grant", got.status, got.raw)
	}
	untrusted := workloadClaims(cfg.Issuer.URL, g.clk.Now())
	untrusted["iss"] = "https://attacker.example"
	noJTI := workloadClaims(cfg.Issuer.URL, g.clk.Now())
	delete(noJTI, "jti")
	for name, c := range map[string]struct {
		body, want string
		status     int
		code       string
	}{
		"untrusted issuer": {bearerBody(key.sign(t, untrusted)), "not a trusted issuer", 400, "invalid_grant"},
		"no jti":           {bearerBody(key.sign(t, noJTI)), "jti is missing", 400, "invalid_grant"},
		"scope beyond":     {bearerBody(key.sign(t, workloadClaims(cfg.Issuer.URL, g.clk.Now())), "scope", "admin"), "exceeds", 400, "invalid_scope"},
		"no assertion":     {url.Values{"grant_type": {jwtBearerGrant}}.Encode(), "missing assertion", 400, "invalid_request"},
	} {
		got := send(http.DefaultClient, g.url(), c.body)
		if got.status != c.status || got.tok.Error != c.code || !strings.Contains(got.tok.Description, c.want) {
			t.Errorf("%s: %d %s, want %d %s (%q)", name, got.status, got.raw, c.status, c.code, c.want)
		}
	}
}

// Without trusted_issuers the grant is not offered.
func TestJWTBearerNotConfigured(t *testing.T) {
	g := start(t, testConfig(t), nil)
	if got := send(http.DefaultClient, g.url(), bearerBody("a.b.c")); got.status != 400 || got.tok.Error != "unsupported_grant_type" {
		t.Fatalf("%d %s, want unsupported_grant_type", got.status, got.raw)
	}
	resp, err := http.Get(g.srv.URL + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(raw), jwtBearerGrant) || !strings.Contains(string(raw), `"token_endpoint_auth_signing_alg_values_supported":["RS256"`) {
		t.Fatalf("metadata without trusted issuers: %s", raw)
	}
	key := newECKey(t, "k")
	g2 := start(t, workloadConfig(t, key, "allow"), nil)
	resp, err = http.Get(g2.srv.URL + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(raw), jwtBearerGrant) {
		t.Fatalf("metadata with trusted issuers lacks the grant: %s", raw)
	}
}

// With JWT access tokens, the token of the jwt-bearer grant is the
// assertion's subject's (sub), as a resource server validating it with jwx
// sees; a resource parameter the issuer may not ask for is invalid_target.
func TestJWTBearerAccessTokenSubject(t *testing.T) {
	key := newECKey(t, "sa-1")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	iss := "http://" + ln.Addr().String()
	cfg := workloadConfig(t, key, "allow", "TOKENGW_ISSUER__TOKEN_FORMAT=jwt", "TOKENGW_ISSUER__URL="+iss,
		"TOKENGW_ISSUER__AUDIENCE=https://default.example")
	clk := newClock()
	a, err := app.New(context.Background(), cfg, app.Options{Now: clk.Now})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(a.Server.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() { srv.Close(); a.Close() })

	as := key.sign(t, workloadClaims(iss, clk.Now()))
	got := send(http.DefaultClient, iss+"/oauth2/token", bearerBody(as, "scope", "read"))
	if got.status != 200 {
		t.Fatalf("%d %s", got.status, got.raw)
	}
	tok, err := discover(t, iss).validate(got.tok.AccessToken, "https://default.example", clk.Now)
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	sub, _ := tok.Subject()
	var scope string
	_ = tok.Get("scope", &scope)
	if sub != "system:serviceaccount:ns:app" || scope != "read" {
		t.Fatalf("sub %q scope %q, want the assertion's subject and read", sub, scope)
	}
	if got := send(http.DefaultClient, iss+"/oauth2/token", bearerBody(as, "resource", "https://api-a.example/")); got.status != 400 || got.tok.Error != "invalid_target" {
		t.Fatalf("resource: %d %s, want 400 invalid_target", got.status, got.raw)
	}
}
