package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/tokengw/tokengw/internal/app"
	"github.com/tokengw/tokengw/internal/clientauth"
	"github.com/tokengw/tokengw/internal/config"
)

// cheap argon2id parameters keep the tests fast; production uses the default.
var testParams = clientauth.Argon2Params{Memory: 1024, Time: 1, Threads: 1}

var (
	hashOnce sync.Once
	hashes   map[string]string
)

const (
	demoSecret  = "demo-secret"
	oddID       = "odd:id %+ with spaces"
	oddSecret   = "s3cr:et% +/=&"
	otherSecret = "other-secret"
)

func secretHashes(t testing.TB) map[string]string {
	hashOnce.Do(func() {
		hashes = map[string]string{}
		for _, s := range []string{demoSecret, oddSecret, otherSecret} {
			h, err := clientauth.HashSecret(s, testParams)
			if err != nil {
				panic(err)
			}
			hashes[s] = h
		}
	})
	return hashes
}

// clock is a manual clock for the whole app.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)} }

// testConfig is the default config with the memory store and three clients.
func testConfig(t testing.TB, env ...string) *config.Config {
	t.Helper()
	if env == nil {
		env = []string{}
	}
	cfg, err := config.Load("", append([]string{"TOKENGW_STORE__DRIVER=memory"}, env...))
	if err != nil {
		t.Fatal(err)
	}
	h := secretHashes(t)
	cfg.Clients = []config.Client{
		{ID: "demo", SecretHash: h[demoSecret], Scopes: []string{"write", "read", "read"}},
		{ID: oddID, SecretHash: h[oddSecret], Scopes: []string{"read"}, TokenTTL: 10 * time.Minute},
		{ID: "nogrant", SecretHash: h[otherSecret], Scopes: []string{"read"}, GrantTypes: []string{}},
	}
	return cfg
}

type gw struct {
	app *app.App
	srv *httptest.Server
	clk *clock
}

func start(t testing.TB, cfg *config.Config, clk *clock) *gw {
	t.Helper()
	if clk == nil {
		clk = newClock()
	}
	a, err := app.New(context.Background(), cfg, app.Options{Now: clk.Now})
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	srv := httptest.NewServer(a.Server.Handler())
	t.Cleanup(func() {
		srv.Close()
		a.Close()
	})
	return &gw{app: a, srv: srv, clk: clk}
}

func (g *gw) url() string { return g.srv.URL + "/oauth2/token" }

type tokenJSON struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func post(t testing.TB, target string, header http.Header, body string) (*http.Response, tokenJSON) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var tj tokenJSON
	if err := json.Unmarshal(raw, &tj); err != nil {
		t.Fatalf("response is not JSON: %q", raw)
	}
	return resp, tj
}

func basic(id, secret string) http.Header {
	v := base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id) + ":" + url.QueryEscape(secret)))
	return http.Header{"Authorization": {"Basic " + v}}
}

func TestClientCredentialsLibrary(t *testing.T) {
	g := start(t, testConfig(t), nil)
	for _, style := range []struct {
		name  string
		style oauth2.AuthStyle
	}{{"header", oauth2.AuthStyleInHeader}, {"params", oauth2.AuthStyleInParams}} {
		for _, c := range []struct{ id, secret, scope string }{{"demo", demoSecret, "read write"}, {oddID, oddSecret, "read"}} {
			t.Run(style.name+"/"+c.id, func(t *testing.T) {
				cc := clientcredentials.Config{ClientID: c.id, ClientSecret: c.secret, TokenURL: g.url(), AuthStyle: style.style}
				tok, err := cc.Token(context.Background())
				if err != nil {
					t.Fatalf("Token: %v", err)
				}
				if tok.AccessToken == "" || tok.TokenType != "Bearer" || tok.Extra("scope") != c.scope {
					t.Fatalf("token = %+v scope %v", tok, tok.Extra("scope"))
				}
				if time.Until(tok.Expiry) < 5*time.Minute {
					t.Fatalf("expiry too close: %v", tok.Expiry)
				}
			})
		}
	}
}

func TestSuccessResponse(t *testing.T) {
	g := start(t, testConfig(t), nil)
	resp, tj := post(t, g.url(), basic("demo", demoSecret), "grant_type=client_credentials&scope=write")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %+v", resp.StatusCode, tj)
	}
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("headers = %v", resp.Header)
	}
	if tj.TokenType != "Bearer" || tj.ExpiresIn != 3600 || tj.Scope != "write" || len(tj.AccessToken) != 43 {
		t.Fatalf("body = %+v", tj)
	}
	// Per-client lifetime override.
	_, tj = post(t, g.url(), basic(oddID, oddSecret), "grant_type=client_credentials")
	if tj.ExpiresIn != 600 {
		t.Fatalf("token_ttl override: expires_in = %d, want 600", tj.ExpiresIn)
	}
	// Scope normalisation: duplicates and order do not matter.
	_, tj = post(t, g.url(), basic("demo", demoSecret), "grant_type=client_credentials&scope=write+read+write")
	if tj.Scope != "read write" {
		t.Fatalf("normalised scope = %q", tj.Scope)
	}
	// RFC 6749 §3.3 (scope-token *( SP scope-token )): malformed spacing
	// is invalid_scope, not tolerated.
	for _, scope := range []string{"write+read++write", "+read", "read+", "++"} {
		if resp, tj := post(t, g.url(), basic("demo", demoSecret), "grant_type=client_credentials&scope="+scope); resp.StatusCode != 400 || tj.Error != "invalid_scope" {
			t.Fatalf("scope %q: %d %+v, want 400 invalid_scope", scope, resp.StatusCode, tj)
		}
	}
}

// TestEmptyParametersAreOmitted: RFC 6749 §3.2, "Parameters sent without a
// value MUST be treated as if they were omitted from the request."
func TestEmptyParametersAreOmitted(t *testing.T) {
	g := start(t, testConfig(t), nil)
	for _, body := range []string{
		"grant_type=client_credentials&client_secret=",             // no second method next to Basic
		"grant_type=client_credentials&client_id=&client_secret=",  // nor an empty pair
		"grant_type=client_credentials&scope=&client_secret=",      // empty scope: the client's set
		"grant_type=client_credentials&token_type_hint=&resource=", // unknown and empty: ignored
	} {
		resp, tj := post(t, g.url(), basic("demo", demoSecret), body)
		if resp.StatusCode != 200 || tj.AccessToken == "" || tj.Scope != "read write" {
			t.Fatalf("%s: %d %q %q (%s)", body, resp.StatusCode, tj.Scope, tj.Error, tj.Description)
		}
	}
}

func TestErrors(t *testing.T) {
	g := start(t, testConfig(t), nil)
	form := "application/x-www-form-urlencoded"
	tests := []struct {
		name        string
		method      string
		contentType string
		header      http.Header
		body        string
		status      int
		code        string
		challenge   bool
	}{
		{"missing grant_type", "POST", form, basic("demo", demoSecret), "scope=read", 400, "invalid_request", false},
		{"empty grant_type", "POST", form, basic("demo", demoSecret), "grant_type=&scope=read", 400, "invalid_request", false},
		{"empty client_id alone", "POST", form, nil, "grant_type=client_credentials&client_id=&client_secret=", 401, "invalid_client", true},
		{"repeated parameter", "POST", form, basic("demo", demoSecret), "grant_type=client_credentials&scope=read&scope=write", 400, "invalid_request", false},
		{"repeated grant_type", "POST", form, basic("demo", demoSecret), "grant_type=client_credentials&grant_type=client_credentials", 400, "invalid_request", false},
		{"wrong content type", "POST", "application/json", basic("demo", demoSecret), `{"grant_type":"client_credentials"}`, 400, "invalid_request", false},
		{"no content type", "POST", "", basic("demo", demoSecret), "grant_type=client_credentials", 400, "invalid_request", false},
		{"unparseable body", "POST", form, basic("demo", demoSecret), "grant_type=client_credentials&scope=%zz", 400, "invalid_request", false},
		{"both auth methods", "POST", form, basic("demo", demoSecret), "grant_type=client_credentials&client_id=demo&client_secret=demo-secret", 400, "invalid_request", false},
		{"secret in query", "POST", form, nil, "grant_type=client_credentials", 400, "invalid_request", false},
		{"unsupported grant", "POST", form, basic("demo", demoSecret), "grant_type=password&username=a&password=b", 400, "unsupported_grant_type", false},
		{"no client auth", "POST", form, nil, "grant_type=client_credentials", 401, "invalid_client", true},
		{"wrong secret (basic)", "POST", form, basic("demo", "nope"), "grant_type=client_credentials", 401, "invalid_client", true},
		{"unknown client (basic)", "POST", form, basic("ghost", "nope"), "grant_type=client_credentials", 401, "invalid_client", true},
		{"wrong secret (post)", "POST", form, nil, "grant_type=client_credentials&client_id=demo&client_secret=nope", 401, "invalid_client", false},
		{"malformed basic", "POST", form, http.Header{"Authorization": {"Basic !!!"}}, "grant_type=client_credentials", 401, "invalid_client", true},
		{"grant not allowed", "POST", form, basic("nogrant", otherSecret), "grant_type=client_credentials", 400, "unauthorized_client", false},
		{"scope beyond client", "POST", form, basic(oddID, oddSecret), "grant_type=client_credentials&scope=read+write", 400, "invalid_scope", false},
		{"malformed scope", "POST", form, basic("demo", demoSecret), "grant_type=client_credentials&scope=" + url.QueryEscape("re\"ad"), 400, "invalid_scope", false},
		{"body too large", "POST", form, basic("demo", demoSecret), "grant_type=client_credentials&pad=" + strings.Repeat("x", 10000), 413, "invalid_request", false},
		{"GET", "GET", "", basic("demo", demoSecret), "", 405, "invalid_request", false},
		{"PUT", "PUT", form, basic("demo", demoSecret), "grant_type=client_credentials", 405, "invalid_request", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target := g.url()
			if tc.name == "secret in query" {
				target += "?client_id=demo&client_secret=demo-secret"
			}
			req, _ := http.NewRequest(tc.method, target, strings.NewReader(tc.body))
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			for k, v := range tc.header {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var tj tokenJSON
			if err := json.NewDecoder(resp.Body).Decode(&tj); err != nil {
				t.Fatalf("body not JSON: %v", err)
			}
			if resp.StatusCode != tc.status || tj.Error != tc.code {
				t.Fatalf("got %d %q (%s), want %d %q", resp.StatusCode, tj.Error, tj.Description, tc.status, tc.code)
			}
			if tj.AccessToken != "" {
				t.Fatal("an error response carries a token")
			}
			if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache" {
				t.Fatalf("cache headers = %q %q", resp.Header.Get("Cache-Control"), resp.Header.Get("Pragma"))
			}
			if got := resp.Header.Get("WWW-Authenticate"); (got != "") != tc.challenge || (tc.challenge && !strings.HasPrefix(got, "Basic realm=")) {
				t.Fatalf("WWW-Authenticate = %q, want challenge %v", got, tc.challenge)
			}
			if tc.status == 405 && resp.Header.Get("Allow") != "POST" {
				t.Fatalf("405 without Allow: POST")
			}
		})
	}
}

func TestDiscoveryAndHealth(t *testing.T) {
	g := start(t, testConfig(t, "TOKENGW_ISSUER__URL=https://auth.example.test/"), nil)
	resp, err := http.Get(g.srv.URL + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		t.Fatal(err)
	}
	if md["issuer"] != "https://auth.example.test" || md["token_endpoint"] != "https://auth.example.test/oauth2/token" {
		t.Fatalf("metadata = %v", md)
	}
	if methods, _ := md["token_endpoint_auth_methods_supported"].([]any); len(methods) != 2 {
		t.Fatalf("auth methods = %v", md["token_endpoint_auth_methods_supported"])
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(g.srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s = %d", p, resp.StatusCode)
		}
	}
	g.app.Store.Close()
	resp, err = http.Get(g.srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("/readyz with the store closed = %d, want 503", resp.StatusCode)
	}
	// A mint with the store gone is 503 temporarily_unavailable, not 500.
	r, tj := post(t, g.url(), basic("demo", demoSecret), "grant_type=client_credentials")
	if r.StatusCode != 503 || tj.Error != "temporarily_unavailable" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("mint with the store closed: %d %q Retry-After %q", r.StatusCode, tj.Error, r.Header.Get("Retry-After"))
	}
}

// TestHeadOnGetEndpoints: RFC 9110 §9.1 "All general-purpose servers MUST
// support the methods GET and HEAD", and the 405 of these paths says
// "Allow: GET, HEAD"; HEAD answers like GET, without a body.
func TestHeadOnGetEndpoints(t *testing.T) {
	g := start(t, testConfig(t), nil)
	for _, p := range []string{"/.well-known/oauth-authorization-server", "/healthz", "/readyz"} {
		req, _ := http.NewRequest(http.MethodHead, g.srv.URL+p, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(raw) != 0 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("HEAD %s = %d %q %v, want 200 like GET, no body", p, resp.StatusCode, raw, resp.Header)
		}
	}
}
