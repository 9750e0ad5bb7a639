//go:build cassandra

package cassandra_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/cassandra"
)

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
