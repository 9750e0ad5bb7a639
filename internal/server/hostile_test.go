package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/app"
	"github.com/tokengw/tokengw/internal/reuse"
	"github.com/tokengw/tokengw/internal/server"
)

// clientFrom is an HTTP client whose connections leave from the loopback
// address src, so the server sees it as a caller of its own.
func clientFrom(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4}}
}

// TestSlowBodyFloodFromOneAddress: 4,000 connections from 127.0.0.1 send the
// headers of a form POST and then hold the body. With server.max_in_flight
// at 1,024 they would take every slot; the per-caller cap keeps them to 256,
// so a client on 127.0.0.2 keeps getting 200 with p99 under 100 ms, /healthz
// answers 200 throughout, and the held bodies end in 408 within the body
// deadline instead of holding their slots.
func TestSlowBodyFloodFromOneAddress(t *testing.T) {
	a, err := app.New(context.Background(), testConfig(t, "TOKENGW_SERVER__MAX_IN_FLIGHT=1024", "TOKENGW_SERVER__TIMEOUTS__BODY=2s"), app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	addr := serveReal(t, a)

	const flood = 4000
	attacker := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}}
	conns := make([]net.Conn, 0, flood)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range flood {
		c, err := attacker.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("attacker dial %d: %v", len(conns), err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 29\r\n\r\ng")
	}

	good := clientFrom("127.0.0.2")
	var lat []time.Duration
	start := time.Now()
	for time.Since(start) < 3*time.Second { // spans a whole body deadline
		t0 := time.Now()
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/oauth2/token", strings.NewReader("grant_type=client_credentials"))
		req.Header = basic("demo", demoSecret)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := good.Do(req)
		if err != nil {
			t.Fatalf("good client: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		lat = append(lat, time.Since(t0))
		if resp.StatusCode != 200 {
			t.Fatalf("good client got %d during the flood", resp.StatusCode)
		}
		h, err := good.Get("http://" + addr + "/healthz")
		if err != nil || h.StatusCode != 200 {
			t.Fatalf("/healthz during the flood: %v %v", h, err)
		}
		h.Body.Close()
	}
	slices.Sort(lat)
	p99 := lat[len(lat)*99/100]
	t.Logf("good client: %d requests, p50 %v, p99 %v", len(lat), lat[len(lat)/2], p99)
	if p99 >= 100*time.Millisecond {
		t.Fatalf("good client p99 %v, want < 100ms", p99)
	}
	// Every flood connection was answered or closed: at most 256 (the
	// per-caller cap) held a slot and got 408 when their body deadline
	// passed; the others were turned away (429, or closed by net/http
	// when it could not drain the unread body of that answer).
	buf := make([]byte, 64)
	codes := map[string]int{}
	for _, c := range conns[:300] {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil && n == 0 {
			codes["closed"]++
			continue
		}
		codes[strings.Fields(string(buf[:n]))[1]]++
	}
	if codes["408"] == 0 || codes["408"] > 256 || codes["408"]+codes["429"]+codes["closed"] != 300 {
		t.Fatalf("flood answers %v: want at most 256 held bodies answered 408, the rest 429 or closed", codes)
	}
}

// TestConcurrentWrongSecretsSpendTheBudgetOnce: 64 wrong secrets at once from
// one address, with a failed-authentication burst of 3: the budget is taken
// before each verification, so at most burst + auth.max_concurrent_verify
// verifications run, and the rest are refused with 429.
func TestConcurrentWrongSecretsSpendTheBudgetOnce(t *testing.T) {
	a, err := app.New(context.Background(), testConfig(t,
		"TOKENGW_LIMITS__PER_IP_FAILED_AUTH__RATE=0.001", "TOKENGW_LIMITS__PER_IP_FAILED_AUTH__BURST=3",
		"TOKENGW_AUTH__MAX_CONCURRENT_VERIFY=2"), app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	addr := serveReal(t, a)
	before := a.Auth.Verifications()
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := post(t, "http://"+addr+"/oauth2/token", basic("demo", fmt.Sprintf("wrong-%d", i)), "grant_type=client_credentials")
			mu.Lock()
			codes[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	ran := a.Auth.Verifications() - before
	t.Logf("verifications %d, answers %v", ran, codes)
	if ran > 3+2 {
		t.Fatalf("%d verifications ran, want at most burst 3 + max_concurrent_verify 2", ran)
	}
	if codes[401] != int(ran) || codes[429] != 64-int(ran) {
		t.Fatalf("answers %v: want one 401 per verification and 429 for the rest", codes)
	}
	// The right secret from another address is still served.
	resp, _ := post(t, "http://"+addr+"/oauth2/token", basic("demo", demoSecret), "grant_type=client_credentials")
	if resp.StatusCode != 429 { // same address (loopback): still spent
		t.Fatalf("right secret from the spent address: %d, want 429", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	req.Header = basic("demo", demoSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r2, err := clientFrom("127.0.0.2").Do(req)
	if err != nil || r2.StatusCode != 200 {
		t.Fatalf("right secret from another address: %v %v", r2, err)
	}
	r2.Body.Close()
}

// panicking is the real token source that panics on a request for scope
// "boom": a fault injected inside the token handler.
type panicking struct{ *reuse.Reuser }

func (p panicking) Token(ctx context.Context, req reuse.Request) (reuse.Result, error) {
	if req.Scope == "write" {
		panic("boom inside the token handler")
	}
	return p.Reuser.Token(ctx, req)
}

// TestPanicIsAccounted: a panic inside the token handler, through the real
// middleware chain, gets a JSON 500, an access line with the request id, a
// counted metric, and leaves the in-flight gauge at 0.
func TestPanicIsAccounted(t *testing.T) {
	cfg := testConfig(t)
	a, err := app.New(context.Background(), cfg, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var logs syncBuf
	metrics := server.NewMetrics()
	s, err := server.New(server.Options{
		Settings: server.SettingsFrom(cfg), Tokens: panicking{a.Reuser}, Auth: a.Auth,
		ClientLimiter: a.Consumer, FailedAuth: a.FailedIP, Store: a.Store, Introspector: a.Introspect,
		Metrics: metrics, Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	resp, tj := post(t, srv.URL+"/oauth2/token", basic("demo", demoSecret), "grant_type=client_credentials&scope=write")
	if resp.StatusCode != 500 || tj.Error != "server_error" {
		t.Fatalf("panic: %d %+v", resp.StatusCode, tj)
	}
	id := resp.Header.Get("X-Request-Id")
	var line map[string]any
	for _, l := range bytes.Split([]byte(logs.String()), []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(l, &m) == nil && m["msg"] == "request" && m["request_id"] == id {
			line = m
		}
	}
	if id == "" || line == nil || line["status"] != float64(500) || line["outcome"] != "panic" {
		t.Fatalf("access line for request %q: %v\n%s", id, line, []byte(logs.String()))
	}
	if !strings.Contains(logs.String(), `"msg":"panic","request_id":"`+id+`"`) {
		t.Fatalf("the panic line lacks the request id:\n%s", []byte(logs.String()))
	}
	rec := httptest.NewRecorder()
	metrics.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := rec.Body.String()
	if !strings.Contains(body, `tokengw_token_requests_total{grant="client_credentials",outcome="panic",status="500"} 1`) ||
		!strings.Contains(body, "tokengw_http_requests_in_flight 0") {
		t.Fatalf("metrics after the panic:\n%s", grepLines(body, "tokengw_token_requests_total", "tokengw_http_requests_in_flight"))
	}
}

func grepLines(s string, prefixes ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\n")
}

// TestManyParameterBodies: bodies as large as server.max_body_bytes admits,
// made of thousands of parameters (distinct and empty, or one key
// repeated, or a repeated resource with a valid request), get their RFC
// answers (the parser and the §3.2 checks are linear in the parameters;
// BenchmarkParseRequestFormHostile in internal/oauth shows the cost).
func TestManyParameterBodies(t *testing.T) {
	g := start(t, testConfig(t), nil)
	params := func(n int, f func(i int) string) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteByte('&')
			}
			b.WriteString(f(i))
		}
		return b.String()
	}
	for _, c := range []struct {
		name, body, code, desc string
	}{
		{"distinct empty keys", params(1500, func(i int) string { return strconv.FormatInt(int64(i), 36) }), "invalid_request", "missing grant_type"},
		{"one key repeated", "grant_type=client_credentials&" + params(1500, func(int) string { return "x=1" }), "invalid_request", `parameter "x" repeated`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if len(c.body) > 8192 {
				t.Fatalf("body of %d bytes is past the default cap", len(c.body))
			}
			resp, tj := post(t, g.url(), basic("demo", demoSecret), c.body)
			if resp.StatusCode != http.StatusBadRequest || tj.Error != c.code || tj.Description != c.desc {
				t.Fatalf("%d %s %q, want 400 %s %q", resp.StatusCode, tj.Error, tj.Description, c.code, c.desc)
			}
		})
	}
}
