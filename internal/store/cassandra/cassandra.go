// Package cassandra is tokengw's shared store.Store: every gateway replica
// talks to one Cassandra cluster through the gocql driver
// (github.com/apache/cassandra-gocql-driver/v2), so a token minted by one
// replica is reused, introspected and revoked by all of them.
//
// One Store holds one long-lived gocql session: a pool of NumConns
// connections per host, token-aware host selection (a statement goes to a
// replica of its partition), prepared statements (gocql prepares every
// statement with bind markers once per connection and caches it; the
// statement strings here are constants), the configured consistency, and
// SERIAL (LOCAL_SERIAL with a LOCAL_ consistency) for lightweight
// transactions, whose unknown outcomes are resolved by reading back (lwt.go). Every statement runs under the
// caller's context. Only idempotent statements are retried (gocql never
// retries a statement that is not marked idempotent); lightweight
// transactions are not, because a retried compare-and-set can report "not
// applied" against its own first attempt.
//
// The schema (created by Migrate, never by Open) and the reasons for it are
// in docs/cassandra.md. In short:
//
//	tokens            token_hash PRIMARY KEY                  written USING TTL = remaining lifetime
//	tokens_by_client  ((client_id), expires_at, token_hash)   written with each token, same TTL
//	current_tokens    ((client_id), reuse_key)                INSERT IF NOT EXISTS USING TTL = reuse window
//	clients           client_id PRIMARY KEY                   lightweight transactions (IF [NOT] EXISTS)
//
// Issue claims a reuse slot with a lightweight transaction on
// current_tokens (Paxos, so exactly one of any number of concurrent
// replicas wins) and only then writes the token row and its
// tokens_by_client row, which RevokeClient reads to find a client's live
// tokens. Expiry is Cassandra's: rows carry a TTL and disappear on their
// own; the three TTL'd tables use TimeWindowCompactionStrategy so expired
// data leaves in whole SSTables instead of as a pile of tombstones. Reads
// still compare the stored expiry with Options.Now, because TTLs are whole
// seconds.
//
// Errors: store.ErrNotFound for missing rows; connection failures, client
// and server timeouts, unavailable replicas and overloaded coordinators
// wrap store.ErrUnavailable; context errors are returned wrapped (errors.Is
// finds them); after Close every method returns store.ErrClosed.
package cassandra

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/tokengw/tokengw/internal/config"
	"github.com/tokengw/tokengw/internal/store"
)

var _ store.Store = (*Store)(nil)

// ErrNoSchema is returned by Open when the keyspace or one of the tables is
// missing: run `tokengw migrate` first.
var ErrNoSchema = errors.New("cassandra: schema missing (run tokengw migrate)")

// Tables, in the order Migrate creates them. Open requires every one.
func tables() [7]string {
	return [...]string{"tokens", "tokens_by_client", "current_tokens", "clients", "signing_keys", "upstream_cache", "assertion_jtis"}
}

// Driver tuning that is not in the configuration.
const (
	// retries is how often an idempotent statement is retried on the next
	// host after a transient error (so at most 1+retries attempts, all
	// within the caller's context).
	retries = 2
	// reconnectInterval is how often the session tries to reconnect hosts
	// it has marked DOWN. The control connection reconnects on its own
	// every second while it is broken and refills the pool of the host it
	// reaches, so with a single node recovery is faster than this.
	reconnectInterval = 5 * time.Second
	// pageSize bounds the rows fetched per round trip by full scans.
	pageSize = 1000
	// maxTTL is Cassandra's largest TTL (20 years).
	maxTTL = 20 * 365 * 24 * 60 * 60
)

// Options configures a Store.
type Options struct {
	// Now is the clock expiry is judged by on reads; default time.Now.
	// Cassandra's TTLs run on the servers' clocks regardless.
	Now func() time.Time
}

// Store is the Cassandra store.Store. It is safe for concurrent use. Create
// it with Open, release it with Close.
type Store struct {
	session  *gocql.Session
	now      func() time.Time
	cons     gocql.Consistency // writes and lightweight transactions (commit phase)
	serial   gocql.Consistency // the Paxos phase of lightweight transactions, and their read-back
	readCons gocql.Consistency // reads
	// slotReadCons is the consistency of Revoke's look at the reuse row
	// before it runs a lightweight transaction to delete it: at least a
	// quorum, so that it sees every committed claim.
	slotReadCons gocql.Consistency
	timeout      time.Duration
	closed       atomic.Bool
	// casFault, set only by tests (export_test.go), runs each lightweight
	// transaction in place of the store and may change what it reports:
	// how a single-node test makes an outcome unknown.
	casFault func(op string, run func() (bool, error)) (bool, error)
	// writeFault, set only by tests, runs each write execSure sends (op
	// names it) in place of the store and may change what it reports.
	writeFault func(op string, run func() error) error
	bgMu       sync.Mutex     // orders bg.Add after a closed check against Close
	bg         sync.WaitGroup // background releases of reuse slots
	// shortUntil (unix ns, on now's clock): until then a quorum is known
	// to be short and reuse-path reads go to one replica (degraded.go).
	shortUntil atomic.Int64
	// degradedFallbacks counts reads that failed at the read consistency
	// and were answered at one replica; degradedDirect those sent to one
	// replica at once while a quorum was short.
	degradedFallbacks, degradedDirect atomic.Uint64
	// resends counts writes sent again after an unknown outcome (execSure).
	resends atomic.Uint64
	// shortHosts is how many nodes down can leave a partition without a
	// quorum, quorumSize how many replicas a quorum needs (degraded.go),
	// both from the keyspace's replication; hostsHook and readFault, set
	// only by tests, replace the driver's count of hosts up and down and
	// run the reads of scanDegradable in place of the store.
	shortHosts int
	quorumSize int
	hostsHook  func() (up, down int)
	readFault  func(cons gocql.Consistency, run func() error) error
	// The quorum gate (degraded.go): the next probe's time and the end of
	// the time a probe's success opened it (unix ns, on now's clock), and
	// how many operations it let through as probes and refused.
	probeAt, quorumSeenUntil    atomic.Int64
	quorumProbes, quorumRefused atomic.Uint64
}

// Open connects to the cluster in cfg and checks that the keyspace and its
// tables exist (ErrNoSchema otherwise; Open never creates them). An
// unreachable cluster is an error wrapping store.ErrUnavailable.
func Open(ctx context.Context, cfg config.Cassandra, opts Options) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	cons, err := parseConsistency(cfg.Consistency)
	if err != nil {
		return nil, err
	}
	if cfg.Keyspace, err = keyspaceName(cfg.Keyspace); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("cassandra: open: %w", err)
	}

	cluster, err := newCluster(cfg, cons)
	if err != nil {
		return nil, err
	}
	cluster.Keyspace = cfg.Keyspace // every connection USEs it; token-aware routing reads its replication
	session, err := createSession(ctx, cluster)
	if err != nil {
		// The session cannot USE a keyspace that does not exist, and gocql
		// says only "no connections were made". Tell the two cases apart
		// with a session that needs no keyspace.
		if derr := diagnose(ctx, cfg, cons); derr != nil {
			return nil, derr
		}
		return nil, connectErr("open", cfg.Hosts, err)
	}
	if err := checkSchema(ctx, session, cfg.Keyspace); err != nil {
		session.Close()
		return nil, err
	}
	s := &Store{
		session:      session,
		now:          opts.Now,
		cons:         cons,
		serial:       serialFor(cons),
		readCons:     readConsistency(cons),
		slotReadCons: quorumAtLeast(readConsistency(cons)),
		timeout:      cluster.Timeout,
	}
	// The keyspace's replication as the cluster has it (the driver's
	// metadata), else as configured.
	repl := cfg.Replication
	if md, err := session.KeyspaceMetadata(cfg.Keyspace); err == nil {
		if r := replicationOf(md); len(factors(r)) > 0 {
			repl = r
		}
	}
	s.shortHosts, s.quorumSize = shortHostsFor(repl), quorumSizeFor(repl, cons)
	return s, nil
}

// createSession runs gocql's blocking CreateSession but returns early when
// ctx ends (the abandoned session is closed once it is made).
func createSession(ctx context.Context, cluster *gocql.ClusterConfig) (*gocql.Session, error) {
	type result struct {
		s   *gocql.Session
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := cluster.CreateSession()
		ch <- result{s, err}
	}()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.s != nil {
				r.s.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// diagnose is called when a session with the keyspace could not be made. It
// returns ErrNoSchema (wrapped) when the cluster answers but the schema is
// missing, nil otherwise.
func diagnose(ctx context.Context, cfg config.Cassandra, cons gocql.Consistency) error {
	cluster, err := newCluster(cfg, cons)
	if err != nil {
		return err
	}
	cluster.NumConns = 1
	s, err := createSession(ctx, cluster)
	if err != nil {
		return nil
	}
	defer s.Close()
	err = checkSchema(ctx, s, cfg.Keyspace)
	if errors.Is(err, ErrNoSchema) {
		return err
	}
	return nil
}

// checkSchema reports ErrNoSchema unless the keyspace and every table exist.
func checkSchema(ctx context.Context, s *gocql.Session, keyspace string) error {
	iter := s.Query(`SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?`, keyspace).
		Idempotent(true).IterContext(ctx)
	have := map[string]bool{}
	var name string
	for iter.Scan(&name) {
		have[name] = true
	}
	if err := iter.Close(); err != nil {
		return classify("check schema", err)
	}
	if len(have) == 0 {
		return fmt.Errorf("%w: keyspace %q has no tokengw tables or does not exist", ErrNoSchema, keyspace)
	}
	var missing []string
	for _, t := range tables() {
		if !have[t] {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: keyspace %q lacks table(s) %s", ErrNoSchema, keyspace, strings.Join(missing, ", "))
	}
	for _, table := range slices.Sorted(maps.Keys(addedColumns())) {
		cols, err := columnsOf(ctx, s, keyspace, table)
		if err != nil {
			return classify("check schema", err)
		}
		for _, c := range addedColumns()[table] {
			if !cols[c.name] {
				missing = append(missing, table+"."+c.name)
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: keyspace %q lacks column(s) %s", ErrNoSchema, keyspace, strings.Join(missing, ", "))
	}
	return nil
}

// newCluster turns the configuration into a gocql cluster configuration
// (without a keyspace). Each call builds a fresh host selection policy:
// gocql forbids sharing one between sessions.
func newCluster(cfg config.Cassandra, cons gocql.Consistency) (*gocql.ClusterConfig, error) {
	if len(cfg.Hosts) == 0 {
		return nil, errors.New("cassandra: no hosts configured")
	}
	cluster := gocql.NewCluster()
	port := 0
	for _, h := range cfg.Hosts {
		host, p, err := net.SplitHostPort(h)
		if err != nil { // a bare host: the default port
			host, p = h, ""
		}
		if p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n <= 0 || n > 65535 {
				return nil, fmt.Errorf("cassandra: host %q: bad port", h)
			}
			// gocql has one port for the whole cluster (nodes it discovers
			// are dialled on it too), so every host must agree.
			if port != 0 && n != port {
				return nil, fmt.Errorf("cassandra: hosts %v: every host must use the same port", cfg.Hosts)
			}
			port = n
		}
		cluster.Hosts = append(cluster.Hosts, host)
	}
	if port != 0 {
		cluster.Port = port
	}
	cluster.Consistency = cons
	cluster.SerialConsistency = serialFor(cons)
	if cfg.Timeout > 0 {
		cluster.Timeout = cfg.Timeout
	}
	if cfg.ConnectTimeout > 0 {
		cluster.ConnectTimeout = cfg.ConnectTimeout
	}
	if cfg.NumConns > 0 {
		cluster.NumConns = cfg.NumConns
	}
	if cfg.Username != "" {
		cluster.Authenticator = gocql.PasswordAuthenticator{Username: cfg.Username, Password: cfg.Password}
	}
	cluster.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(gocql.RoundRobinHostPolicy(), gocql.ShuffleReplicas())
	cluster.RetryPolicy = &retryPolicy{retries: retries}
	// Never MaxRetries 0: the v2.1.2 pool then makes no connection attempt,
	// appends a nil connection and the first query panics.
	cluster.ReconnectionPolicy = &gocql.ExponentialReconnectionPolicy{
		MaxRetries: 3, InitialInterval: 100 * time.Millisecond, MaxInterval: time.Second,
	}
	cluster.ReconnectInterval = reconnectInterval
	cluster.SocketKeepalive = 30 * time.Second
	// Token-aware routing needs the keyspaces' replication, not the whole
	// schema (tables, columns, functions) that Full would cache.
	cluster.Metadata.CacheMode = gocql.KeyspaceOnly
	return cluster, nil
}

// Close lets the background slot releases already started finish (each
// on its own deadline, the query timeout, so this waits at most about
// that long; none starts after Close began), then closes the session
// (in-flight statements fail). Further calls return store.ErrClosed.
func (s *Store) Close() error {
	s.bgMu.Lock()
	already := s.closed.Swap(true)
	s.bgMu.Unlock()
	if already {
		return nil
	}
	s.bg.Wait()
	s.session.Close()
	return nil
}

// Ping runs SELECT release_version FROM system.local.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	var v string
	err := s.idem(s.session.Query(`SELECT release_version FROM system.local`)).
		Consistency(gocql.One).ScanContext(ctx, &v)
	return classify("ping", err)
}

// --- consistency ---------------------------------------------------------------------

func parseConsistency(name string) (gocql.Consistency, error) {
	var c gocql.Consistency
	if err := c.UnmarshalText([]byte(strings.ToUpper(strings.TrimSpace(name)))); err != nil {
		return 0, fmt.Errorf("cassandra: consistency %q: %w", name, err)
	}
	if c == gocql.Serial || c == gocql.LocalSerial {
		return 0, fmt.Errorf("cassandra: consistency %q is a serial consistency (lightweight transactions use SERIAL or LOCAL_SERIAL by themselves)", name)
	}
	return c, nil
}

// readConsistency maps the configured (write) consistency to one that reads
// accept: ANY is write-only (read at ONE), EACH_QUORUM is write-only (read
// at LOCAL_QUORUM).
func readConsistency(c gocql.Consistency) gocql.Consistency {
	switch c {
	case gocql.Any:
		return gocql.One
	case gocql.EachQuorum:
		return gocql.LocalQuorum
	}
	return c
}

// quorumAtLeast raises a read consistency below a quorum to LOCAL_QUORUM.
func quorumAtLeast(c gocql.Consistency) gocql.Consistency {
	switch c {
	case gocql.Quorum, gocql.LocalQuorum, gocql.All:
		return c
	}
	return gocql.LocalQuorum
}

// --- errors ----------------------------------------------------------------------------

// classify wraps a driver error: context errors and ErrNotFound-free driver
// errors pass through wrapped, transient ones also wrap store.ErrUnavailable.
func classify(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("cassandra: %s: %w", op, err)
	case errors.Is(err, gocql.ErrSessionClosed):
		return fmt.Errorf("cassandra: %s: %w", op, store.ErrClosed)
	case transient(err):
		return fmt.Errorf("cassandra: %s: %w: %w", op, store.ErrUnavailable, err)
	default:
		return fmt.Errorf("cassandra: %s: %w", op, err)
	}
}

// connectErr wraps a failure to create a session: the context's error, or
// store.ErrUnavailable (gocql's session errors are plain strings).
func connectErr(op string, hosts []string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("cassandra: %s: connect %v: %w", op, hosts, err)
	}
	return fmt.Errorf("cassandra: %s: connect %v: %w: %w", op, hosts, store.ErrUnavailable, err)
}

// transient reports whether err is worth a retry or a 503: everything the
// network or an overloaded, timing-out or short-of-replicas cluster says;
// not errors in the statement, the schema, the credentials or the data.
func transient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, gocql.ErrSessionClosed) || errors.Is(err, gocql.ErrNotFound) {
		return false
	}
	var re gocql.RequestError
	if errors.As(err, &re) {
		switch re.Code() {
		case gocql.ErrCodeServer, gocql.ErrCodeUnavailable, gocql.ErrCodeOverloaded,
			gocql.ErrCodeBootstrapping, gocql.ErrCodeTruncate, gocql.ErrCodeWriteTimeout,
			gocql.ErrCodeReadTimeout, gocql.ErrCodeReadFailure, gocql.ErrCodeWriteFailure,
			gocql.ErrCodeCASWriteUnknown:
			return true
		}
		return false
	}
	var me gocql.MarshalError
	var ue gocql.UnmarshalError
	if errors.As(err, &me) || errors.As(err, &ue) {
		return false
	}
	// No hosts in the pool, connection refused or closed, client-side
	// timeouts, no streams left: the cluster cannot be reached right now.
	return true
}

// retryPolicy retries idempotent statements on the next host after a
// transient error, while the statement's context lasts. gocql consults it
// only for statements marked Idempotent(true).
type retryPolicy struct{ retries int }

func (r *retryPolicy) Attempt(q gocql.RetryableQuery) bool {
	if ctx := q.Context(); ctx != nil && ctx.Err() != nil {
		return false
	}
	return q.Attempts() <= r.retries
}

func (r *retryPolicy) GetRetryType(err error) gocql.RetryType {
	if transient(err) {
		return gocql.RetryNextHost
	}
	return gocql.Rethrow
}

// --- helpers ---------------------------------------------------------------------------

// ttlSeconds is the TTL that keeps a row until `until`: whole seconds,
// the remaining time rounded up plus one, at least 1 (Cassandra rejects 0
// as "no TTL" would be wrong here) and at most Cassandra's maximum.
//
// The extra second is because Cassandra counts a TTL from the whole second
// the write is applied in: a cell written at server time t with TTL n
// expires at floor(t) + n, not t + n (its local deletion time is
// nowInSeconds + n). Rounded up alone, a row written at x.97 s that must
// live 1.99 s got TTL 2 and died at x+2, a whole 0.97 s early: issue 18's
// cluster test saw a short reuse window's slot row vanish while the
// winner's replica still handed its token out from L1, and the other
// replica's late claim (IF NOT EXISTS) apply over it: two tokens in one
// window. With the extra second a row dies at floor(t) + ceil(d) + 1 >
// t + d: never before `until` (clock skew between the gateway and the
// servers aside), and at most two seconds after it; reads compare
// reuse_until / expires_at with the gateway's clock, and a claim takes over
// a row whose window has passed (Issue).
func ttlSeconds(until, now time.Time) int {
	d := until.Sub(now)
	if d <= 0 {
		return 1
	}
	s := (d+time.Second-1)/time.Second + 1
	if s > maxTTL {
		return maxTTL
	}
	return int(s)
}

// keyspaceName validates the configured keyspace and lower-cases it, as CQL
// does with every unquoted identifier (the schema tables store it so).
func keyspaceName(name string) (string, error) {
	if !validIdent(name) {
		return "", fmt.Errorf("cassandra: keyspace %q is not a CQL identifier (letters, digits, _)", name)
	}
	return strings.ToLower(name), nil
}

// validIdent reports whether s is a plain CQL identifier (no quoting needed).
func validIdent(s string) bool {
	if s == "" || len(s) > 48 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c == '_' || (c >= '0' && c <= '9'):
			if i == 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}
