package server

import (
	"context"
	"errors"
	"net/http"
	"net/netip"

	"github.com/tokengw/tokengw/internal/assertion"
	"github.com/tokengw/tokengw/internal/clientauth"
	"github.com/tokengw/tokengw/internal/oauth"
	"github.com/tokengw/tokengw/internal/reuse"
	"github.com/tokengw/tokengw/internal/store"
)

// JWTAuth authenticates private_key_jwt clients (client_assertion).
// clientauth.JWTAuthenticator is the implementation. Safe for concurrent
// use.
type JWTAuth interface {
	Authenticate(ctx context.Context, r *http.Request, form oauth.Form, endpoint string, budget clientauth.Budget) (store.Client, error)
}

// BearerGrant verifies jwt-bearer grant assertions. assertion.Grant is the
// implementation. Safe for concurrent use.
type BearerGrant interface {
	Verify(ctx context.Context, compact, endpoint string, budget assertion.Budget) (assertion.Claims, *assertion.TrustedIssuer, error)
}

var (
	_ JWTAuth     = (*clientauth.JWTAuthenticator)(nil)
	_ BearerGrant = (*assertion.Grant)(nil)
)

// authAssertion is authClient for a request with a client assertion; the
// signature verification is charged to b before it runs.
func (s *Server) authAssertion(r *http.Request, form oauth.Form, b *authBudget) (store.Client, error) {
	if s.jwtAuth == nil {
		return store.Client{}, oauth.ErrInvalidClient.WithDescription("client assertions are not accepted here")
	}
	endpoint := s.tokenURL
	if r.URL.Path != "/oauth2/token" { // revocation, introspection
		endpoint = s.set.Issuer + r.URL.Path
	}
	return s.jwtAuth.Authenticate(r.Context(), r, form, endpoint, b)
}

// jwtBearer serves grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer
// (RFC 7523 §2.1): the assertion's subject gets an access token, reused
// per (issuer, subject, scope) like client_credentials tokens per client.
// Client authentication is optional (§3.1) but, when sent, must succeed.
func (s *Server) jwtBearer(w http.ResponseWriter, r *http.Request, info *reqInfo, form oauth.Form, ipKey netip.Addr) {
	if r.Header.Get("Authorization") != "" || form.Has("client_secret") || clientauth.UsesAssertion(form) {
		client, err := s.authClient(w, r, form, ipKey)
		if err != nil {
			s.fail(w, info, err)
			return
		}
		info.clientID = client.ID
	}
	if !form.Has("assertion") {
		s.fail(w, info, oauth.ErrInvalidRequest.WithDescription("missing assertion"))
		return
	}
	// The signature verification is charged to the caller's
	// failed-authentication budget before it runs, as a secret's is.
	info.budget = authBudget{set: s.failedAuth, key: ipKey, lim: s.set.FailedAuthLimit}
	claims, ti, err := s.grant.Verify(r.Context(), form.Get("assertion"), s.tokenURL, &info.budget)
	if err != nil {
		s.grantRefused(w, info, ipKey, err)
		return
	}
	principal := ti.Principal()
	if !s.set.ClientLimit.Unlimited() && // the key is built only when it is used
		!s.allowConsumer(w, info, principal+"\x00"+claims.Subject, s.set.ClientLimit, "subject") {
		return
	}
	scope, err := requestScope(form, oauth.NewScope(ti.Scopes...), "issuer")
	if err != nil {
		s.fail(w, info, err)
		return
	}
	// The audience is the configured default: a trusted issuer registers
	// no RFC 8707 resources, so a resource parameter is invalid_target.
	aud, err := s.audience(store.Client{}, form.Values("resource"))
	if err != nil {
		s.fail(w, info, err)
		return
	}
	s.answer(w, r, info, reuse.Request{
		ClientID: principal, Scope: scope.String(), Lifetime: s.lifetime(ti.TokenTTL), Fingerprint: ti.Fingerprint(),
		Audience: aud, Subject: claims.Subject,
	})
}

// grantRefused answers a jwt-bearer assertion Verify refused. (Apart from
// the hit path: errors.As's targets live on the heap.)
func (s *Server) grantRefused(w http.ResponseWriter, info *reqInfo, ipKey netip.Addr, err error) {
	var ae *assertion.Error
	var be *assertion.BudgetError
	switch {
	case errors.As(err, &be):
		s.fail(w, info, oauth.ErrRateLimited.WithDescription("too many failed authentications from this address").WithRetryAfter(be.RetryAfter))
	case errors.As(err, &ae):
		if !info.budget.taken {
			s.failedAuth.Strike(ipKey, s.set.FailedAuthLimit)
		}
		// RFC 7523 §3.1: "If the JWT is not valid ... the authorization
		// server constructs an error response ... the value of the error
		// parameter MUST be the "invalid_grant" error code."
		s.fail(w, info, oauth.ErrInvalidGrant.WithDescription("assertion refused: "+ae.Description).WithCause(err))
	default:
		s.fail(w, info, oauth.ErrTemporarilyUnavailable.WithDescription("the assertion cannot be checked now; retry later").WithCause(err))
	}
}
