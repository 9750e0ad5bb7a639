package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/config"
)

// introspectConfig adds an introspecting resource server client and an
// admin token.
func introspectConfig(t testing.TB, env ...string) *config.Config {
	cfg := testConfig(t, append([]string{"TOKENGW_SERVER__ADMIN_TOKEN=admin-token-0123456789abcdef"}, env...)...)
	cfg.Clients = append(cfg.Clients, config.Client{ID: "rs", SecretHash: secretHashes(t)[otherSecret], Scopes: []string{"read"}, Introspect: true})
	return cfg
}

func introspectReq(t *testing.T, g *gw, h http.Header, token string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, g.srv.URL+"/oauth2/introspect", strings.NewReader("token="+url.QueryEscape(token)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("introspection body %q", raw)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatal("introspection response without Cache-Control: no-store")
	}
	return resp.StatusCode, m
}

func revokeReq(t *testing.T, g *gw, h http.Header, body string) int {
	t.Helper()
	resp, _ := postRaw(t, g.srv.URL+"/oauth2/revoke", h, body)
	return resp.StatusCode
}

func postRaw(t *testing.T, target string, h http.Header, body string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, raw
}

func TestIntrospection(t *testing.T) {
	g := start(t, introspectConfig(t), nil)
	rs := basic("rs", otherSecret)
	_, tj := post(t, g.url(), basic("demo", demoSecret), "grant_type=client_credentials")

	code, m := introspectReq(t, g, rs, tj.AccessToken)
	if code != 200 || m["active"] != true || m["client_id"] != "demo" || m["scope"] != "read write" ||
		m["token_type"] != "Bearer" || m["iss"] != "http://127.0.0.1:8080" {
		t.Fatalf("live: %d %v", code, m)
	}
	if exp, iat := m["exp"].(float64), m["iat"].(float64); exp-iat != 3600 || int64(iat) != g.clk.Now().Unix() {
		t.Fatalf("exp/iat = %v/%v", exp, iat)
	}
	// The admin token may introspect too.
	admin := http.Header{"Authorization": {"Bearer admin-token-0123456789abcdef"}}
	if code, m := introspectReq(t, g, admin, tj.AccessToken); code != 200 || m["active"] != true {
		t.Fatalf("admin: %d %v", code, m)
	}
	// Unknown: exactly {"active": false}.
	if code, m := introspectReq(t, g, rs, "no-such-token"); code != 200 || len(m) != 1 || m["active"] != false {
		t.Fatalf("unknown: %d %v", code, m)
	}
	// Denied to a client without the right, to bad credentials, to a wrong admin token.
	if code, m := introspectReq(t, g, basic("demo", demoSecret), tj.AccessToken); code != 403 || m["active"] != nil {
		t.Fatalf("client without introspect: %d %v", code, m)
	}
	if code, _ := introspectReq(t, g, basic("rs", "wrong"), tj.AccessToken); code != 401 {
		t.Fatalf("wrong secret: %d", code)
	}
	if code, _ := introspectReq(t, g, http.Header{"Authorization": {"Bearer nope"}}, tj.AccessToken); code != 401 {
		t.Fatalf("wrong admin token: %d", code)
	}
	// Expired.
	g.clk.Advance(time.Hour)
	if code, m := introspectReq(t, g, rs, tj.AccessToken); code != 200 || len(m) != 1 || m["active"] != false {
		t.Fatalf("expired: %d %v", code, m)
	}
}

func TestRevocation(t *testing.T) {
	g := start(t, introspectConfig(t), nil)
	rs := basic("rs", otherSecret)
	demo := basic("demo", demoSecret)
	_, tj := post(t, g.url(), demo, "grant_type=client_credentials")
	introspectReq(t, g, rs, tj.AccessToken) // cached as live

	// Another client's revocation has no effect, and looks like success.
	if code := revokeReq(t, g, basic(oddID, oddSecret), "token="+tj.AccessToken); code != 200 {
		t.Fatalf("revocation by another client: %d", code)
	}
	if _, m := introspectReq(t, g, rs, tj.AccessToken); m["active"] != true {
		t.Fatal("another client revoked the token")
	}
	if _, again := post(t, g.url(), demo, "grant_type=client_credentials"); again.AccessToken != tj.AccessToken {
		t.Fatal("reuse broken by a foreign revocation attempt")
	}
	// Unknown tokens answer 200; a missing token parameter is invalid_request;
	// bad client credentials are invalid_client.
	if code := revokeReq(t, g, demo, "token=unknown&token_type_hint=access_token"); code != 200 {
		t.Fatalf("unknown token: %d", code)
	}
	if resp, raw := postRaw(t, g.srv.URL+"/oauth2/revoke", demo, "token_type_hint=access_token"); resp.StatusCode != 400 || !strings.Contains(string(raw), "invalid_request") {
		t.Fatalf("missing token: %d %s", resp.StatusCode, raw)
	}
	if code := revokeReq(t, g, basic("demo", "wrong"), "token="+tj.AccessToken); code != 401 {
		t.Fatalf("bad credentials: %d", code)
	}
	// The owner revokes: inactive at once (cache forgotten on this replica),
	// never handed out again, and the next request mints a new token.
	if code := revokeReq(t, g, demo, "token="+tj.AccessToken+"&token_type_hint=access_token"); code != 200 {
		t.Fatalf("revocation by the owner: %d", code)
	}
	if _, m := introspectReq(t, g, rs, tj.AccessToken); len(m) != 1 || m["active"] != false {
		t.Fatalf("revoked token: %v", m)
	}
	_, next := post(t, g.url(), demo, "grant_type=client_credentials")
	if next.AccessToken == "" || next.AccessToken == tj.AccessToken {
		t.Fatal("revoked token handed out again")
	}
	// Revoking twice is fine.
	if code := revokeReq(t, g, demo, "token="+tj.AccessToken); code != 200 {
		t.Fatalf("second revocation: %d", code)
	}
}

func TestMetadataListsRevocationAndIntrospection(t *testing.T) {
	g := start(t, testConfig(t), nil)
	resp, err := http.Get(g.srv.URL + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md map[string]any
	json.NewDecoder(resp.Body).Decode(&md)
	if md["revocation_endpoint"] != "http://127.0.0.1:8080/oauth2/revoke" || md["introspection_endpoint"] != "http://127.0.0.1:8080/oauth2/introspect" {
		t.Fatalf("metadata = %v", md)
	}
}

// TestIntrospectionBearerChallenge: RFC 7662 §2.3: "If the protected resource
// uses an OAuth 2.0 bearer token to authorize its call to the introspection
// endpoint and the token used for authorization ... is otherwise invalid for
// this request, the authorization server responds with an HTTP 401 code as
// described in Section 3 of OAuth 2.0 Bearer Token Usage [RFC6750]": a
// Bearer challenge with error="invalid_token", not the Basic one of a failed
// client authentication.
func TestIntrospectionBearerChallenge(t *testing.T) {
	for name, cfg := range map[string]*config.Config{
		"admin token set": introspectConfig(t),
		"no admin token":  testConfig(t),
	} {
		t.Run(name, func(t *testing.T) {
			g := start(t, cfg, nil)
			for _, authz := range []string{"Bearer nope", "bearer admin-token-0123456789abcdeX"} {
				resp, raw := postRaw(t, g.srv.URL+"/oauth2/introspect", http.Header{"Authorization": {authz}}, "token=x")
				var m map[string]any
				if err := json.Unmarshal(raw, &m); err != nil {
					t.Fatalf("body %q", raw)
				}
				ch := resp.Header.Get("WWW-Authenticate")
				if resp.StatusCode != 401 || m["error"] != "invalid_token" || m["active"] != nil ||
					!strings.HasPrefix(ch, "Bearer ") || !strings.Contains(ch, `error="invalid_token"`) {
					t.Fatalf("%q: %d %v WWW-Authenticate %q, want 401 invalid_token with a Bearer challenge", authz, resp.StatusCode, m, ch)
				}
				if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache" {
					t.Fatalf("cache headers: %v", resp.Header)
				}
			}
		})
	}
}
