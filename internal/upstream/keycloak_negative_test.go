//go:build keycloak

package upstream_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/app"
)

// testClock is a manual clock for a gateway.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *testClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// spentRefresh starts a gateway in front of Keycloak (through a call
// recorder, on a manual clock, with env's configuration) and spends a
// fresh refresh token straight at Keycloak, so tokengw has no result of its
// own to replay for it.
func spentRefresh(t *testing.T, kc string, env ...string) (*recorder, *testClock, *gateway, *http.Client, string) {
	t.Helper()
	rec := newRecorder(t, kc)
	clock := &testClock{t: time.Now()}
	a, err := app.New(context.Background(), upstreamConfig(t, rec.srv.URL, env...), app.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	gw := &gateway{app: a, srv: httptest.NewServer(a.Server.Handler())}
	t.Cleanup(func() { gw.srv.Close(); _ = a.Close() })
	hc := httpClient(2)
	rt := passwordGrant(t, hc, kc)
	if d := post(t, hc, kc+realmPath+"/token", basic(appID, appSecret), refreshForm(rt)); d.status != http.StatusOK {
		t.Fatalf("spending the token at Keycloak: %d %s", d.status, d.body)
	}
	return rec, clock, gw, hc, rt
}

// TestKeycloakNegativeEntry: Keycloak's invalid_grant to one exact refresh
// request (a token already spent straight at Keycloak, so tokengw has no
// result to replay) is answered again from tokengw for 2 s, as Keycloak
// sent it, without a call; another client's request with the same token
// still goes to Keycloak; after the 2 s the request goes to Keycloak again.
func TestKeycloakNegativeEntry(t *testing.T) {
	rec, clock, gw, hc, rt := spentRefresh(t, keycloakURL(t))
	first := post(t, hc, gw.tokenURL(), basic(appID, appSecret), refreshForm(rt))
	if first.status != http.StatusBadRequest || first.str(t, "error") != "invalid_grant" || rec.count("refresh_token") != 1 {
		t.Fatalf("spent token through tokengw: %d %s, %d calls", first.status, first.body, rec.count("refresh_token"))
	}
	clock.Advance(time.Second)
	again := post(t, hc, gw.tokenURL(), basic(appID, appSecret), refreshForm(rt))
	if again.status != first.status || string(again.body) != string(first.body) || rec.count("refresh_token") != 1 {
		t.Fatalf("within 2 s: %d %s, %d calls; want Keycloak's answer again and no call", again.status, again.body, rec.count("refresh_token"))
	}
	if m := metric(t, gw, `tokengw_upstream_cache_hits_total{tier="negative"}`); m != `tokengw_upstream_cache_hits_total{tier="negative"} 1` {
		t.Fatalf("negative hit metric: %q", m)
	}
	// Another client presenting the token: its own request, to Keycloak.
	other := post(t, hc, gw.tokenURL(), basic(serviceID, serviceSecret), refreshForm(rt))
	if other.status == http.StatusOK || rec.count("refresh_token") != 2 {
		t.Fatalf("another client's request: %d %s, %d calls; want Keycloak's refusal from a call", other.status, other.body, rec.count("refresh_token"))
	}
	clock.Advance(1100 * time.Millisecond) // past the 2 s
	late := post(t, hc, gw.tokenURL(), basic(appID, appSecret), refreshForm(rt))
	if late.status != http.StatusBadRequest || rec.count("refresh_token") != 3 {
		t.Fatalf("after 2 s: %d %s, %d calls; want a new call", late.status, late.body, rec.count("refresh_token"))
	}
}

// TestKeycloakNegativeTTLConfig: upstream.refresh.negative_ttl reaches the
// gateway. Turned off (a negative duration), Keycloak's invalid_grant is
// not answered again: every request with the spent token is a call; at
// 500ms, the entry serves a request 400ms later and not one 600ms later.
func TestKeycloakNegativeTTLConfig(t *testing.T) {
	kc := keycloakURL(t)
	for _, c := range []struct {
		ttl   string
		steps []time.Duration // clock advances before each repeat
		calls []int           // refresh calls counted after each repeat
	}{
		{"-1s", []time.Duration{0, 0}, []int{2, 3}},
		{"500ms", []time.Duration{400 * time.Millisecond, 200 * time.Millisecond}, []int{1, 2}},
	} {
		t.Run(c.ttl, func(t *testing.T) {
			rec, clock, gw, hc, rt := spentRefresh(t, kc, "TOKENGW_UPSTREAM__REFRESH__NEGATIVE_TTL="+c.ttl)
			if first := post(t, hc, gw.tokenURL(), basic(appID, appSecret), refreshForm(rt)); first.status != http.StatusBadRequest || rec.count("refresh_token") != 1 {
				t.Fatalf("spent token through tokengw: %d %s, %d calls", first.status, first.body, rec.count("refresh_token"))
			}
			for i, step := range c.steps {
				clock.Advance(step)
				again := post(t, hc, gw.tokenURL(), basic(appID, appSecret), refreshForm(rt))
				if again.status != http.StatusBadRequest || again.str(t, "error") != "invalid_grant" || rec.count("refresh_token") != c.calls[i] {
					t.Fatalf("repeat %d (+%v): %d %s, %d calls; want invalid_grant after %d calls", i+1, step, again.status, again.body, rec.count("refresh_token"), c.calls[i])
				}
			}
		})
	}
}
