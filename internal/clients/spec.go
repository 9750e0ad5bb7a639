package clients

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tokengw/tokengw/internal/assertion"
	"github.com/tokengw/tokengw/internal/clientauth"
	"github.com/tokengw/tokengw/internal/limiter"
	"github.com/tokengw/tokengw/internal/oauth"
	"github.com/tokengw/tokengw/internal/store"
)

// Bounds of a client registration.
const (
	MaxClientIDLen = 256
	MaxScopes      = 256
	MaxScopeLen    = 256
	MinTokenTTL    = time.Second
	MaxTokenTTL    = 30 * 24 * time.Hour
	// MaxResources bounds the RFC 8707 resource indicators of a client.
	MaxResources = 256
	// SecretBytes is the entropy of a generated secret: 256 bits.
	SecretBytes = 32
)

// SpecError is a client registration that cannot be accepted. Field names
// the offending field the way both the configuration (below clients[i].)
// and the admin API's JSON spell it: "id", "scopes[2]", "limit.rate".
type SpecError struct {
	Field string
	Msg   string
}

func (e *SpecError) Error() string { return e.Field + ": " + e.Msg }

// Spec is a client registration as an operator describes it: in the
// configuration file, through the admin API or the CLI. It is the one place
// a registration is validated.
type Spec struct {
	ID string
	// SecretHash is the PHC hash of the secret of a configured client;
	// clients made by Manager get a generated secret and leave it empty.
	SecretHash string
	Scopes     []string
	GrantTypes []string      // nil = DefaultGrantTypes
	TokenTTL   time.Duration // 0 = issuer.token_ttl
	Limit      *store.Limit  // nil = limits.per_client
	Introspect bool
	// AuthMethod is the token_endpoint_auth_method: "",
	// client_secret_basic or client_secret_post (a secret, either way) or
	// private_key_jwt (signed assertions verified with JWKS or JWKSURI,
	// exactly one of them; no secret).
	AuthMethod string
	JWKS       string // private_key_jwt: an inline JWK Set, as JSON
	JWKSURI    string // private_key_jwt: or where to fetch it
	// Resources are the RFC 8707 resource indicators the client may ask
	// for: absolute URIs without a fragment.
	Resources []string
	// AllowHTTPJWKSURI is assertions.allow_http_jwks_uri: a rule of the
	// server, not part of the registration. It lets JWKSURI be http (tests
	// on loopback).
	AllowHTTPJWKSURI bool
}

// Token endpoint authentication methods (RFC 7591 §2) a registration may
// name. client_secret_jwt is not offered: secrets are stored only as hashes,
// and its HMAC needs the secret itself.
const (
	MethodSecretBasic   = "client_secret_basic"
	MethodSecretPost    = "client_secret_post"
	MethodPrivateKeyJWT = "private_key_jwt"
)

// UsesSecret reports whether a registration's token_endpoint_auth_method
// (as stored: "" or private_key_jwt) authenticates with a secret.
func UsesSecret(authMethod string) bool { return authMethod != MethodPrivateKeyJWT }

// Client validates s and returns it as a registration with normalised
// scopes. Errors are *SpecError; every problem is reported, joined.
func (s Spec) Client() (store.Client, error) {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(CheckID(s.ID))
	if s.SecretHash != "" {
		if err := clientauth.ValidHash(s.SecretHash); err != nil {
			add(&SpecError{"secret_hash", err.Error()})
		}
	}
	add(checkScopes(s.Scopes))
	for i, g := range s.GrantTypes {
		if !SupportedGrant(g) {
			add(&SpecError{fmt.Sprintf("grant_types[%d]", i), fmt.Sprintf("unsupported grant type %q (supported: %s)", g, GrantClientCredentials)})
		}
	}
	if s.TokenTTL != 0 {
		add(CheckTokenTTL(s.TokenTTL))
	}
	method, jwks, err := s.checkAuth()
	add(err)
	resources, err := checkResources(s.Resources)
	add(err)
	c := store.Client{
		ID: s.ID, SecretHash: s.SecretHash, Scopes: oauth.NewScope(s.Scopes...).Tokens(),
		TokenTTL: s.TokenTTL, Introspect: s.Introspect,
		AuthMethod: method, JWKS: jwks, JWKSURI: s.JWKSURI, Resources: resources,
	}
	if s.GrantTypes != nil {
		c.GrantTypes = append([]string{}, s.GrantTypes...)
	}
	if l := s.Limit; l != nil {
		var fe *limiter.FieldError
		if err := (limiter.Limit{Rate: l.Rate, Burst: l.Burst}).Validate(); errors.As(err, &fe) {
			add(&SpecError{"limit." + fe.Field, fe.Msg})
		} else if l.Rate == 0 && l.Burst > 0 {
			// Rate 0 is unlimited: a burst alone would be stored and
			// shown, and limit nothing.
			add(&SpecError{"limit.rate", fmt.Sprintf("must be set (> 0) with burst %d: rate 0 is unlimited and ignores burst", l.Burst)})
		}
		lim := *l
		c.Limit = &lim
	}
	if err := errors.Join(errs...); err != nil {
		return store.Client{}, err
	}
	return c, nil
}

// checkAuth validates the authentication method and its key source, and
// returns the method as stored (as given: "" for the default secret
// method, client_secret_basic, client_secret_post, private_key_jwt) and
// the jwks as stored: the canonical JWK Set of the public keys parsed
// from s.JWKS (assertion.NormalizeKeySource), so that what a listing
// shows is exactly what is enforced.
func (s Spec) checkAuth() (method, jwks string, err error) {
	switch s.AuthMethod {
	case "", MethodSecretBasic, MethodSecretPost:
		switch {
		case s.JWKS != "":
			return "", "", &SpecError{"jwks", "jwks and jwks_uri need token_endpoint_auth_method: private_key_jwt"}
		case s.JWKSURI != "":
			return "", "", &SpecError{"jwks_uri", "jwks and jwks_uri need token_endpoint_auth_method: private_key_jwt"}
		}
		// Kept as given, so that a listing shows what was registered; a
		// secret client may use either secret method whatever it says.
		return s.AuthMethod, "", nil
	case MethodPrivateKeyJWT:
	case "client_secret_jwt":
		return "", "", &SpecError{"token_endpoint_auth_method", "client_secret_jwt is not offered (secrets are stored only as hashes, and its HMAC needs the secret itself): use private_key_jwt"}
	default:
		return "", "", &SpecError{"token_endpoint_auth_method", fmt.Sprintf("must be client_secret_basic, client_secret_post or private_key_jwt, got %q", s.AuthMethod)}
	}
	if s.SecretHash != "" {
		return "", "", &SpecError{"secret_hash", "a private_key_jwt client has no secret"}
	}
	jwks, err = assertion.NormalizeKeySource(s.JWKS, s.JWKSURI, s.AllowHTTPJWKSURI)
	if err != nil {
		var se *assertion.SourceError
		if errors.As(err, &se) {
			return "", "", &SpecError{se.Field, se.Reason}
		}
		return "", "", &SpecError{"jwks", err.Error()}
	}
	return MethodPrivateKeyJWT, jwks, nil
}

// checkResources validates RFC 8707 resource indicators and returns them
// sorted and deduplicated (nil for none).
func checkResources(rs []string) ([]string, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	if len(rs) > MaxResources {
		return nil, &SpecError{"resources", fmt.Sprintf("more than %d resources", MaxResources)}
	}
	for i, r := range rs {
		if err := oauth.ValidResource(r); err != nil {
			msg := err.Error()
			var re *oauth.ResourceError
			if errors.As(err, &re) {
				msg = re.Reason
			}
			return nil, &SpecError{fmt.Sprintf("resources[%d]", i), msg}
		}
	}
	out := slices.Clone(rs)
	slices.Sort(out)
	return slices.Compact(out), nil
}

// CheckID validates a client id: what clientauth can authenticate (RFC 6749
// Appendix A.1: printable ASCII), at most MaxClientIDLen bytes, without
// leading or trailing spaces. The error is a *SpecError.
func CheckID(id string) error {
	switch {
	case id == "":
		return &SpecError{"id", "must not be empty"}
	case len(id) > MaxClientIDLen:
		return &SpecError{"id", fmt.Sprintf("longer than %d bytes", MaxClientIDLen)}
	case !clientauth.ValidClientID(id):
		return &SpecError{"id", "must be printable ASCII (RFC 6749 Appendix A.1: %x20-7E)"}
	case strings.TrimSpace(id) != id:
		return &SpecError{"id", "must not start or end with a space"}
	}
	return nil
}

func checkScopes(scopes []string) error {
	if len(scopes) == 0 {
		return &SpecError{"scopes", "at least one scope is required"}
	}
	if len(scopes) > MaxScopes {
		return &SpecError{"scopes", fmt.Sprintf("more than %d scopes", MaxScopes)}
	}
	for i, sc := range scopes {
		if len(sc) > MaxScopeLen {
			return &SpecError{fmt.Sprintf("scopes[%d]", i), fmt.Sprintf("longer than %d bytes", MaxScopeLen)}
		}
		if !oauth.ValidScopeToken(sc) {
			return &SpecError{fmt.Sprintf("scopes[%d]", i), fmt.Sprintf("%q is not a scope token (RFC 6749 §3.3: printable ASCII except space, \" and \\)", sc)}
		}
	}
	return nil
}

// CheckTokenTTL validates an access token lifetime, a client's or the
// issuer's default: between MinTokenTTL and MaxTokenTTL. The error is a
// *SpecError for the field token_ttl.
func CheckTokenTTL(d time.Duration) error {
	if d < MinTokenTTL || d > MaxTokenTTL {
		return &SpecError{"token_ttl", fmt.Sprintf("must be between 1s and 720h, got %v", d)}
	}
	return nil
}

// ParseTokenTTL parses a client's token lifetime as the admin API and the
// CLI take it: a Go duration ("30m", "1h"); "" means the issuer default.
func ParseTokenTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, &SpecError{"token_ttl", fmt.Sprintf("must be a positive Go duration such as 30m or 1h, got %q", s)}
	}
	return d, nil
}
