package upstream

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are upstream mode's Prometheus metrics; Gateway.Collectors hands
// them to the registry of /metrics.
type metrics struct {
	calls       *prometheus.CounterVec   // grant, result
	latency     *prometheus.HistogramVec // grant
	hits        *prometheus.CounterVec   // tier
	hitL1       prometheus.Counter       // hits{tier="l1"}, resolved once for the hot path
	hitStore    prometheus.Counter       // hits{tier="store"}
	hitNegative prometheus.Counter       // hits{tier="negative"}
	coalesced   *prometheus.CounterVec   // grant, where
	replays     prometheus.Counter
	refused     *prometheus.CounterVec // reason
}

func newMetrics() *metrics {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokengw_upstream_calls_total",
			Help: "Calls to the identity provider by grant type and result (ok, client_error, unavailable).",
		}, []string{"grant", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tokengw_upstream_call_duration_seconds",
			Help:    "Latency of calls to the identity provider by grant type.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"grant"}),
		hits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokengw_upstream_cache_hits_total",
			Help: "Requests answered from the upstream cache, by tier: client_credentials from this process (l1) or the store (store); refresh_token with a remembered invalid_grant (negative).",
		}, []string{"tier"}),
		coalesced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokengw_upstream_coalesced_total",
			Help: "Requests that shared another request's upstream call: in this process (local) or on another replica (remote), by grant type.",
		}, []string{"grant", "where"}),
		replays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tokengw_upstream_refresh_replays_total",
			Help: "refresh_token successes replayed from the store to a later caller.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokengw_upstream_replays_refused_total",
			Help: "Stored refresh results not replayed, by reason (request_mismatch, max_replays): the request went to the provider.",
		}, []string{"reason"}),
	}
	m.hitL1, m.hitStore, m.hitNegative = m.hits.WithLabelValues("l1"), m.hits.WithLabelValues("store"), m.hits.WithLabelValues("negative")
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.calls, m.latency, m.hits, m.coalesced, m.replays, m.refused}
}

func (m *metrics) call(grant, result string, d time.Duration) {
	m.calls.WithLabelValues(grant, result).Inc()
	m.latency.WithLabelValues(grant).Observe(d.Seconds())
}
