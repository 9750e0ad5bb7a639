package assertion_test

import (
	"context"
	"errors"
	"testing"

	"github.com/tokengw/tokengw/internal/assertion"
	"github.com/tokengw/tokengw/internal/store/memory"
)

// FuzzVerify feeds arbitrary assertions through every check: the answer is
// a refusal (or, for the seed that is valid, acceptance), never a panic or
// an error that is neither.
func FuzzVerify(f *testing.F) {
	clk := newClock()
	k := newKey(f, "ES256", "k")
	p := assertion.Principal{ID: "client:c", Keys: static(f, k), OneTime: true}
	f.Add(k.sign(f, claims("c", clk.Now())))
	f.Add(k.sign(f, map[string]any{"aud": []any{1, "x"}, "exp": "soon", "iat": 1e300}))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("eyJhbGciOiJFUzI1NiIsImNyaXQiOlsiYjY0Il19.e30.c2ln")
	f.Add("a.b.c.d.e")
	f.Add("..")
	f.Fuzz(func(t *testing.T, compact string) {
		v, err := assertion.New(assertion.Options{Issuer: iss, JTIs: memory.New(memory.Options{Now: clk.Now}), Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		res := func(_ context.Context, c *assertion.Claims) (assertion.Principal, error) {
			if c.Issuer != c.Subject {
				return assertion.Principal{}, &assertion.Error{Check: assertion.CheckPrincipal, Description: "iss"}
			}
			return p, nil
		}
		for range 2 { // the second pass may be a cache hit
			_, _, err := v.Verify(context.Background(), compact, "", res, nil)
			if err != nil && !errors.Is(err, assertion.ErrRefused) {
				t.Fatalf("Verify(%q): %v is not a refusal", compact, err)
			}
		}
	})
}

// FuzzParseJWKS: arbitrary key set documents parse or fail with ErrKeySet;
// a parsed set is never empty, and its canonical form (what a registration
// stores) parses strictly to the same keys and is its own canonical form.
func FuzzParseJWKS(f *testing.F) {
	k := newKey(f, "RS256", "r")
	e := newKey(f, "ES256", "e")
	f.Add([]byte(jwks(f, k, e)), true)
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"AAAA"}]}`), false)
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"","y":""}]}`), false)
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","use":"sig"}]}`), true)
	f.Add([]byte(`{"keys":null}`), false)
	f.Fuzz(func(t *testing.T, data []byte, strict bool) {
		set, err := assertion.ParseJWKS(data, strict)
		switch {
		case err != nil && !errors.Is(err, assertion.ErrKeySet):
			t.Fatalf("error %v does not wrap ErrKeySet", err)
		case err == nil && set.Len() == 0:
			t.Fatal("an empty set parsed")
		case err != nil:
			return
		}
		canon, err := set.JSON()
		if err != nil {
			t.Fatalf("JSON of a parsed set: %v", err)
		}
		again, err := assertion.ParseJWKS([]byte(canon), true)
		if err != nil {
			t.Fatalf("canonical %s does not parse: %v", canon, err)
		}
		if again.Len() != set.Len() {
			t.Fatalf("canonical %s: %d keys, want %d", canon, again.Len(), set.Len())
		}
		if twice, err := again.JSON(); err != nil || twice != canon {
			t.Fatalf("canonical form not stable: %s then %s (%v)", canon, twice, err)
		}
	})
}
