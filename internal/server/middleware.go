package server

import (
	"log/slog"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/tokengw/tokengw/internal/limiter"
	"github.com/tokengw/tokengw/internal/oauth"
)

// reqInfo is what the access log line says about a request; handlers fill
// in what they learn. Only the request's own goroutine touches it.
type reqInfo struct {
	id       string
	clientID string
	grant    string
	outcome  string
	err      *oauth.Error
	// caller is the caller's address as the per-caller limits key it (its
	// /64 for IPv6), set by shed; valid once set.
	caller netip.Addr
	// budget charges the caller's failed-authentication bucket before a
	// secret verification (clientauth.Budget).
	budget authBudget
}

// reqState is the per-request allocation of accessLog.
type reqState struct {
	info  reqInfo
	sw    statusWriter
	idHdr [1]string
	idBuf [32]byte // the request id's bytes: idPrefix, "-", a decimal counter
}

// infoOf returns the record of the request whose writer w is: handlers and
// middleware inside accessLog get its statusWriter, which points at the
// record, so no context value (and no copy of the request) is needed. A
// writer from elsewhere gets a record of its own.
func infoOf(w http.ResponseWriter) *reqInfo {
	if sw, ok := w.(*statusWriter); ok && sw.info != nil {
		return sw.info
	}
	return &reqInfo{}
}

type statusWriter struct {
	http.ResponseWriter
	info   *reqInfo
	status int
	bytes  int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// accessLog gives each request an id (X-Request-Id on the response) and
// writes one line when it ends. The line never carries a header, a form
// value, a secret or a token: only what reqInfo holds.
func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		// One allocation holds what the request's middleware needs: its
		// log record, the status-recording writer and the X-Request-Id
		// header value.
		st := &reqState{}
		id := append(append(st.idBuf[:0], s.idPrefix...), '-')
		id = strconv.AppendUint(id, s.idSeq.Add(1), 10)
		// The id's bytes are the record's own and never change: the
		// string shares them (and keeps st alive while anything holds it).
		st.info.id = unsafe.String(unsafe.SliceData(id), len(id))
		st.idHdr[0] = st.info.id
		w.Header()["X-Request-Id"] = st.idHdr[:] // canonical key; Set would allocate the slice
		st.sw.ResponseWriter = w
		st.sw.info = &st.info
		info, sw := &st.info, &st.sw
		if s.metrics != nil {
			s.metrics.inFlight.Add(1)
		}
		// Deferred, so that a request whose handler panics (the recoverer
		// sits inside this) or aborts still leaves the gauge right and gets
		// its line.
		defer s.logRequest(r, info, sw, start)
		next.ServeHTTP(sw, r)
	})
}

// logRequest records a finished request: metrics and the access line.
func (s *Server) logRequest(r *http.Request, info *reqInfo, sw *statusWriter, start time.Time) {
	took := s.now().Sub(start) // one clock read for the metric and the line
	if s.metrics != nil {
		s.metrics.inFlight.Add(-1)
		if r.URL.Path == "/oauth2/token" {
			s.metrics.observeToken(info.grant, info.outcome, sw.status, took)
		}
	}
	if !s.log.Enabled(r.Context(), slog.LevelInfo) {
		return
	}
	attrs := []slog.Attr{
		slog.String("request_id", info.id),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", sw.status),
		slog.Float64("duration_ms", float64(took.Microseconds())/1000),
	}
	if info.clientID != "" {
		attrs = append(attrs, slog.String("client_id", info.clientID))
	}
	if info.grant != "" {
		attrs = append(attrs, slog.String("grant", info.grant))
	}
	if info.outcome != "" {
		attrs = append(attrs, slog.String("outcome", info.outcome))
	}
	if info.err != nil {
		attrs = append(attrs, slog.String("error", info.err.Code))
		if cause := info.err.Unwrap(); cause != nil {
			attrs = append(attrs, slog.String("cause", cause.Error()))
		}
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
}

// recoverer turns a panic into a JSON 500 and logs the stack.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				info := infoOf(w)
				s.log.Error("panic", "request_id", info.id, "panic", v, "stack", string(debug.Stack()))
				info.outcome, info.err = "panic", oauth.ErrServerError
				oauth.WriteError(w, oauth.ErrServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// shed bounds the requests in flight: past server.max_in_flight a request is
// answered 503 at once, with Retry-After, instead of queueing without bound;
// past server.max_in_flight_per_ip for one caller address, 429, so that one
// caller (slow bodies from thousands of connections, say) cannot take every
// slot. Liveness, readiness and discovery are never shed: an orchestrator
// must not restart a healthy but busy replica.
func (s *Server) shed(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if neverShed(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		info := infoOf(w)
		info.caller = callerAddr(limiter.ClientIP(r, s.set.TrustedProxies))
		if s.maxInFlight > 0 {
			// An atomic count, not a semaphore channel: two atomic adds
			// per request instead of two channel operations under a lock.
			// A request being refused holds a unit for a moment, so at the
			// bound a concurrent arrival may be shed a moment early, never
			// admitted past it.
			if s.inFlight.Add(1) > s.maxInFlight {
				s.inFlight.Add(-1)
				info.outcome = "shed"
				oauth.LeaveBody(w, r)
				oauth.WriteError(w, oauth.ErrTemporarilyUnavailable.
					WithDescription("server busy; retry later").WithRetryAfter(time.Second))
				return
			}
			defer s.inFlight.Add(-1)
		}
		if s.perIP != nil {
			slot := s.perIP.acquire(info.caller)
			if slot == nil {
				info.outcome = "shed"
				oauth.LeaveBody(w, r)
				oauth.WriteError(w, oauth.ErrRateLimited.
					WithDescription("too many requests in progress from this address").WithRetryAfter(time.Second))
				return
			}
			defer slot.release()
		}
		next.ServeHTTP(w, r)
	})
}

// neverShed are the paths probes and clients' discovery use.
func neverShed(path string) bool {
	switch path {
	case "/healthz", "/readyz":
		return true
	}
	return strings.HasPrefix(path, "/.well-known/")
}

// callerAddr is the identity of a caller for per-caller limits: its IPv4
// address, or its IPv6 /64 (one host usually holds a whole /64 and could
// otherwise take a fresh bucket with every address).
func callerAddr(ip netip.Addr) netip.Addr {
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return ip
}
