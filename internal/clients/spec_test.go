package clients_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokengw/tokengw/internal/clients"
	"github.com/tokengw/tokengw/internal/store"
)

var jwks, privJWKS = func() (string, string) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	pub, _ := jose.JSONWebKey{Key: &k.PublicKey, KeyID: "k1", Use: "sig"}.MarshalJSON()
	priv, _ := jose.JSONWebKey{Key: k, KeyID: "k1", Use: "sig"}.MarshalJSON()
	return `{"keys":[` + string(pub) + `]}`, `{"keys":[` + string(priv) + `]}`
}()

// TestSpecClient: the one validator of a registration names the field of
// every problem, and normalises what it accepts.
func TestSpecClient(t *testing.T) {
	ok := clients.Spec{ID: "svc", Scopes: []string{"write", "read", "read"}}
	for _, tc := range []struct {
		name  string
		edit  func(*clients.Spec)
		field string // "" = accepted
	}{
		{"minimal", func(*clients.Spec) {}, ""},
		{"printable ASCII id with space inside", func(s *clients.Spec) { s.ID = "a b" }, ""},
		{"non-ASCII id", func(s *clients.Spec) { s.ID = "café" }, "id"},
		{"control char id", func(s *clients.Spec) { s.ID = "a\nb" }, "id"},
		{"empty id", func(s *clients.Spec) { s.ID = "" }, "id"},
		{"padded id", func(s *clients.Spec) { s.ID = " a" }, "id"},
		{"long id", func(s *clients.Spec) { s.ID = strings.Repeat("a", clients.MaxClientIDLen+1) }, "id"},
		{"no scopes", func(s *clients.Spec) { s.Scopes = nil }, "scopes"},
		{"bad scope", func(s *clients.Spec) { s.Scopes = []string{"read", `a"b`} }, "scopes[1]"},
		{"unsupported grant", func(s *clients.Spec) { s.GrantTypes = []string{"password"} }, "grant_types[0]"},
		{"ttl too short", func(s *clients.Spec) { s.TokenTTL = time.Millisecond }, "token_ttl"},
		{"ttl too long", func(s *clients.Spec) { s.TokenTTL = clients.MaxTokenTTL + time.Second }, "token_ttl"},
		{"rate NaN", func(s *clients.Spec) { s.Limit = &store.Limit{Rate: math.NaN(), Burst: 1} }, "limit.rate"},
		{"rate +Inf", func(s *clients.Spec) { s.Limit = &store.Limit{Rate: math.Inf(1), Burst: 1} }, "limit.rate"},
		{"rate negative", func(s *clients.Spec) { s.Limit = &store.Limit{Rate: -1, Burst: 1} }, "limit.rate"},
		{"rate without burst", func(s *clients.Spec) { s.Limit = &store.Limit{Rate: 1} }, "limit.burst"},
		{"unlimited", func(s *clients.Spec) { s.Limit = &store.Limit{} }, ""},
		{"burst without rate", func(s *clients.Spec) { s.Limit = &store.Limit{Burst: 10} }, "limit.rate"},
		{"bad secret hash", func(s *clients.Spec) { s.SecretHash = "$argon2id$nope" }, "secret_hash"},
		{"client_secret_basic", func(s *clients.Spec) { s.AuthMethod = "client_secret_basic" }, ""},
		{"client_secret_post", func(s *clients.Spec) { s.AuthMethod = "client_secret_post" }, ""},
		{"private_key_jwt with jwks", func(s *clients.Spec) { s.AuthMethod, s.JWKS = "private_key_jwt", jwks }, ""},
		{"private_key_jwt with jwks_uri", func(s *clients.Spec) { s.AuthMethod, s.JWKSURI = "private_key_jwt", "https://idp.example/jwks" }, ""},
		{"http jwks_uri allowed", func(s *clients.Spec) {
			s.AuthMethod, s.JWKSURI, s.AllowHTTPJWKSURI = "private_key_jwt", "http://127.0.0.1:1/jwks", true
		}, ""},
		{"http jwks_uri", func(s *clients.Spec) { s.AuthMethod, s.JWKSURI = "private_key_jwt", "http://127.0.0.1:1/jwks" }, "jwks_uri"},
		{"unknown method", func(s *clients.Spec) { s.AuthMethod = "tls_client_auth" }, "token_endpoint_auth_method"},
		{"client_secret_jwt", func(s *clients.Spec) { s.AuthMethod = "client_secret_jwt" }, "token_endpoint_auth_method"},
		{"none", func(s *clients.Spec) { s.AuthMethod = "none" }, "token_endpoint_auth_method"},
		{"private_key_jwt without keys", func(s *clients.Spec) { s.AuthMethod = "private_key_jwt" }, "jwks"},
		{"both jwks and jwks_uri", func(s *clients.Spec) {
			s.AuthMethod, s.JWKS, s.JWKSURI = "private_key_jwt", jwks, "https://idp.example/jwks"
		}, "jwks"},
		{"jwks not JSON", func(s *clients.Spec) { s.AuthMethod, s.JWKS = "private_key_jwt", "{keys" }, "jwks"},
		{"jwks with a private key", func(s *clients.Spec) { s.AuthMethod, s.JWKS = "private_key_jwt", privJWKS }, "jwks"},
		{"private_key_jwt with a secret", func(s *clients.Spec) {
			s.AuthMethod, s.JWKS, s.SecretHash = "private_key_jwt", jwks, "$2a$10$abcdefghijklmnopqrstuu5Qh5Rp5yQ7bbb1Ww8J6b1n6n1xG3yV2"
		}, "secret_hash"},
		{"jwks without private_key_jwt", func(s *clients.Spec) { s.JWKS = jwks }, "jwks"},
		{"jwks_uri without private_key_jwt", func(s *clients.Spec) { s.JWKSURI = "https://idp.example/jwks" }, "jwks_uri"},
		{"resources", func(s *clients.Spec) { s.Resources = []string{"https://b.example/", "urn:a", "https://b.example/"} }, ""},
		{"relative resource", func(s *clients.Spec) { s.Resources = []string{"https://a.example/", "/api"} }, "resources[1]"},
		{"resource with fragment", func(s *clients.Spec) { s.Resources = []string{"https://a.example/#x"} }, "resources[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			tc.edit(&s)
			c, err := s.Client()
			var se *clients.SpecError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.field == "":
				if strings.Join(c.Scopes, " ") != "read write" {
					t.Fatalf("scopes not normalised: %q", c.Scopes)
				}
			case !errors.As(err, &se) || se.Field != tc.field:
				t.Fatalf("error %v, want a SpecError for %q", err, tc.field)
			}
		})
	}
}

// TestSpecAuthFields: what Client returns for the private_key_jwt fields:
// the method as stored, the key source as given, resources sorted and
// deduplicated.
func TestSpecAuthFields(t *testing.T) {
	c, err := clients.Spec{ID: "k", Scopes: []string{"read"}, AuthMethod: "private_key_jwt", JWKS: jwks,
		Resources: []string{"urn:b", "https://a.example/", "urn:b"}}.Client()
	if err != nil {
		t.Fatal(err)
	}
	if c.AuthMethod != "private_key_jwt" || c.JWKS != jwks || c.JWKSURI != "" || strings.Join(c.Resources, " ") != "https://a.example/ urn:b" {
		t.Fatalf("client = %+v", c)
	}
	// A secret method is kept as given (shown back as registered); "" is
	// what rows from before the field hold. For reuse they are one.
	var prints []string
	for _, m := range []string{"", "client_secret_basic", "client_secret_post"} {
		c, err = clients.Spec{ID: "s", SecretHash: "$2a$10$abcdefghijklmnopqrstuuNWPxIxg8kxcHgqHImT5fNyhYrrpHz9y", Scopes: []string{"read"}, AuthMethod: m}.Client()
		if err != nil || c.AuthMethod != m || c.Resources != nil {
			t.Fatalf("secret client (%q) = %+v, %v; want AuthMethod %q as given", m, c, err, m)
		}
		prints = append(prints, clients.Fingerprint(c))
	}
	if prints[0] != prints[1] || prints[1] != prints[2] {
		t.Fatalf("fingerprints of the secret methods differ: %v; a registration naming one must keep the fingerprint of \"\"", prints)
	}
}

// TestFingerprintAuthFields: the fingerprint changes with the method, the
// key source and the resources, and not for a registration without them.
func TestFingerprintAuthFields(t *testing.T) {
	base := store.Client{ID: "a", SecretHash: "h", Scopes: []string{"read"}, TokenTTL: time.Hour}
	seen := map[string]string{clients.Fingerprint(base): "base"}
	for name, edit := range map[string]func(*store.Client){
		"method":        func(c *store.Client) { c.AuthMethod = "private_key_jwt" },
		"jwks":          func(c *store.Client) { c.AuthMethod, c.JWKS = "private_key_jwt", jwks },
		"other jwks":    func(c *store.Client) { c.AuthMethod, c.JWKS = "private_key_jwt", privJWKS },
		"jwks_uri":      func(c *store.Client) { c.AuthMethod, c.JWKSURI = "private_key_jwt", "https://i/j" },
		"resource":      func(c *store.Client) { c.Resources = []string{"urn:a"} },
		"two resources": func(c *store.Client) { c.Resources = []string{"urn:a", "urn:b"} },
	} {
		c := base
		edit(&c)
		fp := clients.Fingerprint(c)
		if other, dup := seen[fp]; dup {
			t.Errorf("%s: fingerprint %s equals that of %s", name, fp, other)
		}
		seen[fp] = name
	}
	// Unchanged registrations keep the fingerprint they had before these
	// fields existed (a pinned value: an upgrade must not drop every
	// reuse slot).
	if got := clients.Fingerprint(base); got != fingerprintBefore {
		t.Errorf("Fingerprint(base) = %s, want %s (the value before the auth fields)", got, fingerprintBefore)
	}
}

// fingerprintBefore is Fingerprint of TestFingerprintAuthFields' base
// registration as computed before the auth fields were added.
const fingerprintBefore = "e1a4d0c3b59b7ab8"

// TestSpecErrorsNameFieldOnce: a refused key source or resource reads
// "field: why", the field once and no package prefix after it.
func TestSpecErrorsNameFieldOnce(t *testing.T) {
	for _, c := range []struct {
		spec  clients.Spec
		field string
	}{
		{clients.Spec{AuthMethod: "private_key_jwt", JWKSURI: "http://idp.example/jwks"}, "jwks_uri"},
		{clients.Spec{AuthMethod: "private_key_jwt", JWKSURI: "https://idp.example/jwks#x"}, "jwks_uri"},
		{clients.Spec{AuthMethod: "private_key_jwt"}, "jwks"},
		{clients.Spec{AuthMethod: "private_key_jwt", JWKS: privJWKS}, "jwks"},
		{clients.Spec{AuthMethod: "private_key_jwt", JWKS: `{"keys":[]}`}, "jwks"},
		{clients.Spec{Resources: []string{"relative"}}, "resources[0]"},
		{clients.Spec{Resources: []string{"https://a.example/#f"}}, "resources[0]"},
	} {
		c.spec.ID, c.spec.Scopes = "svc", []string{"read"}
		_, err := c.spec.Client()
		var se *clients.SpecError
		if !errors.As(err, &se) || se.Field != c.field {
			t.Fatalf("%+v: %v, want a SpecError for %s", c.spec, err, c.field)
		}
		msg := err.Error()
		if strings.Contains(msg, "assertion:") || strings.Contains(msg, "oauth:") || strings.Count(msg, c.field+":") != 1 || strings.Contains(msg, c.field+" \"") {
			t.Errorf("%+v: %q names the field more than once or carries a package prefix", c.spec, msg)
		}
	}
}

// TestSpecStoresCanonicalJWKS: the jwks stored is the set of the public
// keys enforced, rebuilt: a member no key uses and a repeated key are not
// kept.
func TestSpecStoresCanonicalJWKS(t *testing.T) {
	var set struct{ Keys []map[string]any }
	if err := json.Unmarshal([]byte(jwks), &set); err != nil {
		t.Fatal(err)
	}
	k := set.Keys[0]
	k["x5u"] = "https://elsewhere.example/"
	raw, _ := json.Marshal(map[string]any{"keys": []any{k, k}, "other": true})
	c, err := clients.Spec{ID: "k", Scopes: []string{"read"}, AuthMethod: "private_key_jwt", JWKS: string(raw)}.Client()
	if err != nil {
		t.Fatal(err)
	}
	if c.JWKS != jwks {
		t.Fatalf("stored jwks = %s, want %s", c.JWKS, jwks)
	}
}
