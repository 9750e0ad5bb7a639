package server_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/tokengw/tokengw/internal/app"
)

// Store-managed private_key_jwt clients and resource indicators, registered
// and changed through the admin API over real HTTP; their assertions are
// signed with lestrrat-go/jwx (assertion_helpers_test.go), the gateway
// verifies them with go-jose, and the JWT access tokens are checked by a
// jwx resource server (jwt_test.go).

// startAdminJWT is an admin gateway issuing JWTs, its public listener on a
// real loopback address that is the issuer URL (the resource server
// discovers the keys there).
func startAdminJWT(t *testing.T, env ...string) (*adminGW, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	iss := "http://" + ln.Addr().String()
	cfg := testConfig(t, adminEnv(append([]string{"TOKENGW_ISSUER__TOKEN_FORMAT=jwt", "TOKENGW_ISSUER__URL=" + iss, noFailedAuthLimit}, env...)...)...)
	clk := newClock()
	a, err := app.New(context.Background(), cfg, app.Options{Now: clk.Now})
	if err != nil {
		ln.Close()
		t.Fatalf("app.New: %v", err)
	}
	pub := httptest.NewUnstartedServer(a.Server.Handler())
	pub.Listener.Close()
	pub.Listener = ln
	pub.Start()
	g := &adminGW{app: a, pub: pub, admin: httptest.NewServer(a.Server.AdminHandler()), clk: clk}
	t.Cleanup(func() {
		g.pub.Close()
		g.admin.Close()
		a.Close()
	})
	return g, iss
}

// doRaw is do for any body (sent even when empty, as application/json)
// and a testing.TB; a response that is not JSON leaves body nil.
func (g *adminGW) doRaw(t testing.TB, method, path, body string) adminResp {
	t.Helper()
	req, err := http.NewRequest(method, g.admin.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := adminResp{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &out.body)
	return out
}

// assertionToken asks for a token authenticated by an assertion for id
// signed with key; extra is more of the form (resource=...).
func (g *adminGW) assertionToken(t *testing.T, key *signingKey, id, iss string, extra ...string) answer {
	t.Helper()
	a := key.sign(t, clientClaims(id, iss, g.clk.Now()))
	got := send(http.DefaultClient, g.pub.URL+"/oauth2/token", assertionBody(a, extra...))
	if got.err != nil {
		t.Fatalf("token request: %v", got.err)
	}
	return got
}

// TestAdminPrivateKeyJWTClient: a private_key_jwt client registered through
// the admin API gets no secret, authenticates with an assertion signed by
// its key, gets resource-bound tokens for its resources only; its secret
// cannot be rotated; after its jwks is replaced, an assertion signed with
// the old key is refused and one signed with the new key works, and the
// token minted before is no longer handed out. On memory and bolt.
func TestAdminPrivateKeyJWTClient(t *testing.T) {
	for name, env := range storeVariants(t) {
		t.Run(name, func(t *testing.T) {
			g, iss := startAdminJWT(t, env...)
			rs := discover(t, iss)
			k1, k2 := newECKey(t, "k1"), newRSAKey(t, "k2")

			r := g.do(t, "POST", "/admin/clients", adminToken, `{"id": "pkj", "scopes": ["read"], "token_endpoint_auth_method": "private_key_jwt",
				"jwks": `+jwksOf(t, k1)+`, "resources": ["`+apiB+`", "`+apiA+`"]}`)
			if r.status != http.StatusCreated {
				t.Fatalf("create: %d %s", r.status, r.raw)
			}
			if _, has := r.body["secret"]; has {
				t.Fatalf("a private_key_jwt client was given a secret: %s", r.raw)
			}
			checkClient := func(r adminResp, kid string) {
				t.Helper()
				c, _ := r.body["client"].(map[string]any)
				keys, _ := c["jwks"].(map[string]any)["keys"].([]any)
				res, _ := c["resources"].([]any)
				if c["token_endpoint_auth_method"] != "private_key_jwt" || len(keys) != 1 || keys[0].(map[string]any)["kid"] != kid ||
					len(res) != 2 || res[0] != apiA || res[1] != apiB || c["jwks_uri"] != nil {
					t.Fatalf("client = %s, want private_key_jwt with key %s and resources [%s %s]", r.raw, kid, apiA, apiB)
				}
				if strings.Contains(r.raw, "secret") {
					t.Fatalf("client JSON shows a secret: %s", r.raw)
				}
				// Only public members, exactly those of the enforced key.
				for m := range keys[0].(map[string]any) {
					switch m {
					case "kty", "kid", "crv", "x", "y", "n", "e", "alg", "use":
					case "d", "p", "q", "dp", "dq", "qi", "oth", "k":
						t.Fatalf("client JSON shows private key member %q: %s", m, r.raw)
					default:
						t.Fatalf("client JSON shows a member %q the key set does not enforce: %s", m, r.raw)
					}
				}
			}
			checkClient(r, "k1")
			checkClient(g.do(t, "GET", "/admin/clients/pkj", adminToken, ""), "k1")

			first := g.assertionToken(t, k1, "pkj", iss)
			if first.status != 200 || first.tok.AccessToken == "" || first.tok.Scope != "read" {
				t.Fatalf("token with k1: %d %s", first.status, first.raw)
			}
			if _, err := rs.validate(first.tok.AccessToken, iss, g.clk.Now); err != nil {
				t.Fatalf("default-audience token: %v", err)
			}
			// RFC 8707: a token for each registered resource, and no other.
			for _, aud := range []string{apiA, apiB} {
				got := g.assertionToken(t, k1, "pkj", iss, "resource", aud)
				if got.status != 200 {
					t.Fatalf("resource %s: %d %s", aud, got.status, got.raw)
				}
				if _, err := rs.validate(got.tok.AccessToken, aud, g.clk.Now); err != nil {
					t.Fatalf("token for %s: %v", aud, err)
				}
				other := apiA
				if aud == apiA {
					other = apiB
				}
				if _, err := rs.validate(got.tok.AccessToken, other, g.clk.Now); err == nil {
					t.Fatalf("the token for %s validated for %s", aud, other)
				}
			}
			if got := g.assertionToken(t, k1, "pkj", iss, "resource", "https://not-allowed.example/"); got.status != 400 || got.tok.Error != "invalid_target" {
				t.Fatalf("unregistered resource: %d %s, want 400 invalid_target", got.status, got.raw)
			}
			// No secret to guess, none to rotate.
			if code, tj := g.token(t, "pkj", ""); code != 401 || tj.Error != "invalid_client" {
				t.Fatalf("Basic with an empty secret: %d %+v", code, tj)
			}
			if rot := g.do(t, "POST", "/admin/clients/pkj/secret", adminToken, ""); rot.status != 400 || rot.str("error") != "invalid_request" ||
				!strings.Contains(rot.str("error_description"), "private_key_jwt") {
				t.Fatalf("rotate: %d %s, want 400 naming private_key_jwt", rot.status, rot.raw)
			}

			// The key is replaced: k1 stops working at once, k2 works.
			up := g.do(t, "PATCH", "/admin/clients/pkj", adminToken, `{"jwks": `+jwksOf(t, k2)+`}`)
			if up.status != 200 {
				t.Fatalf("patch jwks: %d %s", up.status, up.raw)
			}
			if _, has := up.body["secret"]; has {
				t.Fatalf("patch gave a secret: %s", up.raw)
			}
			checkClient(up, "k2")
			checkClient(g.do(t, "GET", "/admin/clients/pkj", adminToken, ""), "k2")
			if got := g.assertionToken(t, k1, "pkj", iss); got.status != 401 || got.tok.Error != "invalid_client" {
				t.Fatalf("token with the old key: %d %s, want 401 invalid_client", got.status, got.raw)
			}
			second := g.assertionToken(t, k2, "pkj", iss)
			if second.status != 200 {
				t.Fatalf("token with the new key: %d %s", second.status, second.raw)
			}
			if second.tok.AccessToken == first.tok.AccessToken {
				t.Fatal("the token minted under the old key was handed out after the key change")
			}
			if again := g.assertionToken(t, k2, "pkj", iss); again.tok.AccessToken != second.tok.AccessToken {
				t.Fatal("the new registration's token is not reused")
			}
		})
	}
}

// TestAdminClientResources: a store-managed secret client registered with
// resources gets the resource-bound token, as a configured one does; a
// PATCH of its resources takes effect at once.
func TestAdminClientResources(t *testing.T) {
	g, iss := startAdminJWT(t)
	rs := discover(t, iss)
	id, secret := g.create(t, `{"id": "res", "scopes": ["read"], "resources": ["`+apiA+`"]}`)
	get := func(aud string) (int, tokenJSON) {
		resp, tj := post(t, g.pub.URL+"/oauth2/token", basic(id, secret), "grant_type=client_credentials&resource="+url.QueryEscape(aud))
		return resp.StatusCode, tj
	}
	code, tj := get(apiA)
	if code != 200 {
		t.Fatalf("resource %s: %d %+v", apiA, code, tj)
	}
	if _, err := rs.validate(tj.AccessToken, apiA, g.clk.Now); err != nil {
		t.Fatalf("token for %s: %v", apiA, err)
	}
	if code, tj := get(apiB); code != 400 || tj.Error != "invalid_target" {
		t.Fatalf("unregistered %s: %d %+v", apiB, code, tj)
	}
	if r := g.do(t, "PATCH", "/admin/clients/res", adminToken, `{"resources": ["`+apiB+`"]}`); r.status != 200 {
		t.Fatalf("patch resources: %d %s", r.status, r.raw)
	}
	if code, tj := get(apiB); code != 200 {
		t.Fatalf("%s after the patch: %d %+v", apiB, code, tj)
	}
	if code, tj := get(apiA); code != 400 || tj.Error != "invalid_target" {
		t.Fatalf("%s after the patch: %d %+v, want invalid_target", apiA, code, tj)
	}
}

// TestAdminPrivateKeyJWTJWKSURI: a client registered with a jwks_uri (http
// on loopback, allowed by assertions.allow_http_jwks_uri) authenticates
// with the keys served there; moving it to another jwks_uri moves its keys.
func TestAdminPrivateKeyJWTJWKSURI(t *testing.T) {
	g, iss := startAdminJWT(t, "TOKENGW_ASSERTIONS__ALLOW_HTTP_JWKS_URI=true")
	k1, k2 := newECKey(t, "k1"), newECKey(t, "k2")
	js1, js2 := newJWKSServer(t, jwksOf(t, k1)), newJWKSServer(t, jwksOf(t, k2))
	r := g.do(t, "POST", "/admin/clients", adminToken, `{"id": "uri", "scopes": ["read"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "`+js1.srv.URL+`"}`)
	if r.status != http.StatusCreated || r.str("client", "jwks_uri") != js1.srv.URL {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	if got := g.assertionToken(t, k1, "uri", iss); got.status != 200 {
		t.Fatalf("token with k1: %d %s", got.status, got.raw)
	}
	if r := g.do(t, "PATCH", "/admin/clients/uri", adminToken, `{"jwks_uri": "`+js2.srv.URL+`"}`); r.status != 200 || r.str("client", "jwks_uri") != js2.srv.URL {
		t.Fatalf("patch jwks_uri: %d %s", r.status, r.raw)
	}
	if got := g.assertionToken(t, k1, "uri", iss); got.status != 401 || got.tok.Error != "invalid_client" {
		t.Fatalf("token with k1 after the move: %d %s, want 401 invalid_client", got.status, got.raw)
	}
	if got := g.assertionToken(t, k2, "uri", iss); got.status != 200 {
		t.Fatalf("token with k2: %d %s", got.status, got.raw)
	}
	if js1.fetches.Load() == 0 || js2.fetches.Load() == 0 {
		t.Fatalf("fetches: %d, %d; want both key sets fetched", js1.fetches.Load(), js2.fetches.Load())
	}
}

// TestAdminSwitchAuthMethod: a secret client moved to private_key_jwt
// loses its secret at once; moved back, it gets a new generated secret,
// returned by the PATCH, and its keys stop working.
func TestAdminSwitchAuthMethod(t *testing.T) {
	g, iss := startAdminJWT(t)
	key := newECKey(t, "k1")
	id, secret := g.create(t, `{"id": "mover", "scopes": ["read"]}`)
	if code, _ := g.token(t, id, secret); code != 200 {
		t.Fatalf("secret client: %d", code)
	}
	r := g.do(t, "PATCH", "/admin/clients/mover", adminToken, `{"token_endpoint_auth_method": "private_key_jwt", "jwks": `+jwksOf(t, key)+`}`)
	if r.status != 200 || r.str("client", "token_endpoint_auth_method") != "private_key_jwt" {
		t.Fatalf("to private_key_jwt: %d %s", r.status, r.raw)
	}
	if code, tj := g.token(t, id, secret); code != 401 || tj.Error != "invalid_client" {
		t.Fatalf("the old secret after the switch: %d %+v", code, tj)
	}
	if got := g.assertionToken(t, key, id, iss); got.status != 200 {
		t.Fatalf("assertion after the switch: %d %s", got.status, got.raw)
	}
	r = g.do(t, "PATCH", "/admin/clients/mover", adminToken, `{"token_endpoint_auth_method": "client_secret_basic"}`)
	if r.status != 200 || r.str("secret") == "" || r.str("client", "token_endpoint_auth_method") != "client_secret_basic" {
		t.Fatalf("back to a secret: %d %s, want a new secret", r.status, r.raw)
	}
	if _, has := r.body["client"].(map[string]any)["jwks"]; has {
		t.Fatalf("the key set was kept: %s", r.raw)
	}
	if code, _ := g.token(t, id, r.str("secret")); code != 200 {
		t.Fatalf("the new secret: %d", code)
	}
	if got := g.assertionToken(t, key, id, iss); got.status != 401 || got.tok.Error != "invalid_client" {
		t.Fatalf("assertion after switching back: %d %s", got.status, got.raw)
	}
}

// TestAdminAuthFieldValidation: every bad registration of the auth fields
// is a 400 invalid_request whose JSON names the field.
func TestAdminAuthFieldValidation(t *testing.T) {
	g := startAdmin(t, testConfig(t, adminEnv()...), nil, nil)
	jwks := jwksOf(t, newECKey(t, "k1"))
	g.create(t, `{"id": "plain", "scopes": ["read"]}`)
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		field, desc              string
	}{
		{"unknown method", "POST", "/admin/clients", `{"scopes": ["read"], "token_endpoint_auth_method": "tls_client_auth"}`, 400, "token_endpoint_auth_method", "must be client_secret_basic"},
		{"client_secret_jwt", "POST", "/admin/clients", `{"scopes": ["read"], "token_endpoint_auth_method": "client_secret_jwt"}`, 400, "token_endpoint_auth_method", "stored only as hashes"},
		{"none", "POST", "/admin/clients", `{"scopes": ["read"], "token_endpoint_auth_method": "none"}`, 400, "token_endpoint_auth_method", "must be"},
		{"method not a string", "POST", "/admin/clients", `{"scopes": ["read"], "token_endpoint_auth_method": 1}`, 400, "token_endpoint_auth_method", "must be a JSON string"},
		{"both jwks and jwks_uri", "POST", "/admin/clients", `{"scopes": ["read"], "token_endpoint_auth_method": "private_key_jwt", "jwks": ` + jwks + `, "jwks_uri": "https://idp.example/jwks"}`, 400, "jwks", "exclusive"},
		{"neither", "POST", "/admin/clients", `{"scopes": ["read"], "token_endpoint_auth_method": "private_key_jwt"}`, 400, "jwks", "one of jwks or jwks_uri"},
		{"jwks a string", "POST", "/admin/clients", `{"scopes": ["read"], "token_endpoint_auth_method": "private_key_jwt", "jwks": "{\"keys\": []}"}`, 400, "jwks", "JSON object"},
		{"jwks not a set", "POST", "/admin/clients", `{"scopes": ["read"], "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": 5}}`, 400, "jwks", "not a JWK Set"},
		{"jwks empty", "POST", "/admin/clients", `{"scopes": ["read"], "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": []}}`, 400, "jwks", "no usable signing key"},
		{"jwks RSA private factors without d", "POST", "/admin/clients", `{"scopes": ["read"], "token_endpoint_auth_method": "private_key_jwt", "jwks": ` + rsaFactorsJWKS(t) + `}`, 400, "jwks", "public keys only"},
		{"jwks symmetric", "POST", "/admin/clients", `{"scopes": ["read"], "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}`, 400, "jwks", "public keys only"},
		{"http jwks_uri", "POST", "/admin/clients", `{"scopes": ["read"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://idp.example/jwks"}`, 400, "jwks_uri", "must be https"},
		{"relative jwks_uri", "POST", "/admin/clients", `{"scopes": ["read"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "/jwks"}`, 400, "jwks_uri", "absolute URL"},
		{"jwks for a secret client", "POST", "/admin/clients", `{"scopes": ["read"], "jwks": ` + jwks + `}`, 400, "jwks", "need token_endpoint_auth_method: private_key_jwt"},
		{"jwks_uri for a secret client", "POST", "/admin/clients", `{"scopes": ["read"], "token_endpoint_auth_method": "client_secret_post", "jwks_uri": "https://idp.example/jwks"}`, 400, "jwks_uri", "need token_endpoint_auth_method"},
		{"relative resource", "POST", "/admin/clients", `{"scopes": ["read"], "resources": ["https://api.example/", "api/v1"]}`, 400, "resources[1]", "absolute URI"},
		{"resource with fragment", "POST", "/admin/clients", `{"scopes": ["read"], "resources": ["https://api.example/#top"]}`, 400, "resources[0]", "fragment"},
		{"resources not strings", "POST", "/admin/clients", `{"scopes": ["read"], "resources": [1]}`, 400, "resources", "must be a JSON string"},
		{"patch client_secret_jwt", "PATCH", "/admin/clients/plain", `{"token_endpoint_auth_method": "client_secret_jwt"}`, 400, "token_endpoint_auth_method", "not offered"},
		{"patch jwks on a secret client", "PATCH", "/admin/clients/plain", `{"jwks": ` + jwks + `}`, 400, "jwks", "need token_endpoint_auth_method"},
		{"patch to private_key_jwt without keys", "PATCH", "/admin/clients/plain", `{"token_endpoint_auth_method": "private_key_jwt"}`, 400, "jwks", "one of jwks or jwks_uri"},
		{"patch bad resource", "PATCH", "/admin/clients/plain", `{"resources": ["#x"]}`, 400, "resources[0]", ""},
		{"patch bad limit", "PATCH", "/admin/clients/plain", `{"limit": 5}`, 400, "limit", "null or an object"},
		{"patch no scopes", "PATCH", "/admin/clients/plain", `{"scopes": []}`, 400, "scopes", "at least one"},
		{"patch unknown field", "PATCH", "/admin/clients/plain", `{"secret": "mine"}`, 400, "", `unknown field "secret"`},
		{"patch id", "PATCH", "/admin/clients/plain", `{"id": "other"}`, 400, "", `unknown field "id"`},
		{"patch config client", "PATCH", "/admin/clients/demo", `{"scopes": ["read"]}`, 409, "", "read-only"},
		{"patch unknown client", "PATCH", "/admin/clients/nobody", `{"scopes": ["read"]}`, 404, "", `"nobody"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := g.do(t, tc.method, tc.path, adminToken, tc.body)
			wantCode := map[int]string{400: "invalid_request", 404: "not_found", 409: "conflict"}[tc.status]
			if r.status != tc.status || r.str("error") != wantCode || r.str("field") != tc.field || !strings.Contains(r.str("error_description"), tc.desc) {
				t.Fatalf("%d %s, want %d %s for field %q containing %q", r.status, r.raw, tc.status, wantCode, tc.field, tc.desc)
			}
		})
	}
	// Nothing was created, and "plain" is unchanged.
	if r := g.do(t, "GET", "/admin/clients", adminToken, ""); strings.Count(r.raw, `"source":"store"`) != 1 {
		t.Fatalf("list after refused requests: %s", r.raw)
	}
	if r := g.do(t, "GET", "/admin/clients/plain", adminToken, ""); r.str("client", "token_endpoint_auth_method") != "client_secret_basic" || strings.Contains(r.raw, "resources") {
		t.Fatalf("plain after refused patches: %s", r.raw)
	}
}

// TestAdminJWKSStoredAsEnforced: the jwks a client is registered with is
// stored and shown as the canonical set of the public keys it enforces:
// members a key set does not use are dropped, and so is a duplicate key.
func TestAdminJWKSStoredAsEnforced(t *testing.T) {
	g := startAdmin(t, testConfig(t, adminEnv()...), nil, nil)
	var m map[string]any
	if err := json.Unmarshal(newECKey(t, "k1").publicJWK(t), &m); err != nil {
		t.Fatal(err)
	}
	m["x5u"], m["note"] = "https://elsewhere.example/", "hello"
	one, _ := json.Marshal(m)
	body := `{"id": "pkj", "scopes": ["read"], "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [` + string(one) + `,` + string(one) + `], "extra": 1}}`
	if r := g.do(t, "POST", "/admin/clients", adminToken, body); r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	r := g.do(t, "GET", "/admin/clients/pkj", adminToken, "")
	c, _ := r.body["client"].(map[string]any)
	set, _ := c["jwks"].(map[string]any)
	keys, _ := set["keys"].([]any)
	if len(set) != 1 || len(keys) != 1 {
		t.Fatalf("jwks shown = %s; want one key and nothing beside \"keys\"", r.raw)
	}
	for member := range keys[0].(map[string]any) {
		if member == "x5u" || member == "note" {
			t.Fatalf("jwks shown keeps %q, which is not enforced: %s", member, r.raw)
		}
	}
	if keys[0].(map[string]any)["kid"] != "k1" || keys[0].(map[string]any)["x"] != m["x"] {
		t.Fatalf("jwks shown = %s; want k1's public key", r.raw)
	}
}

// rsaFactorsJWKS is a JWK Set of an RSA key with its public members and
// the private factors p, q, dp, dq, qi, but no d.
func rsaFactorsJWKS(t *testing.T) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b := func(i *big.Int) string { return base64.RawURLEncoding.EncodeToString(i.Bytes()) }
	raw, err := json.Marshal(map[string]any{"keys": []any{map[string]string{"kty": "RSA", "kid": "r", "n": b(k.N), "e": "AQAB",
		"p": b(k.Primes[0]), "q": b(k.Primes[1]), "dp": b(k.Precomputed.Dp), "dq": b(k.Precomputed.Dq), "qi": b(k.Precomputed.Qinv)}}})
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// FuzzAdminClientBody: any body sent to create or patch a client is
// answered with a JSON object and a status below 500; a client that is
// created or patched reads back with its registration's method.
func FuzzAdminClientBody(f *testing.F) {
	jwks := `{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`
	for _, s := range []string{
		`{"scopes": ["read"]}`,
		`{"scopes": "read", "token_endpoint_auth_method": "private_key_jwt", "jwks": ` + jwks + `}`,
		`{"scopes": ["read"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://idp.example/jwks", "resources": ["urn:a"]}`,
		`{"jwks": {"keys": [{"kty": "oct"}]}}`,
		`{"jwks": null, "limit": null, "resources": []}`,
		`{"token_endpoint_auth_method": "client_secret_jwt"}`,
		`{"jwks": {"keys": [` + strings.Repeat(`{"kty":"EC"},`, 50) + `{}]}}`,
		`{"resources": ["#", "a:b", "https://x/%zz"]}`,
	} {
		f.Add(s)
	}
	g := startAdmin(f, testConfig(f, adminEnv()...), nil, nil)
	g.create(f, `{"id": "target", "scopes": ["read"]}`)
	f.Fuzz(func(t *testing.T, body string) {
		for _, m := range []struct{ method, path string }{{"POST", "/admin/clients"}, {"PATCH", "/admin/clients/target"}} {
			r := g.doRaw(t, m.method, m.path, body)
			if r.status >= 500 || r.body == nil {
				t.Fatalf("%s %s %q: %d %s", m.method, m.path, body, r.status, r.raw)
			}
			if r.status >= 400 && r.str("error") == "" {
				t.Fatalf("%s %q: %d without an error code: %s", m.method, body, r.status, r.raw)
			}
			if r.status < 300 {
				c, _ := r.body["client"].(map[string]any)
				if method := c["token_endpoint_auth_method"]; method != "client_secret_basic" && method != "private_key_jwt" {
					t.Fatalf("%s %q: method %v", m.method, body, method)
				}
			}
		}
	})
}
