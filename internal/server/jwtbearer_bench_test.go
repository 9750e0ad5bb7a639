package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
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
	run := func(b *testing.B, h http.Handler, body, auth string) {
		newReq := func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if auth != "" {
				r.Header.Set("Authorization", auth)
			}
			r.RemoteAddr = "127.0.0.1:40000"
			return r
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, newReq())
		if w.Code != 200 {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			r := newReq()
			hdr := r.Header.Clone()
			rd := &bodyReader{}
			w := &discardWriter{h: http.Header{}}
			for pb.Next() {
				rd.Reset(body)
				r.Body = rd
				r.Header = hdr
				clear(w.h)
				w.code = 0
				h.ServeHTTP(w, r)
				if w.code != 200 {
					b.Errorf("status %d", w.code)
					return
				}
			}
		})
	}
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

// bodyReader is a request body that can be read again.
type bodyReader struct{ strings.Reader }

func (*bodyReader) Close() error { return nil }
