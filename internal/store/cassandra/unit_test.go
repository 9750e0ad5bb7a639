package cassandra

// Unit tests of the parts that need no Cassandra: schema rendering and
// validation, TTL arithmetic, consistency mapping, error classification.
// The integration tests (build tag cassandra) cover the rest.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/tokengw/tokengw/internal/config"
	"github.com/tokengw/tokengw/internal/store"
)

func configWith(hosts ...string) config.Cassandra {
	return config.Cassandra{
		Hosts: hosts, Keyspace: "tokengw", Consistency: "LOCAL_QUORUM",
		Timeout: 2 * time.Second, ConnectTimeout: 5 * time.Second, NumConns: 3,
		Username: "u", Password: "p",
	}
}

func TestReplicationCQL(t *testing.T) {
	tests := []struct {
		name string
		in   map[string]string
		want string // "" = error
	}{
		{"simple", map[string]string{"class": "SimpleStrategy", "replication_factor": "3"},
			"{'class': 'SimpleStrategy', 'replication_factor': '3'}"},
		{"simple full class name", map[string]string{"class": "org.apache.cassandra.locator.SimpleStrategy", "replication_factor": " 1 "},
			"{'class': 'SimpleStrategy', 'replication_factor': '1'}"},
		{"nts sorted", map[string]string{"class": "NetworkTopologyStrategy", "eu-west-1": "3", "DC1": "2", "dc_2.b": "0"},
			"{'class': 'NetworkTopologyStrategy', 'DC1': '2', 'dc_2.b': '0', 'eu-west-1': '3'}"},
		{"no class", map[string]string{"replication_factor": "1"}, ""},
		{"other class", map[string]string{"class": "LocalStrategy"}, ""},
		{"simple without factor", map[string]string{"class": "SimpleStrategy"}, ""},
		{"simple zero", map[string]string{"class": "SimpleStrategy", "replication_factor": "0"}, ""},
		{"simple extra option", map[string]string{"class": "SimpleStrategy", "replication_factor": "1", "dc1": "1"}, ""},
		{"simple not a number", map[string]string{"class": "SimpleStrategy", "replication_factor": "1'}; DROP KEYSPACE x; --"}, ""},
		{"nts no dc", map[string]string{"class": "NetworkTopologyStrategy"}, ""},
		{"nts all zero", map[string]string{"class": "NetworkTopologyStrategy", "dc1": "0"}, ""},
		{"nts quote in dc", map[string]string{"class": "NetworkTopologyStrategy", "dc1': '3', 'x": "1"}, ""},
		{"nts space in dc", map[string]string{"class": "NetworkTopologyStrategy", "dc 1": "1"}, ""},
		{"nts negative", map[string]string{"class": "NetworkTopologyStrategy", "dc1": "-1"}, ""},
		{"class injection", map[string]string{"class": "SimpleStrategy'}", "replication_factor": "1"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := replicationCQL(tc.in)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("replicationCQL(%v) = %q, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("replicationCQL(%v) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestStatements(t *testing.T) {
	stmts, err := Statements("TokenGW", map[string]string{"class": "SimpleStrategy", "replication_factor": "1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(stmts) != 1+len(tables()) {
		t.Fatalf("%d statements", len(stmts))
	}
	if !strings.HasPrefix(stmts[0], "CREATE KEYSPACE IF NOT EXISTS tokengw WITH replication = {'class': 'SimpleStrategy'") {
		t.Fatalf("keyspace statement: %s", stmts[0])
	}
	for i, table := range tables() {
		if !strings.HasPrefix(stmts[i+1], "CREATE TABLE IF NOT EXISTS tokengw."+table+" (") {
			t.Fatalf("statement %d: %s", i+1, stmts[i+1])
		}
		if table != "clients" && table != "signing_keys" && !strings.Contains(stmts[i+1], "TimeWindowCompactionStrategy") {
			t.Fatalf("%s is not TWCS: %s", table, stmts[i+1])
		}
		if strings.Contains(strings.ToUpper(stmts[i+1]), "INDEX") {
			t.Fatalf("%s has an index: %s", table, stmts[i+1])
		}
	}
	for _, ks := range []string{"", "1abc", "a-b", "a b", "x;DROP", strings.Repeat("a", 49), `"quoted"`} {
		if _, err := Statements(ks, map[string]string{"class": "SimpleStrategy", "replication_factor": "1"}); err == nil {
			t.Errorf("Statements(keyspace %q) accepted it", ks)
		}
	}
}

func TestTTLSeconds(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		d    time.Duration
		want int
	}{
		{-time.Hour, 1},
		{0, 1},
		{time.Millisecond, 2},
		{time.Second, 2},
		{time.Second + time.Millisecond, 3},
		{1500 * time.Millisecond, 3},
		{1990 * time.Millisecond, 3},
		{time.Hour, 3601},
		{30 * 24 * time.Hour, 2592001},
		{100 * 365 * 24 * time.Hour, maxTTL},
	}
	for _, tc := range tests {
		if got := ttlSeconds(now.Add(tc.d), now); got != tc.want {
			t.Errorf("ttlSeconds(now%+v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

// TestTTLOutlivesUntilOnServerClock models Cassandra's expiry rule: a cell
// written at server time t with TTL n is live while the server's whole
// second is below floor(t) + n. A row written at any phase of a second, at
// or after the gateway computed its TTL, must be live until `until`
// (issue 18: a slot row written at x.97 s for a 1.99 s window died at
// x+2 s, and a second token was claimed into the window).
func TestTTLOutlivesUntilOnServerClock(t *testing.T) {
	base := time.Date(2026, 12, 3, 7, 17, 29, 0, time.UTC)
	for _, phase := range []time.Duration{0, time.Millisecond, 500 * time.Millisecond, 970 * time.Millisecond, 999 * time.Millisecond} {
		for _, d := range []time.Duration{time.Millisecond, 300 * time.Millisecond, time.Second, 1990 * time.Millisecond,
			2 * time.Second, 2001 * time.Millisecond, 5 * time.Minute} {
			for _, lag := range []time.Duration{0, 40 * time.Millisecond, 900 * time.Millisecond} {
				now := base.Add(phase)
				until := now.Add(d)
				applied := now.Add(lag) // the server applies the write after the gateway's now
				ttl := ttlSeconds(until, now)
				dies := time.Unix(applied.Unix()+int64(ttl), 0) // floor(t) + n
				if dies.Before(until) {
					t.Errorf("now %s, until +%v, applied +%v: TTL %d s dies at %s, before %s",
						now.Format("05.000"), d, lag, ttl, dies.Format("05.000"), until.Format("05.000"))
				}
				if late := dies.Sub(until); late > 2*time.Second+lag {
					t.Errorf("now %s, until +%v: TTL %d s outlives until by %v", now.Format("05.000"), d, ttl, late)
				}
			}
		}
	}
}

func TestConsistency(t *testing.T) {
	tests := []struct {
		in                string
		write, read, slot gocql.Consistency
		wantErr           bool
	}{
		{in: "LOCAL_QUORUM", write: gocql.LocalQuorum, read: gocql.LocalQuorum, slot: gocql.LocalQuorum},
		{in: "local_one", write: gocql.LocalOne, read: gocql.LocalOne, slot: gocql.LocalQuorum},
		{in: "QUORUM", write: gocql.Quorum, read: gocql.Quorum, slot: gocql.Quorum},
		{in: "ANY", write: gocql.Any, read: gocql.One, slot: gocql.LocalQuorum},
		{in: "EACH_QUORUM", write: gocql.EachQuorum, read: gocql.LocalQuorum, slot: gocql.LocalQuorum},
		{in: "ALL", write: gocql.All, read: gocql.All, slot: gocql.All},
		{in: "SERIAL", wantErr: true},
		{in: "LOCAL_SERIAL", wantErr: true},
		{in: "MOST", wantErr: true},
	}
	for _, tc := range tests {
		c, err := parseConsistency(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("parseConsistency(%q) accepted it", tc.in)
			}
			continue
		}
		if err != nil || c != tc.write || readConsistency(c) != tc.read || quorumAtLeast(readConsistency(c)) != tc.slot {
			t.Errorf("%s: write %v read %v slot %v err %v", tc.in, c, readConsistency(c), quorumAtLeast(readConsistency(c)), err)
		}
	}
}

// reqErr is a server error with a given code, as gocql's RequestErr* types
// carry (their code field is unexported).
type reqErr int

func (e reqErr) Code() int       { return int(e) }
func (e reqErr) Message() string { return fmt.Sprintf("code %#x", int(e)) }
func (e reqErr) Error() string   { return e.Message() }

func TestClassify(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	tests := []struct {
		name                 string
		err                  error
		unavailable, applied bool // applied: Issue must release the slot
		is                   error
	}{
		{"no hosts", gocql.ErrNoConnections, true, false, nil},
		{"client timeout", gocql.ErrTimeoutNoResponse, true, true, nil},
		{"connection closed", gocql.ErrConnectionClosed, true, true, nil},
		{"dial", refused, true, true, nil},
		{"eof", io.EOF, true, true, nil},
		{"unavailable", reqErr(gocql.ErrCodeUnavailable), true, false, nil},
		{"overloaded", reqErr(gocql.ErrCodeOverloaded), true, false, nil},
		{"write timeout", reqErr(gocql.ErrCodeWriteTimeout), true, true, nil},
		{"cas unknown", reqErr(gocql.ErrCodeCASWriteUnknown), true, true, nil},
		{"read timeout", reqErr(gocql.ErrCodeReadTimeout), true, false, nil},
		{"syntax", reqErr(gocql.ErrCodeSyntax), false, false, nil},
		{"invalid", reqErr(gocql.ErrCodeInvalid), false, false, nil},
		{"unauthorized", reqErr(gocql.ErrCodeUnauthorized), false, false, nil},
		{"marshal", gocql.MarshalError("bad"), false, false, nil},
		{"canceled", context.Canceled, false, true, context.Canceled},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), false, true, context.DeadlineExceeded},
		{"session closed", gocql.ErrSessionClosed, false, false, store.ErrClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := classify("op", tc.err)
			if errors.Is(got, store.ErrUnavailable) != tc.unavailable {
				t.Fatalf("classify(%v) = %v; unavailable = %v, want %v", tc.err, got, !tc.unavailable, tc.unavailable)
			}
			if !errors.Is(got, tc.err) && !errors.Is(tc.err, gocql.ErrSessionClosed) {
				t.Fatalf("classify(%v) = %v does not wrap the driver error", tc.err, got)
			}
			if tc.is != nil && !errors.Is(got, tc.is) {
				t.Fatalf("classify(%v) = %v, want it to wrap %v", tc.err, got, tc.is)
			}
			if maybeApplied(got) != tc.applied {
				t.Fatalf("maybeApplied(%v) = %v, want %v", got, !tc.applied, tc.applied)
			}
			r := &retryPolicy{retries: 2}
			if want := map[bool]gocql.RetryType{true: gocql.RetryNextHost, false: gocql.Rethrow}[tc.unavailable]; r.GetRetryType(tc.err) != want {
				t.Fatalf("GetRetryType(%v) = %v, want %v", tc.err, r.GetRetryType(tc.err), want)
			}
		})
	}
	if classify("op", nil) != nil {
		t.Fatal("classify(nil) != nil")
	}
}

func TestNewCluster(t *testing.T) {
	c, err := newCluster(configWith("10.0.0.1:9142", "10.0.0.2:9142"), gocql.LocalQuorum)
	if err != nil || c.Port != 9142 || fmt.Sprint(c.Hosts) != "[10.0.0.1 10.0.0.2]" {
		t.Fatalf("newCluster = %v %v, %v", c.Hosts, c.Port, err)
	}
	if c.SerialConsistency != gocql.LocalSerial || c.Consistency != gocql.LocalQuorum || c.NumConns != 3 ||
		c.Timeout != 2*time.Second || c.ConnectTimeout != 5*time.Second || c.Authenticator == nil {
		t.Fatalf("newCluster: %+v", c)
	}
	if p, ok := c.ReconnectionPolicy.(*gocql.ExponentialReconnectionPolicy); !ok || p.GetMaxRetries() < 1 {
		t.Fatalf("reconnection policy %#v: MaxRetries must be >= 1 (0 panics in gocql v2.1.2)", c.ReconnectionPolicy)
	}
	if c, err := newCluster(configWith("db1", "db2"), gocql.One); err != nil || c.Port != 9042 {
		t.Fatalf("bare hosts: %v, %v", c, err)
	}
	if _, err := newCluster(configWith("a:9042", "b:9043"), gocql.One); err == nil {
		t.Fatal("hosts on different ports accepted")
	}
	if _, err := newCluster(configWith("a:x"), gocql.One); err == nil {
		t.Fatal("bad port accepted")
	}
}

func TestShortHostsFor(t *testing.T) {
	for _, tc := range []struct {
		repl map[string]string
		want int
	}{
		{map[string]string{"class": "SimpleStrategy", "replication_factor": "1"}, 0},
		{map[string]string{"class": "SimpleStrategy", "replication_factor": "3"}, 2},
		{map[string]string{"class": "SimpleStrategy", "replication_factor": "5"}, 3},
		{map[string]string{"class": "NetworkTopologyStrategy", "dc1": "3", "dc2": "5"}, 3},
		{map[string]string{"class": "NetworkTopologyStrategy", "dc1": "2"}, 1},
		{nil, 0},
	} {
		if got := shortHostsFor(tc.repl); got != tc.want {
			t.Errorf("shortHostsFor(%v) = %d, want %d", tc.repl, got, tc.want)
		}
	}
}

func TestQuorumSizeFor(t *testing.T) {
	simple := func(rf string) map[string]string {
		return map[string]string{"class": "SimpleStrategy", "replication_factor": rf}
	}
	twoDC := map[string]string{"class": "NetworkTopologyStrategy", "dc1": "3", "dc2": "3"}
	for _, tc := range []struct {
		repl map[string]string
		cons gocql.Consistency
		want int
	}{
		{simple("1"), gocql.Quorum, 1},
		{simple("3"), gocql.Quorum, 2},
		{simple("5"), gocql.Quorum, 3},
		{simple("3"), gocql.LocalQuorum, 2},
		{twoDC, gocql.Quorum, 4},
		// The local datacenter of several is not known: never gate.
		{twoDC, gocql.LocalQuorum, 0},
		{map[string]string{"class": "NetworkTopologyStrategy", "dc1": "3"}, gocql.LocalQuorum, 2},
		{nil, gocql.Quorum, 0},
		{map[string]string{"class": "SimpleStrategy", "replication_factor": "x"}, gocql.Quorum, 0},
	} {
		if got := quorumSizeFor(tc.repl, tc.cons); got != tc.want {
			t.Errorf("quorumSizeFor(%v, %v) = %d, want %d", tc.repl, tc.cons, got, tc.want)
		}
	}
}

func TestNeedsQuorum(t *testing.T) {
	for c, want := range map[gocql.Consistency]bool{
		gocql.One: false, gocql.LocalOne: false, gocql.Any: false,
		gocql.Quorum: true, gocql.LocalQuorum: true, gocql.All: true, gocql.Two: true,
	} {
		if got := needsQuorum(c); got != want {
			t.Errorf("needsQuorum(%v) = %v, want %v", c, got, want)
		}
	}
}
