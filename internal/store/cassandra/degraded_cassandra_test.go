//go:build cassandra

package cassandra_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/cassandra"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// rf3 is a keyspace with replication factor 3 on the single test node: a
// cluster with two of three replicas down, where QUORUM is unavailable and
// ONE is not. It holds what a quorum wrote before two replicas died
// (written at ONE here: this node is the one replica left) — token hash,
// its reuse row c1/k1 and client c1 — and s is a store on it with the
// driver's view of the nodes up and down replaced by hosts and the clock
// by clk.
type rf3 struct {
	s    *cassandra.Store
	hash []byte
	clk  *testClock
}

func newRF3(t *testing.T, hosts func() (up, down int)) rf3 {
	t.Helper()
	ks := randomKeyspace("tokengw_rf3_")
	cfg := baseConfig(t, ks)
	cfg.Consistency = "QUORUM"
	cfg.Replication = map[string]string{"class": "SimpleStrategy", "replication_factor": "3"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cassandra.Migrate(ctx, cfg); err != nil {
		t.Fatalf("migrate %s: %v", ks, err)
	}
	clk := &testClock{t: time.Now()}
	cfg.Replication = nil // Open reads it from the cluster's schema
	s, err := cassandra.Open(ctx, cfg, cassandra.Options{Now: clk.Now})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if short, size := cassandra.Replication(s); short != 2 || size != 2 {
		t.Fatalf("replication read from the schema: %d nodes down can leave a partition short, a quorum is %d; want 2, 2", short, size)
	}
	cassandra.SetReadFault(s, nil, hosts)

	raw := rawSession(t)
	now := time.Now().Truncate(time.Millisecond)
	hash := sha256.Sum256([]byte("degraded-token"))
	exp := now.Add(time.Hour)
	for _, q := range []struct {
		stmt string
		args []any
	}{
		{fmt.Sprintf(`INSERT INTO %s.tokens (token_hash, client_id, scope, reuse_key, issued_at, expires_at) VALUES (?, 'c1', 'read', 'k1', ?, ?) USING TTL 3600`, ks),
			[]any{hash[:], now, exp}},
		{fmt.Sprintf(`INSERT INTO %s.current_tokens (client_id, reuse_key, token_hash, sealed, scope, issued_at, expires_at, reuse_until) VALUES ('c1', 'k1', ?, ?, 'read', ?, ?, ?) USING TTL 3600`, ks),
			[]any{hash[:], []byte("sealed"), now, exp, now.Add(30 * time.Minute)}},
		{fmt.Sprintf(`INSERT INTO %s.clients (client_id, secret_hash, scopes, token_ttl) VALUES ('c1', 'h', {'read'}, 0)`, ks), nil},
	} {
		if err := raw.Query(q.stmt, q.args...).Exec(); err != nil {
			t.Fatalf("seed: %v", err)
		}
	}
	return rf3{s: s, hash: hash[:], clk: clk}
}

func rctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	t.Cleanup(cancel)
	return c
}

// TestReadsDegradeWhileQuorumShort: the driver sees every node up, the
// coordinator answers Unavailable. The reuse-path reads (the slot, the
// token, the client) still answer, at one replica; after one failed quorum
// attempt the next reads go there at once for a second (injected clock),
// then quorum is tried again. Writes do not degrade.
func TestReadsDegradeWhileQuorumShort(t *testing.T) {
	c := newRF3(t, func() (int, int) { return 3, 0 })
	s := c.s
	// First read: QUORUM is unavailable, ONE answers.
	tok, err := s.Token(rctx(t), c.hash)
	if err != nil || tok.ClientID != "c1" || tok.Revoked {
		t.Fatalf("Token with a quorum down: %+v %v", tok, err)
	}
	if fb, direct := cassandra.DegradedReads(s); fb != 1 || direct != 0 {
		t.Fatalf("after the first read: %d fallbacks, %d direct; want 1, 0", fb, direct)
	}
	// Within quorumShortFor: straight to one replica.
	cur, err := s.Current(rctx(t), "c1", "k1")
	if err != nil || string(cur.Sealed) != "sealed" {
		t.Fatalf("Current with a quorum down: %+v %v", cur, err)
	}
	if cl, err := s.Client(rctx(t), "c1"); err != nil || cl.ID != "c1" {
		t.Fatalf("Client with a quorum down: %+v %v", cl, err)
	}
	fb, direct := cassandra.DegradedReads(s)
	if fb != 1 || direct < 3 { // Current: slot + token; Client
		t.Fatalf("within a second of the failed quorum read: %d fallbacks, %d direct; want 1 and at least 3", fb, direct)
	}
	// A second later quorum is tried again (and fails again here).
	c.clk.Advance(1100 * time.Millisecond)
	if _, err := s.Token(rctx(t), c.hash); err != nil {
		t.Fatal(err)
	}
	if fb2, _ := cassandra.DegradedReads(s); fb2 != 2 {
		t.Fatalf("after the quorum-short second: %d fallbacks, want 2 (quorum tried again)", fb2)
	}
	// Missing rows are still ErrNotFound at ONE.
	if _, err := s.Current(rctx(t), "c1", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing slot with a quorum down: %v, want ErrNotFound", err)
	}
	// Writes never degrade: a revocation needs a quorum. The driver sees
	// the nodes up, so the gate lets it through to the coordinator.
	if err := s.Revoke(rctx(t), c.hash); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Revoke with a quorum down: %v, want ErrUnavailable", err)
	}
	if probes, refused := cassandra.QuorumGate(s); probes != 0 || refused != 0 {
		t.Fatalf("quorum gate with the nodes seen up: %d probes, %d refused; want none", probes, refused)
	}
}

// TestQuorumGate: with two of three nodes down in the driver's view, a
// quorum is impossible. Reuse-path reads go to one replica with no quorum
// attempt first; operations that need a quorum (a mint's claim, a
// revocation, a jti claim, a revoke-all's clear) are refused at once with
// ErrUnavailable and never sent, except one probe per half second
// (injected clock); a probe that succeeds lets everything through for a
// second.
func TestQuorumGate(t *testing.T) {
	var up atomic.Int32
	up.Store(1)
	c := newRF3(t, func() (int, int) { n := int(up.Load()); return n, 3 - n })
	s := c.s
	var quorumAttempts atomic.Int32
	cassandra.SetReadFault(s, func(cons gocql.Consistency, run func() error) error {
		if cons != gocql.One {
			quorumAttempts.Add(1)
		}
		return run()
	}, func() (int, int) { n := int(up.Load()); return n, 3 - n })

	if tok, err := s.Token(rctx(t), c.hash); err != nil || tok.ClientID != "c1" {
		t.Fatalf("Token with two nodes down: %+v %v", tok, err)
	}
	if cur, err := s.Current(rctx(t), "c1", "k1"); err != nil || string(cur.Sealed) != "sealed" {
		t.Fatalf("Current with two nodes down: %+v %v", cur, err)
	}
	if n := quorumAttempts.Load(); n != 0 {
		t.Fatalf("%d quorum attempts with a quorum impossible, want 0", n)
	}
	if fb, direct := cassandra.DegradedReads(s); fb != 0 || direct < 3 {
		t.Fatalf("two nodes down: %d fallbacks, %d direct; want 0 and at least 3", fb, direct)
	}

	now := time.Now().Truncate(time.Millisecond)
	mint := func(name string) error {
		h := sha256.Sum256([]byte(name))
		tok := store.Token{Hash: h[:], ClientID: "c2", Scope: "read", ReuseKey: "k", IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
		cur := &store.Current{ClientID: "c2", ReuseKey: "k", TokenHash: h[:], Sealed: []byte("s"), Scope: "read",
			IssuedAt: now, ExpiresAt: now.Add(time.Hour), ReuseUntil: now.Add(time.Minute)}
		_, _, err := s.Issue(rctx(t), tok, cur)
		return err
	}
	// The first operation is the probe: sent, and unavailable here.
	if err := mint("probe"); !errors.Is(err, store.ErrUnavailable) || errors.Is(err, cassandra.ErrQuorumDown) {
		t.Fatalf("the probe mint: %v, want ErrUnavailable from the coordinator", err)
	}
	// Within the half second: refused at once, never sent.
	for i, op := range []func() error{
		func() error { return mint("refused") },
		func() error { return s.Revoke(rctx(t), c.hash) },
		func() error { return s.ClaimAssertion(rctx(t), "iss", []byte("jti"), now.Add(time.Minute)) },
		func() error { return s.ClearCurrents(rctx(t), "c1") },
	} {
		if err := op(); !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, cassandra.ErrQuorumDown) {
			t.Fatalf("operation %d with a quorum impossible: %v, want ErrUnavailable from the gate", i, err)
		}
	}
	if probes, refused := cassandra.QuorumGate(s); probes != 1 || refused != 4 {
		t.Fatalf("gate: %d probes, %d refused; want 1, 4", probes, refused)
	}
	// The revocation refused above did not happen.
	if tok, err := s.Token(rctx(t), c.hash); err != nil || tok.Revoked {
		t.Fatalf("after the refused revocation: %+v %v", tok, err)
	}
	// Half a second later the next operation is a probe again.
	c.clk.Advance(600 * time.Millisecond)
	if err := mint("probe-2"); errors.Is(err, cassandra.ErrQuorumDown) {
		t.Fatalf("the second probe was refused: %v", err)
	}
	if probes, _ := cassandra.QuorumGate(s); probes != 2 {
		t.Fatalf("gate: %d probes, want 2", probes)
	}
	// The nodes are back in the driver's view: the gate is open, reads
	// try a quorum first again.
	up.Store(3)
	if err := s.ClearCurrents(rctx(t), "c1"); errors.Is(err, cassandra.ErrQuorumDown) {
		t.Fatalf("ClearCurrents with the nodes up: %v", err)
	}
	if _, err := s.Token(rctx(t), c.hash); err != nil {
		t.Fatal(err)
	}
	if quorumAttempts.Load() != 1 {
		t.Fatalf("with the nodes up: %d quorum attempts, want 1", quorumAttempts.Load())
	}
}

// TestQuorumGateOpensOnProbeSuccess: the driver may be cut off from nodes
// the coordinator still reaches. A probe that succeeds lets every
// operation through for a second; then probing starts again.
func TestQuorumGateOpensOnProbeSuccess(t *testing.T) {
	cfg := sharedConfig(t) // replication factor 1: a write succeeds on the one node
	clk := &testClock{t: time.Now()}
	s2, err := cassandra.Open(rctx(t), cfg, cassandra.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s2.Close() })
	// A view of three nodes with replication factor 3 and one up.
	cassandra.SetQuorumSize(s2, 2)
	cassandra.SetReadFault(s2, nil, func() (int, int) { return 1, 2 })
	clear := func() error { return s2.ClearCurrents(rctx(t), "gate-client") }
	if err := clear(); err != nil {
		t.Fatalf("the probe: %v", err)
	}
	for range 5 {
		if err := clear(); err != nil {
			t.Fatalf("after a probe that succeeded: %v", err)
		}
	}
	if probes, refused := cassandra.QuorumGate(s2); probes != 1 || refused != 0 {
		t.Fatalf("gate: %d probes, %d refused; want 1, 0", probes, refused)
	}
	clk.Advance(1100 * time.Millisecond)
	if err := clear(); err != nil {
		t.Fatal(err)
	}
	if err := clear(); err != nil {
		t.Fatal(err)
	}
	if probes, refused := cassandra.QuorumGate(s2); probes != 2 || refused != 0 {
		t.Fatalf("a second later: %d probes, %d refused; want 2, 0", probes, refused)
	}
}

// TestTimeoutsDegradeOnlyWithNodesDown: a quorum read that times out drops
// to one replica only while the driver sees enough nodes down for a
// partition to lack a quorum (two here: five nodes in the driver's view,
// replication factor 3); with the nodes up a timeout is an overloaded
// cluster, whose one replica may lag an acknowledged revocation, and the
// read fails (issue 18's cluster test saw a revoked token handed out by
// reads at ONE during its warm-up).
func TestTimeoutsDegradeOnlyWithNodesDown(t *testing.T) {
	var down atomic.Int32
	hosts := func() (int, int) { d := int(down.Load()); return 5 - d, d }
	c := newRF3(t, hosts)
	s := c.s
	cassandra.SetReadFault(s, func(cons gocql.Consistency, run func() error) error {
		if cons == gocql.Quorum {
			return gocql.ErrTimeoutNoResponse
		}
		return run()
	}, hosts)

	if _, err := s.Token(rctx(t), c.hash); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("quorum read timing out with every node up: %v, want ErrUnavailable (no read at one replica)", err)
	}
	if fb, direct := cassandra.DegradedReads(s); fb != 0 || direct != 0 {
		t.Fatalf("nodes up: %d fallbacks, %d direct; want none", fb, direct)
	}
	down.Store(2)
	if tok, err := s.Token(rctx(t), c.hash); err != nil || tok.ClientID != "c1" {
		t.Fatalf("quorum read timing out with two of five nodes down: %+v %v, want the row from one replica", tok, err)
	}
	if fb, _ := cassandra.DegradedReads(s); fb != 1 {
		t.Fatalf("two nodes down: %d fallbacks, want 1", fb)
	}
}
