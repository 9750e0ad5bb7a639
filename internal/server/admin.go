package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tokengw/tokengw/internal/clientauth"
	"github.com/tokengw/tokengw/internal/oauth"
	"github.com/tokengw/tokengw/internal/store"
)

// Client management: the operations behind the admin API
// (POST/GET/DELETE /admin/clients...) and `tokengw client`, over the store's
// run-time registry. Clients defined in the configuration are listed but
// read-only.

// ClientStore is what client management changes: the store's client
// registry and its reuse rows. store.Store implements it.
type ClientStore interface {
	store.Clients
	ClearCurrents(ctx context.Context, clientID string) error
	RevokeClient(ctx context.Context, clientID string) (int, error)
}

// Errors of ClientManager, matched with errors.Is (next to store.ErrNotFound,
// store.ErrExists and store.ErrUnavailable, which pass through).
var (
	// ErrReadOnlyClient: the client is defined in the configuration file.
	ErrReadOnlyClient = errors.New("the client is defined in the configuration file (clients:) and is read-only at run time; change it there")
)

// SpecError is a client registration that cannot be accepted; Field names
// the offending field as the admin API's JSON spells it.
type SpecError struct {
	Field string
	Msg   string
}

func (e *SpecError) Error() string { return e.Field + ": " + e.Msg }

// Bounds of a client registration.
const (
	MaxClientIDLen = 256
	MaxScopes      = 256
	MaxScopeLen    = 256
	MinTokenTTL    = time.Second
	MaxTokenTTL    = 30 * 24 * time.Hour
	maxBurst       = 1_000_000_000
	// SecretBytes is the entropy of a generated secret: 256 bits.
	SecretBytes = 32
)

// ClientSpec is a new client as an operator describes it.
type ClientSpec struct {
	ID         string // "" = generate one
	Scopes     []string
	TokenTTL   time.Duration // 0 = issuer.token_ttl
	Limit      *store.Limit  // nil = limits.per_client
	Introspect bool
}

// ClientInfo is a client as management shows it: never a secret or a hash.
type ClientInfo struct {
	ID         string
	Scopes     []string
	TokenTTL   time.Duration // 0 = issuer.token_ttl
	Limit      *store.Limit  // nil = limits.per_client
	Introspect bool
	ReadOnly   bool      // defined in the configuration file
	CreatedAt  time.Time // zero for configured clients
	UpdatedAt  time.Time
}

// Source is "config" for configured clients and "store" for the others.
func (c ClientInfo) Source() string {
	if c.ReadOnly {
		return "config"
	}
	return "store"
}

func infoOf(c store.Client, readOnly bool) ClientInfo {
	info := ClientInfo{
		ID: c.ID, Scopes: slices.Clone(c.Scopes), TokenTTL: c.TokenTTL, Introspect: c.Introspect,
		ReadOnly: readOnly, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
	}
	if info.Scopes == nil {
		info.Scopes = []string{}
	}
	if c.Limit != nil {
		l := *c.Limit
		info.Limit = &l
	}
	return info
}

// ClientManagerOptions configures a ClientManager.
type ClientManagerOptions struct {
	// Registry holds the configured (read-only) clients; its cache of store
	// clients is invalidated after every change. Required.
	Registry *Registry
	// Store is where run-time clients live. Required.
	Store ClientStore
	// Argon2 are the parameters of the hashes of generated secrets; the
	// zero value means clientauth.DefaultArgon2Params.
	Argon2 clientauth.Argon2Params
	// Invalidate, when set, forgets a client's verified credentials on this
	// process (clientauth.Authenticator.Invalidate).
	Invalidate func(clientID string)
	// OnRevokeTokens, when set, runs after every live token of a client was
	// revoked, to drop this process's cached copies at once (reuse L1,
	// introspection cache).
	OnRevokeTokens func(clientID string)
	// Timeout bounds each store operation. 0 means 5s.
	Timeout time.Duration
	// Logger records what changed (never a secret). Default: discard.
	Logger *slog.Logger
	// Now is the clock of CreatedAt and UpdatedAt; default time.Now.
	Now func() time.Time
}

// ClientManager adds, lists, rotates and removes run-time clients. Safe for
// concurrent use. Create it with NewClientManager.
type ClientManager struct {
	reg        *Registry
	store      ClientStore
	params     clientauth.Argon2Params
	invalidate func(string)
	onRevoke   func(string)
	timeout    time.Duration
	log        *slog.Logger
	now        func() time.Time
	// rotating serialises read-modify-write rotations in this process, so
	// two concurrent rotations do not both report success with only one
	// secret working. (Across processes the last writer wins.)
	rotating sync.Mutex
}

// NewClientManager validates opts and returns a ClientManager.
func NewClientManager(opts ClientManagerOptions) (*ClientManager, error) {
	if opts.Registry == nil || opts.Store == nil {
		return nil, errors.New("server: ClientManagerOptions.Registry and Store are required")
	}
	if opts.Argon2 == (clientauth.Argon2Params{}) {
		opts.Argon2 = clientauth.DefaultArgon2Params
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Invalidate == nil {
		opts.Invalidate = func(string) {}
	}
	if opts.OnRevokeTokens == nil {
		opts.OnRevokeTokens = func(string) {}
	}
	// Fail now, not on the first request, when the parameters are unusable
	// (clientauth.HashSecret checks the upper bounds).
	if p := opts.Argon2; p.Time < 1 || p.Threads < 1 || p.Memory < 8*uint32(p.Threads) {
		return nil, fmt.Errorf("server: argon2 parameters m=%d t=%d p=%d: RFC 9106 needs t >= 1, p >= 1, m >= 8p", p.Memory, p.Time, p.Threads)
	}
	return &ClientManager{
		reg: opts.Registry, store: opts.Store, params: opts.Argon2, invalidate: opts.Invalidate, onRevoke: opts.OnRevokeTokens,
		timeout: opts.Timeout, log: opts.Logger, now: opts.Now,
	}, nil
}

// forget drops id from this process's caches: the registry's answer and the
// verified credentials.
func (m *ClientManager) forget(id string) {
	m.reg.Invalidate(id)
	m.invalidate(id)
}

// RevokeTokens revokes every live token of a client, configured or
// run-time (the client itself stays registered), and returns how many it
// revoked. On this process the tokens stop being handed out or reported
// active at once; on other replicas within reuse.local_ttl.
func (m *ClientManager) RevokeTokens(ctx context.Context, id string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	n, err := m.store.RevokeClient(ctx, id)
	m.onRevoke(id) // also after a partial failure: what was revoked stays revoked
	if err != nil {
		return n, err
	}
	m.log.Info("admin: revoked the tokens of a client", "client_id", id, "revoked", n)
	return n, nil
}

// Create registers a client from spec with a generated secret, which it
// returns: the only time it is available. Errors: *SpecError, ErrReadOnlyClient
// (the id is a configured client's), store.ErrExists, store.ErrUnavailable.
func (m *ClientManager) Create(ctx context.Context, spec ClientSpec) (ClientInfo, string, error) {
	generated := spec.ID == ""
	if generated {
		spec.ID = strings.ToLower(rand.Text())
	}
	c, err := validSpec(spec)
	if err != nil {
		return ClientInfo{}, "", err
	}
	if m.reg.IsStatic(c.ID) {
		return ClientInfo{}, "", fmt.Errorf("client %q: %w", c.ID, ErrReadOnlyClient)
	}
	secret, hash, err := m.newSecret()
	if err != nil {
		return ClientInfo{}, "", err
	}
	c.SecretHash = hash
	c.CreatedAt = m.now().UTC().Truncate(time.Millisecond)
	c.UpdatedAt = c.CreatedAt
	sctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	if err := m.store.CreateClient(sctx, c); err != nil {
		return ClientInfo{}, "", err
	}
	// An earlier lookup may have cached "no such client".
	m.forget(c.ID)
	m.log.Info("client created", "client_id", c.ID, "scopes", strings.Join(c.Scopes, " "))
	return infoOf(c, false), secret, nil
}

// Get returns one client, configured or stored: store.ErrNotFound when
// neither has it.
func (m *ClientManager) Get(ctx context.Context, id string) (ClientInfo, error) {
	if sc, ok := m.reg.static[id]; ok {
		return infoOf(sc.client, true), nil
	}
	sctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	c, err := m.store.Client(sctx, id)
	if err != nil {
		return ClientInfo{}, err
	}
	return infoOf(c, false), nil
}

// List returns every client, configured and stored, ordered by id.
func (m *ClientManager) List(ctx context.Context) ([]ClientInfo, error) {
	sctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	stored, err := m.store.Clients(sctx)
	if err != nil {
		return nil, err
	}
	out := make([]ClientInfo, 0, len(stored)+len(m.reg.static))
	for _, c := range m.reg.StaticClients() {
		out = append(out, infoOf(c, true))
	}
	for _, c := range stored {
		if !m.reg.IsStatic(c.ID) { // start-up refuses overlaps; be safe anyway
			out = append(out, infoOf(c, false))
		}
	}
	slices.SortFunc(out, func(a, b ClientInfo) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// RotateSecret gives a stored client a new generated secret, which it
// returns. The old secret stops working at once on this process and within
// the registry's refresh bound on the others; the client's reuse rows are
// cleared, so tokens issued before are no longer handed out. Errors:
// ErrReadOnlyClient, store.ErrNotFound, store.ErrUnavailable.
func (m *ClientManager) RotateSecret(ctx context.Context, id string) (ClientInfo, string, error) {
	if m.reg.IsStatic(id) {
		return ClientInfo{}, "", fmt.Errorf("client %q: %w", id, ErrReadOnlyClient)
	}
	secret, hash, err := m.newSecret()
	if err != nil {
		return ClientInfo{}, "", err
	}
	m.rotating.Lock()
	defer m.rotating.Unlock()
	sctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	c, err := m.store.Client(sctx, id)
	if err != nil {
		return ClientInfo{}, "", err
	}
	c.SecretHash = hash
	c.UpdatedAt = m.now().UTC().Truncate(time.Millisecond)
	if err := m.store.UpdateClient(sctx, c); err != nil {
		return ClientInfo{}, "", err
	}
	m.forget(id)
	// The new hash changes the client's fingerprint, so the old reuse slots
	// are never looked up again; clearing them frees them now rather than
	// when their TTL runs out. A failure here does not undo the rotation.
	if err := m.store.ClearCurrents(sctx, id); err != nil {
		m.log.Warn("client secret rotated, but its reuse rows could not be cleared (they expire by themselves)", "client_id", id, "err", err)
	}
	m.log.Info("client secret rotated", "client_id", id)
	return infoOf(c, false), secret, nil
}

// Delete removes a stored client and its reuse rows. Errors:
// ErrReadOnlyClient, store.ErrNotFound, store.ErrUnavailable.
func (m *ClientManager) Delete(ctx context.Context, id string) error {
	if m.reg.IsStatic(id) {
		return fmt.Errorf("client %q: %w", id, ErrReadOnlyClient)
	}
	sctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	err := m.store.DeleteClient(sctx, id)
	// Forget even on error: the delete may have happened.
	m.forget(id)
	if err != nil {
		return err
	}
	m.log.Info("client deleted", "client_id", id)
	return nil
}

// newSecret generates a secret of SecretBytes random bytes, base64url
// without padding, and its argon2id hash.
func (m *ClientManager) newSecret() (secret, hash string, err error) {
	b := make([]byte, SecretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("server: generating a secret: %w", err)
	}
	secret = base64.RawURLEncoding.EncodeToString(b)
	if hash, err = clientauth.HashSecret(secret, m.params); err != nil {
		return "", "", fmt.Errorf("server: hashing a secret: %w", err)
	}
	return secret, hash, nil
}

// validSpec checks a registration and returns it as a store.Client with
// normalised scopes.
func validSpec(s ClientSpec) (store.Client, error) {
	switch {
	case len(s.ID) > MaxClientIDLen:
		return store.Client{}, &SpecError{"id", fmt.Sprintf("longer than %d bytes", MaxClientIDLen)}
	case !clientauth.ValidClientID(s.ID):
		return store.Client{}, &SpecError{"id", "must be printable ASCII (RFC 6749 Appendix A.1: %x20-7E)"}
	case strings.TrimSpace(s.ID) != s.ID:
		return store.Client{}, &SpecError{"id", "must not start or end with a space"}
	}
	if len(s.Scopes) == 0 {
		return store.Client{}, &SpecError{"scopes", "at least one scope is required"}
	}
	if len(s.Scopes) > MaxScopes {
		return store.Client{}, &SpecError{"scopes", fmt.Sprintf("more than %d scopes", MaxScopes)}
	}
	for i, sc := range s.Scopes {
		if len(sc) > MaxScopeLen {
			return store.Client{}, &SpecError{fmt.Sprintf("scopes[%d]", i), fmt.Sprintf("longer than %d bytes", MaxScopeLen)}
		}
		if !oauth.ValidScopeToken(sc) {
			return store.Client{}, &SpecError{fmt.Sprintf("scopes[%d]", i), fmt.Sprintf("%q is not a scope token (RFC 6749 §3.3: printable ASCII except space, \" and \\)", sc)}
		}
	}
	if s.TokenTTL != 0 && (s.TokenTTL < MinTokenTTL || s.TokenTTL > MaxTokenTTL) {
		return store.Client{}, &SpecError{"token_ttl", fmt.Sprintf("must be between %v and %v, got %v", MinTokenTTL, MaxTokenTTL, s.TokenTTL)}
	}
	c := store.Client{ID: s.ID, Scopes: oauth.NewScope(s.Scopes...).Tokens(), TokenTTL: s.TokenTTL, Introspect: s.Introspect}
	if l := s.Limit; l != nil {
		switch {
		case math.IsNaN(l.Rate) || math.IsInf(l.Rate, 0) || l.Rate < 0:
			return store.Client{}, &SpecError{"limit.rate", fmt.Sprintf("must be >= 0 requests per second (0 = unlimited), got %v", l.Rate)}
		case l.Burst < 0 || l.Burst > maxBurst:
			return store.Client{}, &SpecError{"limit.burst", fmt.Sprintf("must be between 0 and %d, got %d", maxBurst, l.Burst)}
		case l.Rate > 0 && l.Burst < 1:
			return store.Client{}, &SpecError{"limit.burst", fmt.Sprintf("must be >= 1 when rate is set, got %d", l.Burst)}
		}
		lim := *l
		c.Limit = &lim
	}
	return c, nil
}

// ---- the admin HTTP API ----

// maxAdminBody caps an admin request body.
const maxAdminBody = 64 << 10

// adminAPI serves /admin/ on the admin listener.
type adminAPI struct {
	m     *ClientManager
	token adminToken
	log   *slog.Logger
}

func newAdminAPI(m *ClientManager, token adminToken, log *slog.Logger) *adminAPI {
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
	status     int
	code       string
	desc       string
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
	oauth.WriteJSON(w, e.status, map[string]string{"error": e.code, "error_description": e.desc})
}

func badRequest(format string, a ...any) *adminError {
	return &adminError{status: http.StatusBadRequest, code: "invalid_request", desc: fmt.Sprintf(format, a...)}
}

func (a *adminAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if e := a.authorize(r); e != nil {
		a.log.Warn("admin API: unauthorized request", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "reason", e.desc)
		e.write(w)
		return
	}
	if r.URL.Path == "/admin/tokens" {
		if r.Method != http.MethodDelete {
			a.methodNotAllowed(w, "DELETE")
			return
		}
		a.revokeTokens(w, r)
		return
	}
	// Route on the escaped path: client ids may hold '/', '%' or spaces,
	// escaped in the URL by the caller.
	const prefix = "/admin/clients"
	p := r.URL.EscapedPath()
	rest, ok := strings.CutPrefix(p, prefix)
	switch {
	case !ok:
		(&adminError{status: http.StatusNotFound, code: "not_found", desc: "no such admin endpoint; see /admin/clients"}).write(w)
	case rest == "":
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			a.list(w, r)
		case http.MethodPost:
			a.create(w, r)
		default:
			a.methodNotAllowed(w, "GET, POST")
		}
	default:
		seg := strings.Split(strings.TrimPrefix(rest, "/"), "/")
		id, err := url.PathUnescape(seg[0])
		if !strings.HasPrefix(rest, "/") || err != nil || id == "" || len(seg) > 2 || (len(seg) == 2 && seg[1] != "secret") {
			(&adminError{status: http.StatusNotFound, code: "not_found", desc: "no such admin endpoint; see /admin/clients"}).write(w)
			return
		}
		if len(seg) == 2 {
			if r.Method != http.MethodPost {
				a.methodNotAllowed(w, "POST")
				return
			}
			a.rotate(w, r, id)
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			a.get(w, r, id)
		case http.MethodDelete:
			a.remove(w, r, id)
		default:
			a.methodNotAllowed(w, "GET, DELETE")
		}
	}
}

func (a *adminAPI) methodNotAllowed(w http.ResponseWriter, allow string) {
	(&adminError{status: http.StatusMethodNotAllowed, code: "invalid_request", desc: "method not allowed", allow: allow}).write(w)
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

// clientJSON is a client in admin API responses.
type clientJSON struct {
	ID         string     `json:"id"`
	Scopes     []string   `json:"scopes"`
	TokenTTL   string     `json:"token_ttl,omitempty"`
	Limit      *limitJSON `json:"limit,omitempty"`
	Introspect bool       `json:"introspect"`
	Source     string     `json:"source"`
	CreatedAt  *time.Time `json:"created_at,omitempty"`
	UpdatedAt  *time.Time `json:"updated_at,omitempty"`
}

type limitJSON struct {
	Rate  float64 `json:"rate"`
	Burst int     `json:"burst"`
}

func toJSON(c ClientInfo) clientJSON {
	out := clientJSON{ID: c.ID, Scopes: c.Scopes, Introspect: c.Introspect, Source: c.Source()}
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
		return &SpecError{"scopes", "must be an array of strings or one space-delimited string"}
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

// ParseTokenTTL parses a client's token lifetime as the admin API and the
// CLI take it: a Go duration ("30m", "1h"); "" means the issuer default.
func ParseTokenTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, &SpecError{"token_ttl", fmt.Sprintf("must be a positive Go duration such as 30m or 1h, got %q", s)}
	}
	return d, nil
}

func (a *adminAPI) create(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	if e := decodeJSON(w, r, &req); e != nil {
		e.write(w)
		return
	}
	spec := ClientSpec{Scopes: req.Scopes, Introspect: req.Introspect}
	if req.ID != nil {
		if *req.ID == "" {
			badRequest("id: must not be empty (omit it to have one generated)").write(w)
			return
		}
		spec.ID = *req.ID
	}
	ttl, err := ParseTokenTTL(req.TokenTTL)
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
	oauth.WriteJSON(w, http.StatusCreated, map[string]any{"client": toJSON(info), "secret": secret})
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
	oauth.WriteJSON(w, http.StatusOK, map[string]any{"client": toJSON(info), "secret": secret})
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
	var se *SpecError
	var e *adminError
	switch {
	case errors.As(err, &se):
		e = badRequest("%s", se.Error())
	case errors.Is(err, ErrReadOnlyClient):
		e = &adminError{status: http.StatusConflict, code: "conflict",
			desc: fmt.Sprintf("client %q is defined in the configuration file (clients:) and is read-only at run time; change it there", id)}
	case errors.Is(err, store.ErrExists):
		e = &adminError{status: http.StatusConflict, code: "conflict", desc: fmt.Sprintf("client %q exists already", id)}
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
		var spec *SpecError
		switch {
		case errors.As(err, &mbe):
			return tooLarge
		case errors.Is(err, io.EOF):
			return badRequest("empty body: send a JSON object")
		case errors.As(err, &se):
			return badRequest("malformed JSON at byte %d", se.Offset)
		case errors.As(err, &spec):
			return badRequest("%s", spec.Error())
		case errors.As(err, &te) && te.Field == "":
			return badRequest("the body must be a JSON object")
		case errors.As(err, &te):
			return badRequest("%s: must be a JSON %s", te.Field, jsonKind(te.Type))
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
