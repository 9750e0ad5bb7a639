package assertion

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// ErrKeysUnavailable: a jwks_uri could not be fetched and no key set
// fetched before may still be used. Callers answer 503.
var ErrKeysUnavailable = errors.New("assertion: key set unavailable")

// Defaults of RemoteOptions.
const (
	DefaultFetchTimeout = 5 * time.Second
	DefaultMinRefresh   = time.Minute
	DefaultMaxAge       = time.Hour
	DefaultMaxStale     = 24 * time.Hour
)

// RemoteOptions configures the fetching of jwks_uri documents.
type RemoteOptions struct {
	// Client makes the requests; default a client with Timeout and no
	// redirects followed.
	Client *http.Client
	// Timeout bounds one fetch. 0 means DefaultFetchTimeout (5s).
	Timeout time.Duration
	// MinRefresh is the shortest time between two fetches of one URI:
	// the floor of Cache-Control max-age, and how often an unknown kid
	// may make it fetch again (assertions.jwks_min_refresh). 0 means
	// DefaultMinRefresh (1m).
	MinRefresh time.Duration
	// MaxAge is the longest a fetched set is used before it is fetched
	// again (the ceiling of Cache-Control max-age, and the age of a
	// response without one). 0 means DefaultMaxAge (1h).
	MaxAge time.Duration
	// MaxStale is how long the last good set is kept, counted from its
	// fetch, while fetches fail. 0 means DefaultMaxStale (24h).
	MaxStale time.Duration
	// AllowHTTP allows http URIs (assertions.allow_http_jwks_uri).
	AllowHTTP bool
	// Now is the clock; default time.Now.
	Now func() time.Time
}

func (o *RemoteOptions) defaults() error {
	if o.Timeout < 0 || o.MinRefresh < 0 || o.MaxAge < 0 || o.MaxStale < 0 {
		return errors.New("assertion: RemoteOptions durations must not be negative")
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultFetchTimeout
	}
	if o.MinRefresh == 0 {
		o.MinRefresh = DefaultMinRefresh
	}
	if o.MaxAge == 0 {
		o.MaxAge = DefaultMaxAge
	}
	o.MaxAge = max(o.MaxAge, o.MinRefresh)
	if o.MaxStale == 0 {
		o.MaxStale = DefaultMaxStale
	}
	if o.Client == nil {
		o.Client = &http.Client{
			Timeout: o.Timeout,
			// A key set is fetched from the registered URI only.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// Source gives the current key set of a client or issuer. Implementations
// are safe for concurrent use.
type Source interface {
	// Keys returns the key set to verify with now.
	Keys(ctx context.Context) (*KeySet, error)
	// Refresh is called when a JWT names a kid the set lacks: it may fetch
	// again (at most once per MinRefresh) and returns the set then current.
	Refresh(ctx context.Context) (*KeySet, error)
	// Cached returns the set held now without fetching, or nil.
	Cached() *KeySet
}

// Static is a Source of an inline key set.
type Static struct{ Set *KeySet }

// Keys implements Source.
func (s Static) Keys(context.Context) (*KeySet, error) { return s.Set, nil }

// Refresh implements Source: an inline set never changes.
func (s Static) Refresh(context.Context) (*KeySet, error) { return s.Set, nil }

// Cached implements Source.
func (s Static) Cached() *KeySet { return s.Set }

// Remote is a Source that fetches a jwks_uri. Create it with NewRemote.
type Remote struct {
	uri   string
	opts  RemoteOptions
	group singleflight.Group

	mu        sync.Mutex
	set       *KeySet
	fetchedAt time.Time // of set
	freshTill time.Time // set is used without fetching until then
	attempt   time.Time // last fetch attempt, successful or not
	lastErr   error
	fetches   uint64
}

var (
	_ Source = Static{}
	_ Source = (*Remote)(nil)
)

// NewRemote validates uri and opts; nothing is fetched until first use.
func NewRemote(uri string, opts RemoteOptions) (*Remote, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	if err := ValidateJWKSURI(uri, opts.AllowHTTP); err != nil {
		return nil, err
	}
	return &Remote{uri: uri, opts: opts}, nil
}

// Fetches is how many fetches were attempted.
func (r *Remote) Fetches() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fetches
}

// Cached implements Source: the last good set while it may be used.
func (r *Remote) Cached() *KeySet {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.set != nil && r.opts.Now().Sub(r.fetchedAt) < r.opts.MaxStale {
		return r.set
	}
	return nil
}

// Keys implements Source: the held set while fresh; else a fetch, unless
// one was attempted less than MinRefresh ago; through fetch errors the last
// good set for up to MaxStale after it was fetched.
func (r *Remote) Keys(ctx context.Context) (*KeySet, error) {
	return r.get(ctx, false)
}

// Refresh implements Source: a fetch unless one was attempted less than
// MinRefresh ago.
func (r *Remote) Refresh(ctx context.Context) (*KeySet, error) {
	return r.get(ctx, true)
}

func (r *Remote) get(ctx context.Context, force bool) (*KeySet, error) {
	r.mu.Lock()
	now := r.opts.Now()
	fresh := r.set != nil && now.Before(r.freshTill)
	recent := !r.attempt.IsZero() && now.Sub(r.attempt) < r.opts.MinRefresh
	if (fresh && !force) || recent {
		defer r.mu.Unlock()
		return r.usable(now)
	}
	r.mu.Unlock()
	// Concurrent callers share one fetch, detached from the first caller's
	// cancellation and bounded by the fetch timeout.
	_, _, _ = r.group.Do("", func() (any, error) {
		r.fetch(context.WithoutCancel(ctx))
		return nil, nil
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.usable(r.opts.Now())
}

// usable returns the held set unless it is older than MaxStale. r.mu held.
func (r *Remote) usable(now time.Time) (*KeySet, error) {
	if r.set != nil && now.Sub(r.fetchedAt) < r.opts.MaxStale {
		return r.set, nil
	}
	if r.lastErr != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, r.lastErr)
	}
	return nil, ErrKeysUnavailable
}

// fetch GETs the URI once and records the outcome.
func (r *Remote) fetch(ctx context.Context) {
	r.mu.Lock()
	r.attempt = r.opts.Now()
	r.fetches++
	r.mu.Unlock()
	set, maxAge, err := r.get1(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.lastErr = err
		return
	}
	now := r.opts.Now()
	r.set, r.fetchedAt, r.freshTill, r.lastErr = set, now, now.Add(maxAge), nil
}

func (r *Remote) get1(ctx context.Context) (*KeySet, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.uri, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("assertion: jwks_uri: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := r.opts.Client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("assertion: jwks_uri: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, 0, fmt.Errorf("assertion: jwks_uri: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxJWKSBytes+1))
	if err != nil {
		return nil, 0, fmt.Errorf("assertion: jwks_uri: read: %w", err)
	}
	if len(body) > MaxJWKSBytes {
		return nil, 0, fmt.Errorf("assertion: jwks_uri: response larger than %d bytes", MaxJWKSBytes)
	}
	set, err := ParseJWKS(body, false)
	if err != nil {
		return nil, 0, fmt.Errorf("assertion: jwks_uri: %w", err)
	}
	return set, r.maxAge(resp.Header.Values("Cache-Control")), nil
}

// maxAge is how long a response may be used: its Cache-Control max-age
// (RFC 9111 §5.2.2.1) held within [MinRefresh, MaxAge]; no-cache or
// no-store: MinRefresh (fetch again as soon as allowed); no max-age: MaxAge.
func (r *Remote) maxAge(cc []string) time.Duration {
	d, seen := r.opts.MaxAge, false
	for _, h := range cc {
		for _, dir := range strings.Split(h, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(dir), "=")
			switch strings.ToLower(name) {
			case "no-cache", "no-store":
				return r.opts.MinRefresh
			case "max-age":
				if n, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64); err == nil && n >= 0 && !seen {
					seen = true
					if n > int64(r.opts.MaxAge/time.Second) {
						d = r.opts.MaxAge
					} else {
						d = time.Duration(n) * time.Second
					}
				}
			}
		}
	}
	return min(max(d, r.opts.MinRefresh), r.opts.MaxAge)
}
