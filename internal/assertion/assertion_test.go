package assertion_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/tokengw/tokengw/internal/assertion"
	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/memory"
)

// Assertions here are signed with lestrrat-go/jwx; tokengw verifies with
// go-jose.

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

func newClock() *clock { return &clock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)} }

type key struct {
	alg jwa.SignatureAlgorithm
	kid string
	raw any
	jwk jwk.Key
}

func newKey(t testing.TB, kind, kid string) *key {
	t.Helper()
	var raw any
	var alg jwa.SignatureAlgorithm
	var err error
	switch kind {
	case "ES256":
		raw, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		alg = jwa.ES256()
	case "RS256":
		raw, err = rsa.GenerateKey(rand.Reader, 2048)
		alg = jwa.RS256()
	default:
		t.Fatalf("kind %s", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwk.Import(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Set(jwk.KeyIDKey, kid); err != nil {
		t.Fatal(err)
	}
	return &key{alg: alg, kid: kid, raw: raw, jwk: k}
}

func jwks(t testing.TB, keys ...*key) string {
	t.Helper()
	parts := make([]string, len(keys))
	for i, k := range keys {
		pub, err := k.jwk.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(pub)
		if err != nil {
			t.Fatal(err)
		}
		parts[i] = string(b)
	}
	return `{"keys":[` + strings.Join(parts, ",") + `]}`
}

func (k *key) sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	h := jws.NewHeaders()
	if err := h.Set(jws.KeyIDKey, k.kid); err != nil {
		t.Fatal(err)
	}
	out, err := jws.Sign(payload, jws.WithKey(k.alg, k.raw, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

const iss = "https://auth.example.test"

func claims(sub string, now time.Time) map[string]any {
	return map[string]any{"iss": sub, "sub": sub, "aud": iss, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": rand.Text()}
}

func newVerifier(t testing.TB, clk *clock, jtis store.Assertions) *assertion.Verifier {
	t.Helper()
	v, err := assertion.New(assertion.Options{Issuer: iss, TokenEndpoint: iss + "/oauth2/token", JTIs: jtis, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// fixed resolves every assertion to one principal.
func fixed(p assertion.Principal) assertion.Resolver {
	return func(context.Context, *assertion.Claims) (assertion.Principal, error) { return p, nil }
}

func static(t testing.TB, keys ...*key) assertion.Source {
	t.Helper()
	set, err := assertion.ParseJWKS([]byte(jwks(t, keys...)), true)
	if err != nil {
		t.Fatal(err)
	}
	return assertion.Static{Set: set}
}

// A cache hit skips the signature but not the jti claim, nor the clock: an
// entry is not used at or after exp.
func TestCacheHitStillClaimsAndExpires(t *testing.T) {
	clk := newClock()
	st := memory.New(memory.Options{Now: clk.Now})
	v := newVerifier(t, clk, st)
	k := newKey(t, "ES256", "k")
	ctx := context.Background()

	oneTime := assertion.Principal{ID: "client:c", Keys: static(t, k), OneTime: true}
	a := k.sign(t, claims("c", clk.Now()))
	if _, _, err := v.Verify(ctx, a, "", fixed(oneTime), nil); err != nil {
		t.Fatal(err)
	}
	var ae *assertion.Error
	if _, _, err := v.Verify(ctx, a, "", fixed(oneTime), nil); !errors.As(err, &ae) || ae.Check != assertion.CheckReplay {
		t.Fatalf("second use: %v, want a replay refusal", err)
	}
	if v.Verifications() != 1 || v.CacheHits() != 1 {
		t.Fatalf("verifications %d, hits %d; want 1, 1", v.Verifications(), v.CacheHits())
	}

	reusable := assertion.Principal{ID: "issuer:x", Keys: static(t, k)}
	b := k.sign(t, claims("c", clk.Now()))
	for range 3 {
		if _, _, err := v.Verify(ctx, b, "", fixed(reusable), nil); err != nil {
			t.Fatal(err)
		}
	}
	if v.Verifications() != 2 {
		t.Fatalf("verifications %d, want 2", v.Verifications())
	}
	// Past exp (5m) but within the skew (30s): the entry is gone, the JWT
	// is verified again and accepted; past exp + skew it is refused.
	clk.Advance(5*time.Minute + 10*time.Second)
	if _, _, err := v.Verify(ctx, b, "", fixed(reusable), nil); err != nil {
		t.Fatalf("within the skew: %v", err)
	}
	if v.Verifications() != 3 {
		t.Fatalf("verifications %d, want 3: an entry must not outlive exp", v.Verifications())
	}
	clk.Advance(30 * time.Second)
	if _, _, err := v.Verify(ctx, b, "", fixed(reusable), nil); !errors.As(err, &ae) || ae.Check != assertion.CheckExpiry {
		t.Fatalf("past exp + skew: %v", err)
	}
}

// jwksServer serves a settable key set, counting fetches.
type jwksServer struct {
	srv     *httptest.Server
	fetches atomic.Int64
	mu      sync.Mutex
	body    string
	status  int
	cc      string
}

func newJWKSServer(t *testing.T, body string) *jwksServer {
	js := &jwksServer{body: body, status: 200, cc: "max-age=600"}
	js.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		js.fetches.Add(1)
		js.mu.Lock()
		body, status, cc := js.body, js.status, js.cc
		js.mu.Unlock()
		w.Header().Set("Cache-Control", cc)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(js.srv.Close)
	return js
}

func (js *jwksServer) set(body string, status int, cc string) {
	js.mu.Lock()
	js.body, js.status, js.cc = body, status, cc
	js.mu.Unlock()
}

// A cache entry is dropped when its key leaves the key set: after the
// jwks_uri stops listing the key, the same JWT is refused.
func TestCacheDroppedWhenKeyLeavesSet(t *testing.T) {
	clk := newClock()
	old, next := newKey(t, "RS256", "old"), newKey(t, "ES256", "next")
	js := newJWKSServer(t, jwks(t, old))
	r, err := assertion.NewRemote(js.srv.URL, assertion.RemoteOptions{AllowHTTP: true, MinRefresh: time.Minute, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	v := newVerifier(t, clk, memory.New(memory.Options{Now: clk.Now}))
	p := assertion.Principal{ID: "issuer:x", Keys: r}
	a := old.sign(t, claims("w", clk.Now()))
	ctx := context.Background()
	for range 2 {
		if _, _, err := v.Verify(ctx, a, "", fixed(p), nil); err != nil {
			t.Fatal(err)
		}
	}
	if v.CacheHits() != 1 {
		t.Fatalf("hits %d, want 1", v.CacheHits())
	}
	js.set(jwks(t, next), 200, "max-age=60")
	clk.Advance(11 * time.Minute) // the set's max-age (600s) has passed
	if _, err := r.Keys(ctx); err != nil {
		t.Fatal(err)
	}
	var ae *assertion.Error
	if _, _, err := v.Verify(ctx, a, "", fixed(p), nil); !errors.As(err, &ae) || ae.Check != assertion.CheckKey {
		t.Fatalf("after the key left the set: %v, want a key refusal", err)
	}
	if _, _, err := v.Verify(ctx, next.sign(t, claims("w", clk.Now())), "", fixed(p), nil); err != nil {
		t.Fatalf("the new key: %v", err)
	}
}

// jwks_uri fetching: https only unless allowed; the size limit; the last
// good set through errors, for MaxStale; Cache-Control within bounds.
func TestRemote(t *testing.T) {
	if _, err := assertion.NewRemote("http://127.0.0.1/jwks", assertion.RemoteOptions{}); err == nil {
		t.Fatal("http jwks_uri accepted without AllowHTTP")
	}
	clk := newClock()
	k := newKey(t, "ES256", "k")
	js := newJWKSServer(t, jwks(t, k))
	r, err := assertion.NewRemote(js.srv.URL, assertion.RemoteOptions{
		AllowHTTP: true, MinRefresh: time.Minute, MaxAge: time.Hour, MaxStale: 2 * time.Hour, Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := r.Keys(ctx); err != nil || js.fetches.Load() != 1 {
		t.Fatalf("first Keys: %v, %d fetches", err, js.fetches.Load())
	}
	clk.Advance(9 * time.Minute) // max-age=600: still fresh
	_, _ = r.Keys(ctx)
	if js.fetches.Load() != 1 {
		t.Fatalf("refetched within max-age")
	}
	// Fetches fail from here: the last good set is served, fetching no
	// more often than MinRefresh, until MaxStale after its fetch.
	js.set("oops", 500, "")
	clk.Advance(2 * time.Minute)
	if set, err := r.Keys(ctx); err != nil || set == nil {
		t.Fatalf("through a fetch error: %v", err)
	}
	n := js.fetches.Load()
	for range 5 {
		_, _ = r.Keys(ctx)
		_, _ = r.Refresh(ctx)
	}
	if js.fetches.Load() != n {
		t.Fatalf("a failing jwks_uri was fetched %d more times within MinRefresh", js.fetches.Load()-n)
	}
	clk.Advance(2 * time.Hour)
	if _, err := r.Keys(ctx); !errors.Is(err, assertion.ErrKeysUnavailable) {
		t.Fatalf("past MaxStale: %v, want ErrKeysUnavailable", err)
	}
	// A response above the size limit is refused; a max-age above MaxAge is
	// held to MaxAge, below MinRefresh raised to it.
	js.set(`{"keys":[`+strings.Repeat(" ", assertion.MaxJWKSBytes)+`]}`, 200, "")
	clk.Advance(2 * time.Minute)
	if _, err := r.Keys(ctx); err == nil {
		t.Fatal("an oversized key set was accepted")
	}
	js.set(jwks(t, k), 200, "public, max-age=999999")
	clk.Advance(2 * time.Minute)
	if _, err := r.Keys(ctx); err != nil {
		t.Fatal(err)
	}
	n = js.fetches.Load()
	clk.Advance(59 * time.Minute)
	_, _ = r.Keys(ctx)
	clk.Advance(2 * time.Minute)
	_, _ = r.Keys(ctx)
	if got := js.fetches.Load() - n; got != 1 {
		t.Fatalf("%d fetches in the 61 minutes after a max-age=999999 response, want 1 (MaxAge 1h)", got)
	}
	js.set(jwks(t, k), 200, "max-age=1")
	clk.Advance(2 * time.Hour)
	_, _ = r.Keys(ctx)
	n = js.fetches.Load()
	clk.Advance(30 * time.Second)
	_, _ = r.Keys(ctx)
	if js.fetches.Load() != n {
		t.Fatalf("max-age=1 made it fetch within MinRefresh")
	}
}

// The key sets registrations may hold: public signing keys only.
func TestValidateKeySource(t *testing.T) {
	k := newKey(t, "ES256", "k")
	priv, _ := json.Marshal(k.jwk)
	r1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := jwk.Import(&r1024.PublicKey)
	pkj, _ := json.Marshal(pk)
	small := `{"keys":[` + string(pkj) + `]}`
	for name, c := range map[string]struct {
		jwks, uri string
		ok        bool
	}{
		"inline public":     {jwks(t, k), "", true},
		"https uri":         {"", "https://idp.example/jwks", true},
		"http uri":          {"", "http://idp.example/jwks", false},
		"both":              {jwks(t, k), "https://idp.example/jwks", false},
		"neither":           {"", "", false},
		"private key":       {`{"keys":[` + string(priv) + `]}`, "", false},
		"symmetric key":     {`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`, "", false},
		"small RSA":         {small, "", false},
		"not JSON":          {"{", "", false},
		"uri with fragment": {"", "https://idp.example/jwks#x", false},
	} {
		err := assertion.ValidateKeySource(c.jwks, c.uri, false)
		if (err == nil) != c.ok {
			t.Errorf("%s: err = %v, want ok=%v", name, err, c.ok)
		}
	}
}

// The jti claim is atomic: one assertion verified by 50 goroutines at once
// (one Verifier, so most hit the cache) is accepted exactly once.
func TestConcurrentOneTime(t *testing.T) {
	clk := newClock()
	v := newVerifier(t, clk, memory.New(memory.Options{Now: clk.Now}))
	k := newKey(t, "ES256", "k")
	p := assertion.Principal{ID: "client:c", Keys: static(t, k), OneTime: true}
	a := k.sign(t, claims("c", clk.Now()))
	var ok atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := v.Verify(context.Background(), a, "", fixed(p), nil); err == nil {
				ok.Add(1)
			} else if !errors.Is(err, assertion.ErrRefused) {
				t.Errorf("verify: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("%d accepted, want 1", ok.Load())
	}
}

// BenchmarkVerify: a verified-JWT cache hit against a cold verification
// (cache off), ES256 and RS256, for a reusable (replay: allow) assertion.
//
//	go test -run '^$' -bench BenchmarkVerify -benchmem ./internal/assertion/
func BenchmarkVerify(b *testing.B) {
	for _, kind := range []string{"ES256", "RS256"} {
		k := newKey(b, kind, "k")
		for _, mode := range []string{"cold", "cached"} {
			b.Run(kind+"/"+mode, func(b *testing.B) {
				entries := 0
				if mode == "cold" {
					entries = -1
				}
				v, err := assertion.New(assertion.Options{Issuer: iss, JTIs: memory.New(memory.Options{}), CacheEntries: entries})
				if err != nil {
					b.Fatal(err)
				}
				p := assertion.Principal{ID: "issuer:x", Keys: static(b, k)}
				a := k.sign(b, claims("w", time.Now()))
				res := fixed(p)
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if _, _, err := v.Verify(ctx, a, "", res, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// A jwks_uri that does not answer within the timeout, or answers with a
// redirect, yields no key set: ErrKeysUnavailable, not a hang.
func TestRemoteTimeoutAndRedirect(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) })
	k := newKey(t, "ES256", "k")
	good := newJWKSServer(t, jwks(t, k))
	redirect := httptest.NewServer(http.RedirectHandler(good.srv.URL, http.StatusFound))
	t.Cleanup(redirect.Close)
	for name, uri := range map[string]string{"hang": hang.URL, "redirect": redirect.URL} {
		r, err := assertion.NewRemote(uri, assertion.RemoteOptions{AllowHTTP: true, Timeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		if _, err := r.Keys(context.Background()); !errors.Is(err, assertion.ErrKeysUnavailable) {
			t.Fatalf("%s: %v, want ErrKeysUnavailable", name, err)
		}
		if d := time.Since(t0); d > 5*time.Second {
			t.Fatalf("%s: Keys took %v with a 200ms timeout", name, d)
		}
	}
	if good.fetches.Load() != 0 {
		t.Fatalf("the redirect was followed")
	}
}
