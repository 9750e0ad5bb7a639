package server_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/app"
)

// benchHandler runs the token endpoint in-process (as BenchmarkTokenEndpoint
// does) on the memory store, real clock, with the given environment.
func benchHandler(b *testing.B, env ...string) (*app.App, http.Handler) {
	b.Helper()
	a, err := app.New(context.Background(), testConfig(b, env...), app.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = a.Close() })
	return a, a.Server.Handler()
}

func runToken(b *testing.B, h http.Handler) {
	benchToken(b, h, "grant_type=client_credentials", basic("demo", demoSecret).Get("Authorization"))
}

var formats = []struct{ name, env string }{
	{"opaque", "TOKENGW_ISSUER__TOKEN_FORMAT=opaque"},
	{"jwt-ES256", "TOKENGW_ISSUER__SIGNING__ALG=ES256"},
	{"jwt-EdDSA", "TOKENGW_ISSUER__SIGNING__ALG=EdDSA"},
	{"jwt-RS256", "TOKENGW_ISSUER__SIGNING__ALG=RS256"},
}

func formatEnv(f string, extra ...string) []string {
	env := append([]string{f}, extra...)
	if !strings.HasSuffix(f, "=opaque") {
		env = append(env, "TOKENGW_ISSUER__TOKEN_FORMAT=jwt")
	}
	return env
}

// BenchmarkMint: every request mints and persists a token (reuse off),
// memory store: the cost of each token format.
//
//	go test -run '^$' -bench 'BenchmarkMint|BenchmarkReuseHit' -benchmem ./internal/server/
func BenchmarkMint(b *testing.B) {
	for _, f := range formats {
		b.Run(f.name, func(b *testing.B) {
			a, h := benchHandler(b, formatEnv(f.env, "TOKENGW_REUSE__ENABLED=false")...)
			runToken(b, h)
			if s := a.Reuser.Stats(); s.Mints < uint64(b.N) {
				b.Fatalf("mints = %d < b.N = %d: not every request minted", s.Mints, b.N)
			}
		})
	}
}

// BenchmarkReuseHit: an L1 reuse hit, JWT against opaque: the handed-out
// token is the stored copy, so signing is not on this path.
func BenchmarkReuseHit(b *testing.B) {
	for _, f := range []struct{ name, env string }{formats[0], formats[1]} {
		b.Run(f.name, func(b *testing.B) {
			a, h := benchHandler(b, formatEnv(f.env)...)
			runToken(b, h)
			if s := a.Reuser.Stats(); s.Mints != 1 {
				b.Fatalf("mints = %d, want 1: the benchmark did not measure reuse hits", s.Mints)
			}
		})
	}
}

// BenchmarkReuseHitPaired serves an L1 reuse hit from an opaque gateway and
// from a JWT (ES256) gateway alternately in one loop, timing each, so that
// the load of a shared machine falls on both alike; it reports each one's
// median ns per request and the ratio of the medians, jwt/opaque.
//
//	go test -run '^$' -bench BenchmarkReuseHitPaired -benchtime 200000x ./internal/server/
func BenchmarkReuseHitPaired(b *testing.B) {
	_, opaque := benchHandler(b, formatEnv(formats[0].env)...)
	_, jwt := benchHandler(b, formatEnv(formats[1].env)...)
	auth := basic("demo", demoSecret).Get("Authorization")
	r := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Authorization", auth)
	r.RemoteAddr = "127.0.0.1:40000"
	hdr := r.Header.Clone()
	body := &bodyReader{}
	w := &discardWriter{h: http.Header{}}
	serve := func(h http.Handler) time.Duration {
		body.Reset("grant_type=client_credentials")
		r.Body = body
		r.Header = hdr
		clear(w.h)
		w.code = 0
		t0 := time.Now()
		h.ServeHTTP(w, r)
		d := time.Since(t0)
		if w.code != 200 {
			b.Fatalf("status %d", w.code)
		}
		return d
	}
	serve(opaque)
	serve(jwt)
	// Medians, not means: a request preempted by another process on a
	// shared machine is an outlier that a mean would charge to one side.
	to, tj := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			to = append(to, serve(opaque))
			tj = append(tj, serve(jwt))
		} else {
			tj = append(tj, serve(jwt))
			to = append(to, serve(opaque))
		}
	}
	b.StopTimer()
	slices.Sort(to)
	slices.Sort(tj)
	mo, mj := to[len(to)/2], tj[len(tj)/2]
	b.ReportMetric(float64(mo.Nanoseconds()), "opaque-median-ns/req")
	b.ReportMetric(float64(mj.Nanoseconds()), "jwt-median-ns/req")
	b.ReportMetric(float64(mj)/float64(mo), "jwt/opaque")
}

// BenchmarkReuseHitHTTPPaired is BenchmarkReuseHitPaired through real
// loopback HTTP servers and a keep-alive client: what a caller sees.
//
//	go test -run '^$' -bench BenchmarkReuseHitHTTPPaired -benchtime 20000x ./internal/server/
func BenchmarkReuseHitHTTPPaired(b *testing.B) {
	_, oh := benchHandler(b, formatEnv(formats[0].env)...)
	_, jh := benchHandler(b, formatEnv(formats[1].env)...)
	osrv, jsrv := httptest.NewServer(oh), httptest.NewServer(jh)
	b.Cleanup(osrv.Close)
	b.Cleanup(jsrv.Close)
	auth := basic("demo", demoSecret).Get("Authorization")
	hc := &http.Client{}
	serve := func(base string) time.Duration {
		req, _ := http.NewRequest(http.MethodPost, base+"/oauth2/token", strings.NewReader("grant_type=client_credentials"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", auth)
		t0 := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
		return d
	}
	serve(osrv.URL)
	serve(jsrv.URL)
	to, tj := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			to = append(to, serve(osrv.URL))
			tj = append(tj, serve(jsrv.URL))
		} else {
			tj = append(tj, serve(jsrv.URL))
			to = append(to, serve(osrv.URL))
		}
	}
	b.StopTimer()
	slices.Sort(to)
	slices.Sort(tj)
	mo, mj := to[len(to)/2], tj[len(tj)/2]
	b.ReportMetric(float64(mo.Nanoseconds()), "opaque-median-ns/req")
	b.ReportMetric(float64(mj.Nanoseconds()), "jwt-median-ns/req")
	b.ReportMetric(float64(mj)/float64(mo), "jwt/opaque")
}
