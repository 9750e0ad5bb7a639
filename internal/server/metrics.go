package server

import (
	"errors"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tokengw/tokengw/internal/assertion"
	"github.com/tokengw/tokengw/internal/clients"
	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/instrument"
)

// Metrics are the Prometheus metrics of one gateway, on a registry of its
// own (no global state), served at /metrics on the admin listener. Names are
// prefixed tokengw_ and carry their unit.
type Metrics struct {
	// series caches the resolved children of requests and durations per
	// label combination, so the hot path skips the label hashing.
	series sync.Map // tokenSeries -> *tokenChildren
	// table holds the same children for the usual label values, found by
	// index (grantLabels, outcomeLabels, statusLabels).
	table [len(grantLabels)][len(outcomeLabels)][len(statusLabels)]atomic.Pointer[tokenChildren]

	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	durations *prometheus.HistogramVec
	storeOps  *prometheus.HistogramVec
	// inFlight counts the requests being served, read by a GaugeFunc at
	// scrape time: an atomic add per request instead of a float gauge's
	// compare-and-swap loop.
	inFlight atomic.Int64
}

// NewMetrics builds the registry with the request and store metrics and the
// Go runtime and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokengw_token_requests_total",
			Help: "Token endpoint requests by grant type, outcome (minted, reused_l1, reused_l2, limited, shed, error, panic; upstream mode: hit, miss, coalesced, replay, forwarded, upstream_error) and HTTP status.",
		}, []string{"grant", "outcome", "status"}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tokengw_token_request_duration_seconds",
			Help:    "Token endpoint request duration by outcome.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"outcome"}),
		storeOps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tokengw_store_operation_duration_seconds",
			Help:    "Store operation latency by operation, driver and result (ok, not_found, error).",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"op", "driver", "result"}),
	}
	inFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tokengw_http_requests_in_flight",
		Help: "Requests being served on the public listener.",
	}, func() float64 { return float64(m.inFlight.Load()) })
	m.reg.MustRegister(m.requests, m.durations, m.storeOps, inFlight,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "tokengw"}))
	return m
}

// Register adds collectors (counters read from other components).
func (m *Metrics) Register(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// StoreObserver records store operation latencies for driver.
func (m *Metrics) StoreObserver(driver string) instrument.Observer {
	return func(op string, d time.Duration, err error) {
		result := "ok"
		switch {
		case err == nil:
		case errors.Is(err, store.ErrNotFound):
			result = "not_found"
		default:
			result = "error"
		}
		m.storeOps.WithLabelValues(op, driver, result).Observe(d.Seconds())
	}
}

// grantRefreshToken is the refresh grant (RFC 6749 §6), served in upstream
// mode only.
const grantRefreshToken = "refresh_token"

// observeToken records one token endpoint request.
func (m *Metrics) observeToken(grant, outcome string, status int, d time.Duration) {
	g := grantIndex(grant)
	if g == len(grantLabels)-1 {
		grant = "other" // arbitrary input must not become a label value
	}
	if outcome == "" {
		outcome = "error"
	}
	tc := m.children(g, grant, outcome, status)
	tc.requests.Inc()
	tc.duration.Observe(d.Seconds())
}

// children returns the counter and histogram of one label combination:
// from a fixed table for the grants, outcomes and statuses a gateway
// answers with (an index, no hashing), else from the series map.
func (m *Metrics) children(g int, grant, outcome string, status int) *tokenChildren {
	o, s := outcomeIndex(outcome), statusIndex(status)
	var slot *atomic.Pointer[tokenChildren]
	if o >= 0 && s >= 0 {
		slot = &m.table[g][o][s]
		if tc := slot.Load(); tc != nil {
			return tc
		}
	}
	key := tokenSeries{grant, outcome, status}
	c, ok := m.series.Load(key)
	if !ok {
		c, _ = m.series.LoadOrStore(key, &tokenChildren{
			requests: m.requests.WithLabelValues(grant, outcome, strconv.Itoa(status)),
			duration: m.durations.WithLabelValues(outcome),
		})
	}
	tc := c.(*tokenChildren)
	if slot != nil {
		slot.Store(tc)
	}
	return tc
}

// The label values of the fixed table; the last grant is "other".
var (
	grantLabels   = [...]string{clients.GrantClientCredentials, assertion.GrantType, grantRefreshToken, "", "other"}
	outcomeLabels = [...]string{"reused_l1", "reused_l2", "minted", "error", "limited", "shed", "panic",
		"hit", "miss", "coalesced", "replay", "forwarded", "upstream_error"}
	statusLabels = [...]int{200, 400, 401, 403, 404, 405, 408, 413, 415, 429, 500, 502, 503, 504}
)

func grantIndex(grant string) int {
	for i, g := range grantLabels[:len(grantLabels)-1] {
		if g == grant {
			return i
		}
	}
	return len(grantLabels) - 1
}

func outcomeIndex(outcome string) int {
	for i, o := range outcomeLabels {
		if o == outcome {
			return i
		}
	}
	return -1
}

func statusIndex(status int) int {
	for i, s := range statusLabels {
		if s == status {
			return i
		}
	}
	return -1
}

// tokenSeries is one label combination of the token request metrics; the
// values are bounded (grant and outcome are from fixed sets, status codes
// are few), so the cache is too.
type tokenSeries struct {
	grant, outcome string
	status         int
}

type tokenChildren struct {
	requests prometheus.Counter
	duration prometheus.Observer
}
