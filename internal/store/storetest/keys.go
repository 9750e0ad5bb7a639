package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/store"
)

// testSigningKeys: the key ring's rows round-trip, a slot is taken once
// (also among concurrent adders), deletes are idempotent, and a closed store
// says ErrClosed.
func testSigningKeys(t *testing.T, f *fixture) {
	run := fmt.Sprintf("t%d", seq.Add(1))
	now := f.now()
	mk := func(slot, kid string) store.SigningKey {
		return store.SigningKey{
			Slot: run + "/" + slot, ID: kid, Alg: "ES256", Sealed: []byte("sealed-" + kid), Public: []byte("pub-" + kid),
			CreatedAt: now, ActivateAt: now.Add(5 * time.Minute),
		}
	}
	find := func(slot string) (store.SigningKey, bool) {
		t.Helper()
		keys, err := f.s.SigningKeys(f.ctx)
		if err != nil {
			t.Fatalf("SigningKeys: %v", err)
		}
		for _, k := range keys {
			if k.Slot == run+"/"+slot {
				return k, true
			}
		}
		return store.SigningKey{}, false
	}

	a := mk("initial", "kid-a")
	if ok, err := f.s.AddSigningKey(f.ctx, a); err != nil || !ok {
		t.Fatalf("AddSigningKey(a) = %v, %v; want true", ok, err)
	}
	got, ok := find("initial")
	if !ok {
		t.Fatal("added key not listed")
	}
	if got.ID != a.ID || got.Alg != a.Alg || !bytes.Equal(got.Sealed, a.Sealed) || !bytes.Equal(got.Public, a.Public) ||
		!got.CreatedAt.Equal(a.CreatedAt) || !got.ActivateAt.Equal(a.ActivateAt) {
		t.Fatalf("listed %+v, want %+v", got, a)
	}
	// The slot is taken: a second key for it is not added, the first stays.
	if ok, err := f.s.AddSigningKey(f.ctx, mk("initial", "kid-b")); err != nil || ok {
		t.Fatalf("AddSigningKey(taken slot) = %v, %v; want false", ok, err)
	}
	if got, _ := find("initial"); got.ID != "kid-a" {
		t.Fatalf("slot holds %q after a refused add, want kid-a", got.ID)
	}

	// Concurrent adders for one slot: exactly one wins.
	const n = 8
	var wins atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := f.s.AddSigningKey(f.ctx, mk("successor/kid-a", fmt.Sprintf("kid-c%d", i)))
			if err != nil {
				errs <- err
				return
			}
			if ok {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent AddSigningKey: %v", err)
	}
	if w := wins.Load(); w != 1 {
		t.Fatalf("%d concurrent adders won the slot, want 1", w)
	}
	winner, ok := find("successor/kid-a")
	if !ok {
		t.Fatal("the won slot is not listed")
	}

	if err := f.s.DeleteSigningKey(f.ctx, a.Slot); err != nil {
		t.Fatalf("DeleteSigningKey: %v", err)
	}
	if _, ok := find("initial"); ok {
		t.Fatal("deleted key still listed")
	}
	if got, ok := find("successor/kid-a"); !ok || got.ID != winner.ID {
		t.Fatal("deleting one key removed another")
	}
	if err := f.s.DeleteSigningKey(f.ctx, a.Slot); err != nil {
		t.Fatalf("DeleteSigningKey(absent) = %v, want nil", err)
	}

	if err := f.s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.SigningKeys(f.ctx); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("SigningKeys after Close = %v, want ErrClosed", err)
	}
	if _, err := f.s.AddSigningKey(f.ctx, mk("late", "kid-z")); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("AddSigningKey after Close = %v, want ErrClosed", err)
	}
}
