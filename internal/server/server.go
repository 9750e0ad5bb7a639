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
	"github.com/tokengw/tokengw/internal/clients"
	"github.com/tokengw/tokengw/internal/config"
	"github.com/tokengw/tokengw/internal/limiter"
	"github.com/tokengw/tokengw/internal/oauth"
	"github.com/tokengw/tokengw/internal/reuse"
	"github.com/tokengw/tokengw/internal/store"
)

// TokenSource hands out tokens for authenticated, scope-checked requests
// and drops a reuse slot from this process's cache when its token is
// revoked. reuse.Reuser is the implementation. Safe for concurrent use.
type TokenSource interface {
	Token(ctx context.Context, req reuse.Request) (reuse.Result, error)
	Evict(clientID, reuseKey string)
}

// Authenticator checks client credentials. clientauth.Authenticator is the
// implementation. Safe for concurrent use.
type Authenticator interface {
	Authenticate(ctx context.Context, c clientauth.Credentials) (store.Client, error)
}

// ClientLimiter is the per-consumer token-bucket set: one request takes one
// token of the client's bucket. limiter.Set is the implementation. Safe for
// concurrent use.
type ClientLimiter interface {
	Allow(key string, l limiter.Limit) limiter.Decision
}

// FailedAuthLimiter is the per-caller-address budget of failed client
// authentications. limiter.Set is the implementation. Safe for concurrent
// use.
// Keys are caller addresses as callerAddr makes them (an IPv6 caller's /64).
type FailedAuthLimiter interface {
	Blocked(key netip.Addr, l limiter.Limit) (bool, time.Duration)
	Strike(key netip.Addr, l limiter.Limit) limiter.Decision
	Take(key netip.Addr, l limiter.Limit) limiter.Decision
	Refund(key netip.Addr, l limiter.Limit)
}

// Store is what the HTTP side asks the token store directly: readiness
// (/readyz) and the lookups and revocations of RFC 7009.
type Store interface {
	Ping(ctx context.Context) error
	Token(ctx context.Context, hash []byte) (store.Token, error)
	Revoke(ctx context.Context, hash []byte) error
}

// ClientAdmin manages run-time clients behind the admin API.
// clients.Manager is the implementation. Safe for concurrent use.
type ClientAdmin interface {
	Create(ctx context.Context, spec clients.Spec) (clients.Info, string, error)
	Get(ctx context.Context, id string) (clients.Info, error)
	List(ctx context.Context) ([]clients.Info, error)
	RotateSecret(ctx context.Context, id string) (clients.Info, string, error)
	Update(ctx context.Context, id string, p clients.Patch) (clients.Info, string, error)
	Delete(ctx context.Context, id string) error
	RevokeTokens(ctx context.Context, id string) (int, error)
}

var _ ClientAdmin = (*clients.Manager)(nil)

// Settings are the configuration values of the HTTP side. SettingsFrom reads
// them from a validated Config.
type Settings struct {
	Issuer          string        // issuer identifier (issuer.url), without a trailing slash
	TokenTTL        time.Duration // default access token lifetime (issuer.token_ttl)
	ClientLimit     limiter.Limit // limits.per_client
	FailedAuthLimit limiter.Limit // limits.per_ip_failed_auth
	TrustedProxies  []netip.Prefix
	AdminToken      string // "" = admin API off
	MaxBodyBytes    int64
	MaxHeaderBytes  int
	MaxInFlight     int // 0 = unbounded
	MaxInFlightIP   int // per caller address; 0 = unbounded
	// JWT and Audience: JWT access tokens, and their aud when the client
	// names no resource (issuer.audience, default the issuer).
	JWT         bool
	Audience    string
	AdminPublic bool
	Timeouts    config.Timeouts
	TLSCertFile string
	TLSKeyFile  string
}

// SettingsFrom returns the settings of a validated Config.
func SettingsFrom(c *config.Config) Settings {
	return Settings{
		Issuer:          strings.TrimSuffix(c.Issuer.URL, "/"),
		TokenTTL:        c.Issuer.TokenTTL,
		ClientLimit:     limiter.Limit{Rate: c.Limits.PerClient.Rate, Burst: c.Limits.PerClient.Burst},
		FailedAuthLimit: limiter.Limit{Rate: c.Limits.PerIPFailedAuth.Rate, Burst: c.Limits.PerIPFailedAuth.Burst},
		TrustedProxies:  c.Server.TrustedProxyPrefixes(),
		AdminToken:      c.Server.AdminToken,
		MaxBodyBytes:    c.Server.MaxBodyBytes,
		MaxHeaderBytes:  c.Server.MaxHeaderBytes,
		MaxInFlight:     c.Server.MaxInFlight,
		MaxInFlightIP:   c.Server.MaxInFlightPerIP,
		JWT:             c.Issuer.JWT(),
		Audience:        c.Issuer.DefaultAudience(),
		AdminPublic:     c.Server.AdminPublic,
		Timeouts:        c.Server.Timeouts,
		TLSCertFile:     c.Server.TLSCertFile,
		TLSKeyFile:      c.Server.TLSKeyFile,
	}
}

// Options configures a Server: its settings and one collaborator per role.
// Every collaborator but Admin and Metrics is required.
type Options struct {
	Settings      Settings
	Tokens        TokenSource
	Auth          Authenticator
	ClientLimiter ClientLimiter
	FailedAuth    FailedAuthLimiter
	Store         Store
	Introspector  Introspector
	// Admin, when set and Settings.AdminToken is not empty, is served as
	// the client API at /admin/ on the admin listener.
	Admin ClientAdmin
	// Metrics, when set, are recorded and served at /metrics on the admin
	// listener.
	Metrics *Metrics
	Logger  *slog.Logger     // default: discard
	Now     func() time.Time // default: time.Now
	// Keys, when set (issuer.token_format jwt), serves the JWKS and the
	// admin key rotation.
	Keys KeySet
	// Backup, when set (the embedded store), serves POST
	// /admin/store/backup: a consistent copy of the store file
	// (bolt.BackupHandler), behind the admin token.
	Backup http.Handler
	// Upstream, when set (upstream mode), serves POST /oauth2/token and
	// /oauth2/revoke instead (package upstream).
	Upstream UpstreamGateway
	// JWTAuth, when set, accepts private_key_jwt client authentication;
	// Grant, when set, the jwt-bearer grant (jwtbearer.go).
	JWTAuth JWTAuth
	Grant   BearerGrant
}

// Server holds the handlers. Create it with New.
type Server struct {
	set          Settings
	tokens       TokenSource
	auth         Authenticator
	clientLimit  ClientLimiter
	failedAuth   FailedAuthLimiter
	store        Store
	introspector Introspector
	keys         KeySet
	backup       http.Handler
	admin        ClientAdmin
	metrics      *Metrics
	log          *slog.Logger
	now          func() time.Time
	metadata     []byte
	// upstream mode's gateway (nil: local mode)
	upstream UpstreamGateway
	// private_key_jwt and the jwt-bearer grant (nil: not offered)
	jwtAuth JWTAuth
	grant   BearerGrant

	idPrefix string
	forms    *oauth.FormReader // request bodies, at most set.MaxBodyBytes
	tokenOut oauth.TokenWriter // every §5.1 response the token endpoint writes
	tokenURL string            // set.Issuer + "/oauth2/token", an assertion's audience
	// adminToken is server.admin_token's digest (admin API and introspection).
	adminToken  adminToken
	idSeq       atomic.Uint64
	inFlight    atomic.Int64 // sheddable requests in flight
	maxInFlight int64        // server.max_in_flight; 0: unbounded
	perIP       *perIPLimit  // nil: unbounded
	ready       atomic.Bool
}

// New validates opts and builds a Server.
func New(opts Options) (*Server, error) {
	if opts.Tokens == nil || opts.Auth == nil || opts.ClientLimiter == nil || opts.FailedAuth == nil ||
		opts.Store == nil || opts.Introspector == nil {
		return nil, errors.New("server: Tokens, Auth, ClientLimiter, FailedAuth, Store and Introspector are required")
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
	set := opts.Settings
	s := &Server{
		set: set, tokens: opts.Tokens, auth: opts.Auth, clientLimit: opts.ClientLimiter, failedAuth: opts.FailedAuth,
		store: opts.Store, introspector: opts.Introspector, admin: opts.Admin, metrics: opts.Metrics, keys: opts.Keys, backup: opts.Backup,
		log: opts.Logger, now: opts.Now, jwtAuth: opts.JWTAuth, grant: opts.Grant,
		upstream:   opts.Upstream,
		idPrefix:   hex.EncodeToString(pfx[:]),
		forms:      oauth.NewFormReader(set.MaxBodyBytes),
		tokenURL:   set.Issuer + "/oauth2/token",
		adminToken: newAdminToken(set.AdminToken),
	}
	if set.MaxInFlight > 0 {
		s.maxInFlight = int64(set.MaxInFlight)
	}
	if set.MaxInFlightIP > 0 {
		s.perIP = newPerIPLimit(set.MaxInFlightIP)
	}
	md, err := metadata(set.Issuer, opts.Keys != nil, opts.JWTAuth != nil, opts.Grant != nil)
	if err != nil {
		return nil, err
	}
	s.metadata = md
	s.ready.Store(true)
	return s, nil
}

// Handler is the public listener's handler.
func (s *Server) Handler() http.Handler {
	r := chi.NewRouter()
	// Request id and access log outermost, so that a request that panics
	// still gets its line, its metrics and its in-flight accounting; the
	// recoverer inside them; shedding last, where the caller is known.
	r.Use(s.accessLog, s.recoverer, s.shed)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		oauth.WriteJSON(w, http.StatusNotFound, map[string]string{"error": "not_found"})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allowFor(r.URL.Path))
		oauth.WriteJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "invalid_request", "error_description": "method not allowed"})
	})
	if s.upstream != nil { // upstream mode
		r.Post("/oauth2/token", upstreamHandler(s.upstream.ServeToken))
		r.Post("/oauth2/revoke", upstreamHandler(s.upstream.ServeRevoke))
	} else {
		r.Post("/oauth2/token", s.token)
		r.Post("/oauth2/revoke", s.revoke)
	}
	r.Post("/oauth2/introspect", s.introspect)
	// RFC 9110 §9.1: "All general-purpose servers MUST support the methods
	// GET and HEAD" (chi routes HEAD to GET only when told; net/http drops
	// the body of a HEAD response).
	gets := map[string]http.HandlerFunc{
		"/.well-known/oauth-authorization-server": s.discovery,
		"/healthz": s.healthz,
		"/readyz":  s.readyz,
	}
	s.jwtRoutes(gets)
	for path, h := range gets {
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
	r.Use(s.recoverer, routeEscaped)
	if s.metrics != nil {
		r.Handle("/metrics", s.metrics.Handler())
	}
	r.HandleFunc("/debug/pprof/*", pprof.Index)
	r.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	r.HandleFunc("/debug/pprof/profile", pprof.Profile)
	r.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	r.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// The admin API exists only with an admin token: without one, /admin/
	// is not mounted at all.
	if s.set.AdminToken != "" {
		extra := map[string]http.Handler{}
		if s.keys != nil {
			extra["/keys/rotate"] = RotateKeysHandler(s.keys, s.now)
		}
		if s.backup != nil {
			extra["/store/backup"] = s.backup
		}
		newAdminAPI(s.admin, s.adminToken, s.log).routes(r, extra)
	}
	return r
}

// HTTPServer returns an http.Server for h with the configured timeouts.
func (s *Server) HTTPServer(h http.Handler) *http.Server {
	t := s.set.Timeouts
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    s.set.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		// The peer address parsed once per connection, not per request.
		ConnContext: limiter.ConnContext,
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
	tlsCert, tlsKey := s.set.TLSCertFile, s.set.TLSKeyFile
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
	if adminLn != nil && s.set.AdminPublic && !isLoopback(adminLn.Addr()) {
		s.log.Warn("the admin listener is not on a loopback address (server.admin_public: true): it serves pprof, metrics and the admin API; keep it behind a firewall",
			"admin_addr", adminLn.Addr().String())
	}

	var serveErr error
	select {
	case <-ctx.Done():
		// /readyz says 503 for the shutdown delay while requests are still
		// served, so that load balancers stop sending before the
		// listeners close.
		s.ready.Store(false)
		if d := s.set.Timeouts.ShutdownDelay; d > 0 {
			s.log.Info("shutting down: not ready, still serving", "delay", d.String())
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case serveErr = <-errc:
				t.Stop()
			}
		}
	case serveErr = <-errc:
	}
	s.ready.Store(false)
	sctx, cancel := context.WithTimeout(context.Background(), s.set.Timeouts.Shutdown)
	defer cancel()
	// Both listeners drain at once, within one deadline.
	shut := make(chan error, len(servers))
	for _, srv := range servers {
		go func() { shut <- srv.Shutdown(sctx) }()
	}
	var errs []error
	for range servers {
		if err := <-shut; err != nil {
			errs = append(errs, fmt.Errorf("server: shutdown: %w", err))
		}
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		errs = append(errs, fmt.Errorf("server: %w", serveErr))
	}
	return errors.Join(errs...)
}

// isLoopback reports whether a listener's address is a loopback one.
func isLoopback(a net.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// routeEscaped makes chi route on the escaped path, so that an escaped '/'
// or '%' in a path segment (a client id) stays inside its segment.
func routeEscaped(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rctx := chi.RouteContext(r.Context()); rctx != nil && rctx.RoutePath == "" {
			rctx.RoutePath = r.URL.EscapedPath()
		}
		next.ServeHTTP(w, r)
	})
}

func addrOf(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}
