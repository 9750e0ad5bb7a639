package server

import (
	"context"
	"net/http"
	"strings"

	"github.com/tokengw/tokengw/internal/introspect"
	"github.com/tokengw/tokengw/internal/issue"
	"github.com/tokengw/tokengw/internal/oauth"
)

// Introspector looks tokens up through a local cache.
type Introspector interface {
	Lookup(ctx context.Context, hash []byte) (introspect.Info, bool, error)
	Forget(hash []byte)
}

var _ Introspector = (*introspect.Cache)(nil)

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
			s.failedAuth.Strike(ipKey, s.set.FailedAuthLimit)
			w.Header().Set("WWW-Authenticate", `Bearer realm="tokengw", error="invalid_token"`)
			s.fail(w, info, errIntrospectBadBearer)
			return
		}
		client, err := s.authClient(w, r, form, ipKey)
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
		Exp: ti.ExpiresAt.Unix(), Iat: ti.IssuedAt.Unix(), Iss: s.set.Issuer,
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
