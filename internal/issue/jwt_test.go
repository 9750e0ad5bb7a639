package issue_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/tokengw/tokengw/internal/issue"
	"github.com/tokengw/tokengw/internal/keyring"
	"github.com/tokengw/tokengw/internal/seal"
	"github.com/tokengw/tokengw/internal/store/memory"
)

func ring(t *testing.T, now time.Time) *keyring.Ring {
	t.Helper()
	s, err := seal.New([][]byte{bytes.Repeat([]byte{7}, seal.KeyLen)})
	if err != nil {
		t.Fatal(err)
	}
	r, err := keyring.New(context.Background(), keyring.Options{
		Store: memory.New(memory.Options{}), Sealer: s, MaxTokenTTL: time.Hour, Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestJWTClaims: the minted token, checked with jwx (not go-jose), has the
// RFC 9068 header and claims; exp is rounded down; several audiences are
// an array.
func TestJWTClaims(t *testing.T) {
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	r := ring(t, now)
	m := issue.JWT{Issuer: "https://issuer.example", Keys: r, MaxLifetime: time.Hour}
	iat := now.Add(1500 * time.Millisecond)
	tok, hash, err := m.Mint(issue.Claims{
		ClientID: "svc", Scope: "read write", Audience: []string{"https://a.example", "https://b.example"},
		IssuedAt: iat, ExpiresAt: iat.Add(30 * time.Minute),
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256([]byte(tok)); !bytes.Equal(hash, sum[:]) {
		t.Fatal("hash is not SHA-256 of the token")
	}
	set, err := jwk.Parse(r.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.Parse([]byte(tok), jwt.WithKeySet(set), jwt.WithValidate(true),
		jwt.WithClock(jwt.ClockFunc(func() time.Time { return iat })), jwt.WithAudience("https://b.example"))
	if err != nil {
		t.Fatalf("jwx: %v", err)
	}
	msg, _ := jws.Parse([]byte(tok))
	hdr := msg.Signatures()[0].ProtectedHeaders()
	typ, _ := hdr.Type()
	kid, _ := hdr.KeyID()
	if k, _ := r.Signing(iat); typ != "at+jwt" || kid != k.ID {
		t.Fatalf("header typ %q kid %q", typ, kid)
	}
	var claims map[string]any
	if err := json.Unmarshal(msg.Payload(), &claims); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"iss": "https://issuer.example", "sub": "svc", "client_id": "svc", "scope": "read write",
		"iat": float64(iat.Unix()), "exp": float64(iat.Add(30 * time.Minute).Unix()),
	} {
		if claims[k] != want {
			t.Errorf("claim %s = %v, want %v", k, claims[k], want)
		}
	}
	if aud, _ := parsed.Audience(); len(aud) != 2 {
		t.Errorf("aud %v", aud)
	}
	if jti, _ := parsed.JwtID(); len(jti) != 22 {
		t.Errorf("jti %q is not 128 bits of base64url", jti)
	}
	// One audience is a string (RFC 7519 §4.1.3).
	tok, _, _ = m.Mint(issue.Claims{ClientID: "svc", Audience: []string{"https://a.example"}, IssuedAt: iat, ExpiresAt: iat.Add(time.Minute)})
	msg, _ = jws.Parse([]byte(tok))
	var one struct {
		Aud   any     `json:"aud"`
		Scope *string `json:"scope"`
	}
	_ = json.Unmarshal(msg.Payload(), &one)
	if one.Aud != "https://a.example" || one.Scope != nil {
		t.Fatalf("single aud %#v, empty scope %v", one.Aud, one.Scope)
	}
}

func TestJWTRefusals(t *testing.T) {
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	m := issue.JWT{Issuer: "https://issuer.example", Keys: ring(t, now), MaxLifetime: time.Hour}
	if _, _, err := m.Mint(issue.Claims{ClientID: "svc", Audience: []string{"x:y"}, IssuedAt: now, ExpiresAt: now.Add(2 * time.Hour)}); !errors.Is(err, issue.ErrLifetime) {
		t.Fatalf("a token outliving the ring's retention: %v", err)
	}
	if _, _, err := m.Mint(issue.Claims{ClientID: "svc", IssuedAt: now, ExpiresAt: now.Add(time.Minute)}); err == nil {
		t.Fatal("a JWT without audience was minted")
	}
}
