// Package app wires tokengw together from a Config: the store, the sealer,
// the reuse layer, client authentication, the limiters and the HTTP server.
// cmd/tokengw and the integration tests build the same App.
package app

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tokengw/tokengw/internal/clientauth"
	"github.com/tokengw/tokengw/internal/clients"
	"github.com/tokengw/tokengw/internal/config"
	"github.com/tokengw/tokengw/internal/introspect"
	"github.com/tokengw/tokengw/internal/keyring"
	"github.com/tokengw/tokengw/internal/limiter"
	"github.com/tokengw/tokengw/internal/reuse"
	"github.com/tokengw/tokengw/internal/seal"
	"github.com/tokengw/tokengw/internal/server"
	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/bolt"
	"github.com/tokengw/tokengw/internal/store/instrument"
	"github.com/tokengw/tokengw/internal/upstream"
)

// Options are the parts tests replace.
type Options struct {
	Logger *slog.Logger
	// Now is the clock of every component. Default time.Now.
	Now func() time.Time
	// Store, when set, is used instead of opening the configured driver,
	// and stays the caller's: Close does not close it. Tests share one
	// store between two Apps to play two replicas.
	Store store.Store
}

// App is a wired gateway.
type App struct {
	Config *config.Config
	// Store is the instrumented store every component uses; Backend is the
	// driver underneath (for tests and tools that need driver methods).
	Store    store.Store
	Backend  store.Store
	Reuser   *reuse.Reuser
	Auth     *clientauth.Authenticator
	Registry *clients.Registry
	Consumer *limiter.Set[string]
	FailedIP *limiter.Set[netip.Addr]
	Server   *server.Server
	Metrics  *server.Metrics
	// Clients manages run-time clients (the admin API).
	Clients *clients.Manager
	// Introspect is the introspection cache (RFC 7662).
	Introspect *introspect.Cache
	// Keys is the JWT signing key ring (nil for opaque tokens).
	Keys *keyring.Ring
	// Upstream is upstream mode's gateway (nil unless upstream.token_url is set).
	Upstream *upstream.Gateway
	// Assertions verifies signed JWTs (private_key_jwt, jwt-bearer).
	Assertions *Assertions
	log        *slog.Logger

	ownStore  bool // opened by New, closed by Close
	closeOnce sync.Once
	closeErr  error
}

// New builds an App. On error everything opened so far is closed.
func New(ctx context.Context, cfg *config.Config, opts Options) (a *App, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	built := &App{Config: cfg, log: opts.Logger}
	a = built
	defer func() {
		if err != nil {
			// a is nil here (every error return sets it): close what was built.
			built.Close()
		}
	}()

	a.Metrics = server.NewMetrics()
	raw := opts.Store
	if raw == nil {
		if raw, err = OpenStore(ctx, cfg, opts.Now); err != nil {
			return nil, err
		}
		built.ownStore = true
	}
	a.Backend = raw
	a.Store = instrument.Wrap(raw, a.Metrics.StoreObserver(cfg.Store.Driver), nil)
	sealer, err := newSealer(cfg)
	if err != nil {
		return nil, err
	}
	mint, ring, err := minter(ctx, cfg, a.Store, opts.Now, opts.Logger)
	if err != nil {
		return nil, err
	}
	a.Keys = ring
	a.Reuser, err = reuse.New(reuse.Options{
		Enabled: cfg.Reuse.Enabled,
		Policy: reuse.Policy{
			MinRemaining:       cfg.Reuse.MinRemaining,
			MaxElapsedFraction: cfg.Reuse.MaxElapsedFraction,
		},
		CacheSizeMB:  cfg.Reuse.CacheSizeMB,
		LocalTTL:     cfg.Reuse.LocalTTL,
		StoreTimeout: cfg.Server.Timeouts.Store,
		Store:        a.Store,
		Minter:       mint,
		Sealer:       sealer,
		Now:          opts.Now,
	})
	if err != nil {
		return nil, err
	}
	a.Introspect, err = introspect.New(introspect.Options{
		Store: a.Store, LocalTTL: cfg.Reuse.LocalTTL, StoreTimeout: cfg.Server.Timeouts.Store, Now: opts.Now,
	})
	if err != nil {
		return nil, err
	}
	if a.Registry, err = NewRegistry(cfg, a.Store, opts.Now); err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.Server.Timeouts.Store*5)
	err = a.Registry.CheckOverlap(pctx)
	cancel()
	if err != nil {
		return nil, err
	}
	// Unknown ids are verified against a dummy hash with the parameters of
	// generated secrets, so they take as long as known ones.
	dummy, err := clientauth.HashSecret(rand.Text(), cfg.Auth.Argon2.Params())
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	a.Auth, err = clientauth.New(clientauth.Options{
		Lookup:              a.Registry,
		CacheEntries:        cfg.Auth.CacheEntries,
		CacheMaxAge:         cfg.Auth.CacheMaxAge,
		MaxConcurrentVerify: cfg.Auth.MaxConcurrentVerify,
		VerifyQueueTimeout:  cfg.Auth.VerifyQueueTimeout,
		DummyHash:           dummy,
		Now:                 opts.Now,
	})
	if err != nil {
		return nil, err
	}
	a.Clients, err = clients.NewManager(clients.ManagerOptions{
		AllowHTTPJWKSURI: cfg.Assertions.AllowHTTPJWKSURI,
		Registry:         a.Registry, Store: a.Store, Argon2: cfg.Auth.Argon2.Params(), Invalidate: a.Auth.Invalidate,
		OnRevokeTokens: func(id string) {
			a.Reuser.EvictClient(id)
			a.Introspect.ForgetClient(id)
		},
		Timeout: cfg.Server.Timeouts.Store, Logger: opts.Logger, Now: opts.Now,
	})
	if err != nil {
		return nil, err
	}
	if a.Assertions, err = newAssertions(cfg, a.Store, a.Registry, opts.Now); err != nil {
		return nil, err
	}
	if a.Consumer, err = limiter.New[string](limiter.Options{Now: opts.Now}); err != nil {
		return nil, err
	}
	if a.FailedIP, err = limiter.New[netip.Addr](limiter.Options{Now: opts.Now}); err != nil {
		return nil, err
	}
	var up server.UpstreamGateway // upstream mode's gateway (upstream.go); nil in local mode
	if cfg.Upstream.Enabled() {
		if a.Upstream, err = newUpstream(cfg, raw, a.Store, sealer, a.Consumer, a.FailedIP, opts.Logger, opts.Now); err != nil {
			return nil, err
		}
		up = a.Upstream
		if err := a.Metrics.Register(a.Upstream.Collectors()...); err != nil {
			return nil, fmt.Errorf("app: metrics: %w", err)
		}
	}
	a.Server, err = server.New(server.Options{
		Settings: server.SettingsFrom(cfg), Tokens: a.Reuser, Auth: a.Auth,
		ClientLimiter: a.Consumer, FailedAuth: a.FailedIP, Store: a.Store, Introspector: a.Introspect,
		Admin: a.Clients, Metrics: a.Metrics, Logger: opts.Logger, Now: opts.Now, Keys: keySet(ring),
		Upstream: up, Backup: backupHandler(a.Backend, opts.Logger),
		JWTAuth: a.Assertions.JWTAuth, Grant: a.Assertions.bearerGrant(),
	})
	if err != nil {
		return nil, err
	}
	if err := a.Metrics.Register(a.Assertions.collectors()...); err != nil {
		return nil, fmt.Errorf("app: metrics: %w", err)
	}
	if err := a.registerMetrics(); err != nil {
		return nil, fmt.Errorf("app: metrics: %w", err)
	}
	return a, nil
}

// backupHandler serves the embedded store's online backup on the admin API
// (tokengw store backup, when a server holds the file); nil for the other
// drivers.
func backupHandler(st store.Store, log *slog.Logger) http.Handler {
	b, ok := st.(*bolt.Store)
	if !ok {
		return nil
	}
	return bolt.BackupHandler(b, func(r *http.Request, err error) {
		log.Error("admin API: store backup failed", "remote", r.RemoteAddr, "err", err)
	})
}

// NewRegistry builds the client registry: the configured clients, then the
// store's, cached for auth.client_refresh.
func NewRegistry(cfg *config.Config, st store.Clients, now func() time.Time) (*clients.Registry, error) {
	static := make([]store.Client, 0, len(cfg.Clients))
	for i, c := range cfg.Clients {
		spec, err := c.Spec(cfg.Assertions.AllowHTTPJWKSURI)
		if err != nil {
			return nil, fmt.Errorf("config: clients[%d].jwks: %w", i, err)
		}
		sc, err := spec.Client()
		if err != nil { // config.Load refuses these; a Config built in code may not
			return nil, fmt.Errorf("config: clients[%d]: %w", i, err)
		}
		static = append(static, sc)
	}
	return clients.NewRegistry(static, st, clients.RegistryOptions{
		Refresh: cfg.Auth.ClientRefresh, MaxEntries: cfg.Auth.ClientCacheEntries, Timeout: cfg.Server.Timeouts.Store, Now: now,
	})
}

// newSealer builds the sealer from store.seal_keys; the embedded store
// without keys keeps a generated one beside its file.
func newSealer(cfg *config.Config) (*seal.Sealer, error) {
	keys, err := cfg.Store.DecodedSealKeys()
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		switch cfg.Store.Driver {
		case "bolt":
			k, err := seal.LoadOrCreateKeyFile(filepath.Join(filepath.Dir(cfg.Store.Bolt.Path), "seal.key"))
			if err != nil {
				return nil, fmt.Errorf("app: %w", err)
			}
			keys = [][]byte{k}
		case "memory":
			k, err := seal.NewKey()
			if err != nil {
				return nil, err
			}
			raw, _ := config.Store{SealKeys: []string{k}}.DecodedSealKeys()
			keys = raw
		default:
			return nil, errors.New("config: store.seal_keys: required for the " + cfg.Store.Driver + " store")
		}
	}
	return seal.New(keys)
}

// Serve listens on the configured addresses and serves until ctx is done,
// then drains. It returns nil after a clean shutdown.
func (a *App) Serve(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.Config.Server.Addr)
	if err != nil {
		return fmt.Errorf("app: listen %s: %w", a.Config.Server.Addr, err)
	}
	var adminLn net.Listener
	if a.Config.Server.AdminAddr != "" {
		if adminLn, err = net.Listen("tcp", a.Config.Server.AdminAddr); err != nil {
			ln.Close()
			return fmt.Errorf("app: listen %s: %w", a.Config.Server.AdminAddr, err)
		}
	}
	if a.Keys != nil {
		go a.Keys.Run(ctx) // ends with ctx
	}
	return a.Server.Serve(ctx, ln, adminLn)
}

// Close releases the reuse cache and closes the store (flushing it). It is
// idempotent.
func (a *App) Close() error {
	a.closeOnce.Do(func() {
		var errs []error
		if a.Reuser != nil {
			errs = append(errs, a.Reuser.Close())
		}
		if a.Store != nil && a.ownStore {
			errs = append(errs, a.Store.Close())
		}
		a.closeErr = errors.Join(errs...)
	})
	return a.closeErr
}

// NewLogger builds the process logger from log.level and log.format.
func NewLogger(c config.Log, w *os.File) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	o := &slog.HandlerOptions{Level: lvl}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, o))
	}
	return slog.New(slog.NewJSONHandler(w, o))
}
