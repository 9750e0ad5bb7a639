package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/app"
	"github.com/tokengw/tokengw/internal/clientauth"
	"github.com/tokengw/tokengw/internal/config"
)

// cheapHash keeps the tests' argon2id hashing fast.
func cheapHash() clientauth.Argon2Params {
	return clientauth.Argon2Params{Memory: 1024, Time: 1, Threads: 1}
}

func TestReferenceHandler(t *testing.T) {
	h := referenceHandler([]Credential{{ID: "a b", Secret: "s:1"}})
	do := func(form string, c Credential) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(form))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Authorization", c.basicAuth())
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	tests := []struct {
		name string
		form string
		cred Credential
		code int
	}{
		{"ok (form-encoded id and secret)", "grant_type=client_credentials", Credential{"a b", "s:1"}, 200},
		{"wrong secret", "grant_type=client_credentials", Credential{"a b", "s:2"}, 401},
		{"unknown client", "grant_type=client_credentials", Credential{"x", "s:1"}, 401},
		{"wrong grant", "grant_type=password", Credential{"a b", "s:1"}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(tt.form, tt.cred)
			if w.Code != tt.code {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.code, w.Body)
			}
			if tt.code == 200 && (string(accessToken(w.Body.Bytes())) != referenceToken || w.Header().Get("Cache-Control") != "no-store") {
				t.Fatalf("response %q %v", w.Body, w.Header())
			}
		})
	}
}

func TestAccessToken(t *testing.T) {
	for body, want := range map[string]string{
		`{"access_token":"abc","token_type":"Bearer"}`:       "abc",
		`{ "token_type": "Bearer", "access_token": "d\/e" }`: "d/e",
		`{"error":"invalid_client"}`:                         "",
		`not json`:                                           "",
	} {
		if got := string(accessToken([]byte(body))); got != want {
			t.Errorf("accessToken(%s) = %q, want %q", body, got, want)
		}
	}
}

// TestRunAgainstReference is the runner's smoke test: a short attack on the
// reference server, with the JSON and HTML outputs.
func TestRunAgainstReference(t *testing.T) {
	creds := generateCredentials(2, "r-")
	srv := httptest.NewServer(referenceHandler(creds))
	defer srv.Close()
	sum, err := Run(t.Context(), runConfig{
		Name: "ref", Scenario: scenarioAbusive, Target: srv.URL, TokenPath: "/oauth2/token", Creds: creds,
		Concurrency: 4, Duration: time.Second, MaxRequests: 200_000, Timeout: 5 * time.Second, Warmup: true,
		Server: procSampler{root: "/proc", pid: os.Getpid()}, SampleInterval: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Requests < 50 || sum.OK != sum.Requests || sum.Errors+sum.Other+sum.Limited != 0 {
		t.Fatalf("counts = %+v", sum.counts)
	}
	if sum.DistinctTokens != 1 {
		t.Errorf("distinct tokens = %d, want 1 (the reference's fixed token)", sum.DistinctTokens)
	}
	if sum.Latency.P50 <= 0 || sum.Latency.P99 < sum.Latency.P50 || sum.Latency.Max < sum.Latency.P99 {
		t.Errorf("latency = %+v", sum.Latency)
	}
	if sum.RPS <= 0 || len(sum.Series) == 0 || len(sum.Verdict) != 0 {
		t.Errorf("rps %v, %d buckets, verdict %v", sum.RPS, len(sum.Series), sum.Verdict)
	}
	var perSecond int64
	for _, p := range sum.Series {
		perSecond += p.Requests
	}
	if perSecond != sum.Requests {
		t.Errorf("series holds %d requests, total %d", perSecond, sum.Requests)
	}
	if sum.Server == nil || sum.Server.CPUSeconds <= 0 || sum.Server.PeakRSSBytes == 0 {
		t.Errorf("server stats = %+v", sum.Server)
	}

	dir := t.TempDir()
	if err := writeJSONFile(filepath.Join(dir, "s.json"), sum); err != nil {
		t.Fatal(err)
	}
	var back Summary
	b, _ := os.ReadFile(filepath.Join(dir, "s.json"))
	if err := json.Unmarshal(b, &back); err != nil || back.Requests != sum.Requests {
		t.Fatalf("json round trip: %v, %d", err, back.Requests)
	}
	if err := writeRunHTML(filepath.Join(dir, "s.html"), sum); err != nil {
		t.Fatal(err)
	}
	page, _ := os.ReadFile(filepath.Join(dir, "s.html"))
	for _, bad := range []string{"<script", "src=\"http", "href=\"http"} {
		if strings.Contains(string(page), bad) {
			t.Errorf("the HTML report is not self-contained: it has %q", bad)
		}
	}
	if !strings.Contains(string(page), "<svg") || !strings.Contains(string(page), "<polyline") {
		t.Error("the HTML report has no inline chart")
	}

	// Count bound: the attack stops at MaxRequests.
	sum, err = Run(t.Context(), runConfig{
		Scenario: scenarioAbusive, Target: srv.URL, TokenPath: "/oauth2/token", Creds: creds,
		Concurrency: 2, Duration: 10 * time.Second, MaxRequests: 30, Timeout: 5 * time.Second,
	})
	if err != nil || sum.Requests != 30 || sum.Seconds > 5 {
		t.Fatalf("bounded attack: %v, %d requests in %.1fs", err, sum.Requests, sum.Seconds)
	}
}

// gateway is tokengw in-process on a loopback port.
type gateway struct {
	url   string
	creds []Credential
}

func startGateway(t *testing.T, consumers int, extraYAML string) *gateway {
	t.Helper()
	creds := generateCredentials(consumers, "g-")
	clients, err := clientsYAML(creds, []string{"read", "write"}, cheapHash())
	if err != nil {
		t.Fatal(err)
	}
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	yaml := "server:\n  addr: " + addr + "\n  admin_addr: \"\"\nissuer:\n  url: http://" + addr + "\n" +
		"store:\n  driver: bolt\n  bolt:\n    path: " + yamlString(filepath.Join(dir, "tokengw.db")) + "\n" + extraYAML + clients
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, []string{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, app.Options{})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("serve: %v", err)
		}
		a.Close()
	})
	g := &gateway{url: "http://" + addr, creds: creds}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(g.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return g
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("tokengw not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunAgainstTokengw(t *testing.T) {
	g := startGateway(t, 3, "limits:\n  per_client:\n    rate: 20\n    burst: 20\n")
	base := runConfig{
		Target: g.url, TokenPath: "/oauth2/token", Creds: g.creds, Concurrency: 3, Duration: time.Second,
		MaxRequests: 100_000, Timeout: 5 * time.Second, Warmup: true, RefreshAt: 0.9, BystanderRate: 2,
	}

	t.Run("well-behaved", func(t *testing.T) {
		cfg := base
		cfg.Scenario = scenarioWellBehaved
		cfg.Creds = g.creds[:2]
		sum, err := Run(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		// One token per consumer (the warm-up minted it, the cache reuses it),
		// fetched once per consumer by the cache.
		if sum.DistinctTokens != 2 || sum.TokenFetches != 2 || sum.OK != sum.Requests || len(sum.Verdict) > 0 {
			t.Fatalf("summary: tokens %d, fetches %d, counts %+v, verdict %v", sum.DistinctTokens, sum.TokenFetches, sum.counts, sum.Verdict)
		}
	})

	t.Run("abusive over many consumers", func(t *testing.T) {
		cfg := base
		cfg.Scenario = scenarioMany
		cfg.Rate = 30 // under the per-client limits: 10/s per consumer
		sum, err := Run(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if sum.DistinctTokens != 3 || sum.Limited != 0 || sum.OK != sum.Requests || sum.Requests < 20 {
			t.Fatalf("distinct %d, counts %+v", sum.DistinctTokens, sum.counts)
		}
	})

	// Last: it empties the first consumer's bucket.
	t.Run("rate-limit", func(t *testing.T) {
		cfg := base
		cfg.Scenario = scenarioRateLimit
		sum, err := Run(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Limited == 0 || sum.RetryAfter != sum.Limited || sum.Bystander == nil || sum.Bystander.Requests == 0 || sum.Bystander.Limited != 0 {
			t.Fatalf("abuser %+v, bystanders %+v", sum.counts, sum.Bystander)
		}
		if len(sum.Verdict) != 0 {
			t.Fatalf("verdict %v", sum.Verdict)
		}
	})
}

func TestRunCommandFlags(t *testing.T) {
	creds := generateCredentials(1, "c-")
	srv := httptest.NewServer(referenceHandler(creds))
	defer srv.Close()
	dir := t.TempDir()
	cp := filepath.Join(dir, "creds.csv")
	if err := writeCredentials(cp, creds); err != nil {
		t.Fatal(err)
	}
	var out, errw strings.Builder
	code := dispatch(t.Context(), []string{"--target", srv.URL, "--credentials", cp, "--concurrency", "2",
		"--duration", "300ms", "--progress", "100ms", "--json", filepath.Join(dir, "s.json"), "--html", filepath.Join(dir, "s.html"),
		"--server-pid", "1"}, &out, &errw)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errw.String())
	}
	for _, want := range []string{"requests", "p99", "distinct tokens", "checks"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary table lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errw.String(), "req/s") {
		t.Errorf("no progress lines:\n%s", errw.String())
	}
	for _, f := range []string{"s.json", "s.html"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	if code := dispatch(t.Context(), []string{"--target", srv.URL}, &out, &errw); code != 2 {
		t.Errorf("no credentials: exit %d, want 2", code)
	}
	if code := dispatch(t.Context(), []string{"--help"}, &out, &errw); code != 0 {
		t.Errorf("--help: exit %d, want 0", code)
	}
	u, _ := url.Parse(srv.URL)
	if code := dispatch(t.Context(), []string{"--target", "http://" + u.Host, "--credentials", cp, "--scenario", "bogus"}, &out, &errw); code != 1 {
		t.Errorf("bad scenario: exit %d, want 1", code)
	}
}
