package server

import (
	"context"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

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
}

type infoKey struct{}

// reqState is the per-request allocation of accessLog.
type reqState struct {
	info  reqInfo
	sw    statusWriter
	idHdr [1]string
}

func infoFrom(ctx context.Context) *reqInfo {
	if i, ok := ctx.Value(infoKey{}).(*reqInfo); ok {
		return i
	}
	return &reqInfo{}
}

// RequestID returns the id the access log uses for the request in ctx.
func RequestID(ctx context.Context) string { return infoFrom(ctx).id }

type statusWriter struct {
	http.ResponseWriter
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
		var idBuf [48]byte
		id := append(append(idBuf[:0], s.idPrefix...), '-')
		st.info.id = string(strconv.AppendUint(id, s.idSeq.Add(1), 10))
		st.idHdr[0] = st.info.id
		w.Header()["X-Request-Id"] = st.idHdr[:] // canonical key; Set would allocate the slice
		st.sw.ResponseWriter = w
		info, sw := &st.info, &st.sw
		if s.metrics != nil {
			s.metrics.inFlight.Inc()
		}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), infoKey{}, info)))
		if s.metrics != nil {
			s.metrics.inFlight.Dec()
			if r.URL.Path == "/oauth2/token" {
				s.metrics.observeToken(info.grant, info.outcome, sw.status, s.now().Sub(start))
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
			slog.Float64("duration_ms", float64(s.now().Sub(start).Microseconds())/1000),
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
	})
}

// recoverer turns a panic into a JSON 500 and logs the stack.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic", "request_id", RequestID(r.Context()), "panic", v, "stack", string(debug.Stack()))
				oauth.WriteError(w, oauth.ErrServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// shed bounds the requests in flight: past server.max_in_flight a request is
// answered 503 at once, with Retry-After, instead of queueing without bound.
func (s *Server) shed(next http.Handler) http.Handler {
	if s.inFlight == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.inFlight <- struct{}{}:
			defer func() { <-s.inFlight }()
			next.ServeHTTP(w, r)
		default:
			infoFrom(r.Context()).outcome = "shed"
			oauth.WriteError(w, oauth.ErrTemporarilyUnavailable.
				WithDescription("server busy; retry later").WithRetryAfter(time.Second))
		}
	})
}
