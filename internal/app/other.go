package app

import (
	"context"
	"fmt"

	"github.com/tokengw/tokengw/internal/config"
	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/cassandra"
)

// openOther opens the drivers that need a server (cassandra). The Cassandra
// store judges expiry by the real clock: its TTLs run on the servers'
// clocks, so an injected clock could only disagree with them.
func openOther(ctx context.Context, cfg *config.Config) (store.Store, error) {
	switch cfg.Store.Driver {
	case "cassandra":
		s, err := cassandra.Open(ctx, cfg.Store.Cassandra, cassandra.Options{})
		if err != nil {
			return nil, fmt.Errorf("app: store: %w", err)
		}
		return s, nil
	default:
		return nil, fmt.Errorf("app: store driver %q is not available in this build", cfg.Store.Driver)
	}
}

// Migrate creates the configured store's schema. It is idempotent. For
// cassandra it creates the keyspace and tables (tokengw migrate); the
// embedded stores create theirs when opened, so for them it opens and
// closes the store.
func Migrate(ctx context.Context, cfg *config.Config) error {
	if cfg.Store.Driver == "cassandra" {
		if err := cassandra.Migrate(ctx, cfg.Store.Cassandra); err != nil {
			return fmt.Errorf("app: migrate: %w", err)
		}
		return nil
	}
	s, err := OpenStore(ctx, cfg, nil)
	if err != nil {
		return err
	}
	return s.Close()
}
