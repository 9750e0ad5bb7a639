//go:build cassandra

package cassandra_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/store"
)

// Benchmarks of the store's three hot statements against the real
// Cassandra of TEST_CASSANDRA_ADDR:
//
//	go test -tags cassandra -run '^$' -bench . -benchtime 10000x ./internal/store/cassandra/
//
// Each runs 16 goroutines per GOMAXPROCS (a gateway has many requests in
// flight; TEST_BENCH_PARALLELISM overrides the 16) and reports, besides
// ns/op, the throughput (ops/s) and the latency of single operations
// (p50-ms, p99-ms).
func benchParallelism() int {
	if n, err := strconv.Atoi(os.Getenv("TEST_BENCH_PARALLELISM")); err == nil && n > 0 {
		return n
	}
	return 16
}

// latencies collects per-operation durations from parallel goroutines.
type latencies struct {
	mu  sync.Mutex
	all []time.Duration
}

func (l *latencies) add(d []time.Duration) {
	l.mu.Lock()
	l.all = append(l.all, d...)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B) {
	b.Helper()
	if len(l.all) == 0 {
		return
	}
	slices.Sort(l.all)
	q := func(p float64) float64 {
		i := int(p * float64(len(l.all)-1))
		return float64(l.all[i]) / float64(time.Millisecond)
	}
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

var benchSeq atomic.Uint64

func benchHash(n uint64) []byte {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixNano()))
	binary.BigEndian.PutUint64(b[8:], n)
	h := sha256.Sum256(b[:])
	return h[:]
}

// runParallel times op in b.RunParallel and reports the latencies.
func runParallel(b *testing.B, op func(n uint64) error) {
	var lat latencies
	b.SetParallelism(benchParallelism())
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			n := benchSeq.Add(1)
			t0 := time.Now()
			if err := op(n); err != nil {
				b.Error(err)
				return
			}
			local = append(local, time.Since(t0))
		}
		lat.add(local)
	})
	b.StopTimer()
	lat.report(b)
}

// BenchmarkIssue: reuse off, Issue(tok, nil): one INSERT ... USING TTL.
func BenchmarkIssue(b *testing.B) {
	s := openStore(b, sharedConfig(b))
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	runParallel(b, func(n uint64) error {
		tok := store.Token{Hash: benchHash(n), ClientID: "bench", Scope: "read write",
			IssuedAt: now, ExpiresAt: now.Add(10 * time.Minute)}
		_, _, err := s.Issue(ctx, tok, nil)
		return err
	})
}

// BenchmarkIssueClaim: the mint path with reuse on, every op a distinct
// slot: the INSERT ... IF NOT EXISTS lightweight transaction, then the
// token INSERT. Paxos serialises lightweight transactions per partition,
// and current_tokens is partitioned by client: "clients" spreads the slots
// over distinct clients (many consumers minting), "one-client" puts them
// all in one partition (one consumer minting thousands of distinct scope
// sets at once, which real consumers do not).
func BenchmarkIssueClaim(b *testing.B) {
	for _, bc := range []struct {
		name   string
		client func(n uint64) string
	}{
		{"clients", func(n uint64) string { return fmt.Sprintf("bench-%d", n) }},
		{"one-client", func(uint64) string { return "bench" }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := openStore(b, sharedConfig(b))
			ctx := context.Background()
			now := time.Now().Truncate(time.Millisecond)
			runParallel(b, func(n uint64) error {
				tok := store.Token{Hash: benchHash(n), ClientID: bc.client(n), Scope: "read", ReuseKey: fmt.Sprintf("slot-%d", n),
					IssuedAt: now, ExpiresAt: now.Add(10 * time.Minute)}
				cur := &store.Current{ClientID: tok.ClientID, ReuseKey: tok.ReuseKey, TokenHash: tok.Hash,
					Sealed: make([]byte, 60), Scope: tok.Scope, IssuedAt: now, ExpiresAt: tok.ExpiresAt, ReuseUntil: now.Add(5 * time.Minute)}
				_, claimed, err := s.Issue(ctx, tok, cur)
				if err == nil && !claimed {
					err = fmt.Errorf("slot %s/%s was not claimed", tok.ClientID, tok.ReuseKey)
				}
				return err
			})
		})
	}
}

// BenchmarkCurrent: the reuse lookup of a live row (the L2 read behind the
// gateway's L1 cache).
func BenchmarkCurrent(b *testing.B) {
	s := openStore(b, sharedConfig(b))
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	key := fmt.Sprintf("read-%d", benchSeq.Add(1))
	tok := store.Token{Hash: benchHash(0), ClientID: "bench-current", Scope: "read", ReuseKey: key,
		IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	cur := &store.Current{ClientID: tok.ClientID, ReuseKey: key, TokenHash: tok.Hash, Sealed: make([]byte, 60),
		Scope: tok.Scope, IssuedAt: now, ExpiresAt: tok.ExpiresAt, ReuseUntil: now.Add(30 * time.Minute)}
	if _, _, err := s.Issue(ctx, tok, cur); err != nil {
		b.Fatal(err)
	}
	runParallel(b, func(uint64) error {
		_, err := s.Current(ctx, tok.ClientID, key)
		return err
	})
}
