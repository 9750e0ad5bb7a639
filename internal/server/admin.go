package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/tokengw/tokengw/internal/clients"
	"github.com/tokengw/tokengw/internal/oauth"
	"github.com/tokengw/tokengw/internal/store"
)

// ---- the admin HTTP API ----

// maxAdminBody caps an admin request body.
const maxAdminBody = 64 << 10

// adminAPI serves /admin/ on the admin listener.
type adminAPI struct {
	m     ClientAdmin
	token adminToken
	log   *slog.Logger
}

func newAdminAPI(m ClientAdmin, token adminToken, log *slog.Logger) *adminAPI {
	return &adminAPI{m: m, token: token, log: log}
}

// adminToken holds the digest of server.admin_token; the zero value (no
// token configured) matches nothing.
type adminToken struct {
	sum [sha256.Size]byte
	set bool
}

func newAdminToken(tok string) adminToken {
	return adminToken{sum: sha256.Sum256([]byte(tok)), set: tok != ""}
}

// matches compares SHA-256 digests in constant time, so neither the token's
// content nor its length leaks through timing.
func (t adminToken) matches(tok string) bool {
	sum := sha256.Sum256([]byte(tok))
	return t.set && subtle.ConstantTimeCompare(sum[:], t.sum[:]) == 1
}

// adminError is the JSON error body of the admin API, shaped like RFC 6749
// §5.2's.
type adminError struct {
	status int
	code   string
	desc   string
	field  string // the request field at fault, when one is

	challenge  string // WWW-Authenticate
	retryAfter bool
	allow      string
}

func (e *adminError) write(w http.ResponseWriter) {
	h := w.Header()
	if e.challenge != "" {
		h.Set("WWW-Authenticate", e.challenge)
	}
	if e.retryAfter {
		h.Set("Retry-After", "1")
	}
	if e.allow != "" {
		h.Set("Allow", e.allow)
	}
	body := map[string]string{"error": e.code, "error_description": e.desc}
	if e.field != "" {
		body["field"] = e.field
	}
	oauth.WriteJSON(w, e.status, body)
}

// specError is a 400 naming the field of a registration problem.
func specError(se *clients.SpecError) *adminError {
	e := badRequest("%s", se.Error())
	e.field = se.Field
	return e
}

func badRequest(format string, a ...any) *adminError {
	return &adminError{status: http.StatusBadRequest, code: "invalid_request", desc: fmt.Sprintf(format, a...)}
}

// routes mounts the admin API on r, behind the bearer admin token. Client
// ids may hold '/', '%' or spaces, escaped by the caller: the admin listener
// routes on the escaped path (see AdminHandler) and the id is unescaped here.
// extra are further POST routes below /admin (key rotation, the store
// backup), behind the same bearer check.
func (a *adminAPI) routes(r chi.Router, extra map[string]http.Handler) {
	r.Route("/admin", func(r chi.Router) {
		r.Use(a.authorized)
		r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
			(&adminError{status: http.StatusNotFound, code: "not_found", desc: "no such admin endpoint; see /admin/clients"}).write(w)
		})
		r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
			a.methodNotAllowed(w, adminAllow(r.URL.EscapedPath()))
		})
		for path, h := range extra {
			r.Method(http.MethodPost, path, h)
		}
		if a.m == nil {
			return
		}
		r.Get("/clients", a.list)
		r.Head("/clients", a.list)
		r.Post("/clients", a.create)
		r.Get("/clients/{id}", a.withID(a.get))
		r.Head("/clients/{id}", a.withID(a.get))
		r.Patch("/clients/{id}", a.withID(a.update))
		r.Delete("/clients/{id}", a.withID(a.remove))
		r.Post("/clients/{id}/secret", a.withID(a.rotate))
		r.Delete("/tokens", a.revokeTokens)
	})
}

func (a *adminAPI) methodNotAllowed(w http.ResponseWriter, allow string) {
	(&adminError{status: http.StatusMethodNotAllowed, code: "invalid_request", desc: "method not allowed", allow: allow}).write(w)
}

// adminAllow is the Allow header of a path whose method is not routed.
func adminAllow(path string) string {
	rest := strings.TrimPrefix(path, "/admin")
	switch {
	case rest == "/clients":
		return "GET, POST"
	case rest == "/tokens":
		return "DELETE"
	case strings.HasSuffix(rest, "/secret"), rest == "/keys/rotate", rest == "/store/backup":
		return "POST"
	}
	return "GET, PATCH, DELETE"
}

// withID unescapes the {id} path segment for h.
func (a *adminAPI) withID(h func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := url.PathUnescape(chi.URLParam(r, "id"))
		if err != nil || id == "" {
			(&adminError{status: http.StatusNotFound, code: "not_found", desc: "no such admin endpoint; see /admin/clients"}).write(w)
			return
		}
		h(w, r, id)
	}
}

// authorized answers 401 to a request without the admin token.
func (a *adminAPI) authorized(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e := a.authorize(r); e != nil {
			a.log.Warn("admin API: unauthorized request", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "reason", e.desc)
			e.write(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authorize checks "Authorization: Bearer <server.admin_token>" (RFC 6750
// §2.1), comparing SHA-256 digests in constant time so neither the token's
// content nor its length leaks through timing.
func (a *adminAPI) authorize(r *http.Request) *adminError {
	const realm = `Bearer realm="tokengw-admin"`
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		return &adminError{status: http.StatusUnauthorized, code: "invalid_token",
			desc: "admin token required: send Authorization: Bearer <server.admin_token>", challenge: realm}
	}
	scheme, tok, _ := strings.Cut(strings.TrimSpace(vals[0]), " ")
	tok = strings.TrimSpace(tok)
	if len(vals) > 1 || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return &adminError{status: http.StatusUnauthorized, code: "invalid_token",
			desc:      "malformed Authorization header: send Authorization: Bearer <server.admin_token>",
			challenge: realm + `, error="invalid_request"`}
	}
	if !a.token.matches(tok) {
		return &adminError{status: http.StatusUnauthorized, code: "invalid_token", desc: "invalid admin token",
			challenge: realm + `, error="invalid_token"`}
	}
	return nil
}

// clientJSON is a client in admin API responses: never a secret or its
// hash (a jwks holds public keys only).
type clientJSON struct {
	ID         string          `json:"id"`
	Scopes     []string        `json:"scopes"`
	TokenTTL   string          `json:"token_ttl,omitempty"`
	Limit      *limitJSON      `json:"limit,omitempty"`
	Introspect bool            `json:"introspect"`
	AuthMethod string          `json:"token_endpoint_auth_method"`
	JWKS       json.RawMessage `json:"jwks,omitempty"`
	JWKSURI    string          `json:"jwks_uri,omitempty"`
	Resources  []string        `json:"resources,omitempty"`
	Source     string          `json:"source"`
	CreatedAt  *time.Time      `json:"created_at,omitempty"`
	UpdatedAt  *time.Time      `json:"updated_at,omitempty"`
}

type limitJSON struct {
	Rate  float64 `json:"rate"`
	Burst int     `json:"burst"`
}

func toJSON(c clients.Info) clientJSON {
	out := clientJSON{ID: c.ID, Scopes: c.Scopes, Introspect: c.Introspect, Source: c.Source(),
		AuthMethod: c.Method(), JWKSURI: c.JWKSURI, Resources: c.Resources}
	if c.JWKS != "" && json.Valid([]byte(c.JWKS)) {
		out.JWKS = json.RawMessage(c.JWKS)
	}
	if c.TokenTTL != 0 {
		out.TokenTTL = c.TokenTTL.String()
	}
	if c.Limit != nil {
		out.Limit = &limitJSON{Rate: c.Limit.Rate, Burst: c.Limit.Burst}
	}
	if !c.CreatedAt.IsZero() {
		t := c.CreatedAt.UTC()
		out.CreatedAt = &t
	}
	if !c.UpdatedAt.IsZero() {
		t := c.UpdatedAt.UTC()
		out.UpdatedAt = &t
	}
	return out
}

// createRequest is POST /admin/clients.
type createRequest struct {
	ID         *string    `json:"id"`
	Scopes     scopeList  `json:"scopes"`
	TokenTTL   string     `json:"token_ttl"`
	Limit      *limitJSON `json:"limit"`
	Introspect bool       `json:"introspect"`
	AuthMethod string     `json:"token_endpoint_auth_method"`
	JWKS       jwksJSON   `json:"jwks"`
	JWKSURI    string     `json:"jwks_uri"`
	Resources  []string   `json:"resources"`
}

// patchRequest is PATCH /admin/clients/{id}: the fields present replace
// the registration's; "limit": null goes back to limits.per_client,
// "token_ttl": "" to issuer.token_ttl, "resources": [] clears them. jwks or
// jwks_uri replaces the key source.
type patchRequest struct {
	Scopes     *scopeList      `json:"scopes"`
	TokenTTL   *string         `json:"token_ttl"`
	Limit      json.RawMessage `json:"limit"`
	Introspect *bool           `json:"introspect"`
	AuthMethod *string         `json:"token_endpoint_auth_method"`
	JWKS       *jwksJSON       `json:"jwks"`
	JWKSURI    *string         `json:"jwks_uri"`
	Resources  *[]string       `json:"resources"`
}

// jwksJSON is an inline JWK Set (RFC 7517 §5): a JSON object, kept
// compacted as the registration stores it.
type jwksJSON string

func (j *jwksJSON) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		return nil // as if absent
	}
	if !bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
		return &clients.SpecError{Field: "jwks", Msg: `must be a JWK Set: a JSON object {"keys": [...]}`}
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return &clients.SpecError{Field: "jwks", Msg: "not a JWK Set: malformed JSON"}
	}
	*j = jwksJSON(buf.String())
	return nil
}

// scopeList is a JSON array of scope tokens or one space-delimited string
// (the scope parameter's own form, RFC 6749 §3.3).
type scopeList []string

func (s *scopeList) UnmarshalJSON(b []byte) error {
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte(`"`)) {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		*s = splitScopes(str)
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return &clients.SpecError{Field: "scopes", Msg: "must be an array of strings or one space-delimited string"}
	}
	*s = list
	return nil
}

// splitScopes splits a space-delimited scope string; runs of spaces are
// tolerated, other characters are left for validation.
func splitScopes(s string) []string {
	var out []string
	for _, t := range strings.Split(s, " ") {
		if t != "" {
			out = append(out, t)
		}
	}
	return out
}

func (a *adminAPI) create(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	if e := decodeJSON(w, r, &req); e != nil {
		e.write(w)
		return
	}
	spec := clients.Spec{
		Scopes: req.Scopes, Introspect: req.Introspect,
		AuthMethod: req.AuthMethod, JWKS: string(req.JWKS), JWKSURI: req.JWKSURI, Resources: req.Resources,
	}
	if req.ID != nil {
		if *req.ID == "" {
			badRequest("id: must not be empty (omit it to have one generated)").write(w)
			return
		}
		spec.ID = *req.ID
	}
	ttl, err := clients.ParseTokenTTL(req.TokenTTL)
	if err != nil {
		a.fail(w, r, "create", "", err)
		return
	}
	spec.TokenTTL = ttl
	if req.Limit != nil {
		spec.Limit = &store.Limit{Rate: req.Limit.Rate, Burst: req.Limit.Burst}
	}
	info, secret, err := a.m.Create(r.Context(), spec)
	if err != nil {
		a.fail(w, r, "create", spec.ID, err)
		return
	}
	w.Header().Set("Location", "/admin/clients/"+url.PathEscape(info.ID))
	oauth.WriteJSON(w, http.StatusCreated, withSecret(info, secret))
}

// withSecret is the body of an answer that may carry a generated secret:
// the client, and "secret" only when there is one (a private_key_jwt
// client has none).
func withSecret(info clients.Info, secret string) map[string]any {
	body := map[string]any{"client": toJSON(info)}
	if secret != "" {
		body["secret"] = secret
	}
	return body
}

// update serves PATCH /admin/clients/{id}.
func (a *adminAPI) update(w http.ResponseWriter, r *http.Request, id string) {
	var req patchRequest
	if e := decodeJSON(w, r, &req); e != nil {
		e.write(w)
		return
	}
	var p clients.Patch
	if req.Scopes != nil {
		sc := []string(*req.Scopes)
		p.Scopes = &sc
	}
	if req.TokenTTL != nil {
		ttl, err := clients.ParseTokenTTL(*req.TokenTTL)
		if err != nil {
			a.fail(w, r, "update", id, err)
			return
		}
		p.TokenTTL = &ttl
	}
	if req.Limit != nil {
		var l *store.Limit
		if !bytes.Equal(bytes.TrimSpace(req.Limit), []byte("null")) {
			// A limit with one of rate and burst changes that one and
			// keeps the other (not: the other becomes 0, unlimited).
			var lj struct {
				Rate  *float64 `json:"rate"`
				Burst *int     `json:"burst"`
			}
			dec := json.NewDecoder(bytes.NewReader(req.Limit))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&lj); err != nil || (lj.Rate == nil && lj.Burst == nil) {
				e := badRequest("limit: must be null or an object with rate, burst or both {\"rate\": number, \"burst\": number}")
				e.field = "limit"
				e.write(w)
				return
			}
			if lj.Rate == nil || lj.Burst == nil {
				p.LimitRate, p.LimitBurst = lj.Rate, lj.Burst
			} else {
				l = &store.Limit{Rate: *lj.Rate, Burst: *lj.Burst}
			}
		}
		if l != nil || p.LimitRate == nil && p.LimitBurst == nil {
			p.Limit = &l
		}
	}
	p.Introspect, p.AuthMethod, p.JWKSURI, p.Resources = req.Introspect, req.AuthMethod, req.JWKSURI, req.Resources
	if req.JWKS != nil {
		j := string(*req.JWKS)
		p.JWKS = &j
	}
	info, secret, err := a.m.Update(r.Context(), id, p)
	if err != nil {
		a.fail(w, r, "update", id, err)
		return
	}
	oauth.WriteJSON(w, http.StatusOK, withSecret(info, secret))
}

func (a *adminAPI) list(w http.ResponseWriter, r *http.Request) {
	list, err := a.m.List(r.Context())
	if err != nil {
		a.fail(w, r, "list", "", err)
		return
	}
	out := make([]clientJSON, len(list))
	for i, c := range list {
		out[i] = toJSON(c)
	}
	oauth.WriteJSON(w, http.StatusOK, map[string]any{"clients": out})
}

func (a *adminAPI) get(w http.ResponseWriter, r *http.Request, id string) {
	info, err := a.m.Get(r.Context(), id)
	if err != nil {
		a.fail(w, r, "get", id, err)
		return
	}
	oauth.WriteJSON(w, http.StatusOK, map[string]any{"client": toJSON(info)})
}

func (a *adminAPI) rotate(w http.ResponseWriter, r *http.Request, id string) {
	info, secret, err := a.m.RotateSecret(r.Context(), id)
	if err != nil {
		a.fail(w, r, "rotate secret", id, err)
		return
	}
	oauth.WriteJSON(w, http.StatusOK, withSecret(info, secret))
}

func (a *adminAPI) remove(w http.ResponseWriter, r *http.Request, id string) {
	if err := a.m.Delete(r.Context(), id); err != nil {
		a.fail(w, r, "delete", id, err)
		return
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// revokeTokens serves DELETE /admin/tokens?client_id=ID: every live token of
// the client is revoked.
func (a *adminAPI) revokeTokens(w http.ResponseWriter, r *http.Request) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	ids := q["client_id"]
	if err != nil || len(ids) != 1 || ids[0] == "" {
		badRequest("exactly one client_id query parameter is required").write(w)
		return
	}
	n, err := a.m.RevokeTokens(r.Context(), ids[0])
	if err != nil {
		a.fail(w, r, "revoke tokens", ids[0], err)
		return
	}
	oauth.WriteJSON(w, http.StatusOK, map[string]any{"client_id": ids[0], "revoked": n})
}

// fail maps a management error to a response; internal detail goes to the
// log only.
func (a *adminAPI) fail(w http.ResponseWriter, r *http.Request, op, id string, err error) {
	var se *clients.SpecError
	var e *adminError
	switch {
	case errors.As(err, &se):
		e = specError(se)
	case errors.Is(err, clients.ErrNoSecret):
		e = badRequest("client %q authenticates with private_key_jwt and has no secret to rotate; change its keys with PATCH /admin/clients/{id} (jwks or jwks_uri)", id)
	case errors.Is(err, clients.ErrReadOnly):
		e = &adminError{status: http.StatusConflict, code: "conflict",
			desc: fmt.Sprintf("client %q is defined in the configuration file (clients:) and is read-only at run time; change it there", id)}
	case errors.Is(err, store.ErrExists):
		e = &adminError{status: http.StatusConflict, code: "conflict", desc: fmt.Sprintf("client %q exists already", id)}
	case errors.Is(err, store.ErrConflict):
		a.log.Warn("admin API: client changed concurrently", "op", op, "client_id", id, "err", err)
		e = &adminError{status: http.StatusConflict, code: "conflict",
			desc: fmt.Sprintf("client %q was changed by another request at the same time, again and again; nothing was written; read it again and retry", id)}
	case errors.Is(err, store.ErrNotFound):
		e = &adminError{status: http.StatusNotFound, code: "not_found", desc: fmt.Sprintf("no client %q", id)}
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, store.ErrClosed), errors.Is(err, context.DeadlineExceeded):
		a.log.Warn("admin API: store unavailable", "op", op, "client_id", id, "err", err)
		e = &adminError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable",
			desc: "the client store is unavailable; retry later", retryAfter: true}
	default:
		a.log.Error("admin API: failed", "op", op, "client_id", id, "err", err)
		e = &adminError{status: http.StatusInternalServerError, code: "server_error", desc: "internal error; see the server log"}
	}
	e.write(w)
}

// jsonKind names a Go type as JSON does.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "boolean"
	case reflect.String:
		return "string"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Struct, reflect.Map, reflect.Pointer:
		return "object"
	case reflect.Float32, reflect.Float64, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "number"
	}
	return "value of another type"
}

// decodeJSON reads one JSON object of at most maxAdminBody bytes into v,
// refusing unknown fields and trailing data.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) *adminError {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return &adminError{status: http.StatusUnsupportedMediaType, code: "invalid_request", desc: "content type must be application/json"}
	}
	tooLarge := &adminError{status: http.StatusRequestEntityTooLarge, code: "invalid_request",
		desc: fmt.Sprintf("request body larger than %d bytes", maxAdminBody)}
	if r.ContentLength > maxAdminBody {
		return tooLarge
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		var spec *clients.SpecError
		switch {
		case errors.As(err, &mbe):
			return tooLarge
		case errors.Is(err, io.EOF):
			return badRequest("empty body: send a JSON object")
		case errors.As(err, &se):
			return badRequest("malformed JSON at byte %d", se.Offset)
		case errors.As(err, &spec):
			return specError(spec)
		case errors.As(err, &te) && te.Field == "":
			return badRequest("the body must be a JSON object")
		case errors.As(err, &te):
			e := badRequest("%s: must be a JSON %s", te.Field, jsonKind(te.Type))
			e.field = te.Field
			return e
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			// encoding/json has no typed error for unknown fields.
			return badRequest("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		default:
			return badRequest("malformed JSON: %s", err.Error())
		}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("trailing data after the JSON object")
	}
	return nil
}
