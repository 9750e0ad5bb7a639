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
	"github.com/tokengw/tokengw/internal/config"
)

// BenchmarkJWTBearerHit compares a replay: allow workload token presented
// again (verified-JWT cache hit, then an L1 reuse hit) with the
// client_credentials L1 reuse hit, in-process through ServeHTTP as
// BenchmarkTokenEndpoint does. The target: within 10%.
//
//	go test -run '^$' -bench BenchmarkJWTBearerHit -benchmem -count 5 ./internal/server/
func BenchmarkJWTBearerHit(b *testing.B) {
	run := benchToken
	b.Run("client_credentials-l1-hit", func(b *testing.B) {
		a := benchApp(b, testConfig(b))
		run(b, a.Server.Handler(), "grant_type=client_credentials", basic("demo", demoSecret).Get("Authorization"))
	})
	for _, kind := range []string{"ES256", "RS256"} {
		b.Run("jwt-bearer-"+kind+"-cached-hit", func(b *testing.B) {
			key := newECKey(b, "sa")
			if kind == "RS256" {
				key = newRSAKey(b, "sa")
			}
			cfg := workloadConfig(b, key, "allow")
			a := benchApp(b, cfg)
			as := key.sign(b, workloadClaims(cfg.Issuer.URL, time.Now()))
			run(b, a.Server.Handler(), bearerBody(as), "")
			if v := a.Assertions.Verifier.Verifications(); v != 1 {
				b.Fatalf("%d verifications, want 1", v)
			}
			if m := a.Reuser.Stats().Mints; m != 1 {
				b.Fatalf("%d mints, want 1", m)
			}
		})
	}
}

// BenchmarkJWTBearerVsClientCredentials serves the two hits alternately,
// one of each per iteration, timing each, so that both see the same load
// on a shared machine: the jwt/cc metric is the ratio of their mean
// latencies within one run (the target: at most 1.10).
//
//	go test -run '^$' -bench BenchmarkJWTBearerVsClientCredentials -count 5 ./internal/server/
func BenchmarkJWTBearerVsClientCredentials(b *testing.B) {
	for _, kind := range []string{"ES256", "RS256"} {
		b.Run(kind, func(b *testing.B) {
			key := newECKey(b, "sa")
			if kind == "RS256" {
				key = newRSAKey(b, "sa")
			}
			cfg := workloadConfig(b, key, "allow")
			a := benchApp(b, cfg)
			h := a.Server.Handler()
			jwtBody := bearerBody(key.sign(b, workloadClaims(cfg.Issuer.URL, time.Now())))
			ccBody, ccAuth := "grant_type=client_credentials", basic("demo", demoSecret).Get("Authorization")
			mk := func(body, auth string) (*http.Request, *bodyReader) {
				r := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(body))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				if auth != "" {
					r.Header.Set("Authorization", auth)
				}
				r.RemoteAddr = "127.0.0.1:40000"
				rd := &bodyReader{}
				r.Body = rd
				return r, rd
			}
			ccReq, ccRd := mk(ccBody, ccAuth)
			jwtReq, jwtRd := mk(jwtBody, "")
			ccHdr, jwtHdr := ccReq.Header.Clone(), jwtReq.Header.Clone()
			w := &discardWriter{h: http.Header{}}
			serve := func(r *http.Request, rd *bodyReader, hdr http.Header, body string) time.Duration {
				rd.Reset(body)
				r.Body, r.Header = rd, hdr
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
			serve(ccReq, ccRd, ccHdr, ccBody)
			serve(jwtReq, jwtRd, jwtHdr, jwtBody)
			var cc, jwt time.Duration
			for b.Loop() {
				cc += serve(ccReq, ccRd, ccHdr, ccBody)
				jwt += serve(jwtReq, jwtRd, jwtHdr, jwtBody)
			}
			b.ReportMetric(float64(jwt)/float64(cc), "jwt/cc")
			b.ReportMetric(float64(cc.Nanoseconds())/float64(b.N), "cc-ns/op")
			b.ReportMetric(float64(jwt.Nanoseconds())/float64(b.N), "jwt-ns/op")
			if v, m := a.Assertions.Verifier.Verifications(), a.Reuser.Stats().Mints; v != 1 || m != 2 {
				b.Fatalf("%d verifications, %d mints; want 1 and 2 (one per grant)", v, m)
			}
		})
	}
}

// benchApp is an App on the real clock (the tests' settable clock takes a
// mutex on every read, which the hit path would pay for).
func benchApp(b *testing.B, cfg *config.Config) *app.App {
	b.Helper()
	a, err := app.New(context.Background(), cfg, app.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = a.Close() })
	return a
}

// BenchmarkJWTBearerVsClientCredentialsHTTP is the same pair through a real
// loopback listener and a keep-alive client, alternating which goes first:
// what a caller sees (the jwt-bearer request carries a ~1 KB form where
// client_credentials sends 29 bytes). The metric is the ratio of medians.
//
//	go test -run '^$' -bench BenchmarkJWTBearerVsClientCredentialsHTTP -benchtime 20000x ./internal/server/
func BenchmarkJWTBearerVsClientCredentialsHTTP(b *testing.B) {
	for _, kind := range []string{"ES256", "RS256"} {
		b.Run(kind, func(b *testing.B) {
			key := newECKey(b, "sa")
			if kind == "RS256" {
				key = newRSAKey(b, "sa")
			}
			cfg := workloadConfig(b, key, "allow")
			a := benchApp(b, cfg)
			srv := httptest.NewServer(a.Server.Handler())
			b.Cleanup(srv.Close)
			hc := &http.Client{}
			jwtBody := bearerBody(key.sign(b, workloadClaims(cfg.Issuer.URL, time.Now())))
			ccBody, ccAuth := "grant_type=client_credentials", basic("demo", demoSecret).Get("Authorization")
			serve := func(body, auth string) time.Duration {
				req, _ := http.NewRequest(http.MethodPost, srv.URL+"/oauth2/token", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
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
			serve(ccBody, ccAuth)
			serve(jwtBody, "")
			tc, tj := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%2 == 0 {
					tc = append(tc, serve(ccBody, ccAuth))
					tj = append(tj, serve(jwtBody, ""))
				} else {
					tj = append(tj, serve(jwtBody, ""))
					tc = append(tc, serve(ccBody, ccAuth))
				}
			}
			b.StopTimer()
			slices.Sort(tc)
			slices.Sort(tj)
			mc, mj := tc[len(tc)/2], tj[len(tj)/2]
			b.ReportMetric(float64(mc.Nanoseconds()), "cc-median-ns/req")
			b.ReportMetric(float64(mj.Nanoseconds()), "jwt-median-ns/req")
			b.ReportMetric(float64(mj)/float64(mc), "jwt/cc")
			if v, m := a.Assertions.Verifier.Verifications(), a.Reuser.Stats().Mints; v != 1 || m != 2 {
				b.Fatalf("%d verifications, %d mints; want 1 and 2 (one per grant)", v, m)
			}
		})
	}
}
