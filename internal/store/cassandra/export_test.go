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
	return s.degradedFallbacks.Load(), s.degradedDirect.Load()
}

// SetWriteFault makes f run every token write (op "issue: insert token
// index" or "issue: insert token") in place of the store; f may skip the
// statement or replace its answer, e.g. with a write timeout.
func SetWriteFault(s *Store, f func(op string, run func() error) error) { s.writeFault = f }

// Resends counts writes sent again after an unknown outcome.
func Resends(s *Store) uint64 { return s.resends.Load() }

// WaitBackground waits for the background slot releases s has started.
func WaitBackground(s *Store) { s.bg.Wait() }

// SetReadFault makes f run every reuse-path read (at consistency cons) in
// place of the store, and hostsDown, when not nil, stand for the driver's
// count of nodes it sees down.
func SetReadFault(s *Store, f func(cons gocql.Consistency, run func() error) error, hostsDown func() int) {
	s.readFault, s.hostsDown = f, hostsDown
}
