//go:build cassandra

package app_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkCassandraToken: POST /oauth2/token through the whole gateway
// (HTTP, client authentication, reuse, the Cassandra store) against the
// real Cassandra of TEST_CASSANDRA_ADDR. Run it with
//
//	TEST_CASSANDRA_ADDR=127.0.0.1:9042 go test -tags cassandra -run '^$' -bench . -benchtime 5s ./internal/app/
//
// The cases:
//   - reuse-off: every request mints: one INSERT INTO tokens ... USING TTL
//     (Issue without a reuse slot) before the answer.
//   - reuse-on: one consumer; the first request mints (lightweight
//     transaction on the reuse slot), the rest are L1 hits, with a store
//     re-check (one read) every reuse.local_ttl (default 5 s).
//
// Requests come from 16 goroutines per GOMAXPROCS (TEST_BENCH_PARALLELISM
// overrides the 16) over keep-alive connections. Besides ns/op it reports
// requests per second, the latency of single requests (p50-ms, p99-ms) and
// mints/op from the gateway's counters.
func BenchmarkCassandraToken(b *testing.B) {
	addr := cassandraAddr(b)
	par := 16
	if n, err := strconv.Atoi(os.Getenv("TEST_BENCH_PARALLELISM")); err == nil && n > 0 {
		par = n
	}
	for _, bc := range []struct {
		name  string
		reuse bool
	}{{"reuse-off", false}, {"reuse-on", true}} {
		// One keyspace and gateway per case, shared by every run of the
		// sub-benchmark (the testing package calls its function several
		// times with growing b.N) and released when the parent ends.
		var (
			once sync.Once
			gw   *replica
			hc   *http.Client
		)
		b.Run(bc.name, func(sb *testing.B) {
			once.Do(func() {
				ks := newKeyspaceCleanup(sb, addr, b.Cleanup)
				cfg := gatewayConfig(sb, addr, ks, newSealKey(), "TOKENGW_REUSE__ENABLED="+strconv.FormatBool(bc.reuse))
				gw = startReplicaCleanup(sb, cfg, b.Cleanup)
				hc = newHTTPClient(b, par*runtime.GOMAXPROCS(0))
				// Warm up: the verified-credential cache, prepared
				// statements, the connection pool.
				mustMint(sb, hc, gw, "demo", demoSecret, "read write")
			})
			if gw == nil {
				sb.Fatal("setup failed in an earlier run")
			}
			benchTokens(sb, hc, gw, par)
		})
	}
}

func benchTokens(b *testing.B, hc *http.Client, gw *replica, par int) {
	var (
		mu  sync.Mutex
		all = make([]time.Duration, 0, 1024)
	)
	ctx := context.Background()
	before := gw.app.Reuser.Stats().Mints
	cpu0, cass0 := processCPU(os.Getpid()), processCPU(cassandraPID())
	b.SetParallelism(par)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			t0 := time.Now()
			tr, err := requestToken(ctx, hc, gw, "demo", demoSecret, "read write")
			if err != nil || tr.Status != http.StatusOK || tr.AccessToken == "" {
				b.Errorf("token request: %v %v", err, tr)
				return
			}
			local = append(local, time.Since(t0))
		}
		mu.Lock()
		all = append(all, local...)
		mu.Unlock()
	})
	b.StopTimer()
	cpu1, cass1 := processCPU(os.Getpid()), processCPU(cassandraPID())
	if len(all) == 0 {
		return
	}
	// Where the time goes: CPU of this process (gateway and load
	// generator together) and, with TEST_CASSANDRA_PID, of the Cassandra
	// node, per request.
	b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "proc-cpu-us/op")
	if cass0 >= 0 {
		b.ReportMetric(float64((cass1-cass0).Microseconds())/float64(b.N), "cassandra-cpu-us/op")
	}
	slices.Sort(all)
	q := func(p float64) float64 {
		return float64(all[int(p*float64(len(all)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	b.ReportMetric(float64(gw.app.Reuser.Stats().Mints-before)/float64(b.N), "mints/op")
}

// cassandraPID is TEST_CASSANDRA_PID (scripts/cassandra.sh status prints
// it), or -1.
func cassandraPID() int {
	if n, err := strconv.Atoi(os.Getenv("TEST_CASSANDRA_PID")); err == nil && n > 0 {
		return n
	}
	return -1
}

// processCPU is the user+system CPU time of process pid from
// /proc/PID/stat; -1 for pid -1 or an unreadable file.
func processCPU(pid int) time.Duration {
	if pid < 0 {
		return -1
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return -1
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)        // utime, field 14
	st, _ := strconv.ParseInt(f[12], 10, 64)        // stime, field 15
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}
