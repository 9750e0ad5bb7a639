package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/store"
)

// testAssertions is the conformance of store.Assertions: the one-time claim
// of an assertion identifier.
func testAssertions(t *testing.T, f *fixture) {
	a, ok := f.s.(store.Assertions)
	if !ok {
		t.Fatalf("%T does not implement store.Assertions", f.s)
	}
	jti := func(label string) []byte {
		h := sha256.Sum256(hashOf(label))
		return h[:]
	}
	until := f.now().Add(time.Hour)

	t.Run("OnceThenReplay", func(t *testing.T) {
		j := jti("once")
		if err := a.ClaimAssertion(f.ctx, "client:c1", j, until); err != nil {
			t.Fatalf("first claim: %v", err)
		}
		for i := range 2 {
			if err := a.ClaimAssertion(f.ctx, "client:c1", j, until); !errors.Is(err, store.ErrReplay) {
				t.Fatalf("claim %d again: %v, want ErrReplay", i+2, err)
			}
		}
		// The scope is part of the key: another client's jti of the same
		// value is its own.
		if err := a.ClaimAssertion(f.ctx, "client:c2", j, until); err != nil {
			t.Fatalf("same jti, other scope: %v", err)
		}
		if err := a.ClaimAssertion(f.ctx, "client:c1", jti("other"), until); err != nil {
			t.Fatalf("other jti: %v", err)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		j := jti("concurrent")
		const n = 50
		var wg sync.WaitGroup
		errs := make([]error, n)
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = a.ClaimAssertion(f.ctx, "issuer:https://idp", j, until)
			}()
		}
		close(start)
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, store.ErrReplay):
				t.Fatalf("claim %d: %v", i, err)
			}
		}
		if won != 1 {
			t.Fatalf("%d of %d concurrent claims succeeded, want exactly 1", won, n)
		}
	})

	t.Run("Expires", func(t *testing.T) {
		j := jti("expires")
		w := f.window()
		if err := a.ClaimAssertion(f.ctx, "client:c1", j, f.now().Add(w)); err != nil {
			t.Fatalf("claim: %v", err)
		}
		if err := a.ClaimAssertion(f.ctx, "client:c1", j, f.now().Add(w)); !errors.Is(err, store.ErrReplay) {
			t.Fatalf("claim again at once: %v, want ErrReplay", err)
		}
		// Once the record has expired the identifier may be claimed again
		// (the assertion itself is refused by then, for its exp).
		var last error
		f.waitUntil(t, w, func() bool {
			last = a.ClaimAssertion(f.ctx, "client:c1", j, f.now().Add(w))
			return last == nil
		})
	})

	t.Run("CanceledContext", func(t *testing.T) {
		j := jti("canceled")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := a.ClaimAssertion(ctx, "client:c1", j, until); err == nil || errors.Is(err, store.ErrReplay) {
			t.Fatalf("claim with a canceled context: %v, want the context's error", err)
		}
		if err := a.ClaimAssertion(f.ctx, "client:c1", j, until); err != nil {
			t.Fatalf("a canceled claim was recorded: %v", err)
		}
	})

	t.Run("ManyKeys", func(t *testing.T) {
		for i := range 100 {
			if err := a.ClaimAssertion(f.ctx, fmt.Sprintf("client:m%d", i%7), jti("many"), until); err != nil {
				t.Fatalf("claim %d: %v", i, err)
			}
		}
	})
}
