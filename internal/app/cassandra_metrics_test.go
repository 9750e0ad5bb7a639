//go:build cassandra

package app_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestCassandraDriverMetrics: a gateway on Cassandra exports the driver's
// counts of degraded reads, quorum-gate probes and refusals, and write
// resends on /metrics (zero on a healthy node), next to the request and
// store metrics; a mint through it moves the store metrics as usual.
func TestCassandraDriverMetrics(t *testing.T) {
	addr := cassandraAddr(t)
	r := startReplica(t, gatewayConfig(t, addr, newKeyspace(t, addr), newSealKey()))
	hc := newHTTPClient(t, 1)
	mustMint(t, hc, r, "demo", demoSecret, "read")

	admin := httptest.NewServer(r.app.Server.AdminHandler())
	defer admin.Close()
	resp, err := http.Get(admin.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d %v", resp.StatusCode, err)
	}
	text := string(body)
	for _, line := range []string{
		`tokengw_cassandra_degraded_reads_total{how="fallback"} 0`,
		`tokengw_cassandra_degraded_reads_total{how="direct"} 0`,
		`tokengw_cassandra_quorum_gate_total{result="probe"} 0`,
		`tokengw_cassandra_quorum_gate_total{result="refused"} 0`,
		`tokengw_cassandra_write_resends_total 0`,
		`tokengw_store_operation_duration_seconds_count{driver="cassandra",op="issue",result="ok"} 1`,
	} {
		if !strings.Contains(text, line+"\n") {
			t.Errorf("no %q on /metrics", line)
		}
	}
}
