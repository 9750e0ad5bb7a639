package server

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/tokengw/tokengw/internal/introspect"
	"github.com/tokengw/tokengw/internal/issue"
	"github.com/tokengw/tokengw/internal/oauth"
	"github.com/tokengw/tokengw/internal/store"
)

// TokenStore is what revocation needs from the store.
type TokenStore interface {
	Token(ctx context.Context, hash []byte) (store.Token, error)
	Revoke(ctx context.Context, hash []byte) error
}

// Evictor drops a reuse slot from the process's reuse cache.
type Evictor interface {
	Evict(clientID, reuseKey string)
}

// Introspector looks tokens up through a local cache.
type Introspector interface {
	Lookup(ctx context.Context, hash []byte) (introspect.Info, bool, error)
	Forget(hash []byte)
}

var _ Introspector = (*introspect.Cache)(nil)

// revoke serves POST /oauth2/revoke (RFC 7009).
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	info, ipKey, form, ok := s.begin(w, r)
	if !ok {
		return
	}
	// RFC 7009 §2.1: "The client also includes its authentication
	// credentials as described in Section 2.3. of [RFC6749]."
	client, err := s.authClient(r, form, ipKey)
	if err != nil {
		s.fail(w, info, err)
		return
	}
	info.clientID = client.ID
	raw := form.Get("token")
	if raw == "" {
		s.fail(w, info, oauth.ErrInvalidRequest.WithDescription("missing token"))
		return
	}
	// token_type_hint is a hint: "If the server is unable to locate the
	// token using the given hint, it MUST extend its search across all of
	// its supported token types." Only access tokens exist here.
	hash := issue.Hash(raw)
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Server.Timeouts.Store)
	defer cancel()
	tok, err := s.tokenStore.Token(ctx, hash)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// §2.2: "invalid tokens do not cause an error response".
		s.revoked(w, info, "unknown")
		return
	case err != nil:
		s.fail(w, info, storeError(err))
		return
	case tok.ClientID != client.ID:
		// §2.1: the server "verifies whether the token was issued to the
		// client making the revocation request. If this validation fails,
		// the request is refused" — answered like an unknown token, so a
		// client cannot probe for other clients' tokens.
		s.revoked(w, info, "not_owner")
		return
	}
	if err := s.tokenStore.Revoke(ctx, hash); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.fail(w, info, storeError(err))
		return
	}
	s.forget(tok)
	s.revoked(w, info, "revoked")
}

// forget removes a revoked token from this process's caches at once.
func (s *Server) forget(tok store.Token) {
	if tok.ReuseKey != "" {
		s.evictor.Evict(tok.ClientID, tok.ReuseKey)
	}
	s.introspector.Forget(tok.Hash)
}

func (s *Server) revoked(w http.ResponseWriter, info *reqInfo, outcome string) {
	info.outcome = outcome
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(http.StatusOK)
}

// introspectResponse is RFC 7662 §2.2; an inactive token is exactly
// {"active": false}.
type introspectResponse struct {
	Active    bool   `json:"active"`
	Scope     string `json:"scope,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	TokenType string `json:"token_type,omitempty"`
	Exp       int64  `json:"exp,omitempty"`
	Iat       int64  `json:"iat,omitempty"`
	Iss       string `json:"iss,omitempty"`
}

// introspect serves POST /oauth2/introspect (RFC 7662). Callers are clients
// registered with introspect: true, or the operator with the admin token.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	info, ipKey, form, ok := s.begin(w, r)
	if !ok {
		return
	}
	// RFC 7662 §2.1: "the endpoint MUST also require some form of
	// authorization to access this endpoint".
	if tok, bearer := bearerToken(r); !bearer || !s.adminToken.matches(tok) {
		if bearer {
			// §2.3: "If the protected resource uses an OAuth 2.0 bearer
			// token to authorize its call to the introspection endpoint and
			// the token used for authorization ... is otherwise invalid for
			// this request, the authorization server responds with an HTTP
			// 401 code as described in Section 3 of OAuth 2.0 Bearer Token
			// Usage [RFC6750]." A wrong admin token costs a strike too.
			s.failedIP.Strike(ipKey, s.failedIPLimit)
			w.Header().Set("WWW-Authenticate", `Bearer realm="tokengw", error="invalid_token"`)
			s.fail(w, info, errIntrospectBadBearer)
			return
		}
		client, err := s.authClient(r, form, ipKey)
		if err != nil {
			s.fail(w, info, err)
			return
		}
		info.clientID = client.ID
		if !client.Introspect {
			s.fail(w, info, errIntrospectDenied)
			return
		}
	}
	raw := form.Get("token")
	if raw == "" {
		s.fail(w, info, oauth.ErrInvalidRequest.WithDescription("missing token"))
		return
	}
	ti, active, err := s.introspector.Lookup(r.Context(), issue.Hash(raw))
	if err != nil {
		s.fail(w, info, storeError(err))
		return
	}
	if !active {
		info.outcome = "inactive"
		oauth.WriteJSON(w, http.StatusOK, introspectResponse{Active: false})
		return
	}
	info.outcome = "active"
	oauth.WriteJSON(w, http.StatusOK, introspectResponse{
		Active: true, Scope: ti.Scope, ClientID: ti.ClientID, TokenType: "Bearer",
		Exp: ti.ExpiresAt.Unix(), Iat: ti.IssuedAt.Unix(), Iss: s.issuer,
	})
}

var errIntrospectDenied = &oauth.Error{
	Code: "unauthorized_client", Status: http.StatusForbidden,
	Description: "this client may not introspect tokens",
}

var errIntrospectBadBearer = &oauth.Error{
	Code: "invalid_token", Status: http.StatusUnauthorized,
	Description: "invalid bearer token",
}

// bearerToken returns the credential of an Authorization header of the
// Bearer scheme (RFC 7235 §2.1: the scheme is case-insensitive); bearer is
// false for any other scheme or none.
func bearerToken(r *http.Request) (tok string, bearer bool) {
	scheme, tok, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(tok), true
}
