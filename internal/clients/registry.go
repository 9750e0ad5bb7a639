package clients

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/tokengw/tokengw/internal/generation"
	"github.com/tokengw/tokengw/internal/oauth"
	"github.com/tokengw/tokengw/internal/store"
)

// Defaults of RegistryOptions.
const (
	DefaultClientRefresh      = 5 * time.Second
	DefaultClientCacheEntries = 100_000
	DefaultRegistryTimeout    = 2 * time.Second
)

// RegistryOptions configures the cache of store-managed clients.
type RegistryOptions struct {
	// Refresh bounds how long a store-managed client (or the absence of
	// one) is answered from memory before the store is asked again: a
	// client added, rotated or removed by another replica or by the CLI is
	// seen here within Refresh. Changes made through this process's admin
	// API are seen at once (Invalidate). 0 turns the cache off: every
	// lookup asks the store (as auth.client_refresh: 0 does); negative is an
	// error. DefaultClientRefresh is auth.client_refresh's default.
	Refresh time.Duration
	// MaxEntries bounds the cache, separately for known and unknown ids, so
	// a flood of unknown ids cannot grow memory without bound. 0 means
	// DefaultClientCacheEntries.
	MaxEntries int
	// Timeout bounds one store lookup. 0 means DefaultRegistryTimeout (2s).
	Timeout time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Registry answers "who is client X": clients from the configuration
// (read-only) first, then the store's run-time registry, whose answers are
// cached for RegistryOptions.Refresh. It implements clientauth.Lookup. Every
// client it returns carries its Fingerprint and its GrantTypes (the default
// set filled in), so a caller needs no second lookup. Safe for concurrent
// use.
type Registry struct {
	static map[string]store.Client
	store  store.Clients

	refresh time.Duration // 0: no cache
	max     int
	timeout time.Duration
	now     func() time.Time

	// entries maps id -> *regEntry. Reads on the hot path take no lock;
	// writes (misses, invalidations) hold mu.
	entries        sync.Map
	known, unknown atomic.Int64 // entries of each kind, for the bound
	group          singleflight.Group
	mu             sync.Mutex
	// gen guards against Invalidate landing while a lookup is in flight: a
	// lookup that began before one does not cache what it read, which may
	// predate the change. Bumped and checked under mu.
	gen *generation.Guard
}

// regEntry is one cached store answer. Immutable once stored.
type regEntry struct {
	client store.Client
	found  bool
	until  time.Time
}

// NewRegistry builds a registry from the configured clients (validated
// registrations, as Spec.Client returns them) and the store (nil: configured
// clients only).
func NewRegistry(static []store.Client, st store.Clients, opts RegistryOptions) (*Registry, error) {
	if opts.Refresh < 0 || opts.MaxEntries < 0 || opts.Timeout < 0 {
		return nil, errors.New("clients: RegistryOptions.Refresh, MaxEntries and Timeout must not be negative")
	}
	if opts.MaxEntries == 0 {
		opts.MaxEntries = DefaultClientCacheEntries
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultRegistryTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Registry{
		static: make(map[string]store.Client, len(static)), store: st,
		refresh: opts.Refresh, max: opts.MaxEntries, timeout: opts.Timeout, now: opts.Now,
		gen: generation.New(),
	}
	for i, c := range static {
		if _, dup := r.static[c.ID]; dup {
			return nil, fmt.Errorf("clients: clients[%d].id: duplicate %q", i, c.ID)
		}
		r.static[c.ID] = derive(c)
	}
	return r, nil
}

// derive fills in what the registry adds to a registration: normalised
// scopes, the default grant types and the fingerprint.
func derive(c store.Client) store.Client {
	sc := oauth.NewScope(c.Scopes...)
	c.Scopes, c.ScopeSet = sc.Tokens(), sc
	if c.GrantTypes == nil {
		c.GrantTypes = DefaultGrantTypes()
	}
	c.Fingerprint = Fingerprint(c)
	return c
}

// Client returns a client by id: store.ErrNotFound when nobody has it, an
// error wrapping store.ErrUnavailable when the store cannot answer. A
// store-managed client is answered from memory while its cached answer is
// younger than the refresh bound; concurrent misses for one id make one
// store lookup. When the store cannot answer the re-read of a client it
// knew, the last answer is kept for another refresh bound. Callers must not modify the returned client's slices.
func (r *Registry) Client(ctx context.Context, id string) (store.Client, error) {
	if c, ok := r.static[id]; ok {
		return c, nil
	}
	if r.store == nil {
		return store.Client{}, store.ErrNotFound
	}
	if r.refresh == 0 {
		e, err := r.fetch(ctx, id)
		return e.result(err)
	}
	if v, ok := r.entries.Load(id); ok {
		if e := v.(*regEntry); r.now().Before(e.until) {
			return e.result(nil)
		}
	}
	v, err, _ := r.group.Do(id, func() (any, error) {
		stamp := r.gen.Stamp(id)
		// Detached from the first caller's cancellation: the answer is
		// shared with the callers that joined it; bounded by r.timeout.
		e, err := r.fetch(context.WithoutCancel(ctx), id)
		if err != nil {
			// The store cannot answer the re-read of a known client (a
			// Cassandra cluster without a quorum): keep answering with
			// what it said last, for another refresh bound, rather than
			// failing every request of every known client while it is down.
			if v, ok := r.entries.Load(id); ok && v.(*regEntry).found {
				stale := *v.(*regEntry)
				stale.until = r.now().Add(r.refresh)
				r.put(id, &stale, stamp)
				return &stale, nil
			}
			return nil, err
		}
		r.put(id, e, stamp)
		return e, nil
	})
	if err != nil {
		return store.Client{}, err
	}
	return v.(*regEntry).result(nil)
}

func (e *regEntry) result(err error) (store.Client, error) {
	switch {
	case err != nil:
		return store.Client{}, err
	case !e.found:
		return store.Client{}, store.ErrNotFound
	}
	return e.client, nil
}

// fetch asks the store, classifying errors: ErrNotFound is an answer (found
// false), anything else is unavailability.
func (r *Registry) fetch(ctx context.Context, id string) (*regEntry, error) {
	sctx, cancel := context.WithTimeout(ctx, r.timeout)
	c, err := r.store.Client(sctx, id)
	cancel()
	switch {
	case err == nil:
		return &regEntry{client: derive(c), found: true, until: r.now().Add(r.refresh)}, nil
	case errors.Is(err, store.ErrNotFound):
		return &regEntry{until: r.now().Add(r.refresh)}, nil
	case errors.Is(err, store.ErrUnavailable):
		return nil, err
	default:
		return nil, fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
}

func (r *Registry) counter(found bool) *atomic.Int64 {
	if found {
		return &r.known
	}
	return &r.unknown
}

// put caches e unless an invalidation happened since stamp, evicting
// arbitrary entries of its kind beyond the bound.
func (r *Registry) put(id string, e *regEntry, stamp generation.Stamp) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.gen.Valid(stamp) {
		return
	}
	if old, loaded := r.entries.Swap(id, e); loaded {
		r.counter(old.(*regEntry).found).Add(-1)
	}
	c := r.counter(e.found)
	if c.Add(1) <= int64(r.max) {
		return
	}
	// sync.Map ranges over a Go map, whose iteration starts at a random
	// place: the victims are arbitrary, which is all a bound against floods
	// needs.
	r.entries.Range(func(k, v any) bool {
		if ve := v.(*regEntry); ve.found == e.found && k != id {
			r.entries.Delete(k)
			c.Add(-1)
		}
		return c.Load() > int64(r.max)
	})
}

// Invalidate forgets what the cache knows about id, so the next lookup asks
// the store. The admin API calls it after every change it makes; lookups
// already in flight do not cache their (possibly older) answer.
func (r *Registry) Invalidate(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gen.Bump(id)
	r.group.Forget(id)
	if v, loaded := r.entries.LoadAndDelete(id); loaded {
		r.counter(v.(*regEntry).found).Add(-1)
	}
}

// CachedEntries reports how many known and unknown store ids the cache
// holds.
func (r *Registry) CachedEntries() (known, unknown int) {
	return int(r.known.Load()), int(r.unknown.Load())
}

// IsStatic reports whether id is defined in the configuration (read-only).
func (r *Registry) IsStatic(id string) bool {
	_, ok := r.static[id]
	return ok
}

// StaticClients returns the configured clients, ordered by id.
func (r *Registry) StaticClients() []store.Client {
	out := make([]store.Client, 0, len(r.static))
	for _, c := range r.static {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b store.Client) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// CheckOverlap fails when an id is defined both in the configuration and in
// the store: which one wins would be a surprise. It names every such id.
func (r *Registry) CheckOverlap(ctx context.Context) error {
	if r.store == nil || len(r.static) == 0 {
		return nil
	}
	list, err := r.store.Clients(ctx)
	if err != nil {
		return fmt.Errorf("clients: listing stored clients: %w", err)
	}
	var both []string
	for _, c := range list {
		if _, ok := r.static[c.ID]; ok {
			both = append(both, fmt.Sprintf("%q", c.ID))
		}
	}
	switch len(both) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("clients: client %s is defined both in the configuration (clients:) and in the store; remove it from one (tokengw client remove, or the config file)", both[0])
	default:
		return fmt.Errorf("clients: clients %s are defined both in the configuration (clients:) and in the store; remove each from one (tokengw client remove, or the config file)", strings.Join(both, ", "))
	}
}
