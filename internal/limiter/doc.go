// Package limiter holds tokengw's rate limits: a token bucket per consumer,
// so that one client hammering the token endpoint gets 429 while every other
// client is unaffected, and a token bucket per caller IP that is spent only by
// failed client authentications, so that secret guessing is throttled.
//
// # Buckets
//
// A [Set] keeps one golang.org/x/time/rate.Limiter per key (a client id, or a
// caller IP from [ClientIP]). The caller passes the [Limit] that applies to
// the key on every call, a default or a per-client override; when the Limit
// for a key changes (an operator edited the client) the stored bucket is
// re-rated in place, keeping the tokens it has. A Limit whose Rate is 0 is
// unlimited and never touches the map.
//
// Consumers use [Set.Allow], which takes one token or reports how long until
// one is there. Failed authentication uses the pair [Set.Blocked], asked
// before authenticating and never consuming, and [Set.Strike], which takes a
// token after a failed authentication: once an IP has spent its burst of
// failures its requests get 429 until the bucket refills. Use one Set per
// purpose, so that a flood of IPs cannot evict consumer buckets.
//
// # Memory bound
//
// Keys are spread over shards, each with a mutex, a map and a CLOCK ring
// (an approximation of least-recently-used order that costs a bit per use
// instead of a list move), and each with a fixed share of [Options].MaxKeys,
// so the number of entries never exceeds MaxKeys however many distinct keys
// arrive. A bucket that has refilled completely is indistinguishable from
// one that was never created, so such buckets are evicted freely: the one at
// the back of the ring whenever a key is inserted, any that the eviction
// hand passes, and all of them on [Set.Sweep]. Only when a shard is full and
// the hand finds no refilled bucket is a partly spent one evicted (the first
// not used since the hand last passed); its key starts again with a full
// bucket. [Set.ForcedEvictions] counts those, so an operator can see that
// MaxKeys is too small, or that someone is cycling through keys.
//
// # Headers
//
// A 429 carries Retry-After in whole seconds, rounded up and at least 1
// ([RetryAfterSeconds]). Successful responses may carry the fields of
// draft-ietf-httpapi-ratelimit-headers-10 (the structured-field format of
// drafts 08 and later, not the older RateLimit-Limit/-Remaining/-Reset trio);
// [Decision.SetHeaders] writes, for a bucket of burst 5 refilled at 0.5/s
// with 3 tokens left:
//
//	RateLimit-Policy: "default";q=5;w=10
//	RateLimit: "default";r=3;t=2
//
// q is the burst, w the seconds an empty bucket takes to refill (Burst/Rate,
// rounded up), r the whole tokens left, and t the seconds until the next
// token arrives (rounded up; omitted when the bucket is full, since no more
// quota will come).
//
// # Concurrency
//
// Every method of [Set] is safe for concurrent use. All operations on one
// key are serialized by its shard's mutex, so a decision and the bucket
// update it implies are atomic. The counters are atomic and may be read at
// any time. A Set starts no goroutines and needs no Close.
//
// # Clock
//
// Time comes from [Options].Now (time.Now by default), so tests move a fake
// clock instead of sleeping.
package limiter
