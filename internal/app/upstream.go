package app

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/tokengw/tokengw/internal/config"
	"github.com/tokengw/tokengw/internal/limiter"
	"github.com/tokengw/tokengw/internal/reuse"
	"github.com/tokengw/tokengw/internal/seal"
	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/memory"
	"github.com/tokengw/tokengw/internal/upstream"
)

// newUpstream builds upstream mode's gateway (upstream.token_url set). Its
// rows go to the driver (bolt, cassandra, memory: each keeps them) through
// instrumented, the driver with metrics; a driver without them gets an
// in-process table.
func newUpstream(cfg *config.Config, backend, instrumented store.Store, sealer *seal.Sealer, consumer *limiter.Set[string], failedIP *limiter.Set[netip.Addr], log *slog.Logger, now func() time.Time) (*upstream.Gateway, error) {
	u := cfg.Upstream
	client, err := upstream.NewHTTPClient(u.TLS)
	if err != nil {
		return nil, err
	}
	var rows store.Upstream = memory.NewUpstream(now)
	if _, ok := backend.(store.Upstream); ok {
		if u, ok := instrumented.(store.Upstream); ok {
			rows = u
		}
	}
	key, err := upstreamCacheKey(cfg)
	if err != nil {
		return nil, err
	}
	return upstream.New(upstream.Options{
		TokenURL: u.TokenURL, RevocationURL: u.RevocationURL, HTTPClient: client, Timeout: u.Timeout,
		ExpiryMargin: u.ExpiryMargin,
		Policy:       reuse.Policy{MinRemaining: cfg.Reuse.MinRemaining, MaxElapsedFraction: cfg.Reuse.MaxElapsedFraction},
		ReplayWindow: u.Refresh.ReplayWindow, MaxReplays: u.Refresh.MaxReplays, NegativeTTL: u.Refresh.NegativeTTL,
		LocalTTL: cfg.Reuse.LocalTTL,
		Store:    rows, StoreTimeout: cfg.Server.Timeouts.Store, Sealer: sealer, CacheKey: key,
		MaxBodyBytes: cfg.Server.MaxBodyBytes, BodyTimeout: cfg.Server.Timeouts.Body,
		Consumer: consumer, ConsumerLimit: limiter.Limit{Rate: cfg.Limits.PerClient.Rate, Burst: cfg.Limits.PerClient.Burst},
		FailedIP: failedIP, FailedIPLimit: limiter.Limit{Rate: cfg.Limits.PerIPFailedAuth.Rate, Burst: cfg.Limits.PerIPFailedAuth.Burst},
		TrustedProxies: cfg.Server.TrustedProxyPrefixes(), Logger: log, Now: now,
	})
}

// upstreamCacheKey is the key of upstream mode's keyed hashes, derived from
// the first seal key, which every replica shares (upstream.DeriveCacheKey);
// the embedded store's generated seal key when none is configured; a random
// one for the memory store (one process).
func upstreamCacheKey(cfg *config.Config) ([]byte, error) {
	keys, err := cfg.Store.DecodedSealKeys()
	if err != nil {
		return nil, err
	}
	switch {
	case len(keys) > 0:
		return upstream.DeriveCacheKey(keys[0]), nil
	case cfg.Store.Driver == "bolt":
		k, err := seal.LoadOrCreateKeyFile(filepath.Join(filepath.Dir(cfg.Store.Bolt.Path), "seal.key"))
		if err != nil {
			return nil, fmt.Errorf("app: %w", err)
		}
		return upstream.DeriveCacheKey(k), nil
	default:
		k := make([]byte, seal.KeyLen)
		if _, err := rand.Read(k); err != nil {
			return nil, fmt.Errorf("app: %w", err)
		}
		return upstream.DeriveCacheKey(k), nil
	}
}
