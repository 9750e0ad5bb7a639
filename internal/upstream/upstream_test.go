package upstream

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/limiter"
	"github.com/tokengw/tokengw/internal/reuse"
	"github.com/tokengw/tokengw/internal/seal"
	"github.com/tokengw/tokengw/internal/store/memory"
)

func testGateway(t testing.TB, now func() time.Time) *Gateway {
	t.Helper()
	key := bytes.Repeat([]byte{7}, 32)
	s, err := seal.New([][]byte{key})
	if err != nil {
		t.Fatal(err)
	}
	lim, _ := limiter.New[string](limiter.Options{})
	ipLim, _ := limiter.New[netip.Addr](limiter.Options{})
	g, err := New(Options{
		TokenURL: "http://127.0.0.1:1/token", Store: memory.NewUpstream(now), Sealer: s,
		CacheKey: DeriveCacheKey(key), Consumer: lim, FailedIP: ipLim, Now: now,
		ExpiryMargin: 10 * time.Second, Policy: reuse.Policy{MinRemaining: time.Minute, MaxElapsedFraction: 0.5},
	})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestHasherSeparatesFields(t *testing.T) {
	h := newHasher([]byte("0123456789abcdef"))
	if bytes.Equal(h.sum("ab", "c"), h.sum("a", "bc")) {
		t.Fatal(`sum("ab","c") == sum("a","bc")`)
	}
	if !bytes.Equal(h.sum("a", "b"), h.sum("a", "b")) {
		t.Fatal("sum is not deterministic")
	}
	if bytes.Equal(newHasher([]byte("another key 0123")).sum("a"), h.sum("a")) {
		t.Fatal("the key does not change the hash")
	}
}

func TestCachedExpiresIn(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	now := t0
	g := testGateway(t, func() time.Time { return now })
	s, ok := parseSuccess([]byte(`{"access_token":"a","token_type":"Bearer","expires_in":300,"scope":"x"}`))
	if !ok {
		t.Fatal("parseSuccess refused a token response")
	}
	c, err := newCached(s, t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		after    time.Duration
		reusable bool
		in       int64
	}{
		{0, true, 290}, // 300 − 10 s margin
		{100 * time.Second, true, 190},
		{144 * time.Second, true, 146}, // elapsed < 0.5 × 290 s
		{146 * time.Second, false, 144},
		{235 * time.Second, false, 55}, // less than min_remaining left
	} {
		now = t0.Add(tc.after)
		if got := g.reusable(c, now); got != tc.reusable {
			t.Errorf("after %v: reusable %v, want %v", tc.after, got, tc.reusable)
		}
		if got := g.expiresIn(c, now); got != tc.in {
			t.Errorf("after %v: expires_in %d, want %d", tc.after, got, tc.in)
		}
	}
	var m map[string]any
	if err := json.Unmarshal(c.render(42), &m); err != nil || m["expires_in"] != float64(42) || m["access_token"] != "a" || m["scope"] != "x" {
		t.Fatalf("render = %v, %v", m, err)
	}
}

func TestParseSuccess(t *testing.T) {
	for _, tc := range []struct {
		body string
		ok   bool
		exp  int64
	}{
		{`{"access_token":"a","expires_in":60}`, true, 60},
		{`{"access_token":"a","expires_in":"60"}`, true, 60},
		{`{"access_token":"a"}`, true, -1},
		{`{"access_token":"","expires_in":60}`, false, 0},
		{`{"access_token":1}`, false, 0},
		{`{"access_token":"a","expires_in":-1}`, false, 0},
		{`{"access_token":"a","expires_in":1.5}`, false, 0},
		{`[]`, false, 0},
		{`null`, false, 0},
	} {
		s, ok := parseSuccess([]byte(tc.body))
		if ok != tc.ok || (ok && s.expiresIn != tc.exp) {
			t.Errorf("parseSuccess(%s) = %v, %d; want %v, %d", tc.body, ok, s.expiresIn, tc.ok, tc.exp)
		}
	}
}

// FuzzParseSuccess: any provider body is refused or round-trips through
// the cache encoding as one JSON object with the same access_token; read
// as an error answer, it yields a plain error code for the log.
func FuzzParseSuccess(f *testing.F) {
	f.Add([]byte(`{"access_token":"a","token_type":"Bearer","expires_in":300,"refresh_token":"r"}`))
	f.Add([]byte(`{"access_token":"a","expires_in":"7"}`))
	f.Add([]byte(`{"access_token":"a"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"error":"invalid_grant","error_description":"Token is not active"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		// The same bytes as an error answer: the code the log gets is a
		// plain error code, whatever the provider sent.
		if code := providerErrorCode(b); strings.Trim(code, "abcdefghijklmnopqrstuvwxyz_") != "" || len(code) > 64 {
			t.Fatalf("providerErrorCode(%q) = %q", b, code)
		}
		s, ok := parseSuccess(b)
		if !ok {
			return
		}
		c, err := newCached(s, time.Unix(1700000000, 0), nil)
		if err != nil {
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(c.render(5), &m); err != nil {
			t.Fatalf("render of %q is not JSON: %v", b, err)
		}
		var got string
		if err := json.Unmarshal(m["access_token"], &got); err != nil || got != s.stringField("access_token") {
			t.Fatalf("access_token changed: %s -> %s", s.fields["access_token"], m["access_token"])
		}
	})
}

// FuzzReadRequest: any token request body is parsed or refused with an
// RFC 6749 error below 500; never a panic.
func FuzzReadRequest(f *testing.F) {
	g := testGateway(f, time.Now)
	f.Add("grant_type=client_credentials&scope=a+b", "")
	f.Add("grant_type=refresh_token&refresh_token=x&client_id=c", "Basic Yzpz")
	f.Add("resource=a&resource=b&grant_type=client_credentials", "Basic !!")
	f.Add("a=%zz", "")
	f.Fuzz(func(t *testing.T, body, auth string) {
		r := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		q, oerr := g.readRequest(w, r)
		if oerr != nil {
			if oerr.Status >= 500 {
				t.Fatalf("%q: status %d", body, oerr.Status)
			}
			return
		}
		if _, ok := g.ccKey(q); !ok && q.form.Get("scope") == "" {
			t.Fatalf("%q: no key without a scope", body)
		}
	})
}

// TestNegCacheBounded: negative entries expire and never exceed the bound.
func TestNegCacheBounded(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	n := newNegCache(4)
	rep := reply{status: http.StatusBadRequest, body: []byte(`{"error":"invalid_grant"}`)}
	for i := range 10 {
		n.put(cacheKey{byte(i)}, rep, t0.Add(2*time.Second), t0)
		if len(n.m) > 4 {
			t.Fatalf("%d entries, bound 4", len(n.m))
		}
	}
	if _, ok := n.get(cacheKey{9}, t0.Add(time.Second)); !ok {
		t.Fatal("the newest entry is gone within its life")
	}
	if _, ok := n.get(cacheKey{9}, t0.Add(2*time.Second)); ok {
		t.Fatal("an entry served at its expiry")
	}
	if !deterministicRefusal(&rep) || deterministicRefusal(&reply{status: http.StatusBadRequest, body: []byte(`{"error":"invalid_request"}`)}) ||
		deterministicRefusal(&reply{status: http.StatusUnauthorized, body: rep.body}) {
		t.Fatal("deterministicRefusal: only 400 invalid_grant")
	}
}
