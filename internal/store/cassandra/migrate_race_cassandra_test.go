//go:build cassandra

package cassandra_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/config"
	"github.com/tokengw/tokengw/internal/store/cassandra"
)

// oldSchema creates cfg's keyspace with the tables as the version before
// the private_key_jwt columns made them (clients without auth_method,
// jwks, jwks_uri, resources).
func oldSchema(t *testing.T, cfg config.Cassandra) {
	t.Helper()
	stmts, err := cassandra.Statements(cfg.Keyspace, cfg.Replication)
	if err != nil {
		t.Fatal(err)
	}
	raw := rawSession(t)
	for _, stmt := range stmts {
		if strings.Contains(stmt, ".clients (") {
			stmt = fmt.Sprintf(`CREATE TABLE %s.clients (
  client_id text PRIMARY KEY, secret_hash text, scopes frozen<set<text>>, token_ttl bigint,
  limit_rate double, limit_burst int, introspect boolean, created_at timestamp, updated_at timestamp)`, cfg.Keyspace)
		}
		if err := raw.Query(stmt).Exec(); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
}

// TestMigrateColumnAddedMeanwhile: a migrate that found a column missing
// and then lost the race to add it (another migrate's ALTER came first,
// made here by the fault hook at that very moment) succeeds; a column
// that appeared with another type is refused, naming both types.
func TestMigrateColumnAddedMeanwhile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	raw := rawSession(t)

	cfg := baseConfig(t, randomKeyspace("tokengw_mrace_"))
	oldSchema(t, cfg)
	var raced []string
	err := cassandra.MigrateRacing(ctx, cfg, func(table, column string) {
		typ := map[string]string{"resources": "frozen<set<text>>"}[column]
		if typ == "" {
			typ = "text"
		}
		if err := raw.Query(fmt.Sprintf(`ALTER TABLE %s.%s ADD %s %s`, cfg.Keyspace, table, column, typ)).Exec(); err != nil {
			t.Errorf("the other migrate's ALTER: %v", err)
		}
		raced = append(raced, table+"."+column)
	})
	if err != nil {
		t.Fatalf("Migrate that lost every ALTER to another: %v", err)
	}
	if strings.Join(raced, " ") != "clients.auth_method clients.jwks clients.jwks_uri clients.resources" {
		t.Fatalf("raced on %v; want every added column", raced)
	}
	s, err := cassandra.Open(ctx, cfg, cassandra.Options{})
	if err != nil {
		t.Fatalf("Open after the raced migrate: %v", err)
	}
	s.Close()

	cfg = baseConfig(t, randomKeyspace("tokengw_mrace_"))
	oldSchema(t, cfg)
	err = cassandra.MigrateRacing(ctx, cfg, func(table, column string) {
		if column == "jwks" { // someone else's idea of the column
			if err := raw.Query(fmt.Sprintf(`ALTER TABLE %s.%s ADD jwks int`, cfg.Keyspace, table)).Exec(); err != nil {
				t.Errorf("ALTER: %v", err)
			}
		}
	})
	if err == nil || !strings.Contains(err.Error(), "clients.jwks exists with type int, want text") {
		t.Fatalf("Migrate over a column of another type: %v, want it refused naming both types", err)
	}
}

// TestConcurrentMigrates: two migrates at once, on a fresh keyspace and
// on one of the previous version (so both may find the same columns
// missing), several times: both succeed and the schema is complete.
func TestConcurrentMigrates(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for run := range 3 {
		for _, old := range []bool{false, true} {
			cfg := baseConfig(t, randomKeyspace("tokengw_mconc_"))
			if old {
				oldSchema(t, cfg)
			}
			start := make(chan struct{})
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i := range errs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					errs[i] = cassandra.Migrate(ctx, cfg)
				}()
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("run %d (previous schema: %v): migrate %d: %v", run, old, i, err)
				}
			}
			s, err := cassandra.Open(ctx, cfg, cassandra.Options{})
			if err != nil {
				t.Fatalf("run %d (previous schema: %v): Open: %v", run, old, err)
			}
			s.Close()
		}
	}
}
