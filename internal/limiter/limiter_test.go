package limiter

import (
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a manually advanced clock; tests never sleep.
type fakeClock struct {
	ns atomic.Int64 // nanoseconds after base
}

var base = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newClock() *fakeClock { return &fakeClock{} }

func (c *fakeClock) Now() time.Time          { return base.Add(time.Duration(c.ns.Load())) }
func (c *fakeClock) Set(t time.Time)         { c.ns.Store(int64(t.Sub(base))) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func newSet(t testing.TB, opts Options) (*Set[string], *fakeClock) {
	t.Helper()
	c := newClock()
	if opts.Now == nil {
		opts.Now = c.Now
	}
	s, err := New[string](opts)
	if err != nil {
		t.Fatalf("New(%+v): %v", opts, err)
	}
	return s, c
}

func TestAllowBurstThenReject(t *testing.T) {
	s, clk := newSet(t, Options{})
	l := Limit{Rate: 1, Burst: 5}
	t0 := clk.Now()

	for i := range 9 {
		d := s.Allow("alice", l)
		if i < 5 {
			if !d.Allowed {
				t.Fatalf("request %d: rejected, want allowed", i+1)
			}
			if want := 4 - i; d.Remaining != want {
				t.Errorf("request %d: Remaining = %d, want %d", i+1, d.Remaining, want)
			}
			if d.RetryAfter != 0 {
				t.Errorf("request %d: RetryAfter = %v on an allowed request", i+1, d.RetryAfter)
			}
			if d.Reset != time.Second {
				t.Errorf("request %d: Reset = %v, want 1s", i+1, d.Reset)
			}
			continue
		}
		if d.Allowed {
			t.Fatalf("request %d: allowed, want rejected", i+1)
		}
		if d.RetryAfter != time.Second || d.Reset != time.Second || d.Remaining != 0 {
			t.Errorf("request %d: RetryAfter %v Reset %v Remaining %d, want 1s 1s 0",
				i+1, d.RetryAfter, d.Reset, d.Remaining)
		}
		if got := RetryAfterSeconds(d.RetryAfter); got != 1 {
			t.Errorf("request %d: RetryAfterSeconds = %d, want 1", i+1, got)
		}
	}
	if got := s.RejectedConsumer(); got != 4 {
		t.Errorf("RejectedConsumer = %d, want 4", got)
	}

	// Another consumer is unaffected.
	if d := s.Allow("bob", l); !d.Allowed || d.Remaining != 4 {
		t.Errorf("bob: %+v, want allowed with 4 remaining", d)
	}

	// Not a nanosecond early ...
	clk.Set(t0.Add(time.Second - 1))
	if d := s.Allow("alice", l); d.Allowed || d.RetryAfter != 1 {
		t.Errorf("alice at t0+1s-1ns: %+v, want rejected with RetryAfter 1ns", d)
	}
	// ... but exactly on time.
	clk.Set(t0.Add(time.Second))
	if d := s.Allow("alice", l); !d.Allowed || d.Remaining != 0 {
		t.Errorf("alice at t0+1s: %+v, want allowed with 0 remaining", d)
	}
}

// TestRetryAfterExact checks, over rates and staggered arrival times whose
// waits are not whole seconds, that RetryAfter is the first nanosecond at
// which the bucket allows again.
func TestRetryAfterExact(t *testing.T) {
	t.Run("staggered", func(t *testing.T) {
		s, clk := newSet(t, Options{})
		l := Limit{Rate: 1, Burst: 5}
		t0 := clk.Now()
		var last Decision
		for i := range 9 {
			clk.Set(t0.Add(time.Duration(i) * 100 * time.Millisecond))
			last = s.Allow("k", l)
			if last.Allowed != (i < 5) {
				t.Fatalf("request %d at +%dms: Allowed = %v", i+1, i*100, last.Allowed)
			}
		}
		// Five tokens spent by t0+400ms with 0.4 refilled; at t0+800ms the
		// bucket holds 0.8, so the next token is 200ms away.
		if d := last.RetryAfter - 200*time.Millisecond; d < -time.Microsecond || d > time.Microsecond {
			t.Fatalf("RetryAfter = %v, want 200ms", last.RetryAfter)
		}
		if got := RetryAfterSeconds(last.RetryAfter); got != 1 {
			t.Errorf("RetryAfterSeconds(%v) = %d, want 1", last.RetryAfter, got)
		}
		at := clk.Now().Add(last.RetryAfter)
		clk.Set(at.Add(-1))
		if d := s.Allow("k", l); d.Allowed {
			t.Fatalf("allowed 1ns before RetryAfter")
		}
		clk.Set(at)
		if d := s.Allow("k", l); !d.Allowed {
			t.Fatalf("rejected at RetryAfter: %+v", d)
		}
	})

	rates := []float64{0.05, 0.3, 0.5, 1, 3, 7, 1000, 123456}
	offsets := []time.Duration{0, 1, 999, 123456789, 333333333, 777 * time.Millisecond}
	for _, r := range rates {
		for _, off := range offsets {
			t.Run(strconv.FormatFloat(r, 'g', -1, 64)+"/"+off.String(), func(t *testing.T) {
				s, clk := newSet(t, Options{})
				l := Limit{Rate: r, Burst: 2}
				s.Allow("k", l)
				s.Allow("k", l)
				clk.Advance(off)
				d := s.Allow("k", l)
				if d.Allowed {
					// The offset refilled a token already; nothing to check.
					return
				}
				if d.RetryAfter <= 0 {
					t.Fatalf("rejected with RetryAfter %v", d.RetryAfter)
				}
				want := time.Duration(math.Ceil(float64(time.Second)/r)) - off
				if diff := d.RetryAfter - want; diff < -2 || diff > 2 {
					t.Errorf("RetryAfter = %v, want %v (±2ns)", d.RetryAfter, want)
				}
				at := clk.Now().Add(d.RetryAfter)
				if d.RetryAfter > 1 {
					clk.Set(at.Add(-1))
					if blocked, _ := s.Blocked("k", l); !blocked {
						t.Errorf("Blocked false 1ns before RetryAfter")
					}
					if d := s.Allow("k", l); d.Allowed {
						t.Fatalf("allowed 1ns before RetryAfter %v", d.RetryAfter)
					}
				}
				clk.Set(at)
				if d := s.Allow("k", l); !d.Allowed {
					t.Fatalf("rejected at RetryAfter: %+v", d)
				}
			})
		}
	}
}

func TestStrikeBlocked(t *testing.T) {
	s, clk := newSet(t, Options{})
	l := Limit{Rate: 0.05, Burst: 3}
	const ip = "198.51.100.7"
	t0 := clk.Now()

	if blocked, wait := s.Blocked(ip, l); blocked || wait != 0 {
		t.Fatalf("Blocked before any strike = %v, %v", blocked, wait)
	}
	if n := s.Len(); n != 0 {
		t.Fatalf("Blocked created an entry: Len = %d", n)
	}
	for i := 1; i <= 6; i++ {
		d := s.Strike(ip, l)
		if d.Allowed != (i <= 3) {
			t.Errorf("strike %d: Allowed = %v", i, d.Allowed)
		}
		blocked, wait := s.Blocked(ip, l)
		if blocked != (i >= 3) {
			t.Fatalf("after strike %d: Blocked = %v", i, blocked)
		}
		if blocked && wait != 20*time.Second {
			t.Errorf("after strike %d: wait = %v, want 20s (extra strikes must not extend it)", i, wait)
		}
		if blocked {
			if got := RetryAfterSeconds(wait); got != 20 {
				t.Errorf("RetryAfterSeconds(%v) = %d, want 20", wait, got)
			}
		}
	}
	if got := s.RejectedFailedAuth(); got != 4 {
		t.Errorf("RejectedFailedAuth = %d, want 4 (strikes 3 to 6)", got)
	}
	if got := s.RejectedConsumer(); got != 0 {
		t.Errorf("RejectedConsumer = %d, want 0", got)
	}
	// Other IPs are unaffected.
	if blocked, _ := s.Blocked("203.0.113.9", l); blocked {
		t.Error("another IP is blocked")
	}

	clk.Set(t0.Add(20*time.Second - 1))
	if blocked, wait := s.Blocked(ip, l); !blocked || wait != 1 {
		t.Errorf("at t0+20s-1ns: Blocked = %v, %v; want true, 1ns", blocked, wait)
	}
	clk.Set(t0.Add(20 * time.Second))
	if blocked, wait := s.Blocked(ip, l); blocked {
		t.Errorf("at t0+20s: still blocked for %v", wait)
	}
	// One token back: the next failure blocks again for a full 20s.
	if d := s.Strike(ip, l); !d.Allowed || d.Remaining != 0 {
		t.Errorf("strike after refill: %+v", d)
	}
	if blocked, wait := s.Blocked(ip, l); !blocked || wait != 20*time.Second {
		t.Errorf("after refill and strike: Blocked = %v, %v; want true, 20s", blocked, wait)
	}
}

func TestFractionalRate(t *testing.T) {
	s, clk := newSet(t, Options{})
	l := Limit{Rate: 0.5, Burst: 5}

	s.Allow("k", l)
	d := s.Allow("k", l)
	if !d.Allowed || d.Remaining != 3 || d.Reset != 2*time.Second {
		t.Fatalf("second request: %+v, want allowed, 3 remaining, reset 2s", d)
	}
	for range 3 {
		s.Allow("k", l)
	}
	d = s.Allow("k", l)
	if d.Allowed || d.RetryAfter != 2*time.Second {
		t.Fatalf("sixth request: %+v, want rejected with RetryAfter 2s", d)
	}
	clk.Advance(time.Second)
	if d = s.Allow("k", l); d.Allowed || d.RetryAfter != time.Second {
		t.Fatalf("after 1s: %+v, want rejected with RetryAfter 1s", d)
	}
	clk.Advance(time.Second)
	if d = s.Allow("k", l); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after 2s: %+v, want allowed with 0 remaining", d)
	}
	// A long idle spell refills to the burst, never beyond.
	clk.Advance(time.Hour)
	if d = s.Allow("k", l); !d.Allowed || d.Remaining != 4 {
		t.Fatalf("after an hour: %+v, want allowed with 4 remaining", d)
	}
}

func TestUnlimited(t *testing.T) {
	s, _ := newSet(t, Options{})
	for _, l := range []Limit{{}, {Rate: 0, Burst: 5}, {Rate: math.Inf(1), Burst: 1}} {
		if !l.Unlimited() {
			t.Fatalf("%+v: Unlimited() = false", l)
		}
		for i := range 1000 {
			key := "k" + strconv.Itoa(i)
			if d := s.Allow(key, l); !d.Allowed || d.RetryAfter != 0 {
				t.Fatalf("Allow(%q, %+v) = %+v", key, l, d)
			}
			if d := s.Strike(key, l); !d.Allowed {
				t.Fatalf("Strike(%q, %+v) = %+v", key, l, d)
			}
			if blocked, _ := s.Blocked(key, l); blocked {
				t.Fatalf("Blocked(%q, %+v) = true", key, l)
			}
		}
	}
	if n := s.Len(); n != 0 {
		t.Errorf("Len = %d after unlimited calls, want 0", n)
	}
	if s.RejectedConsumer() != 0 || s.RejectedFailedAuth() != 0 {
		t.Error("unlimited calls counted rejections")
	}
}

func TestBurstBelowOne(t *testing.T) {
	s, _ := newSet(t, Options{})
	l := Limit{Rate: 1, Burst: 0}
	d := s.Allow("k", l)
	if !d.Allowed || d.Limit.Burst != 1 {
		t.Fatalf("first request with Burst 0: %+v, want allowed with Burst treated as 1", d)
	}
	if d := s.Allow("k", l); d.Allowed || d.RetryAfter != time.Second {
		t.Fatalf("second request: %+v, want rejected for 1s", d)
	}
}

func TestLimitChange(t *testing.T) {
	s, clk := newSet(t, Options{})
	slow := Limit{Rate: 0.01, Burst: 2}
	s.Allow("c", slow)
	s.Allow("c", slow)
	if d := s.Allow("c", slow); d.Allowed || d.RetryAfter != 100*time.Second {
		t.Fatalf("slow: %+v, want rejected for 100s", d)
	}

	// The operator raises the rate: the empty bucket now refills in 100ms.
	fast := Limit{Rate: 10, Burst: 2}
	if d := s.Allow("c", fast); d.Allowed || d.RetryAfter != 100*time.Millisecond {
		t.Fatalf("fast: %+v, want rejected for 100ms", d)
	}
	clk.Advance(100 * time.Millisecond)
	if d := s.Allow("c", fast); !d.Allowed {
		t.Fatalf("fast after 100ms: %+v, want allowed", d)
	}

	// Raising the burst keeps the tokens the bucket has (none) but lets it
	// fill further.
	big := Limit{Rate: 10, Burst: 10}
	if d := s.Allow("c", big); d.Allowed {
		t.Fatalf("big burst right away: %+v, want rejected (no tokens yet)", d)
	}
	clk.Advance(time.Hour)
	if d := s.Allow("c", big); !d.Allowed || d.Remaining != 9 || d.Limit != big {
		t.Fatalf("big burst after an hour: %+v, want allowed with 9 remaining", d)
	}

	// Lowering the burst caps the tokens at once.
	small := Limit{Rate: 10, Burst: 3}
	if d := s.Allow("c", small); !d.Allowed || d.Remaining != 2 {
		t.Fatalf("burst lowered to 3: %+v, want allowed with 2 remaining", d)
	}
	if n := s.Len(); n != 1 {
		t.Errorf("Len = %d, want 1 (one bucket re-rated in place)", n)
	}
}

// TestMemoryBoundMillionKeys feeds a million distinct keys, from as many
// goroutines as there are CPUs, through a Set bounded to 10,000 entries.
func TestMemoryBoundMillionKeys(t *testing.T) {
	const maxKeys = 10_000
	const keys = 1_000_000
	s, clk := newSet(t, Options{MaxKeys: maxKeys})
	l := Limit{Rate: 1, Burst: 5}
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	var overflow atomic.Int64
	for w := range workers {
		wg.Go(func() {
			buf := make([]byte, 0, 16)
			for i := w; i < keys; i += workers {
				buf = strconv.AppendInt(append(buf[:0], "client-"...), int64(i), 10)
				if d := s.Allow(string(buf), l); !d.Allowed {
					t.Errorf("key %d: first request rejected", i)
					return
				}
				if w != 0 || i%(50_000*workers) != 0 {
					continue
				}
				if n := s.Len(); n > maxKeys {
					overflow.Store(int64(n))
				}
				// Every other time let the buckets refill, so that both
				// eviction paths (refilled, and forced under pressure) run.
				if i%(100_000*workers) == 0 {
					clk.Advance(10 * time.Second)
				}
			}
		})
	}
	wg.Wait()
	if n := overflow.Load(); n != 0 {
		t.Fatalf("Len reached %d during the run, MaxKeys is %d", n, maxKeys)
	}
	n := s.Len()
	if n > maxKeys {
		t.Fatalf("Len = %d > MaxKeys %d", n, maxKeys)
	}
	if n < maxKeys*9/10 {
		t.Errorf("Len = %d: the shards hold far fewer than MaxKeys %d", n, maxKeys)
	}
	if s.ForcedEvictions() == 0 {
		t.Error("ForcedEvictions = 0, want > 0: most buckets were partly spent")
	}
	t.Logf("%d workers; Len %d, forced evictions %d", workers, n, s.ForcedEvictions())
}

// TestEvictionPrefersFullBuckets checks that a refilled bucket goes before a
// partly spent one, and that a spent bucket is evicted (and counted) only
// when nothing else can go, the one not used since the hand last passed.
func TestEvictionPrefersFullBuckets(t *testing.T) {
	s, clk := newSet(t, Options{MaxKeys: 2, Shards: 1})
	slow := Limit{Rate: 0.001, Burst: 2} // refills in 2000s
	fast := Limit{Rate: 100, Burst: 2}   // refills in 20ms

	s.Allow("fast", fast)
	s.Allow("slow", slow)
	clk.Advance(time.Second)
	// "fast" is at the back and full again: it goes, "slow" stays.
	s.Allow("new", slow)
	if s.Len() != 2 || s.ForcedEvictions() != 0 {
		t.Fatalf("Len %d, ForcedEvictions %d; want 2, 0", s.Len(), s.ForcedEvictions())
	}
	if d := s.Allow("slow", slow); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("slow lost its state: %+v", d)
	}
	// Now both entries are spent: "slow" was used again, so "new" is
	// evicted under pressure and counted.
	s.Allow("third", slow)
	if s.Len() != 2 || s.ForcedEvictions() != 1 {
		t.Fatalf("Len %d, ForcedEvictions %d; want 2, 1", s.Len(), s.ForcedEvictions())
	}
	if d := s.Allow("slow", slow); d.Allowed {
		t.Fatalf("slow (recently used) was evicted: %+v", d)
	}

	// A refilled bucket further from the back is still found: the hand
	// gives the used entry at the back a second chance and moves on.
	s2, clk2 := newSet(t, Options{MaxKeys: 2, Shards: 1})
	s2.Allow("a", slow)
	s2.Allow("b", fast)
	s2.Allow("a", slow) // a: at the back, used, spent
	clk2.Advance(time.Second)
	s2.Allow("c", slow) // b: refilled, evicted without force
	if s2.Len() != 2 || s2.ForcedEvictions() != 0 {
		t.Fatalf("Len %d, ForcedEvictions %d; want 2, 0", s2.Len(), s2.ForcedEvictions())
	}
	if d := s2.Allow("a", slow); d.Allowed {
		t.Fatalf("a lost its state: %+v", d)
	}
}

func TestSweep(t *testing.T) {
	s, clk := newSet(t, Options{})
	fast := Limit{Rate: 10, Burst: 1}
	slow := Limit{Rate: 0.01, Burst: 1}
	for i := range 100 {
		s.Allow("fast"+strconv.Itoa(i), fast)
		s.Allow("slow"+strconv.Itoa(i), slow)
	}
	if n := s.Sweep(); n != 0 {
		t.Fatalf("Sweep right away removed %d, want 0", n)
	}
	clk.Advance(time.Second)
	if n := s.Sweep(); n != 100 {
		t.Fatalf("Sweep removed %d, want the 100 refilled buckets", n)
	}
	if n := s.Len(); n != 100 {
		t.Fatalf("Len = %d, want 100", n)
	}
	if d := s.Allow("slow7", slow); d.Allowed {
		t.Fatalf("a spent bucket was swept: %+v", d)
	}
}

func TestConcurrentAllow(t *testing.T) {
	s, _ := newSet(t, Options{Shards: 4})
	l := Limit{Rate: 1, Burst: 100}
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := map[string]int{}
	for g := range 8 {
		wg.Go(func() {
			local := map[string]int{}
			for i := range 500 {
				key := "k" + strconv.Itoa((g+i)%4)
				if s.Allow(key, l).Allowed {
					local[key]++
				}
				s.Blocked(key, l)
			}
			mu.Lock()
			for k, n := range local {
				allowed[k] += n
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	for k, n := range allowed {
		if n != 100 {
			t.Errorf("%s: %d allowed with a frozen clock, want exactly the burst of 100", k, n)
		}
	}
	if got, want := s.RejectedConsumer(), uint64(8*500-4*100); got != want {
		t.Errorf("RejectedConsumer = %d, want %d", got, want)
	}
}

// TestConcurrentEviction runs every method at once on a small Set whose
// keys keep evicting each other, for the race detector and the bound.
func TestConcurrentEviction(t *testing.T) {
	const maxKeys = 64
	s, clk := newSet(t, Options{MaxKeys: maxKeys, Shards: 4})
	limits := []Limit{{Rate: 1, Burst: 2}, {Rate: 100, Burst: 3}, {Rate: 0.05, Burst: 3}}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 5000 {
				key := "k" + strconv.Itoa((i*7+g*13)%1000)
				l := limits[(i+g)%len(limits)]
				switch i % 4 {
				case 0:
					s.Allow(key, l)
				case 1:
					s.Strike(key, l)
				case 2:
					s.Blocked(key, l)
				case 3:
					if n := s.Len(); n > maxKeys {
						t.Errorf("Len = %d > %d", n, maxKeys)
						return
					}
					if i%100 == 3 {
						clk.Advance(50 * time.Millisecond)
						s.Sweep()
					}
				}
			}
		})
	}
	wg.Wait()
	if n := s.Len(); n > maxKeys {
		t.Fatalf("Len = %d > %d", n, maxKeys)
	}
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name       string
		opts       Options
		wantErr    string
		wantShards int
	}{
		{name: "zero value", opts: Options{}, wantShards: DefaultShards},
		{name: "shards capped by max keys", opts: Options{MaxKeys: 3, Shards: 16}, wantShards: 3},
		{name: "explicit", opts: Options{MaxKeys: 1000, Shards: 7}, wantShards: 7},
		{name: "negative max keys", opts: Options{MaxKeys: -1}, wantErr: "limiter: max keys"},
		{name: "negative shards", opts: Options{Shards: -2}, wantErr: "limiter: shards"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New[string](tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want prefix %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(s.shards) != tc.wantShards {
				t.Errorf("shards = %d, want %d", len(s.shards), tc.wantShards)
			}
			maxKeys := tc.opts.MaxKeys
			if maxKeys == 0 {
				maxKeys = DefaultMaxKeys
			}
			total := 0
			for i := range s.shards {
				total += s.shards[i].max
			}
			if total != maxKeys {
				t.Errorf("shard bounds add up to %d, want MaxKeys %d", total, maxKeys)
			}
		})
	}
}

func TestLimitValidate(t *testing.T) {
	for _, tc := range []struct {
		l  Limit
		ok bool
	}{
		{Limit{}, true},
		{Limit{Rate: 0, Burst: 10}, true},
		{Limit{Rate: 1, Burst: 5}, true},
		{Limit{Rate: 0.05, Burst: 3}, true},
		{Limit{Rate: 1, Burst: 0}, false},
		{Limit{Rate: -1, Burst: 5}, false},
		{Limit{Rate: math.NaN(), Burst: 5}, false},
		{Limit{Rate: math.Inf(1), Burst: 5}, false},
		{Limit{Rate: 0, Burst: -1}, false},
	} {
		err := tc.l.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%+v.Validate() = %v, want ok=%v", tc.l, err, tc.ok)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "limiter: ") {
			t.Errorf("error %q lacks the limiter: prefix", err)
		}
	}
}

// newBenchSet returns a Set holding the given keys, each with a bucket.
func newBenchSet(b *testing.B, n int, l Limit, now func() time.Time) (*Set[string], []string) {
	b.Helper()
	s, err := New[string](Options{MaxKeys: 2 * n, Now: now})
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "client-" + strconv.Itoa(i)
		s.Allow(keys[i], l)
	}
	if s.Len() != n {
		b.Fatalf("Len = %d, want %d", s.Len(), n)
	}
	return s, keys
}

// benchLimit never runs dry during a benchmark (a huge burst) and never
// refills completely (a slow rate), so every key stays in the Set and every
// request is allowed.
var benchLimit = Limit{Rate: 1, Burst: 1 << 40}

// BenchmarkAllowParallel measures Allow on existing keys (the common case:
// a known consumer within its limit) with the real clock.
func BenchmarkAllowParallel(b *testing.B) {
	benchAllow(b, benchLimit, time.Now)
}

// BenchmarkAllowParallelFixedClock is the same without time.Now's cost.
func BenchmarkAllowParallelFixedClock(b *testing.B) {
	t0 := time.Now()
	benchAllow(b, benchLimit, func() time.Time { return t0 })
}

// BenchmarkAllowParallelRejected measures the rejection path (consumers over
// their limit), which also computes the exact RetryAfter.
func BenchmarkAllowParallelRejected(b *testing.B) {
	benchAllow(b, Limit{Rate: 1e-3, Burst: 1}, time.Now)
}

func benchAllow(b *testing.B, l Limit, now func() time.Time) {
	s, keys := newBenchSet(b, 10_000, l, now)
	var seq sync.Mutex
	start := 0
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		seq.Lock()
		i := start
		start += 1237
		seq.Unlock()
		for pb.Next() {
			s.Allow(keys[i%len(keys)], l)
			i++
		}
	})
}

// TestTakeRefund: Take spends a token before the work and refuses on an
// empty bucket (counted); Refund gives one back, never beyond the burst,
// and does not recreate an evicted bucket.
func TestTakeRefund(t *testing.T) {
	s, clk := newSet(t, Options{})
	l := Limit{Rate: 0.05, Burst: 3}
	const ip = "198.51.100.8"
	for i := 1; i <= 3; i++ {
		if d := s.Take(ip, l); !d.Allowed || d.Remaining != 3-i {
			t.Fatalf("take %d: %+v", i, d)
		}
	}
	if d := s.Take(ip, l); d.Allowed || d.RetryAfter != 20*time.Second {
		t.Fatalf("take on an empty bucket: %+v", d)
	}
	if got := s.RejectedFailedAuth(); got != 1 {
		t.Fatalf("RejectedFailedAuth = %d, want 1", got)
	}
	s.Refund(ip, l) // the verification succeeded
	if d := s.Take(ip, l); !d.Allowed {
		t.Fatalf("take after a refund: %+v", d)
	}
	// Refunds beyond the burst are capped: three takes fill the bucket
	// again, and a fourth refund adds nothing.
	for range 4 {
		s.Refund(ip, l)
	}
	for i := 1; i <= 3; i++ {
		if d := s.Take(ip, l); !d.Allowed {
			t.Fatalf("take %d after refunds: %+v", i, d)
		}
	}
	if d := s.Take(ip, l); d.Allowed {
		t.Fatalf("a refund went beyond the burst: %+v", d)
	}
	// A full bucket is swept; refunding then creates nothing.
	clk.Set(clk.Now().Add(time.Hour))
	s.Sweep()
	s.Refund(ip, l)
	if n := s.Len(); n != 0 {
		t.Fatalf("Refund recreated a bucket: Len = %d", n)
	}
}

// TestBlockedAfterBucketsComeAndGo holds Blocked's lock-free answer for an
// empty Set to the count it reads: buckets made by Strike, evicted for
// room, swept when full, and made again must leave the count equal to Len,
// and a struck key is blocked whenever its bucket is there.
func TestBlockedAfterBucketsComeAndGo(t *testing.T) {
	s, clk := newSet(t, Options{MaxKeys: 8, Shards: 2})
	l := Limit{Rate: 1, Burst: 1}
	check := func(when string) {
		t.Helper()
		if got, want := s.buckets.Load(), int64(s.Len()); got != want {
			t.Fatalf("%s: bucket count %d, Len %d", when, got, want)
		}
	}
	if blocked, _ := s.Blocked("a", l); blocked {
		t.Fatal("an empty set blocked a caller")
	}
	s.Strike("a", l)
	check("one strike")
	if blocked, wait := s.Blocked("a", l); !blocked || wait != time.Second {
		t.Fatalf("struck key: blocked=%v wait=%v, want true 1s", blocked, wait)
	}
	for i := range 50 { // far past MaxKeys: evictions make room
		s.Strike("k"+strconv.Itoa(i), l)
	}
	check("after evictions")
	clk.Advance(2 * time.Second)
	if n := s.Sweep(); n == 0 {
		t.Fatal("Sweep removed nothing")
	}
	check("after sweep")
	if s.buckets.Load() != 0 {
		t.Fatalf("bucket count %d after every bucket refilled and was swept", s.buckets.Load())
	}
	s.Strike("a", l)
	if blocked, _ := s.Blocked("a", l); !blocked {
		t.Fatal("a key struck again after a sweep is not blocked")
	}
	s.Take("b", l)
	s.Refund("b", l)
	check("take and refund")
	if n := s.Len(); n != 1 {
		t.Fatalf("Len = %d after a refunded Take, want 1 (a's spent bucket): b's bucket, full again, was kept", n)
	}
}
