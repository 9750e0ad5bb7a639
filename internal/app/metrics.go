package app

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokengw/tokengw/internal/store/cassandra"
)

// registerMetrics exposes the counters that the reuse layer, the limiters and
// client authentication keep themselves.
func (a *App) registerMetrics() error {
	counter := func(name, help string, labels prometheus.Labels, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels},
			func() float64 { return float64(f()) })
	}
	gauge := func(name, help string, f func() int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return float64(f()) })
	}
	const evictHelp = "Partly spent token buckets evicted to respect the limiter's key bound (each key got a fresh bucket); rising steadily: too many callers for the bound."
	const reuseHelp = "Tokens handed out by source: reused from the in-process cache (l1), reused from the store (l2), or minted."
	if cs, ok := a.Backend.(*cassandra.Store); ok {
		const degradedHelp = "Cassandra reuse-path reads sent to one replica because a quorum was short: after a failed quorum attempt (fallback) or at once while it was known to be short (direct)."
		const gateHelp = "Cassandra operations needing a quorum while the driver saw too few nodes up for one: let through as probes, or refused at once with 503 (the quorum gate)."
		if err := a.Metrics.Register(
			counter("tokengw_cassandra_degraded_reads_total", degradedHelp, prometheus.Labels{"how": "fallback"}, func() uint64 { return cs.Stats().DegradedFallbacks }),
			counter("tokengw_cassandra_degraded_reads_total", degradedHelp, prometheus.Labels{"how": "direct"}, func() uint64 { return cs.Stats().DegradedDirect }),
			counter("tokengw_cassandra_quorum_gate_total", gateHelp, prometheus.Labels{"result": "probe"}, func() uint64 { return cs.Stats().QuorumProbes }),
			counter("tokengw_cassandra_quorum_gate_total", gateHelp, prometheus.Labels{"result": "refused"}, func() uint64 { return cs.Stats().QuorumRefused }),
			counter("tokengw_cassandra_write_resends_total", "Resends of Cassandra writes whose outcome was unknown (a timeout), one per resend.", nil, func() uint64 { return cs.Stats().Resends }),
		); err != nil {
			return err
		}
	}
	return a.Metrics.Register(
		counter("tokengw_tokens_issued_total", reuseHelp, prometheus.Labels{"source": "l1"}, func() uint64 { return a.Reuser.Stats().L1Hits }),
		counter("tokengw_tokens_issued_total", reuseHelp, prometheus.Labels{"source": "l2"}, func() uint64 { return a.Reuser.Stats().L2Hits }),
		counter("tokengw_tokens_issued_total", reuseHelp, prometheus.Labels{"source": "minted"}, func() uint64 { return a.Reuser.Stats().Mints }),
		counter("tokengw_reuse_store_errors_total", "Store failures seen by the reuse layer (re-checks and mints).", nil, func() uint64 { return a.Reuser.Stats().StoreErrors }),
		counter("tokengw_reuse_unsealable_total", "Reuse rows this replica could not open (a seal key missing here, or a corrupt row).", nil, func() uint64 { return a.Reuser.Stats().Unsealable }),
		counter("tokengw_reuse_unclaimed_mints_total", "Tokens minted without a reuse slot because the slot held a token this replica may not reuse (unsealable row, clock skew).", nil, func() uint64 { return a.Reuser.Stats().UnclaimedMints }),
		gauge("tokengw_reuse_cache_entries", "Entries in the in-process (L1) token cache.", a.Reuser.CacheEntries),
		gauge("tokengw_reuse_cache_bytes", "Bytes allocated by the in-process (L1) token cache.", a.Reuser.CacheBytes),
		counter("tokengw_rate_limited_total", "Requests rejected with 429 by reason.", prometheus.Labels{"reason": "consumer"}, a.Consumer.RejectedConsumer),
		counter("tokengw_rate_limited_total", "Requests rejected with 429 by reason.", prometheus.Labels{"reason": "failed_auth"}, a.FailedIP.RejectedFailedAuth),
		counter("tokengw_client_auth_failures_total", "Failed client authentications (unknown client, wrong secret).", nil, a.Auth.Failures),
		counter("tokengw_client_auth_verifications_total", "Secret hash verifications run (cache misses).", nil, a.Auth.Verifications),
		counter("tokengw_client_auth_cache_hits_total", "Client authentications answered by the verified-credential cache.", nil, a.Auth.CacheHits),
		counter("tokengw_client_auth_shed_total", "Client authentications shed (503) because hash verification was saturated.", nil, a.Auth.Shed),
		gauge("tokengw_client_auth_cache_entries", "Entries in the verified-credential cache.", a.Auth.CacheLen),
		counter("tokengw_introspection_lookups_total", "Introspection lookups by source.", prometheus.Labels{"source": "cache"}, a.Introspect.Hits),
		counter("tokengw_introspection_lookups_total", "Introspection lookups by source.", prometheus.Labels{"source": "store"}, a.Introspect.Misses),
		gauge("tokengw_introspection_cache_entries", "Entries in the introspection cache.", a.Introspect.Len),
		gauge("tokengw_rate_limit_keys", "Token buckets held by the per-client limiter.", a.Consumer.Len),
		counter("tokengw_rate_limit_forced_evictions_total", evictHelp, prometheus.Labels{"limiter": "consumer"}, a.Consumer.ForcedEvictions),
		counter("tokengw_rate_limit_forced_evictions_total", evictHelp, prometheus.Labels{"limiter": "failed_auth"}, a.FailedIP.ForcedEvictions),
	)
}
