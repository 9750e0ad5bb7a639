// Package server is tokengw's HTTP side: the chi router of the public
// listener (token endpoint, discovery, health), its middleware (request ids,
// access log, panic recovery, in-flight shedding) and the admin listener.
//
// The token endpoint implements RFC 6749 §4.4 (client credentials grant)
// with client authentication per §2.3.1, responses per §5.1 and errors per
// §5.2, all written by package oauth.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/tokengw/tokengw/internal/clientauth"
	"github.com/tokengw/tokengw/internal/config"
	"github.com/tokengw/tokengw/internal/limiter"
	"github.com/tokengw/tokengw/internal/oauth"
	"github.com/tokengw/tokengw/internal/reuse"
	"github.com/tokengw/tokengw/internal/store"
)

// TokenSource hands out tokens for authenticated, scope-checked requests.
// reuse.Reuser is the implementation. Safe for concurrent use.
type TokenSource interface {
	Token(ctx context.Context, req reuse.Request) (reuse.Result, error)
}

// Authenticator checks client credentials. clientauth.Authenticator is the
// implementation. Safe for concurrent use.
type Authenticator interface {
	Authenticate(ctx context.Context, c clientauth.Credentials) (store.Client, error)
}

// Limiter is the per-key token-bucket set. limiter.Set is the
// implementation. Safe for concurrent use.
type Limiter interface {
	Allow(key string, l limiter.Limit) limiter.Decision
	Blocked(key string, l limiter.Limit) (bool, time.Duration)
	Strike(key string, l limiter.Limit) limiter.Decision
}

// Pinger reports store readiness.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Options configures a Server. Every field but Logger and Now is required.
type Options struct {
	Config   *config.Config
	Tokens   TokenSource
	Auth     Authenticator
	Clients  *Registry
	Consumer Limiter // per-client limits
	FailedIP Limiter // per-IP failed-authentication limits
	Store    Pinger
	Logger   *slog.Logger
	Now      func() time.Time
	// Metrics, when set, are recorded and served at /metrics on the admin
	// listener.
	Metrics *Metrics
	// Admin, when set and server.admin_token is not empty, is served as the
	// client API at /admin/clients on the admin listener.
	Admin *ClientManager
	// TokenStore, Evictor and Introspector serve revocation (RFC 7009) and
	// introspection (RFC 7662).
	TokenStore   TokenStore
	Evictor      Evictor
	Introspector Introspector
	// UpstreamToken and UpstreamRevoke, when set (upstream mode), serve
	// POST /oauth2/token and /oauth2/revoke instead (package upstream).
	UpstreamToken, UpstreamRevoke http.Handler
}

// Server holds the handlers. Create it with New.
type Server struct {
	cfg      *config.Config
	tokens   TokenSource
	auth     Authenticator
	clients  *Registry
	consumer Limiter
	failedIP Limiter
	store    Pinger
	log      *slog.Logger
	now      func() time.Time
	trusted  []netip.Prefix
	metrics  *Metrics
	admin    *ClientManager
	issuer   string

	tokenStore   TokenStore
	evictor      Evictor
	introspector Introspector
	upstream     Options // UpstreamToken, UpstreamRevoke

	defaultLimit  limiter.Limit
	failedIPLimit limiter.Limit
	metadata      []byte

	idPrefix string
	// adminToken is server.admin_token's digest (admin API and introspection).
	adminToken adminToken
	idSeq      atomic.Uint64
	inFlight   chan struct{}
	ready      atomic.Bool
}

// New validates opts and builds a Server.
func New(opts Options) (*Server, error) {
	if opts.Config == nil || opts.Tokens == nil || opts.Auth == nil || opts.Clients == nil ||
		opts.Consumer == nil || opts.FailedIP == nil || opts.Store == nil ||
		opts.TokenStore == nil || opts.Evictor == nil || opts.Introspector == nil {
		return nil, errors.New("server: Config, Tokens, Auth, Clients, Consumer, FailedIP, Store, TokenStore, Evictor and Introspector are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var pfx [4]byte
	if _, err := rand.Read(pfx[:]); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	c := opts.Config
	s := &Server{
		cfg: c, tokens: opts.Tokens, auth: opts.Auth, clients: opts.Clients,
		consumer: opts.Consumer, failedIP: opts.FailedIP, store: opts.Store,
		log: opts.Logger, now: opts.Now, trusted: c.Server.TrustedProxyPrefixes(), metrics: opts.Metrics, admin: opts.Admin,
		tokenStore: opts.TokenStore, evictor: opts.Evictor, introspector: opts.Introspector,
		issuer:        strings.TrimSuffix(c.Issuer.URL, "/"),
		defaultLimit:  limiter.Limit{Rate: c.Limits.PerClient.Rate, Burst: c.Limits.PerClient.Burst},
		failedIPLimit: limiter.Limit{Rate: c.Limits.PerIPFailedAuth.Rate, Burst: c.Limits.PerIPFailedAuth.Burst},
		idPrefix:      hex.EncodeToString(pfx[:]),
		adminToken:    newAdminToken(c.Server.AdminToken),
	}
	if c.Server.MaxInFlight > 0 {
		s.inFlight = make(chan struct{}, c.Server.MaxInFlight)
	}
	md, err := metadata(c)
	if err != nil {
		return nil, err
	}
	s.metadata = md
	s.upstream = Options{UpstreamToken: opts.UpstreamToken, UpstreamRevoke: opts.UpstreamRevoke}
	s.ready.Store(true)
	return s, nil
}

// Handler is the public listener's handler.
func (s *Server) Handler() http.Handler {
	r := chi.NewRouter()
	r.Use(s.recoverer, s.accessLog, s.shed)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		oauth.WriteJSON(w, http.StatusNotFound, map[string]string{"error": "not_found"})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allowFor(r.URL.Path))
		oauth.WriteJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "invalid_request", "error_description": "method not allowed"})
	})
	if s.upstream.UpstreamToken != nil { // upstream mode
		r.Method(http.MethodPost, "/oauth2/token", s.upstream.UpstreamToken)
		r.Method(http.MethodPost, "/oauth2/revoke", s.upstream.UpstreamRevoke)
	} else {
		r.Post("/oauth2/token", s.token)
		r.Post("/oauth2/revoke", s.revoke)
	}
	r.Post("/oauth2/introspect", s.introspect)
	// RFC 9110 §9.1: "All general-purpose servers MUST support the methods
	// GET and HEAD" (chi routes HEAD to GET only when told; net/http drops
	// the body of a HEAD response).
	for path, h := range map[string]http.HandlerFunc{
		"/.well-known/oauth-authorization-server": s.discovery,
		"/healthz": s.healthz,
		"/readyz":  s.readyz,
	} {
		r.Get(path, h)
		r.Head(path, h)
	}
	return r
}

func allowFor(path string) string {
	switch path {
	case "/oauth2/token", "/oauth2/revoke", "/oauth2/introspect":
		return http.MethodPost
	}
	return "GET, HEAD"
}

// AdminHandler is the admin listener's handler (loopback by default):
// /metrics, /debug/pprof/ and the admin API.
func (s *Server) AdminHandler() http.Handler {
	r := chi.NewRouter()
	r.Use(s.recoverer)
	if s.metrics != nil {
		r.Handle("/metrics", s.metrics.Handler())
	}
	r.HandleFunc("/debug/pprof/*", pprof.Index)
	r.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	r.HandleFunc("/debug/pprof/profile", pprof.Profile)
	r.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	r.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// The client API exists only with an admin token: without one, /admin/
	// is not mounted at all.
	if s.admin != nil && s.cfg.Server.AdminToken != "" {
		api := newAdminAPI(s.admin, s.adminToken, s.log)
		r.Handle("/admin", api)
		r.Handle("/admin/*", api)
	}
	return r
}

// HTTPServer returns an http.Server for h with the configured timeouts.
func (s *Server) HTTPServer(h http.Handler) *http.Server {
	t := s.cfg.Server.Timeouts
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    s.cfg.Server.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// Serve serves the public handler on ln (and the admin handler on adminLn
// when not nil) until ctx is done, then shuts down gracefully: listeners
// close, in-flight requests finish within server.timeouts.shutdown. It
// returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context, ln, adminLn net.Listener) error {
	pub := s.HTTPServer(s.Handler())
	servers := []*http.Server{pub}
	errc := make(chan error, 2)
	tlsCert, tlsKey := s.cfg.Server.TLSCertFile, s.cfg.Server.TLSKeyFile
	go func() {
		var err error
		if tlsCert != "" {
			err = pub.ServeTLS(ln, tlsCert, tlsKey)
		} else {
			err = pub.Serve(ln)
		}
		errc <- err
	}()
	if adminLn != nil {
		adm := s.HTTPServer(s.AdminHandler())
		adm.WriteTimeout = 0 // pprof profiles stream for their duration
		servers = append(servers, adm)
		go func() { errc <- adm.Serve(adminLn) }()
	}
	s.log.Info("serving", "addr", ln.Addr().String(), "admin_addr", addrOf(adminLn), "tls", tlsCert != "")

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	s.ready.Store(false)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.Server.Timeouts.Shutdown)
	defer cancel()
	var errs []error
	for _, srv := range servers {
		if err := srv.Shutdown(sctx); err != nil {
			errs = append(errs, fmt.Errorf("server: shutdown: %w", err))
		}
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		errs = append(errs, fmt.Errorf("server: %w", serveErr))
	}
	return errors.Join(errs...)
}

func addrOf(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}
