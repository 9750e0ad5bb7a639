package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/tokengw/tokengw/internal/clients"
	"github.com/tokengw/tokengw/internal/oauth"
)

// metadata is the RFC 8414 authorization server metadata document.
func metadata(iss string, jwks bool) ([]byte, error) {
	md := map[string]any{
		"issuer":                                        iss,
		"token_endpoint":                                iss + "/oauth2/token",
		"grant_types_supported":                         []string{clients.GrantClientCredentials},
		"token_endpoint_auth_methods_supported":         []string{"client_secret_basic", "client_secret_post"},
		"revocation_endpoint":                           iss + "/oauth2/revoke",
		"revocation_endpoint_auth_methods_supported":    []string{"client_secret_basic", "client_secret_post"},
		"introspection_endpoint":                        iss + "/oauth2/introspect",
		"introspection_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		// No authorization endpoint: this server issues no response types.
		"response_types_supported": []string{},
	}
	if jwks {
		md["jwks_uri"] = iss + JWKSPath
	}
	b, err := json.Marshal(md)
	if err != nil {
		return nil, fmt.Errorf("server: metadata: %w", err)
	}
	return append(b, '\n'), nil
}

func (s *Server) discovery(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(s.metadata)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	oauth.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz is ready while the store answers and the server is not shutting down.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if !s.ready.Load() {
		oauth.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting down"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.set.Timeouts.Store)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.Warn("readiness: store unavailable", "request_id", infoOf(w).id, "err", err.Error())
		w.Header().Set("Retry-After", "1")
		oauth.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "store unavailable"})
		return
	}
	oauth.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
