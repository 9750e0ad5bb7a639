package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/app"
	"github.com/tokengw/tokengw/internal/clients"
	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/memory"
)

// TestConfigStoreOverlapStopsStartup: an id both in clients: and in the
// store is a start-up error naming it.
func TestConfigStoreOverlapStopsStartup(t *testing.T) {
	ctx := context.Background()
	shared := memory.New(memory.Options{})
	t.Cleanup(func() { shared.Close() })
	if err := shared.CreateClient(ctx, store.Client{ID: "demo", SecretHash: secretHashes(t)[demoSecret], Scopes: []string{"read"}}); err != nil {
		t.Fatal(err)
	}
	_, err := app.New(ctx, testConfig(t, adminEnv()...), app.Options{Store: shared})
	if err == nil || !strings.Contains(err.Error(), `"demo"`) || !strings.Contains(err.Error(), "both in the configuration") {
		t.Fatalf("app.New = %v, want an overlap error naming demo", err)
	}
}

// TestAdminStoreUnavailable: a store that cannot answer is 503 with
// Retry-After, and nothing internal in the body.
func TestAdminStoreUnavailable(t *testing.T) {
	shared := memory.New(memory.Options{})
	g := startAdmin(t, testConfig(t, adminEnv()...), nil, shared)
	shared.Close()
	for _, r := range []adminResp{
		g.do(t, "GET", "/admin/clients", adminToken, ""),
		g.do(t, "POST", "/admin/clients", adminToken, `{"scopes": ["read"]}`),
		g.do(t, "GET", "/admin/clients/x", adminToken, ""),
	} {
		if r.status != 503 || r.str("error") != "temporarily_unavailable" || r.header.Get("Retry-After") == "" || strings.Contains(r.raw, "closed") {
			t.Fatalf("closed store: %d %s", r.status, r.raw)
		}
	}
}

// TestCredentialCacheKeepsHashOffHotPath: with the verified-credential cache
// (the default) a store-managed client's secret is hashed once, however
// many token requests follow; with auth.cache_entries 0, on every request.
func TestCredentialCacheKeepsHashOffHotPath(t *testing.T) {
	for _, tc := range []struct {
		name      string
		env       []string
		wantVerif uint64
	}{
		{"cache on", nil, 1},
		{"cache off", []string{"TOKENGW_AUTH__CACHE_ENTRIES=0"}, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startAdmin(t, testConfig(t, adminEnv(tc.env...)...), nil, nil)
			_, secret := g.create(t, `{"id": "svc", "scopes": ["read"]}`)
			for range 20 {
				if code, _ := g.token(t, "svc", secret); code != 200 {
					t.Fatalf("token: %d", code)
				}
			}
			if v := g.app.Auth.Verifications(); v != tc.wantVerif {
				t.Fatalf("hash verifications = %d, want %d", v, tc.wantVerif)
			}
		})
	}
}

// BenchmarkTokenCredentialCache: token requests (reuse on) of a
// store-managed client whose secret was generated with the default argon2id
// parameters (19 MiB, t=2, p=1), with the verified-credential cache on and
// off, in one run. With the cache the hash is off the hot path:
//
//	go test -run '^$' -bench BenchmarkTokenCredentialCache -benchmem ./internal/server/
func BenchmarkTokenCredentialCache(b *testing.B) {
	for _, bc := range []struct {
		name string
		env  []string
	}{
		{"cache-on", nil},
		{"cache-off", []string{"TOKENGW_AUTH__CACHE_ENTRIES=0"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			env := append([]string{"TOKENGW_SERVER__ADMIN_TOKEN=" + adminToken}, bc.env...)
			a, err := app.New(context.Background(), testConfig(b, env...), app.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close()
			_, secret, err := a.Clients.Create(context.Background(), clients.Spec{ID: "svc", Scopes: []string{"read"}})
			if err != nil {
				b.Fatal(err)
			}
			h := a.Server.Handler()
			auth := basic("svc", secret).Get("Authorization")
			serve := func() {
				r := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader("grant_type=client_credentials"))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				r.Header.Set("Authorization", auth)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != 200 {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
			serve() // mint, and verify once
			b.ReportAllocs()
			for b.Loop() {
				serve()
			}
			b.ReportMetric(float64(a.Auth.Verifications())/float64(b.N+1), "hashes/op")
		})
	}
}

// meddling is the real memory store with another writer that changes
// every client between each read of it and the write that follows (while
// meddle is set): the admin API's updates conflict every time.
type meddling struct {
	*memory.Store
	meddle atomic.Bool
}

func (s *meddling) Client(ctx context.Context, id string) (store.Client, error) {
	c, err := s.Store.Client(ctx, id)
	if err != nil || !s.meddle.Load() {
		return c, err
	}
	next := c
	next.UpdatedAt = c.UpdatedAt.Add(time.Millisecond)
	if err := s.Store.UpdateClient(ctx, next, c.UpdatedAt); err != nil {
		return store.Client{}, err
	}
	return c, nil
}

// TestAdminConcurrentChangeIsConflict: a PATCH or rotation whose client
// keeps changing under it is 409 conflict with a clear description, and
// writes nothing.
func TestAdminConcurrentChangeIsConflict(t *testing.T) {
	shared := &meddling{Store: memory.New(memory.Options{})}
	g := startAdmin(t, testConfig(t, adminEnv()...), nil, shared)
	id, _ := g.create(t, `{"id": "svc", "scopes": ["read"]}`)
	shared.meddle.Store(true)
	for _, r := range []adminResp{
		g.do(t, "PATCH", "/admin/clients/"+id, adminToken, `{"scopes": ["read", "write"]}`),
		g.do(t, "POST", "/admin/clients/"+id+"/secret", adminToken, ""),
	} {
		if r.status != http.StatusConflict || r.str("error") != "conflict" || !strings.Contains(r.str("error_description"), "changed by another request") {
			t.Fatalf("update of a client that keeps changing: %d %s; want 409 conflict", r.status, r.raw)
		}
	}
	shared.meddle.Store(false)
	if r := g.do(t, "GET", "/admin/clients/"+id, adminToken, ""); !strings.Contains(r.raw, `"scopes":["read"]`) {
		t.Fatalf("after the conflicts: %s; want the scopes unchanged", r.raw)
	}
}

// TestAdminPatchPartialLimit: PATCH {"limit": {"burst": N}} keeps the
// client's rate (and a rate alone its burst) instead of making the client
// unlimited; a client on limits.per_client is told to send both; an empty
// limit object is refused.
func TestAdminPatchPartialLimit(t *testing.T) {
	g := startAdmin(t, testConfig(t, adminEnv()...), nil, nil)
	g.create(t, `{"id": "own", "scopes": ["read"], "limit": {"rate": 2, "burst": 5}}`)
	g.create(t, `{"id": "default", "scopes": ["read"]}`)
	limitOf := func(r adminResp) string {
		t.Helper()
		c, _ := r.body["client"].(map[string]any)
		l, _ := json.Marshal(c["limit"])
		return string(l)
	}
	for _, tc := range []struct{ body, want string }{
		{`{"limit": {"burst": 50}}`, `{"burst":50,"rate":2}`},
		{`{"limit": {"rate": 3.5}}`, `{"burst":50,"rate":3.5}`},
		{`{"limit": {"rate": 1, "burst": 2}}`, `{"burst":2,"rate":1}`},
	} {
		r := g.do(t, "PATCH", "/admin/clients/own", adminToken, tc.body)
		if r.status != 200 || limitOf(r) != tc.want {
			t.Fatalf("PATCH %s: %d %s; want limit %s", tc.body, r.status, r.raw, tc.want)
		}
		if got := limitOf(g.do(t, "GET", "/admin/clients/own", adminToken, "")); got != tc.want {
			t.Fatalf("GET after PATCH %s: limit %s, want %s", tc.body, got, tc.want)
		}
	}
	for _, tc := range []struct{ id, body, field, desc string }{
		{"default", `{"limit": {"burst": 50}}`, "limit.rate", "no limit of its own"},
		{"default", `{"limit": {"rate": 5}}`, "limit.burst", "no limit of its own"},
		{"own", `{"limit": {}}`, "limit", "rate, burst or both"},
	} {
		r := g.do(t, "PATCH", "/admin/clients/"+tc.id, adminToken, tc.body)
		if r.status != 400 || r.str("field") != tc.field || !strings.Contains(r.str("error_description"), tc.desc) {
			t.Fatalf("PATCH %s %s: %d %s; want 400 for %s", tc.id, tc.body, r.status, r.raw, tc.field)
		}
	}
	if got := limitOf(g.do(t, "GET", "/admin/clients/default", adminToken, "")); got != "null" {
		t.Fatalf("default after refused patches: limit %s, want none", got)
	}
}

// TestAdminSecretMethodAsRegistered: token_endpoint_auth_method
// client_secret_post is kept and shown as registered (and one created
// without a method shows client_secret_basic); either way the client may
// authenticate with Basic or the body; switching between the secret
// methods keeps the secret and the client's reused token.
func TestAdminSecretMethodAsRegistered(t *testing.T) {
	g := startAdmin(t, testConfig(t, adminEnv()...), nil, nil)
	id, secret := g.create(t, `{"id": "poster", "scopes": ["read"], "token_endpoint_auth_method": "client_secret_post"}`)
	plain, _ := g.create(t, `{"id": "plain", "scopes": ["read"]}`)
	if m := g.do(t, "GET", "/admin/clients/"+id, adminToken, "").str("client", "token_endpoint_auth_method"); m != "client_secret_post" {
		t.Fatalf("GET poster: method %q, want client_secret_post as registered", m)
	}
	if m := g.do(t, "GET", "/admin/clients/"+plain, adminToken, "").str("client", "token_endpoint_auth_method"); m != "client_secret_basic" {
		t.Fatalf("GET plain: method %q, want client_secret_basic", m)
	}
	viaBody := func() tokenJSON {
		t.Helper()
		resp, tj := post(t, g.pub.URL+"/oauth2/token", nil, "grant_type=client_credentials&client_id="+id+"&client_secret="+url.QueryEscape(secret))
		if resp.StatusCode != 200 {
			t.Fatalf("client_secret_post: %d %+v", resp.StatusCode, tj)
		}
		return tj
	}
	first := viaBody()
	if code, tj := g.token(t, id, secret); code != 200 || tj.AccessToken != first.AccessToken {
		t.Fatalf("Basic for a client_secret_post client: %d, same token %v", code, tj.AccessToken == first.AccessToken)
	}
	r := g.do(t, "PATCH", "/admin/clients/"+id, adminToken, `{"token_endpoint_auth_method": "client_secret_basic"}`)
	if r.status != 200 || r.str("client", "token_endpoint_auth_method") != "client_secret_basic" || r.str("secret") != "" {
		t.Fatalf("PATCH to client_secret_basic: %d %s; want the method shown and no new secret", r.status, r.raw)
	}
	if again := viaBody(); again.AccessToken != first.AccessToken {
		t.Fatal("switching between the secret methods stopped the reuse of the client's token")
	}
}

// TestSecretRefusedForPrivateKeyJWTRow: a private_key_jwt client whose
// row still holds a secret hash (written by an older replica during an
// upgrade) is not authenticated by that secret, over Basic or the body:
// the same 401 invalid_client as an unknown id.
func TestSecretRefusedForPrivateKeyJWTRow(t *testing.T) {
	shared := memory.New(memory.Options{})
	g := startAdmin(t, testConfig(t, adminEnv()...), nil, shared)
	id, secret := g.create(t, `{"id": "upgraded", "scopes": ["read"]}`)
	ctx := context.Background()
	c, err := shared.Client(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	prev := c.UpdatedAt
	c.AuthMethod, c.JWKSURI, c.UpdatedAt = "private_key_jwt", "https://idp.example/jwks", prev.Add(time.Millisecond)
	if err := shared.UpdateClient(ctx, c, prev); err != nil { // the hash is left in place
		t.Fatal(err)
	}
	g.app.Registry.Invalidate(id)
	_, unknownBasic := g.token(t, "nobody", secret)
	for name, try := range map[string]func() (int, tokenJSON){
		"basic": func() (int, tokenJSON) { return g.token(t, id, secret) },
		"post": func() (int, tokenJSON) {
			resp, tj := post(t, g.pub.URL+"/oauth2/token", nil, "grant_type=client_credentials&client_id="+id+"&client_secret="+url.QueryEscape(secret))
			return resp.StatusCode, tj
		},
	} {
		code, tj := try()
		if code != 401 || tj.Error != "invalid_client" || tj.Description != unknownBasic.Description {
			t.Fatalf("%s with the old secret of a private_key_jwt row: %d %+v; want the unknown id's 401 %+v", name, code, tj, unknownBasic)
		}
	}
}
