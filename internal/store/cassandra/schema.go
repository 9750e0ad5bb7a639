package cassandra

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/tokengw/tokengw/internal/config"
)

// Table options shared by the TTL'd tables (tokens, tokens_by_client,
// current_tokens); docs/cassandra.md says why.
//
//   - TimeWindowCompactionStrategy, 1-hour windows: rows of one hour land in
//     one SSTable, and once everything in it has expired (plus
//     gc_grace_seconds) Cassandra drops the whole file without reading it;
//     no tombstone is ever compacted row by row.
//   - default_time_to_live 30 days: the longest token lifetime the
//     configuration accepts; a safety net for a row written without a TTL.
//     Every statement here sets its own TTL.
//   - gc_grace_seconds 3 hours instead of 10 days: on tokens and
//     tokens_by_client nothing is deleted (every cell expires by TTL on
//     each replica by itself), so no tombstone has to outlive a repair
//     cycle; 3 hours is Cassandra's
//     default max_hint_window, and hints for a table live at most
//     gc_grace_seconds, so a lower value would drop hints.
//   - speculative_retry (speculativeRetry): see below.
const ttlTableOptions = `compaction = {'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'HOURS', 'compaction_window_size': '1'}
  AND default_time_to_live = 2592000
  AND gc_grace_seconds = 10800
  AND speculative_retry = '` + speculativeRetry + `'`

// speculativeRetry is the request-path tables' speculative_retry (the
// Cassandra 5 syntax, as system_schema.tables stores it): a coordinator
// whose read has not been answered by the replicas it chose within the
// table's 99th percentile latency, or 50 ms if that is less, asks one more
// replica. Cassandra's default ('99p') waits for the percentile alone,
// which on a loaded or freshly restarted node can be most of the client's
// deadline; a replica that was just killed (the failure detector has not
// marked it down yet) then costs the read its whole timeout. With RF 3 and
// QUORUM the third replica answers in its place within 50 ms (issue 18).
const speculativeRetry = "MIN(99p,50ms)"

// speculativeTables are the tables of the request path: Migrate sets
// speculativeRetry on them when an existing keyspace has another value.
func speculativeTables() []string {
	return []string{"tokens", "tokens_by_client", "current_tokens", "clients"}
}

// migrateTimeout is the per-statement client timeout for schema changes,
// which take longer than the request-path timeout.
const migrateTimeout = 30 * time.Second

// Statements returns the CQL Migrate runs, in order, for a keyspace and a
// replication map (as in the configuration). It validates both.
func Statements(keyspace string, replication map[string]string) ([]string, error) {
	ks, err := keyspaceName(keyspace)
	if err != nil {
		return nil, err
	}
	repl, err := replicationCQL(replication)
	if err != nil {
		return nil, err
	}
	return []string{
		fmt.Sprintf(`CREATE KEYSPACE IF NOT EXISTS %s WITH replication = %s AND durable_writes = true`, ks, repl),

		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.tokens (
  token_hash blob PRIMARY KEY,
  client_id  text,
  scope      text,
  reuse_key  text,
  issued_at  timestamp,
  expires_at timestamp,
  revoked    boolean
) WITH %s
  AND comment = 'tokengw: issued access tokens, keyed by SHA-256(token); written USING TTL = remaining lifetime'`,
			ks, ttlTableOptions),

		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.tokens_by_client (
  client_id  text,
  expires_at timestamp,
  token_hash blob,
  PRIMARY KEY ((client_id), expires_at, token_hash)
) WITH CLUSTERING ORDER BY (expires_at ASC, token_hash ASC)
  AND %s
  AND comment = 'tokengw: every token of a client by expiry, for revoking them all; written USING TTL = remaining lifetime with the token'`,
			ks, ttlTableOptions),

		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.current_tokens (
  client_id   text,
  reuse_key   text,
  token_hash  blob,
  sealed      blob,
  scope       text,
  issued_at   timestamp,
  expires_at  timestamp,
  reuse_until timestamp,
  PRIMARY KEY ((client_id), reuse_key)
) WITH %s
  AND comment = 'tokengw: the token handed out per reuse slot; claimed with INSERT IF NOT EXISTS USING TTL = reuse window'`,
			ks, ttlTableOptions),

		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.clients (
  client_id   text PRIMARY KEY,
  secret_hash text,
  scopes      frozen<set<text>>,
  token_ttl   bigint,
  limit_rate  double,
  limit_burst int,
  introspect  boolean,
  created_at  timestamp,
  updated_at  timestamp,
  auth_method text,
  jwks        text,
  jwks_uri    text,
  resources   frozen<set<text>>
) WITH comment = 'tokengw: run-time client registry; token_ttl in ms (0 = issuer default), limit_* null = default limit'
  AND speculative_retry = '`+speculativeRetry+`'`,
			ks),
		signingKeysTable(ks),
		upstreamTable(ks),
		assertionsTable(ks),
	}, nil
}

// Migrate creates the keyspace (replication from cfg.Replication) and the
// tables if they do not exist, then waits until every node agrees on the
// schema. It is idempotent, and it is also the upgrade: a keyspace made by
// an earlier version gets the tables added since (tokens_by_client) and
// the request-path tables' speculative_retry, and keeps its data. It alters
// nothing else of an existing keyspace or table: changing replication is
// an operator's ALTER KEYSPACE followed by a repair.
func Migrate(ctx context.Context, cfg config.Cassandra) error {
	return migrate(ctx, cfg, nil)
}

// migrate is Migrate; beforeAlter, when set (tests), runs before each
// ALTER TABLE ... ADD, as another migrate racing this one might.
func migrate(ctx context.Context, cfg config.Cassandra, beforeAlter func(table, column string)) error {
	stmts, err := Statements(cfg.Keyspace, cfg.Replication)
	if err != nil {
		return err
	}
	cons, err := parseConsistency(cfg.Consistency)
	if err != nil {
		return err
	}
	cluster, err := newCluster(cfg, cons)
	if err != nil {
		return err
	}
	cluster.NumConns = 1
	cluster.Timeout = max(cluster.Timeout, migrateTimeout)
	session, err := createSession(ctx, cluster)
	if err != nil {
		return connectErr("migrate", cfg.Hosts, err)
	}
	defer session.Close()
	for _, stmt := range stmts {
		// gocql waits for schema agreement after each schema change it
		// sees (ClusterConfig.MaxWaitSchemaAgreement).
		if err := session.Query(stmt).ExecContext(ctx); err != nil {
			first, _, _ := strings.Cut(stmt, "(")
			return classify("migrate: "+strings.TrimSpace(first), err)
		}
	}
	ks, _ := keyspaceName(cfg.Keyspace)
	if err := addColumns(ctx, session, ks, beforeAlter); err != nil {
		return err
	}
	// Tables made by an earlier version: the request path's
	// speculative_retry, altered only where it differs (a schema change
	// per table otherwise, on every migrate).
	for _, table := range speculativeTables() {
		var have string
		err := session.Query(`SELECT speculative_retry FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?`, ks, table).
			ScanContext(ctx, &have)
		if err != nil {
			return classify("migrate: read speculative_retry of "+table, err)
		}
		if have == speculativeRetry {
			continue
		}
		stmt := fmt.Sprintf(`ALTER TABLE %s.%s WITH speculative_retry = '%s'`, ks, table, speculativeRetry)
		if err := session.Query(stmt).ExecContext(ctx); err != nil {
			return classify("migrate: alter "+table, err)
		}
	}
	if err := session.AwaitSchemaAgreement(ctx); err != nil {
		return classify("migrate: schema agreement", err)
	}
	return checkSchema(ctx, session, ks)
}

// addedColumns are the columns added to a table after it was first
// created, with their CQL types. CREATE TABLE IF NOT EXISTS leaves an
// existing table as it is, so Migrate adds these to a table made by an
// earlier version.
func addedColumns() map[string][]column {
	return map[string][]column{
		"clients": {
			{"auth_method", "text"}, // token_endpoint_auth_method: null/'' = a secret, or private_key_jwt
			{"jwks", "text"},        // private_key_jwt: inline JWK Set (JSON)
			{"jwks_uri", "text"},    // private_key_jwt: or where to fetch it
			{"resources", "frozen<set<text>>"},
		},
	}
}

type column struct{ name, cqlType string }

// columnsOf reads the column names of a table from system_schema.
func columnsOf(ctx context.Context, session *gocql.Session, ks, table string) (map[string]bool, error) {
	iter := session.Query(`SELECT column_name FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ?`, ks, table).
		Idempotent(true).IterContext(ctx)
	have := map[string]bool{}
	var name string
	for iter.Scan(&name) {
		have[name] = true
	}
	if err := iter.Close(); err != nil {
		return nil, err
	}
	return have, nil
}

// addColumns adds the addedColumns a table lacks (ALTER TABLE ... ADD),
// looking in system_schema.columns first, so that running Migrate again
// changes nothing. Two migrates running at once may both find a column
// missing; the ALTER of the second then fails, and the column is read
// again: there with the right type is success (another migrate added
// it), there with another type or still absent is the ALTER's error.
func addColumns(ctx context.Context, session *gocql.Session, ks string, beforeAlter func(table, column string)) error {
	for _, table := range slices.Sorted(maps.Keys(addedColumns())) {
		have, err := columnsOf(ctx, session, ks, table)
		if err != nil {
			return classify("migrate: columns of "+table, err)
		}
		for _, c := range addedColumns()[table] {
			if have[c.name] {
				continue
			}
			if beforeAlter != nil {
				beforeAlter(table, c.name)
			}
			// Names and types are constants of this file, never input.
			err := session.Query(fmt.Sprintf(`ALTER TABLE %s.%s ADD %s %s`, ks, table, c.name, c.cqlType)).ExecContext(ctx)
			if err == nil {
				continue
			}
			typ, found, rerr := columnType(ctx, session, ks, table, c.name)
			switch {
			case rerr != nil:
				return classify("migrate: ALTER TABLE "+table+" ADD "+c.name, errors.Join(err, rerr))
			case found && typ == c.cqlType:
				continue // added meanwhile by another migrate
			case found:
				return fmt.Errorf("cassandra: migrate: column %s.%s exists with type %s, want %s: %w", table, c.name, typ, c.cqlType, ErrNoSchema)
			}
			return classify("migrate: ALTER TABLE "+table+" ADD "+c.name, err)
		}
	}
	return nil
}

// columnType reads a column's CQL type from system_schema.columns, as
// Cassandra spells it ("text", "frozen<set<text>>").
func columnType(ctx context.Context, session *gocql.Session, ks, table, name string) (typ string, found bool, err error) {
	err = session.Query(`SELECT type FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ? AND column_name = ?`, ks, table, name).
		Idempotent(true).ScanContext(ctx, &typ)
	if errors.Is(err, gocql.ErrNotFound) {
		return "", false, nil
	}
	return typ, err == nil, err
}

// replicationCQL validates a replication map and renders it as a CQL map
// literal. Only SimpleStrategy and NetworkTopologyStrategy are accepted;
// every name and number is checked, so nothing from the configuration can
// inject CQL.
func replicationCQL(r map[string]string) (string, error) {
	class := strings.TrimPrefix(strings.TrimSpace(r["class"]), "org.apache.cassandra.locator.")
	opts := make([]string, 0, len(r))
	for k := range r {
		if k != "class" {
			opts = append(opts, k)
		}
	}
	slices.Sort(opts)
	var b strings.Builder
	fmt.Fprintf(&b, "{'class': '%s'", class)
	switch class {
	case "SimpleStrategy":
		if len(opts) != 1 || opts[0] != "replication_factor" {
			return "", fmt.Errorf("cassandra: replication: SimpleStrategy takes exactly one option, replication_factor; got %v", opts)
		}
		n, err := replicationFactor(r["replication_factor"], 1)
		if err != nil {
			return "", fmt.Errorf("cassandra: replication.replication_factor: %w", err)
		}
		fmt.Fprintf(&b, ", 'replication_factor': '%d'", n)
	case "NetworkTopologyStrategy":
		if len(opts) == 0 {
			return "", fmt.Errorf("cassandra: replication: NetworkTopologyStrategy needs a replication factor per data center (e.g. dc1: 3)")
		}
		total := 0
		for _, dc := range opts {
			if !validDC(dc) {
				return "", fmt.Errorf("cassandra: replication: %q is not a data center name (letters, digits, '_', '-', '.')", dc)
			}
			n, err := replicationFactor(r[dc], 0)
			if err != nil {
				return "", fmt.Errorf("cassandra: replication.%s: %w", dc, err)
			}
			total += n
			fmt.Fprintf(&b, ", '%s': '%d'", dc, n)
		}
		if total == 0 {
			return "", fmt.Errorf("cassandra: replication: every data center has replication factor 0")
		}
	default:
		return "", fmt.Errorf("cassandra: replication.class must be SimpleStrategy or NetworkTopologyStrategy, got %q", r["class"])
	}
	b.WriteString("}")
	return b.String(), nil
}

func replicationFactor(s string, min int) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < min || n > 99 {
		return 0, fmt.Errorf("replication factor must be an integer between %d and 99, got %q", min, s)
	}
	return n, nil
}

// validDC accepts data center names as snitches produce them (dc1,
// us-east-1, DC_2, eu.west) and nothing that could end a CQL string.
func validDC(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
