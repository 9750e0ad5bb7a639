package cassandra

import (
	"context"

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
