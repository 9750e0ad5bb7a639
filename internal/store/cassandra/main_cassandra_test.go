//go:build cassandra

package cassandra_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/tokengw/tokengw/internal/config"
	"github.com/tokengw/tokengw/internal/store/cassandra"
)

// The integration tests run against the Cassandra named by
// TEST_CASSANDRA_ADDR (host:port; `make test` starts one and sets it).
// They fail, not skip, without it: with the cassandra build tag the caller
// asked for them.
const envAddr = "TEST_CASSANDRA_ADDR"

var (
	setupOnce sync.Once
	setupErr  error
	// testKS is this run's keyspace, created by the first test that needs
	// it and dropped by TestMain.
	testKS    string
	extraKSMu sync.Mutex
	extraKS   []string // other keyspaces the tests created, dropped by TestMain
)

func TestMain(m *testing.M) {
	code := m.Run()
	if testKS != "" || len(extraKS) > 0 {
		if err := dropKeyspaces(append([]string{testKS}, extraKS...)); err != nil {
			fmt.Fprintf(os.Stderr, "cassandra tests: dropping the test keyspaces: %v\n", err)
		}
	}
	os.Exit(code)
}

// baseConfig is the configuration of the test cluster, keyspace ks.
func baseConfig(t testing.TB, ks string) config.Cassandra {
	t.Helper()
	addr := os.Getenv(envAddr)
	if addr == "" {
		t.Fatalf("%s is not set: these tests need a real Cassandra (host:port); `make test` or `bash scripts/cassandra.sh start` and export %s=127.0.0.1:9042", envAddr, envAddr)
	}
	return config.Cassandra{
		Hosts:          []string{addr},
		Keyspace:       ks,
		Consistency:    "LOCAL_QUORUM",
		Timeout:        5 * time.Second,
		ConnectTimeout: 5 * time.Second,
		NumConns:       2,
		Replication:    map[string]string{"class": "SimpleStrategy", "replication_factor": "1"},
	}
}

// randomKeyspace returns a fresh keyspace name, remembered for dropping.
func randomKeyspace(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	ks := prefix + hex.EncodeToString(b)
	if prefix != "tokengw_test_" {
		extraKSMu.Lock()
		extraKS = append(extraKS, ks)
		extraKSMu.Unlock()
	}
	return ks
}

// sharedConfig migrates this run's keyspace once and returns its config.
func sharedConfig(t testing.TB) config.Cassandra {
	t.Helper()
	cfg := baseConfig(t, "")
	setupOnce.Do(func() {
		if _, _, err := net.SplitHostPort(cfg.Hosts[0]); err != nil {
			setupErr = fmt.Errorf("%s=%q: %w", envAddr, cfg.Hosts[0], err)
			return
		}
		ks := randomKeyspace("tokengw_test_")
		cfg.Keyspace = ks
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		t0 := time.Now()
		if err := cassandra.Migrate(ctx, cfg); err != nil {
			setupErr = fmt.Errorf("migrate %s on %v (is Cassandra running? bash scripts/cassandra.sh start): %w", ks, cfg.Hosts, err)
			return
		}
		testKS = ks
		t.Logf("keyspace %s migrated in %v", ks, time.Since(t0).Round(time.Millisecond))
	})
	if setupErr != nil {
		t.Fatal(setupErr)
	}
	cfg.Keyspace = testKS
	return cfg
}

// rawSession is a plain gocql session on the test cluster (no keyspace),
// for setting up and inspecting what the store does not expose.
func rawSession(t testing.TB) *gocql.Session {
	t.Helper()
	s, err := newRawSession(os.Getenv(envAddr))
	if err != nil {
		t.Fatalf("raw session: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func newRawSession(addr string) (*gocql.Session, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	c := gocql.NewCluster(host)
	if c.Port, err = strconv.Atoi(port); err != nil {
		return nil, err
	}
	c.Consistency = gocql.One
	c.Timeout = 30 * time.Second
	c.ConnectTimeout = 10 * time.Second
	c.NumConns = 1
	return c.CreateSession()
}

func dropKeyspaces(names []string) error {
	s, err := newRawSession(os.Getenv(envAddr))
	if err != nil {
		return err
	}
	defer s.Close()
	for _, ks := range names {
		if ks == "" {
			continue
		}
		if err := s.Query("DROP KEYSPACE IF EXISTS " + ks).Exec(); err != nil {
			return fmt.Errorf("drop %s: %w", ks, err)
		}
	}
	return nil
}

// truncate empties the tables of keyspace ks.
func truncate(t testing.TB, s *gocql.Session, ks string) {
	t.Helper()
	for _, table := range []string{"tokens", "tokens_by_client", "current_tokens", "clients", "signing_keys"} {
		if err := s.Query(fmt.Sprintf("TRUNCATE %s.%s", ks, table)).Exec(); err != nil {
			t.Fatalf("truncate %s.%s: %v", ks, table, err)
		}
	}
}

// openStore opens a Store on cfg, closed at the end of the test.
func openStore(t testing.TB, cfg config.Cassandra) *cassandra.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := cassandra.Open(ctx, cfg, cassandra.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
