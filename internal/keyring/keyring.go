// Package keyring is the signing key ring of JWT access tokens (RFC 9068):
// ES256, EdDSA or RS256 keys kept in the store, each private key sealed
// with store.seal_keys, so every replica on the store signs with the same
// active key and publishes the same key set (RFC 7517 JWKS).
//
// The schedule is derived from the keys themselves. A key is published from
// the moment it is stored and starts signing at its ActivateAt, which a
// rotation sets to Lead (issuer.jwks_max_age plus two refresh intervals)
// later: by then every replica has re-read the ring and every cache that
// honoured the JWKS response's max-age holds the new key. A key retires
// when the next key activates and stays published until every token it can
// have signed has expired (RetireAt + MaxTokenTTL) plus jwks_max_age; then
// the ring deletes it.
//
// Each replica re-reads the ring every Refresh (Tick, run by Run). A
// scheduled rotation (RotationPeriod > 0) is due once the newest key has
// been active for RotationPeriod minus Lead; the new key is added for the
// rotation slot "successor/<kid of the newest key>" with the store's
// exclusive add (a lightweight transaction on Cassandra, one transaction on
// bolt), so of any number of replicas that find it due at once, exactly one
// rotates.
package keyring

import (
	"cmp"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokengw/tokengw/internal/store"
)

// Sealer protects private keys at rest; seal.Sealer is the implementation.
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(sealed, aad []byte) ([]byte, error)
}

// ErrNoKey: the ring holds no key this process can sign with (empty ring,
// or keys sealed with a seal key it lacks).
var ErrNoKey = errors.New("keyring: no usable signing key")

// Defaults.
const (
	DefaultJWKSMaxAge   = 300 * time.Second
	DefaultRefresh      = 10 * time.Second
	DefaultStoreTimeout = 5 * time.Second
)

// Options configures a Ring.
type Options struct {
	Store  store.Keys
	Sealer Sealer
	// Alg of the keys this ring generates: ES256 (default), EdDSA or RS256.
	// Keys of other algorithms already in the ring keep signing until they
	// retire.
	Alg string
	// JWKSMaxAge is the max-age of the published key set. Default 300s.
	JWKSMaxAge time.Duration
	// Refresh is how often Run re-reads the ring. Default 10s.
	Refresh time.Duration
	// RotationPeriod is how long a key signs before a scheduled rotation
	// replaces it; 0 rotates only by hand (Rotate). When set it must exceed
	// Lead.
	RotationPeriod time.Duration
	// MaxTokenTTL is the longest lifetime of a token signed with the ring
	// (required): a retired key stays published that long plus JWKSMaxAge.
	MaxTokenTTL time.Duration
	// StoreTimeout bounds each store operation of Tick and Rotate. Default 5s.
	StoreTimeout time.Duration
	Now          func() time.Time
	Logger       *slog.Logger
}

// Key is one key of a loaded ring.
type Key struct {
	Slot, ID, Alg         string
	CreatedAt, ActivateAt time.Time
	// RetireAt is the next key's ActivateAt (zero for the newest key);
	// RemoveAt is when the ring deletes the key (zero while it signs).
	RetireAt, RemoveAt time.Time
	// Usable: this process could open the private key.
	Usable bool

	signer jose.Signer
	public jose.JSONWebKey
}

// State is "pending" (published, not yet signing), "active" or "retired".
func (k *Key) State(now time.Time) string {
	switch {
	case now.Before(k.ActivateAt):
		return "pending"
	case !k.RetireAt.IsZero() && !now.Before(k.RetireAt):
		return "retired"
	}
	return "active"
}

// Sign signs payload as a compact JWS with header alg, kid and typ at+jwt.
func (k *Key) Sign(payload []byte) (string, error) {
	if k.signer == nil {
		return "", fmt.Errorf("%w: %s", ErrNoKey, k.ID)
	}
	obj, err := k.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("keyring: sign: %w", err)
	}
	return obj.CompactSerialize()
}

// snapshot is one loaded ring: keys by ActivateAt ascending, and the JWKS.
type snapshot struct {
	keys []*Key
	jwks []byte
}

// Ring is the key ring. It is safe for concurrent use.
type Ring struct {
	opts Options
	lead time.Duration
	cur  atomic.Pointer[snapshot]
	// mu serialises Tick and Rotate of this process (not of replicas: the
	// store's exclusive add does that).
	mu sync.Mutex
}

// New validates opts, reads the ring and, when it is empty, adds the first
// key (activating at once: nothing was signed before it). Exactly one of
// replicas starting together on an empty store adds it.
func New(ctx context.Context, opts Options) (*Ring, error) {
	if opts.Store == nil || opts.Sealer == nil {
		return nil, errors.New("keyring: Store and Sealer are required")
	}
	if opts.Alg == "" {
		opts.Alg = ES256
	}
	if !slices.Contains(Algorithms(), opts.Alg) {
		return nil, fmt.Errorf("%w: %q", ErrAlgorithm, opts.Alg)
	}
	if opts.JWKSMaxAge <= 0 {
		opts.JWKSMaxAge = DefaultJWKSMaxAge
	}
	if opts.Refresh <= 0 {
		opts.Refresh = DefaultRefresh
	}
	if opts.StoreTimeout <= 0 {
		opts.StoreTimeout = DefaultStoreTimeout
	}
	if opts.MaxTokenTTL <= 0 {
		return nil, errors.New("keyring: MaxTokenTTL is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Ring{opts: opts, lead: opts.JWKSMaxAge + 2*opts.Refresh}
	if opts.RotationPeriod < 0 || (opts.RotationPeriod > 0 && opts.RotationPeriod <= r.lead) {
		return nil, fmt.Errorf("keyring: RotationPeriod %v must be 0 or longer than jwks_max_age + 2 refreshes (%v)", opts.RotationPeriod, r.lead)
	}
	if err := r.Tick(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// Lead is how long a new key is published before it signs.
func (r *Ring) Lead() time.Duration { return r.lead }

// JWKSMaxAge is the max-age the key set may be cached for.
func (r *Ring) JWKSMaxAge() time.Duration { return r.opts.JWKSMaxAge }

// Signing returns the key to sign with at now: the key with the latest
// ActivateAt not after now. When no key is active yet (this replica's clock
// is behind the one that added the first key) the earliest key signs: it is
// published already.
func (r *Ring) Signing(now time.Time) (*Key, error) {
	s := r.cur.Load()
	if s == nil || len(s.keys) == 0 {
		return nil, ErrNoKey
	}
	var k *Key
	for _, c := range s.keys {
		if c.ActivateAt.After(now) {
			break
		}
		k = c
	}
	if k == nil {
		k = s.keys[0]
	}
	if !k.Usable {
		return nil, fmt.Errorf("%w: key %s is sealed with a seal key this process lacks", ErrNoKey, k.ID)
	}
	return k, nil
}

// JWKS is the published key set (RFC 7517 §5), rendered at the last load.
func (r *Ring) JWKS() []byte {
	if s := r.cur.Load(); s != nil {
		return s.jwks
	}
	return []byte(`{"keys":[]}`)
}

// Keys returns the loaded ring, oldest first.
func (r *Ring) Keys() []*Key {
	if s := r.cur.Load(); s != nil {
		return slices.Clone(s.keys)
	}
	return nil
}

// Run calls Tick every Refresh until ctx is done. Failures are logged; the
// ring last loaded keeps serving.
func (r *Ring) Run(ctx context.Context) {
	t := time.NewTicker(r.opts.Refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.Tick(ctx); err != nil {
				r.opts.Logger.Warn("keyring: refresh failed; signing with the ring loaded before", "err", err.Error())
			}
		}
	}
}

// Tick re-reads the ring from the store, adds the first key to an empty
// ring, performs a scheduled rotation when one is due, deletes keys whose
// publication has ended, and makes the result the ring this process signs
// with and publishes.
func (r *Ring) Tick(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.opts.Now()
	rows, err := r.read(ctx)
	if err != nil {
		return err
	}
	changed := false
	if len(rows) == 0 {
		if _, err := r.add(ctx, "initial", now, now); err != nil {
			return err
		}
		changed = true
	} else if slot, at, due := r.due(rows, now); due {
		if _, err := r.add(ctx, slot, now, at); err != nil {
			return err
		}
		changed = true
	}
	if changed {
		if rows, err = r.read(ctx); err != nil {
			return err
		}
	}
	keys := r.build(rows)
	for _, k := range keys {
		if !k.RemoveAt.IsZero() && !now.Before(k.RemoveAt) {
			sctx, cancel := context.WithTimeout(ctx, r.opts.StoreTimeout)
			err := r.opts.Store.DeleteSigningKey(sctx, k.Slot)
			cancel()
			if err != nil {
				return fmt.Errorf("keyring: delete key %s: %w", k.ID, err)
			}
		}
	}
	keys = slices.DeleteFunc(keys, func(k *Key) bool { return !k.RemoveAt.IsZero() && !now.Before(k.RemoveAt) })
	return r.publish(keys)
}

// Rotate adds a new key now, by hand: it is published at once and starts
// signing Lead later. It returns the new key.
func (r *Ring) Rotate(ctx context.Context) (*Key, error) {
	r.mu.Lock()
	now := r.opts.Now()
	row, err := r.add(ctx, "", now, now.Add(r.lead))
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := r.Tick(ctx); err != nil {
		return nil, err
	}
	for _, k := range r.Keys() {
		if k.ID == row.ID {
			return k, nil
		}
	}
	return nil, fmt.Errorf("keyring: rotated key %s not found after reload", row.ID)
}

// due says whether a scheduled rotation is due: the newest key has been
// active for RotationPeriod - Lead. The new key activates RotationPeriod
// after the newest one did (or Lead from now, if that is later).
func (r *Ring) due(rows []store.SigningKey, now time.Time) (slot string, activate time.Time, ok bool) {
	if r.opts.RotationPeriod <= 0 {
		return "", time.Time{}, false
	}
	newest := slices.MaxFunc(rows, func(a, b store.SigningKey) int { return cmpKey(a, b) })
	next := newest.ActivateAt.Add(r.opts.RotationPeriod)
	if now.Before(next.Add(-r.lead)) {
		return "", time.Time{}, false
	}
	if min := now.Add(r.lead); next.Before(min) {
		next = min
	}
	return "successor/" + newest.ID, next, true
}

// add generates a key, seals it and adds it for slot ("" = "manual/<kid>").
// Losing the slot to another replica is not an error.
func (r *Ring) add(ctx context.Context, slot string, now, activate time.Time) (store.SigningKey, error) {
	priv, err := generate(r.opts.Alg)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("keyring: generate: %w", err)
	}
	kid, err := keyID(priv.Public())
	if err != nil {
		return store.SigningKey{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("keyring: encode: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("keyring: encode: %w", err)
	}
	sealed, err := r.opts.Sealer.Seal(der, aad(kid))
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("keyring: seal: %w", err)
	}
	if slot == "" {
		slot = "manual/" + kid
	}
	row := store.SigningKey{
		Slot: slot, ID: kid, Alg: r.opts.Alg, Sealed: sealed, Public: pub,
		CreatedAt: now.Truncate(time.Millisecond), ActivateAt: activate.Truncate(time.Millisecond),
	}
	sctx, cancel := context.WithTimeout(ctx, r.opts.StoreTimeout)
	defer cancel()
	added, err := r.opts.Store.AddSigningKey(sctx, row)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("keyring: add key: %w", err)
	}
	if added {
		r.opts.Logger.Info("keyring: key added", "kid", kid, "alg", r.opts.Alg, "slot", slot, "activate_at", row.ActivateAt)
	}
	return row, nil
}

func (r *Ring) read(ctx context.Context) ([]store.SigningKey, error) {
	sctx, cancel := context.WithTimeout(ctx, r.opts.StoreTimeout)
	defer cancel()
	rows, err := r.opts.Store.SigningKeys(sctx)
	if err != nil {
		return nil, fmt.Errorf("keyring: read: %w", err)
	}
	return rows, nil
}

// build turns rows into keys with their schedule, reusing the parsed keys of
// the ring loaded before (a private key is opened once per process).
func (r *Ring) build(rows []store.SigningKey) []*Key {
	prev := map[string]*Key{}
	if s := r.cur.Load(); s != nil {
		for _, k := range s.keys {
			prev[k.Slot] = k
		}
	}
	slices.SortFunc(rows, cmpKey)
	keys := make([]*Key, 0, len(rows))
	for _, row := range rows {
		k := &Key{Slot: row.Slot, ID: row.ID, Alg: row.Alg, CreatedAt: row.CreatedAt, ActivateAt: row.ActivateAt}
		if p, ok := prev[row.Slot]; ok && p.ID == row.ID && p.public.Key != nil {
			k.signer, k.public, k.Usable = p.signer, p.public, p.Usable
		} else if err := r.open(k, row); err != nil {
			r.opts.Logger.Warn("keyring: key not usable", "kid", row.ID, "err", err.Error())
			if k.public.Key == nil {
				continue // not even publishable
			}
		}
		keys = append(keys, k)
	}
	for i, k := range keys {
		if i+1 < len(keys) {
			k.RetireAt = keys[i+1].ActivateAt
			k.RemoveAt = k.RetireAt.Add(r.opts.MaxTokenTTL + r.opts.JWKSMaxAge)
		}
	}
	return keys
}

// open parses a row's public key and opens its private key.
func (r *Ring) open(k *Key, row store.SigningKey) error {
	pub, err := parsePublic(row.Alg, row.Public)
	if err != nil {
		return err
	}
	if id, err := keyID(pub); err != nil || id != row.ID {
		return fmt.Errorf("keyring: key %s: kid does not match its public key", row.ID)
	}
	k.public = publicJWK(pub, row.ID, row.Alg)
	der, err := r.opts.Sealer.Open(row.Sealed, aad(row.ID))
	if err != nil {
		return fmt.Errorf("keyring: open: %w", err)
	}
	priv, err := parsePrivate(row.Alg, der)
	if err != nil {
		return err
	}
	if id, err := keyID(priv.Public()); err != nil || id != row.ID {
		return fmt.Errorf("keyring: key %s: private key does not match its kid", row.ID)
	}
	if k.signer, err = newSigner(row.Alg, row.ID, priv); err != nil {
		return err
	}
	k.Usable = true
	return nil
}

// publish renders the JWKS of keys (newest first) and swaps the snapshot.
func (r *Ring) publish(keys []*Key) error {
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(keys))}
	for i := len(keys) - 1; i >= 0; i-- {
		set.Keys = append(set.Keys, keys[i].public)
	}
	b, err := json.Marshal(set)
	if err != nil {
		return fmt.Errorf("keyring: jwks: %w", err)
	}
	r.cur.Store(&snapshot{keys: keys, jwks: append(b, '\n')})
	return nil
}

// aad binds a sealed private key to its kid.
func aad(kid string) []byte { return []byte("tokengw signing key " + kid) }

func cmpKey(a, b store.SigningKey) int {
	if c := a.ActivateAt.Compare(b.ActivateAt); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}
