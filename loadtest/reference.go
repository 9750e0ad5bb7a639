package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// referenceToken is the fixed token the reference server hands out: 43
// base64url characters, the length of tokengw's opaque tokens.
const referenceToken = "reference-token-0123456789abcdefghijklmnopq"

// referenceHandler is the bare token endpoint: it reads the form, checks
// HTTP Basic client authentication against creds and writes a fixed token
// JSON with the headers RFC 6749 §5.1 requires. It is the ceiling for any
// token endpoint on the machine: whatever a real one does beyond this
// (hashing, reuse lookup, minting, persisting, rate limiting, logging) can
// only cost more.
func referenceHandler(creds []Credential) http.Handler {
	secrets := make(map[string][]byte, len(creds))
	for _, c := range creds {
		secrets[c.ID] = []byte(c.Secret)
	}
	body := []byte(`{"access_token":"` + referenceToken + `","token_type":"Bearer","expires_in":3600}` + "\n")
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth2/token", func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 8192)
		if err := r.ParseForm(); err != nil {
			writeOAuthError(w, http.StatusBadRequest, "invalid_request")
			return
		}
		if r.PostForm.Get("grant_type") != "client_credentials" {
			writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type")
			return
		}
		id, secret, ok := r.BasicAuth()
		if ok {
			// RFC 6749 §2.3.1: both are form-encoded inside Basic.
			var err1, err2 error
			id, err1 = url.QueryUnescape(id)
			secret, err2 = url.QueryUnescape(secret)
			ok = err1 == nil && err2 == nil
		}
		want, known := secrets[id]
		if !ok || !known || subtle.ConstantTimeCompare([]byte(secret), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="token"`)
			writeOAuthError(w, http.StatusUnauthorized, "invalid_client")
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		h.Set("Pragma", "no-cache")
		_, _ = w.Write(body)
	})
	ok := func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") }
	mux.HandleFunc("GET /healthz", ok)
	mux.HandleFunc("GET /readyz", ok)
	return mux
}

func writeOAuthError(w http.ResponseWriter, status int, code string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"error":%q}`+"\n", code)
}

// serveReference serves the reference handler on addr until ctx is done or,
// when limit is positive, for at most limit. Its timeouts are tokengw's
// defaults, so both servers treat slow clients alike.
func serveReference(ctx context.Context, addr string, creds []Credential, limit time.Duration, logw io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("reference server: %w", err)
	}
	if limit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, limit)
		defer cancel()
	}
	srv := &http.Server{
		Handler:           referenceHandler(creds),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16384,
	}
	fmt.Fprintf(logw, "reference server on http://%s (%d clients)\n", ln.Addr(), len(creds))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("reference server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("reference server: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("reference server: %w", err)
	}
	return nil
}
