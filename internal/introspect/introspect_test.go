package introspect

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/bolt"
	"github.com/tokengw/tokengw/internal/store/memory"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// counting wraps the real store to count lookups (not a mock: it forwards).
type counting struct {
	Tokens
	mu   sync.Mutex
	n    int
	fail bool
}

func (c *counting) Token(ctx context.Context, h []byte) (store.Token, error) {
	c.mu.Lock()
	c.n++
	fail := c.fail
	c.mu.Unlock()
	if fail {
		return store.Token{}, fmt.Errorf("down: %w", store.ErrUnavailable)
	}
	return c.Tokens.Token(ctx, h)
}

func setup(t testing.TB) (*clock, *memory.Store, *counting, *Cache) {
	clk := &clock{t: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)}
	mem := memory.New(memory.Options{Now: clk.Now})
	cnt := &counting{Tokens: mem}
	c, err := New(Options{Store: cnt, LocalTTL: 5 * time.Second, Now: clk.Now, MaxEntries: 4})
	if err != nil {
		t.Fatal(err)
	}
	return clk, mem, cnt, c
}

func issue(t testing.TB, mem *memory.Store, now time.Time, name string, ttl time.Duration) []byte {
	h := sha256.Sum256([]byte(name))
	if _, _, err := mem.Issue(context.Background(), store.Token{Hash: h[:], ClientID: "c1", Scope: "read", IssuedAt: now, ExpiresAt: now.Add(ttl)}, nil); err != nil {
		t.Fatal(err)
	}
	return h[:]
}

func TestLookup(t *testing.T) {
	clk, mem, cnt, c := setup(t)
	live := issue(t, mem, clk.Now(), "live", time.Hour)
	short := issue(t, mem, clk.Now(), "short", 10*time.Second)
	unknown := sha256.Sum256([]byte("unknown"))

	info, ok, err := c.Lookup(context.Background(), live)
	if err != nil || !ok || info.ClientID != "c1" || info.Scope != "read" {
		t.Fatalf("live: %+v %v %v", info, ok, err)
	}
	if _, ok, _ := c.Lookup(context.Background(), unknown[:]); ok {
		t.Fatal("unknown token active")
	}
	// A second lookup within local_ttl is a cache hit.
	c.Lookup(context.Background(), live)
	if c.Hits() != 1 || cnt.n != 2 {
		t.Fatalf("hits %d, store lookups %d", c.Hits(), cnt.n)
	}
	// Unknown tokens are not cached.
	if c.Len() != 1 {
		t.Fatalf("cache len %d, want 1", c.Len())
	}
	// Expiry is exact, even inside local_ttl.
	c.Lookup(context.Background(), short)
	clk.Advance(10 * time.Second)
	if _, ok, _ := c.Lookup(context.Background(), short); ok {
		t.Fatal("expired token active")
	}
}

func TestRevokedElsewhereWithinLocalTTL(t *testing.T) {
	clk, mem, _, c := setup(t)
	h := issue(t, mem, clk.Now(), "t", time.Hour)
	c.Lookup(context.Background(), h)
	if err := mem.Revoke(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	clk.Advance(4 * time.Second)
	if _, ok, _ := c.Lookup(context.Background(), h); !ok {
		t.Fatal("cached answer dropped before local_ttl")
	}
	clk.Advance(time.Second)
	if _, ok, _ := c.Lookup(context.Background(), h); ok {
		t.Fatal("revoked token active after local_ttl")
	}
}

func TestForgetAndStoreErrors(t *testing.T) {
	clk, mem, cnt, c := setup(t)
	h := issue(t, mem, clk.Now(), "t", time.Hour)
	c.Lookup(context.Background(), h)
	mem.Revoke(context.Background(), h)
	c.Forget(h)
	if _, ok, _ := c.Lookup(context.Background(), h); ok {
		t.Fatal("forgotten revoked token active")
	}
	cnt.fail = true
	h2 := issue(t, mem, clk.Now(), "t2", time.Hour)
	if _, _, err := c.Lookup(context.Background(), h2); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("store down: err = %v", err)
	}
}

func TestBounded(t *testing.T) {
	clk, mem, _, c := setup(t)
	for i := range 20 {
		c.Lookup(context.Background(), issue(t, mem, clk.Now(), fmt.Sprint(i), time.Hour))
		if c.Len() > 4 {
			t.Fatalf("cache len %d > 4", c.Len())
		}
	}
}

// BenchmarkLookup compares a cache hit with a cold lookup in the memory
// store (the cheapest store: a lower bound for the ratio) and in the
// embedded bolt store.
//
//	go test -run '^$' -bench BenchmarkLookup -benchmem ./internal/introspect/
func BenchmarkLookup(b *testing.B) {
	b.Run("cold-bolt", func(b *testing.B) {
		clk := &clock{t: time.Now()}
		db, err := bolt.Open(filepath.Join(b.TempDir(), "t.db"), bolt.Options{Now: clk.Now})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		c, _ := New(Options{Store: db, LocalTTL: 0, Now: clk.Now})
		h := sha256.Sum256([]byte("t"))
		if _, _, err := db.Issue(context.Background(), store.Token{Hash: h[:], ClientID: "c1", Scope: "read", IssuedAt: clk.Now(), ExpiresAt: clk.Now().Add(time.Hour)}, nil); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if _, ok, _ := c.Lookup(context.Background(), h[:]); !ok {
				b.Fatal("inactive")
			}
		}
	})
	for _, mode := range []string{"hit", "cold"} {
		b.Run(mode, func(b *testing.B) {
			clk, mem, _, c := setup(b)
			c.opts.MaxEntries = 1 << 20
			if mode == "cold" {
				c.opts.LocalTTL = 0
			}
			h := issue(b, mem, clk.Now(), "t", time.Hour)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, ok, _ := c.Lookup(context.Background(), h); !ok {
					b.Fatal("inactive")
				}
			}
		})
	}
}

// gated is the real store whose Token lookups, once armed, pause after
// reading until released: the fault hook of the in-flight revocation race.
type gated struct {
	Tokens
	mu      sync.Mutex
	read    chan struct{} // receives when a gated lookup has read the store
	release chan struct{}
}

func (g *gated) arm() (read, release chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.read, g.release = make(chan struct{}), make(chan struct{})
	return g.read, g.release
}

func (g *gated) Token(ctx context.Context, h []byte) (store.Token, error) {
	tok, err := g.Tokens.Token(ctx, h)
	g.mu.Lock()
	read, release := g.read, g.release
	g.read, g.release = nil, nil
	g.mu.Unlock()
	if read != nil {
		read <- struct{}{}
		<-release
	}
	return tok, err
}

// TestRevocationDuringLookupWins: a revocation (Forget) or a revoke-all
// (ForgetClient) that lands after a lookup read the live token from the
// store, but before it cached it, is not undone: the next lookup asks the
// store again and says inactive.
func TestRevocationDuringLookupWins(t *testing.T) {
	for _, all := range []bool{false, true} {
		clk := &clock{t: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)}
		mem := memory.New(memory.Options{Now: clk.Now})
		g := &gated{Tokens: mem}
		c, err := New(Options{Store: g, LocalTTL: time.Hour, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		h := issue(t, mem, clk.Now(), fmt.Sprintf("tok-%v", all), time.Hour)
		read, release := g.arm()
		done := make(chan bool)
		go func() {
			_, active, _ := c.Lookup(context.Background(), h)
			done <- active
		}()
		<-read // the lookup has read the live token
		if err := mem.Revoke(context.Background(), h); err != nil {
			t.Fatal(err)
		}
		if all {
			c.ForgetClient("c1")
		} else {
			c.Forget(h)
		}
		close(release)
		if !<-done {
			t.Fatal("the in-flight lookup read before the revocation: it answers active")
		}
		if _, active, err := c.Lookup(context.Background(), h); err != nil || active {
			t.Fatalf("all=%v: after the revocation: active=%v err=%v, want inactive (the stale answer was cached)", all, active, err)
		}
	}
}

// TestEvictionKeepsTheBound: a full cache evicts the oldest insertion, one
// at a time, and replaced or forgotten entries do not distort the order.
func TestEvictionKeepsTheBound(t *testing.T) {
	clk, mem, cnt, c := setup(t) // MaxEntries 4
	var hashes [][]byte
	for i := range 10 {
		hashes = append(hashes, issue(t, mem, clk.Now(), fmt.Sprintf("e-%d", i), time.Hour))
	}
	ctx := context.Background()
	for _, h := range hashes[:4] {
		c.Lookup(ctx, h)
	}
	c.Forget(hashes[1])
	c.Lookup(ctx, hashes[4]) // room after the Forget: nothing evicted
	c.Lookup(ctx, hashes[5]) // full: the oldest live one (0) goes
	if n := c.Len(); n != 4 {
		t.Fatalf("Len = %d, want 4", n)
	}
	before := cnt.n
	for _, i := range []int{2, 3, 4, 5} {
		c.Lookup(ctx, hashes[i])
	}
	if cnt.n != before {
		t.Fatalf("entries 2..5 should all be cached; %d store lookups", cnt.n-before)
	}
	c.Lookup(ctx, hashes[0])
	if cnt.n != before+1 {
		t.Fatal("entry 0 should have been evicted")
	}
	for i := 6; i < 10; i++ { // many insertions keep the queue bounded
		for range 5 {
			c.Forget(hashes[i])
			c.Lookup(ctx, hashes[i])
		}
	}
	if c.Len() != 4 || len(c.order) > 2*4+1 {
		t.Fatalf("Len %d, queue %d", c.Len(), len(c.order))
	}
}
