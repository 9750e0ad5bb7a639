package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// The assertions of these tests are made with lestrrat-go/jwx, a different
// JOSE library from the go-jose that tokengw verifies them with.

const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
const jwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// signingKey is a private key with its alg and kid.
type signingKey struct {
	alg  jwa.SignatureAlgorithm
	kid  string
	priv jwk.Key
	raw  any // the crypto private key
}

func newECKey(t testing.TB, kid string) *signingKey {
	t.Helper()
	p, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return importKey(t, p, jwa.ES256(), kid)
}

func newRSAKey(t testing.TB, kid string) *signingKey {
	t.Helper()
	p, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return importKey(t, p, jwa.RS256(), kid)
}

func importKey(t testing.TB, raw any, alg jwa.SignatureAlgorithm, kid string) *signingKey {
	t.Helper()
	k, err := jwk.Import(raw)
	if err != nil {
		t.Fatal(err)
	}
	if kid != "" {
		if err := k.Set(jwk.KeyIDKey, kid); err != nil {
			t.Fatal(err)
		}
	}
	return &signingKey{alg: alg, kid: kid, priv: k, raw: raw}
}

// publicJWK is the key's public JWK as JSON.
func (k *signingKey) publicJWK(t testing.TB) []byte {
	t.Helper()
	pub, err := k.priv.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(pub)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jwksOf is the JWK Set (JSON) of the keys' public halves.
func jwksOf(t testing.TB, keys ...*signingKey) string {
	t.Helper()
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = string(k.publicJWK(t))
	}
	return `{"keys":[` + strings.Join(parts, ",") + `]}`
}

// sign makes a compact JWS of claims with the key (kid in the header when
// the key has one).
func (k *signingKey) sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	return k.signAs(t, k.alg, k.priv, k.kid, claims)
}

func (k *signingKey) signAs(t testing.TB, alg jwa.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	h := jws.NewHeaders()
	if kid != "" {
		if err := h.Set(jws.KeyIDKey, kid); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Set(jws.TypeKey, "JWT"); err != nil {
		t.Fatal(err)
	}
	out, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// unsigned is an "alg": "none" JWT (RFC 7519 §6.1).
func unsigned(t testing.TB, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(payload) + "."
}

// newJTI is a unique jti.
func newJTI() string { return rand.Text() }

// clientClaims are the claims of a valid private_key_jwt assertion.
func clientClaims(clientID, aud string, now time.Time) map[string]any {
	return map[string]any{
		"iss": clientID, "sub": clientID, "aud": aud, "jti": newJTI(),
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	}
}

// assertionBody is a token request authenticated by a client assertion.
func assertionBody(assertion string, extra ...string) string {
	v := url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {clientAssertionType},
		"client_assertion":      {assertion},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return v.Encode()
}

// answer is one response, read whole; safe to use from any goroutine.
type answer struct {
	status int
	header http.Header
	tok    tokenJSON
	raw    string
	err    error
}

func send(client *http.Client, target, body string) answer {
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw), err: err}
	if err == nil && len(raw) > 0 {
		a.err = json.Unmarshal(raw, &a.tok)
	}
	return a
}
