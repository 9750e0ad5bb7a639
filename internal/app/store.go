package app

import (
	"context"
	"fmt"
	"time"

	"github.com/tokengw/tokengw/internal/config"
	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/bolt"
	"github.com/tokengw/tokengw/internal/store/cassandra"
	"github.com/tokengw/tokengw/internal/store/memory"
)

// OpenStore opens the store driver the configuration names: bolt
// (embedded), cassandra (shared by replicas) or memory. The Cassandra store
// judges expiry by the real clock: its TTLs run on the servers' clocks, so
// an injected clock could only disagree with them.
func OpenStore(ctx context.Context, cfg *config.Config, now func() time.Time) (store.Store, error) {
	var (
		s   store.Store
		err error
	)
	switch cfg.Store.Driver {
	case "memory":
		return memory.New(memory.Options{Now: now}), nil
	case "bolt":
		s, err = bolt.Open(cfg.Store.Bolt.Path, bolt.Options{Now: now})
	case "cassandra":
		s, err = cassandra.Open(ctx, cfg.Store.Cassandra, cassandra.Options{})
	default:
		return nil, fmt.Errorf("app: store driver %q is not available in this build", cfg.Store.Driver)
	}
	if err != nil {
		return nil, fmt.Errorf("app: store: %w", err)
	}
	return s, nil
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
