package assertion

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"
)

// GrantType is the jwt-bearer authorization grant (RFC 7523 §2.1).
const GrantType = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// ClientAssertionType is the client_assertion_type of JWT client
// authentication (RFC 7523 §2.2).
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// TrustedIssuer is an issuer whose JWTs the jwt-bearer grant exchanges for
// access tokens (trusted_issuers[] in the configuration).
type TrustedIssuer struct {
	Issuer string
	Keys   Source
	// Subjects allowed (exact match), unless AllowAnySubject.
	Subjects        map[string]bool
	AllowAnySubject bool
	// Scopes the issuer's subjects may get (normalised); the default scope
	// when the request names none.
	Scopes []string
	// TokenTTL of the access tokens; 0: issuer.token_ttl.
	TokenTTL time.Duration
	// OneTime (replay: reject): each jti accepted once. Otherwise (replay:
	// allow) a workload token may be presented until it expires.
	OneTime bool

	fingerprint string // set by NewIssuers
	principal   string // PrincipalID(Issuer), set by NewIssuers
}

// Issuers is the set of trusted issuers, by issuer identifier. Immutable
// after NewIssuers.
type Issuers struct {
	m map[string]*TrustedIssuer
}

// NewIssuers indexes the trusted issuers; an issuer listed twice is an
// error.
func NewIssuers(list []TrustedIssuer) (*Issuers, error) {
	is := &Issuers{m: make(map[string]*TrustedIssuer, len(list))}
	for i := range list {
		ti := list[i]
		if ti.Issuer == "" || ti.Keys == nil {
			return nil, fmt.Errorf("assertion: trusted issuer %d: issuer and keys are required", i)
		}
		if _, dup := is.m[ti.Issuer]; dup {
			return nil, fmt.Errorf("assertion: trusted issuer %q listed twice", ti.Issuer)
		}
		ti.fingerprint = ti.computeFingerprint()
		ti.principal = PrincipalID(ti.Issuer)
		is.m[ti.Issuer] = &ti
	}
	return is, nil
}

// Len is the number of trusted issuers.
func (is *Issuers) Len() int {
	if is == nil {
		return 0
	}
	return len(is.m)
}

// PrincipalID is the Principal.ID of a trusted issuer.
func PrincipalID(issuer string) string { return "issuer:" + issuer }

// Resolve is the principal check (a Resolver) of the jwt-bearer grant: iss
// a trusted issuer (RFC 7523 §3: "The JWT MUST contain an "iss" (issuer)
// claim that contains a unique identifier for the entity that issued the
// JWT"), sub present and allowed (§3: "The JWT MUST contain a "sub"
// (subject) claim identifying the principal that is the subject of the
// JWT"). The principal's Issuer is the trusted issuer.
func (is *Issuers) Resolve(_ context.Context, c *Claims) (Principal, error) {
	ti := is.lookup(c.Issuer)
	switch {
	case ti == nil:
		return Principal{}, refused(CheckPrincipal, "iss is not a trusted issuer")
	case c.Subject == "":
		return Principal{}, refused(CheckPrincipal, "sub is missing")
	case !ti.AllowAnySubject && !ti.Subjects[c.Subject]:
		return Principal{}, refused(CheckPrincipal, "sub is not allowed for this issuer")
	}
	return Principal{ID: ti.principal, Keys: ti.Keys, OneTime: ti.OneTime, Issuer: ti}, nil
}

func (is *Issuers) lookup(iss string) *TrustedIssuer {
	if is == nil || iss == "" {
		return nil
	}
	return is.m[iss]
}

// Grant verifies the assertions of the jwt-bearer grant against the
// trusted issuers. Safe for concurrent use.
type Grant struct {
	v       *Verifier
	issuers *Issuers
	resolve Resolver // issuers.Resolve, bound once
}

// NewGrant builds a Grant; issuers must not be empty.
func NewGrant(v *Verifier, issuers *Issuers) (*Grant, error) {
	if v == nil || issuers.Len() == 0 {
		return nil, fmt.Errorf("assertion: a Grant needs a Verifier and at least one trusted issuer")
	}
	g := &Grant{v: v, issuers: issuers}
	g.resolve = issuers.Resolve
	return g, nil
}

// Verify checks a grant assertion presented at endpoint and returns its
// claims and issuer; the signature verification is charged to budget.
// Errors as Verifier.Verify: *Error (invalid_grant), *BudgetError (429),
// anything else 503.
func (g *Grant) Verify(ctx context.Context, compact, endpoint string, budget Budget) (Claims, *TrustedIssuer, error) {
	c, p, err := g.v.Verify(ctx, compact, endpoint, g.resolve, budget)
	if err != nil {
		return Claims{}, nil, err
	}
	return c, p.Issuer, nil
}

// Fingerprint identifies a trusted issuer's registration (issuer, scopes,
// lifetime, replay mode) for the reuse key: a changed configuration stops
// reuse of the tokens issued under the old one.
func (ti *TrustedIssuer) Fingerprint() string { return ti.fingerprint }

// Principal is PrincipalID(ti.Issuer): the partition (store client id) of
// the issuer's access tokens.
func (ti *TrustedIssuer) Principal() string { return ti.principal }

func (ti *TrustedIssuer) computeFingerprint() string {
	h := sha256.New()
	for _, s := range append([]string{ti.Issuer, ti.TokenTTL.String(), strconv.FormatBool(ti.OneTime)}, ti.Scopes...) {
		h.Write([]byte(strconv.Itoa(len(s)) + ":" + s))
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}
