package server_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/tokengw/tokengw/internal/app"
)

// BenchmarkTokenEndpoint compares the token handler on an L1 reuse hit with
// a bare chi handler that reads the form, checks Basic auth and writes a
// fixed token JSON: the floor for any token endpoint. Both run in-process
// through ServeHTTP with the same request, so the ratio is the handler's cost.
//
//	go test -run '^$' -bench BenchmarkTokenEndpoint -benchmem ./internal/server/
func BenchmarkTokenEndpoint(b *testing.B) {
	auth := basic("demo", demoSecret).Get("Authorization")
	run := func(b *testing.B, h http.Handler) { benchToken(b, h, "grant_type=client_credentials", auth) }

	b.Run("reference", func(b *testing.B) {
		run(b, referenceHandler())
	})
	b.Run("tokengw-l1-hit", func(b *testing.B) {
		// The real clock, as in production: the tests' settable clock
		// takes a mutex on every read, which the hit path would pay for.
		a, err := app.New(context.Background(), testConfig(b), app.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = a.Close() })
		run(b, a.Server.Handler())
		if s := a.Reuser.Stats(); s.Mints != 1 {
			b.Fatalf("mints = %d, want 1: the benchmark did not measure reuse hits", s.Mints)
		}
	})
}

// referenceHandler is the bare endpoint: parse, check Basic, write JSON.
func referenceHandler() http.Handler {
	r := chi.NewRouter()
	r.Post("/oauth2/token", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 8192))
		if err != nil {
			http.Error(w, "bad", 400)
			return
		}
		form, err := url.ParseQuery(string(b))
		if err != nil || form.Get("grant_type") != "client_credentials" {
			http.Error(w, "bad", 400)
			return
		}
		id, secret, ok := r.BasicAuth()
		if !ok || id != "demo" || secret != demoSecret {
			http.Error(w, "unauthorized", 401)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		_, _ = io.WriteString(w, `{"access_token":"AIELe_mTb9wkShFJyYXtbgSAFy0XwUD0PmQ30-uJCQU","token_type":"Bearer","expires_in":3600,"scope":"read write"}`+"\n")
	})
	return r
}

// benchToken measures h answering 200 to POST /oauth2/token with body (and
// Authorization auth, unless empty) from parallel goroutines. One request
// per goroutine, its body rewound each time, so allocs/op counts the
// handler, not the request's construction.
func benchToken(b *testing.B, h http.Handler, body, auth string) {
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

// bodyReader is a request body that can be read again.
type bodyReader struct{ strings.Reader }

func (*bodyReader) Close() error { return nil }

// discardWriter is a ResponseWriter that keeps only the status.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header { return w.h }

// SetReadDeadline succeeds, as a real connection's does
// (http.ResponseController).
func (w *discardWriter) SetReadDeadline(time.Time) error { return nil }
func (w *discardWriter) WriteHeader(c int) {
	if w.code == 0 {
		w.code = c
	}
}
func (w *discardWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = 200
	}
	return len(b), nil
}
