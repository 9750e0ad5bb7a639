package assertion_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/tokengw/tokengw/internal/assertion"
)

// rsaMembers returns the JWK members of an RSA key, public ones and every
// private one, base64url as RFC 7518 §6.3 encodes them.
func rsaMembers(t *testing.T) map[string]any {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b := func(i *big.Int) string { return base64.RawURLEncoding.EncodeToString(i.Bytes()) }
	return map[string]any{"kty": "RSA", "kid": "r", "n": b(k.N), "e": "AQAB", "d": b(k.D),
		"p": b(k.Primes[0]), "q": b(k.Primes[1]), "dp": b(k.Precomputed.Dp), "dq": b(k.Precomputed.Dq), "qi": b(k.Precomputed.Qinv)}
}

func setOf(t *testing.T, keys ...any) string {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// TestKeySetRefusesPrivateMembers: a JWK holding any private or secret
// member is refused as a private key, in an inline set and in a jwks_uri
// document alike (where unusable keys are otherwise skipped) — whatever
// the other members say, even with an empty value, and even when the
// key's public part alone would be usable.
func TestKeySetRefusesPrivateMembers(t *testing.T) {
	full := rsaMembers(t)
	public := func() map[string]any {
		return map[string]any{"kty": "RSA", "kid": "r", "n": full["n"], "e": full["e"]}
	}
	if _, err := assertion.ParseJWKS([]byte(setOf(t, public())), true); err != nil {
		t.Fatalf("the public part alone: %v", err)
	}
	with := func(members ...string) map[string]any {
		k := public()
		for _, m := range members {
			k[m] = full[m]
		}
		return k
	}
	oth := public()
	oth["oth"] = []any{map[string]any{"r": full["p"], "d": full["dp"], "t": full["qi"]}}
	empty := public()
	empty["qi"] = ""
	ec := newKey(t, "ES256", "e")
	ecPub := pubMembers(t, ec)
	var ecPriv map[string]any
	raw, _ := json.Marshal(ec.jwk)
	if err := json.Unmarshal(raw, &ecPriv); err != nil {
		t.Fatal(err)
	}
	withK := public()
	withK["k"] = "c2VjcmV0"
	okp := map[string]any{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}
	for name, key := range map[string]map[string]any{
		"RSA with p, q, dp, dq, qi (no d)": with("p", "q", "dp", "dq", "qi"),
		"RSA with d":                       with("d"),
		"RSA with p":                       with("p"),
		"RSA with q":                       with("q"),
		"RSA with dp":                      with("dp"),
		"RSA with dq":                      with("dq"),
		"RSA with qi":                      with("qi"),
		"RSA with an empty qi":             empty,
		"RSA with oth":                     oth,
		"RSA with k":                       withK,
		"EC private":                       ecPriv,
		"OKP private":                      okp,
		"oct":                              map[string]any{"kty": "oct", "k": "c2VjcmV0"},
		"oct without k":                    map[string]any{"kty": "oct"},
	} {
		for _, strict := range []bool{true, false} {
			// With a usable public key beside it: the set is refused anyway.
			_, err := assertion.ParseJWKS([]byte(setOf(t, ecPub, key)), strict)
			if !errors.Is(err, assertion.ErrKeySet) || !strings.Contains(err.Error(), "private") {
				t.Errorf("%s (strict %v): err = %v, want a refused private key", name, strict, err)
			}
		}
		if err := assertion.ValidateKeySource(setOf(t, key), "", false); err == nil {
			t.Errorf("%s: ValidateKeySource accepted it", name)
		}
	}
}

// TestNormalizeKeySource: the jwks a registration stores is rebuilt from
// the parsed public keys: extra members, duplicate keys and a second
// "keys" member are gone; kid, alg and use are kept; it parses to the
// same keys; normalizing it again changes nothing.
func TestNormalizeKeySource(t *testing.T) {
	k1, k2 := newKey(t, "ES256", "k1"), newKey(t, "RS256", "k2")
	m1 := pubMembers(t, k1)
	m1["x5u"], m1["note"], m1["use"] = "https://evil.example/", "hello", "sig"
	in := `{"keys":[` + mustJSON(t, pubMembers(t, k2)) + `],"keys":[` + mustJSON(t, m1) + `,` + mustJSON(t, m1) + `],"extra":1}`
	out, err := assertion.NormalizeKeySource(in, "", false)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string][]map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc) != 1 {
		t.Fatalf("normalized = %s, %v; want only \"keys\"", out, err)
	}
	if len(doc["keys"]) != 1 {
		t.Fatalf("normalized = %s; want the one key that is enforced (the last \"keys\" member, deduplicated)", out)
	}
	got := doc["keys"][0]
	for m := range got {
		switch m {
		case "kty", "crv", "x", "y", "kid", "use":
		default:
			t.Errorf("normalized key has member %q: %s", m, out)
		}
	}
	if got["kid"] != "k1" || got["use"] != "sig" || got["x"] != m1["x"] {
		t.Errorf("normalized key = %v, want k1's public key with use sig", got)
	}
	// A jwx parse of the result (another library) has the same key.
	set, err := jwk.Parse([]byte(out))
	if err != nil || set.Len() != 1 {
		t.Fatalf("jwx parse of %s: %v", out, err)
	}
	if again, err := assertion.NormalizeKeySource(out, "", false); err != nil || again != out {
		t.Fatalf("normalizing twice: %s, %v; want %s", again, err, out)
	}
	if got, err := assertion.NormalizeKeySource("", "https://idp.example/jwks", false); err != nil || got != "" {
		t.Fatalf("jwks_uri: %q, %v", got, err)
	}
}

// TestSourceErrorNamesFieldOnce: a refused key source says the field in
// Field and why in Reason, which repeats neither the field nor the
// package.
func TestSourceErrorNamesFieldOnce(t *testing.T) {
	for _, c := range []struct{ jwks, uri, field string }{
		{"", "http://idp.example/jwks", "jwks_uri"},
		{"", "ftp://idp.example/jwks", "jwks_uri"},
		{"", "https://idp.example/jwks#f", "jwks_uri"},
		{"{", "", "jwks"},
		{`{"keys":[]}`, "", "jwks"},
		{"", "", "jwks"},
	} {
		err := assertion.ValidateKeySource(c.jwks, c.uri, false)
		var se *assertion.SourceError
		if !errors.As(err, &se) || se.Field != c.field {
			t.Fatalf("%q %q: %v, want a SourceError for %s", c.jwks, c.uri, err, c.field)
		}
		if strings.Contains(se.Reason, "assertion:") || strings.HasPrefix(se.Reason, se.Field) {
			t.Errorf("%q %q: reason %q repeats the prefix or the field", c.jwks, c.uri, se.Reason)
		}
		if c.jwks != "" && !errors.Is(err, assertion.ErrKeySet) {
			t.Errorf("%q: %v does not wrap ErrKeySet", c.jwks, err)
		}
	}
}

// pubMembers is k's public JWK as a JSON object.
func pubMembers(t *testing.T, k *key) map[string]any {
	t.Helper()
	pub, err := k.jwk.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(mustJSON(t, pub)), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}
