//go:build cassandra

package cassandra_test

import (
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/storetest"
)

// TestUpstreamConformance runs store.Upstream's suite against the real
// Cassandra (leases and replay counts are lightweight transactions).
func TestUpstreamConformance(t *testing.T) {
	cfg := sharedConfig(t)
	storetest.RunUpstream(t, storetest.Harness{
		New: func(t *testing.T) store.Store { return openStore(t, cfg) },
		Now: time.Now,
	})
}
