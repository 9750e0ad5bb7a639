package cassandra

import (
	"context"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/tokengw/tokengw/internal/config"
)

// SetCASFault makes f run every lightweight transaction of s (op names
// it: "issue: claim", "create client", ...) in place of the store; f may
// skip the statement or replace its answer, e.g. with a CAS-unknown error.
func SetCASFault(s *Store, f func(op string, run func() (bool, error)) (bool, error)) { s.casFault = f }

// MigrateRacing is Migrate with beforeAlter run before each ALTER TABLE
// ... ADD: the moment another migrate may add the same column.
func MigrateRacing(ctx context.Context, cfg config.Cassandra, beforeAlter func(table, column string)) error {
	return migrate(ctx, cfg, beforeAlter)
}

// DegradedReads reports how many reuse-path reads fell back to one replica
// after a failed quorum attempt, and how many went there at once while a
// quorum was known to be short.
func DegradedReads(s *Store) (fallbacks, direct uint64) {
	st := s.Stats() // the operator's metrics read the same counts
	return st.DegradedFallbacks, st.DegradedDirect
}

// SetWriteFault makes f run every token write (op "issue: insert token
// index" or "issue: insert token") in place of the store; f may skip the
// statement or replace its answer, e.g. with a write timeout.
func SetWriteFault(s *Store, f func(op string, run func() error) error) { s.writeFault = f }

// Resends counts writes sent again after an unknown outcome.
func Resends(s *Store) uint64 { return s.Stats().Resends }

// WaitBackground waits for the background slot releases s has started.
func WaitBackground(s *Store) { s.bg.Wait() }

// SetReadFault makes f run every reuse-path read (at consistency cons) in
// place of the store, and hosts, when not nil, stand for the driver's
// count of the nodes it sees up and down.
func SetReadFault(s *Store, f func(cons gocql.Consistency, run func() error) error, hosts func() (up, down int)) {
	s.readFault, s.hostsHook = f, hosts
}

// QuorumGate reports how many operations the quorum gate let through as
// probes and how many it refused.
func QuorumGate(s *Store) (probes, refused uint64) {
	st := s.Stats()
	return st.QuorumProbes, st.QuorumRefused
}

// Replication reports how many nodes down can leave a partition without a
// quorum, and how many replicas a quorum needs, as Open read them.
func Replication(s *Store) (shortHosts, quorumSize int) { return s.shortHosts, s.quorumSize }

// ErrQuorumDown is the cause of an operation the quorum gate refused.
var ErrQuorumDown = errQuorumDown

// SetQuorumSize replaces how many replicas s takes a quorum to need.
func SetQuorumSize(s *Store, n int) { s.quorumSize = n }
