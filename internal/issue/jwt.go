package issue

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tokengw/tokengw/internal/keyring"
)

// Signers picks the key that signs at a given time; keyring.Ring is the
// implementation. Safe for concurrent use.
type Signers interface {
	Signing(now time.Time) (*keyring.Key, error)
}

// JWT mints JWT access tokens (RFC 9068). It is safe for concurrent use.
type JWT struct {
	// Issuer is the iss claim: issuer.url.
	Issuer string
	Keys   Signers
	// MaxLifetime refuses tokens that live longer than the key ring keeps a
	// retired key published for (keyring.Options.MaxTokenTTL).
	MaxLifetime time.Duration
}

// ErrLifetime: a token would outlive the publication of its signing key.
var ErrLifetime = errors.New("issue: token lifetime exceeds the key ring's maximum")

// accessClaims are the claims of RFC 9068 §2.2. For client_credentials the
// subject is the client itself: "In cases of access tokens obtained through
// grants where no resource owner is involved, such as the client
// credentials grant, the value of sub SHOULD correspond to an identifier
// the authorization server uses to indicate the client application."
type accessClaims struct {
	Iss      string   `json:"iss"`
	Exp      int64    `json:"exp"`
	Aud      audience `json:"aud"`
	Sub      string   `json:"sub"`
	ClientID string   `json:"client_id"`
	Iat      int64    `json:"iat"`
	Jti      string   `json:"jti"`
	Scope    string   `json:"scope,omitempty"`
}

// audience is a string for one audience and an array for several (RFC
// 7519 §4.1.3).
type audience []string

func (a audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

// Mint signs a JWT for c with the key active at c.IssuedAt and returns it
// with its SHA-256. exp is c.ExpiresAt rounded down to the second, so the
// token never outlives its store row.
func (j JWT) Mint(c Claims) (token string, hash []byte, err error) {
	if len(c.Audience) == 0 {
		return "", nil, errors.New("issue: a JWT needs an audience")
	}
	if j.MaxLifetime > 0 && c.ExpiresAt.Sub(c.IssuedAt) > j.MaxLifetime {
		return "", nil, fmt.Errorf("%w (%v > %v)", ErrLifetime, c.ExpiresAt.Sub(c.IssuedAt), j.MaxLifetime)
	}
	key, err := j.Keys.Signing(c.IssuedAt)
	if err != nil {
		return "", nil, fmt.Errorf("issue: %w", err)
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", nil, fmt.Errorf("issue: random: %w", err)
	}
	payload, err := json.Marshal(accessClaims{
		Iss: j.Issuer, Exp: c.ExpiresAt.Unix(), Aud: c.Audience, Sub: c.ClientID, ClientID: c.ClientID,
		Iat: c.IssuedAt.Unix(), Jti: base64.RawURLEncoding.EncodeToString(id[:]), Scope: c.Scope,
	})
	if err != nil {
		return "", nil, fmt.Errorf("issue: claims: %w", err)
	}
	token, err = key.Sign(payload)
	if err != nil {
		return "", nil, fmt.Errorf("issue: %w", err)
	}
	return token, Hash(token), nil
}
