// Package reuse is dynamic-TTL reuse: a client_credentials request is answered
// with the consumer's still-live token, with expires_in recomputed, instead of
// a freshly minted one. That is why tokengw exists: clients that ask for a
// token on every call cost one stored token per reuse window, not one per call.
//
// Lookups go L1 (an in-process bigcache), then L2 (the store's reuse row,
// shared by every process on the store), then mint. Concurrent misses for one
// key collapse into one mint (singleflight); across processes the store's
// Issue makes the claim of a reuse slot exclusive.
//
// bigcache has no per-entry TTL and can return stale entries, so every L1
// value carries the token's absolute times and is checked on every read; an
// entry older than LocalTTL is re-checked against the store before use, which
// bounds how long a token revoked or replaced elsewhere is still handed out.
// A re-check the store cannot answer is an error (the caller answers 503),
// never a reason to trust the entry longer: the bound holds through an
// outage too.
package reuse

import (
	"context"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/allegro/bigcache/v3"
	"golang.org/x/sync/singleflight"

	"github.com/tokengw/tokengw/internal/generation"
	"github.com/tokengw/tokengw/internal/issue"
	"github.com/tokengw/tokengw/internal/store"
)

// Minter makes new tokens (opaque or JWT, package issue). Implementations
// are safe for concurrent use.
type Minter interface {
	// Mint returns a fresh bearer token for c and SHA-256 of it.
	Mint(c issue.Claims) (token string, hash []byte, err error)
}

// Sealer protects the copy of a token kept in the store for reuse.
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(sealed, aad []byte) ([]byte, error)
}

// Tokens is the part of the store reuse needs.
type Tokens interface {
	Issue(ctx context.Context, tok store.Token, cur *store.Current) (store.Current, bool, error)
	Current(ctx context.Context, clientID, reuseKey string) (store.Current, error)
}

// Options configures a Reuser.
type Options struct {
	// Enabled turns reuse on; off, every request mints.
	Enabled bool
	Policy  Policy
	// CacheSizeMB bounds the L1 cache (MiB). Default 64.
	CacheSizeMB int
	// LocalTTL is how long an L1 entry is trusted before it is re-checked
	// against the store. 0 re-checks on every hit. An entry whose re-check
	// fails is not served (Token returns an error wrapping
	// store.ErrUnavailable).
	LocalTTL time.Duration
	// StoreTimeout bounds each store operation made on a caller's behalf.
	// Default 2s.
	StoreTimeout time.Duration
	Store        Tokens
	Minter       Minter
	// Sealer is required when Enabled.
	Sealer Sealer
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Request is one token request, already authenticated and scope-checked.
type Request struct {
	ClientID string
	// Scope is the normalised granted scope.
	Scope string
	// Lifetime of a new token.
	Lifetime time.Duration
	// Fingerprint identifies the client's current registration (secret,
	// scopes, lifetime); when it changes, old tokens are no longer reused.
	Fingerprint string
	// Audience is the token's audience (RFC 8707 resources, else the
	// configured default); part of the reuse key.
	Audience []string
	// Subject, when set (the jwt-bearer grant: ClientID names the issuer),
	// is part of the reuse key: each subject gets its own token.
	Subject string
}

// Outcome says where a token came from.
type Outcome uint8

// Outcomes.
const (
	Minted Outcome = iota
	L1Hit
	L2Hit
)

func (o Outcome) String() string {
	switch o {
	case L1Hit:
		return "reused_l1"
	case L2Hit:
		return "reused_l2"
	default:
		return "minted"
	}
}

// Result is a token to hand out.
type Result struct {
	Token     string
	IssuedAt  time.Time
	ExpiresAt time.Time
	Outcome   Outcome
	// JudgedAt is the instant an L1 hit was judged reusable at (zero for
	// any other outcome): a microsecond before the answer is written, so
	// the answer's expires_in can be computed at it without reading the
	// clock again.
	JudgedAt time.Time
}

// ExpiresIn is the response's expires_in at now.
func (r Result) ExpiresIn(now time.Time) int64 { return ExpiresIn(r.IssuedAt, r.ExpiresAt, now) }

// Stats are cumulative counters.
type Stats struct {
	L1Hits, L2Hits, Mints, StoreErrors uint64
	// Unsealable counts reuse rows this process could not open (sealed
	// under a key it lacks, or corrupt); UnclaimedMints counts mints handed
	// out without a reuse slot because the slot held a token this process
	// may not reuse (such a row, or clock skew). Either rising steadily
	// means a replica mints per request: check store.seal_keys and clocks.
	Unsealable, UnclaimedMints uint64
}

// Reuser hands out tokens. It is safe for concurrent use.
type Reuser struct {
	opts  Options
	now   func() time.Time
	cache *bigcache.BigCache
	group singleflight.Group
	close sync.Once
	// gen holds the clients' generations; an L1 entry written under an
	// older generation of its client is ignored. EvictClient bumps it,
	// dropping every L1 entry of the client at once and voiding what a
	// flight of the client in progress would cache.
	gen *generation.Guard

	l1Hits, l2Hits, mints, storeErrs atomic.Uint64
	unsealable, unclaimed            atomic.Uint64
}

// New validates opts and builds a Reuser. Close releases its cache.
func New(opts Options) (*Reuser, error) {
	if opts.Store == nil || opts.Minter == nil {
		return nil, errors.New("reuse: Store and Minter are required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.StoreTimeout <= 0 {
		opts.StoreTimeout = 2 * time.Second
	}
	r := &Reuser{opts: opts, now: opts.Now, gen: generation.New()}
	if !opts.Enabled {
		return r, nil
	}
	if opts.Sealer == nil {
		return nil, errors.New("reuse: a Sealer is required when reuse is enabled")
	}
	if f := opts.Policy.MaxElapsedFraction; !(f > 0 && f <= 1) {
		return nil, fmt.Errorf("reuse: MaxElapsedFraction %v not in (0, 1]", f)
	}
	if opts.CacheSizeMB <= 0 {
		opts.CacheSizeMB = 64
	}
	cfg := bigcache.Config{
		Shards:             64,
		LifeWindow:         24 * time.Hour, // entries are checked by their own times, not this
		CleanWindow:        time.Minute,
		MaxEntriesInWindow: 64 * 1024,
		MaxEntrySize:       128,
		HardMaxCacheSize:   opts.CacheSizeMB,
		Logger:             nopLogger{},
	}
	// The cache's clean-up goroutine lives until Close, not until a
	// caller's context ends.
	c, err := bigcache.New(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("reuse: cache: %w", err)
	}
	r.cache = c
	r.opts = opts
	return r, nil
}

// Close releases the L1 cache. It is idempotent.
func (r *Reuser) Close() error {
	var err error
	r.close.Do(func() {
		if r.cache != nil {
			err = r.cache.Close()
		}
	})
	return err
}

// Stats returns the counters.
func (r *Reuser) Stats() Stats {
	return Stats{L1Hits: r.l1Hits.Load(), L2Hits: r.l2Hits.Load(), Mints: r.mints.Load(), StoreErrors: r.storeErrs.Load(),
		Unsealable: r.unsealable.Load(), UnclaimedMints: r.unclaimed.Load()}
}

// CacheEntries and CacheBytes describe the L1 cache.
func (r *Reuser) CacheEntries() int {
	if r.cache == nil {
		return 0
	}
	return r.cache.Len()
}

// CacheBytes is the L1 cache's allocated capacity in bytes.
func (r *Reuser) CacheBytes() int {
	if r.cache == nil {
		return 0
	}
	return r.cache.Capacity()
}

// ReuseKey is the store's reuse slot of a request within its client's
// partition: the granted scope and the registration fingerprint, NUL
// separated, then the audience (space separated) when there is one.
func ReuseKey(req Request) string {
	if req.Subject != "" {
		return subjectKey(req)
	}
	switch len(req.Audience) {
	case 0:
		return req.Scope + "\x00" + req.Fingerprint
	case 1: // one allocation on the hit path
		return req.Scope + "\x00" + req.Fingerprint + "\x00" + req.Audience[0]
	}
	return req.Scope + "\x00" + req.Fingerprint + "\x00" + strings.Join(req.Audience, " ")
}

func cacheKey(clientID, reuseKey string) string { return clientID + "\x00" + reuseKey }

// keys returns a request's reuse key and its L1 cache key, for at most one
// audience from one allocation: the reuse key is the tail of the cache key.
func keys(req Request) (rk, ck string) {
	if len(req.Audience) > 1 {
		rk = ReuseKey(req)
		return rk, cacheKey(req.ClientID, rk)
	}
	var subLen string
	n := len(req.ClientID) + 1 + len(req.Scope) + 1 + len(req.Fingerprint)
	if len(req.Audience) == 1 {
		n += 1 + len(req.Audience[0])
	}
	if req.Subject != "" {
		subLen = strconv.Itoa(len(req.Subject)) // small numbers: no allocation
		n += len("\x00sub:") + len(subLen) + 1 + len(req.Subject)
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(req.ClientID)
	b.WriteByte(0)
	b.WriteString(req.Scope)
	b.WriteByte(0)
	b.WriteString(req.Fingerprint)
	if len(req.Audience) == 1 {
		b.WriteByte(0)
		b.WriteString(req.Audience[0])
	}
	if req.Subject != "" {
		b.WriteString("\x00sub:")
		b.WriteString(subLen)
		b.WriteByte(':')
		b.WriteString(req.Subject)
	}
	ck = b.String()
	return ck[len(req.ClientID)+1:], ck
}

// clientOf is the client id of a cache key (client ids hold no NUL).
func clientOf(ck string) string {
	if i := strings.IndexByte(ck, 0); i >= 0 {
		return ck[:i]
	}
	return ck
}

// Token returns a token for req: a reused one when the policy allows, else a
// newly minted and persisted one. A token is returned only once the store
// has accepted it.
func (r *Reuser) Token(ctx context.Context, req Request) (Result, error) {
	if !r.opts.Enabled {
		return r.mint(ctx, req, "", 0)
	}
	rk, ck := keys(req)
	now := r.now()
	if e, ok := r.l1(ck); ok && r.opts.Policy.Reusable(e.iat, e.exp, now) {
		if r.fresh(e, now) {
			r.l1Hits.Add(1)
			return Result{Token: e.token, IssuedAt: e.iat, ExpiresAt: e.exp, Outcome: L1Hit, JudgedAt: now}, nil
		}
		// Stale: re-check against the store (collapsed per key).
	}
	v, err, _ := r.group.Do(ck, func() (any, error) {
		// Detached from the first caller's cancellation: the result is shared.
		return r.resolve(context.WithoutCancel(ctx), req, rk, ck)
	})
	if err != nil {
		return Result{}, err
	}
	return v.(Result), nil
}

// resolve runs once per key at a time: re-check a stale L1 entry, try L2,
// else mint and claim the slot.
func (r *Reuser) resolve(ctx context.Context, req Request, rk, ck string) (Result, error) {
	// The client's generation before anything is read: an eviction that
	// lands while this flight is in the store makes what it caches void.
	gen := r.gen.Current(req.ClientID)
	now := r.now()
	e, haveL1 := r.l1(ck)
	if haveL1 && !r.opts.Policy.Reusable(e.iat, e.exp, now) {
		haveL1 = false
	}
	if haveL1 && r.fresh(e, now) {
		// Another call in this flight's predecessor refreshed it.
		r.l1Hits.Add(1)
		return Result{Token: e.token, IssuedAt: e.iat, ExpiresAt: e.exp, Outcome: L1Hit}, nil
	}

	sctx, cancel := context.WithTimeout(ctx, r.opts.StoreTimeout)
	cur, err := r.opts.Store.Current(sctx, req.ClientID, rk)
	cancel()
	switch {
	case err == nil:
		if res, ok := r.adopt(cur, now); ok {
			r.setL1(ck, res, now, gen)
			if haveL1 && sameToken(res.Token, e.token) {
				r.l1Hits.Add(1)
				res.Outcome = L1Hit
			} else {
				r.l2Hits.Add(1)
			}
			return res, nil
		}
	case errors.Is(err, store.ErrNotFound):
		// The slot is empty: revoked, expired or replaced. Mint.
		if haveL1 {
			_ = r.cache.Delete(ck)
		}
	default:
		r.storeErrs.Add(1)
		if haveL1 {
			// The store cannot answer the re-check. The entry was last
			// confirmed more than LocalTTL ago, and LocalTTL is the bound
			// on how long a token revoked through another replica is
			// still handed out here: it is not served past that without
			// a store answer (503, and the client retries). The store's
			// reads degrade on their own when a quorum is short
			// (docs/cassandra.md), so this is a store that cannot answer
			// at all, not a cluster with a node or two down.
			if !errors.Is(err, store.ErrUnavailable) {
				err = fmt.Errorf("%w: %w", store.ErrUnavailable, err)
			}
			return Result{}, fmt.Errorf("reuse: re-check: %w", err)
		}
		// Fall through to mint: the mint needs the store too and will report.
	}
	return r.mint(ctx, req, rk, gen)
}

// adopt turns a reuse row into a Result when the policy allows it.
func (r *Reuser) adopt(cur store.Current, now time.Time) (Result, bool) {
	if !r.opts.Policy.Reusable(cur.IssuedAt, cur.ExpiresAt, now) {
		return Result{}, false
	}
	tok, err := r.opts.Sealer.Open(cur.Sealed, cur.TokenHash)
	if err != nil {
		// Sealed under a key we do not have (misconfigured replica) or
		// corrupt: never hand it out; mint instead.
		r.unsealable.Add(1)
		return Result{}, false
	}
	return Result{Token: string(tok), IssuedAt: cur.IssuedAt, ExpiresAt: cur.ExpiresAt, Outcome: L2Hit}, true
}

// mint makes a new token and persists it; with a reuse key it also claims
// the reuse slot, and if another process claimed it first, hands out the
// winner's token instead (the new one is not persisted and never leaves).
// gen is the client's generation read before the flight began; L1 entries
// are written under it.
func (r *Reuser) mint(ctx context.Context, req Request, rk string, gen uint64) (Result, error) {
	now := r.now().Truncate(time.Millisecond)
	token, hash, err := r.opts.Minter.Mint(issue.Claims{
		ClientID: req.ClientID, Scope: req.Scope, Audience: req.Audience, IssuedAt: now, ExpiresAt: now.Add(req.Lifetime),
		Subject: req.Subject,
	})
	if err != nil {
		return Result{}, fmt.Errorf("reuse: mint: %w", err)
	}
	tok := store.Token{
		Hash: hash, ClientID: req.ClientID, Scope: req.Scope, ReuseKey: rk,
		IssuedAt: now, ExpiresAt: now.Add(req.Lifetime),
	}
	var cur *store.Current
	if rk != "" {
		if w := r.opts.Policy.Window(req.Lifetime); w > 0 {
			sealed, err := r.opts.Sealer.Seal([]byte(token), hash)
			if err != nil {
				return Result{}, fmt.Errorf("reuse: %w", err)
			}
			cur = &store.Current{
				ClientID: req.ClientID, ReuseKey: rk, TokenHash: hash, Sealed: sealed, Scope: req.Scope,
				IssuedAt: tok.IssuedAt, ExpiresAt: tok.ExpiresAt, ReuseUntil: tok.IssuedAt.Add(w),
			}
		} else {
			tok.ReuseKey = ""
		}
	}
	sctx, cancel := context.WithTimeout(ctx, r.opts.StoreTimeout)
	defer cancel()
	winner, claimed, err := r.opts.Store.Issue(sctx, tok, cur)
	if err != nil {
		r.storeErrs.Add(1)
		return Result{}, fmt.Errorf("reuse: persist: %w", err)
	}
	res := Result{Token: token, IssuedAt: tok.IssuedAt, ExpiresAt: tok.ExpiresAt, Outcome: Minted}
	if cur != nil && !claimed {
		if w, ok := r.adopt(winner, r.now()); ok {
			r.l2Hits.Add(1)
			r.setL1(cacheKey(req.ClientID, rk), w, r.now(), gen)
			return w, nil
		}
		// The slot holds a token we may not reuse (clock skew, another
		// seal key): hand out a fresh token, persisted without a claim.
		tok.ReuseKey = ""
		if _, _, err := r.opts.Store.Issue(sctx, tok, nil); err != nil {
			r.storeErrs.Add(1)
			return Result{}, fmt.Errorf("reuse: persist: %w", err)
		}
		r.mints.Add(1)
		r.unclaimed.Add(1)
		return res, nil
	}
	r.mints.Add(1)
	if cur != nil {
		r.setL1(cacheKey(req.ClientID, rk), res, r.now(), gen)
	}
	return res, nil
}

// EvictClient drops every L1 entry of a client at once (all its tokens were
// revoked).
func (r *Reuser) EvictClient(clientID string) { r.gen.Bump(clientID) }

// Evict drops a reuse slot from this process's L1 (a revoked token: the
// store's row is deleted by the revocation itself). It also voids what a
// lookup or mint of the client in flight would cache, so it bumps the
// client's generation: the client's other slots are re-checked once. The
// slot's entry is deleted as well, so the revoked token's bytes do not wait
// in the cache to be overwritten.
func (r *Reuser) Evict(clientID, reuseKey string) {
	r.EvictClient(clientID)
	if r.cache != nil {
		_ = r.cache.Delete(cacheKey(clientID, reuseKey))
	}
}

// entry is an L1 value as read back. Stored, it is the issue and expiry
// times as unix milliseconds, the check time in nanoseconds, the client's
// generation (compared by l1, not kept), then the token.
type entry struct {
	iat, exp, checked time.Time
	token             string
}

const entryHeader = 4 * 8

// fresh reports whether an L1 entry was checked against the store less than
// LocalTTL ago. An entry checked "after" now (the wall clock was stepped
// back) has an unknown age and is not fresh.
func (r *Reuser) fresh(e entry, now time.Time) bool {
	age := now.Sub(e.checked)
	return age >= 0 && age < r.opts.LocalTTL
}

// setL1 caches res under the client generation gen, read before the store
// was consulted.
func (r *Reuser) setL1(ck string, res Result, checked time.Time, gen uint64) {
	b := make([]byte, entryHeader+len(res.Token))
	binary.BigEndian.PutUint64(b[0:], uint64(res.IssuedAt.UnixMilli()))
	binary.BigEndian.PutUint64(b[8:], uint64(res.ExpiresAt.UnixMilli()))
	binary.BigEndian.PutUint64(b[16:], uint64(checked.UnixNano()))
	binary.BigEndian.PutUint64(b[24:], gen)
	copy(b[entryHeader:], res.Token)
	_ = r.cache.Set(ck, b) // a full cache evicts its oldest entries; never an error worth failing on
}

func (r *Reuser) l1(ck string) (entry, bool) {
	b, err := r.cache.Get(ck)
	if err != nil || len(b) <= entryHeader {
		return entry{}, false
	}
	if binary.BigEndian.Uint64(b[24:]) != r.gen.Current(clientOf(ck)) {
		return entry{}, false // the client's tokens were revoked since
	}
	return entry{
		iat:     time.UnixMilli(int64(binary.BigEndian.Uint64(b[0:]))),
		exp:     time.UnixMilli(int64(binary.BigEndian.Uint64(b[8:]))),
		checked: time.Unix(0, int64(binary.BigEndian.Uint64(b[16:]))),
		// bigcache's Get returns a copy of the entry ("copy on read"), b
		// is this call's alone and never written again: the token can be
		// a view of it instead of a second copy
		// (TestL1TokenSurvivesOverwrite).
		token: unsafe.String(&b[entryHeader], len(b)-entryHeader),
	}, true
}

// sameToken compares two bearer tokens in constant time.
func sameToken(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// nopLogger silences bigcache's own messages.
type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}
