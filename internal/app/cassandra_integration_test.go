//go:build cassandra

package app_test

// Integration tests of tokengw replicas sharing one Cassandra keyspace
// (issues 5 and 7). Run with
//
//	TEST_CASSANDRA_ADDR=127.0.0.1:9042 go test -race -count=1 -tags cassandra ./internal/app/
//
// The outage test (Cassandra stopped under a running gateway) is in
// cassandra_outage_test.go, behind its own build tag, because it stops the
// shared node.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/tokengw/tokengw/internal/clientauth"
	"github.com/tokengw/tokengw/internal/store"
)

func mints(rs ...*replica) (n uint64) {
	for _, r := range rs {
		n += r.app.Reuser.Stats().Mints
	}
	return n
}

// Two replicas on one keyspace, 100 concurrent requests of one consumer
// split across both: one token. Singleflight collapses each replica's
// misses; the lightweight transaction on the reuse slot makes one replica's
// claim win, and the other hands out the winner's token.
func TestCassandraTwoReplicasMintOneToken(t *testing.T) {
	addr := cassandraAddr(t)
	ks := newKeyspace(t, addr)
	seal := newSealKey()
	reps := []*replica{
		startReplica(t, gatewayConfig(t, addr, ks, seal)),
		startReplica(t, gatewayConfig(t, addr, ks, seal)),
	}
	const n = 100
	hc := newHTTPClient(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	results := make([]tokenResp, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = requestToken(ctx, hc, reps[i%2], "demo", demoSecret, "read write")
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	t.Logf("%d concurrent requests over 2 replicas answered in %v", n, time.Since(t0).Round(time.Millisecond))

	want := ""
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("request %d (replica %d): %v", i, i%2, errs[i])
		}
		r := results[i]
		if r.Status != http.StatusOK || r.AccessToken == "" || r.TokenType != "Bearer" || r.Scope != "read write" {
			t.Fatalf("request %d (replica %d): %v", i, i%2, r)
		}
		if want == "" {
			want = r.AccessToken
		}
		if r.AccessToken != want {
			t.Fatalf("request %d (replica %d) got token …%s, request 0 got …%s: two tokens for one consumer",
				i, i%2, tail(r.AccessToken), tail(want))
		}
	}
	if got := reps[0].tokenCount(t); got != 1 {
		t.Fatalf("tokens table holds %d live tokens, want 1", got)
	}
	if got := mints(reps...); got != 1 {
		t.Fatalf("replicas report %d mints, want 1 (replica 0: %+v, replica 1: %+v)",
			got, reps[0].app.Reuser.Stats(), reps[1].app.Reuser.Stats())
	}
	for i, r := range reps {
		t.Logf("replica %d: %+v", i, r.app.Reuser.Stats())
	}
}

// A token minted through one replica is handed out by the other (from the
// shared reuse row, with a recomputed expires_in), in both directions; after
// both replicas restart (new Apps: empty L1 caches, new Cassandra sessions,
// new HTTP servers), the live tokens are still the ones handed out and
// nothing is minted.
func TestCassandraReuseAcrossReplicasAndRestart(t *testing.T) {
	addr := cassandraAddr(t)
	ks := newKeyspace(t, addr)
	seal := newSealKey()
	startBoth := func() (*replica, *replica) {
		return startReplica(t, gatewayConfig(t, addr, ks, seal)), startReplica(t, gatewayConfig(t, addr, ks, seal))
	}
	a, b := startBoth()
	hc := newHTTPClient(t, 4)

	// demo/read minted through A, reused through B.
	t1 := mustMint(t, hc, a, "demo", demoSecret, "read")
	if s := a.app.Reuser.Stats(); s.Mints != 1 {
		t.Fatalf("A did not mint: %+v", s)
	}
	got := mustMint(t, hc, b, "demo", demoSecret, "read")
	if got.AccessToken != t1.AccessToken {
		t.Fatalf("B minted its own token (…%s) instead of reusing A's (…%s)", tail(got.AccessToken), tail(t1.AccessToken))
	}
	if got.ExpiresIn > t1.ExpiresIn || got.ExpiresIn <= 0 || got.Scope != "read" {
		t.Fatalf("B's reused token: %v; A's: %v", got, t1)
	}
	if s := b.app.Reuser.Stats(); s.Mints != 0 || s.L2Hits != 1 {
		t.Fatalf("B should have found A's token in the store: %+v", s)
	}

	// other/read minted through B, reused through A.
	t2 := mustMint(t, hc, b, "other", otherSecret, "")
	if t2.AccessToken == t1.AccessToken {
		t.Fatal("two consumers share a token")
	}
	if got := mustMint(t, hc, a, "other", otherSecret, ""); got.AccessToken != t2.AccessToken || got.ExpiresIn > t2.ExpiresIn {
		t.Fatalf("A did not reuse B's token: got %v, B minted %v", got, t2)
	}
	if n := a.tokenCount(t); n != 2 {
		t.Fatalf("%d live tokens, want 2", n)
	}

	// Restart both.
	a.close()
	b.close()
	a, b = startBoth()
	for _, c := range []struct {
		r              *replica
		id, sec, scope string
		want           tokenResp
	}{
		{a, "demo", demoSecret, "read", t1},
		{b, "demo", demoSecret, "read", t1},
		{b, "other", otherSecret, "", t2},
		{a, "other", otherSecret, "", t2},
	} {
		got := mustMint(t, hc, c.r, c.id, c.sec, c.scope)
		if got.AccessToken != c.want.AccessToken || got.ExpiresIn > c.want.ExpiresIn {
			t.Fatalf("after restart, %s %q: got %v, want the live token %v", c.id, c.scope, got, c.want)
		}
	}
	if m := mints(a, b); m != 0 {
		t.Fatalf("restarted replicas minted %d tokens; A %+v, B %+v", m, a.app.Reuser.Stats(), b.app.Reuser.Stats())
	}
	if n := a.tokenCount(t); n != 2 {
		t.Fatalf("%d live tokens after restart, want 2", n)
	}
}

// Issue 7: a token revoked through replica A (by its owner) is inactive
// through replica B's introspection within reuse.local_ttl, and B stops
// handing it out within reuse.local_ttl: its next token request after that
// bound returns a new token, which A then reuses too.
func TestCassandraRevocationAcrossReplicas(t *testing.T) {
	const localTTL = time.Second
	// Margin over local_ttl for the request round trips and the store
	// re-check under the race detector; the measured times are logged.
	const margin = 2 * time.Second
	addr := cassandraAddr(t)
	ks := newKeyspace(t, addr)
	seal := newSealKey()
	env := "TOKENGW_REUSE__LOCAL_TTL=" + localTTL.String()
	a := startReplica(t, gatewayConfig(t, addr, ks, seal, env))
	b := startReplica(t, gatewayConfig(t, addr, ks, seal, env))
	hc := newHTTPClient(t, 4)

	tok := mustMint(t, hc, a, "demo", demoSecret, "")
	// B learns the token (reuse row -> B's L1) and caches it as live for
	// introspection: exactly the state in which a replica could keep
	// handing out a revoked token.
	if got := mustMint(t, hc, b, "demo", demoSecret, ""); got.AccessToken != tok.AccessToken {
		t.Fatalf("B did not reuse A's token: %v vs %v", got, tok)
	}
	for name, r := range map[string]*replica{"A": a, "B": b} {
		if m := introspect(t, hc, r, tok.AccessToken); m["active"] != true || m["client_id"] != "demo" {
			t.Fatalf("introspection through %s before revocation: %v", name, m)
		}
	}

	revoke(t, hc, a, "demo", demoSecret, tok.AccessToken)
	revokedAt := time.Now()
	// On A at once: its caches were told.
	if m := introspect(t, hc, a, tok.AccessToken); len(m) != 1 || m["active"] != false {
		t.Fatalf("introspection through A right after revocation: %v", m)
	}

	// B: inactive within local_ttl.
	waitFor(t, "B reports the revoked token inactive", localTTL+margin, 20*time.Millisecond, func() (bool, string) {
		m := introspect(t, hc, b, tok.AccessToken)
		if m["active"] == false {
			if len(m) != 1 {
				t.Fatalf("inactive answer with more than active: %v", m)
			}
			return true, ""
		}
		return false, fmt.Sprint(m)
	})
	t.Logf("B: revoked token inactive %v after the revocation returned", time.Since(revokedAt).Round(time.Millisecond))

	// B: a new token within local_ttl. Until then B may still hand out the
	// revoked one (its L1 entry is younger than local_ttl); nothing else.
	var next tokenResp
	waitFor(t, "B hands out a new token", localTTL+margin, 20*time.Millisecond, func() (bool, string) {
		next = mustMint(t, hc, b, "demo", demoSecret, "")
		return next.AccessToken != tok.AccessToken, next.String()
	})
	t.Logf("B: new token %v after the revocation returned", time.Since(revokedAt).Round(time.Millisecond))
	for i := range 5 {
		if again := mustMint(t, hc, b, "demo", demoSecret, ""); again.AccessToken != next.AccessToken {
			t.Fatalf("B request %d after the new token: %v, want the new token …%s (revoked: …%s)",
				i, again, tail(next.AccessToken), tail(tok.AccessToken))
		}
	}
	// A reuses B's new token (A dropped its L1 entry at the revocation and
	// finds B's claim in the store); the new token is live on both.
	if got := mustMint(t, hc, a, "demo", demoSecret, ""); got.AccessToken != next.AccessToken {
		t.Fatalf("A after B's new mint: %v, want …%s", got, tail(next.AccessToken))
	}
	for name, r := range map[string]*replica{"A": a, "B": b} {
		if m := introspect(t, hc, r, next.AccessToken); m["active"] != true {
			t.Fatalf("the new token through %s: %v", name, m)
		}
		if m := introspect(t, hc, r, tok.AccessToken); m["active"] != false {
			t.Fatalf("the revoked token through %s: %v", name, m)
		}
	}
	if n := a.tokenCount(t); n != 2 {
		t.Fatalf("%d live tokens, want 2 (the revoked one, still stored as revoked, and the new one)", n)
	}
}

// Issue 7: the Cassandra tables hold no bearer token and no client secret
// in clear. Tokens are minted with reuse on (so sealed reuse copies exist),
// by configured and by store-managed clients, one is revoked; then every
// row of every table of the keyspace is read with a plain gocql session and every column
// value is searched for every token (as text, as raw bytes, as standard
// base64 and as hex of the raw bytes) and every secret.
func TestCassandraTablesHoldNoBearerToken(t *testing.T) {
	addr := cassandraAddr(t)
	ks := newKeyspace(t, addr)
	seal := newSealKey()
	a := startReplica(t, gatewayConfig(t, addr, ks, seal))
	b := startReplica(t, gatewayConfig(t, addr, ks, seal))
	hc := newHTTPClient(t, 4)

	// A client managed in the store (clients table).
	const storedSecret = "stored-secret-0123456789"
	h, err := clientauth.HashSecret(storedSecret, cheapArgon2)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.app.Backend.CreateClient(ctx, store.Client{ID: "stored", SecretHash: h, Scopes: []string{"read"}}); err != nil {
		t.Fatalf("CreateClient: %v", err)
	}

	var tokens []string
	for _, c := range []struct {
		r              *replica
		id, sec, scope string
	}{
		{a, "demo", demoSecret, "read"},
		{b, "demo", demoSecret, "write"},
		{a, "demo", demoSecret, "read write"},
		{b, "other", otherSecret, "read"},
		{a, "stored", storedSecret, "read"},
	} {
		tokens = append(tokens, mustMint(t, hc, c.r, c.id, c.sec, c.scope).AccessToken)
	}
	revoke(t, hc, b, "demo", demoSecret, tokens[0])

	type needle struct {
		what string
		b    []byte
	}
	var needles []needle
	for i, tok := range tokens {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(raw) < 16 {
			t.Fatalf("token %d is not base64url of a random value: %v", i, err)
		}
		needles = append(needles,
			needle{fmt.Sprintf("token %d as issued (base64url)", i), []byte(tok)},
			needle{fmt.Sprintf("token %d raw bytes", i), raw},
			needle{fmt.Sprintf("token %d as standard base64", i), []byte(base64.RawStdEncoding.EncodeToString(raw))},
			needle{fmt.Sprintf("token %d as hex", i), []byte(hex.EncodeToString(raw))},
		)
	}
	for _, s := range []string{demoSecret, otherSecret, rsSecret, storedSecret} {
		needles = append(needles, needle{"client secret " + s[:6] + "…", []byte(s)})
	}

	s, err := rawSession(addr)
	if err != nil {
		t.Fatalf("raw session: %v", err)
	}
	defer s.Close()
	// Every table of the keyspace, not a fixed list: a table added later
	// (an index by client, say) is scanned too.
	var tables []string
	iter := s.Query(`SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?`, ks).IterContext(ctx)
	var name string
	for iter.Scan(&name) {
		tables = append(tables, name)
	}
	if err := iter.Close(); err != nil {
		t.Fatalf("list tables: %v", err)
	}
	for _, want := range []string{"tokens", "current_tokens", "clients"} {
		if !slices.Contains(tables, want) {
			t.Fatalf("keyspace %s has tables %v, no %s", ks, tables, want)
		}
	}
	hashes := map[string]bool{}
	rows := map[string]int{}
	sealed := 0
	for _, table := range tables {
		iter := s.Query(fmt.Sprintf("SELECT * FROM %s.%s", ks, table)).Consistency(gocql.LocalQuorum).IterContext(ctx)
		for {
			row := map[string]any{}
			if !iter.MapScan(row) {
				break
			}
			rows[table]++
			for col, v := range row {
				val := columnBytes(v)
				for _, n := range needles {
					if bytes.Contains(val, n.b) {
						t.Errorf("%s.%s holds %s in clear", table, col, n.what)
					}
				}
			}
			switch table {
			case "tokens":
				hashes[string(columnBytes(row["token_hash"]))] = true
			case "current_tokens":
				if len(columnBytes(row["sealed"])) > 0 {
					sealed++
				}
			}
		}
		if err := iter.Close(); err != nil {
			t.Fatalf("scan %s: %v", table, err)
		}
	}
	t.Logf("scanned rows: %v (sealed reuse copies: %d), %d needles", rows, sealed, len(needles))
	// The scan saw what was written: every token's hash, the sealed reuse
	// copies of the four unrevoked tokens, the store-managed client.
	for i, tok := range tokens {
		sum := sha256.Sum256([]byte(tok))
		if !hashes[string(sum[:])] {
			t.Errorf("tokens has no row for SHA-256 of token %d: the scan is not looking at the right data", i)
		}
	}
	if sealed != len(tokens)-1 || rows["clients"] != 1 {
		t.Errorf("want %d sealed reuse rows and 1 client row, got %d and %d", len(tokens)-1, sealed, rows["clients"])
	}
}

// columnBytes renders a column value (as gocql's MapScan returns it) as the
// bytes to search.
func columnBytes(v any) []byte {
	switch v := v.(type) {
	case nil:
		return nil
	case []byte:
		return v
	case string:
		return []byte(v)
	case []string:
		return []byte(strings.Join(v, "\x00"))
	default:
		return fmt.Append(nil, v)
	}
}
