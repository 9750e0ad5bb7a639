package assertion_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/assertion"
	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/memory"
)

// gatedJTIs passes claims to a real memory store, counting them; the first
// call waits for release, and fail makes a call return an error instead of
// claiming (the outcome-unknown case of a distributed store).
type gatedJTIs struct {
	store.Assertions
	calls   atomic.Int64
	entered chan struct{}
	release chan struct{}
	fail    atomic.Bool
}

func (g *gatedJTIs) ClaimAssertion(ctx context.Context, scope string, jtiHash []byte, until time.Time) error {
	if g.calls.Add(1) == 1 {
		close(g.entered)
		<-g.release
	}
	if g.fail.Load() {
		return errors.New("gated: claim outcome unknown")
	}
	return g.Assertions.ClaimAssertion(ctx, scope, jtiHash, until)
}

// Copies of one assertion arriving together at one process cost one store
// claim: while it runs the others wait, and are replays when it wins; when
// its outcome is unknown they share its error (503, never accepted), and a
// later retry is not locked out by them.
func TestConcurrentClaimsOfOneJTICollapse(t *testing.T) {
	for _, fail := range []bool{false, true} {
		name := map[bool]string{false: "leader wins", true: "leader outcome unknown"}[fail]
		t.Run(name, func(t *testing.T) {
			clk := newClock()
			g := &gatedJTIs{Assertions: memory.New(memory.Options{Now: clk.Now}), entered: make(chan struct{}), release: make(chan struct{})}
			g.fail.Store(fail)
			v := newVerifier(t, clk, g)
			const n = 50
			waiting := make(chan struct{}, n)
			v.OnClaimWait(func() { waiting <- struct{}{} })
			k := newKey(t, "ES256", "k")
			p := assertion.Principal{ID: "client:c", Keys: static(t, k), OneTime: true}
			a := k.sign(t, claims("c", clk.Now()))

			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() { _, _, errs[i] = v.Verify(context.Background(), a, "", fixed(p), nil) })
			}
			<-g.entered
			for range n - 1 {
				<-waiting
			}
			close(g.release)
			wg.Wait()

			if got := g.calls.Load(); got != 1 {
				t.Fatalf("%d store claims for %d concurrent copies, want 1", got, n)
			}
			var ok, replay, other int
			for _, err := range errs {
				var ae *assertion.Error
				switch {
				case err == nil:
					ok++
				case errors.As(err, &ae) && ae.Check == assertion.CheckReplay:
					replay++
				case errors.Is(err, assertion.ErrRefused):
					t.Fatalf("refused for another reason: %v", err)
				default:
					other++
				}
			}
			if !fail {
				if ok != 1 || replay != n-1 {
					t.Fatalf("ok %d, replay %d, other %d; want 1, %d, 0", ok, replay, other, n-1)
				}
				return
			}
			if ok != 0 || replay != 0 || other != n {
				t.Fatalf("ok %d, replay %d, other %d; want 0, 0, %d (the leader's unknown outcome)", ok, replay, other, n)
			}
			g.fail.Store(false)
			if _, _, err := v.Verify(context.Background(), a, "", fixed(p), nil); err != nil {
				t.Fatalf("retry after the unknown outcome: %v", err)
			}
		})
	}
}

// A follower whose own request is cancelled stops waiting.
func TestClaimWaitHonoursContext(t *testing.T) {
	clk := newClock()
	g := &gatedJTIs{Assertions: memory.New(memory.Options{Now: clk.Now}), entered: make(chan struct{}), release: make(chan struct{})}
	v := newVerifier(t, clk, g)
	waiting := make(chan struct{}, 1)
	v.OnClaimWait(func() { waiting <- struct{}{} })
	k := newKey(t, "ES256", "k")
	p := assertion.Principal{ID: "client:c", Keys: static(t, k), OneTime: true}
	a := k.sign(t, claims("c", clk.Now()))

	leader := make(chan error, 1)
	go func() { _, _, err := v.Verify(context.Background(), a, "", fixed(p), nil); leader <- err }()
	<-g.entered
	ctx, cancel := context.WithCancel(context.Background())
	follower := make(chan error, 1)
	go func() { _, _, err := v.Verify(ctx, a, "", fixed(p), nil); follower <- err }()
	<-waiting
	cancel()
	if err := <-follower; !errors.Is(err, context.Canceled) || errors.Is(err, assertion.ErrRefused) {
		t.Fatalf("cancelled follower: %v, want context.Canceled (503), not a refusal", err)
	}
	close(g.release)
	if err := <-leader; err != nil {
		t.Fatalf("leader: %v", err)
	}
}
