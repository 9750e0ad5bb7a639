package server_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/app"
)

// serveReal runs the app's public handler on a real listener with the
// configured http.Server (timeouts, header limits), as production does.
func serveReal(t *testing.T, a *app.App) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := a.Server.HTTPServer(a.Server.Handler())
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// rawExchange writes req on a fresh connection and returns the status line's
// code (0 when the server closed without answering, which net/http does for
// garbage that is not HTTP at all).
func rawExchange(t *testing.T, addr string, req []byte) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		return 0
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestMalformedRequests sends 600 malformed requests (random bytes, bad
// encodings, huge headers, wrong methods and content types): none gets a
// 5xx, and the server still issues tokens afterwards.
func TestMalformedRequests(t *testing.T) {
	clk := newClock()
	// A short read timeout answers the requests whose declared body never
	// arrives (the connection stays open: the client does not half-close).
	a, err := app.New(context.Background(), testConfig(t, "TOKENGW_SERVER__TIMEOUTS__READ=1s"), app.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	addr := serveReal(t, a)
	rng := rand.New(rand.NewPCG(1, 2))
	randBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return b
	}
	auth := basic("demo", demoSecret).Get("Authorization")
	gens := []func(i int) []byte{
		func(i int) []byte { return randBytes(1 + rng.IntN(2000)) },
		func(i int) []byte { // random body, valid framing
			body := randBytes(rng.IntN(500))
			return fmt.Appendf(nil, "POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nAuthorization: %s\r\nContent-Length: %d\r\n\r\n%s", auth, len(body), body)
		},
		func(i int) []byte { // bad percent-encodings and odd separators
			bodies := []string{"grant_type=%zz", "grant_type=client_credentials&scope=%", "%%%%", "a=b;c=d", "grant_type=client_credentials&&&==", "scope=\xff\xfe&grant_type=client_credentials", "grant_type=client%5Fcredentials&scope=read%20write%00"}
			body := bodies[i%len(bodies)]
			return fmt.Appendf(nil, "POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nAuthorization: %s\r\nContent-Length: %d\r\n\r\n%s", auth, len(body), body)
		},
		func(i int) []byte { // huge header
			return fmt.Appendf(nil, "POST /oauth2/token HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\nContent-Length: 0\r\n\r\n", strings.Repeat("a", 20000+rng.IntN(50000)))
		},
		func(i int) []byte { // wrong methods
			methods := []string{"GET", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO", "HEAD"}
			return fmt.Appendf(nil, "%s /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", methods[i%len(methods)])
		},
		func(i int) []byte { // wrong content types
			cts := []string{"application/json", "text/plain", "multipart/form-data; boundary=zz", "application/x-www-form-urlencoded; charset=\"", "", "application/x-www-form-urlencoded;;;"}
			body := "grant_type=client_credentials"
			return fmt.Appendf(nil, "POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nAuthorization: %s\r\nContent-Length: %d\r\n\r\n%s", cts[i%len(cts)], auth, len(body), body)
		},
		func(i int) []byte { // broken Authorization headers
			authz := []string{"Basic", "Basic =", "Basic " + string(randBytes(20)), "Bearer abc", "Basic Og==", "Basic " + strings.Repeat("QUFB", 2000)}
			body := "grant_type=client_credentials"
			return fmt.Appendf(nil, "POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nAuthorization: %s\r\nContent-Length: %d\r\n\r\n%s", authz[i%len(authz)], len(body), body)
		},
		func(i int) []byte { // lying Content-Length, chunked garbage, oversized body
			switch i % 3 {
			case 0:
				return []byte("POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type=client")
			case 1:
				return []byte("POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n")
			default:
				body := strings.Repeat("a=b&", 5000)
				return fmt.Appendf(nil, "POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			}
		},
	}
	const n = 600
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	var mu sync.Mutex
	counts := map[int]int{}
	for i := range n {
		req := gens[i%len(gens)](i)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			code := rawExchange(t, addr, req)
			mu.Lock()
			counts[code]++
			mu.Unlock()
			if code >= 500 {
				t.Errorf("request %d got %d: %q", i, code, truncate(req))
			}
		}()
	}
	wg.Wait()
	t.Logf("status counts: %v", counts)
	// Still healthy, and issuing tokens again once this caller's
	// failed-authentication bucket (spent by the garbage) has refilled.
	clk.Advance(time.Minute)
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz after the malformed load: %v %v", resp, err)
	}
	resp.Body.Close()
	r, tj := post(t, "http://"+addr+"/oauth2/token", basic(oddID, oddSecret), "grant_type=client_credentials")
	if r.StatusCode != 200 || tj.AccessToken == "" {
		t.Fatalf("token after the malformed load: %d %+v", r.StatusCode, tj)
	}
}

func truncate(b []byte) []byte {
	if len(b) > 120 {
		return b[:120]
	}
	return b
}

// TestShedsBeyondMaxInFlight: with max_in_flight 1 and one request held in
// flight, the next gets 503 + Retry-After at once instead of queueing, while
// liveness, readiness and discovery are never shed; a shed request whose
// body has not arrived gets its 503 without waiting for it (and the
// connection closes), not at the read deadline.
func TestShedsBeyondMaxInFlight(t *testing.T) {
	a, err := app.New(context.Background(), testConfig(t, "TOKENGW_SERVER__MAX_IN_FLIGHT=1", "TOKENGW_SERVER__TIMEOUTS__BODY=1m",
		"TOKENGW_SERVER__TIMEOUTS__READ=1m"), app.Options{Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	addr := serveReal(t, a)
	// Hold one request: headers sent, body not.
	hold := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 29\r\n\r\ngrant_type")
		return c
	}
	c := hold()
	defer func() { c.Close() }()
	// Poll (observable) until the held request occupies the slot.
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The poll authenticates: an unauthenticated one counts as a failed
		// authentication, and enough of them block this address (429,
		// answered before the slot is ever held for long).
		req, _ := http.NewRequest("POST", "http://"+addr+"/oauth2/revoke", strings.NewReader("token=x"))
		req.Header = basic("demo", demoSecret)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 && resp.StatusCode != 503 {
			t.Fatalf("poll: %d, want 200 or 503", resp.StatusCode)
		}
		if resp.StatusCode == 503 {
			if resp.Header.Get("Retry-After") == "" {
				t.Fatal("503 without Retry-After")
			}
			for _, p := range []string{"/healthz", "/readyz", "/.well-known/oauth-authorization-server"} {
				resp, err := http.Get("http://" + addr + p)
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("%s while shedding: %v %v, want 200", p, resp, err)
				}
				resp.Body.Close()
			}
			// A second request with its body held: its 503 comes well
			// before the 1m read deadline (the test gives it 20 s), and
			// ends the connection (the rest of the body never came).
			c2 := hold()
			defer c2.Close()
			_ = c2.SetReadDeadline(time.Now().Add(20 * time.Second))
			resp2, err := http.ReadResponse(bufio.NewReader(c2), nil)
			if err != nil {
				t.Fatalf("a shed request with its body held got no answer: %v", err)
			}
			resp2.Body.Close()
			if resp2.StatusCode != 503 || !resp2.Close {
				t.Fatalf("shed request with its body held: %d, close %v; want 503 and the connection closed", resp2.StatusCode, resp2.Close)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never shed")
		}
		// The held request may itself have been the one shed: it arrived
		// while a poll held the slot (seen on a loaded machine). Then it
		// has its answer already, or its connection is gone (the server
		// closes a shed request's connection with its body unread, which
		// can reset it before the answer is read); hold another.
		var one [1]byte
		_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if n, err := c.Read(one[:]); n > 0 || err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			c.Close()
			c = hold()
		} else {
			_ = c.SetReadDeadline(time.Time{})
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Releasing the held request frees the slot.
	io.WriteString(c, "=client_credentials")
	if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after release: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestLogsNeverCarrySecrets runs every kind of request with the log at
// debug level and greps the output for secrets, tokens and credentials.
func TestLogsNeverCarrySecrets(t *testing.T) {
	var buf syncBuf
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := app.New(context.Background(), testConfig(t), app.Options{Now: newClock().Now, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	addr := "http://" + serveReal(t, a) + "/oauth2/token"
	var tokens []string
	for _, tc := range []struct {
		h    http.Header
		body string
	}{
		{basic("demo", demoSecret), "grant_type=client_credentials"},
		{basic("demo", demoSecret), "grant_type=client_credentials"},
		{nil, "grant_type=client_credentials&client_id=demo&client_secret=" + demoSecret},
		{basic("demo", "wrong-secret-value"), "grant_type=client_credentials"},
		{basic(oddID, oddSecret), "grant_type=client_credentials&scope=read"},
		{basic("demo", demoSecret), "grant_type=client_credentials&scope=nope"},
		{basic("demo", demoSecret), "grant_type=password&password=hunter2-pw"},
		{nil, "grant_type=client_credentials&client_id=demo&client_secret=esc%zzape-secret"},
	} {
		_, tj := post(t, addr, tc.h, tc.body)
		if tj.AccessToken != "" {
			tokens = append(tokens, tj.AccessToken)
		}
	}
	out := buf.String()
	if !strings.Contains(out, `"msg":"request"`) {
		t.Fatalf("no access log lines:\n%s", out)
	}
	secrets := append([]string{demoSecret, oddSecret, "wrong-secret-value", "hunter2-pw", "%zz", "Basic ", "Authorization"}, tokens...)
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Fatalf("log contains %q:\n%s", s, out)
		}
	}
	for _, h := range []http.Header{basic("demo", demoSecret), basic("demo", "wrong-secret-value")} {
		if enc := strings.TrimPrefix(h.Get("Authorization"), "Basic "); strings.Contains(out, enc) {
			t.Fatal("log contains a Basic credential")
		}
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestPprofOnlyOnAdmin: the public listener does not serve /debug/pprof/ or
// /metrics.
func TestPprofOnlyOnAdmin(t *testing.T) {
	g := start(t, testConfig(t), nil)
	for _, p := range []string{"/debug/pprof/", "/metrics", "/admin/clients"} {
		resp, err := http.Get(g.srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Fatalf("public %s = %d, want 404", p, resp.StatusCode)
		}
	}
}
