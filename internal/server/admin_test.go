package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/app"
	"github.com/tokengw/tokengw/internal/clients"
	"github.com/tokengw/tokengw/internal/config"
	"github.com/tokengw/tokengw/internal/reuse"
	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/memory"
)

const adminToken = "test-admin-token-0123456789"

// adminEnv: an admin token, cheap argon2id for generated secrets, and no
// failed-authentication budget per IP (the tests expect many 401s).
func adminEnv(extra ...string) []string {
	return append([]string{
		"TOKENGW_SERVER__ADMIN_TOKEN=" + adminToken,
		"TOKENGW_AUTH__ARGON2__MEMORY_KIB=1024",
		"TOKENGW_AUTH__ARGON2__TIME=1",
		"TOKENGW_LIMITS__PER_IP_FAILED_AUTH__RATE=0",
	}, extra...)
}

// adminGW is a gateway with its public and admin listeners.
type adminGW struct {
	app   *app.App
	pub   *httptest.Server
	admin *httptest.Server
	clk   *clock
}

func startAdmin(t testing.TB, cfg *config.Config, clk *clock, shared store.Store) *adminGW {
	t.Helper()
	if clk == nil {
		clk = newClock()
	}
	a, err := app.New(context.Background(), cfg, app.Options{Now: clk.Now, Store: shared})
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	g := &adminGW{app: a, pub: httptest.NewServer(a.Server.Handler()), admin: httptest.NewServer(a.Server.AdminHandler()), clk: clk}
	t.Cleanup(func() {
		g.pub.Close()
		g.admin.Close()
		a.Close()
	})
	return g
}

// storeVariants are the stores the admin tests run on.
func storeVariants(t *testing.T) map[string][]string {
	return map[string][]string{
		"memory": nil,
		"bolt":   {"TOKENGW_STORE__DRIVER=bolt", "TOKENGW_STORE__BOLT__PATH=" + filepath.Join(t.TempDir(), "tokengw.db")},
	}
}

type adminResp struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

func (r adminResp) str(path ...string) string {
	var v any = r.body
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	s, _ := v.(string)
	return s
}

func (g *adminGW) do(t testing.TB, method, path, token, body string) adminResp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, g.admin.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := adminResp{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			t.Fatalf("%s %s: response is not JSON: %q", method, path, raw)
		}
	}
	return out
}

// token asks the public listener for a token with id and secret.
func (g *adminGW) token(t *testing.T, id, secret string) (int, tokenJSON) {
	t.Helper()
	resp, tj := post(t, g.pub.URL+"/oauth2/token", basic(id, secret), "grant_type=client_credentials")
	return resp.StatusCode, tj
}

func (g *adminGW) create(t testing.TB, body string) (id, secret string) {
	t.Helper()
	r := g.do(t, "POST", "/admin/clients", adminToken, body)
	if r.status != http.StatusCreated {
		t.Fatalf("create %s: %d %s", body, r.status, r.raw)
	}
	return r.str("client", "id"), r.str("secret")
}

func TestAdminRequiresToken(t *testing.T) {
	g := startAdmin(t, testConfig(t, adminEnv()...), nil, nil)
	for _, tc := range []struct {
		name, method, path, auth, wantChallenge string
	}{
		{"none on list", "GET", "/admin/clients", "", `Bearer realm="tokengw-admin"`},
		{"none on create", "POST", "/admin/clients", "", `Bearer realm="tokengw-admin"`},
		{"none on delete", "DELETE", "/admin/clients/demo", "", `Bearer realm="tokengw-admin"`},
		{"none on an unknown path", "GET", "/admin/nothing", "", `Bearer realm="tokengw-admin"`},
		{"wrong token", "GET", "/admin/clients", "Bearer wrong-token-0123456789", `error="invalid_token"`},
		{"token prefix", "GET", "/admin/clients", "Bearer " + adminToken[:10], `error="invalid_token"`},
		{"token plus suffix", "GET", "/admin/clients", "Bearer " + adminToken + "x", `error="invalid_token"`},
		{"basic scheme", "GET", "/admin/clients", "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+adminToken)), `error="invalid_request"`},
		{"bare token", "GET", "/admin/clients", adminToken, `error="invalid_request"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, g.admin.URL+tc.path, strings.NewReader(`{"scopes":["read"]}`))
			req.Header.Set("Content-Type", "application/json")
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]string
			json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != 401 || body["error"] != "invalid_token" || body["error_description"] == "" {
				t.Fatalf("%d %v, want 401 invalid_token", resp.StatusCode, body)
			}
			if ch := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer ") || !strings.Contains(ch, tc.wantChallenge) {
				t.Fatalf("WWW-Authenticate = %q, want %q", ch, tc.wantChallenge)
			}
		})
	}
	// Nothing was created by the refused requests.
	if r := g.do(t, "GET", "/admin/clients", adminToken, ""); r.status != 200 || strings.Count(r.raw, `"id"`) != 3 {
		t.Fatalf("list: %d %s", r.status, r.raw)
	}
}

// TestAdminOffWithoutToken: without server.admin_token the admin API is not
// mounted at all; the rest of the admin listener is.
func TestAdminOffWithoutToken(t *testing.T) {
	g := startAdmin(t, testConfig(t, "TOKENGW_LIMITS__PER_IP_FAILED_AUTH__RATE=0"), nil, nil)
	for _, tok := range []string{"", adminToken} {
		req, _ := http.NewRequest("GET", g.admin.URL+"/admin/clients", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("admin API without a configured token: %d", resp.StatusCode)
		}
	}
	resp, err := http.Get(g.admin.URL + "/debug/pprof/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("pprof: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestAdminClientLifecycle: create, read, list, authenticate, rotate,
// delete, on the memory and the bolt store.
func TestAdminClientLifecycle(t *testing.T) {
	for name, env := range storeVariants(t) {
		t.Run(name, func(t *testing.T) {
			g := startAdmin(t, testConfig(t, adminEnv(env...)...), nil, nil)

			r := g.do(t, "POST", "/admin/clients", adminToken,
				`{"id": "svc-a", "scopes": ["write", "read", "read"], "token_ttl": "30m", "limit": {"rate": 10, "burst": 20}, "introspect": true}`)
			if r.status != http.StatusCreated {
				t.Fatalf("create: %d %s", r.status, r.raw)
			}
			if loc := r.header.Get("Location"); loc != "/admin/clients/svc-a" {
				t.Fatalf("Location = %q", loc)
			}
			if r.header.Get("Cache-Control") != "no-store" {
				t.Fatal("a response with a secret must not be cached")
			}
			secret := r.str("secret")
			if raw, err := base64.RawURLEncoding.DecodeString(secret); err != nil || len(raw) < 32 {
				t.Fatalf("secret %q: %d bytes, %v; want >= 256 bits of base64url", secret, len(raw), err)
			}
			want := `{"id":"svc-a","scopes":["read","write"],"token_ttl":"30m0s","limit":{"rate":10,"burst":20},"introspect":true,"token_endpoint_auth_method":"client_secret_basic","source":"store","created_at":"2026-11-24T08:00:00Z","updated_at":"2026-11-24T08:00:00Z"}`
			if got, _ := json.Marshal(r.body["client"]); !jsonEqual(t, string(got), want) {
				t.Fatalf("client = %s\nwant     %s", got, want)
			}

			// The new client authenticates at once, and its limit applies.
			code, tj := g.token(t, "svc-a", secret)
			if code != 200 || tj.Scope != "read write" || tj.ExpiresIn != 1800 {
				t.Fatalf("token: %d %+v", code, tj)
			}

			// Reads never show a secret or a hash.
			one := g.do(t, "GET", "/admin/clients/svc-a", adminToken, "")
			list := g.do(t, "GET", "/admin/clients", adminToken, "")
			for _, x := range []adminResp{one, list} {
				if x.status != 200 || strings.Contains(x.raw, secret) || strings.Contains(x.raw, "argon2") ||
					strings.Contains(x.raw, `"secret"`) || strings.Contains(x.raw, "hash") {
					t.Fatalf("read: %d %s", x.status, x.raw)
				}
			}
			if one.str("client", "id") != "svc-a" || one.str("client", "source") != "store" {
				t.Fatalf("get: %s", one.raw)
			}
			var ids, sources []string
			for _, c := range list.body["clients"].([]any) {
				ids = append(ids, c.(map[string]any)["id"].(string))
				sources = append(sources, c.(map[string]any)["source"].(string))
			}
			if strings.Join(ids, ",") != "demo,nogrant,odd:id %+ with spaces,svc-a" || strings.Join(sources, ",") != "config,config,config,store" {
				t.Fatalf("list ids %q sources %q", ids, sources)
			}

			// Rotation: the old secret fails at once, the new one works.
			rot := g.do(t, "POST", "/admin/clients/svc-a/secret", adminToken, "")
			if rot.status != 200 || rot.str("secret") == "" || rot.str("secret") == secret || rot.str("client", "id") != "svc-a" {
				t.Fatalf("rotate: %d %s", rot.status, rot.raw)
			}
			if code, tj := g.token(t, "svc-a", secret); code != 401 || tj.Error != "invalid_client" {
				t.Fatalf("old secret after rotation: %d %+v", code, tj)
			}
			newSecret := rot.str("secret")
			if code, _ := g.token(t, "svc-a", newSecret); code != 200 {
				t.Fatalf("new secret: %d", code)
			}

			// Deletion: 204, then 401 and 404.
			if d := g.do(t, "DELETE", "/admin/clients/svc-a", adminToken, ""); d.status != http.StatusNoContent || d.raw != "" {
				t.Fatalf("delete: %d %s", d.status, d.raw)
			}
			if code, _ := g.token(t, "svc-a", newSecret); code != 401 {
				t.Fatalf("token after delete: %d", code)
			}
			for _, x := range []adminResp{
				g.do(t, "GET", "/admin/clients/svc-a", adminToken, ""),
				g.do(t, "DELETE", "/admin/clients/svc-a", adminToken, ""),
				g.do(t, "POST", "/admin/clients/svc-a/secret", adminToken, ""),
			} {
				if x.status != 404 || x.str("error") != "not_found" || !strings.Contains(x.str("error_description"), `"svc-a"`) {
					t.Fatalf("after delete: %d %s", x.status, x.raw)
				}
			}
		})
	}
}

func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatal(err)
	}
	ax, _ := json.Marshal(x)
	by, _ := json.Marshal(y)
	return string(ax) == string(by)
}

// TestAdminGeneratedIDAndEscapedIDs: an id is generated when absent, and
// ids with '/', '%' and spaces work in paths when escaped.
func TestAdminGeneratedIDAndEscapedIDs(t *testing.T) {
	g := startAdmin(t, testConfig(t, adminEnv()...), nil, nil)
	id, secret := g.create(t, `{"scopes": "read  write"}`)
	if len(id) < 20 || !strings.HasPrefix(g.do(t, "GET", "/admin/clients/"+id, adminToken, "").str("client", "id"), id) {
		t.Fatalf("generated id %q", id)
	}
	if code, tj := g.token(t, id, secret); code != 200 || tj.Scope != "read write" {
		t.Fatalf("token: %d %+v", code, tj)
	}
	const odd = "team/a b%c:d"
	_, oddSecret := g.create(t, `{"id": "team/a b%c:d", "scopes": ["read"]}`)
	esc := "/admin/clients/team%2Fa%20b%25c:d"
	if r := g.do(t, "GET", esc, adminToken, ""); r.status != 200 || r.str("client", "id") != odd {
		t.Fatalf("get escaped: %d %s", r.status, r.raw)
	}
	if code, _ := g.token(t, odd, oddSecret); code != 200 {
		t.Fatalf("odd id token: %d", code)
	}
	rot := g.do(t, "POST", esc+"/secret", adminToken, "")
	if rot.status != 200 {
		t.Fatalf("rotate escaped: %d %s", rot.status, rot.raw)
	}
	if r := g.do(t, "DELETE", esc, adminToken, ""); r.status != 204 {
		t.Fatalf("delete escaped: %d %s", r.status, r.raw)
	}
	if code, _ := g.token(t, odd, rot.str("secret")); code != 401 {
		t.Fatalf("odd id after delete: %d", code)
	}
}

// TestAdminValidation: every malformed request is a 4xx with a JSON error
// that says what is wrong.
func TestAdminValidation(t *testing.T) {
	g := startAdmin(t, testConfig(t, adminEnv()...), nil, nil)
	g.create(t, `{"id": "taken", "scopes": ["read"]}`)
	for _, tc := range []struct {
		name, method, path, ctype, body string
		status                          int
		code, desc                      string
	}{
		{"malformed JSON", "POST", "/admin/clients", "", `{"scopes": [`, 400, "invalid_request", "malformed JSON"},
		{"empty body", "POST", "/admin/clients", "", ``, 400, "invalid_request", "empty body"},
		{"unknown field", "POST", "/admin/clients", "", `{"scopes": ["read"], "secret": "mine"}`, 400, "invalid_request", `unknown field "secret"`},
		{"trailing data", "POST", "/admin/clients", "", `{"scopes": ["read"]} {}`, 400, "invalid_request", "trailing data"},
		{"not an object", "POST", "/admin/clients", "", `["read"]`, 400, "invalid_request", "the body must be a JSON object"},
		{"wrong type", "POST", "/admin/clients", "", `{"scopes": ["read"], "introspect": "yes"}`, 400, "invalid_request", "introspect: must be a JSON boolean"},
		{"rate as string", "POST", "/admin/clients", "", `{"scopes": ["read"], "limit": {"rate": "5"}}`, 400, "invalid_request", "limit.rate: must be a JSON number"},
		{"scopes not strings", "POST", "/admin/clients", "", `{"scopes": [1]}`, 400, "invalid_request", "scopes: must be an array"},
		{"content type", "POST", "/admin/clients", "text/plain", `{"scopes": ["read"]}`, 415, "invalid_request", "application/json"},
		{"no content type", "POST", "/admin/clients", "-", `{"scopes": ["read"]}`, 415, "invalid_request", "application/json"},
		{"body too large", "POST", "/admin/clients", "", `{"scopes": ["` + strings.Repeat("a", 70_000) + `"]}`, 413, "invalid_request", "larger than"},
		{"no scopes", "POST", "/admin/clients", "", `{"id": "x"}`, 400, "invalid_request", "scopes: at least one"},
		{"empty scopes", "POST", "/admin/clients", "", `{"scopes": []}`, 400, "invalid_request", "scopes: at least one"},
		{"bad scope", "POST", "/admin/clients", "", `{"scopes": ["read", "a\"b"]}`, 400, "invalid_request", "scopes[1]"},
		{"scope with a space in a list", "POST", "/admin/clients", "", `{"scopes": ["read write"]}`, 400, "invalid_request", "scopes[0]"},
		{"empty id", "POST", "/admin/clients", "", `{"id": "", "scopes": ["read"]}`, 400, "invalid_request", "id: must not be empty"},
		{"non-ASCII id", "POST", "/admin/clients", "", `{"id": "caf\u00e9", "scopes": ["read"]}`, 400, "invalid_request", "id: must be printable ASCII"},
		{"control char id", "POST", "/admin/clients", "", `{"id": "a\nb", "scopes": ["read"]}`, 400, "invalid_request", "id: must be printable ASCII"},
		{"padded id", "POST", "/admin/clients", "", `{"id": " a", "scopes": ["read"]}`, 400, "invalid_request", "id: must not start or end"},
		{"long id", "POST", "/admin/clients", "", `{"id": "` + strings.Repeat("a", 300) + `", "scopes": ["read"]}`, 400, "invalid_request", "id: longer than"},
		{"bad ttl", "POST", "/admin/clients", "", `{"scopes": ["read"], "token_ttl": "soon"}`, 400, "invalid_request", "token_ttl"},
		{"ttl as number", "POST", "/admin/clients", "", `{"scopes": ["read"], "token_ttl": 3600}`, 400, "invalid_request", "token_ttl"},
		{"ttl too short", "POST", "/admin/clients", "", `{"scopes": ["read"], "token_ttl": "10ms"}`, 400, "invalid_request", "token_ttl: must be between"},
		{"ttl too long", "POST", "/admin/clients", "", `{"scopes": ["read"], "token_ttl": "1000h"}`, 400, "invalid_request", "token_ttl: must be between"},
		{"negative rate", "POST", "/admin/clients", "", `{"scopes": ["read"], "limit": {"rate": -1, "burst": 1}}`, 400, "invalid_request", "limit.rate"},
		{"rate without burst", "POST", "/admin/clients", "", `{"scopes": ["read"], "limit": {"rate": 5}}`, 400, "invalid_request", "limit.burst"},
		{"unknown limit field", "POST", "/admin/clients", "", `{"scopes": ["read"], "limit": {"rate": 5, "burst": 1, "per": "s"}}`, 400, "invalid_request", "unknown field"},
		{"config id", "POST", "/admin/clients", "", `{"id": "demo", "scopes": ["read"]}`, 409, "conflict", "configuration file"},
		{"existing id", "POST", "/admin/clients", "", `{"id": "taken", "scopes": ["read"]}`, 409, "conflict", `"taken" exists already`},
		{"rotate config client", "POST", "/admin/clients/demo/secret", "", ``, 409, "conflict", "read-only"},
		{"delete config client", "DELETE", "/admin/clients/demo", "", ``, 409, "conflict", "read-only"},
		{"get unknown", "GET", "/admin/clients/nobody", "", ``, 404, "not_found", `"nobody"`},
		{"unknown path", "GET", "/admin/users", "", ``, 404, "not_found", "/admin/clients"},
		{"too deep", "GET", "/admin/clients/taken/secret/x", "", ``, 404, "not_found", ""},
		{"other sub-resource", "POST", "/admin/clients/taken/scopes", "", ``, 404, "not_found", ""},
		{"put collection", "PUT", "/admin/clients", "", ``, 405, "invalid_request", "method"},
		{"put client", "PUT", "/admin/clients/taken", "", ``, 405, "invalid_request", "method"},
		{"patch collection", "PATCH", "/admin/clients", "", ``, 405, "invalid_request", "method"},
		{"get secret", "GET", "/admin/clients/taken/secret", "", ``, 405, "invalid_request", "method"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rd io.Reader
			if tc.body != "" {
				rd = strings.NewReader(tc.body)
			}
			req, _ := http.NewRequest(tc.method, g.admin.URL+tc.path, rd)
			req.Header.Set("Authorization", "Bearer "+adminToken)
			switch tc.ctype {
			case "":
				req.Header.Set("Content-Type", "application/json; charset=utf-8")
			case "-":
			default:
				req.Header.Set("Content-Type", tc.ctype)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]string
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("%d: body is not a JSON error: %v", resp.StatusCode, err)
			}
			if resp.StatusCode != tc.status || body["error"] != tc.code || !strings.Contains(body["error_description"], tc.desc) {
				t.Fatalf("%d %v, want %d %s containing %q", resp.StatusCode, body, tc.status, tc.code, tc.desc)
			}
			if resp.StatusCode == 405 && resp.Header.Get("Allow") == "" {
				t.Fatal("405 without Allow")
			}
		})
	}
	// Only "taken" was created.
	if r := g.do(t, "GET", "/admin/clients", adminToken, ""); strings.Count(r.raw, `"source":"store"`) != 1 {
		t.Fatalf("list after refused creates: %s", r.raw)
	}
}

// TestAdminChangesStopReuse: a rotated client's and a deleted client's
// tokens are no longer handed out (their reuse rows are cleared), and a
// client re-created under the same id gets a fresh token.
func TestAdminChangesStopReuse(t *testing.T) {
	ctx := context.Background()
	g := startAdmin(t, testConfig(t, adminEnv()...), nil, nil)
	_, secret := g.create(t, `{"id": "svc", "scopes": ["read"]}`)
	_, t1 := g.token(t, "svc", secret)
	if _, again := g.token(t, "svc", secret); again.AccessToken != t1.AccessToken {
		t.Fatal("no reuse before rotation: the test would prove nothing")
	}
	old, err := g.app.Store.Client(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	oldKey := reuse.ReuseKey(reuse.Request{Scope: "read", Fingerprint: clients.Fingerprint(old)})
	if _, err := g.app.Store.Current(ctx, "svc", oldKey); err != nil {
		t.Fatalf("reuse row before rotation: %v", err)
	}

	rot := g.do(t, "POST", "/admin/clients/svc/secret", adminToken, "")
	if _, err := g.app.Store.Current(ctx, "svc", oldKey); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("reuse row after rotation: %v, want ErrNotFound", err)
	}
	code, t2 := g.token(t, "svc", rot.str("secret"))
	if code != 200 || t2.AccessToken == t1.AccessToken {
		t.Fatalf("after rotation: %d, same token %v", code, t2.AccessToken == t1.AccessToken)
	}

	rotated, _ := g.app.Store.Client(ctx, "svc")
	key2 := reuse.ReuseKey(reuse.Request{Scope: "read", Fingerprint: clients.Fingerprint(rotated)})
	if r := g.do(t, "DELETE", "/admin/clients/svc", adminToken, ""); r.status != 204 {
		t.Fatalf("delete: %d", r.status)
	}
	if _, err := g.app.Store.Current(ctx, "svc", key2); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("reuse row after delete: %v, want ErrNotFound", err)
	}
	_, secret3 := g.create(t, `{"id": "svc", "scopes": ["read"]}`)
	code, t3 := g.token(t, "svc", secret3)
	if code != 200 || t3.AccessToken == t1.AccessToken || t3.AccessToken == t2.AccessToken {
		t.Fatalf("re-created client: %d, reused an old token", code)
	}
}

// TestAdminTwoReplicas: two gateways on one store. A change made through
// A's admin API holds on A at once and on B once auth.client_refresh has
// passed (injected clock, no sleeping): a new client, a rotated secret and
// a removed client.
func TestAdminTwoReplicas(t *testing.T) {
	clk := newClock()
	shared := memory.New(memory.Options{Now: clk.Now})
	t.Cleanup(func() { shared.Close() })
	a := startAdmin(t, testConfig(t, adminEnv()...), clk, shared)
	b := startAdmin(t, testConfig(t, adminEnv()...), clk, shared)
	const bound = 5 * time.Second // the default auth.client_refresh

	// B has looked the id up and cached "unknown".
	if code, _ := b.token(t, "svc", "nothing-yet"); code != 401 {
		t.Fatalf("B before create: %d", code)
	}
	_, s1 := a.create(t, `{"id": "svc", "scopes": ["read"]}`)
	if code, _ := a.token(t, "svc", s1); code != 200 {
		t.Fatalf("A right after create: %d", code)
	}
	if code, _ := b.token(t, "svc", s1); code != 401 {
		t.Fatalf("B within the bound: %d (the cached unknown answer should still hold)", code)
	}
	clk.Advance(bound)
	if code, _ := b.token(t, "svc", s1); code != 200 {
		t.Fatalf("B after the bound: %d", code)
	}

	rot := a.do(t, "POST", "/admin/clients/svc/secret", adminToken, "")
	s2 := rot.str("secret")
	if code, _ := a.token(t, "svc", s1); code != 401 {
		t.Fatalf("A, old secret right after rotation: %d", code)
	}
	if code, _ := a.token(t, "svc", s2); code != 200 {
		t.Fatalf("A, new secret: %d", code)
	}
	if code, _ := b.token(t, "svc", s1); code != 200 {
		t.Fatalf("B, old secret within the bound: %d", code)
	}
	clk.Advance(bound)
	if code, _ := b.token(t, "svc", s1); code != 401 {
		t.Fatalf("B, old secret after the bound: %d", code)
	}
	if code, _ := b.token(t, "svc", s2); code != 200 {
		t.Fatalf("B, new secret after the bound: %d", code)
	}

	if r := a.do(t, "DELETE", "/admin/clients/svc", adminToken, ""); r.status != 204 {
		t.Fatalf("delete: %d", r.status)
	}
	if code, _ := a.token(t, "svc", s2); code != 401 {
		t.Fatalf("A after delete: %d", code)
	}
	clk.Advance(bound)
	if code, _ := b.token(t, "svc", s2); code != 401 {
		t.Fatalf("B after delete and the bound: %d", code)
	}
	// B's list sees the change at once: the admin API reads the store.
	if r := b.do(t, "GET", "/admin/clients/svc", adminToken, ""); r.status != 404 {
		t.Fatalf("B get after delete: %d", r.status)
	}
}
