package limiter

import (
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Defaults for the zero fields of [Options].
const (
	// DefaultMaxKeys bounds a Set to about 20 MB of buckets (an entry takes
	// about 180 bytes plus its key).
	DefaultMaxKeys = 100_000
	// DefaultShards spreads the keys over enough mutexes that concurrent
	// requests for different keys rarely wait for each other.
	DefaultShards = 64
)

// Limit is a token bucket: Burst tokens at most, refilled at Rate tokens per
// second. Each request (or failed authentication) takes one token.
type Limit struct {
	// Rate is tokens per second; fractions are allowed (0.05 is one every
	// 20 s). 0 means unlimited.
	Rate float64
	// Burst is the bucket size: how many requests may arrive at once after a
	// quiet spell. Values below 1 are treated as 1 when Rate is positive.
	Burst int
}

// Unlimited reports whether l imposes no limit: Rate is 0 or +Inf. A Rate
// that [Limit.Validate] rejects (negative, NaN) is also treated as
// unlimited; configuration is expected to be validated at start-up.
func (l Limit) Unlimited() bool {
	return !(l.Rate > 0) || math.IsInf(l.Rate, 1)
}

// MaxBurst is the largest Burst a limit may have.
const MaxBurst = 1_000_000_000

// FieldError is a limit that Validate refuses; Field is "rate" or "burst",
// so that a caller can name its own key (limits.per_client.rate, limit.burst).
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return "limiter: " + e.Field + ": " + e.Msg }

// Validate reports whether l is a well-formed limit: Rate finite and not
// negative (NaN and ±Inf are refused), Burst between 0 and MaxBurst and at
// least 1 unless Rate is 0. Config, the admin API and the CLI all call it.
// The error is a *FieldError.
func (l Limit) Validate() error {
	switch {
	case math.IsNaN(l.Rate) || math.IsInf(l.Rate, 0) || l.Rate < 0:
		return &FieldError{"rate", fmt.Sprintf("must be a finite number >= 0 requests per second (0 = unlimited), got %v", l.Rate)}
	case l.Burst < 0 || l.Burst > MaxBurst:
		return &FieldError{"burst", fmt.Sprintf("must be between 0 and %d, got %d", MaxBurst, l.Burst)}
	case l.Rate > 0 && l.Burst < 1:
		return &FieldError{"burst", fmt.Sprintf("must be >= 1 when rate is set, got %d", l.Burst)}
	}
	return nil
}

func (l Limit) normalized() Limit {
	if l.Burst < 1 {
		l.Burst = 1
	}
	return l
}

// Options configures a [Set]. The zero value is usable.
type Options struct {
	// MaxKeys bounds the number of buckets held at once. 0 means
	// DefaultMaxKeys; negative is an error.
	MaxKeys int
	// Shards is the number of independently locked partitions. 0 means
	// DefaultShards; negative is an error. It is lowered to MaxKeys when
	// larger, so that every shard can hold at least one key.
	Shards int
	// Now is the clock, called once per operation, possibly from many
	// goroutines at once. nil means time.Now.
	Now func() time.Time
}

// Decision is the outcome of [Set.Allow] or [Set.Strike].
type Decision struct {
	// Allowed reports whether a token was taken.
	Allowed bool
	// Limit is the limit that was applied (Burst raised to 1 if it was
	// lower). Limit.Unlimited() reports that no limit applied, in which
	// case Allowed is true and the other fields are zero.
	Limit Limit
	// Remaining is the number of whole tokens left after this request.
	Remaining int
	// RetryAfter, when not Allowed, is the time from now until a token will
	// be there: a request at now+RetryAfter is allowed (if nothing else took
	// the token), one a nanosecond earlier is not. Zero when Allowed.
	RetryAfter time.Duration
	// Reset is the time until the next whole token arrives (Remaining goes
	// up by one); zero when the bucket is full. When not Allowed it equals
	// RetryAfter.
	Reset time.Duration
}

// Set is a bounded collection of token buckets keyed by K (client ids,
// caller addresses). Create it
// with [New]. All methods are safe for concurrent use.
type Set[K comparable] struct {
	now    func() time.Time
	seed   maphash.Seed
	shards []shard[K]

	// buckets counts the entries of every shard, so Blocked can answer a
	// Set that holds none (no caller has failed lately) without a lock.
	// Changed under the shard's mutex, next to the map it counts.
	buckets atomic.Int64

	rejectedConsumer   atomic.Uint64
	rejectedFailedAuth atomic.Uint64
	forcedEvictions    atomic.Uint64
}

type shard[K comparable] struct {
	mu   sync.Mutex
	m    map[K]*entry[K]
	root entry[K] // sentinel of the LRU ring: root.next is the most recently used
	max  int
	_    [64]byte // keep neighbouring shards' mutexes off one cache line
}

type entry[K comparable] struct {
	key   K
	lim   *rate.Limiter
	limit Limit // the normalized Limit lim was last configured with
	// fullAt is when the bucket will have refilled completely, kept so that
	// eviction can tell idle buckets without taking lim's mutex.
	fullAt time.Time
	// used is the CLOCK reference bit: set on every use, cleared when the
	// eviction hand passes the entry, which then moves to the front of the
	// ring. Setting a bit instead of moving the entry on every use keeps the
	// hot path off other entries' cache lines.
	used       bool
	prev, next *entry[K]
}

// New returns an empty Set configured by opts.
func New[K comparable](opts Options) (*Set[K], error) {
	if opts.MaxKeys < 0 {
		return nil, fmt.Errorf("limiter: max keys must not be negative, got %d", opts.MaxKeys)
	}
	if opts.Shards < 0 {
		return nil, fmt.Errorf("limiter: shards must not be negative, got %d", opts.Shards)
	}
	maxKeys := opts.MaxKeys
	if maxKeys == 0 {
		maxKeys = DefaultMaxKeys
	}
	n := opts.Shards
	if n == 0 {
		n = DefaultShards
	}
	n = min(n, maxKeys)
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	s := &Set[K]{now: now, seed: maphash.MakeSeed(), shards: make([]shard[K], n)}
	for i := range s.shards {
		sh := &s.shards[i]
		// Share maxKeys exactly: the first maxKeys%n shards take one more.
		sh.max = maxKeys / n
		if i < maxKeys%n {
			sh.max++
		}
		sh.m = make(map[K]*entry[K])
		sh.root.next, sh.root.prev = &sh.root, &sh.root
	}
	return s, nil
}

// Allow takes one token from key's bucket under limit l if one is there. A
// rejection counts towards [Set.RejectedConsumer]. An unlimited l is always
// allowed and creates no entry.
func (s *Set[K]) Allow(key K, l Limit) Decision {
	if l.Unlimited() {
		return Decision{Allowed: true, Limit: l}
	}
	l = l.normalized()
	now := s.now()
	sh := s.shard(key)
	sh.mu.Lock()
	e, created := s.lookup(sh, key, l, now, true)
	d := e.take(now, created)
	sh.mu.Unlock()
	if !d.Allowed {
		s.rejectedConsumer.Add(1)
	}
	return d
}

// Blocked reports, without taking a token, whether key's bucket under limit
// l is empty (holds less than one token), and if so how long until it holds
// one. A key with no bucket is not blocked, and asking creates none. Each
// true answer counts towards [Set.RejectedFailedAuth]: call it once per
// request, before authenticating the client.
func (s *Set[K]) Blocked(key K, l Limit) (bool, time.Duration) {
	if l.Unlimited() {
		return false, 0
	}
	if s.buckets.Load() == 0 {
		// No bucket anywhere: nobody is blocked, and neither the key's
		// hash nor its shard's mutex is needed. A bucket created
		// concurrently (a Strike racing this call) is one this call
		// could equally have run before.
		return false, 0
	}
	l = l.normalized()
	sh := s.shard(key)
	sh.mu.Lock()
	if sh.m[key] == nil {
		// The common case, a caller that has not failed: no bucket, so
		// no clock read either.
		sh.mu.Unlock()
		return false, 0
	}
	now := s.now()
	e, _ := s.lookup(sh, key, l, now, false)
	wait := waitOne(e.lim, l.Rate, now, e.lim.TokensAt(now))
	sh.mu.Unlock()
	if wait <= 0 {
		return false, 0
	}
	s.rejectedFailedAuth.Add(1)
	return true, wait
}

// Strike takes one token from key's bucket under limit l, as after a failed
// client authentication. An empty bucket stays empty (Decision.Allowed is
// then false); strikes never push the refill further out. Strike counts
// nothing: the rejection is counted when [Set.Blocked] reports it.
func (s *Set[K]) Strike(key K, l Limit) Decision {
	if l.Unlimited() {
		return Decision{Allowed: true, Limit: l}
	}
	l = l.normalized()
	now := s.now()
	sh := s.shard(key)
	sh.mu.Lock()
	e, created := s.lookup(sh, key, l, now, true)
	d := e.take(now, created)
	sh.mu.Unlock()
	return d
}

// Take takes one token from key's bucket under limit l before the work it
// guards (a secret verification), so that concurrent requests cannot each
// pass an early Blocked check and all run: the token is spent whatever the
// outcome, and Refund gives it back when the work succeeded. An empty bucket
// refuses (Decision.Allowed false, RetryAfter set) and the refusal counts
// towards [Set.RejectedFailedAuth].
func (s *Set[K]) Take(key K, l Limit) Decision {
	d := s.Strike(key, l)
	if !d.Allowed {
		s.rejectedFailedAuth.Add(1)
	}
	return d
}

// Refund gives back one token taken by Take (the verification succeeded):
// the bucket never holds more than its burst, and one that is full again is
// removed. A bucket evicted meanwhile is not recreated.
func (s *Set[K]) Refund(key K, l Limit) {
	if l.Unlimited() {
		return
	}
	l = l.normalized()
	now := s.now()
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, _ := s.lookup(sh, key, l, now, false)
	if e == nil {
		return
	}
	// x/time/rate adds tokens for a negative n (its arithmetic is
	// tokens -= n) and caps them at the burst on the next advance;
	// TestTakeRefund holds it to that.
	e.lim.AllowN(now, -1)
	e.setFullAt(now, min(e.lim.TokensAt(now), float64(l.Burst)))
	if e.full(now) {
		// Full again, which is no bucket at all: drop it, so that a
		// caller whose verifications succeed leaves the Set empty and
		// Blocked answers without a lock.
		s.remove(sh, e)
	}
}

// Len returns the number of buckets held.
func (s *Set[K]) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// Sweep removes every bucket that has refilled completely (which is
// equivalent to having none) and returns how many it removed. Calling it
// periodically frees the buckets left by a burst of distinct keys (the
// shards' maps keep their grown size); the bound on entries holds without
// it.
func (s *Set[K]) Sweep() int {
	now := s.now()
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for e := sh.root.prev; e != &sh.root; {
			prev := e.prev
			if e.full(now) {
				s.remove(sh, e)
				n++
			}
			e = prev
		}
		sh.mu.Unlock()
	}
	return n
}

// RejectedConsumer returns how many [Set.Allow] calls were rejected.
func (s *Set[K]) RejectedConsumer() uint64 { return s.rejectedConsumer.Load() }

// RejectedFailedAuth returns how many [Set.Blocked] calls reported true.
func (s *Set[K]) RejectedFailedAuth() uint64 { return s.rejectedFailedAuth.Load() }

// ForcedEvictions returns how many partly spent buckets were evicted to
// respect MaxKeys (each gave its key a fresh, full bucket). A steadily rising
// count means MaxKeys is too small for the traffic.
func (s *Set[K]) ForcedEvictions() uint64 { return s.forcedEvictions.Load() }

func (s *Set[K]) shard(key K) *shard[K] {
	return &s.shards[maphash.Comparable(s.seed, key)%uint64(len(s.shards))]
}

// lookup returns key's entry, re-rated to l and marked as used. A missing
// key gets a new entry with a full bucket when create is set (and created
// reports it), else lookup returns nil. sh.mu must be held.
func (s *Set[K]) lookup(sh *shard[K], key K, l Limit, now time.Time, create bool) (e *entry[K], created bool) {
	e = sh.m[key]
	if e == nil {
		if !create {
			return nil, false
		}
		s.makeRoom(sh, now)
		e = newEntry(key, l, now)
		sh.m[key] = e
		sh.pushFront(e)
		s.buckets.Add(1)
		return e, true
	}
	if e.limit != l {
		// The operator changed this key's limit: keep the tokens, change
		// the refill rate and the cap (x/time/rate advances to now first).
		e.lim.SetLimitAt(now, rate.Limit(l.Rate))
		e.lim.SetBurstAt(now, l.Burst)
		e.limit = l
		e.setFullAt(now, e.lim.TokensAt(now))
	}
	e.used = true
	return e, false
}

// makeRoom evicts before an insert into sh: the entry at the back of the
// ring whenever its bucket is full, and, when sh is at its bound, one more
// entry chosen by CLOCK (second chance): walking from the back, a full
// bucket is evicted at once, an entry used since the hand last passed is
// cleared and moved to the front, and the first unused one is evicted,
// counted as forced. A pass clears every bit, so the walk ends within
// len(sh.m)+1 steps. sh.mu must be held.
func (s *Set[K]) makeRoom(sh *shard[K], now time.Time) {
	if back := sh.root.prev; back != &sh.root && back.full(now) {
		s.remove(sh, back)
	}
	if len(sh.m) < sh.max {
		return
	}
	for {
		e := sh.root.prev
		switch {
		case e.full(now):
			s.remove(sh, e)
			return
		case !e.used:
			s.remove(sh, e)
			s.forcedEvictions.Add(1)
			return
		}
		e.used = false
		sh.unlink(e)
		sh.pushFront(e)
	}
}

func (sh *shard[K]) pushFront(e *entry[K]) {
	e.prev = &sh.root
	e.next = sh.root.next
	e.next.prev = e
	sh.root.next = e
}

func (sh *shard[K]) unlink(e *entry[K]) {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next = nil, nil
}

func (s *Set[K]) remove(sh *shard[K], e *entry[K]) {
	sh.unlink(e)
	delete(sh.m, e.key)
	s.buckets.Add(-1)
}

// newEntry returns an entry for key with a full bucket under l.
func newEntry[K comparable](key K, l Limit, now time.Time) *entry[K] {
	return &entry[K]{key: key, lim: rate.NewLimiter(rate.Limit(l.Rate), l.Burst), limit: l, fullAt: now}
}

// full reports whether e's bucket has refilled completely by now, which
// makes it equivalent to no bucket at all.
func (e *entry[K]) full(now time.Time) bool {
	return !now.Before(e.fullAt)
}

func (e *entry[K]) setFullAt(now time.Time, tokens float64) {
	e.fullAt = now
	if missing := float64(e.limit.Burst) - tokens; missing > 0 {
		e.fullAt = now.Add(tokenDuration(missing, e.limit.Rate))
	}
}

// take is Allow's and Strike's decision on e's bucket: a request is allowed
// when the bucket holds at least one whole token. (x/time/rate on its own
// also allows when the missing fraction would arrive within a nanosecond;
// deciding here keeps RetryAfter on round numbers, e.g. exactly 1s.)
//
// fresh says that the bucket was just created, so is known to be full,
// which saves asking it.
func (e *entry[K]) take(now time.Time, fresh bool) Decision {
	l := e.limit
	tokens := float64(l.Burst)
	if !fresh {
		tokens = e.lim.TokensAt(now)
	}
	if tokens >= 1 && e.lim.AllowN(now, 1) {
		tokens-- // what AllowN left in the bucket
		e.setFullAt(now, tokens)
		d := Decision{Allowed: true, Limit: l, Remaining: int(max(math.Floor(tokens), 0))}
		if tokens < float64(l.Burst) {
			d.Reset = tokenDuration(math.Floor(tokens)+1-tokens, l.Rate)
		}
		return d
	}
	wait := waitOne(e.lim, l.Rate, now, tokens)
	return Decision{Limit: l, RetryAfter: wait, Reset: wait}
}

// allowsAt reports whether take would allow a request at t.
func allowsAt(lim *rate.Limiter, t time.Time) bool {
	return lim.TokensAt(t) >= 1
}

// waitOne returns the shortest wait from now after which lim holds one
// token, or 0 if it holds one now; tokens is lim.TokensAt(now). The estimate
// from the bucket's state is corrected against the bucket's own arithmetic,
// so the answer is exact to the nanosecond for any rate at which a
// nanosecond is still resolvable.
func waitOne(lim *rate.Limiter, r float64, now time.Time, tokens float64) time.Duration {
	if tokens >= 1 {
		return 0
	}
	d := max(tokenDuration(1-tokens, r), 1)
	for i := 0; i < 16 && d < math.MaxInt64 && !allowsAt(lim, now.Add(d)); i++ {
		d++
	}
	for i := 0; i < 16 && d > 1 && allowsAt(lim, now.Add(d-1)); i++ {
		d--
	}
	return d
}

// tokenDuration is how long rate r takes to add tokens, rounded up to the
// nanosecond and capped at the largest Duration.
func tokenDuration(tokens, r float64) time.Duration {
	ns := math.Ceil(tokens / r * float64(time.Second))
	if ns >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(ns)
}
