//go:build cassandra

package cassandra_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/cassandra"
	"github.com/tokengw/tokengw/internal/store/storetest"
)

// TestConformance runs the store conformance suite against the real
// Cassandra on its real clock (TTLs are server-side). Each subtest gets a
// new Store (a new session) on this run's keyspace, emptied with TRUNCATE.
func TestConformance(t *testing.T) {
	cfg := sharedConfig(t)
	raw := rawSession(t)
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) store.Store {
			truncate(t, raw, cfg.Keyspace)
			return openStore(t, cfg)
		},
		Now: time.Now,
	})
}

// TestMigrateIdempotent migrates a fresh keyspace twice, checks the table
// options Migrate promises, and opens a store on it.
func TestMigrateIdempotent(t *testing.T) {
	cfg := baseConfig(t, randomKeyspace("tokengw_migrate_"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := range 2 {
		t0 := time.Now()
		if err := cassandra.Migrate(ctx, cfg); err != nil {
			t.Fatalf("Migrate #%d: %v", i+1, err)
		}
		t.Logf("Migrate #%d: %v", i+1, time.Since(t0).Round(time.Millisecond))
	}
	raw := rawSession(t)
	for _, table := range []string{"tokens", "tokens_by_client", "current_tokens"} {
		var gcGrace, defaultTTL int
		var compaction map[string]string
		err := raw.Query(`SELECT gc_grace_seconds, default_time_to_live, compaction FROM system_schema.tables
WHERE keyspace_name = ? AND table_name = ?`, cfg.Keyspace, table).Scan(&gcGrace, &defaultTTL, &compaction)
		if err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		if gcGrace != 10800 || defaultTTL != 2592000 ||
			compaction["class"] != "org.apache.cassandra.db.compaction.TimeWindowCompactionStrategy" ||
			compaction["compaction_window_unit"] != "HOURS" || compaction["compaction_window_size"] != "1" {
			t.Fatalf("%s: gc_grace_seconds=%d default_time_to_live=%d compaction=%v", table, gcGrace, defaultTTL, compaction)
		}
	}
	checkSpeculativeRetry(t, raw, cfg.Keyspace)
	var repl map[string]string
	if err := raw.Query(`SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?`, cfg.Keyspace).Scan(&repl); err != nil {
		t.Fatal(err)
	}
	if repl["replication_factor"] != "1" || repl["class"] != "org.apache.cassandra.locator.SimpleStrategy" {
		t.Fatalf("replication = %v", repl)
	}
	s := openStore(t, cfg)
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// checkSpeculativeRetry: the request-path tables retry a read on another
// replica after MIN(99p,50ms) (a node just killed costs 50 ms, not the
// read's timeout).
func checkSpeculativeRetry(t *testing.T, raw *gocql.Session, ks string) {
	t.Helper()
	for _, table := range []string{"tokens", "tokens_by_client", "current_tokens", "clients"} {
		var sr string
		if err := raw.Query(`SELECT speculative_retry FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?`, ks, table).Scan(&sr); err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		if sr != "MIN(99p,50ms)" {
			t.Fatalf("%s: speculative_retry = %q, want MIN(99p,50ms)", table, sr)
		}
	}
}

// TestMigrateUpgrade: a keyspace migrated by the previous version (tokens,
// current_tokens, clients; no tokens_by_client) is refused by Open with
// ErrNoSchema naming the missing table; Migrate adds it, sets the
// request-path tables' speculative_retry, keeps the data, and Open then
// succeeds.
func TestMigrateUpgrade(t *testing.T) {
	cfg := baseConfig(t, randomKeyspace("tokengw_upgrade_"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stmts, err := cassandra.Statements(cfg.Keyspace, cfg.Replication)
	if err != nil {
		t.Fatal(err)
	}
	raw := rawSession(t)
	for _, stmt := range stmts {
		if strings.Contains(stmt, ".tokens_by_client (") {
			continue // the previous schema
		}
		if err := raw.Query(stmt).Exec(); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	// The previous version left Cassandra's default speculative_retry.
	for _, table := range []string{"tokens", "current_tokens", "clients"} {
		if err := raw.Query(fmt.Sprintf(`ALTER TABLE %s.%s WITH speculative_retry = '99p'`, cfg.Keyspace, table)).Exec(); err != nil {
			t.Fatal(err)
		}
	}
	hash := hashOf("upgrade")
	if err := raw.Query(fmt.Sprintf(`INSERT INTO %s.tokens (token_hash, client_id, scope, reuse_key, issued_at, expires_at, revoked)
VALUES (?, 'old', 'read', '', ?, ?, false) USING TTL 3600`, cfg.Keyspace), hash, time.Now(), time.Now().Add(time.Hour)).Exec(); err != nil {
		t.Fatal(err)
	}
	_, err = cassandra.Open(ctx, cfg, cassandra.Options{})
	if !errors.Is(err, cassandra.ErrNoSchema) || !strings.Contains(err.Error(), "tokens_by_client") {
		t.Fatalf("Open(previous schema) err = %v, want ErrNoSchema naming tokens_by_client", err)
	}
	t.Logf("previous schema: %v", err)
	if err := cassandra.Migrate(ctx, cfg); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	checkSpeculativeRetry(t, raw, cfg.Keyspace)
	s := openStore(t, cfg)
	if tok, err := s.Token(ctx, hash); err != nil || tok.ClientID != "old" {
		t.Fatalf("Token after the upgrade = %+v, %v", tok, err)
	}
	// A token minted before the upgrade has no index row: RevokeClient
	// cannot find it (docs/cassandra.md, "Upgrading").
	tok, cur := tokenFor("old", "k", "new", time.Hour, time.Minute)
	if _, claimed, err := s.Issue(ctx, tok, cur); err != nil || !claimed {
		t.Fatalf("Issue: claimed=%v err=%v", claimed, err)
	}
	if n, err := s.RevokeClient(ctx, "old"); err != nil || n != 1 {
		t.Fatalf("RevokeClient = %d, %v; want 1", n, err)
	}
	if old, err := s.Token(ctx, hash); err != nil || old.Revoked {
		t.Fatalf("Token(minted before the upgrade) = %+v, %v; want it untouched", old, err)
	}
}

// TestMigrateAddsClientColumns: a clients table made before the
// private_key_jwt columns (auth_method, jwks, jwks_uri, resources) is
// refused by Open with ErrNoSchema naming them; Migrate adds them (looking
// in system_schema.columns, so a second run changes nothing); a client
// written before reads back as a secret client, and can then carry them.
func TestMigrateAddsClientColumns(t *testing.T) {
	cfg := baseConfig(t, randomKeyspace("tokengw_cols_"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stmts, err := cassandra.Statements(cfg.Keyspace, cfg.Replication)
	if err != nil {
		t.Fatal(err)
	}
	raw := rawSession(t)
	for _, stmt := range stmts {
		if strings.Contains(stmt, ".clients (") {
			// The clients table as the previous version made it.
			stmt = fmt.Sprintf(`CREATE TABLE %s.clients (
  client_id text PRIMARY KEY, secret_hash text, scopes frozen<set<text>>, token_ttl bigint,
  limit_rate double, limit_burst int, introspect boolean, created_at timestamp, updated_at timestamp)`, cfg.Keyspace)
		}
		if err := raw.Query(stmt).Exec(); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	at := time.Now().UTC().Truncate(time.Millisecond)
	if err := raw.Query(fmt.Sprintf(`INSERT INTO %s.clients (client_id, secret_hash, scopes, token_ttl, introspect, created_at, updated_at)
VALUES ('old', '$2a$10$abc', {'read'}, 0, true, ?, ?)`, cfg.Keyspace), at, at).Exec(); err != nil {
		t.Fatal(err)
	}
	_, err = cassandra.Open(ctx, cfg, cassandra.Options{})
	if !errors.Is(err, cassandra.ErrNoSchema) || !strings.Contains(err.Error(), "clients.auth_method") || !strings.Contains(err.Error(), "clients.resources") {
		t.Fatalf("Open(previous clients table) err = %v, want ErrNoSchema naming the new columns", err)
	}
	for run := range 2 {
		if err := cassandra.Migrate(ctx, cfg); err != nil {
			t.Fatalf("Migrate (run %d): %v", run+1, err)
		}
	}
	var cols []string
	iter := raw.Query(`SELECT column_name FROM system_schema.columns WHERE keyspace_name = ? AND table_name = 'clients'`, cfg.Keyspace).Iter()
	for name := ""; iter.Scan(&name); {
		cols = append(cols, name)
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(cols)
	if want := "auth_method client_id created_at introspect jwks jwks_uri limit_burst limit_rate resources scopes secret_hash token_ttl updated_at"; strings.Join(cols, " ") != want {
		t.Fatalf("clients columns = %v, want %s", cols, want)
	}
	s := openStore(t, cfg)
	c, err := s.Client(ctx, "old")
	if err != nil || c.SecretHash != "$2a$10$abc" || !c.Introspect || c.AuthMethod != "" || c.JWKS != "" || c.JWKSURI != "" || c.Resources != nil {
		t.Fatalf("Client(written before the migration) = %+v, %v", c, err)
	}
	c.SecretHash, c.AuthMethod, c.JWKSURI = "", "private_key_jwt", "https://idp.example/jwks"
	c.Resources = []string{"https://api.example/"}
	c.UpdatedAt = at.Add(time.Second)
	if err := s.UpdateClient(ctx, c, at); err != nil {
		t.Fatalf("UpdateClient: %v", err)
	}
	got, err := s.Client(ctx, "old")
	if err != nil || got.AuthMethod != "private_key_jwt" || got.JWKSURI != c.JWKSURI || got.SecretHash != "" ||
		strings.Join(got.Resources, " ") != "https://api.example/" {
		t.Fatalf("Client after the update = %+v, %v", got, err)
	}
}

// TestRevokeClientIndexRows: RevokeClient reads tokens_by_client page by
// page (more rows than a page), skips index rows whose token row is
// missing without writing one, and the index rows carry the token's TTL.
func TestRevokeClientIndexRows(t *testing.T) {
	cfg := sharedConfig(t)
	raw := rawSession(t)
	truncate(t, raw, cfg.Keyspace)
	s := openStore(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const n = 2500 // pageSize is 1000
	var wg sync.WaitGroup
	errs := make([]error, n)
	sem := make(chan struct{}, 64)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			tok, _ := tokenFor("many", "", fmt.Sprintf("m%d", i), time.Hour, 0)
			_, _, errs[i] = s.Issue(ctx, tok, nil)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("Issue: %v", err)
	}
	// The index row expires with its token (its TTL is on the row marker:
	// the table has only key columns, so TTL() cannot show it).
	short, _ := tokenFor("short", "", "short", time.Second, 0)
	if _, _, err := s.Issue(ctx, short, nil); err != nil {
		t.Fatal(err)
	}
	countShort := func() int {
		var c int
		if err := raw.Query(fmt.Sprintf(`SELECT COUNT(*) FROM %s.tokens_by_client WHERE client_id = 'short'`, cfg.Keyspace)).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := countShort(); c != 1 {
		t.Fatalf("index rows of a new token: %d, want 1", c)
	}
	for deadline := time.Now().Add(20 * time.Second); countShort() != 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the index row outlived its token's TTL by 20 s")
		}
	}
	orphan := hashOf("orphan")
	if err := raw.Query(fmt.Sprintf(`INSERT INTO %s.tokens_by_client (client_id, expires_at, token_hash) VALUES ('many', ?, ?) USING TTL 3600`, cfg.Keyspace),
		time.Now().Add(time.Hour), orphan).Exec(); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	got, err := s.RevokeClient(ctx, "many")
	if err != nil || got != n {
		t.Fatalf("RevokeClient = %d, %v; want %d", got, err, n)
	}
	t.Logf("RevokeClient of %d tokens: %v", n, time.Since(t0).Round(time.Millisecond))
	var cnt int
	if err := raw.Query(fmt.Sprintf(`SELECT COUNT(*) FROM %s.tokens WHERE token_hash = ?`, cfg.Keyspace), orphan).Scan(&cnt); err != nil || cnt != 0 {
		t.Fatalf("the orphan index row made a tokens row: count %d, %v", cnt, err)
	}
	if got, err := s.RevokeClient(ctx, "many"); err != nil || got != 0 {
		t.Fatalf("second RevokeClient = %d, %v; want 0", got, err)
	}
}

// TestOpenWithoutSchema: Open on a keyspace that does not exist, or that has
// no tables, says to run migrate; Open on a closed port is unavailable.
func TestOpenWithoutSchema(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	missing := baseConfig(t, "tokengw_no_such_keyspace")
	_, err := cassandra.Open(ctx, missing, cassandra.Options{})
	if !errors.Is(err, cassandra.ErrNoSchema) {
		t.Fatalf("Open(missing keyspace) err = %v, want ErrNoSchema", err)
	}
	t.Logf("missing keyspace: %v", err)

	empty := baseConfig(t, randomKeyspace("tokengw_empty_"))
	raw := rawSession(t)
	if err := raw.Query(fmt.Sprintf(`CREATE KEYSPACE %s WITH replication = {'class': 'SimpleStrategy', 'replication_factor': '1'}`, empty.Keyspace)).Exec(); err != nil {
		t.Fatal(err)
	}
	_, err = cassandra.Open(ctx, empty, cassandra.Options{})
	if !errors.Is(err, cassandra.ErrNoSchema) {
		t.Fatalf("Open(keyspace without tables) err = %v, want ErrNoSchema", err)
	}
	t.Logf("empty keyspace: %v", err)
	if err := raw.Query(fmt.Sprintf(`CREATE TABLE %s.tokens (token_hash blob PRIMARY KEY)`, empty.Keyspace)).Exec(); err != nil {
		t.Fatal(err)
	}
	_, err = cassandra.Open(ctx, empty, cassandra.Options{})
	if !errors.Is(err, cassandra.ErrNoSchema) {
		t.Fatalf("Open(keyspace with some tables) err = %v, want ErrNoSchema", err)
	}
	t.Logf("partial schema: %v", err)

	down := baseConfig(t, "tokengw")
	down.Hosts = []string{"127.0.0.1:1"}
	down.ConnectTimeout = time.Second
	_, err = cassandra.Open(ctx, down, cassandra.Options{})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Open(nothing listening) err = %v, want ErrUnavailable", err)
	}
	t.Logf("nothing listening: %v", err)
}

func hashOf(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func tokenFor(client, key, label string, lifetime, window time.Duration) (store.Token, *store.Current) {
	now := time.Now().Truncate(time.Millisecond)
	tok := store.Token{Hash: hashOf(fmt.Sprintf("%s-%d", label, now.UnixNano())), ClientID: client, Scope: "read", ReuseKey: key,
		IssuedAt: now, ExpiresAt: now.Add(lifetime)}
	return tok, &store.Current{ClientID: client, ReuseKey: key, TokenHash: tok.Hash, Sealed: []byte("sealed-" + label),
		Scope: tok.Scope, IssuedAt: tok.IssuedAt, ExpiresAt: tok.ExpiresAt, ReuseUntil: tok.IssuedAt.Add(window)}
}

// TestReplicasRaceForOneSlot: two Stores (two sessions, as two gateway
// replicas would have) and 50 goroutines race Issue for one reuse slot.
// Exactly one claims it, every caller sees that winner, and exactly one
// token is persisted.
func TestReplicasRaceForOneSlot(t *testing.T) {
	cfg := sharedConfig(t)
	truncate(t, rawSession(t), cfg.Keyspace)
	replicas := []*cassandra.Store{openStore(t, cfg), openStore(t, cfg)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	const n = 50
	var (
		wg      sync.WaitGroup
		claims  atomic.Int32
		start   = make(chan struct{})
		winners = make([][]byte, n)
		errs    = make([]error, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, cur := tokenFor("race", "read", fmt.Sprintf("g%d", i), time.Hour, 30*time.Minute)
			<-start
			got, claimed, err := replicas[i%2].Issue(ctx, tok, cur)
			errs[i], winners[i] = err, got.TokenHash
			if claimed {
				claims.Add(1)
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	t.Logf("%d concurrent Issue calls on 2 sessions: %v", n, time.Since(t0).Round(time.Millisecond))
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Issue %d: %v", i, err)
		}
	}
	if got := claims.Load(); got != 1 {
		t.Fatalf("%d callers claimed the slot, want exactly 1", got)
	}
	for i := range winners {
		if !bytes.Equal(winners[i], winners[0]) {
			t.Fatalf("caller %d saw winner %x, caller 0 saw %x", i, winners[i], winners[0])
		}
	}
	for i, r := range replicas {
		count, err := r.TokenCount(ctx)
		if err != nil {
			t.Fatalf("TokenCount: %v", err)
		}
		if count != 1 {
			t.Fatalf("replica %d: TokenCount = %d, want 1", i, count)
		}
		cur, err := r.Current(ctx, "race", "read")
		if err != nil || !bytes.Equal(cur.TokenHash, winners[0]) {
			t.Fatalf("replica %d: Current = %x, %v; want the winner %x", i, cur.TokenHash, err, winners[0])
		}
	}
}

// TestClaimAfterWindowBeforeTTL: a reuse row whose window has passed but
// whose TTL (whole seconds) has not is taken over by the next claim, as
// the memory store would (its row is dead once ReuseUntil passes).
func TestClaimAfterWindowBeforeTTL(t *testing.T) {
	cfg := sharedConfig(t)
	truncate(t, rawSession(t), cfg.Keyspace)
	s := openStore(t, cfg)
	ctx := context.Background()

	// A window of 300 ms: the row gets TTL 2 s and outlives its window.
	t1, c1 := tokenFor("c", "k", "first", time.Hour, 300*time.Millisecond)
	if _, claimed, err := s.Issue(ctx, t1, c1); err != nil || !claimed {
		t.Fatalf("Issue: claimed=%v err=%v", claimed, err)
	}
	for {
		_, err := s.Current(ctx, "c", "k")
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t2, c2 := tokenFor("c", "k", "second", time.Hour, time.Minute)
	got, claimed, err := s.Issue(ctx, t2, c2)
	if err != nil || !claimed || !bytes.Equal(got.TokenHash, t2.Hash) {
		t.Fatalf("Issue after the window: claimed=%v err=%v hash=%x", claimed, err, got.TokenHash)
	}
	have, err := s.Current(ctx, "c", "k")
	if err != nil || !bytes.Equal(have.TokenHash, t2.Hash) || !bytes.Equal(have.Sealed, c2.Sealed) || !have.ReuseUntil.Equal(c2.ReuseUntil) {
		t.Fatalf("Current = %+v, %v; want the second claim", have, err)
	}
	// The takeover carries the new TTL: the row is still there after the
	// first row's TTL (2 s, counted from the whole second it was written
	// in) would have ended. (A negative check: nothing to observe but the
	// passing of time.)
	deadline := c1.IssuedAt.Add(3 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := s.Current(ctx, "c", "k"); err != nil {
		t.Fatalf("Current after the first row's TTL: %v", err)
	}
}

// TestSlotRowLivesUntilWindowEnd: a slot row written late in a server
// second lives until its reuse window ends, and another replica's claim
// inside the window loses to it (issue 18: Cassandra counts a TTL from the
// whole second of the write, so a 1.5 s window claimed at x.9 s with TTL
// ceil(1.5 s) = 2 died at x+2 s, 0.4 s before its window ended, and the
// other replica's claim applied: two tokens for one window).
//
// The claim is made late in a wall-clock second and the test checks, by
// the row's write time, that the old rounding would have let it die
// before the moment it looks; it waits for the clock to reach that moment
// (nothing to observe but the passing of time).
func TestSlotRowLivesUntilWindowEnd(t *testing.T) {
	cfg := sharedConfig(t)
	raw := rawSession(t)
	truncate(t, raw, cfg.Keyspace)
	winner, other := openStore(t, cfg), openStore(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const window = 1500 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if attempt == 5 {
			t.Fatal("no claim landed late enough in a server second to test the TTL rounding in 5 attempts")
		}
		// Late in a second: 900..950 ms.
		for now := time.Now(); now.Nanosecond() < 900e6 || now.Nanosecond() >= 950e6; now = time.Now() {
			time.Sleep(5 * time.Millisecond)
		}
		key := fmt.Sprintf("k%d", attempt)
		t1, c1 := tokenFor("c", key, "late", time.Hour, window)
		if _, claimed, err := winner.Issue(ctx, t1, c1); err != nil || !claimed {
			t.Fatalf("Issue: claimed=%v err=%v", claimed, err)
		}
		var wt int64 // the write's server timestamp, microseconds
		if err := raw.Query(fmt.Sprintf(`SELECT WRITETIME(token_hash) FROM %s.current_tokens WHERE client_id = 'c' AND reuse_key = ?`, cfg.Keyspace), key).
			Consistency(gocql.One).Scan(&wt); err != nil {
			t.Fatal(err)
		}
		look := c1.ReuseUntil.Add(-200 * time.Millisecond)
		// With the TTL rounded up alone (2 s), the row dies at the whole
		// second of the write plus 2.
		oldDeath := time.Unix(wt/1e6+2, 0)
		if !oldDeath.Before(look) {
			continue // the write slipped into the next second: try again
		}
		for time.Now().Before(look) {
			time.Sleep(10 * time.Millisecond)
		}
		cur, err := other.Current(ctx, "c", key)
		if err != nil || !bytes.Equal(cur.TokenHash, t1.Hash) {
			t.Fatalf("Current %v before the window ends (the old TTL died at %s): %+v, %v; want the claim",
				c1.ReuseUntil.Sub(time.Now()).Round(time.Millisecond), oldDeath.Format("15:04:05.000"), cur, err)
		}
		t2, c2 := tokenFor("c", key, "second", time.Hour, window)
		got, claimed, err := other.Issue(ctx, t2, c2)
		if err != nil || claimed || !bytes.Equal(got.TokenHash, t1.Hash) {
			t.Fatalf("a second claim inside the window: claimed=%v err=%v hash=%x; want the first claim", claimed, err, got.TokenHash)
		}
		return
	}
}

// TestRevokeKeepsNewerClaim: revoking a token whose slot has since
// been claimed by another token leaves that claim alone.
func TestRevokeKeepsNewerClaim(t *testing.T) {
	cfg := sharedConfig(t)
	truncate(t, rawSession(t), cfg.Keyspace)
	s := openStore(t, cfg)
	ctx := context.Background()
	t1, c1 := tokenFor("c", "k", "old", time.Hour, time.Minute)
	if _, _, err := s.Issue(ctx, t1, c1); err != nil {
		t.Fatal(err)
	}
	if err := s.ClearCurrents(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	t2, c2 := tokenFor("c", "k", "new", time.Hour, time.Minute)
	if _, claimed, err := s.Issue(ctx, t2, c2); err != nil || !claimed {
		t.Fatalf("Issue after ClearCurrents: claimed=%v err=%v", claimed, err)
	}
	if err := s.Revoke(ctx, t1.Hash); err != nil {
		t.Fatal(err)
	}
	if cur, err := s.Current(ctx, "c", "k"); err != nil || !bytes.Equal(cur.TokenHash, t2.Hash) {
		t.Fatalf("Current = %x, %v; want the newer claim", cur.TokenHash, err)
	}
}

// TestContextErrors: a context error comes back as itself.
func TestContextErrors(t *testing.T) {
	s := openStore(t, sharedConfig(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Token(ctx, hashOf("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Token(canceled) err = %v, want context.Canceled", err)
	}
	tok, cur := tokenFor("c", "k", "ctx", time.Hour, time.Minute)
	if _, _, err := s.Issue(ctx, tok, cur); !errors.Is(err, context.Canceled) {
		t.Fatalf("Issue(canceled) err = %v, want context.Canceled", err)
	}
	dctx, dcancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer dcancel()
	if err := s.Ping(dctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping(expired) err = %v, want DeadlineExceeded", err)
	}
}

// TestOddKeys: reuse keys are the scope and a fingerprint joined by NUL
// (reuse.ReuseKey); client ids are anything a client registered. Both are
// CQL text: they round-trip exactly, and slots that differ only after the
// NUL are different slots.
func TestOddKeys(t *testing.T) {
	cfg := sharedConfig(t)
	truncate(t, rawSession(t), cfg.Keyspace)
	s := openStore(t, cfg)
	ctx := context.Background()
	client := "client:with %odd+chars/ünï ' \" ;"
	for _, key := range []string{"read write\x00fp1", "read write\x00fp2", "", "read\x00"} {
		tok, cur := tokenFor(client, key, "odd"+key, time.Hour, time.Minute)
		if _, claimed, err := s.Issue(ctx, tok, cur); err != nil || !claimed {
			t.Fatalf("Issue(%q): claimed=%v err=%v", key, claimed, err)
		}
		got, err := s.Current(ctx, client, key)
		if err != nil || got.ReuseKey != key || got.ClientID != client || !bytes.Equal(got.TokenHash, tok.Hash) {
			t.Fatalf("Current(%q) = %+v, %v", key, got, err)
		}
		tk, err := s.Token(ctx, tok.Hash)
		if err != nil || tk.ReuseKey != key || tk.ClientID != client {
			t.Fatalf("Token = %+v, %v", tk, err)
		}
	}
}

// TestRevokeFromLaggingReplica: Cassandra orders two writes of one cell by
// their timestamps, which gocql takes from the writing replica's clock. A
// revocation written by a replica whose clock is behind the issuing
// replica's (here by 1 s, emulated with USING TIMESTAMP on exactly the
// statement Revoke runs) must still revoke the token: the token INSERT must
// not write a revoked = false cell that such a revocation loses against.
func TestRevokeFromLaggingReplica(t *testing.T) {
	cfg := sharedConfig(t)
	raw := rawSession(t)
	truncate(t, raw, cfg.Keyspace)
	s := openStore(t, cfg)
	ctx := context.Background()
	tok, _ := tokenFor("skew", "", "skew", time.Hour, 0)
	if _, _, err := s.Issue(ctx, tok, nil); err != nil {
		t.Fatalf("Issue: %v", err)
	}
	lagging := time.Now().Add(-time.Second).UnixMicro()
	if err := raw.Query(fmt.Sprintf(`UPDATE %s.tokens USING TTL 3600 AND TIMESTAMP ? SET revoked = true WHERE token_hash = ?`, cfg.Keyspace),
		lagging, tok.Hash).Exec(); err != nil {
		t.Fatal(err)
	}
	got, err := s.Token(ctx, tok.Hash)
	if err != nil || !got.Revoked {
		t.Fatalf("Token after a revocation from a replica 1 s behind = %+v, %v; want Revoked", got, err)
	}
	if n, err := s.RevokeClient(ctx, "skew"); err != nil || n != 0 {
		t.Fatalf("RevokeClient = %d, %v; want 0 (already revoked)", n, err)
	}
}

// TestSlotWithoutStoredTokenIsNotHandedOut: a mint whose token row cannot
// be written has claimed the slot already; until its release lands, the
// slot names a token the store does not hold. Neither Current nor the loser
// of a claim may return that token.
func TestSlotWithoutStoredTokenIsNotHandedOut(t *testing.T) {
	cfg := sharedConfig(t)
	truncate(t, rawSession(t), cfg.Keyspace)
	a, b := openStore(t, cfg), openStore(t, cfg)
	ctx := context.Background()

	tok, cur := tokenFor("unstored", "read", "bad", time.Hour, 30*time.Minute)
	tok.Scope = "bad \xff utf-8" // the tokens table refuses it; the claim's own scope is fine
	if _, claimed, err := a.Issue(ctx, tok, cur); err == nil || claimed {
		t.Fatalf("Issue with an unwritable token = claimed %v, %v; want an error", claimed, err)
	}
	if got, err := b.Current(ctx, "unstored", "read"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Current on another replica = %x, %v; want ErrNotFound, never the unstored token", got.TokenHash, err)
	}

	// The loser's side, with the slot held for certain: a claim committed
	// by a replica whose token write has not landed (and whose release has
	// not either), written here as that replica's claim would be.
	ghost := hashOf("ghost")
	now := time.Now().Truncate(time.Millisecond)
	if err := rawSession(t).Query(fmt.Sprintf(`INSERT INTO %s.current_tokens (client_id, reuse_key, token_hash, sealed, scope, issued_at, expires_at, reuse_until)
VALUES (?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS USING TTL 600`, cfg.Keyspace),
		"ghost", "read", ghost, []byte("sealed"), "read", now, now.Add(time.Hour), now.Add(5*time.Minute)).Exec(); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Current(ctx, "ghost", "read"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Current of the ghost slot = %x, %v; want ErrNotFound", got.TokenHash, err)
	}
	tok2, cur2 := tokenFor("ghost", "read", "loser", time.Hour, 30*time.Minute)
	if got, claimed, err := b.Issue(ctx, tok2, cur2); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("the loser against the ghost slot = %x, claimed %v, %v; want ErrUnavailable, never the unstored token", got.TokenHash, claimed, err)
	}
	if n, err := b.TokenCount(ctx); err != nil || n != 0 {
		t.Fatalf("TokenCount = %d, %v; want 0 (the loser persists nothing)", n, err)
	}
}
