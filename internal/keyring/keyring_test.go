package keyring_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/keyring"
	"github.com/tokengw/tokengw/internal/seal"
	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/memory"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func sealer(t *testing.T) *seal.Sealer {
	t.Helper()
	k := make([]byte, seal.KeyLen)
	for i := range k {
		k[i] = byte(i)
	}
	s, err := seal.New([][]byte{k})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newRing(t *testing.T, st store.Keys, clk *clock, s keyring.Sealer, period time.Duration) *keyring.Ring {
	t.Helper()
	r, err := keyring.New(context.Background(), keyring.Options{
		Store: st, Sealer: s, JWKSMaxAge: 300 * time.Second, Refresh: 10 * time.Second,
		RotationPeriod: period, MaxTokenTTL: time.Hour, Now: clk.Now,
	})
	if err != nil {
		t.Fatalf("keyring.New: %v", err)
	}
	return r
}

func kids(t *testing.T, r *keyring.Ring) []string {
	t.Helper()
	var set struct {
		Keys []struct {
			Kid, Alg, Use string
			D             string `json:"d"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(r.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range set.Keys {
		if k.D != "" {
			t.Fatal("the JWKS holds a private key")
		}
		if k.Use != "sig" || k.Alg == "" {
			t.Fatalf("JWK use %q alg %q", k.Use, k.Alg)
		}
		out = append(out, k.Kid)
	}
	return out
}

func signing(t *testing.T, r *keyring.Ring, now time.Time) string {
	t.Helper()
	k, err := r.Signing(now)
	if err != nil {
		t.Fatal(err)
	}
	return k.ID
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestSchedule: a rotated key is published at once and signs after the
// lead; the retired key stays published for MaxTokenTTL + JWKSMaxAge after
// it stopped signing, then leaves the store.
func TestSchedule(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)}
	st := memory.New(memory.Options{Now: clk.Now})
	r := newRing(t, st, clk, sealer(t), 0)
	k1 := signing(t, r, clk.Now())
	if got := kids(t, r); len(got) != 1 || got[0] != k1 {
		t.Fatalf("JWKS %v, want [%s]", got, k1)
	}
	if lead := r.Lead(); lead != 320*time.Second {
		t.Fatalf("lead %v, want jwks_max_age + 2 refreshes", lead)
	}
	k2, err := r.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if k2.State(clk.Now()) != "pending" || !has(kids(t, r), k2.ID) || !has(kids(t, r), k1) {
		t.Fatalf("after Rotate: state %s, JWKS %v", k2.State(clk.Now()), kids(t, r))
	}
	if got := signing(t, r, clk.Now().Add(r.Lead()-time.Millisecond)); got != k1 {
		t.Fatal("the new key signs before the lead has passed")
	}
	clk.Advance(r.Lead())
	if got := signing(t, r, clk.Now()); got != k2.ID {
		t.Fatal("the new key does not sign after the lead")
	}
	retired := clk.Now()
	// Published until every k1 token has expired (1h) plus max-age.
	clk.Advance(time.Hour + 300*time.Second - time.Second)
	if err := r.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if !has(kids(t, r), k1) {
		t.Fatalf("k1 left the JWKS %v after retiring, before its tokens' expiry + max-age", clk.Now().Sub(retired))
	}
	clk.Advance(time.Second)
	if err := r.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got := kids(t, r); has(got, k1) || !has(got, k2.ID) {
		t.Fatalf("JWKS %v after k1's publication ended", got)
	}
	rows, _ := st.SigningKeys(ctx)
	if len(rows) != 1 {
		t.Fatalf("store holds %d keys, want 1", len(rows))
	}
}

// TestScheduledRotationOnce: replicas on one store find a rotation due at
// the same moment; one key is added, and every replica signs with it once
// it activates.
func TestScheduledRotationOnce(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)}
	st := memory.New(memory.Options{Now: clk.Now})
	s := sealer(t)
	rings := []*keyring.Ring{newRing(t, st, clk, s, 24*time.Hour), newRing(t, st, clk, s, 24*time.Hour), newRing(t, st, clk, s, 24*time.Hour)}
	k1 := signing(t, rings[0], clk.Now())
	clk.Advance(24*time.Hour - rings[0].Lead() - time.Second)
	for _, r := range rings {
		if err := r.Tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if rows, _ := st.SigningKeys(ctx); len(rows) != 1 {
		t.Fatalf("rotated %d keys before it was due", len(rows)-1)
	}
	clk.Advance(time.Second)
	var wg sync.WaitGroup
	for _, r := range rings {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.Tick(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	rows, _ := st.SigningKeys(ctx)
	if len(rows) != 2 {
		t.Fatalf("%d replicas rotating at once added %d keys, want 1", len(rings), len(rows)-1)
	}
	for _, r := range rings {
		if err := r.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		if got := signing(t, r, clk.Now()); got != k1 {
			t.Fatal("the scheduled key signs before its activation")
		}
	}
	clk.Advance(rings[0].Lead())
	want := signing(t, rings[0], clk.Now())
	for _, r := range rings {
		if got := signing(t, r, clk.Now()); got != want || got == k1 {
			t.Fatalf("replicas sign with %s and %s", got, want)
		}
	}
}

// TestForeignSealKey: a replica without the seal key publishes the ring
// but refuses to sign rather than sign with a key of its own.
func TestForeignSealKey(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)}
	st := memory.New(memory.Options{Now: clk.Now})
	good := newRing(t, st, clk, sealer(t), 0)
	other, _ := seal.New([][]byte{make([]byte, seal.KeyLen)})
	bad := newRing(t, st, clk, other, 0)
	if _, err := bad.Signing(clk.Now()); !errors.Is(err, keyring.ErrNoKey) {
		t.Fatalf("Signing without the seal key: %v, want ErrNoKey", err)
	}
	if got := kids(t, bad); len(got) != 1 || got[0] != signing(t, good, clk.Now()) {
		t.Fatalf("JWKS of the replica without the seal key: %v", got)
	}
}

func TestOptions(t *testing.T) {
	st := memory.New(memory.Options{})
	for _, o := range []keyring.Options{
		{Sealer: sealer(t), MaxTokenTTL: time.Hour},
		{Store: st, Sealer: sealer(t)},
		{Store: st, Sealer: sealer(t), MaxTokenTTL: time.Hour, Alg: "HS256"},
		{Store: st, Sealer: sealer(t), MaxTokenTTL: time.Hour, RotationPeriod: time.Minute},
	} {
		if _, err := keyring.New(context.Background(), o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

// TestAlgorithms: each algorithm's ring adds a key of it.
func TestAlgorithms(t *testing.T) {
	for _, alg := range keyring.Algorithms() {
		clk := &clock{t: time.Now()}
		r, err := keyring.New(context.Background(), keyring.Options{
			Store: memory.New(memory.Options{}), Sealer: sealer(t), Alg: alg, MaxTokenTTL: time.Hour, Now: clk.Now,
		})
		if err != nil {
			t.Fatal(err)
		}
		k, err := r.Signing(clk.Now())
		if err != nil || k.Alg != alg {
			t.Fatalf("%s: key %+v, %v", alg, k, err)
		}
		if _, err := k.Sign([]byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
}
