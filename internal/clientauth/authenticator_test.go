package clientauth

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/oauth"
	"github.com/tokengw/tokengw/internal/store"
)

// registry is an in-memory Lookup whose hashes tests can change.
type registry struct {
	mu      sync.Mutex
	clients map[string]store.Client
	err     error // returned for every id when set
}

func newRegistry() *registry { return &registry{clients: map[string]store.Client{}} }

func (r *registry) Client(_ context.Context, id string) (store.Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return store.Client{}, r.err
	}
	c, ok := r.clients[id]
	if !ok {
		return store.Client{}, fmt.Errorf("registry: %q: %w", id, store.ErrNotFound)
	}
	return c, nil
}

// set registers id with a cheap hash of secret.
func (r *registry) set(t testing.TB, id, secret string) {
	t.Helper()
	h, err := HashSecret(secret, cheap)
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clients[id] = store.Client{ID: id, SecretHash: h, Scopes: []string{"read"}}
}

func (r *registry) setHash(id, hash string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clients[id] = store.Client{ID: id, SecretHash: hash}
}

// newAuth returns an Authenticator over reg with a cheap dummy hash.
// newAuth builds an Authenticator over reg with a cheap dummy hash; the
// cache has DefaultCacheEntries unless opts says otherwise (cacheOff: none).
// cacheOff asks newAuth for an Authenticator without a cache.
const cacheOff = -1

func newAuth(t testing.TB, reg Lookup, opts Options) *Authenticator {
	t.Helper()
	opts.Lookup = reg
	switch opts.CacheEntries {
	case 0:
		opts.CacheEntries = DefaultCacheEntries
	case cacheOff:
		opts.CacheEntries = 0
	}
	if opts.DummyHash == "" {
		h, err := HashSecret("dummy", cheap)
		if err != nil {
			t.Fatal(err)
		}
		opts.DummyHash = h
	}
	a, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

type counts struct{ hits, verifications, failures, shed uint64 }

func countsOf(a *Authenticator) counts {
	return counts{a.CacheHits(), a.Verifications(), a.Failures(), a.Shed()}
}

func wantCounts(t *testing.T, a *Authenticator, want counts) {
	t.Helper()
	if got := countsOf(a); got != want {
		t.Fatalf("counters %+v, want %+v", got, want)
	}
}

func mustAuth(t *testing.T, a *Authenticator, c Credentials) store.Client {
	t.Helper()
	got, err := a.Authenticate(context.Background(), c)
	if err != nil {
		t.Fatalf("Authenticate(%s): %v", c.ID, err)
	}
	if got.ID != c.ID {
		t.Fatalf("Authenticate(%s) returned client %q", c.ID, got.ID)
	}
	return got
}

func mustFail(t *testing.T, a *Authenticator, c Credentials) *oauth.Error {
	t.Helper()
	got, err := a.Authenticate(context.Background(), c)
	if !errors.Is(err, oauth.ErrInvalidClient) {
		t.Fatalf("Authenticate(%s) = %v, want invalid_client", c.ID, err)
	}
	if got.ID != "" {
		t.Fatalf("Authenticate(%s) failed but returned client %q", c.ID, got.ID)
	}
	var oe *oauth.Error
	errors.As(err, &oe)
	return oe
}

func TestAuthenticateCachesSuccess(t *testing.T) {
	reg := newRegistry()
	reg.set(t, "app", "s3cret")
	a := newAuth(t, reg, Options{})
	for _, m := range []Method{MethodBasic, MethodPost} {
		if c := mustAuth(t, a, Credentials{ID: "app", Secret: "s3cret", Method: m}); len(c.Scopes) != 1 {
			t.Fatalf("client %+v lost its fields", c)
		}
	}
	// The second call was answered by the cache: one verification only.
	wantCounts(t, a, counts{hits: 1, verifications: 1})
	if a.CacheLen() != 1 {
		t.Fatalf("CacheLen = %d", a.CacheLen())
	}
}

func TestAuthenticateWrongSecretNeverCached(t *testing.T) {
	reg := newRegistry()
	reg.set(t, "app", "s3cret")
	a := newAuth(t, reg, Options{})

	for range 2 {
		oe := mustFail(t, a, Credentials{ID: "app", Secret: "wrong", Method: MethodBasic})
		if oe.Description != descAuthFailed || !oe.BasicChallenge {
			t.Fatalf("error %+v: want %q with the Basic challenge", oe, descAuthFailed)
		}
	}
	if oe := mustFail(t, a, Credentials{ID: "app", Secret: "wrong", Method: MethodPost}); oe.BasicChallenge {
		t.Fatal("client_secret_post failure carries the Basic challenge")
	}
	wantCounts(t, a, counts{verifications: 3, failures: 3})
	if a.CacheLen() != 0 {
		t.Fatal("a wrong secret was cached")
	}

	mustAuth(t, a, Credentials{ID: "app", Secret: "s3cret", Method: MethodBasic})
	// With the right secret cached, a wrong one still runs the hash and
	// fails, and does not disturb the entry.
	mustFail(t, a, Credentials{ID: "app", Secret: "s3cret ", Method: MethodBasic})
	mustFail(t, a, Credentials{ID: "app", Secret: "", Method: MethodBasic})
	mustAuth(t, a, Credentials{ID: "app", Secret: "s3cret", Method: MethodBasic})
	wantCounts(t, a, counts{hits: 1, verifications: 6, failures: 5})
}

func TestAuthenticateUnknownClientLooksLikeWrongSecret(t *testing.T) {
	reg := newRegistry()
	reg.set(t, "app", "s3cret")
	a := newAuth(t, reg, Options{})

	wrong := mustFail(t, a, Credentials{ID: "app", Secret: "guess", Method: MethodBasic})
	unknown := mustFail(t, a, Credentials{ID: "nobody", Secret: "guess", Method: MethodBasic})
	if *wrong != *unknown {
		t.Fatalf("unknown id answers %+v, wrong secret %+v", unknown, wrong)
	}
	// The dummy hash ran for the unknown id.
	wantCounts(t, a, counts{verifications: 2, failures: 2})
}

func TestAuthenticateRotation(t *testing.T) {
	reg := newRegistry()
	reg.set(t, "app", "old")
	a := newAuth(t, reg, Options{})
	mustAuth(t, a, Credentials{ID: "app", Secret: "old", Method: MethodBasic})
	mustAuth(t, a, Credentials{ID: "app", Secret: "old", Method: MethodBasic}) // cached

	reg.set(t, "app", "new") // no Invalidate
	mustFail(t, a, Credentials{ID: "app", Secret: "old", Method: MethodBasic})
	mustAuth(t, a, Credentials{ID: "app", Secret: "new", Method: MethodBasic})
	mustAuth(t, a, Credentials{ID: "app", Secret: "new", Method: MethodBasic}) // cached
	mustFail(t, a, Credentials{ID: "app", Secret: "old", Method: MethodBasic})
	wantCounts(t, a, counts{hits: 2, verifications: 4, failures: 2})
}

func TestInvalidate(t *testing.T) {
	reg := newRegistry()
	reg.set(t, "app", "s3cret")
	reg.set(t, "other", "s3cret")
	a := newAuth(t, reg, Options{})
	mustAuth(t, a, Credentials{ID: "app", Secret: "s3cret", Method: MethodBasic})
	mustAuth(t, a, Credentials{ID: "other", Secret: "s3cret", Method: MethodBasic})

	a.Invalidate("app")
	a.Invalidate("never-seen")
	if a.CacheLen() != 1 {
		t.Fatalf("CacheLen = %d after Invalidate, want 1", a.CacheLen())
	}
	mustAuth(t, a, Credentials{ID: "app", Secret: "s3cret", Method: MethodBasic})   // verifies again
	mustAuth(t, a, Credentials{ID: "other", Secret: "s3cret", Method: MethodBasic}) // untouched: hit
	wantCounts(t, a, counts{hits: 1, verifications: 3})
}

func TestFloodOfWrongSecretsDoesNotEvict(t *testing.T) {
	reg := newRegistry()
	for _, id := range []string{"a", "b", "c"} {
		reg.set(t, id, "right-"+id)
	}
	a := newAuth(t, reg, Options{CacheEntries: 2})
	mustAuth(t, a, Credentials{ID: "a", Secret: "right-a", Method: MethodBasic})
	mustAuth(t, a, Credentials{ID: "b", Secret: "right-b", Method: MethodBasic})

	const flood = 300
	for i := range flood {
		id := []string{"a", "b", "c", fmt.Sprintf("unknown-%d", i)}[i%4]
		mustFail(t, a, Credentials{ID: id, Secret: fmt.Sprintf("guess-%d", i), Method: MethodPost})
	}
	before := a.Verifications()
	mustAuth(t, a, Credentials{ID: "a", Secret: "right-a", Method: MethodBasic})
	mustAuth(t, a, Credentials{ID: "b", Secret: "right-b", Method: MethodBasic})
	if a.Verifications() != before || a.CacheHits() != 2 {
		t.Fatalf("valid entries were evicted by %d wrong secrets", flood)
	}
	if a.CacheLen() != 2 {
		t.Fatalf("CacheLen = %d, want 2", a.CacheLen())
	}
}

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	reg := newRegistry()
	for _, id := range []string{"a", "b", "c"} {
		reg.set(t, id, "s")
	}
	a := newAuth(t, reg, Options{CacheEntries: 2})
	mustAuth(t, a, Credentials{ID: "a", Secret: "s", Method: MethodBasic})
	mustAuth(t, a, Credentials{ID: "b", Secret: "s", Method: MethodBasic})
	mustAuth(t, a, Credentials{ID: "a", Secret: "s", Method: MethodBasic}) // hit: a is now the most recent
	mustAuth(t, a, Credentials{ID: "c", Secret: "s", Method: MethodBasic}) // evicts b
	wantCounts(t, a, counts{hits: 1, verifications: 3})

	mustAuth(t, a, Credentials{ID: "a", Secret: "s", Method: MethodBasic}) // hit
	mustAuth(t, a, Credentials{ID: "c", Secret: "s", Method: MethodBasic}) // hit
	mustAuth(t, a, Credentials{ID: "b", Secret: "s", Method: MethodBasic}) // evicted: verifies
	wantCounts(t, a, counts{hits: 3, verifications: 4})
}

func TestCacheMaxAge(t *testing.T) {
	reg := newRegistry()
	reg.set(t, "app", "s")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	a := newAuth(t, reg, Options{CacheMaxAge: time.Minute, Now: clock})

	mustAuth(t, a, Credentials{ID: "app", Secret: "s", Method: MethodBasic})
	advance(59 * time.Second)
	mustAuth(t, a, Credentials{ID: "app", Secret: "s", Method: MethodBasic}) // hit
	advance(time.Second)
	mustAuth(t, a, Credentials{ID: "app", Secret: "s", Method: MethodBasic}) // aged out: verifies, re-cached
	advance(59 * time.Second)
	mustAuth(t, a, Credentials{ID: "app", Secret: "s", Method: MethodBasic}) // hit
	wantCounts(t, a, counts{hits: 2, verifications: 2})
}

func TestDisableCache(t *testing.T) {
	reg := newRegistry()
	reg.set(t, "app", "s")
	a := newAuth(t, reg, Options{CacheEntries: cacheOff})
	for range 3 {
		mustAuth(t, a, Credentials{ID: "app", Secret: "s", Method: MethodBasic})
	}
	a.Invalidate("app")
	wantCounts(t, a, counts{verifications: 3})
	if a.CacheLen() != 0 {
		t.Fatal("disabled cache holds entries")
	}
}

func TestAuthenticateLookupUnavailable(t *testing.T) {
	reg := newRegistry()
	reg.err = fmt.Errorf("cassandra: %w", store.ErrUnavailable)
	a := newAuth(t, reg, Options{})
	_, err := a.Authenticate(context.Background(), Credentials{ID: "app", Secret: "s", Method: MethodBasic})
	if !errors.Is(err, oauth.ErrTemporarilyUnavailable) || !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("err = %v, want temporarily_unavailable wrapping store.ErrUnavailable", err)
	}
	if oauth.AsError(err).RetryAfter <= 0 {
		t.Fatal("no Retry-After")
	}
	wantCounts(t, a, counts{})
}

func TestAuthenticateBadStoredHash(t *testing.T) {
	reg := newRegistry()
	reg.setHash("app", "$argon2id$v=19$m=99999999,t=1,p=1$c29tZXNhbHQ$c29tZXNhbHQ")
	reg.setHash("plain", "s3cret") // a secret stored in clear never matches
	a := newAuth(t, reg, Options{})
	for _, id := range []string{"app", "plain"} {
		_, err := a.Authenticate(context.Background(), Credentials{ID: id, Secret: "s3cret", Method: MethodPost})
		if !errors.Is(err, oauth.ErrInvalidClient) || !errors.Is(err, ErrBadHash) {
			t.Fatalf("%s: err = %v, want invalid_client caused by ErrBadHash", id, err)
		}
		if oauth.AsError(err).Description != descAuthFailed {
			t.Fatalf("%s: description %q tells the client more than a wrong secret would", id, oauth.AsError(err).Description)
		}
	}
}

func TestAuthenticateWithoutCredentials(t *testing.T) {
	reg := newRegistry()
	reg.set(t, "app", "s")
	a := newAuth(t, reg, Options{})
	for _, c := range []Credentials{{}, {ID: "app", Secret: "s"}, {ID: "app", Method: Method("none")}, {Secret: "s", Method: MethodBasic}} {
		if oe := mustFail(t, a, c); oe.Description != descAuthRequired {
			t.Errorf("%+v: description %q", c, oe.Description)
		}
	}
	wantCounts(t, a, counts{failures: 4})
}

// TestConcurrencyCapSheds holds the only verification slot with a
// verification that blocks until released, then checks that other
// verifications are shed, that cache hits are not, and that the slot is
// usable again afterwards.
func TestConcurrencyCapSheds(t *testing.T) {
	reg := newRegistry()
	reg.set(t, "slow", "s")
	reg.set(t, "hot", "s")
	reg.set(t, "app", "s")
	a := newAuth(t, reg, Options{MaxConcurrentVerify: 1, VerifyQueueTimeout: time.Millisecond})
	mustAuth(t, a, Credentials{ID: "hot", Secret: "s", Method: MethodBasic}) // cached before the slot is taken

	entered, release := make(chan struct{}), make(chan struct{})
	a.verify = func(phc, secret string) (bool, error) {
		if secret == "block" {
			close(entered)
			<-release
		}
		return VerifySecret(phc, secret)
	}
	done := make(chan error, 1)
	go func() {
		_, err := a.Authenticate(context.Background(), Credentials{ID: "slow", Secret: "block", Method: MethodBasic})
		done <- err
	}()
	<-entered // the one slot is held

	for _, c := range []Credentials{
		{ID: "app", Secret: "s", Method: MethodBasic},      // right secret, not cached
		{ID: "app", Secret: "wrong", Method: MethodBasic},  // wrong secret
		{ID: "nobody", Secret: "s", Method: MethodBasic},   // unknown id: the dummy hash needs a slot too
		{ID: "slow", Secret: "other", Method: MethodBasic}, // same client, other secret
	} {
		_, err := a.Authenticate(context.Background(), c)
		if !errors.Is(err, oauth.ErrTemporarilyUnavailable) || oauth.AsError(err).RetryAfter <= 0 {
			t.Fatalf("%+v: err = %v, want temporarily_unavailable with Retry-After", c, err)
		}
	}
	// A caller whose context ends while it waits is shed at once, even
	// with a long queue timeout.
	a.queueTimeout = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := a.Authenticate(ctx, Credentials{ID: "app", Secret: "s", Method: MethodBasic}); !errors.Is(err, oauth.ErrTemporarilyUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: err = %v", err)
	}
	// Cache hits never touch the semaphore.
	mustAuth(t, a, Credentials{ID: "hot", Secret: "s", Method: MethodBasic})
	wantCounts(t, a, counts{hits: 1, verifications: 2, shed: 5})

	close(release)
	if err := <-done; !errors.Is(err, oauth.ErrInvalidClient) {
		t.Fatalf("blocked verification: err = %v, want invalid_client", err)
	}
	mustAuth(t, a, Credentials{ID: "app", Secret: "s", Method: MethodBasic}) // the slot is free again
	wantCounts(t, a, counts{hits: 1, verifications: 3, failures: 1, shed: 5})
}

// TestAuthenticateConcurrent is for the race detector: many goroutines,
// right and wrong secrets, rotations and invalidations at once.
func TestAuthenticateConcurrent(t *testing.T) {
	reg := newRegistry()
	ids := []string{"a", "b", "c", "d"}
	for _, id := range ids {
		reg.set(t, id, "s-"+id)
	}
	a := newAuth(t, reg, Options{CacheEntries: 3, MaxConcurrentVerify: 4, VerifyQueueTimeout: time.Minute})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				id := ids[(g+i)%len(ids)]
				switch i % 5 {
				case 0:
					a.Invalidate(id)
				case 1:
					if _, err := a.Authenticate(context.Background(), Credentials{ID: id, Secret: "wrong", Method: MethodPost}); !errors.Is(err, oauth.ErrInvalidClient) {
						t.Errorf("wrong secret: %v", err)
					}
				default:
					if _, err := a.Authenticate(context.Background(), Credentials{ID: id, Secret: "s-" + id, Method: MethodBasic}); err != nil {
						t.Errorf("right secret: %v", err)
					}
				}
			}
		})
	}
	wg.Wait()
	if a.CacheLen() > 3 {
		t.Fatalf("CacheLen %d above its bound", a.CacheLen())
	}
	if a.Failures() != 8*10 || a.Shed() != 0 {
		t.Fatalf("failures %d shed %d", a.Failures(), a.Shed())
	}
}

func TestNewValidatesOptions(t *testing.T) {
	reg := newRegistry()
	for name, opts := range map[string]Options{
		"no lookup":           {},
		"negative entries":    {Lookup: reg, CacheEntries: -1},
		"negative max age":    {Lookup: reg, CacheMaxAge: -time.Second},
		"negative concurrent": {Lookup: reg, MaxConcurrentVerify: -1},
		"negative timeout":    {Lookup: reg, VerifyQueueTimeout: -time.Second},
		"bad dummy hash":      {Lookup: reg, DummyHash: "$argon2id$nope"},
	} {
		if _, err := New(opts); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	a, err := New(Options{Lookup: reg})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a.dummy, "$argon2id$v=19$m=19456,t=2,p=1$") || cap(a.sem) < 1 || a.queueTimeout != time.Second || a.cache != nil {
		t.Fatalf("defaults: dummy %q, %d slots, timeout %v", a.dummy, cap(a.sem), a.queueTimeout)
	}
}

// BenchmarkAuthenticate compares a cache hit with a full verification of a
// DefaultArgon2Params argon2id hash.
func BenchmarkAuthenticate(b *testing.B) {
	reg := newRegistry()
	h, err := HashSecret("s3cret", DefaultArgon2Params)
	if err != nil {
		b.Fatal(err)
	}
	reg.setHash("app", h)
	c := Credentials{ID: "app", Secret: "s3cret", Method: MethodBasic}
	for _, bc := range []struct {
		name    string
		entries int
	}{{"cache=on", DefaultCacheEntries}, {"cache=off", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			a, err := New(Options{Lookup: reg, CacheEntries: bc.entries})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			for b.Loop() {
				if _, err := a.Authenticate(ctx, c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestConcurrentSameCredentialsShareOneVerification: a fleet of callers with
// the same credentials arriving together costs one hash, not one each.
func TestConcurrentSameCredentialsShareOneVerification(t *testing.T) {
	reg := newRegistry()
	reg.set(t, "fleet", "s")
	a := newAuth(t, reg, Options{MaxConcurrentVerify: 1, VerifyQueueTimeout: time.Minute})
	entered, release := holdVerifications(a)
	const n = 20
	errs := make(chan error, n)
	go func() {
		_, err := a.Authenticate(context.Background(), Credentials{ID: "fleet", Secret: "s", Method: MethodBasic})
		errs <- err
	}()
	<-entered // the first verification is running
	for range n - 1 {
		go func() {
			_, err := a.Authenticate(context.Background(), Credentials{ID: "fleet", Secret: "s", Method: MethodBasic})
			errs <- err
		}()
	}
	close(release)
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// Callers that arrived after the shared verification ended hit the
	// cache; none ran a hash of its own.
	if v := a.Verifications(); v != 1 {
		t.Fatalf("verifications = %d, want 1", v)
	}
}

// TestSharedVerificationOutlivesItsCaller: when the caller that runs a
// shared verification goes away, the others still get their answer.
func TestSharedVerificationOutlivesItsCaller(t *testing.T) {
	reg := newRegistry()
	reg.set(t, "fleet", "s")
	reg.set(t, "holder", "h")
	a := newAuth(t, reg, Options{MaxConcurrentVerify: 1, VerifyQueueTimeout: time.Minute})
	held, releaseHold := make(chan struct{}), make(chan struct{})
	a.verify = func(phc, secret string) (bool, error) {
		if secret == "h" {
			close(held)
			<-releaseHold
		}
		return VerifySecret(phc, secret)
	}
	go a.Authenticate(context.Background(), Credentials{ID: "holder", Secret: "h", Method: MethodBasic})
	<-held // the only slot is taken: the fleet's leader will wait for it
	ctx, cancel := context.WithCancel(context.Background())
	leader := make(chan error, 1)
	go func() {
		_, err := a.Authenticate(ctx, Credentials{ID: "fleet", Secret: "s", Method: MethodBasic})
		leader <- err
	}()
	follower := make(chan error, 1)
	go func() {
		_, err := a.Authenticate(context.Background(), Credentials{ID: "fleet", Secret: "s", Method: MethodBasic})
		follower <- err
	}()
	cancel()
	close(releaseHold)
	// The canceled caller is shed (or, if it had joined the other's
	// verification, answered); the other caller is answered either way.
	if err := <-leader; err != nil && !errors.Is(err, oauth.ErrTemporarilyUnavailable) {
		t.Fatalf("canceled caller: %v", err)
	}
	if err := <-follower; err != nil {
		t.Fatalf("follower: %v", err)
	}
}

// TestConcurrentIdenticalFailuresCostTheSame: identical concurrent requests
// share one verification whether the id exists (wrong secret) or not, so
// that a burst of identical requests cannot tell the two apart by how long
// they take or by which of them are shed.
func TestConcurrentIdenticalFailuresCostTheSame(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Credentials
	}{
		{"known id, wrong secret", Credentials{ID: "app", Secret: "guess", Method: MethodBasic}},
		{"unknown id", Credentials{ID: "nobody", Secret: "guess", Method: MethodBasic}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := newRegistry()
			reg.set(t, "app", "s")
			a := newAuth(t, reg, Options{MaxConcurrentVerify: 1, VerifyQueueTimeout: time.Hour})
			entered, release := holdVerifications(a)
			errs := make(chan error, 2)
			auth := func() {
				_, err := a.Authenticate(context.Background(), tc.c)
				errs <- err
			}
			go auth()
			<-entered // the first verification holds the only slot
			go auth()
			waitForWaitingAuthenticate(t)
			close(release)
			for range 2 {
				if err := <-errs; !errors.Is(err, oauth.ErrInvalidClient) {
					t.Fatalf("err = %v, want invalid_client", err)
				}
			}
			if v := a.Verifications(); v != 1 {
				t.Fatalf("verifications = %d, want 1 (the second caller shares the first's)", v)
			}
		})
	}
}

// holdVerifications makes a's hash verifications wait until release is
// closed; entered is closed when the first one starts.
func holdVerifications(a *Authenticator) (entered, release chan struct{}) {
	entered, release = make(chan struct{}), make(chan struct{})
	var once sync.Once
	a.verify = func(phc, secret string) (bool, error) {
		once.Do(func() { close(entered) })
		<-release
		return VerifySecret(phc, secret)
	}
	return entered, release
}

// waitForWaitingAuthenticate returns once a goroutine in Authenticate waits,
// either for a verification slot or for another caller's verification.
func waitForWaitingAuthenticate(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	buf := make([]byte, 1<<20)
	for time.Now().Before(deadline) {
		n := runtime.Stack(buf, true)
		for g := range strings.SplitSeq(string(buf[:n]), "\n\n") {
			if !strings.Contains(g, "clientauth.(*Authenticator).Authenticate(") {
				continue
			}
			if strings.Contains(g, "clientauth.(*Authenticator).acquire(") ||
				strings.Contains(g, "singleflight.(*Group).Do(") && !strings.Contains(g, "singleflight.(*Group).doCall(") {
				return
			}
		}
		runtime.Gosched()
	}
	t.Fatal("no Authenticate call is waiting")
}

// TestSecretNeverAuthenticatesPrivateKeyJWTClient: a client registered
// for private_key_jwt is not authenticated by a secret, even its own old
// one still in its row (a rolling upgrade); a secret presented for it, or
// for one without a hash, costs the dummy verification an unknown id costs
// and gets the identical 401, without an operator log cause.
func TestSecretNeverAuthenticatesPrivateKeyJWTClient(t *testing.T) {
	reg := newRegistry()
	h, err := HashSecret("s3cret", cheap)
	if err != nil {
		t.Fatal(err)
	}
	reg.clients["pkj-old-hash"] = store.Client{ID: "pkj-old-hash", SecretHash: h, AuthMethod: "private_key_jwt", JWKSURI: "https://idp.example/jwks"}
	reg.clients["pkj"] = store.Client{ID: "pkj", AuthMethod: "private_key_jwt", JWKSURI: "https://idp.example/jwks"}
	reg.clients["future"] = store.Client{ID: "future", SecretHash: h, AuthMethod: "tls_client_auth"}
	reg.clients["post"] = store.Client{ID: "post", SecretHash: h, AuthMethod: "client_secret_post"}
	a := newAuth(t, reg, Options{})
	var (
		mu     sync.Mutex
		hashes []string
	)
	a.verify = func(phc, secret string) (bool, error) {
		mu.Lock()
		hashes = append(hashes, phc)
		mu.Unlock()
		return VerifySecret(phc, secret)
	}
	for _, method := range []Method{MethodBasic, MethodPost} {
		unknown := mustFail(t, a, Credentials{ID: "nobody", Secret: "s3cret", Method: method})
		for _, id := range []string{"pkj-old-hash", "pkj", "future"} {
			hashes = nil
			before := countsOf(a)
			got := mustFail(t, a, Credentials{ID: id, Secret: "s3cret", Method: method})
			if *got != *unknown || errors.Unwrap(got) != nil {
				t.Fatalf("%s (%v): %+v (cause %v), want exactly the unknown id's %+v", id, method, got, errors.Unwrap(got), unknown)
			}
			if len(hashes) != 1 || hashes[0] != a.dummy {
				t.Fatalf("%s (%v): verified %d hashes (dummy: %v), want the dummy hash once", id, method, len(hashes), len(hashes) == 1 && hashes[0] == a.dummy)
			}
			if after := countsOf(a); after.verifications != before.verifications+1 || after.failures != before.failures+1 || after.hits != before.hits {
				t.Fatalf("%s (%v): counters %+v -> %+v, want one verification and one failure", id, method, before, after)
			}
		}
	}
	// A secret method the client was registered with, as stored, still works.
	mustAuth(t, a, Credentials{ID: "post", Secret: "s3cret", Method: MethodPost})
}
