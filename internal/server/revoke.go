package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/tokengw/tokengw/internal/issue"
	"github.com/tokengw/tokengw/internal/oauth"
	"github.com/tokengw/tokengw/internal/store"
)

// revoke serves POST /oauth2/revoke (RFC 7009).
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	info, ipKey, form, ok := s.begin(w, r)
	if !ok {
		return
	}
	// RFC 7009 §2.1: "The client also includes its authentication
	// credentials as described in Section 2.3. of [RFC6749]."
	client, err := s.authClient(w, r, form, ipKey)
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
	ctx, cancel := context.WithTimeout(r.Context(), s.set.Timeouts.Store)
	defer cancel()
	tok, err := s.store.Token(ctx, hash)
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
	if err := s.store.Revoke(ctx, hash); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.fail(w, info, storeError(err))
		return
	}
	s.forget(tok)
	s.revoked(w, info, "revoked")
}

// forget removes a revoked token from this process's caches at once.
func (s *Server) forget(tok store.Token) {
	if tok.ReuseKey != "" {
		s.tokens.Evict(tok.ClientID, tok.ReuseKey)
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
