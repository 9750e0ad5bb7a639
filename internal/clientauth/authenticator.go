package clientauth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/tokengw/tokengw/internal/oauth"
	"github.com/tokengw/tokengw/internal/store"
)

// Lookup finds a registered client by id.
//
// Client is called on every Authenticate, cache hit or not (the stored hash
// it returns is part of the cache entry), from many goroutines at once:
// implementations must be safe for concurrent use and should answer from
// memory. It returns an error wrapping store.ErrNotFound for unknown ids;
// any other error is treated as "the registry cannot answer now" (503).
type Lookup interface {
	Client(ctx context.Context, id string) (store.Client, error)
}

var _ Lookup = store.Clients(nil)

// Options configures an Authenticator.
type Options struct {
	// Lookup finds clients. Required.
	Lookup Lookup
	// CacheEntries bounds the verified-credential cache, in entries (one
	// per client id, about 150 bytes each). 0 turns the cache off: every
	// request runs the full hash verification (as auth.cache_entries: 0
	// does). DefaultCacheEntries is auth.cache_entries' default.
	CacheEntries int
	// CacheMaxAge, when positive, makes a cached verification expire that
	// long after it was made, so the full hash runs again. 0: entries live
	// until evicted, invalidated, or the stored hash changes.
	CacheMaxAge time.Duration
	// MaxConcurrentVerify caps how many hash verifications run at once (each
	// argon2id verification holds its memory, 19 MiB by default, and a CPU).
	// 0 means runtime.NumCPU().
	MaxConcurrentVerify int
	// VerifyQueueTimeout is how long a request waits for a verification
	// slot before it is shed with 503 temporarily_unavailable. 0 means 1s.
	VerifyQueueTimeout time.Duration
	// DummyHash is verified for unknown client ids, so that they take as
	// long as known ones and timing does not reveal which ids exist. Set it
	// to a hash with the parameters of the real ones. Default: an argon2id
	// hash with DefaultArgon2Params, made by New.
	DummyHash string
	// Now is the clock for CacheMaxAge; default time.Now.
	Now func() time.Time
}

// Authenticator verifies client credentials against the client registry.
// It is safe for concurrent use. Create it with New.
type Authenticator struct {
	lookup       Lookup
	cache        *verifiedCache // nil: disabled
	sem          chan struct{}  // verification slots
	queueTimeout time.Duration
	dummy        string
	verify       func(phc, secret string) (bool, error) // VerifySecret; tests wrap it
	flight       singleflight.Group                     // concurrent verifications of one credential

	hits, verifications, failures, shed atomic.Uint64
}

// New validates opts and returns an Authenticator. Unless opts.DummyHash is
// set it computes one argon2id hash, which takes a few tens of milliseconds.
func New(opts Options) (*Authenticator, error) {
	switch {
	case opts.Lookup == nil:
		return nil, errors.New("clientauth: Options.Lookup is required")
	case opts.CacheEntries < 0:
		return nil, fmt.Errorf("clientauth: Options.CacheEntries %d is negative", opts.CacheEntries)
	case opts.CacheMaxAge < 0:
		return nil, fmt.Errorf("clientauth: Options.CacheMaxAge %v is negative", opts.CacheMaxAge)
	case opts.MaxConcurrentVerify < 0:
		return nil, fmt.Errorf("clientauth: Options.MaxConcurrentVerify %d is negative", opts.MaxConcurrentVerify)
	case opts.VerifyQueueTimeout < 0:
		return nil, fmt.Errorf("clientauth: Options.VerifyQueueTimeout %v is negative", opts.VerifyQueueTimeout)
	}
	if opts.MaxConcurrentVerify == 0 {
		opts.MaxConcurrentVerify = runtime.NumCPU()
	}
	if opts.VerifyQueueTimeout == 0 {
		opts.VerifyQueueTimeout = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.DummyHash == "" {
		h, err := HashSecret(rand.Text(), DefaultArgon2Params)
		if err != nil {
			return nil, fmt.Errorf("clientauth: dummy hash: %w", err)
		}
		opts.DummyHash = h
	} else if err := ValidHash(opts.DummyHash); err != nil {
		return nil, fmt.Errorf("clientauth: Options.DummyHash: %w", err)
	}
	a := &Authenticator{
		lookup:       opts.Lookup,
		sem:          make(chan struct{}, opts.MaxConcurrentVerify),
		queueTimeout: opts.VerifyQueueTimeout,
		dummy:        opts.DummyHash,
		verify:       VerifySecret,
	}
	if opts.CacheEntries > 0 {
		c, err := newVerifiedCache(opts.CacheEntries, opts.CacheMaxAge, opts.Now)
		if err != nil {
			return nil, err
		}
		a.cache = c
	}
	return a, nil
}

// Authenticate returns the client c names if c.Secret is its secret. A
// client whose token_endpoint_auth_method is not a secret method
// (private_key_jwt) is never authenticated here, whatever hash it holds:
// it is answered as an unknown id is, after the same dummy verification.
//
// Errors are *oauth.Error: ErrInvalidClient ("Client authentication
// failed (e.g., unknown client, no client authentication included, or
// unsupported authentication method)", RFC 6749 §5.2) with one description
// for unknown ids and wrong secrets alike, and the Basic challenge when the
// client used Basic; ErrTemporarilyUnavailable when the registry cannot
// answer or no verification slot freed up in time.
func (a *Authenticator) Authenticate(ctx context.Context, c Credentials) (store.Client, error) {
	if c.Budget == nil {
		c.Budget = noBudget{}
	}
	if c.ID == "" || (c.Method != MethodBasic && c.Method != MethodPost) {
		a.failures.Add(1)
		return store.Client{}, oauth.ErrInvalidClient.WithDescription(descAuthRequired).WithBasicChallenge()
	}

	failed := func() *oauth.Error {
		e := oauth.ErrInvalidClient.WithDescription(descAuthFailed)
		if c.Method == MethodBasic {
			// RFC 6749 §5.2: "If the client attempted to authenticate via
			// the "Authorization" request header field, the authorization
			// server MUST respond with an HTTP 401 (Unauthorized) status
			// code and include the "WWW-Authenticate" response header field
			// matching the authentication scheme used by the client."
			e = e.WithBasicChallenge()
		}
		return e
	}

	// noSecret spends what a known id would, so timing does not tell
	// which ids exist or which of them have a secret: the budget and the
	// dummy hash, shared by identical concurrent requests just as a known
	// id's verification is (else a burst of identical requests would
	// queue, or be shed, only for these ids).
	noSecret := func() (store.Client, error) {
		if _, err := a.verifyShared(ctx, c, a.dummy, a.sum(c, a.dummy), false); errors.Is(err, oauth.ErrTemporarilyUnavailable) || errors.Is(err, oauth.ErrRateLimited) {
			return store.Client{}, err
		}
		a.failures.Add(1)
		return store.Client{}, failed()
	}
	client, err := a.lookup.Client(ctx, c.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return noSecret()
	case err != nil:
		return store.Client{}, oauth.ErrTemporarilyUnavailable.WithCause(fmt.Errorf("clientauth: look up client: %w", err))
	case !secretMethod(client.AuthMethod):
		// A private_key_jwt client is never authenticated by a secret,
		// whatever hash its row still holds (one written before the
		// switch by an older replica in a rolling upgrade, say): a secret
		// presented for it is answered as for an unknown id.
		return noSecret()
	}

	mac := a.sum(c, client.SecretHash)
	if a.cache != nil && a.cache.hit(c.ID, mac) {
		a.hits.Add(1)
		return client, nil
	}
	ok, err := a.verifyShared(ctx, c, client.SecretHash, mac, true)
	switch {
	case err == nil && ok:
		return client, nil
	case err == nil:
		a.failures.Add(1)
		return store.Client{}, failed()
	case errors.Is(err, ErrBadHash):
		// The registry holds a hash nobody can match: the operator's
		// problem, logged through the cause; the client sees the same 401
		// as for a wrong secret.
		a.failures.Add(1)
		return store.Client{}, failed().WithCause(fmt.Errorf("clientauth: client %q: %w", c.ID, err))
	default:
		return store.Client{}, err
	}
}

// secretMethod reports whether a client's stored token_endpoint_auth_method
// authenticates with a secret: "" (registrations from before the field),
// client_secret_basic or client_secret_post. Any other method, and one this
// version does not know, is never satisfied by a secret.
func secretMethod(m string) bool {
	switch m {
	case "", "client_secret_basic", "client_secret_post":
		return true
	}
	return false
}

// noBudget is the Budget of credentials that carry none.
type noBudget struct{}

func (noBudget) Take() (bool, time.Duration) { return true, 0 }
func (noBudget) Refund()                     {}

// charge takes one verification from b; the error is 429 when b is spent.
func charge(b Budget) error {
	if ok, wait := b.Take(); !ok {
		return oauth.ErrRateLimited.
			WithDescription("too many failed client authentications from this address").
			WithRetryAfter(wait)
	}
	return nil
}

// sum is the cache's name of (c.ID, c.Secret, phc); zero with the cache off.
func (a *Authenticator) sum(c Credentials, phc string) (v verified) {
	if a.cache != nil {
		v = a.cache.sum(c.ID, c.Secret, phc)
	}
	return v
}

// verifyShared verifies c.Secret against phc. With the cache on,
// concurrent first requests with the same credentials (a client fleet
// starting at once) share one verification instead of queueing one slow
// hash each. The key is mac, the cache's HMAC of (id, secret) and phc: it
// names the triple without holding the secret. When remember is set a
// match is added to the cache before the shared verification ends, and a
// verification first looks there, so that a caller that missed the cache
// just before another's verification ended does not hash again.
func (a *Authenticator) verifyShared(ctx context.Context, c Credentials, phc string, mac verified, remember bool) (ok bool, err error) {
	if a.cache == nil {
		return a.verifySlot(ctx, phc, c.Secret, c.Budget)
	}
	for try := 0; ; try++ {
		v, verr, shared := a.flight.Do(string(mac.mac[:])+mac.phc, func() (any, error) {
			if remember && a.cache.hit(c.ID, mac) {
				a.hits.Add(1)
				return true, nil
			}
			match, verr := a.verifySlot(ctx, phc, c.Secret, c.Budget)
			if remember && match && verr == nil {
				a.cache.add(c.ID, mac)
			}
			return match, verr
		})
		ok, err = v.(bool), verr
		// The verification ran under another caller's context: if that
		// caller went away, this one (still here) tries again.
		if !shared || err == nil || ctx.Err() != nil || try == 2 ||
			!(errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			return ok, err
		}
	}
}

// verifySlot verifies secret against phc while holding a verification slot.
// The caller's budget is charged once the slot is held, right before the
// hash runs, and refunded on a match: so at most the budget's burst of
// failing verifications run, plus those already holding a slot, however
// many requests arrive at once, and legitimate requests queued for a slot
// spend nothing while they wait. Its error wraps ErrBadHash, or is an
// *oauth.Error: ErrTemporarilyUnavailable when no slot was free in time,
// ErrRateLimited when the budget is spent.
func (a *Authenticator) verifySlot(ctx context.Context, phc, secret string, b Budget) (bool, error) {
	if err := a.acquire(ctx); err != nil {
		return false, err
	}
	defer func() { <-a.sem }()
	if err := charge(b); err != nil {
		return false, err
	}
	a.verifications.Add(1)
	ok, err := a.verify(phc, secret)
	if ok && err == nil {
		b.Refund()
	}
	return ok, err
}

// acquire takes a verification slot, waiting at most the queue timeout.
func (a *Authenticator) acquire(ctx context.Context) error {
	select {
	case a.sem <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(a.queueTimeout)
	defer t.Stop()
	select {
	case a.sem <- struct{}{}:
		return nil
	case <-t.C:
		a.shed.Add(1)
		return oauth.ErrTemporarilyUnavailable.WithDescription("too many client authentications in progress, retry later")
	case <-ctx.Done():
		a.shed.Add(1)
		return oauth.ErrTemporarilyUnavailable.WithCause(fmt.Errorf("clientauth: waiting for a verification slot: %w", context.Cause(ctx)))
	}
}

// Invalidate forgets the cached verification of a client, so its next
// request runs the full hash. Call it when a client is removed or its secret
// changes; a changed hash stops matching the cache even without it.
func (a *Authenticator) Invalidate(clientID string) {
	if a.cache != nil {
		a.cache.remove(clientID)
	}
}

// CacheHits is how many Authenticate calls the verified-credential cache
// answered.
func (a *Authenticator) CacheHits() uint64 { return a.hits.Load() }

// Verifications is how many hash verifications ran, including those against
// the dummy hash for unknown ids.
func (a *Authenticator) Verifications() uint64 { return a.verifications.Load() }

// Failures is how many Authenticate calls ended in invalid_client.
func (a *Authenticator) Failures() uint64 { return a.failures.Load() }

// Shed is how many Authenticate calls were refused with 503 because no
// verification slot freed up in time.
func (a *Authenticator) Shed() uint64 { return a.shed.Load() }

// CacheLen is how many verified credentials the cache holds (0 when
// disabled).
func (a *Authenticator) CacheLen() int {
	if a.cache == nil {
		return 0
	}
	return a.cache.len()
}
