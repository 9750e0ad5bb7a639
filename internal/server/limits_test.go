package server_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/config"
)

func TestPerConsumerLimit(t *testing.T) {
	cfg := testConfig(t, "TOKENGW_LIMITS__PER_CLIENT__RATE=1", "TOKENGW_LIMITS__PER_CLIENT__BURST=5")
	g := start(t, cfg, nil)
	var codes []int
	var retryAfter string
	for range 9 {
		resp, tj := post(t, g.url(), basic("demo", demoSecret), "grant_type=client_credentials")
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == 429 {
			if tj.Error != "rate_limited" || resp.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("429 body/headers: %+v %v", tj, resp.Header)
			}
			retryAfter = resp.Header.Get("Retry-After")
		} else if resp.Header.Get("RateLimit-Policy") == "" || resp.Header.Get("RateLimit") == "" {
			t.Fatalf("200 without RateLimit headers: %v", resp.Header)
		}
	}
	want := []int{200, 200, 200, 200, 200, 429, 429, 429, 429}
	for i := range want {
		if codes[i] != want[i] {
			t.Fatalf("statuses = %v, want %v", codes, want)
		}
	}
	if retryAfter != "1" {
		t.Fatalf("Retry-After = %q, want 1 (rate 1/s, clock frozen)", retryAfter)
	}
	// Another consumer is served meanwhile.
	if resp, _ := post(t, g.url(), basic(oddID, oddSecret), "grant_type=client_credentials"); resp.StatusCode != 200 {
		t.Fatalf("other consumer: %d", resp.StatusCode)
	}
	// Allowed again exactly when Retry-After said, not a nanosecond before.
	secs, _ := strconv.Atoi(retryAfter)
	g.clk.Advance(time.Duration(secs)*time.Second - time.Nanosecond)
	if resp, _ := post(t, g.url(), basic("demo", demoSecret), "grant_type=client_credentials"); resp.StatusCode != 429 {
		t.Fatalf("1ns before Retry-After: %d, want 429", resp.StatusCode)
	}
	g.clk.Advance(time.Nanosecond)
	if resp, _ := post(t, g.url(), basic("demo", demoSecret), "grant_type=client_credentials"); resp.StatusCode != 200 {
		t.Fatalf("at Retry-After: %d, want 200", resp.StatusCode)
	}
}

func TestPerClientLimitOverride(t *testing.T) {
	cfg := testConfig(t)
	cfg.Clients[0].Limit = &config.Rate{Rate: 0.5, Burst: 2}
	g := start(t, cfg, nil)
	codes := []int{}
	for range 3 {
		resp, _ := post(t, g.url(), basic("demo", demoSecret), "grant_type=client_credentials")
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == 429 && resp.Header.Get("Retry-After") != "2" {
			t.Fatalf("Retry-After = %q, want 2 at 0.5/s", resp.Header.Get("Retry-After"))
		}
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 429 {
		t.Fatalf("statuses = %v", codes)
	}
}

func TestFailedAuthPerIP(t *testing.T) {
	cfg := testConfig(t, "TOKENGW_LIMITS__PER_IP_FAILED_AUTH__RATE=0.05", "TOKENGW_LIMITS__PER_IP_FAILED_AUTH__BURST=3")
	g := start(t, cfg, nil)
	var codes []int
	var last *http.Response
	for range 6 {
		resp, _ := post(t, g.url(), basic("demo", "wrong"), "grant_type=client_credentials")
		codes = append(codes, resp.StatusCode)
		last = resp
	}
	if codes[0] != 401 || codes[1] != 401 || codes[2] != 401 || codes[5] != 429 {
		t.Fatalf("statuses = %v, want three 401 then 429", codes)
	}
	if ra := last.Header.Get("Retry-After"); ra != "20" {
		t.Fatalf("Retry-After = %q, want 20 (one failure per 20 s)", ra)
	}
	// Answered before its body was read (oauth.LeaveBody): a body sent
	// with the headers is still consumed and the connection kept.
	if last.Close {
		t.Fatal("the blocked caller's 429 closed a connection whose body had arrived")
	}
	// Even the right secret waits until the bucket refills.
	if resp, _ := post(t, g.url(), basic("demo", demoSecret), "grant_type=client_credentials"); resp.StatusCode != 429 {
		t.Fatalf("right secret while blocked: %d", resp.StatusCode)
	}
	g.clk.Advance(20 * time.Second)
	if resp, _ := post(t, g.url(), basic("demo", demoSecret), "grant_type=client_credentials"); resp.StatusCode != 200 {
		t.Fatalf("after the refill: %d", resp.StatusCode)
	}
}
