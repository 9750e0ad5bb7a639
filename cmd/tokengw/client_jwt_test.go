package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// cliKey is a client's P-256 key: its public JWK Set written to a file for
// --jwks-file, and assertions signed with it by lestrrat-go/jwx (the
// gateway verifies with go-jose).
type cliKey struct {
	priv     jwk.Key
	jwksFile string
}

func newCLIKey(t *testing.T, kid string) cliKey {
	t.Helper()
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := jwk.Import(raw)
	if err != nil {
		t.Fatal(err)
	}
	_ = priv.Set(jwk.KeyIDKey, kid)
	pub, err := priv.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(map[string]any{"keys": []any{pub}}, "", "  ")
	path := filepath.Join(t.TempDir(), kid+".json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return cliKey{priv: priv, jwksFile: path}
}

// assertionStatus asks the server for a token with an assertion for id
// signed by k (aud: the issuer of config.example.yaml) and returns the
// status and body.
func assertionStatus(t *testing.T, addr, id string, k cliKey, extra url.Values) (int, map[string]any) {
	t.Helper()
	now := time.Now()
	tok, err := jwt.NewBuilder().Issuer(id).Subject(id).Audience([]string{"http://127.0.0.1:8080"}).
		IssuedAt(now).Expiration(now.Add(time.Minute)).JwtID(rand.Text()).Build()
	if err != nil {
		t.Fatal(err)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), k.priv))
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_assertion": {string(signed)},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}}
	for k, v := range extra {
		form[k] = v
	}
	resp, err := http.PostForm("http://"+addr+"/oauth2/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// TestClientPrivateKeyJWT: `tokengw client add --auth-method private_key_jwt
// --jwks-file` registers a client without a secret, which a server on the
// same file authenticates by its key; rotate-secret is refused; `client
// update --jwks-file` replaces the key (the old one is refused afterwards)
// and --resource sets what it may ask for; bad registrations are refused
// naming the flag.
func TestClientPrivateKeyJWT(t *testing.T) {
	data := t.TempDir()
	env := []string{
		"TOKENGW_STORE__BOLT__PATH=" + filepath.Join(data, "tokengw.db"),
		"TOKENGW_LIMITS__PER_IP_FAILED_AUTH__RATE=0",
	}
	const cfg = "../../config.example.yaml"
	k1, k2 := newCLIKey(t, "k1"), newCLIKey(t, "k2")

	out, errOut, code := cli(t, env, "client", "add", "--config", cfg, "--id", "pkj", "--scopes", "read",
		"--auth-method", "private_key_jwt", "--jwks-file", k1.jwksFile, "--resource", "https://api-a.example/")
	if code != 0 || out != "client_id: pkj\ntoken_endpoint_auth_method: private_key_jwt\n" || !strings.Contains(errOut, "no secret") {
		t.Fatalf("add: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	out, _, _ = cli(t, env, "client", "list", "--config", cfg)
	if f := strings.Fields(strings.Split(out, "\n")[2]); len(f) != 9 || f[0] != "pkj" || f[7] != "private_key_jwt" || f[8] != "https://api-a.example/" {
		t.Fatalf("list:\n%s", out)
	}

	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}`), 0o600)
	notJSON := filepath.Join(t.TempDir(), "not.json")
	os.WriteFile(notJSON, []byte(`keys`), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"rotate-secret", "--config", cfg, "pkj"}, "has no secret to rotate"},
		{[]string{"add", "--config", cfg, "--scopes", "read", "--auth-method", "client_secret_jwt"}, "--auth-method: client_secret_jwt is not offered"},
		{[]string{"add", "--config", cfg, "--scopes", "read", "--auth-method", "none"}, "--auth-method: must be"},
		{[]string{"add", "--config", cfg, "--scopes", "read", "--auth-method", "private_key_jwt"}, "--jwks-file: one of jwks or jwks_uri is required"},
		{[]string{"add", "--config", cfg, "--scopes", "read", "--auth-method", "private_key_jwt", "--jwks-file", k1.jwksFile, "--jwks-uri", "https://i/j"}, "exclusive"},
		{[]string{"add", "--config", cfg, "--scopes", "read", "--auth-method", "private_key_jwt", "--jwks-uri", "http://i/j"}, "--jwks-uri: \"http://i/j\" must be https"},
		{[]string{"add", "--config", cfg, "--scopes", "read", "--auth-method", "private_key_jwt", "--jwks-file", bad}, "--jwks-file"},
		{[]string{"add", "--config", cfg, "--scopes", "read", "--auth-method", "private_key_jwt", "--jwks-file", notJSON}, "not a JWK Set"},
		{[]string{"add", "--config", cfg, "--scopes", "read", "--auth-method", "private_key_jwt", "--jwks-file", filepath.Join(data, "absent.json")}, "--jwks-file"},
		{[]string{"add", "--config", cfg, "--scopes", "read", "--jwks-uri", "https://i/j"}, "--jwks-uri: jwks and jwks_uri need"},
		{[]string{"add", "--config", cfg, "--scopes", "read", "--resource", "relative"}, "--resource: must be an absolute URI"},
		{[]string{"add", "--config", cfg, "--scopes", "read", "--resource", "https://a.example/#frag"}, "fragment"},
		{[]string{"update", "--config", cfg, "pkj", "--auth-method", "client_secret_jwt"}, "not offered"},
		{[]string{"update", "--config", cfg, "pkj", "--id", "x"}, "cannot be changed"},
		{[]string{"update", "--config", cfg, "nobody", "--scopes", "read"}, `no client "nobody"`},
		{[]string{"update", "--config", cfg, "demo", "--scopes", "read"}, "read-only"},
		{[]string{"update", "--config", cfg}, "client id as the one argument"},
	} {
		_, errOut, code := cli(t, env, append([]string{"client"}, tc.args...)...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Fatalf("client %v: exit %d, stderr %q; want exit 1 mentioning %q", tc.args, code, errOut, tc.want)
		}
	}

	p := serveProc(t, data, env...)
	if code, body := assertionStatus(t, p.addr, "pkj", k1, nil); code != 200 || body["access_token"] == "" {
		t.Fatalf("token with k1: %d %v", code, body)
	}
	if code, body := assertionStatus(t, p.addr, "pkj", k1, url.Values{"resource": {"https://api-a.example/"}}); code != 200 {
		t.Fatalf("token for the registered resource: %d %v", code, body)
	}
	if code, body := assertionStatus(t, p.addr, "pkj", k1, url.Values{"resource": {"https://api-b.example/"}}); code != 400 || body["error"] != "invalid_target" {
		t.Fatalf("token for another resource: %d %v", code, body)
	}
	if got := tokenStatus(t, p.addr, "pkj", ""); got != 401 {
		t.Fatalf("Basic with no secret: %d", got)
	}
	p.stop(t)

	out, errOut, code = cli(t, env, "client", "update", "pkj", "--config", cfg, "--jwks-file", k2.jwksFile, "--resource", "https://api-b.example/")
	if code != 0 || out != "updated client \"pkj\"\n" {
		t.Fatalf("update: exit %d, %q %q", code, out, errOut)
	}
	p = serveProc(t, data, env...)
	if code, body := assertionStatus(t, p.addr, "pkj", k1, nil); code != 401 || body["error"] != "invalid_client" {
		t.Fatalf("token with the old key: %d %v, want 401 invalid_client", code, body)
	}
	if code, body := assertionStatus(t, p.addr, "pkj", k2, url.Values{"resource": {"https://api-b.example/"}}); code != 200 {
		t.Fatalf("token with the new key for the new resource: %d %v", code, body)
	}
	p.stop(t)

	// Back to a secret: update prints the generated one, which works.
	out, errOut, code = cli(t, env, "client", "update", "pkj", "--config", cfg, "--auth-method", "client_secret_basic", "--resource", "")
	if code != 0 {
		t.Fatalf("update to a secret: exit %d: %s", code, errOut)
	}
	_, secret := parseSecret(t, out)
	p = serveProc(t, data, env...)
	if got := tokenStatus(t, p.addr, "pkj", secret); got != 200 {
		t.Fatalf("the secret printed by update: %d", got)
	}
	p.stop(t)
}
