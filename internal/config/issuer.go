package config

import (
	"strings"
	"time"

	"github.com/tokengw/tokengw/internal/oauth"
)

// Issuer is what tokens look like.
type Issuer struct {
	URL         string        `koanf:"url"`          // issuer identifier (RFC 8414), absolute URL
	TokenTTL    time.Duration `koanf:"token_ttl"`    // default access token lifetime
	TokenFormat string        `koanf:"token_format"` // "opaque" or "jwt" (RFC 9068)
	// Audience is the aud of a JWT when the client names no resource
	// (RFC 8707); "" = the issuer URL.
	Audience   string        `koanf:"audience"`
	JWKSMaxAge time.Duration `koanf:"jwks_max_age"` // Cache-Control max-age of /.well-known/jwks.json
	Signing    Signing       `koanf:"signing"`
}

// Signing is the JWT signing key ring.
type Signing struct {
	Alg            string        `koanf:"alg"`             // ES256 | EdDSA | RS256
	RotationPeriod time.Duration `koanf:"rotation_period"` // a key signs this long; 0 = rotate by hand only
}

// Bounds of the signing keys.
const (
	maxJWKSMaxAge     = 24 * time.Hour
	minRotationPeriod = time.Hour
)

// JWT reports whether tokens are JWTs.
func (i Issuer) JWT() bool { return i.TokenFormat == "jwt" }

// DefaultAudience is the aud of a JWT whose client named no resource.
func (i Issuer) DefaultAudience() string {
	if i.Audience != "" {
		return i.Audience
	}
	return strings.TrimSuffix(i.URL, "/")
}

func (i Issuer) validate() error {
	switch i.TokenFormat {
	case "opaque", "jwt":
	default:
		return bad("issuer.token_format", "must be \"opaque\" or \"jwt\", got %q", i.TokenFormat)
	}
	if i.Audience != "" {
		if err := oauth.ValidResource(i.Audience); err != nil {
			return bad("issuer.audience", "%v", err)
		}
	}
	if i.JWKSMaxAge < time.Second || i.JWKSMaxAge > maxJWKSMaxAge {
		return bad("issuer.jwks_max_age", "must be between 1s and %v, got %v", maxJWKSMaxAge, i.JWKSMaxAge)
	}
	switch i.Signing.Alg {
	case "ES256", "EdDSA", "RS256":
	default:
		return bad("issuer.signing.alg", "must be ES256, EdDSA or RS256, got %q", i.Signing.Alg)
	}
	if p := i.Signing.RotationPeriod; p != 0 && (p < minRotationPeriod || p <= 2*i.JWKSMaxAge) {
		return bad("issuer.signing.rotation_period", "must be 0 (rotate by hand) or at least %v and more than twice issuer.jwks_max_age, got %v", minRotationPeriod, p)
	}
	return nil
}
