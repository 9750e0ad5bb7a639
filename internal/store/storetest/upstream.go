package storetest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/store"
)

// RunUpstream is the conformance suite of store.Upstream (upstream mode's
// rows). h.New must return a store that implements it. Keys are fresh per
// subtest, so a store may be shared.
func RunUpstream(t *testing.T, h Harness) {
	open := func(t *testing.T) store.Upstream {
		s := h.New(t)
		t.Cleanup(func() { _ = s.Close() })
		u, ok := s.(store.Upstream)
		if !ok {
			t.Fatalf("%T does not implement store.Upstream", s)
		}
		return u
	}
	ctx := context.Background()

	t.Run("LeaseIsExclusive", func(t *testing.T) {
		u := open(t)
		key := hashOf("lease")
		var won atomic.Int32
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := u.UpstreamLease(ctx, key, string(rune('a'+i)), time.Minute)
				if err != nil {
					t.Error(err)
				}
				if got {
					won.Add(1)
				}
			}()
		}
		wg.Wait()
		if won.Load() != 1 {
			t.Fatalf("%d of 16 concurrent callers got the lease, want 1", won.Load())
		}
	})

	t.Run("ReleaseByHolderOnly", func(t *testing.T) {
		u := open(t)
		key := hashOf("release")
		if got, err := u.UpstreamLease(ctx, key, "one", time.Minute); err != nil || !got {
			t.Fatalf("first lease: %v %v", got, err)
		}
		if err := u.UpstreamRelease(ctx, key, "two"); err != nil {
			t.Fatal(err)
		}
		if got, _ := u.UpstreamLease(ctx, key, "two", time.Minute); got {
			t.Fatal("a release by another holder ended the lease")
		}
		if err := u.UpstreamRelease(ctx, key, "one"); err != nil {
			t.Fatal(err)
		}
		if got, err := u.UpstreamLease(ctx, key, "two", time.Minute); err != nil || !got {
			t.Fatalf("lease after release: %v %v", got, err)
		}
	})

	t.Run("PutGetDelete", func(t *testing.T) {
		u := open(t)
		key, ref := hashOf("entry"), hashOf("ref")
		now := ms(h.Now())
		want := store.UpstreamEntry{Key: key, Sealed: []byte("sealed"), StoredAt: now, ExpiresAt: now.Add(time.Minute)}
		if err := u.PutUpstream(ctx, want); err != nil {
			t.Fatal(err)
		}
		if err := u.PutUpstream(ctx, store.UpstreamEntry{Key: ref, Ref: key, StoredAt: now, ExpiresAt: now.Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
		got, err := u.UpstreamEntry(ctx, key)
		if err != nil || string(got.Sealed) != "sealed" || got.Replays != 0 || !got.ExpiresAt.Equal(want.ExpiresAt) || !got.StoredAt.Equal(now) {
			t.Fatalf("UpstreamEntry = %+v, %v; want %+v", got, err, want)
		}
		if ix, err := u.UpstreamEntry(ctx, ref); err != nil || string(ix.Ref) != string(key) {
			t.Fatalf("index row = %+v, %v", ix, err)
		}
		if err := u.DeleteUpstream(ctx, key, ref, hashOf("absent")); err != nil {
			t.Fatal(err)
		}
		for _, k := range [][]byte{key, ref} {
			if _, err := u.UpstreamEntry(ctx, k); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("after delete: %v, want ErrNotFound", err)
			}
		}
	})

	t.Run("PutMany", func(t *testing.T) {
		u := open(t)
		key, dead, ix := hashOf("many"), hashOf("many-dead"), hashOf("many-ix")
		now := ms(h.Now())
		err := u.PutUpstream(ctx,
			store.UpstreamEntry{Key: key, Sealed: []byte("s"), StoredAt: now, ExpiresAt: now.Add(time.Minute)},
			store.UpstreamEntry{Key: dead, Sealed: []byte("d"), StoredAt: now.Add(-time.Hour), ExpiresAt: now.Add(-time.Minute)},
			store.UpstreamEntry{Key: ix, Ref: key, StoredAt: now, ExpiresAt: now.Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if e, err := u.UpstreamEntry(ctx, key); err != nil || string(e.Sealed) != "s" {
			t.Fatalf("first entry: %+v, %v", e, err)
		}
		if e, err := u.UpstreamEntry(ctx, ix); err != nil || string(e.Ref) != string(key) {
			t.Fatalf("index row: %+v, %v", e, err)
		}
		if _, err := u.UpstreamEntry(ctx, dead); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("an entry expired on arrival was kept: %v", err)
		}
	})

	t.Run("LeaseIsNoEntry", func(t *testing.T) {
		u := open(t)
		key := hashOf("lease-only")
		if _, err := u.UpstreamLease(ctx, key, "x", time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := u.UpstreamEntry(ctx, key); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a lease read as an entry: %v", err)
		}
	})

	t.Run("ReplaysAreCounted", func(t *testing.T) {
		u := open(t)
		key := hashOf("replays")
		now := ms(h.Now())
		if err := u.PutUpstream(ctx, store.UpstreamEntry{Key: key, Sealed: []byte("s"), StoredAt: now, ExpiresAt: now.Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
		const max = 5
		var took atomic.Int32
		var wg sync.WaitGroup
		for range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, ok, err := u.TakeUpstreamReplay(ctx, key, max)
				if err != nil && !errors.Is(err, store.ErrUnavailable) {
					t.Error(err)
				}
				if ok {
					took.Add(1)
				}
			}()
		}
		wg.Wait()
		if took.Load() > max || took.Load() == 0 {
			t.Fatalf("%d of 12 concurrent replays taken, want between 1 and %d", took.Load(), max)
		}
		for took.Load() < max {
			_, ok, err := u.TakeUpstreamReplay(ctx, key, max)
			if err != nil || !ok {
				t.Fatalf("replay %d: %v %v", took.Load()+1, ok, err)
			}
			took.Add(1)
		}
		if e, ok, err := u.TakeUpstreamReplay(ctx, key, max); err != nil || ok || e.Replays != max {
			t.Fatalf("replay beyond max: %+v %v %v", e, ok, err)
		}
		if _, _, err := u.TakeUpstreamReplay(ctx, hashOf("none"), max); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("replay of no entry: %v, want ErrNotFound", err)
		}
	})

	t.Run("Expiry", func(t *testing.T) {
		u := open(t)
		key := hashOf("expiry")
		now := ms(h.Now())
		life := time.Second
		if h.Advance == nil {
			life = 2 * time.Second
		}
		if err := u.PutUpstream(ctx, store.UpstreamEntry{Key: key, Sealed: []byte("s"), StoredAt: now, ExpiresAt: now.Add(life)}); err != nil {
			t.Fatal(err)
		}
		if _, err := u.UpstreamEntry(ctx, key); err != nil {
			t.Fatalf("live entry: %v", err)
		}
		f := &fixture{h: h}
		f.waitUntil(t, life, func() bool {
			_, err := u.UpstreamEntry(ctx, key)
			return errors.Is(err, store.ErrNotFound)
		})
	})
}
