package clients_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/clientauth"
	"github.com/tokengw/tokengw/internal/clients"
	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/memory"
)

// countingClients is a real memory store that counts the Client lookups
// reaching it and, when gate is set, holds each one until released.
type countingClients struct {
	*memory.Store
	calls   atomic.Int64
	mu      sync.Mutex
	entered chan struct{} // receives when a gated lookup starts
	release chan struct{} // a gated lookup returns when this is closed
}

func (c *countingClients) Client(ctx context.Context, id string) (store.Client, error) {
	c.calls.Add(1)
	c.mu.Lock()
	entered, release := c.entered, c.release
	c.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
		<-release
	}
	return c.Store.Client(ctx, id)
}

func (c *countingClients) gate() (entered, release chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entered, c.release = make(chan struct{}), make(chan struct{})
	return c.entered, c.release
}

func (c *countingClients) ungate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entered, c.release = nil, nil
}

func newCounting(clk *clock) *countingClients {
	return &countingClients{Store: memory.New(memory.Options{Now: clk.Now})}
}

func mustRegistry(t *testing.T, static []store.Client, st store.Clients, opts clients.RegistryOptions) *clients.Registry {
	t.Helper()
	r, err := clients.NewRegistry(static, st, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRegistryRefreshBound: a change made in the store by someone else
// (another replica, the CLI) is seen exactly when the refresh bound has
// passed, for new, changed and removed clients alike, and not a moment
// before; in between, lookups do not reach the store.
func TestRegistryRefreshBound(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	st := newCounting(clk)
	const bound = 5 * time.Second
	reg := mustRegistry(t, nil, st, clients.RegistryOptions{Refresh: bound, Now: clk.Now})

	// Unknown: cached as unknown for the bound.
	if _, err := reg.Client(ctx, "svc"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	if err := st.CreateClient(ctx, store.Client{ID: "svc", SecretHash: "$h1", Scopes: []string{"read"}}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(bound - time.Millisecond)
	if _, err := reg.Client(ctx, "svc"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("within the bound a negative answer is kept: %v", err)
	}
	if n := st.calls.Load(); n != 1 {
		t.Fatalf("store lookups = %d, want 1", n)
	}
	clk.Advance(time.Millisecond)
	c, err := reg.Client(ctx, "svc")
	if err != nil || c.SecretHash != "$h1" {
		t.Fatalf("after the bound: %+v %v", c, err)
	}

	// Changed: the old registration until the bound, then the new one.
	if err := st.UpdateClient(ctx, store.Client{ID: "svc", SecretHash: "$h2", Scopes: []string{"read"}}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if c, _ := reg.Client(ctx, "svc"); c.SecretHash != "$h1" {
			t.Fatalf("changed before the bound: %+v", c)
		}
	}
	if n := st.calls.Load(); n != 2 {
		t.Fatalf("store lookups = %d, want 2: hits must not reach the store", n)
	}
	clk.Advance(bound)
	if c, _ := reg.Client(ctx, "svc"); c.SecretHash != "$h2" {
		t.Fatalf("after the bound: %+v", c)
	}

	// Removed: still answered until the bound, then unknown.
	if err := st.DeleteClient(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(bound - time.Millisecond)
	if _, err := reg.Client(ctx, "svc"); err != nil {
		t.Fatalf("removed, within the bound: %v", err)
	}
	clk.Advance(time.Millisecond)
	if _, err := reg.Client(ctx, "svc"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("removed, after the bound: %v", err)
	}
}

// TestRegistryInvalidate: a change made on this replica is seen at once.
func TestRegistryInvalidate(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	st := newCounting(clk)
	reg := mustRegistry(t, nil, st, clients.RegistryOptions{Refresh: clients.DefaultClientRefresh, Now: clk.Now})
	if _, err := reg.Client(ctx, "svc"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	st.CreateClient(ctx, store.Client{ID: "svc", SecretHash: "$h1"})
	reg.Invalidate("svc")
	if c, err := reg.Client(ctx, "svc"); err != nil || c.SecretHash != "$h1" {
		t.Fatalf("after Invalidate: %+v %v", c, err)
	}
	st.UpdateClient(ctx, store.Client{ID: "svc", SecretHash: "$h2"}, time.Time{})
	reg.Invalidate("svc")
	if c, _ := reg.Client(ctx, "svc"); c.SecretHash != "$h2" {
		t.Fatalf("after Invalidate: %+v", c)
	}
	st.DeleteClient(ctx, "svc")
	reg.Invalidate("svc")
	if _, err := reg.Client(ctx, "svc"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after delete + Invalidate: %v", err)
	}
}

// TestRegistryInvalidateDuringLookup: a lookup that read the store before an
// invalidation does not cache what it read.
func TestRegistryInvalidateDuringLookup(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	st := newCounting(clk)
	reg := mustRegistry(t, nil, st, clients.RegistryOptions{Refresh: clients.DefaultClientRefresh, Now: clk.Now})
	st.CreateClient(ctx, store.Client{ID: "svc", SecretHash: "$old"})

	entered, release := st.gate()
	done := make(chan store.Client)
	go func() {
		c, _ := reg.Client(ctx, "svc")
		done <- c
	}()
	<-entered // the lookup began, and is held before it reads the store
	st.ungate()
	// Change and invalidate while it is in flight: whatever it reads, it
	// must not cache, since it began before the invalidation.
	st.UpdateClient(ctx, store.Client{ID: "svc", SecretHash: "$new"}, time.Time{})
	reg.Invalidate("svc")
	close(release)
	<-done
	if c, _ := reg.Client(ctx, "svc"); c.SecretHash != "$new" {
		t.Fatalf("after Invalidate: %+v", c)
	}
	if n := st.calls.Load(); n != 2 {
		t.Fatalf("store lookups = %d, want 2: the in-flight answer must not be cached", n)
	}
}

// TestRegistryUnknownFloodIsBounded: a flood of unknown ids keeps at most
// MaxEntries of them and does not evict known clients.
func TestRegistryUnknownFloodIsBounded(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	st := newCounting(clk)
	reg := mustRegistry(t, nil, st, clients.RegistryOptions{Refresh: clients.DefaultClientRefresh, MaxEntries: 50, Now: clk.Now})
	for i := range 20 {
		st.CreateClient(ctx, store.Client{ID: fmt.Sprintf("known-%d", i), SecretHash: "$h"})
		if _, err := reg.Client(ctx, fmt.Sprintf("known-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5000 {
		if _, err := reg.Client(ctx, fmt.Sprintf("unknown-%d", i)); !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
	}
	known, unknown := reg.CachedEntries()
	if known != 20 || unknown > 50 || unknown < 1 {
		t.Fatalf("cached known=%d unknown=%d, want 20 and at most 50", known, unknown)
	}
	before := st.calls.Load()
	for i := range 20 {
		reg.Client(ctx, fmt.Sprintf("known-%d", i))
	}
	if st.calls.Load() != before {
		t.Fatal("known clients were evicted by the flood of unknown ids")
	}
	// Known entries have their own bound.
	for i := 20; i < 200; i++ {
		st.CreateClient(ctx, store.Client{ID: fmt.Sprintf("known-%d", i), SecretHash: "$h"})
		reg.Client(ctx, fmt.Sprintf("known-%d", i))
	}
	if known, _ := reg.CachedEntries(); known > 50 {
		t.Fatalf("cached known = %d, want at most 50", known)
	}
}

// TestRegistryNoCache: refresh off asks the store every time.
func TestRegistryNoCache(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	st := newCounting(clk)
	reg := mustRegistry(t, nil, st, clients.RegistryOptions{Refresh: 0, Now: clk.Now})
	st.CreateClient(ctx, store.Client{ID: "svc", SecretHash: "$h"})
	for range 5 {
		if _, err := reg.Client(ctx, "svc"); err != nil {
			t.Fatal(err)
		}
	}
	if n := st.calls.Load(); n != 5 {
		t.Fatalf("store lookups = %d, want 5", n)
	}
}

// TestRegistryStoreErrors: a store that cannot answer is unavailability
// (503 upstream), never "unknown client", and is not cached.
func TestRegistryStoreErrors(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	st := newCounting(clk)
	reg := mustRegistry(t, nil, st, clients.RegistryOptions{Refresh: clients.DefaultClientRefresh, Now: clk.Now})
	st.Store.Close()
	for range 2 {
		_, err := reg.Client(ctx, "svc")
		if !errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrNotFound) {
			t.Fatalf("closed store: %v", err)
		}
	}
	if n := st.calls.Load(); n != 2 {
		t.Fatalf("store lookups = %d, want 2 (errors are not cached)", n)
	}
}

// TestRegistryKeepsKnownClientsWhileStoreIsDown: a known client whose
// refresh falls due while the store cannot answer is still answered (the
// last answer, for another refresh bound); an unknown id is unavailability.
func TestRegistryKeepsKnownClientsWhileStoreIsDown(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	st := newCounting(clk)
	const bound = 5 * time.Second
	reg := mustRegistry(t, nil, st, clients.RegistryOptions{Refresh: bound, Now: clk.Now})
	st.CreateClient(ctx, store.Client{ID: "svc", SecretHash: "$h"})
	if _, err := reg.Client(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	st.Store.Close()
	clk.Advance(bound)
	for range 3 {
		if c, err := reg.Client(ctx, "svc"); err != nil || c.SecretHash != "$h" {
			t.Fatalf("known client with the store down: %+v, %v; want the last answer", c, err)
		}
	}
	if n := st.calls.Load(); n != 2 {
		t.Fatalf("store lookups = %d, want 2 (one failed re-read, then the kept answer for a refresh bound)", n)
	}
	if _, err := reg.Client(ctx, "other"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("unknown id with the store down: %v, want ErrUnavailable", err)
	}
}

// TestRegistryStaticFirst: configured clients never reach the store, and
// their fingerprints (and cached store clients') are the precomputed ones.
func TestRegistryStaticFirst(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	st := newCounting(clk)
	reg := mustRegistry(t, []store.Client{{ID: "demo", SecretHash: "$d", Scopes: []string{"write", "read"}}}, st,
		clients.RegistryOptions{Refresh: clients.DefaultClientRefresh, Now: clk.Now})
	c, err := reg.Client(ctx, "demo")
	if err != nil || strings.Join(c.Scopes, " ") != "read write" || st.calls.Load() != 0 {
		t.Fatalf("static: %+v %v, store calls %d", c, err, st.calls.Load())
	}
	if !reg.IsStatic("demo") || reg.IsStatic("svc") {
		t.Fatal("IsStatic")
	}
	st.CreateClient(ctx, store.Client{ID: "svc", SecretHash: "$s", Scopes: []string{"read"}, TokenTTL: time.Minute})
	sc, _ := reg.Client(ctx, "svc")
	for _, c := range []store.Client{c, sc} {
		if got, want := c.Fingerprint, clients.Fingerprint(c); got != want || got == "" {
			t.Fatalf("Fingerprint of %s = %q, want %s", c.ID, got, want)
		}
	}
	changed := sc
	changed.TokenTTL = time.Hour
	if clients.Fingerprint(changed) == sc.Fingerprint {
		t.Fatal("fingerprint ignores the lifetime")
	}
}

// TestCheckOverlap names the ids defined both in the configuration and in
// the store.
func TestCheckOverlap(t *testing.T) {
	ctx := context.Background()
	st := memory.New(memory.Options{})
	st.CreateClient(ctx, store.Client{ID: "demo", SecretHash: "$h"})
	st.CreateClient(ctx, store.Client{ID: "other", SecretHash: "$h"})
	reg := mustRegistry(t, []store.Client{{ID: "demo", SecretHash: "$d"}}, st, clients.RegistryOptions{Refresh: clients.DefaultClientRefresh})
	err := reg.CheckOverlap(ctx)
	if err == nil || !strings.Contains(err.Error(), `"demo"`) || !strings.Contains(err.Error(), "both") {
		t.Fatalf("CheckOverlap = %v", err)
	}
	reg = mustRegistry(t, []store.Client{{ID: "demo", SecretHash: "$d"}, {ID: "other", SecretHash: "$d"}}, st, clients.RegistryOptions{Refresh: clients.DefaultClientRefresh})
	if err := reg.CheckOverlap(ctx); err == nil || !strings.Contains(err.Error(), `"demo", "other"`) {
		t.Fatalf("CheckOverlap = %v", err)
	}
	reg = mustRegistry(t, []store.Client{{ID: "third", SecretHash: "$d"}}, st, clients.RegistryOptions{Refresh: clients.DefaultClientRefresh})
	if err := reg.CheckOverlap(ctx); err != nil {
		t.Fatalf("no overlap: %v", err)
	}
}

// clock is a manual clock: Now reads it, Advance moves it.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// lostAnswer is the real memory store whose UpdateClient applies the write
// and then reports it unavailable, as a timed-out or unknown-outcome write
// on a cluster does: the fault hook of the rotation whose answer is lost.
type lostAnswer struct{ *memory.Store }

func (s lostAnswer) UpdateClient(ctx context.Context, c store.Client, ifUpdatedAt time.Time) error {
	if err := s.Store.UpdateClient(ctx, c, ifUpdatedAt); err != nil {
		return err
	}
	return fmt.Errorf("cassandra: update client: %w", store.ErrUnavailable)
}

// TestRotationWhoseAnswerIsLost: a secret rotation that took effect although
// the store answered unavailable hands its secret out (read back), so the
// client is not left with a secret nobody knows; one that did not take
// effect still fails.
func TestRotationWhoseAnswerIsLost(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	mem := memory.New(memory.Options{Now: clk.Now})
	reg := mustRegistry(t, nil, mem, clients.RegistryOptions{Now: clk.Now})
	cheap := clientauth.Argon2Params{Memory: 64, Time: 1, Threads: 1}
	m, err := clients.NewManager(clients.ManagerOptions{Registry: reg, Store: lostAnswer{mem}, Argon2: cheap, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Create(ctx, clients.Spec{ID: "svc", Scopes: []string{"read"}}); err != nil {
		t.Fatal(err)
	}
	_, secret, err := m.RotateSecret(ctx, "svc")
	if err != nil || secret == "" {
		t.Fatalf("rotation that landed: %q, %v; want its secret", secret, err)
	}
	c, err := mem.Client(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := clientauth.VerifySecret(c.SecretHash, secret); err != nil || !ok {
		t.Fatalf("the stored hash does not match the secret handed out: %v %v", ok, err)
	}
	mem.Close() // now nothing lands: the rotation fails
	if _, _, err := m.RotateSecret(ctx, "svc"); !errors.Is(err, store.ErrClosed) && !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("rotation on a closed store: %v", err)
	}
}

// TestManagerUpdate: Update keeps what the patch does not name and the
// creation time, moves the update time forward, leaves the reuse rows
// alone when only the limit or introspection changed (the tokens still
// fit) and clears them when the fingerprint changed; a private_key_jwt
// client has no secret to rotate.
func TestManagerUpdate(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	mem := memory.New(memory.Options{Now: clk.Now})
	reg := mustRegistry(t, nil, mem, clients.RegistryOptions{Now: clk.Now})
	m, err := clients.NewManager(clients.ManagerOptions{Registry: reg, Store: mem,
		Argon2: clientauth.Argon2Params{Memory: 64, Time: 1, Threads: 1}, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	created, secret, err := m.Create(ctx, clients.Spec{ID: "svc", Scopes: []string{"read"}, Resources: []string{"urn:a"}})
	if err != nil || secret == "" {
		t.Fatalf("Create: %q %v", secret, err)
	}
	issue := func() store.Token {
		tok := store.Token{Hash: []byte(strings.Repeat("h", 32)), ClientID: "svc", Scope: "read", ReuseKey: "k",
			IssuedAt: clk.Now(), ExpiresAt: clk.Now().Add(time.Hour)}
		if _, _, err := mem.Issue(ctx, tok, &store.Current{ClientID: "svc", ReuseKey: "k", TokenHash: tok.Hash,
			Sealed: []byte("s"), Scope: "read", IssuedAt: tok.IssuedAt, ExpiresAt: tok.ExpiresAt, ReuseUntil: tok.ExpiresAt}); err != nil {
			t.Fatal(err)
		}
		return tok
	}
	issue()
	yes := true
	info, s, err := m.Update(ctx, "svc", clients.Patch{Introspect: &yes})
	if err != nil || s != "" || !info.Introspect || strings.Join(info.Resources, " ") != "urn:a" || !info.CreatedAt.Equal(created.CreatedAt) || !info.UpdatedAt.After(created.UpdatedAt) {
		t.Fatalf("Update(introspect) = %+v, %q, %v", info, s, err)
	}
	if _, err := mem.Current(ctx, "svc", "k"); err != nil {
		t.Fatalf("reuse row after an introspect-only update: %v, want it kept", err)
	}
	res := []string{"urn:b"}
	if _, _, err := m.Update(ctx, "svc", clients.Patch{Resources: &res}); err != nil {
		t.Fatal(err)
	}
	if _, err := mem.Current(ctx, "svc", "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("reuse row after a resources update: %v, want it cleared", err)
	}
	method, keys := "private_key_jwt", jwks
	if _, s, err := m.Update(ctx, "svc", clients.Patch{AuthMethod: &method, JWKS: &keys}); err != nil || s != "" {
		t.Fatalf("Update(private_key_jwt) = %q, %v", s, err)
	}
	if c, _ := mem.Client(ctx, "svc"); c.SecretHash != "" || c.AuthMethod != "private_key_jwt" || c.JWKS != jwks {
		t.Fatalf("stored after the switch: %+v", c)
	}
	if _, _, err := m.RotateSecret(ctx, "svc"); !errors.Is(err, clients.ErrNoSecret) {
		t.Fatalf("RotateSecret(private_key_jwt) err = %v, want ErrNoSecret", err)
	}
	var se *clients.SpecError
	if _, _, err := m.Update(ctx, "svc", clients.Patch{JWKS: new(string)}); !errors.As(err, &se) || se.Field != "jwks" {
		t.Fatalf("Update(jwks \"\") err = %v, want a SpecError for jwks", err)
	}
}
