package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tokengw/tokengw/internal/assertion"
	"github.com/tokengw/tokengw/internal/clients"
	"github.com/tokengw/tokengw/internal/oauth"
)

// Assertions configures signed-JWT assertions: private_key_jwt client
// authentication and the jwt-bearer grant (RFC 7523).
type Assertions struct {
	MaxLifetime          time.Duration `koanf:"max_lifetime"`           // longest exp - iat accepted
	ClockSkew            time.Duration `koanf:"clock_skew"`             // tolerance of exp, nbf, iat; a jti is kept until exp + this
	StrictAudience       bool          `koanf:"strict_audience"`        // aud must be issuer.url only (draft-ietf-oauth-rfc7523bis)
	JWKSMinRefresh       time.Duration `koanf:"jwks_min_refresh"`       // a jwks_uri is fetched at most this often
	VerifiedCacheEntries int           `koanf:"verified_cache_entries"` // verified-JWT cache bound; 0 = off
	AllowHTTPJWKSURI     bool          `koanf:"allow_http_jwks_uri"`    // http jwks_uri allowed (tests on loopback)
}

// TrustedIssuer is an issuer whose JWTs the jwt-bearer grant accepts.
type TrustedIssuer struct {
	Issuer          string        `koanf:"issuer"`
	JWKS            any           `koanf:"jwks"`     // inline JWK Set: a mapping, or its JSON as a string
	JWKSURI         string        `koanf:"jwks_uri"` // or where to fetch it
	Subjects        []string      `koanf:"subjects"`
	AllowAnySubject bool          `koanf:"allow_any_subject"`
	Scopes          []string      `koanf:"scopes"`
	TokenTTL        time.Duration `koanf:"token_ttl"` // 0 = issuer.token_ttl
	Replay          string        `koanf:"replay"`    // reject (one-time jti, the default) | allow
}

// MethodPrivateKeyJWT is the token_endpoint_auth_method of clients that
// authenticate with signed assertions.
const MethodPrivateKeyJWT = clients.MethodPrivateKeyJWT

// JWKSJSON renders a jwks value of the configuration (a YAML mapping or a
// JSON string) as JSON; "" when unset.
func JWKSJSON(v any) (string, error) {
	switch j := v.(type) {
	case nil:
		return "", nil
	case string:
		return j, nil
	default:
		b, err := json.Marshal(j)
		if err != nil {
			return "", err
		}
		return string(b), nil
	}
}

func assertionDefaults(m map[string]any) {
	m["assertions.max_lifetime"] = "1h"
	m["assertions.clock_skew"] = "30s"
	m["assertions.strict_audience"] = false
	m["assertions.jwks_min_refresh"] = "1m"
	m["assertions.verified_cache_entries"] = 100000
	m["assertions.allow_http_jwks_uri"] = false
}

func (c *Config) validateAssertions() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	a := c.Assertions
	if a.MaxLifetime < time.Second || a.MaxLifetime > 24*time.Hour {
		add(bad("assertions.max_lifetime", "must be between 1s and 24h, got %v", a.MaxLifetime))
	}
	if a.ClockSkew < 0 || a.ClockSkew > 10*time.Minute {
		add(bad("assertions.clock_skew", "must be between 0s and 10m, got %v", a.ClockSkew))
	}
	if a.JWKSMinRefresh < time.Second || a.JWKSMinRefresh > time.Hour {
		add(bad("assertions.jwks_min_refresh", "must be between 1s and 1h, got %v", a.JWKSMinRefresh))
	}
	if a.VerifiedCacheEntries < 0 || a.VerifiedCacheEntries > maxCacheEntries {
		add(bad("assertions.verified_cache_entries", "must be between 0 (cache off) and %d, got %d", maxCacheEntries, a.VerifiedCacheEntries))
	}
	seen := map[string]bool{}
	for i, ti := range c.TrustedIssuers {
		key := fmt.Sprintf("trusted_issuers[%d]", i)
		switch {
		case ti.Issuer == "":
			add(bad(key+".issuer", "must not be empty"))
		case seen[ti.Issuer]:
			add(bad(key+".issuer", "duplicate issuer %q", ti.Issuer))
		case !validVSChars(ti.Issuer):
			add(bad(key+".issuer", "must be printable ASCII"))
		}
		seen[ti.Issuer] = true
		add(keySource(key, ti.JWKS, ti.JWKSURI, a.AllowHTTPJWKSURI))
		if len(ti.Subjects) == 0 && !ti.AllowAnySubject {
			add(bad(key+".subjects", "list the subjects allowed, or set allow_any_subject: true"))
		}
		if len(ti.Subjects) > 0 && ti.AllowAnySubject {
			add(bad(key+".subjects", "subjects and allow_any_subject: true exclude each other"))
		}
		if len(ti.Scopes) == 0 {
			add(bad(key+".scopes", "must list at least one scope"))
		}
		for j, sc := range ti.Scopes {
			if !oauth.ValidScopeToken(sc) {
				add(bad(fmt.Sprintf("%s.scopes[%d]", key, j), "%q is not a valid scope token (RFC 6749 §3.3)", sc))
			}
		}
		if ti.TokenTTL != 0 {
			if err := clients.CheckTokenTTL(ti.TokenTTL); err != nil {
				add(bad(key+".token_ttl", "must be between 1s and 720h, got %v", ti.TokenTTL))
			}
		}
		switch ti.Replay {
		case "", "reject", "allow":
		default:
			add(bad(key+".replay", "must be reject or allow, got %q", ti.Replay))
		}
	}
	// Clients' token_endpoint_auth_method, jwks and jwks_uri are checked by
	// clients.Spec, with the other fields of a registration (config.go).
	return errors.Join(errs...)
}

// keySource checks a jwks / jwks_uri pair with the rule of package assertion.
func keySource(key string, jwks any, uri string, allowHTTP bool) error {
	j, err := JWKSJSON(jwks)
	if err != nil {
		return bad(key+".jwks", "not a JWK Set: %v", err)
	}
	if err := assertion.ValidateKeySource(j, uri, allowHTTP); err != nil {
		var se *assertion.SourceError
		if errors.As(err, &se) {
			return bad(key+"."+se.Field, "%s", se.Reason)
		}
		return bad(key+".jwks", "%v", err)
	}
	return nil
}

func validVSChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
