package server_test

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// scrape returns the samples of /metrics on the admin handler, keyed by the
// sample line's name and labels as printed.
func scrape(t *testing.T, g *gw) map[string]float64 {
	t.Helper()
	srv := httptest.NewServer(g.app.Server.AdminHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

func TestMetricsMoveWithTraffic(t *testing.T) {
	cfg := testConfig(t, "TOKENGW_LIMITS__PER_CLIENT__RATE=1", "TOKENGW_LIMITS__PER_CLIENT__BURST=2")
	g := start(t, cfg, nil)
	before := scrape(t, g)
	for _, k := range []string{`tokengw_tokens_issued_total{source="minted"}`, `tokengw_rate_limited_total{reason="consumer"}`, `tokengw_client_auth_failures_total`} {
		if v, ok := before[k]; !ok || v != 0 {
			t.Fatalf("%s = %v (present %v) before traffic", k, v, ok)
		}
	}
	// 1 mint, 1 reuse hit, 1 rate-limited, 1 wrong secret, 1 bad request.
	for range 3 {
		post(t, g.url(), basic("demo", demoSecret), "grant_type=client_credentials")
	}
	post(t, g.url(), basic(oddID, "wrong"), "grant_type=client_credentials")
	post(t, g.url(), basic(oddID, oddSecret), "grant_type=password")

	m := scrape(t, g)
	want := map[string]float64{
		`tokengw_tokens_issued_total{source="minted"}`:                                                    1,
		`tokengw_tokens_issued_total{source="l1"}`:                                                        1,
		`tokengw_rate_limited_total{reason="consumer"}`:                                                   1,
		`tokengw_client_auth_failures_total`:                                                              1,
		`tokengw_token_requests_total{grant="client_credentials",outcome="minted",status="200"}`:          1,
		`tokengw_token_requests_total{grant="client_credentials",outcome="reused_l1",status="200"}`:       1,
		`tokengw_token_requests_total{grant="client_credentials",outcome="limited",status="429"}`:         1,
		`tokengw_token_requests_total{grant="client_credentials",outcome="error",status="401"}`:           1,
		`tokengw_token_requests_total{grant="other",outcome="error",status="400"}`:                        1,
		`tokengw_store_operation_duration_seconds_count{driver="memory",op="issue",result="ok"}`:          1,
		`tokengw_store_operation_duration_seconds_count{driver="memory",op="current",result="not_found"}`: 1,
		`tokengw_token_request_duration_seconds_count{outcome="minted"}`:                                  1,
		`tokengw_http_requests_in_flight`:                                                                 0,
	}
	for k, v := range want {
		if got, ok := m[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	for _, k := range []string{"go_goroutines", "tokengw_process_resident_memory_bytes", "tokengw_reuse_cache_entries", "tokengw_client_auth_cache_entries"} {
		if _, ok := m[k]; !ok {
			t.Errorf("%s missing", k)
		}
	}
	if m["tokengw_reuse_cache_entries"] != 1 {
		t.Errorf("cache entries = %v, want 1", m["tokengw_reuse_cache_entries"])
	}
}
