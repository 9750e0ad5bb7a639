package server

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// exposition is m's /metrics text.
func exposition(t *testing.T, m *Metrics) string {
	t.Helper()
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	if w.Code != 200 {
		t.Fatalf("/metrics: %d", w.Code)
	}
	return w.Body.String()
}

// TestObserveTokenTableAndMap: label combinations found in the fixed table
// and those that fall back to the series map land on the same series as
// WithLabelValues names them, and repeated observations add up.
func TestObserveTokenTableAndMap(t *testing.T) {
	m := NewMetrics()
	m.observeToken("client_credentials", "reused_l1", 200, time.Millisecond) // table
	m.observeToken("client_credentials", "reused_l1", 200, time.Millisecond) // table, cached
	m.observeToken("client_credentials", "reused_l1", 418, time.Millisecond) // status outside the table
	m.observeToken("client_credentials", "novel", 200, time.Millisecond)     // outcome outside the table
	m.observeToken("password", "", 400, time.Millisecond)                    // grant "other", outcome "error"
	m.observeToken("", "shed", 503, time.Millisecond)
	text := exposition(t, m)
	for _, c := range []struct{ line, want string }{
		{`tokengw_token_requests_total{grant="client_credentials",outcome="reused_l1",status="200"}`, " 2\n"},
		{`tokengw_token_requests_total{grant="client_credentials",outcome="reused_l1",status="418"}`, " 1\n"},
		{`tokengw_token_requests_total{grant="client_credentials",outcome="novel",status="200"}`, " 1\n"},
		{`tokengw_token_requests_total{grant="other",outcome="error",status="400"}`, " 1\n"},
		{`tokengw_token_requests_total{grant="",outcome="shed",status="503"}`, " 1\n"},
		{`tokengw_token_request_duration_seconds_count{outcome="reused_l1"}`, " 3\n"},
	} {
		if !strings.Contains(text, c.line+c.want) {
			t.Errorf("no %s%s in:\n%s", c.line, strings.TrimSpace(c.want), text)
		}
	}
	if strings.Contains(text, `grant="password"`) {
		t.Error("an unknown grant became a label value")
	}
}
