package assertion

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokengw/tokengw/internal/store"
)

// Defaults of Options.
const (
	DefaultMaxLifetime  = time.Hour
	DefaultClockSkew    = 30 * time.Second
	DefaultStoreTimeout = 2 * time.Second
)

// Options configures a Verifier. Zero values mean the defaults named.
type Options struct {
	// Issuer is this server's issuer identifier (issuer.url, RFC 8414):
	// always an accepted audience.
	Issuer string
	// TokenEndpoint is the token endpoint URL, also accepted as audience
	// unless StrictAudience (RFC 7523 §3: "The token endpoint URL of the
	// authorization server MAY be used as a value for an "aud" element").
	TokenEndpoint string
	// StrictAudience accepts only Issuer (assertions.strict_audience, as
	// draft-ietf-oauth-rfc7523bis requires).
	StrictAudience bool
	// MaxLifetime bounds exp - iat (or exp - nbf, or exp - now without
	// either). Default DefaultMaxLifetime (1h).
	MaxLifetime time.Duration
	// ClockSkew is the tolerance of the time checks, and how long past exp
	// a jti stays claimed. Default DefaultClockSkew (30s); negative: none.
	ClockSkew time.Duration
	// CacheEntries bounds the verified-JWT cache. 0 means
	// DefaultCacheEntries; negative turns the cache off.
	CacheEntries int
	// JTIs records one-time identifiers. Required.
	JTIs store.Assertions
	// StoreTimeout bounds one jti claim. Default DefaultStoreTimeout (2s).
	StoreTimeout time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Principal is who may have signed an assertion: a client
// (private_key_jwt) or a trusted issuer (the jwt-bearer grant).
type Principal struct {
	// ID names the principal; it scopes jti claims and cache entries, so
	// a client id and an issuer must not share one ("client:" and
	// "issuer:" prefixes).
	ID string
	// Keys is the principal's key set.
	Keys Source
	// OneTime requires a jti and accepts each one once, store-wide.
	OneTime bool
	// Issuer is the trusted issuer, for the jwt-bearer grant's principals.
	Issuer *TrustedIssuer
}

// Budget is the caller's budget of failed authentications: a signature
// verification is charged to it before it runs and refunded when the
// signature verifies, so a flood of bad signatures is refused before its
// crypto runs. The server's failed-authentication limiter is the
// implementation; nil charges nothing.
type Budget interface {
	Take() (ok bool, retryAfter time.Duration)
	Refund()
}

// ErrBudget is returned (wrapped in a *BudgetError) when the caller's
// budget refuses a signature verification: 429.
var ErrBudget = errors.New("assertion: failed-authentication budget spent")

// BudgetError says how long the caller should wait.
type BudgetError struct{ RetryAfter time.Duration }

func (e *BudgetError) Error() string { return ErrBudget.Error() }

// Unwrap makes errors.Is(err, ErrBudget) true.
func (e *BudgetError) Unwrap() error { return ErrBudget }

// Resolver is the principal check: given the (not yet verified) claims, it
// returns who must have signed them, or an *Error (CheckPrincipal) when
// they name nobody acceptable. Any other error is "cannot tell now" (503).
// It is also run on a cache hit, before anything else; c may then be
// shared with the cache and must not be modified.
type Resolver func(ctx context.Context, c *Claims) (Principal, error)

// Verifier checks assertions, in this order: size; header (an asymmetric
// alg); principal (Resolver); key by kid (refetching a jwks_uri once, within
// its MinRefresh, for an unknown kid); signature; aud; exp, nbf, iat,
// lifetime; jti, claimed last. Safe for concurrent use.
type Verifier struct {
	opts  Options
	aud   []string
	cache *verifiedCache

	flights claimFlights // concurrent claims of one jti: one store call

	verifications, hits atomic.Uint64
}

// New validates opts and builds a Verifier.
func New(opts Options) (*Verifier, error) {
	switch {
	case opts.Issuer == "":
		return nil, errors.New("assertion: Options.Issuer is required")
	case opts.JTIs == nil:
		return nil, errors.New("assertion: Options.JTIs is required")
	case opts.MaxLifetime < 0 || opts.StoreTimeout < 0:
		return nil, errors.New("assertion: Options.MaxLifetime and StoreTimeout must not be negative")
	}
	if opts.MaxLifetime == 0 {
		opts.MaxLifetime = DefaultMaxLifetime
	}
	switch {
	case opts.ClockSkew == 0:
		opts.ClockSkew = DefaultClockSkew
	case opts.ClockSkew < 0:
		opts.ClockSkew = 0
	}
	if opts.StoreTimeout == 0 {
		opts.StoreTimeout = DefaultStoreTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	v := &Verifier{opts: opts, aud: []string{strings.TrimSuffix(opts.Issuer, "/")}}
	if !opts.StrictAudience && opts.TokenEndpoint != "" {
		v.aud = append(v.aud, opts.TokenEndpoint)
	}
	switch {
	case opts.CacheEntries == 0:
		v.cache = newVerifiedCache(DefaultCacheEntries)
	case opts.CacheEntries > 0:
		v.cache = newVerifiedCache(opts.CacheEntries)
	}
	return v, nil
}

// Verifications is how many signatures were verified (cache misses that got
// that far).
func (v *Verifier) Verifications() uint64 { return v.verifications.Load() }

// CacheHits is how many assertions the verified-JWT cache answered.
func (v *Verifier) CacheHits() uint64 { return v.hits.Load() }

// CacheLen is the number of entries in the verified-JWT cache.
func (v *Verifier) CacheLen() int { return v.cache.len() }

// ClockSkew is the tolerance in effect.
func (v *Verifier) ClockSkew() time.Duration { return v.opts.ClockSkew }

// Verify checks compact, presented at the URL endpoint (accepted as
// audience unless StrictAudience: a revocation or introspection request
// may name the endpoint it calls), against the principal resolve names.
// It returns the verified claims and the principal. A signature
// verification is charged to budget (may be nil) before it runs.
//
// The verified-JWT cache is looked up first, by SHA-256 of the exact
// bytes, before any parsing. On a hit the principal is resolved again, the
// verifying key must still be in its key set, the claim checks are
// repeated against the clock, and a one-time assertion's jti is still
// claimed: a hit skips the parsing and the signature only.
func (v *Verifier) Verify(ctx context.Context, compact, endpoint string, resolve Resolver, budget Budget) (Claims, Principal, error) {
	if len(compact) > MaxAssertionBytes {
		return Claims{}, Principal{}, refused(CheckSize, fmt.Sprintf("assertion larger than %d bytes", MaxAssertionBytes))
	}
	sum := sha256.Sum256(bytesOf(compact))
	now := v.opts.Now()
	if e, ok := v.cache.get(sum, now); ok {
		p, err := resolve(ctx, &e.claims)
		if err != nil {
			return Claims{}, Principal{}, err
		}
		if ks := p.Keys.Cached(); p.ID == e.principal && ks != nil && ks.Has(e.thumb) {
			v.hits.Add(1)
			if err := v.checkClaims(&e.claims, endpoint, now, p); err != nil {
				return Claims{}, Principal{}, err
			}
			return e.claims, p, v.claimJTI(ctx, p, &e.claims)
		}
		// The key left the set (or the registration changed): verify anew.
		v.cache.drop(sum, e)
	}

	hs, ps, _, ok := splitCompact(compact)
	if !ok {
		return Claims{}, Principal{}, refused(CheckFormat, "not a JWS compact serialization")
	}
	h, err := parseHeader(hs)
	if err != nil {
		return Claims{}, Principal{}, err
	}
	claims, err := parseClaims(ps)
	if err != nil {
		return Claims{}, Principal{}, err
	}
	p, err := resolve(ctx, &claims)
	if err != nil {
		return Claims{}, Principal{}, err
	}
	key, err := v.key(ctx, p, h)
	if err != nil {
		return Claims{}, Principal{}, err
	}
	jws, err := jose.ParseSignedCompact(compact, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(h.Alg)})
	if err != nil {
		return Claims{}, Principal{}, refused(CheckFormat, "not a valid JWS")
	}
	if budget != nil {
		if ok, wait := budget.Take(); !ok {
			return Claims{}, Principal{}, &BudgetError{RetryAfter: wait}
		}
	}
	v.verifications.Add(1)
	if _, err := jws.Verify(key.pub); err != nil {
		return Claims{}, Principal{}, refused(CheckSignature, "signature does not verify with the registered key")
	}
	if budget != nil {
		budget.Refund()
	}
	now = v.opts.Now()
	if err := v.checkClaims(&claims, endpoint, now, p); err != nil {
		return Claims{}, Principal{}, err
	}
	v.cache.put(sum, &verified{claims: claims, principal: p.ID, thumb: key.thumb, exp: claims.Expiry}, now)
	return claims, p, v.claimJTI(ctx, p, &claims)
}

// key finds the verification key for h in p's key set; for an unknown kid
// the set is refreshed once (a jwks_uri is fetched at most once per its
// MinRefresh).
func (v *Verifier) key(ctx context.Context, p Principal, h header) (Key, error) {
	ks, err := p.Keys.Keys(ctx)
	if err != nil {
		return Key{}, err
	}
	if k, ok := ks.find(h.Kid, h.Alg); ok {
		return k, nil
	}
	if h.Kid != "" {
		if ks, err = p.Keys.Refresh(ctx); err != nil {
			return Key{}, err
		}
		if k, ok := ks.find(h.Kid, h.Alg); ok {
			return k, nil
		}
		return Key{}, refused(CheckKey, "no registered key with this kid fits the alg")
	}
	return Key{}, refused(CheckKey, "no kid, and not exactly one registered key fits the alg")
}

// checkClaims takes the checks after the signature: aud, the times, the
// lifetime, and the presence of a jti where one is required.
func (v *Verifier) checkClaims(c *Claims, endpoint string, now time.Time, p Principal) error {
	// RFC 7523 §3: "The JWT MUST contain an "aud" (audience) claim
	// containing a value that identifies the authorization server as an
	// intended audience." Single-valued here (draft-ietf-oauth-rfc7523bis),
	// so an assertion minted for several servers is refused.
	switch {
	case len(c.Audience) == 0:
		return refused(CheckAudience, "aud is missing")
	case len(c.Audience) > 1:
		return refused(CheckAudience, "aud must have exactly one value")
	case !v.audienceOK(c.Audience[0], endpoint):
		return refused(CheckAudience, "aud does not name this authorization server")
	}
	skew := v.opts.ClockSkew
	switch {
	case c.Expiry.IsZero():
		return refused(CheckExpiry, "exp is missing")
	case !now.Before(c.Expiry.Add(skew)):
		return refused(CheckExpiry, "assertion has expired")
	case !c.NotBefore.IsZero() && c.NotBefore.After(now.Add(skew)):
		return refused(CheckTime, "nbf is in the future")
	case !c.IssuedAt.IsZero() && c.IssuedAt.After(now.Add(skew)):
		return refused(CheckTime, "iat is in the future")
	}
	start := now
	switch {
	case !c.IssuedAt.IsZero():
		start = c.IssuedAt
	case !c.NotBefore.IsZero():
		start = c.NotBefore
	}
	if c.Expiry.Sub(start) > v.opts.MaxLifetime {
		return refused(CheckLifetime, fmt.Sprintf("lifetime above the maximum of %v", v.opts.MaxLifetime))
	}
	if p.OneTime && c.JTI == "" {
		return refused(CheckJTI, "jti is missing")
	}
	return nil
}

func (v *Verifier) audienceOK(aud, endpoint string) bool {
	if slices.Contains(v.aud, aud) {
		return true
	}
	return !v.opts.StrictAudience && endpoint != "" && aud == endpoint
}
