//go:build keycloak

package upstream_test

import (
	"bufio"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// accessLines are the access log lines ("msg":"request") of logs.
func accessLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, sc.Bytes())
		}
		if m["msg"] == "request" {
			out = append(out, m)
		}
	}
	return out
}

// metricValue is the value of one series of the gateway's /metrics.
func metricValue(t *testing.T, gw *gateway, series string) int {
	t.Helper()
	m := metric(t, gw, series+" ")
	if m == "" {
		return 0
	}
	v, err := strconv.ParseFloat(strings.TrimPrefix(m, series+" "), 64)
	if err != nil {
		t.Fatalf("metric %s: %q", series, m)
	}
	return int(v)
}

// TestKeycloakAccessLog: every upstream-mode request gets an access line
// with its grant type and outcome, like a local request: miss and hit,
// coalesced (agreeing with the metrics), replay, forwarded, the provider's
// refusal with its error code, upstream_error; and no token or secret.
func TestKeycloakAccessLog(t *testing.T) {
	kc := keycloakURL(t)
	var logs syncBuffer
	gw := startGatewayLog(t, upstreamConfig(t, kc), nil, slog.New(slog.NewJSONHandler(&logs, nil)))
	hc := httpClient(20)

	// client_credentials: 20 at once, then one more (a hit).
	concurrently(t, 20, func(int) answer { return post(t, hc, gw.tokenURL(), basic(serviceID, serviceSecret), ccForm()) })
	cc := post(t, hc, gw.tokenURL(), basic(serviceID, serviceSecret), ccForm())
	// refresh_token: the call, then a replay.
	rt := passwordGrant(t, hc, kc)
	r1 := post(t, hc, gw.tokenURL(), basic(appID, appSecret), refreshForm(rt))
	post(t, hc, gw.tokenURL(), basic(appID, appSecret), refreshForm(rt))
	// A grant that is never cached, and a wrong secret.
	post(t, hc, gw.tokenURL(), basic(appID, appSecret), url.Values{
		"grant_type": {"password"}, "username": {userName}, "password": {userPassword},
	})
	post(t, hc, gw.tokenURL(), basic(serviceID, "wrong-secret"), ccForm())

	// A provider that is down.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	var downLogs syncBuffer
	down := startGatewayLog(t, upstreamConfig(t, dead.URL), nil, slog.New(slog.NewJSONHandler(&downLogs, nil)))
	post(t, hc, down.tokenURL(), basic(serviceID, serviceSecret), ccForm())

	lines := accessLines(t, logs.String())
	if len(lines) != 25 {
		t.Fatalf("%d access lines, want 25 (one per request): %s", len(lines), logs.String())
	}
	count := map[string]int{}
	for _, l := range lines[:21] {
		if l["grant"] != "client_credentials" || l["client_id"] != serviceID || l["status"] != float64(200) {
			t.Fatalf("client_credentials line: %v", l)
		}
		count[l["outcome"].(string)]++
	}
	if count["miss"] != 1 || count["miss"]+count["coalesced"]+count["hit"] != 21 {
		t.Fatalf("client_credentials outcomes %v: want one miss, the rest coalesced or hit", count)
	}
	if got := metricValue(t, gw, `tokengw_upstream_coalesced_total{grant="client_credentials",where="local"}`); got != count["coalesced"] {
		t.Fatalf("coalesced lines %d, coalesced metric %d", count["coalesced"], got)
	}
	if got := metricValue(t, gw, `tokengw_upstream_cache_hits_total{tier="l1"}`); got != count["hit"] {
		t.Fatalf("hit lines %d, hit metric %d", count["hit"], got)
	}
	if got := metricValue(t, gw, `tokengw_token_requests_total{grant="client_credentials",outcome="hit",status="200"}`); got != count["hit"] {
		t.Fatalf("hit lines %d, token request metric %d", count["hit"], got)
	}
	for i, want := range []struct{ grant, outcome string }{
		{"refresh_token", "miss"}, {"refresh_token", "replay"}, {"password", "forwarded"},
	} {
		l := lines[21+i]
		if l["grant"] != want.grant || l["outcome"] != want.outcome || l["client_id"] != appID || l["status"] != float64(200) {
			t.Fatalf("line %d: %v, want grant %s outcome %s", 21+i, l, want.grant, want.outcome)
		}
	}
	if l := lines[24]; l["outcome"] != "miss" || l["status"] != float64(401) || l["error"] == nil || l["error"] == "" {
		t.Fatalf("wrong secret: %v, want outcome miss, status 401 and the provider's error code", l)
	}
	// The store operations of upstream mode are in the store metrics.
	if m := metric(t, gw, "tokengw_store_operation_duration_seconds_count"); !strings.Contains(m, `op="upstream_put"`) ||
		!strings.Contains(m, `op="upstream_lease"`) || !strings.Contains(m, `op="upstream_replay"`) {
		t.Fatalf("upstream store operations not observed: %s", m)
	}
	dl := accessLines(t, downLogs.String())
	if len(dl) != 1 || dl[0]["outcome"] != "upstream_error" || dl[0]["status"] != float64(503) ||
		dl[0]["error"] != "temporarily_unavailable" || dl[0]["grant"] != "client_credentials" {
		t.Fatalf("provider down: %v", dl)
	}
	all := logs.String() + downLogs.String()
	for _, secret := range []string{rt, r1.str(t, "refresh_token"), r1.str(t, "access_token"), cc.str(t, "access_token"),
		serviceSecret, appSecret, userPassword, "wrong-secret"} {
		if secret != "" && strings.Contains(all, secret) {
			t.Fatalf("a token or secret reached the log")
		}
	}
}
