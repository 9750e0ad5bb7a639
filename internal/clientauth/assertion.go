package clientauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/tokengw/tokengw/internal/assertion"
	"github.com/tokengw/tokengw/internal/oauth"
	"github.com/tokengw/tokengw/internal/store"
)

// MethodPrivateKeyJWT: a JWT signed with the client's private key, sent as
// client_assertion (RFC 7523 §2.2, OpenID Connect Core §9).
const MethodPrivateKeyJWT Method = "private_key_jwt"

// UsesAssertion reports whether a request authenticates with a client
// assertion (either parameter present).
func UsesAssertion(form oauth.Form) bool {
	return form.Has("client_assertion_type") || form.Has("client_assertion")
}

// JWTAuthenticator authenticates private_key_jwt clients. Safe for
// concurrent use. Create it with NewJWT.
type JWTAuthenticator struct {
	verifier *assertion.Verifier
	lookup   Lookup
	sources  *assertion.Sources
	failures atomic.Uint64
}

// JWTOptions configures a JWTAuthenticator. Every field is required.
type JWTOptions struct {
	Verifier *assertion.Verifier
	Lookup   Lookup
	Sources  *assertion.Sources
}

// NewJWT builds a JWTAuthenticator.
func NewJWT(opts JWTOptions) (*JWTAuthenticator, error) {
	if opts.Verifier == nil || opts.Lookup == nil || opts.Sources == nil {
		return nil, errors.New("clientauth: JWTOptions.Verifier, Lookup and Sources are required")
	}
	return &JWTAuthenticator{verifier: opts.Verifier, lookup: opts.Lookup, sources: opts.Sources}, nil
}

// Failures is how many assertion authentications ended in invalid_client.
func (a *JWTAuthenticator) Failures() uint64 { return a.failures.Load() }

// Authenticate checks a request's client_assertion (RFC 7523 §2.2, §3) and
// returns the client it authenticates. endpoint is the URL the request was
// sent to (an accepted aud unless assertions.strict_audience); the
// signature verification is charged to budget (may be nil) before it runs,
// as a secret verification is.
//
// Errors are *oauth.Error: invalid_request for a malformed request (a
// missing parameter, a second authentication method), invalid_client for
// a refused assertion (RFC 7521 §4.2.1; a replayed one too),
// rate_limited when budget is spent, temporarily_unavailable when the
// client registry, the client's jwks_uri or the store cannot answer.
func (a *JWTAuthenticator) Authenticate(ctx context.Context, r *http.Request, form oauth.Form, endpoint string, budget Budget) (store.Client, error) {
	// RFC 6749 §2.3: "The client MUST NOT use more than one authentication
	// method in each request."
	if r.Header.Get("Authorization") != "" || form.Has("client_secret") {
		return store.Client{}, oauth.ErrInvalidRequest.WithDescription(descTwoMethods)
	}
	switch {
	case !form.Has("client_assertion"):
		return store.Client{}, oauth.ErrInvalidRequest.WithDescription("client_assertion_type without client_assertion")
	case form.Get("client_assertion_type") != assertion.ClientAssertionType:
		// RFC 7521 §4.2.1: an unsupported assertion type is invalid_client
		// ("unsupported authentication method").
		a.failures.Add(1)
		return store.Client{}, oauth.ErrInvalidClient.WithDescription("client_assertion_type must be " + assertion.ClientAssertionType)
	}
	idParam, hasID := form.Get("client_id"), form.Has("client_id")
	var client store.Client
	resolve := func(ctx context.Context, c *assertion.Claims) (assertion.Principal, error) {
		// RFC 7523 §3: "For client authentication, the subject MUST be the
		// "client_id" of the OAuth client"; OpenID Connect Core §9: iss and
		// sub both the client_id.
		switch {
		case c.Subject == "" || c.Issuer != c.Subject:
			return assertion.Principal{}, &assertion.Error{Check: assertion.CheckPrincipal, Description: "iss and sub must both be the client_id"}
		case hasID && idParam != c.Subject:
			return assertion.Principal{}, &assertion.Error{Check: assertion.CheckPrincipal, Description: "client_id does not match the assertion's sub"}
		case !ValidClientID(c.Subject):
			return assertion.Principal{}, &assertion.Error{Check: assertion.CheckPrincipal, Description: "sub is not a valid client_id"}
		}
		cl, err := a.lookup.Client(ctx, c.Subject)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return assertion.Principal{}, &assertion.Error{Check: assertion.CheckPrincipal, Description: "unknown client"}
		case err != nil:
			return assertion.Principal{}, fmt.Errorf("clientauth: look up client: %w", err)
		case cl.AuthMethod != string(MethodPrivateKeyJWT):
			return assertion.Principal{}, &assertion.Error{Check: assertion.CheckPrincipal, Description: "client is not registered for private_key_jwt"}
		}
		src, err := a.sources.For(cl.JWKS, cl.JWKSURI)
		if err != nil {
			// Registrations are validated; a set that does not parse here
			// is the operator's problem: refused, with the cause logged.
			return assertion.Principal{}, &assertion.Error{Check: assertion.CheckKey, Description: "the client's registered key set is unusable"}
		}
		client = cl
		return assertion.Principal{ID: "client:" + cl.ID, Keys: src, OneTime: true}, nil
	}
	var ab assertion.Budget
	if budget != nil {
		ab = budget
	}
	_, _, err := a.verifier.Verify(ctx, form.Get("client_assertion"), endpoint, resolve, ab)
	var ae *assertion.Error
	var be *assertion.BudgetError
	switch {
	case err == nil:
		return client, nil
	case errors.As(err, &be):
		return store.Client{}, oauth.ErrRateLimited.
			WithDescription("too many failed client authentications from this address").WithRetryAfter(be.RetryAfter)
	case errors.As(err, &ae):
		a.failures.Add(1)
		return store.Client{}, oauth.ErrInvalidClient.WithDescription("client assertion refused: " + ae.Description).WithCause(err)
	default:
		return store.Client{}, oauth.ErrTemporarilyUnavailable.
			WithDescription("client authentication cannot be completed now; retry later").WithCause(err)
	}
}
