package clients

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tokengw/tokengw/internal/clientauth"
	"github.com/tokengw/tokengw/internal/store"
)

// Client management: the operations behind the admin API
// (POST/GET/DELETE /admin/clients...) and `tokengw client`, over the store's
// run-time registry. Clients defined in the configuration are listed but
// read-only.

// Store is what client management changes: the store's client
// registry and its reuse rows. store.Store implements it.
type Store interface {
	store.Clients
	ClearCurrents(ctx context.Context, clientID string) error
	RevokeClient(ctx context.Context, clientID string) (int, error)
}

// Errors of Manager, matched with errors.Is (next to store.ErrNotFound,
// store.ErrExists and store.ErrUnavailable, which pass through).
var (
	// ErrReadOnly: the client is defined in the configuration file.
	ErrReadOnly = errors.New("clients: the client is defined in the configuration file (clients:) and is read-only at run time; change it there")
	// ErrNoSecret: the client authenticates with private_key_jwt and has
	// no secret to rotate.
	ErrNoSecret = errors.New("clients: the client authenticates with private_key_jwt and has no secret to rotate; update its jwks or jwks_uri instead")
)

// Info is a client as management shows it: never a secret or a hash.
type Info struct {
	ID         string
	Scopes     []string
	TokenTTL   time.Duration // 0 = issuer.token_ttl
	Limit      *store.Limit  // nil = limits.per_client
	Introspect bool
	// AuthMethod is the token_endpoint_auth_method as registered: ""
	// (registered without one, or before the field: a secret),
	// client_secret_basic, client_secret_post (a secret client may use
	// either), or private_key_jwt, with exactly one of JWKS (a JWK Set of
	// public keys, JSON) and JWKSURI.
	AuthMethod string
	JWKS       string
	JWKSURI    string
	Resources  []string  // RFC 8707 resource indicators
	ReadOnly   bool      // defined in the configuration file
	CreatedAt  time.Time // zero for configured clients
	UpdatedAt  time.Time
}

// Method is the client's token_endpoint_auth_method as listings show it:
// as registered, and client_secret_basic for a secret client registered
// without one (a secret client may use either secret method).
func (c Info) Method() string { return methodName(c.AuthMethod) }

// Source is "config" for configured clients and "store" for the others.
func (c Info) Source() string {
	if c.ReadOnly {
		return "config"
	}
	return "store"
}

func infoOf(c store.Client, readOnly bool) Info {
	info := Info{
		ID: c.ID, Scopes: slices.Clone(c.Scopes), TokenTTL: c.TokenTTL, Introspect: c.Introspect,
		AuthMethod: c.AuthMethod, JWKS: c.JWKS, JWKSURI: c.JWKSURI, Resources: slices.Clone(c.Resources),
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

// ManagerOptions configures a Manager.
type ManagerOptions struct {
	// Registry holds the configured (read-only) clients; its cache of store
	// clients is invalidated after every change. Required.
	Registry *Registry
	// Store is where run-time clients live. Required.
	Store Store
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
	// AllowHTTPJWKSURI is assertions.allow_http_jwks_uri: a private_key_jwt
	// client's jwks_uri may be http (tests on loopback).
	AllowHTTPJWKSURI bool
	// Timeout bounds each store operation. 0 means 5s.
	Timeout time.Duration
	// Logger records what changed (never a secret). Default: discard.
	Logger *slog.Logger
	// Now is the clock of CreatedAt and UpdatedAt; default time.Now.
	Now func() time.Time
}

// Manager adds, lists, rotates and removes run-time clients. Safe for
// concurrent use. Create it with NewManager.
type Manager struct {
	reg        *Registry
	store      Store
	params     clientauth.Argon2Params
	invalidate func(string)
	onRevoke   func(string)
	allowHTTP  bool
	timeout    time.Duration
	log        *slog.Logger
	now        func() time.Time
	// rotating serialises read-modify-write updates in this process, so
	// they do not conflict with each other; across processes each write is
	// conditional on the version it read (readModifyWrite).
	rotating sync.Mutex
}

// NewManager validates opts and returns a Manager.
func NewManager(opts ManagerOptions) (*Manager, error) {
	if opts.Registry == nil || opts.Store == nil {
		return nil, errors.New("clients: ManagerOptions.Registry and Store are required")
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
	if err := opts.Argon2.Validate(); err != nil {
		return nil, fmt.Errorf("clients: argon2 parameters: %w", err)
	}
	return &Manager{
		reg: opts.Registry, store: opts.Store, params: opts.Argon2, invalidate: opts.Invalidate, onRevoke: opts.OnRevokeTokens,
		allowHTTP: opts.AllowHTTPJWKSURI, timeout: opts.Timeout, log: opts.Logger, now: opts.Now,
	}, nil
}

// forget drops id from this process's caches: the registry's answer and the
// verified credentials.
func (m *Manager) forget(id string) {
	m.reg.Invalidate(id)
	m.invalidate(id)
}

// RevokeTokens revokes every live token of a client, configured or
// run-time (the client itself stays registered), and returns how many it
// revoked. On this process the tokens stop being handed out or reported
// active at once; on other replicas within reuse.local_ttl.
func (m *Manager) RevokeTokens(ctx context.Context, id string) (int, error) {
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
// returns: the only time it is available. A private_key_jwt client gets no
// secret ("" is returned). Errors: *SpecError, ErrReadOnly (the id is a
// configured client's), store.ErrExists, store.ErrUnavailable.
func (m *Manager) Create(ctx context.Context, spec Spec) (Info, string, error) {
	if spec.ID == "" {
		spec.ID = strings.ToLower(rand.Text())
	}
	if spec.SecretHash != "" || spec.GrantTypes != nil {
		return Info{}, "", &SpecError{"secret_hash", "a run-time client gets a generated secret and the default grant types"}
	}
	spec.AllowHTTPJWKSURI = m.allowHTTP
	c, err := spec.Client()
	if err != nil {
		return Info{}, "", err
	}
	if m.reg.IsStatic(c.ID) {
		return Info{}, "", fmt.Errorf("client %q: %w", c.ID, ErrReadOnly)
	}
	var secret string
	if UsesSecret(c.AuthMethod) {
		var hash string
		if secret, hash, err = m.newSecret(); err != nil {
			return Info{}, "", err
		}
		c.SecretHash = hash
	}
	c.CreatedAt = m.now().UTC().Truncate(time.Millisecond)
	c.UpdatedAt = c.CreatedAt
	sctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	if err := m.store.CreateClient(sctx, c); err != nil {
		return Info{}, "", err
	}
	// An earlier lookup may have cached "no such client".
	m.forget(c.ID)
	m.log.Info("client created", "client_id", c.ID, "scopes", strings.Join(c.Scopes, " "), "auth_method", methodName(c.AuthMethod))
	return infoOf(c, false), secret, nil
}

// methodName is a stored auth method as logs and listings name it.
func methodName(m string) string {
	if m == "" {
		return MethodSecretBasic
	}
	return m
}

// Patch is a change to a stored client: every non-nil field replaces the
// registration's value; the others are kept. Setting JWKS or JWKSURI
// replaces the key source (the other one is cleared); setting AuthMethod
// to a secret method clears both.
type Patch struct {
	Scopes   *[]string
	TokenTTL *time.Duration // 0 = issuer.token_ttl
	Limit    **store.Limit  // *Limit nil = limits.per_client
	// LimitRate and LimitBurst change one half of the client's own limit
	// and keep the other (applied after Limit). A client without a limit
	// of its own (limits.per_client) has no other half to keep: a
	// *SpecError asks for both.
	LimitRate  *float64
	LimitBurst *int
	Introspect *bool
	AuthMethod *string
	JWKS       *string
	JWKSURI    *string
	Resources  *[]string
}

// apply returns spec with p's changes.
func (p Patch) apply(s Spec) (Spec, error) {
	if p.Scopes != nil {
		s.Scopes = slices.Clone(*p.Scopes)
	}
	if p.TokenTTL != nil {
		s.TokenTTL = *p.TokenTTL
	}
	if p.Limit != nil {
		s.Limit = nil
		if l := *p.Limit; l != nil {
			lim := *l
			s.Limit = &lim
		}
	}
	if p.LimitRate != nil || p.LimitBurst != nil {
		if s.Limit == nil {
			field := "limit.rate"
			if p.LimitRate != nil {
				field = "limit.burst"
			}
			return Spec{}, &SpecError{field, "the client has no limit of its own (limits.per_client applies): set rate and burst together"}
		}
		lim := *s.Limit
		if p.LimitRate != nil {
			lim.Rate = *p.LimitRate
		}
		if p.LimitBurst != nil {
			lim.Burst = *p.LimitBurst
		}
		s.Limit = &lim
	}
	if p.Introspect != nil {
		s.Introspect = *p.Introspect
	}
	if p.AuthMethod != nil {
		s.AuthMethod = *p.AuthMethod
		if UsesSecret(s.AuthMethod) && p.JWKS == nil && p.JWKSURI == nil {
			s.JWKS, s.JWKSURI = "", ""
		}
	}
	if p.JWKS != nil || p.JWKSURI != nil {
		s.JWKS, s.JWKSURI = "", ""
		if p.JWKS != nil {
			s.JWKS = *p.JWKS
		}
		if p.JWKSURI != nil {
			s.JWKSURI = *p.JWKSURI
		}
	}
	if p.Resources != nil {
		s.Resources = slices.Clone(*p.Resources)
	}
	return s, nil
}

// specOf is a stored client as the Spec that would register it again.
func specOf(c store.Client) Spec {
	return Spec{
		ID: c.ID, SecretHash: c.SecretHash, Scopes: slices.Clone(c.Scopes), TokenTTL: c.TokenTTL,
		Limit: c.Limit, Introspect: c.Introspect, AuthMethod: c.AuthMethod, JWKS: c.JWKS, JWKSURI: c.JWKSURI,
		Resources: slices.Clone(c.Resources),
	}
}

// Update changes a stored client as p says, validated as a registration is.
// The change takes effect at once on this process (its cached registration
// and verified credentials are dropped) and within the registry's refresh
// bound on the others; the client's fingerprint changes with its secret,
// keys, scopes, lifetime or resources, so the tokens issued before are no
// longer handed out for reuse, and its reuse rows are cleared.
//
// The write applies only to the version Update read (store.UpdateClient's
// condition): when another replica changed the client in between, Update
// reads it again and applies p to what it finds, up to WriteAttempts
// times, so no concurrent change is overwritten (a PATCH of scopes does
// not bring back a key another replica just revoked).
//
// A client switched from private_key_jwt to a secret method gets a
// generated secret, which Update returns (otherwise ""); one switched to
// private_key_jwt loses its secret. Errors: *SpecError, ErrReadOnly,
// store.ErrNotFound, store.ErrConflict (changed concurrently every time),
// store.ErrUnavailable.
func (m *Manager) Update(ctx context.Context, id string, p Patch) (Info, string, error) {
	if m.reg.IsStatic(id) {
		return Info{}, "", fmt.Errorf("client %q: %w", id, ErrReadOnly)
	}
	m.rotating.Lock()
	defer m.rotating.Unlock()
	sctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	var secret string
	old, c, err := m.readModifyWrite(sctx, ctx, id, func(old store.Client) (store.Client, error) {
		spec, err := p.apply(specOf(old))
		if err != nil {
			return store.Client{}, err
		}
		spec.AllowHTTPJWKSURI = m.allowHTTP
		toSecret := !UsesSecret(old.AuthMethod) && UsesSecret(spec.AuthMethod)
		if !UsesSecret(spec.AuthMethod) {
			spec.SecretHash = ""
		}
		next, err := spec.Client()
		if err != nil {
			return store.Client{}, err
		}
		secret = ""
		if toSecret {
			var hash string
			if secret, hash, err = m.newSecret(); err != nil {
				return store.Client{}, err
			}
			next.SecretHash = hash
		}
		next.CreatedAt = old.CreatedAt
		return next, nil
	})
	if err != nil {
		return Info{}, "", err
	}
	if Fingerprint(old) == Fingerprint(c) {
		// Only the limit or introspection changed: the tokens issued
		// before still fit the registration and stay reusable.
		m.log.Info("client updated", "client_id", id, "scopes", strings.Join(c.Scopes, " "), "auth_method", methodName(c.AuthMethod))
		return infoOf(c, false), secret, nil
	}
	if err := m.store.ClearCurrents(sctx, id); err != nil {
		m.log.Warn("client updated, but its reuse rows could not be cleared (they expire by themselves)", "client_id", id, "err", err)
	}
	m.log.Info("client updated", "client_id", id, "scopes", strings.Join(c.Scopes, " "), "auth_method", methodName(c.AuthMethod))
	return infoOf(c, false), secret, nil
}

// WriteAttempts bounds how often Update and RotateSecret read a client,
// change it and write it back when another writer changed it in between
// every time; after that they give up with store.ErrConflict.
const WriteAttempts = 5

// readModifyWrite reads client id, makes its next version with change and
// writes that version conditionally on the one read, again from a fresh
// read when another writer came first (store.ErrConflict). It stamps each
// version with an UpdatedAt later than the one it replaces. A write that
// failed as unavailable but landed all the same (read back under a fresh
// deadline) counts as written: a generated secret it stored must be handed
// out. The caches of this process are dropped after every write attempt.
// It returns the version read and the version written.
func (m *Manager) readModifyWrite(sctx, ctx context.Context, id string,
	change func(old store.Client) (store.Client, error)) (old, c store.Client, err error) {
	for range WriteAttempts {
		if old, err = m.store.Client(sctx, id); err != nil {
			return store.Client{}, store.Client{}, err
		}
		if c, err = change(old); err != nil {
			return store.Client{}, store.Client{}, err
		}
		c.UpdatedAt = m.stamp(old.UpdatedAt)
		err = m.store.UpdateClient(sctx, c, old.UpdatedAt)
		m.forget(id) // also on error: the update may have landed
		if err == nil || m.landed(ctx, c, err) {
			return old, c, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return store.Client{}, store.Client{}, err
		}
		m.log.Info("client changed by another writer while being updated; reading it again", "client_id", id)
	}
	return store.Client{}, store.Client{}, fmt.Errorf("clients: client %q changed by another writer %d times in a row; try again: %w", id, WriteAttempts, err)
}

// stamp is the UpdatedAt of a write replacing a version updated at prev:
// now, at the millisecond the stores keep, and always after prev, even
// when the clock stalls or lags another replica's, so that every write
// has an update time of its own (the condition of the next write).
func (m *Manager) stamp(prev time.Time) time.Time {
	t := m.now().UTC().Truncate(time.Millisecond)
	if !t.After(prev) {
		t = prev.UTC().Truncate(time.Millisecond).Add(time.Millisecond)
	}
	return t
}

// Get returns one client, configured or stored: store.ErrNotFound when
// neither has it.
func (m *Manager) Get(ctx context.Context, id string) (Info, error) {
	if c, ok := m.reg.static[id]; ok {
		return infoOf(c, true), nil
	}
	sctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	c, err := m.store.Client(sctx, id)
	if err != nil {
		return Info{}, err
	}
	return infoOf(c, false), nil
}

// List returns every client, configured and stored, ordered by id.
func (m *Manager) List(ctx context.Context) ([]Info, error) {
	sctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	stored, err := m.store.Clients(sctx)
	if err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(stored)+len(m.reg.static))
	for _, c := range m.reg.StaticClients() {
		out = append(out, infoOf(c, true))
	}
	for _, c := range stored {
		if !m.reg.IsStatic(c.ID) { // start-up refuses overlaps; be safe anyway
			out = append(out, infoOf(c, false))
		}
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// RotateSecret gives a stored client a new generated secret, which it
// returns. The old secret stops working at once on this process and within
// the registry's refresh bound on the others; the client's reuse rows are
// cleared, so tokens issued before are no longer handed out. Like Update,
// it writes only over the version it read: a client another replica
// switched to private_key_jwt meanwhile is not given a secret back
// (ErrNoSecret). Errors: ErrReadOnly, ErrNoSecret, store.ErrNotFound,
// store.ErrConflict, store.ErrUnavailable.
func (m *Manager) RotateSecret(ctx context.Context, id string) (Info, string, error) {
	if m.reg.IsStatic(id) {
		return Info{}, "", fmt.Errorf("client %q: %w", id, ErrReadOnly)
	}
	m.rotating.Lock()
	defer m.rotating.Unlock()
	sctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	var secret string
	_, c, err := m.readModifyWrite(sctx, ctx, id, func(read store.Client) (store.Client, error) {
		if !UsesSecret(read.AuthMethod) {
			return store.Client{}, fmt.Errorf("client %q: %w", id, ErrNoSecret)
		}
		var (
			hash string
			err  error
		)
		if secret, hash, err = m.newSecret(); err != nil {
			return store.Client{}, err
		}
		read.SecretHash = hash
		return read, nil
	})
	if err != nil {
		return Info{}, "", err
	}
	// The new hash changes the client's fingerprint, so the old reuse slots
	// are never looked up again; clearing them frees them now rather than
	// when their TTL runs out. A failure here does not undo the rotation.
	if err := m.store.ClearCurrents(sctx, id); err != nil {
		m.log.Warn("client secret rotated, but its reuse rows could not be cleared (they expire by themselves)", "client_id", id, "err", err)
	}
	m.log.Info("client secret rotated", "client_id", id)
	return infoOf(c, false), secret, nil
}

// landed reports whether an update c that failed as unavailable (a
// timeout, an unknown outcome) was applied all the same, by reading the
// client back under a fresh deadline: an update that took effect must
// report so, and a rotation hand its secret out, or the client is left
// with a secret nobody knows.
func (m *Manager) landed(ctx context.Context, c store.Client, err error) bool {
	if !errors.Is(err, store.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.timeout)
	defer cancel()
	have, rerr := m.store.Client(rctx, c.ID)
	if rerr != nil || !sameWrite(have, c) {
		return false
	}
	m.log.Warn("client update reported unavailable but was applied; the change stands", "client_id", c.ID, "err", err)
	return true
}

// sameWrite reports whether have is the version c wrote: the same
// registration (fingerprint: secret hash, which is salted, keys, scopes,
// lifetime, resources), limit, introspection and update time.
func sameWrite(have, c store.Client) bool {
	return Fingerprint(have) == Fingerprint(c) && have.AuthMethod == c.AuthMethod && have.UpdatedAt.Equal(c.UpdatedAt) &&
		have.Introspect == c.Introspect && (have.Limit == nil) == (c.Limit == nil) &&
		(have.Limit == nil || *have.Limit == *c.Limit)
}

// Delete removes a stored client and its reuse rows. Errors:
// ErrReadOnly, store.ErrNotFound, store.ErrUnavailable.
func (m *Manager) Delete(ctx context.Context, id string) error {
	if m.reg.IsStatic(id) {
		return fmt.Errorf("client %q: %w", id, ErrReadOnly)
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
func (m *Manager) newSecret() (secret, hash string, err error) {
	b := make([]byte, SecretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("clients: generating a secret: %w", err)
	}
	secret = base64.RawURLEncoding.EncodeToString(b)
	if hash, err = clientauth.HashSecret(secret, m.params); err != nil {
		return "", "", fmt.Errorf("clients: hashing a secret: %w", err)
	}
	return secret, hash, nil
}
