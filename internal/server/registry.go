package server

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/tokengw/tokengw/internal/config"
	"github.com/tokengw/tokengw/internal/oauth"
	"github.com/tokengw/tokengw/internal/store"
)

// GrantClientCredentials is the grant_type of RFC 6749 §4.4.
const GrantClientCredentials = "client_credentials"

// Registry answers "who is client X": clients from the configuration
// (read-only) first, then the store's run-time registry. It implements
// clientauth.Lookup. Safe for concurrent use.
type Registry struct {
	static map[string]staticClient
	store  store.Clients
}

type staticClient struct {
	client      store.Client
	grants      []string
	fingerprint string
}

// NewRegistry builds a registry from the configured clients and the store.
// Scopes are normalised here, once.
func NewRegistry(clients []config.Client, st store.Clients) (*Registry, error) {
	r := &Registry{static: make(map[string]staticClient, len(clients)), store: st}
	for i, c := range clients {
		if _, dup := r.static[c.ID]; dup {
			return nil, fmt.Errorf("server: clients[%d].id: duplicate %q", i, c.ID)
		}
		sc := staticClient{
			client: store.Client{
				ID: c.ID, SecretHash: c.SecretHash, Scopes: oauth.NewScope(c.Scopes...).Tokens(),
				TokenTTL: c.TokenTTL, Introspect: c.Introspect,
			},
			grants: c.GrantTypes,
		}
		if sc.grants == nil {
			sc.grants = []string{GrantClientCredentials}
		}
		if c.Limit != nil {
			sc.client.Limit = &store.Limit{Rate: c.Limit.Rate, Burst: c.Limit.Burst}
		}
		sc.fingerprint = Fingerprint(sc.client)
		r.static[c.ID] = sc
	}
	return r, nil
}

// Client returns a client by id: store.ErrNotFound when nobody has it, an
// error wrapping store.ErrUnavailable when the store cannot answer.
func (r *Registry) Client(ctx context.Context, id string) (store.Client, error) {
	if sc, ok := r.static[id]; ok {
		return sc.client, nil
	}
	if r.store == nil {
		return store.Client{}, store.ErrNotFound
	}
	c, err := r.store.Client(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrUnavailable) {
		err = fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return c, err
}

// FingerprintOf is Fingerprint(c), precomputed for configured clients.
func (r *Registry) FingerprintOf(c store.Client) string {
	if sc, ok := r.static[c.ID]; ok && sc.client.SecretHash == c.SecretHash {
		return sc.fingerprint
	}
	return Fingerprint(c)
}

// GrantAllowed reports whether the client may use the grant type. Clients
// from the store may use every grant tokengw supports.
func (r *Registry) GrantAllowed(id, grant string) bool {
	if sc, ok := r.static[id]; ok {
		return slices.Contains(sc.grants, grant)
	}
	return grant == GrantClientCredentials
}

// CheckOverlap fails when an id is defined both in the configuration and in
// the store: which one wins would be a surprise.
func (r *Registry) CheckOverlap(ctx context.Context) error {
	if r.store == nil || len(r.static) == 0 {
		return nil
	}
	list, err := r.store.Clients(ctx)
	if err != nil {
		return fmt.Errorf("server: listing stored clients: %w", err)
	}
	for _, c := range list {
		if _, ok := r.static[c.ID]; ok {
			return fmt.Errorf("server: client %q is defined both in the configuration and in the store", c.ID)
		}
	}
	return nil
}

// Fingerprint identifies a client's registration: its secret hash, scopes
// and token lifetime. Reuse keys include it, so rotating the secret or
// changing scopes or lifetime stops reuse of the tokens issued before.
func Fingerprint(c store.Client) string {
	h := sha256.New()
	var n [8]byte
	write := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	write(c.ID)
	write(c.SecretHash)
	for _, s := range c.Scopes {
		write(s)
	}
	binary.BigEndian.PutUint64(n[:], uint64(c.TokenTTL))
	h.Write(n[:])
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:8])
}
