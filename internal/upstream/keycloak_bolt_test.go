//go:build keycloak

package upstream_test

import (
	"net/http"
	"path/filepath"
	"testing"
)

// TestKeycloakBoltRestartKeepsReplay: on the embedded store, a refresh
// result outlives a restart of the (single-node) gateway: the same
// refresh, sent again to the restarted gateway within the replay window,
// gets the same rotated refresh token from the store, with no second
// upstream call (which Keycloak would refuse: the token is spent).
func TestKeycloakBoltRestartKeepsReplay(t *testing.T) {
	kc := keycloakURL(t)
	rec := newRecorder(t, kc)
	env := []string{"TOKENGW_STORE__DRIVER=bolt", "TOKENGW_STORE__BOLT__PATH=" + filepath.Join(t.TempDir(), "tokengw.db")}
	hc := httpClient(2)
	rt := passwordGrant(t, hc, kc)

	first := startGateway(t, upstreamConfig(t, rec.srv.URL, env...), nil)
	a := post(t, hc, first.tokenURL(), basic(appID, appSecret), refreshForm(rt))
	if a.status != http.StatusOK || a.str(t, "refresh_token") == "" {
		t.Fatalf("refresh: %d %s", a.status, a.body)
	}
	first.srv.Close()
	if err := first.app.Close(); err != nil { // releases the file
		t.Fatal(err)
	}

	second := startGateway(t, upstreamConfig(t, rec.srv.URL, env...), nil)
	b := post(t, hc, second.tokenURL(), basic(appID, appSecret), refreshForm(rt))
	if b.status != http.StatusOK || b.str(t, "refresh_token") != a.str(t, "refresh_token") || b.str(t, "access_token") != a.str(t, "access_token") {
		t.Fatalf("after the restart: %d, same answer %v: %s", b.status, b.str(t, "refresh_token") == a.str(t, "refresh_token"), b.body)
	}
	if n := rec.count("refresh_token"); n != 1 {
		t.Fatalf("upstream refresh calls = %d, want 1 (the restarted gateway replayed from the file)", n)
	}
	if m := metric(t, second, "tokengw_upstream_refresh_replays_total"); m != "tokengw_upstream_refresh_replays_total 1" {
		t.Fatalf("replay metric of the restarted gateway: %q", m)
	}
	// client_credentials results are in the file too: a restarted
	// gateway answers from it.
	c1 := post(t, hc, second.tokenURL(), basic(serviceID, serviceSecret), ccForm())
	second.srv.Close()
	if err := second.app.Close(); err != nil {
		t.Fatal(err)
	}
	third := startGateway(t, upstreamConfig(t, rec.srv.URL, env...), nil)
	c2 := post(t, hc, third.tokenURL(), basic(serviceID, serviceSecret), ccForm())
	if c1.status != http.StatusOK || c2.status != http.StatusOK || c1.str(t, "access_token") != c2.str(t, "access_token") || rec.count("client_credentials") != 1 {
		t.Fatalf("client_credentials across a restart: %d %d, same token %v, %d upstream calls",
			c1.status, c2.status, c1.str(t, "access_token") == c2.str(t, "access_token"), rec.count("client_credentials"))
	}
}
