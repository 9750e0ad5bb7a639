//go:build cassandra

package clients_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/tokengw/tokengw/internal/clients"
	"github.com/tokengw/tokengw/internal/config"
	"github.com/tokengw/tokengw/internal/store/cassandra"
)

// TestReplicaRacesCassandra: the two-replica scenarios of runRaces on the
// real Cassandra, each replica with its own session, each scenario on a
// fresh keyspace. Needs TEST_CASSANDRA_ADDR (host:port).
func TestReplicaRacesCassandra(t *testing.T) {
	addr := os.Getenv("TEST_CASSANDRA_ADDR")
	if addr == "" {
		t.Fatal("TEST_CASSANDRA_ADDR is not set: this test needs a real Cassandra (host:port), e.g. 127.0.0.1:9042")
	}
	runRaces(t, func(t *testing.T) (clients.Store, clients.Store) {
		b := make([]byte, 6)
		rand.Read(b)
		cfg := config.Cassandra{Hosts: []string{addr}, Keyspace: "tokengw_test_clients_" + hex.EncodeToString(b),
			Consistency: "LOCAL_QUORUM", Timeout: 10 * time.Second, ConnectTimeout: 5 * time.Second, NumConns: 1,
			Replication: map[string]string{"class": "SimpleStrategy", "replication_factor": "1"}}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := cassandra.Migrate(ctx, cfg); err != nil {
			t.Fatalf("migrate %s on %s: %v", cfg.Keyspace, addr, err)
		}
		t.Cleanup(func() {
			cl := gocql.NewCluster(cfg.Hosts...)
			cl.Timeout = 30 * time.Second
			s, err := cl.CreateSession()
			if err != nil {
				t.Errorf("drop %s: %v", cfg.Keyspace, err)
				return
			}
			defer s.Close()
			if err := s.Query("DROP KEYSPACE IF EXISTS " + cfg.Keyspace).Exec(); err != nil {
				t.Errorf("drop %s: %v", cfg.Keyspace, err)
			}
		})
		open := func() *cassandra.Store {
			s, err := cassandra.Open(ctx, cfg, cassandra.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		return open(), open()
	})
}
