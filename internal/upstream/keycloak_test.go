//go:build keycloak

package upstream_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tokengw/tokengw/internal/store/memory"
)

// TestKeycloakClientCredentialsOneCall: 200 concurrent client_credentials
// requests for one client through tokengw make exactly one token request at
// the recording hop before Keycloak, and all get the same token.
func TestKeycloakClientCredentialsOneCall(t *testing.T) {
	kc := keycloakURL(t)
	rec := newRecorder(t, kc)
	gw := startGateway(t, upstreamConfig(t, rec.srv.URL), nil)
	hc := httpClient(200)

	answers := concurrently(t, 200, func(int) answer {
		return post(t, hc, gw.tokenURL(), basic(serviceID, serviceSecret), ccForm())
	})
	first := ""
	for i, a := range answers {
		if a.status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, a.status, a.body)
		}
		tok := a.str(t, "access_token")
		if first == "" {
			first = tok
		}
		if tok != first {
			t.Fatalf("request %d got another token than request 0", i)
		}
		if n, _ := a.json(t)["expires_in"].(float64); n <= 0 || n > 300-10 {
			t.Fatalf("request %d: expires_in %v, want in (0, 290] (300 s less the 10 s margin)", i, n)
		}
		if a.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("request %d: Cache-Control %q", i, a.header.Get("Cache-Control"))
		}
	}
	if n := rec.count("client_credentials"); n != 1 {
		t.Fatalf("upstream client_credentials requests = %d, want 1", n)
	}
	// Straight to Keycloak, the same client gets a new token every time:
	// the one call above is tokengw's doing.
	direct := post(t, hc, kc+realmPath+"/token", basic(serviceID, serviceSecret), ccForm())
	if direct.status != http.StatusOK || direct.str(t, "access_token") == first {
		t.Fatalf("direct request: %d, same token: %v", direct.status, direct.str(t, "access_token") == first)
	}
}

// TestKeycloakRefreshCoalesced: 50 concurrent refresh_token requests with
// one refresh token get 50 identical successes through tokengw, from one
// upstream call; the same 50 straight to Keycloak (rotation with reuse
// detection) get at most one success.
func TestKeycloakRefreshCoalesced(t *testing.T) {
	kc := keycloakURL(t)
	rec := newRecorder(t, kc)
	gw := startGateway(t, upstreamConfig(t, rec.srv.URL), nil)
	hc := httpClient(50)

	rt := passwordGrant(t, hc, kc)
	answers := concurrently(t, 50, func(int) answer {
		return post(t, hc, gw.tokenURL(), basic(appID, appSecret), refreshForm(rt))
	})
	var at, newRT string
	for i, a := range answers {
		if a.status != http.StatusOK {
			t.Fatalf("request %d through tokengw: %d %s", i, a.status, a.body)
		}
		if i == 0 {
			at, newRT = a.str(t, "access_token"), a.str(t, "refresh_token")
			if newRT == "" || newRT == rt {
				t.Fatalf("no rotated refresh token in the answer")
			}
		}
		if a.str(t, "access_token") != at || a.str(t, "refresh_token") != newRT {
			t.Fatalf("request %d got another answer than request 0", i)
		}
	}
	if n := rec.count("refresh_token"); n != 1 {
		t.Fatalf("upstream refresh_token requests = %d, want 1", n)
	}
	// The rotated token works once more through tokengw (a new call).
	if a := post(t, hc, gw.tokenURL(), basic(appID, appSecret), refreshForm(newRT)); a.status != http.StatusOK {
		t.Fatalf("refresh with the rotated token: %d %s", a.status, a.body)
	}

	rt2 := passwordGrant(t, hc, kc)
	direct := concurrently(t, 50, func(int) answer {
		return post(t, hc, kc+realmPath+"/token", basic(appID, appSecret), refreshForm(rt2))
	})
	ok := 0
	for _, a := range direct {
		if a.status == http.StatusOK {
			ok++
		}
	}
	t.Logf("straight to Keycloak: %d of 50 refreshes succeeded; through tokengw: 50 of 50", ok)
	if ok > 1 {
		t.Fatalf("straight to Keycloak %d refreshes succeeded, want at most 1 (is reuse detection on in the realm?)", ok)
	}
}

// TestKeycloakWrongSecret: a wrong secret is refused by Keycloak and passed
// through as 401, not cached (the next wrong one is asked again); the right
// secret right after is served.
func TestKeycloakWrongSecret(t *testing.T) {
	kc := keycloakURL(t)
	rec := newRecorder(t, kc)
	gw := startGateway(t, upstreamConfig(t, rec.srv.URL), nil)
	hc := httpClient(4)

	direct := post(t, hc, kc+realmPath+"/token", basic(serviceID, "wrong"), ccForm())
	for i := range 2 {
		a := post(t, hc, gw.tokenURL(), basic(serviceID, "wrong"), ccForm())
		if a.status != http.StatusUnauthorized {
			t.Fatalf("wrong secret %d: %d %s", i, a.status, a.body)
		}
		if string(a.body) != string(direct.body) {
			t.Fatalf("wrong secret %d: body %s, Keycloak sends %s", i, a.body, direct.body)
		}
		if n := rec.count("client_credentials"); n != i+1 {
			t.Fatalf("after wrong secret %d: %d upstream calls, want %d (errors are not cached)", i, n, i+1)
		}
	}
	a := post(t, hc, gw.tokenURL(), basic(serviceID, serviceSecret), ccForm())
	if a.status != http.StatusOK || a.str(t, "access_token") == "" {
		t.Fatalf("right secret: %d %s", a.status, a.body)
	}
	// And the wrong secret is still refused, not answered from the right one's entry.
	if a := post(t, hc, gw.tokenURL(), basic(serviceID, "wrong"), ccForm()); a.status != http.StatusUnauthorized {
		t.Fatalf("wrong secret after a cached success: %d %s", a.status, a.body)
	}
}

// TestKeycloakUpstreamDown: a provider answering 503, or not answering
// within upstream.timeout, gives 503 temporarily_unavailable with
// Retry-After; nothing is cached, and the next request once it is back
// succeeds. The fault is injected by a proxy in front of Keycloak.
func TestKeycloakUpstreamDown(t *testing.T) {
	kc := keycloakURL(t)
	target, _ := url.Parse(kc)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var mode atomic.Value // "ok", "503", "hang"
	mode.Store("ok")
	release := make(chan struct{})
	fault := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load() {
		case "503":
			http.Error(w, `{"error":"temporarily_unavailable"}`, http.StatusServiceUnavailable)
		case "hang":
			select {
			case <-r.Context().Done():
			case <-release:
			}
		default:
			r.Host = target.Host
			proxy.ServeHTTP(w, r)
		}
	}))
	defer func() {
		close(release) // ends the handlers still hanging, then the server
		fault.Close()
	}()
	// The timeout leaves room for Keycloak's own answer on a loaded
	// machine (-race, neighbours): the recovery request must not time out.
	gw := startGateway(t, upstreamConfig(t, fault.URL, "TOKENGW_UPSTREAM__TIMEOUT=2s"), memory.New(memory.Options{}))
	hc := httpClient(4)

	for _, m := range []string{"503", "hang"} {
		mode.Store(m)
		for _, grant := range []string{"client_credentials", "password"} {
			form := ccForm()
			auth := basic(serviceID, serviceSecret)
			if grant == "password" {
				form = url.Values{"grant_type": {"password"}, "username": {userName}, "password": {userPassword}}
				auth = basic(appID, appSecret)
			}
			a := post(t, hc, gw.tokenURL(), auth, form)
			if a.status != http.StatusServiceUnavailable || a.str(t, "error") != "temporarily_unavailable" || a.header.Get("Retry-After") == "" {
				t.Fatalf("%s, %s: %d Retry-After %q %s", m, grant, a.status, a.header.Get("Retry-After"), a.body)
			}
		}
	}
	mode.Store("ok")
	if a := post(t, hc, gw.tokenURL(), basic(serviceID, serviceSecret), ccForm()); a.status != http.StatusOK {
		t.Fatalf("after recovery: %d %s", a.status, a.body)
	}
}

// metric returns the text of the gateway's /metrics lines starting with name.
func metric(t *testing.T, gw *gateway, name string) string {
	t.Helper()
	w := httptest.NewRecorder()
	gw.app.Metrics.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	var out []string
	for _, l := range strings.Split(w.Body.String(), "\n") {
		if strings.HasPrefix(l, name) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestKeycloakRefreshReplay: after the call, the stored success is
// replayed to a caller with the same credentials and fields, at most
// upstream.refresh.max_replays times, and counted; a caller with other
// fields, and the one past the limit, go to Keycloak, which refuses the
// spent token.
func TestKeycloakRefreshReplay(t *testing.T) {
	kc := keycloakURL(t)
	rec := newRecorder(t, kc)
	var logs syncBuffer
	gw := startGatewayLog(t, upstreamConfig(t, rec.srv.URL, "TOKENGW_UPSTREAM__REFRESH__MAX_REPLAYS=1"), nil,
		slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	hc := httpClient(2)
	rt := passwordGrant(t, hc, kc)

	first := post(t, hc, gw.tokenURL(), basic(appID, appSecret), refreshForm(rt))
	if first.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", first.status, first.body)
	}
	replay := post(t, hc, gw.tokenURL(), basic(appID, appSecret), refreshForm(rt))
	if replay.status != http.StatusOK || replay.str(t, "refresh_token") != first.str(t, "refresh_token") {
		t.Fatalf("replay: %d %s", replay.status, replay.body)
	}
	if n := rec.count("refresh_token"); n != 1 {
		t.Fatalf("upstream refresh calls after a replay = %d, want 1", n)
	}
	if m := metric(t, gw, "tokengw_upstream_refresh_replays_total"); !strings.HasSuffix(m, " 1") {
		t.Fatalf("replay metric: %q", m)
	}
	if l := logs.String(); !strings.Contains(l, "upstream: refresh result replayed") {
		t.Fatalf("the replay was not logged: %s", l)
	}
	other := refreshForm(rt)
	other.Set("scope", "openid")
	for name, form := range map[string]url.Values{"other fields": other, "past max_replays": refreshForm(rt)} {
		a := post(t, hc, gw.tokenURL(), basic(appID, appSecret), form)
		if a.status != http.StatusBadRequest || a.str(t, "error") != "invalid_grant" {
			t.Fatalf("%s: %d %s, want Keycloak's invalid_grant", name, a.status, a.body)
		}
	}
	if n := rec.count("refresh_token"); n != 3 {
		t.Fatalf("upstream refresh calls = %d, want 3 (the two refused went to Keycloak)", n)
	}
	l := logs.String()
	for _, secret := range []string{rt, first.str(t, "refresh_token"), first.str(t, "access_token"), appSecret} {
		if strings.Contains(l, secret) {
			t.Fatalf("a token or secret reached the log")
		}
	}
}

// TestKeycloakRevoke: revoking a cached access token through tokengw is
// forwarded to Keycloak and drops the entry: the next request is a new
// upstream call with a new token.
func TestKeycloakRevoke(t *testing.T) {
	kc := keycloakURL(t)
	rec := newRecorder(t, kc)
	gw := startGateway(t, upstreamConfig(t, rec.srv.URL), nil)
	hc := httpClient(2)
	a := post(t, hc, gw.tokenURL(), basic(serviceID, serviceSecret), ccForm())
	b := post(t, hc, gw.tokenURL(), basic(serviceID, serviceSecret), ccForm())
	if a.status != http.StatusOK || a.str(t, "access_token") != b.str(t, "access_token") || rec.count("client_credentials") != 1 {
		t.Fatalf("before revocation: %d, same token %v, %d calls", a.status, a.str(t, "access_token") == b.str(t, "access_token"), rec.count("client_credentials"))
	}
	rv := post(t, hc, gw.srv.URL+"/oauth2/revoke", basic(serviceID, serviceSecret), url.Values{"token": {a.str(t, "access_token")}})
	if rv.status != http.StatusOK {
		t.Fatalf("revoke: %d %s", rv.status, rv.body)
	}
	c := post(t, hc, gw.tokenURL(), basic(serviceID, serviceSecret), ccForm())
	if c.status != http.StatusOK || c.str(t, "access_token") == a.str(t, "access_token") || rec.count("client_credentials") != 2 {
		t.Fatalf("after revocation: %d, same token %v, %d calls", c.status, c.str(t, "access_token") == a.str(t, "access_token"), rec.count("client_credentials"))
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestKeycloakConsumerLimit: limits.per_client applies in upstream mode,
// before the cache: past its burst a client gets 429 with Retry-After,
// and another client is unaffected.
func TestKeycloakConsumerLimit(t *testing.T) {
	kc := keycloakURL(t)
	gw := startGateway(t, upstreamConfig(t, kc, "TOKENGW_LIMITS__PER_CLIENT__RATE=0.01", "TOKENGW_LIMITS__PER_CLIENT__BURST=2"), nil)
	hc := httpClient(2)
	for i := range 2 {
		if a := post(t, hc, gw.tokenURL(), basic(serviceID, serviceSecret), ccForm()); a.status != http.StatusOK {
			t.Fatalf("request %d within the burst: %d %s", i, a.status, a.body)
		}
	}
	a := post(t, hc, gw.tokenURL(), basic(serviceID, serviceSecret), ccForm())
	if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" {
		t.Fatalf("past the burst: %d Retry-After %q %s", a.status, a.header.Get("Retry-After"), a.body)
	}
	if b := post(t, hc, gw.tokenURL(), basic(appID, appSecret), url.Values{
		"grant_type": {"password"}, "username": {userName}, "password": {userPassword},
	}); b.status != http.StatusOK {
		t.Fatalf("another client: %d %s", b.status, b.body)
	}
}
