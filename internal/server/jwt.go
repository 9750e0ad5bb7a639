package server

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokengw/tokengw/internal/keyring"
	"github.com/tokengw/tokengw/internal/oauth"
	"github.com/tokengw/tokengw/internal/store"
)

// KeySet is the signing key ring as the HTTP side sees it: the published
// key set and a rotation by hand. keyring.Ring is the implementation. Safe
// for concurrent use.
type KeySet interface {
	// JWKS is the published key set (RFC 7517 §5) as JSON.
	JWKS() []byte
	// JWKSMaxAge is how long the key set may be cached.
	JWKSMaxAge() time.Duration
	// Rotate adds a new key, published now, signing after the ring's lead.
	Rotate(ctx context.Context) (*keyring.Key, error)
}

// jwks serves GET /.well-known/jwks.json.
func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	JWKSHandler(s.keys).ServeHTTP(w, r)
}

// JWKSHandler serves the key set with Cache-Control public, max-age =
// issuer.jwks_max_age: the key ring publishes a new key at least that long
// before it signs with it.
func JWKSHandler(ks KeySet) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age="+strconv.FormatInt(int64(ks.JWKSMaxAge()/time.Second), 10))
		_, _ = w.Write(ks.JWKS())
	})
}

// RotateKeysHandler serves POST /admin/keys/rotate: a new signing key,
// answered with its kid and schedule. The caller checks the admin token
// before it (AdminHandler does).
func RotateKeysHandler(ks KeySet, now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k, err := ks.Rotate(r.Context())
		if err != nil {
			w.Header().Set("Retry-After", "1")
			oauth.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{
				"error": "temporarily_unavailable", "error_description": "the key ring could not be rotated; retry later",
			})
			return
		}
		oauth.WriteJSON(w, http.StatusCreated, map[string]any{
			"kid": k.ID, "alg": k.Alg, "state": k.State(now()),
			"created_at": k.CreatedAt.UTC().Format(time.RFC3339), "activate_at": k.ActivateAt.UTC().Format(time.RFC3339),
		})
	})
}

// audience is the audience of a token request: the RFC 8707 resources the
// client asked for, each one it is allowed (else invalid_target), or the
// configured default.
func (s *Server) audience(client store.Client, values []string) ([]string, error) {
	if len(values) == 0 {
		if s.set.JWT {
			return []string{s.set.Audience}, nil
		}
		return nil, nil
	}
	res, err := oauth.ParseResources(values)
	if err != nil {
		return nil, err
	}
	for _, r := range res {
		if !slices.Contains(client.Resources, r) {
			return nil, oauth.ErrInvalidTarget.WithDescription("the client may not request this resource")
		}
	}
	return res, nil
}

// JWKSPath is where the key set is served, under the issuer URL.
const JWKSPath = "/.well-known/jwks.json"

// metadataPath is the RFC 8414 well-known path.
const metadataPath = "/.well-known/oauth-authorization-server"

// jwtRoutes adds the GET routes of JWT issuing: the key set, and the
// metadata at the path-inserted location when the issuer URL has a path.
// RFC 8414 §3: "If the issuer identifier value contains a path component,
// any terminating "/" MUST be removed before inserting
// "/.well-known/" and the well-known URI suffix between the host
// component and the path component." (Offered for opaque issuers too.)
func (s *Server) jwtRoutes(gets map[string]http.HandlerFunc) {
	if s.keys != nil {
		gets[JWKSPath] = s.jwks
	}
	if p := issuerPath(s.set.Issuer); p != "" && !strings.ContainsAny(p, "*{}") { // chi pattern characters
		gets[metadataPath+p] = s.discovery
	}
}

// issuerPath is the path of the issuer URL without a trailing "/" ("" for
// none).
func issuerPath(issuer string) string {
	u, err := url.Parse(issuer)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(u.EscapedPath(), "/")
}
