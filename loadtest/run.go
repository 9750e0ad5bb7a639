package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Scenarios. The k6 scripts in loadtest/k6 implement the same four.
const (
	// scenarioAbusive asks for a new token on every call: the client that
	// makes token endpoints fall over.
	scenarioAbusive = "abusive"
	// scenarioWellBehaved caches each consumer's token until most of its
	// expires_in has passed and spends its calls on the protected API.
	scenarioWellBehaved = "well-behaved"
	// scenarioMany is the abusive client spread over many consumers.
	scenarioMany = "many-consumers"
	// scenarioRateLimit hammers one consumer while others call at a low
	// rate: the first must get 429 with Retry-After, the others never.
	scenarioRateLimit = "rate-limit"
)

// scenarioNames lists the scenarios.
func scenarioNames() []string {
	return []string{scenarioAbusive, scenarioWellBehaved, scenarioMany, scenarioRateLimit}
}

// runConfig is one attack.
type runConfig struct {
	Name        string
	Scenario    string
	Target      string // the server's base URL
	TokenPath   string // token endpoint path below Target
	APIURL      string // well-behaved: the protected call (default Target + /healthz)
	Scope       string // scope parameter of token requests; "" = none
	Creds       []Credential
	Concurrency int
	Rate        int // requests per second; 0 = as fast as Concurrency workers go
	Duration    time.Duration
	MaxRequests int64 // 0 = unbounded (the duration still bounds the attack)
	Timeout     time.Duration
	Warmup      bool          // one token request per consumer before the attack
	Progress    time.Duration // progress line interval on Log; 0 = none
	Log         io.Writer     // progress and notes; nil = discard

	// Rate-limit probe: the bystanders' total rate, requests per second.
	BystanderRate int
	// Well-behaved: refresh a token once this fraction of its expires_in
	// has passed.
	RefreshAt float64

	Server         sampler // nil = not sampled
	Store          sampler // the store's process (Cassandra); nil = not sampled
	SampleInterval time.Duration
	Command        string // how this attack was started, for the record
}

func (c *runConfig) tokenURL() string {
	return strings.TrimRight(c.Target, "/") + c.TokenPath
}

func (c *runConfig) validate() error {
	switch {
	case !containsString(scenarioNames(), c.Scenario):
		return fmt.Errorf("unknown scenario %q (want one of %s)", c.Scenario, strings.Join(scenarioNames(), ", "))
	case c.Target == "":
		return errors.New("no target")
	case len(c.Creds) == 0:
		return errors.New("no credentials")
	case c.Concurrency < 1:
		return errors.New("concurrency must be at least 1")
	case c.Rate < 0:
		return errors.New("rate must be >= 0")
	case c.Duration <= 0:
		return errors.New("duration must be positive")
	case c.Scenario == scenarioRateLimit && len(c.Creds) < 2:
		return errors.New("the rate-limit probe needs at least 2 consumers (one abuser, bystanders)")
	case c.Scenario == scenarioWellBehaved && (c.RefreshAt <= 0 || c.RefreshAt > 1):
		return errors.New("refresh-at must be in (0, 1]")
	}
	u, err := url.Parse(c.Target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("target %q is not an http(s) URL", c.Target)
	}
	return nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Summary is the outcome of one attack: what the runner prints, writes as
// JSON and charts.
type Summary struct {
	Name        string    `json:"name"`
	Scenario    string    `json:"scenario"`
	Target      string    `json:"target"`
	Command     string    `json:"command,omitempty"`
	Started     time.Time `json:"started"`
	Seconds     float64   `json:"seconds"` // wall time from the first request to the last response
	Concurrency int       `json:"concurrency"`
	Rate        int       `json:"rate"` // 0 = as fast as possible
	Consumers   int       `json:"consumers"`

	counts
	RPS     float64        `json:"rps"`    // completed requests per second
	OKRPS   float64        `json:"ok_rps"` // 2xx per second
	Latency latencySummary `json:"latency_ms"`

	DistinctTokens   int   `json:"distinct_tokens"`              // in the responses seen, warm-up included
	TokenFetches     int64 `json:"token_fetches,omitempty"`      // well-behaved: token requests made
	TokenFetchErrors int64 `json:"token_fetch_errors,omitempty"` // well-behaved: failed token requests

	Warmup    *counts          `json:"warmup,omitempty"`
	Bystander *counts          `json:"bystander,omitempty"` // rate-limit probe
	Codes     map[string]int64 `json:"status_codes"`
	ErrorText map[string]int64 `json:"errors_sample,omitempty"` // up to 10 distinct transport errors

	Server    *ProcStats `json:"server,omitempty"`
	Store     *ProcStats `json:"store,omitempty"`
	Generator *ProcStats `json:"generator,omitempty"`
	// Machine is the busy CPU time of the whole machine; what the server,
	// the store and the generator do not account for is other processes.
	Machine *ProcStats `json:"machine,omitempty"`

	Series []seriesPoint `json:"series"`

	Verdict []string `json:"verdict,omitempty"` // failed checks; empty = passed
}

type latencySummary struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

func latencyOf(h *histogram) latencySummary {
	return latencySummary{
		P50: ms(h.quantile(0.50)), P90: ms(h.quantile(0.90)), P99: ms(h.quantile(0.99)),
		Max: ms(h.max), Mean: ms(h.mean()),
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// seriesPoint is one second of the attack.
type seriesPoint struct {
	T int `json:"t"` // the second, since the attack began, in which requests completed
	counts
	P50     float64 `json:"p50_ms"`
	P90     float64 `json:"p90_ms"`
	P99     float64 `json:"p99_ms"`
	Max     float64 `json:"max_ms"`
	Partial bool    `json:"partial,omitempty"` // the last, incomplete second
}

// collector folds an attack's results. It is used by one goroutine.
type collector struct {
	begin    time.Time
	tokenURL string
	seed     maphash.Seed

	total  counts
	hist   histogram
	series series
	tokens map[uint64]struct{}
	codes  map[int]int64
	errs   map[string]int64
	last   time.Time // latest completion

	// progress window
	win     histogram
	winReqs int64
}

func newCollector(begin time.Time, tokenURL string) *collector {
	return &collector{
		begin: begin, tokenURL: tokenURL, seed: maphash.MakeSeed(),
		tokens: map[uint64]struct{}{}, codes: map[int]int64{}, errs: map[string]int64{},
	}
}

// add records one result. Results of the request bound (the targeter
// refusing) are not requests and are dropped.
func (c *collector) add(r *vegeta.Result) {
	if r.Code == 0 && r.Error == vegeta.ErrNoTargets.Error() {
		return
	}
	end := r.Timestamp.Add(r.Latency)
	if end.After(c.last) {
		c.last = end
	}
	b := c.series.at(int(end.Sub(c.begin) / time.Second))
	for _, k := range [...]*counts{&c.total, &b.counts} {
		k.Requests++
		switch {
		case r.Code == 0:
			k.Errors++
		case r.Code >= 200 && r.Code < 300:
			k.OK++
		case r.Code == http.StatusTooManyRequests:
			k.Limited++
			if r.Headers.Get("Retry-After") != "" {
				k.RetryAfter++
			}
		default:
			k.Other++
		}
	}
	c.hist.add(r.Latency)
	b.hist.add(r.Latency)
	c.win.add(r.Latency)
	c.winReqs++
	c.codes[int(r.Code)]++
	if r.Code == 0 && len(c.errs) < 10 {
		c.errs[r.Error]++
	} else if r.Code == 0 {
		if _, ok := c.errs[r.Error]; ok {
			c.errs[r.Error]++
		}
	}
	if r.Code == http.StatusOK && r.URL == c.tokenURL {
		if tok := accessToken(r.Body); tok != nil {
			c.tokens[maphash.Bytes(c.seed, tok)] = struct{}{}
		}
	}
}

// accessToken finds the access_token of a token response without decoding
// the whole document (tokengw and the reference server write it first);
// anything else goes through encoding/json.
func accessToken(body []byte) []byte {
	const key = `"access_token":"`
	if i := bytes.Index(body, []byte(key)); i >= 0 {
		rest := body[i+len(key):]
		if j := bytes.IndexByte(rest, '"'); j > 0 && bytes.IndexByte(rest[:j], '\\') < 0 {
			return rest[:j]
		}
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if json.Unmarshal(body, &tr) != nil || tr.AccessToken == "" {
		return nil
	}
	return []byte(tr.AccessToken)
}

// progress writes one line about the window since the previous line and
// resets the window.
func (c *collector) progress(w io.Writer, elapsed, total time.Duration, window time.Duration) {
	rps := float64(c.winReqs) / window.Seconds()
	fmt.Fprintf(w, "[%4.0fs/%.0fs] %10d requests  %9.1f req/s  2xx %d  429 %d  other %d  errors %d  window p99 %s\n",
		elapsed.Seconds(), total.Seconds(), c.total.Requests, rps,
		c.total.OK, c.total.Limited, c.total.Other, c.total.Errors, fmtMS(ms(c.win.quantile(0.99))))
	c.win = histogram{counts: c.win.counts}
	clear(c.win.counts)
	c.winReqs = 0
}

func (c *collector) seriesPoints() []seriesPoint {
	out := make([]seriesPoint, len(c.series.buckets))
	lastFull := int(c.last.Sub(c.begin)/time.Second) - 1
	for i, b := range c.series.buckets {
		out[i] = seriesPoint{
			T: i, counts: b.counts,
			P50: ms(b.hist.quantile(0.50)), P90: ms(b.hist.quantile(0.90)),
			P99: ms(b.hist.quantile(0.99)), Max: ms(b.hist.max),
			Partial: i > lastFull,
		}
	}
	return out
}

// tokenTargeter sends client_credentials token requests, round-robin over
// creds, and refuses (vegeta.ErrNoTargets) after maxRequests when that is
// positive. Each consumer's headers are built once and shared read-only:
// vegeta copies them into every request.
func tokenTargeter(tokenURL string, creds []Credential, scope string, maxRequests int64) vegeta.Targeter {
	form := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		form.Set("scope", scope)
	}
	body := []byte(form.Encode())
	headers := make([]http.Header, len(creds))
	for i, c := range creds {
		headers[i] = http.Header{
			"Authorization": {c.basicAuth()},
			"Content-Type":  {"application/x-www-form-urlencoded"},
			"Accept":        {"application/json"},
		}
	}
	var n atomic.Int64
	return func(t *vegeta.Target) error {
		i := n.Add(1)
		if maxRequests > 0 && i > maxRequests {
			return vegeta.ErrNoTargets
		}
		t.Method = http.MethodPost
		t.URL = tokenURL
		t.Body = body
		t.Header = headers[(i-1)%int64(len(headers))]
		return nil
	}
}

// cachedToken is one consumer's token in the well-behaved client.
type cachedToken struct {
	mu        sync.Mutex
	header    http.Header // Authorization: Bearer <token>; nil before the first fetch
	refreshAt time.Time
}

// wellBehaved is a client that caches each consumer's token and spends its
// calls on the protected API: a worker whose consumer's token is due (or
// missing) fetches a new one first, and the others calling for that
// consumer wait for it, as threads sharing a token cache would. The time a
// refresh takes is part of the latency of the call that needed it.
type wellBehaved struct {
	client    *http.Client
	tokenURL  string
	apiURL    string
	form      string
	creds     []Credential
	refreshAt float64
	max       int64

	caches    []*cachedToken
	n         atomic.Int64
	fetches   atomic.Int64
	fetchErrs atomic.Int64

	mu     sync.Mutex
	seed   maphash.Seed
	tokens map[uint64]struct{}
}

func newWellBehaved(cfg *runConfig, client *http.Client) *wellBehaved {
	form := url.Values{"grant_type": {"client_credentials"}}
	if cfg.Scope != "" {
		form.Set("scope", cfg.Scope)
	}
	wb := &wellBehaved{
		client: client, tokenURL: cfg.tokenURL(), apiURL: cfg.APIURL, form: form.Encode(),
		creds: cfg.Creds, refreshAt: cfg.RefreshAt, max: cfg.MaxRequests,
		caches: make([]*cachedToken, len(cfg.Creds)), seed: maphash.MakeSeed(), tokens: map[uint64]struct{}{},
	}
	for i := range wb.caches {
		wb.caches[i] = &cachedToken{}
	}
	return wb
}

func (wb *wellBehaved) targeter() vegeta.Targeter {
	return func(t *vegeta.Target) error {
		i := wb.n.Add(1)
		if wb.max > 0 && i > wb.max {
			return vegeta.ErrNoTargets
		}
		k := int((i - 1) % int64(len(wb.creds)))
		c := wb.caches[k]
		c.mu.Lock()
		if c.header == nil || !time.Now().Before(c.refreshAt) {
			wb.refresh(k, c)
		}
		h := c.header
		c.mu.Unlock()
		t.Method = http.MethodGet
		t.URL = wb.apiURL
		t.Body = nil
		t.Header = h // nil when every fetch so far failed: the call goes out without a token
		return nil
	}
}

// refresh fetches consumer k's token into c; c.mu is held.
func (wb *wellBehaved) refresh(k int, c *cachedToken) {
	wb.fetches.Add(1)
	tok, expiresIn, err := fetchToken(context.Background(), wb.client, wb.tokenURL, wb.creds[k], wb.form)
	if err != nil {
		wb.fetchErrs.Add(1)
		return
	}
	wb.mu.Lock()
	wb.tokens[maphash.String(wb.seed, tok)] = struct{}{}
	wb.mu.Unlock()
	c.header = http.Header{"Authorization": {"Bearer " + tok}}
	c.refreshAt = time.Now().Add(time.Duration(float64(expiresIn) * wb.refreshAt * float64(time.Second)))
}

// fetchToken makes one client_credentials request and returns the token
// and its expires_in in seconds.
func fetchToken(ctx context.Context, client *http.Client, tokenURL string, c Credential, form string) (string, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Authorization", c.basicAuth())
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("token request for %q: %s: %s", c.ID, resp.Status, bytes.TrimSpace(body))
	}
	var tr struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		return "", 0, fmt.Errorf("token response for %q: %w", c.ID, err)
	}
	if tr.AccessToken == "" {
		return "", 0, fmt.Errorf("token response for %q: no access_token", c.ID)
	}
	return tr.AccessToken, tr.ExpiresIn, nil
}

// newAttacker is a vegeta attacker with exactly workers workers (MaxWorkers
// = Workers: with Rate 0 they go as fast as they can, with a rate they are
// the bound on requests in flight) and one keep-alive connection each.
func newAttacker(workers int, timeout time.Duration) *vegeta.Attacker {
	return vegeta.NewAttacker(
		vegeta.Workers(uint64(workers)),
		vegeta.MaxWorkers(uint64(workers)),
		vegeta.Connections(workers),
		vegeta.KeepAlive(true),
		vegeta.Timeout(timeout),
		vegeta.MaxBody(64<<10),
		vegeta.Redirects(vegeta.NoFollow),
	)
}

// attack runs one attacker to completion (duration, request bound or ctx),
// folding its results into col. tick, if set, is called every progress
// interval with the collector (on the collecting goroutine).
func attack(ctx context.Context, atk *vegeta.Attacker, tr vegeta.Targeter, rate int, du time.Duration, name string,
	col *collector, progress time.Duration, tick func(*collector)) {
	pacer := vegeta.Rate{Freq: rate, Per: time.Second} // Freq 0: as fast as possible
	results := atk.Attack(tr, pacer, du, name)
	var tc <-chan time.Time
	if progress > 0 && tick != nil {
		t := time.NewTicker(progress)
		defer t.Stop()
		tc = t.C
	}
	done := ctx.Done()
	for {
		select {
		case r, ok := <-results:
			if !ok {
				return
			}
			col.add(r)
		case <-tc:
			tick(col)
		case <-done:
			atk.Stop()
			done = nil // keep draining until the attacker closes results
		}
	}
}

// warmup sends one token request per consumer, so that the attack measures
// the steady state (the verified-credential cache is warm, every consumer
// holds a token) and bad credentials fail fast.
func warmup(ctx context.Context, client *http.Client, tokenURL string, creds []Credential, scope string) (counts, []string, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		form.Set("scope", scope)
	}
	var k counts
	var tokens []string
	for _, c := range creds {
		k.Requests++
		tok, _, err := fetchToken(ctx, client, tokenURL, c, form.Encode())
		if err != nil {
			k.Other++
			return k, nil, fmt.Errorf("warm-up: %w", err)
		}
		k.OK++
		tokens = append(tokens, tok)
	}
	return k, tokens, nil
}

// Run runs the attack cfg describes and summarises it.
func Run(ctx context.Context, cfg runConfig) (*Summary, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	logw := cfg.Log
	if logw == nil {
		logw = io.Discard
	}
	if cfg.SampleInterval <= 0 {
		cfg.SampleInterval = time.Second
	}
	if cfg.APIURL == "" {
		cfg.APIURL = strings.TrimRight(cfg.Target, "/") + "/healthz"
	}
	side := &http.Client{Timeout: cfg.Timeout}
	defer side.CloseIdleConnections()

	sum := &Summary{
		Name: cfg.Name, Scenario: cfg.Scenario, Target: cfg.Target, Command: cfg.Command,
		Concurrency: cfg.Concurrency, Rate: cfg.Rate, Consumers: len(cfg.Creds),
	}
	var warmTokens []string
	if cfg.Warmup {
		k, toks, err := warmup(ctx, side, cfg.tokenURL(), cfg.Creds, cfg.Scope)
		sum.Warmup = &k
		if err != nil {
			return nil, err
		}
		warmTokens = toks
	}

	main := cfg.Creds
	var wb *wellBehaved
	var tr vegeta.Targeter
	switch cfg.Scenario {
	case scenarioWellBehaved:
		wb = newWellBehaved(&cfg, side)
		tr = wb.targeter()
		for _, t := range warmTokens {
			wb.tokens[maphash.String(wb.seed, t)] = struct{}{}
		}
	case scenarioRateLimit:
		main = cfg.Creds[:1]
		tr = tokenTargeter(cfg.tokenURL(), main, cfg.Scope, cfg.MaxRequests)
	default:
		tr = tokenTargeter(cfg.tokenURL(), main, cfg.Scope, cfg.MaxRequests)
	}

	watchers := map[string]*watcher{
		"generator": watch(ctx, procSampler{root: "/proc", pid: os.Getpid()}, cfg.SampleInterval),
		"machine":   watch(ctx, machineSampler{root: "/proc"}, cfg.SampleInterval),
	}
	if cfg.Server != nil {
		watchers["server"] = watch(ctx, cfg.Server, cfg.SampleInterval)
	}
	if cfg.Store != nil {
		watchers["store"] = watch(ctx, cfg.Store, cfg.SampleInterval)
	}

	begin := time.Now()
	sum.Started = begin
	col := newCollector(begin, cfg.tokenURL())
	for _, t := range warmTokens {
		col.tokens[maphash.String(col.seed, t)] = struct{}{}
	}
	var wg sync.WaitGroup
	var by *collector
	if cfg.Scenario == scenarioRateLimit {
		by = newCollector(begin, cfg.tokenURL())
		byTr := tokenTargeter(cfg.tokenURL(), cfg.Creds[1:], cfg.Scope, cfg.MaxRequests)
		byRate := max(cfg.BystanderRate, 1)
		wg.Go(func() {
			attack(ctx, newAttacker(min(4, byRate), cfg.Timeout), byTr, byRate, cfg.Duration, "bystander", by, 0, nil)
		})
	}
	fmt.Fprintf(logw, "attack %s: scenario %s, %d workers, rate %s, %d consumers, %s, target %s\n",
		cfg.Name, cfg.Scenario, cfg.Concurrency, rateString(cfg.Rate), len(cfg.Creds), cfg.Duration, cfg.Target)
	attack(ctx, newAttacker(cfg.Concurrency, cfg.Timeout), tr, cfg.Rate, cfg.Duration, cfg.Name, col, cfg.Progress,
		func(c *collector) { c.progress(logw, time.Since(begin), cfg.Duration, cfg.Progress) })
	wg.Wait()

	end := col.last
	if by != nil && by.last.After(end) {
		end = by.last
	}
	if end.IsZero() {
		end = time.Now()
	}
	sum.Seconds = end.Sub(begin).Seconds()
	sum.counts = col.total
	sum.Latency = latencyOf(&col.hist)
	sum.DistinctTokens = len(col.tokens)
	if sum.Seconds > 0 {
		sum.RPS = float64(sum.Requests) / sum.Seconds
		sum.OKRPS = float64(sum.OK) / sum.Seconds
	}
	sum.Codes = map[string]int64{}
	for code, n := range col.codes {
		name := strconv.Itoa(code)
		if code == 0 {
			name = "error"
		}
		sum.Codes[name] = n
	}
	if len(col.errs) > 0 {
		sum.ErrorText = col.errs
	}
	sum.Series = col.seriesPoints()
	if wb != nil {
		sum.TokenFetches, sum.TokenFetchErrors = wb.fetches.Load(), wb.fetchErrs.Load()
		wb.mu.Lock()
		sum.DistinctTokens = len(wb.tokens)
		wb.mu.Unlock()
	}
	total := sum.Requests
	if by != nil {
		k := by.total
		sum.Bystander = &k
		total += k.Requests
	}
	sum.Generator = watchers["generator"].stop(total)
	sum.Machine = watchers["machine"].stop(total)
	if w := watchers["server"]; w != nil {
		sum.Server = w.stop(total)
	}
	if w := watchers["store"]; w != nil {
		sum.Store = w.stop(total)
	}
	sum.Verdict = verdict(sum)
	return sum, ctx.Err()
}

// verdict lists the checks the attack failed: transport errors or
// unexpected statuses above 1% of requests; for the rate-limit probe, an
// abuser that was never limited, 429s without Retry-After, or a limited
// bystander.
func verdict(s *Summary) []string {
	var out []string
	if s.Requests == 0 {
		return []string{"no requests completed"}
	}
	if bad := s.Errors + s.Other; float64(bad) > 0.01*float64(s.Requests) {
		out = append(out, fmt.Sprintf("%d of %d requests failed (errors or unexpected status)", bad, s.Requests))
	}
	if s.Scenario != scenarioRateLimit && s.Limited > 0 {
		out = append(out, fmt.Sprintf("%d requests were rate limited (429)", s.Limited))
	}
	if s.Scenario == scenarioRateLimit {
		if s.Limited == 0 {
			out = append(out, "the abusive consumer was never limited: is a per-client limit configured?")
		}
		if s.RetryAfter < s.Limited {
			out = append(out, fmt.Sprintf("%d of %d 429 responses had no Retry-After", s.Limited-s.RetryAfter, s.Limited))
		}
		if s.Bystander != nil && s.Bystander.Limited > 0 {
			out = append(out, fmt.Sprintf("%d bystander requests were limited: one consumer's abuse affected others", s.Bystander.Limited))
		}
	}
	if s.Scenario == scenarioWellBehaved && s.TokenFetchErrors > 0 {
		out = append(out, fmt.Sprintf("%d token fetches failed", s.TokenFetchErrors))
	}
	sort.Strings(out)
	return out
}

func rateString(r int) string {
	if r == 0 {
		return "max"
	}
	return fmt.Sprintf("%d/s", r)
}
