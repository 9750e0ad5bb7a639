package server_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/tokengw/tokengw/internal/issue"
)

// TestAdminRevokeClientTokens: DELETE /admin/tokens?client_id= revokes every
// live token of a client at once on this replica: introspection says
// inactive, reuse hands out a new token; other clients are untouched.
func TestAdminRevokeClientTokens(t *testing.T) {
	for name, env := range storeVariants(t) {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, adminEnv(env...)...)
			g := startAdmin(t, cfg, nil, nil)
			id, secret := g.create(t, `{"scopes": "read write"}`)
			_, t1 := g.token(t, id, secret)
			_, t2 := post(t, g.pub.URL+"/oauth2/token", basic(id, secret), "grant_type=client_credentials&scope=read")
			_, other := g.token(t, "demo", demoSecret)
			admin := http.Header{"Authorization": {"Bearer " + adminToken}}
			for _, tok := range []string{t1.AccessToken, t2.AccessToken} {
				if code, m := introspectReq(t, &gw{srv: g.pub}, admin, tok); code != 200 || m["active"] != true {
					t.Fatalf("before: %d %v", code, m)
				}
			}

			if r := g.do(t, "DELETE", "/admin/tokens?client_id="+id, "", ""); r.status != 401 {
				t.Fatalf("without the admin token: %d", r.status)
			}
			if r := g.do(t, "DELETE", "/admin/tokens", adminToken, ""); r.status != 400 {
				t.Fatalf("without client_id: %d %s", r.status, r.raw)
			}
			if r := g.do(t, "GET", "/admin/tokens?client_id="+id, adminToken, ""); r.status != 405 {
				t.Fatalf("GET: %d", r.status)
			}
			r := g.do(t, "DELETE", "/admin/tokens?client_id="+id, adminToken, "")
			if r.status != 200 || r.body["revoked"] != float64(2) {
				t.Fatalf("revoke: %d %s", r.status, r.raw)
			}
			for _, tok := range []string{t1.AccessToken, t2.AccessToken} {
				if _, m := introspectReq(t, &gw{srv: g.pub}, admin, tok); len(m) != 1 || m["active"] != false {
					t.Fatalf("after: %v", m)
				}
				st, err := g.app.Store.Token(context.Background(), issue.Hash(tok))
				if err != nil || !st.Revoked {
					t.Fatalf("store: %+v %v", st, err)
				}
			}
			if _, again := g.token(t, id, secret); again.AccessToken == "" || again.AccessToken == t1.AccessToken {
				t.Fatal("a revoked token was handed out again")
			}
			if _, o := g.token(t, "demo", demoSecret); o.AccessToken != other.AccessToken {
				t.Fatal("another client's token changed")
			}
			// The client itself stays; a second call finds nothing left to revoke.
			if r := g.do(t, "DELETE", "/admin/tokens?client_id="+id, adminToken, ""); r.status != 200 || r.body["revoked"] != float64(1) {
				t.Fatalf("second revoke (the token minted since): %d %s", r.status, r.raw)
			}
		})
	}
}
