package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/tokengw/tokengw/internal/app"
	"github.com/tokengw/tokengw/internal/issue"
)

const (
	apiA = "https://api-a.example/"
	apiB = "https://api-b.example/v1"
)

// startJWT serves a JWT-issuing gateway on a real loopback listener whose
// address is the issuer URL (plus path, when given).
func startJWT(t testing.TB, clk *clock, path string, env ...string) (*gw, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	iss := "http://" + ln.Addr().String() + path
	cfg := testConfig(t, append([]string{"TOKENGW_ISSUER__TOKEN_FORMAT=jwt", "TOKENGW_ISSUER__URL=" + iss}, env...)...)
	cfg.Clients[0].Resources = []string{apiA, apiB}
	if clk == nil {
		clk = newClock()
	}
	a, err := app.New(context.Background(), cfg, app.Options{Now: clk.Now})
	if err != nil {
		ln.Close()
		t.Fatalf("app.New: %v", err)
	}
	srv := httptest.NewUnstartedServer(a.Server.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		a.Close()
	})
	return &gw{app: a, srv: srv, clk: clk}, iss
}

// resourceServer is what an API does with nothing but the issuer URL:
// discovery (RFC 8414), then the key set at jwks_uri.
type resourceServer struct {
	issuer string
	keys   jwk.Set
}

func getJSON(t testing.TB, u string, v any) http.Header {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, raw)
	}
	if v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatalf("GET %s: %v: %s", u, err, raw)
		}
	}
	return resp.Header
}

// discover fetches the metadata at the RFC 8414 §3 location of issuer and
// the key set it names.
func discover(t testing.TB, issuer string) *resourceServer {
	t.Helper()
	u, err := url.Parse(issuer)
	if err != nil {
		t.Fatal(err)
	}
	mdURL := u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + strings.TrimSuffix(u.Path, "/")
	var md struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	getJSON(t, mdURL, &md)
	if md.Issuer != issuer {
		t.Fatalf("metadata issuer %q, want %q (RFC 8414 §3.3)", md.Issuer, issuer)
	}
	if md.JWKSURI == "" {
		t.Fatal("metadata has no jwks_uri")
	}
	// A gateway with a path in its issuer is reached behind a proxy that
	// strips it; here the test plays that proxy for the JWKS.
	jwksURL := strings.Replace(md.JWKSURI, u.Path+"/.well-known/", "/.well-known/", 1)
	resp, err := http.Get(jwksURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=300" {
		t.Fatalf("JWKS Cache-Control %q", cc)
	}
	set, err := jwk.Parse(raw)
	if err != nil {
		t.Fatalf("jwk.Parse: %v: %s", err, raw)
	}
	return &resourceServer{issuer: md.Issuer, keys: set}
}

// validate checks a token as RFC 9068 §4 asks: typ at+jwt, signature by a
// published key, iss, aud, exp (with the gateway's clock).
func (rs *resourceServer) validate(token, aud string, now func() time.Time) (jwt.Token, error) {
	msg, err := jws.Parse([]byte(token))
	if err != nil {
		return nil, err
	}
	hdr := msg.Signatures()[0].ProtectedHeaders()
	if typ, _ := hdr.Type(); typ != "at+jwt" {
		return nil, errors.New("typ is not at+jwt")
	}
	if kid, _ := hdr.KeyID(); kid == "" {
		return nil, errors.New("no kid")
	}
	return jwt.Parse([]byte(token), jwt.WithKeySet(rs.keys), jwt.WithValidate(true),
		jwt.WithIssuer(rs.issuer), jwt.WithAudience(aud), jwt.WithClock(jwt.ClockFunc(now)), jwt.WithAcceptableSkew(0))
}

func TestResourceServerValidatesJWT(t *testing.T) {
	for _, alg := range []string{"ES256", "EdDSA", "RS256"} {
		for _, path := range []string{"", "/tenant-1"} {
			t.Run(alg+path, func(t *testing.T) {
				g, iss := startJWT(t, nil, path, "TOKENGW_ISSUER__SIGNING__ALG="+alg, "TOKENGW_ISSUER__AUDIENCE=https://default.example")
				resp, tj := post(t, g.url(), basic("demo", demoSecret), "grant_type=client_credentials&scope=read")
				if resp.StatusCode != 200 {
					t.Fatalf("%d %+v", resp.StatusCode, tj)
				}
				rs := discover(t, iss)
				tok, err := rs.validate(tj.AccessToken, "https://default.example", g.clk.Now)
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				msg, _ := jws.Parse([]byte(tj.AccessToken))
				if a, _ := msg.Signatures()[0].ProtectedHeaders().Algorithm(); a.String() != alg {
					t.Fatalf("alg %v, want %s", a, alg)
				}
				var cid, scope string
				_ = tok.Get("client_id", &cid)
				_ = tok.Get("scope", &scope)
				sub, _ := tok.Subject()
				jti, _ := tok.JwtID()
				iat, _ := tok.IssuedAt()
				exp, _ := tok.Expiration()
				if cid != "demo" || sub != "demo" || scope != "read" || jti == "" || exp.Sub(iat) != time.Hour {
					t.Fatalf("claims client_id=%q sub=%q scope=%q jti=%q iat=%v exp=%v", cid, sub, scope, jti, iat, exp)
				}
				// The resource server refuses another audience, and the
				// token once expired.
				if _, err := rs.validate(tj.AccessToken, "https://other.example", g.clk.Now); err == nil {
					t.Fatal("a token for another audience validated")
				}
				g.clk.Advance(time.Hour)
				if _, err := rs.validate(tj.AccessToken, "https://default.example", g.clk.Now); err == nil {
					t.Fatal("an expired token validated")
				}
			})
		}
	}
}

func TestJWTReusedAsMinted(t *testing.T) {
	g, iss := startJWT(t, nil, "")
	_, first := post(t, g.url(), basic("demo", demoSecret), "grant_type=client_credentials")
	g.clk.Advance(10 * time.Minute)
	_, second := post(t, g.url(), basic("demo", demoSecret), "grant_type=client_credentials")
	if second.AccessToken != first.AccessToken {
		t.Fatal("the reused response is not the JWT that was minted")
	}
	if first.ExpiresIn != 3600 || second.ExpiresIn != 3000 {
		t.Fatalf("expires_in %d then %d, want 3600 then 3000", first.ExpiresIn, second.ExpiresIn)
	}
	// No issuer.audience: the audience is the issuer.
	if _, err := discover(t, iss).validate(second.AccessToken, iss, g.clk.Now); err != nil {
		t.Fatal(err)
	}
	// Revocation and introspection work on the JWT's hash as on an opaque token.
	req, _ := http.NewRequest(http.MethodPost, g.srv.URL+"/oauth2/revoke", strings.NewReader("token="+first.AccessToken))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", basic("demo", demoSecret).Get("Authorization"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if st, err := g.app.Store.Token(context.Background(), issue.Hash(first.AccessToken)); err != nil || !st.Revoked {
		t.Fatalf("the store does not hold the JWT revoked by its SHA-256: %+v, %v", st, err)
	}
	_, third := post(t, g.url(), basic("demo", demoSecret), "grant_type=client_credentials")
	if third.AccessToken == first.AccessToken {
		t.Fatal("a revoked JWT was handed out again")
	}
}

func TestResourceIndicators(t *testing.T) {
	g, iss := startJWT(t, nil, "")
	rs := discover(t, iss)
	get := func(body string) (int, tokenJSON) {
		resp, tj := post(t, g.url(), basic("demo", demoSecret), "grant_type=client_credentials"+body)
		return resp.StatusCode, tj
	}
	codeA, a1 := get("&resource=" + url.QueryEscape(apiA))
	codeB, b1 := get("&resource=" + url.QueryEscape(apiB))
	_, a2 := get("&resource=" + url.QueryEscape(apiA))
	_, both := get("&resource=" + url.QueryEscape(apiB) + "&resource=" + url.QueryEscape(apiA))
	_, def := get("")
	if codeA != 200 || codeB != 200 {
		t.Fatalf("allowed resources: %d, %d", codeA, codeB)
	}
	if a1.AccessToken == b1.AccessToken || a1.AccessToken == def.AccessToken || both.AccessToken == a1.AccessToken {
		t.Fatal("one token shared by different audiences")
	}
	if a2.AccessToken != a1.AccessToken {
		t.Fatal("the token for one resource was not reused")
	}
	for _, c := range []struct {
		tok, aud string
		ok       bool
	}{
		{a1.AccessToken, apiA, true}, {a1.AccessToken, apiB, false},
		{b1.AccessToken, apiB, true}, {b1.AccessToken, apiA, false},
		{both.AccessToken, apiA, true}, {both.AccessToken, apiB, true},
		{def.AccessToken, iss, true}, {def.AccessToken, apiA, false},
	} {
		if _, err := rs.validate(c.tok, c.aud, g.clk.Now); (err == nil) != c.ok {
			t.Errorf("aud %s: err %v, want ok=%v", c.aud, err, c.ok)
		}
	}
	for _, body := range []string{
		"&resource=" + url.QueryEscape("https://not-allowed.example/"),
		"&resource=" + url.QueryEscape(apiA) + "&resource=" + url.QueryEscape("https://not-allowed.example/"),
		"&resource=relative/path",
		"&resource=" + url.QueryEscape(apiA+"#frag"),
		"&resource=" + url.QueryEscape(apiA) + "&resource=",
	} {
		code, tj := get(body)
		if code != 400 || tj.Error != "invalid_target" {
			t.Errorf("%s: %d %q, want 400 invalid_target", body, code, tj.Error)
		}
	}
	// Another client, allowed no resource at all.
	resp, tj := post(t, g.url(), basic(oddID, oddSecret), "grant_type=client_credentials&resource="+url.QueryEscape(apiA))
	if resp.StatusCode != 400 || tj.Error != "invalid_target" {
		t.Fatalf("client without resources: %d %q", resp.StatusCode, tj.Error)
	}
}

func TestJWKSAndMetadataOnlyForJWT(t *testing.T) {
	g := start(t, testConfig(t), nil)
	resp, err := http.Get(g.srv.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("opaque issuer serves a JWKS: %d", resp.StatusCode)
	}
	var md map[string]any
	getJSON(t, g.srv.URL+"/.well-known/oauth-authorization-server", &md)
	if _, ok := md["jwks_uri"]; ok {
		t.Fatal("opaque issuer advertises jwks_uri")
	}
}

func TestAdminRotateKeys(t *testing.T) {
	g, iss := startJWT(t, nil, "", "TOKENGW_SERVER__ADMIN_TOKEN="+adminToken)
	adm := httptest.NewServer(g.app.Server.AdminHandler())
	t.Cleanup(adm.Close)
	_, before := post(t, g.url(), basic("demo", demoSecret), "grant_type=client_credentials")
	rotate := func(auth string) (int, map[string]string) {
		req, _ := http.NewRequest(http.MethodPost, adm.URL+"/admin/keys/rotate", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if code, _ := rotate(""); code != 401 {
		t.Fatalf("rotate without the admin token: %d", code)
	}
	if code, _ := rotate("Bearer wrong-token-wrong-token"); code != 401 {
		t.Fatalf("rotate with a wrong admin token: %d", code)
	}
	code, out := rotate("Bearer " + adminToken)
	if code != 201 || out["kid"] == "" || out["state"] != "pending" {
		t.Fatalf("rotate: %d %v", code, out)
	}
	rs := discover(t, iss)
	if _, ok := rs.keys.LookupKeyID(out["kid"]); !ok || rs.keys.Len() != 2 {
		t.Fatalf("the new key is not published beside the old one (%d keys)", rs.keys.Len())
	}
	// Until the lead has passed, tokens are signed with the old key; then
	// with the new one; the old token still validates.
	g.clk.Advance(g.app.Keys.Lead())
	_, after := post(t, g.url(), basic("demo", demoSecret), "grant_type=client_credentials&scope=read")
	msg, _ := jws.Parse([]byte(after.AccessToken))
	if kid, _ := msg.Signatures()[0].ProtectedHeaders().KeyID(); kid != out["kid"] {
		t.Fatalf("after the lead tokens are signed by %s, want %s", kid, out["kid"])
	}
	if _, err := rs.validate(before.AccessToken, iss, g.clk.Now); err != nil {
		t.Fatalf("a token signed before the rotation: %v", err)
	}
}
