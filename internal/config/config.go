// Package config loads tokengw's configuration: a YAML file, then
// environment overrides, into one typed, validated Config.
//
// Every key can be overridden by an environment variable named TOKENGW_ plus
// the key's path in upper case with "__" between levels, for example
// TOKENGW_REUSE__ENABLED=false or TOKENGW_STORE__DRIVER=cassandra. List values
// given in the environment are comma-separated (TOKENGW_STORE__SEAL_KEYS=k1,k2).
// An unknown key or a bad value stops start-up with an error that names the key.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"

	"github.com/tokengw/tokengw/internal/clients"
	"github.com/tokengw/tokengw/internal/limiter"
	"github.com/tokengw/tokengw/internal/store"
)

// EnvPrefix starts every environment override.
const EnvPrefix = "TOKENGW_"

// Config is the whole configuration.
type Config struct {
	Server  Server   `koanf:"server"`
	Issuer  Issuer   `koanf:"issuer"`
	Reuse   Reuse    `koanf:"reuse"`
	Limits  Limits   `koanf:"limits"`
	Auth    Auth     `koanf:"auth"`
	Store   Store    `koanf:"store"`
	Clients []Client `koanf:"clients"`
	Log     Log      `koanf:"log"`

	Upstream Upstream `koanf:"upstream"` // upstream mode (upstream.go)

	Assertions     Assertions      `koanf:"assertions"`      // signed-JWT assertions (assertions.go)
	TrustedIssuers []TrustedIssuer `koanf:"trusted_issuers"` // the jwt-bearer grant's issuers
}

// Server is the HTTP side.
type Server struct {
	Addr           string   `koanf:"addr"`            // public listener, host:port
	AdminAddr      string   `koanf:"admin_addr"`      // admin listener (metrics, pprof, admin API); "" = off
	AdminToken     string   `koanf:"admin_token"`     // bearer token for /admin; "" = admin API off
	TrustedProxies []string `koanf:"trusted_proxies"` // CIDRs whose X-Forwarded-For is believed
	Timeouts       Timeouts `koanf:"timeouts"`
	MaxBodyBytes   int64    `koanf:"max_body_bytes"`   // request body cap, bytes
	MaxHeaderBytes int      `koanf:"max_header_bytes"` // request header cap, bytes
	MaxInFlight    int      `koanf:"max_in_flight"`    // concurrent requests before shedding with 503; 0 = unbounded
	// MaxInFlightPerIP bounds the requests one caller address (the one the
	// failed-auth limiter uses) holds at once; beyond it 429. 0 = unbounded.
	MaxInFlightPerIP int `koanf:"max_in_flight_per_ip"`
	// AdminPublic allows admin_addr on a non-loopback address (it serves
	// pprof and metrics); start-up then logs a warning.
	AdminPublic bool   `koanf:"admin_public"`
	TLSCertFile string `koanf:"tls_cert_file"`
	TLSKeyFile  string `koanf:"tls_key_file"`
}

// Timeouts bound every phase of a request and of shutdown.
type Timeouts struct {
	ReadHeader time.Duration `koanf:"read_header"`
	Read       time.Duration `koanf:"read"`
	Write      time.Duration `koanf:"write"`
	Idle       time.Duration `koanf:"idle"`
	Shutdown   time.Duration `koanf:"shutdown"` // drain bound on SIGTERM
	// Body bounds reading a request body (token, revocation and
	// introspection bodies are a few hundred bytes); a body that does not
	// arrive in time gets 408 and the connection is closed.
	Body time.Duration `koanf:"body"`
	// ShutdownDelay is how long /readyz answers 503 after SIGTERM while
	// requests are still served, so load balancers stop sending first.
	ShutdownDelay time.Duration `koanf:"shutdown_delay"`
	Store         time.Duration `koanf:"store"` // per store operation on the request path
}

// Reuse is dynamic-TTL reuse of live client_credentials tokens.
type Reuse struct {
	Enabled            bool          `koanf:"enabled"`
	MinRemaining       time.Duration `koanf:"min_remaining"`        // never hand out a token with less left
	MaxElapsedFraction float64       `koanf:"max_elapsed_fraction"` // reuse while elapsed < fraction × lifetime
	CacheSizeMB        int           `koanf:"cache_size_mb"`        // L1 cache size, MiB
	LocalTTL           time.Duration `koanf:"local_ttl"`            // L1 entries older than this are re-checked
}

// Rate is a token bucket: Rate per second (fractional allowed, 0 = unlimited)
// and Burst.
type Rate struct {
	Rate  float64 `koanf:"rate"`
	Burst int     `koanf:"burst"`
}

// Limits are the rate limits.
type Limits struct {
	PerClient       Rate `koanf:"per_client"`
	PerIPFailedAuth Rate `koanf:"per_ip_failed_auth"`
}

// Client is a client defined in the configuration (read-only at run time).
type Client struct {
	ID         string        `koanf:"id"`
	SecretHash string        `koanf:"secret_hash"` // PHC string: argon2id, bcrypt or pbkdf2-sha256
	Scopes     []string      `koanf:"scopes"`
	GrantTypes []string      `koanf:"grant_types"` // default [client_credentials]
	TokenTTL   time.Duration `koanf:"token_ttl"`   // 0 = issuer.token_ttl
	Limit      *Rate         `koanf:"limit"`       // nil = limits.per_client
	Introspect bool          `koanf:"introspect"`
	Resources  []string      `koanf:"resources"` // RFC 8707 resource indicators the client may ask for

	TokenEndpointAuthMethod string `koanf:"token_endpoint_auth_method"` // "" (a secret) | private_key_jwt
	JWKS                    any    `koanf:"jwks"`                       // private_key_jwt: inline JWK Set (mapping or JSON string)
	JWKSURI                 string `koanf:"jwks_uri"`                   // private_key_jwt: or where to fetch it
}

// Log is logging.
type Log struct {
	Level  string `koanf:"level"`  // debug | info | warn | error
	Format string `koanf:"format"` // json | text
}

// Defaults are the values of keys nobody set.
func Defaults() map[string]any {
	m := map[string]any{
		"server.addr":                     "127.0.0.1:8080",
		"server.admin_addr":               "127.0.0.1:9090",
		"server.admin_token":              "",
		"server.trusted_proxies":          []string{},
		"server.timeouts.read_header":     "5s",
		"server.timeouts.read":            "10s",
		"server.timeouts.write":           "10s",
		"server.timeouts.idle":            "120s",
		"server.timeouts.shutdown":        "15s",
		"server.timeouts.store":           "2s",
		"server.timeouts.body":            "2s",
		"server.timeouts.shutdown_delay":  "5s",
		"server.max_in_flight_per_ip":     256,
		"server.admin_public":             false,
		"server.max_body_bytes":           8192,
		"server.max_header_bytes":         16384,
		"server.max_in_flight":            4096,
		"issuer.url":                      "http://127.0.0.1:8080",
		"issuer.token_ttl":                "1h",
		"issuer.token_format":             "opaque",
		"issuer.audience":                 "",
		"issuer.jwks_max_age":             "300s",
		"issuer.signing.alg":              "ES256",
		"issuer.signing.rotation_period":  "0s",
		"reuse.enabled":                   true,
		"reuse.min_remaining":             "60s",
		"reuse.max_elapsed_fraction":      0.5,
		"reuse.cache_size_mb":             64,
		"reuse.local_ttl":                 "5s",
		"limits.per_client.rate":          0,
		"limits.per_client.burst":         0,
		"limits.per_ip_failed_auth.rate":  0.2,
		"limits.per_ip_failed_auth.burst": 10,
		"auth.argon2.memory_kib":          19456,
		"auth.argon2.time":                2,
		"auth.argon2.threads":             1,
		"auth.cache_entries":              100000,
		"auth.cache_max_age":              "0s",
		"auth.max_concurrent_verify":      0,
		"auth.verify_queue_timeout":       "1s",
		"auth.client_refresh":             "5s",
		"auth.client_cache_entries":       100000,
		"store.driver":                    "bolt",
		"store.seal_keys":                 []string{},
		"store.bolt.path":                 "data/tokengw.db",
		"store.cassandra.hosts":           []string{"127.0.0.1:9042"},
		"store.cassandra.keyspace":        "tokengw",
		"store.cassandra.consistency":     "LOCAL_QUORUM",
		"store.cassandra.timeout":         "1s",
		"store.cassandra.connect_timeout": "5s",
		"store.cassandra.num_conns":       2,
		"store.cassandra.username":        "",
		"store.cassandra.password":        "",
		"store.cassandra.replication":     map[string]any{"class": "SimpleStrategy", "replication_factor": "1"},
		"log.level":                       "info",
		"log.format":                      "json",
	}
	assertionDefaults(m)
	return m
}

// Load reads the YAML file at path ("" for none), applies the environment
// (environ as os.Environ returns it; nil means os.Environ()), and validates.
func Load(path string, environ []string) (*Config, error) {
	k := koanf.New(".")
	if err := k.Load(confmap.Provider(Defaults(), "."), nil); err != nil {
		return nil, fmt.Errorf("config: defaults: %w", err)
	}
	if err := k.Load(confmap.Provider(upstreamDefaults(), "."), nil); err != nil {
		return nil, fmt.Errorf("config: defaults: %w", err)
	}
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
			return nil, fmt.Errorf("config: %s: %w", path, err)
		}
	}
	if environ == nil {
		environ = os.Environ()
	}
	envp := env.Provider(".", env.Opt{
		Prefix:        EnvPrefix,
		EnvironFunc:   func() []string { return environ },
		TransformFunc: envKey,
	})
	if err := k.Load(envp, nil); err != nil {
		return nil, fmt.Errorf("config: environment: %w", err)
	}

	var c Config
	var md mapstructure.Metadata
	err := k.UnmarshalWithConf("", &c, koanf.UnmarshalConf{
		Tag: "koanf",
		DecoderConfig: &mapstructure.DecoderConfig{
			DecodeHook: mapstructure.ComposeDecodeHookFunc(
				mapstructure.StringToTimeDurationHookFunc(),
				stringToSlice,
			),
			WeaklyTypedInput: true,
			Metadata:         &md,
			TagName:          "koanf",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(md.Unused) > 0 {
		slices.Sort(md.Unused)
		return nil, fmt.Errorf("config: unknown key %s", strings.Join(md.Unused, ", "))
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// envKey maps TOKENGW_REUSE__MIN_REMAINING to reuse.min_remaining.
func envKey(k, v string) (string, any) {
	k = strings.TrimPrefix(k, EnvPrefix)
	if k == "" {
		return "", nil
	}
	return strings.ReplaceAll(strings.ToLower(k), "__", "."), v
}

// stringToSlice splits comma-separated environment values for list keys.
func stringToSlice(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to.Kind() != reflect.Slice {
		return data, nil
	}
	s := strings.TrimSpace(data.(string))
	if s == "" {
		return []string{}, nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts, nil
}

// KeyError is a validation failure of one key.
type KeyError struct {
	Key string
	Msg string
}

func (e *KeyError) Error() string { return "config: " + e.Key + ": " + e.Msg }

func bad(key, format string, a ...any) error {
	return &KeyError{Key: key, Msg: fmt.Sprintf(format, a...)}
}

// Validate checks every value and returns every problem found, joined, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	s := c.Server
	add(hostPort("server.addr", s.Addr, false))
	add(hostPort("server.admin_addr", s.AdminAddr, true))
	for i, p := range s.TrustedProxies {
		if _, err := parsePrefix(p); err != nil {
			add(bad(fmt.Sprintf("server.trusted_proxies[%d]", i), "%q is not a CIDR or IP address", p))
		}
	}
	for name, d := range map[string]time.Duration{
		"read_header": s.Timeouts.ReadHeader, "read": s.Timeouts.Read, "write": s.Timeouts.Write,
		"idle": s.Timeouts.Idle, "shutdown": s.Timeouts.Shutdown, "store": s.Timeouts.Store, "body": s.Timeouts.Body,
	} {
		if d <= 0 {
			add(bad("server.timeouts."+name, "must be a positive duration, got %v", d))
		}
	}
	if s.MaxBodyBytes < 256 || s.MaxBodyBytes > 1<<20 {
		add(bad("server.max_body_bytes", "must be between 256 and 1048576, got %d", s.MaxBodyBytes))
	}
	if s.MaxHeaderBytes < 1024 || s.MaxHeaderBytes > 1<<20 {
		add(bad("server.max_header_bytes", "must be between 1024 and 1048576, got %d", s.MaxHeaderBytes))
	}
	if s.MaxInFlight < 0 {
		add(bad("server.max_in_flight", "must be >= 0, got %d", s.MaxInFlight))
	}
	if s.MaxInFlightPerIP < 0 {
		add(bad("server.max_in_flight_per_ip", "must be >= 0 (0 = unbounded), got %d", s.MaxInFlightPerIP))
	}
	if s.Timeouts.ShutdownDelay < 0 {
		add(bad("server.timeouts.shutdown_delay", "must be >= 0, got %v", s.Timeouts.ShutdownDelay))
	}
	if s.AdminAddr != "" && !s.AdminPublic && !loopbackHost(s.AdminAddr) {
		add(bad("server.admin_addr", "%q is not a loopback address, and the admin listener serves pprof, metrics and the admin API; bind it to 127.0.0.1, or set server.admin_public: true to accept that", s.AdminAddr))
	}
	if s.AdminToken != "" && len(s.AdminToken) < MinAdminTokenLen {
		add(bad("server.admin_token", "must be at least %d characters (generate one with: head -c32 /dev/urandom | base64), got %d", MinAdminTokenLen, len(s.AdminToken)))
	}
	if (s.TLSCertFile == "") != (s.TLSKeyFile == "") {
		add(bad("server.tls_cert_file", "tls_cert_file and tls_key_file go together"))
	}

	if u, err := url.Parse(c.Issuer.URL); err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.RawQuery != "" || u.Fragment != "" {
		add(bad("issuer.url", "must be an absolute http(s) URL without query or fragment, got %q", c.Issuer.URL))
	}
	if err := clients.CheckTokenTTL(c.Issuer.TokenTTL); err != nil {
		add(specErrors("issuer", err))
	}
	add(c.Issuer.validate())

	r := c.Reuse
	if !(r.MaxElapsedFraction > 0 && r.MaxElapsedFraction <= 1) {
		add(bad("reuse.max_elapsed_fraction", "must be in (0, 1], got %v", r.MaxElapsedFraction))
	}
	if r.MinRemaining < 0 {
		add(bad("reuse.min_remaining", "must be >= 0, got %v", r.MinRemaining))
	}
	if r.CacheSizeMB < 1 || r.CacheSizeMB > 1<<16 {
		add(bad("reuse.cache_size_mb", "must be between 1 and 65536, got %d", r.CacheSizeMB))
	}
	if r.LocalTTL < 0 {
		add(bad("reuse.local_ttl", "must be >= 0, got %v", r.LocalTTL))
	}

	add(rate("limits.per_client", c.Limits.PerClient))
	add(rate("limits.per_ip_failed_auth", c.Limits.PerIPFailedAuth))

	add(c.Auth.validate())
	add(c.Upstream.validate())

	add(c.Store.validate())

	seen := map[string]bool{}
	for i, cl := range c.Clients {
		key := fmt.Sprintf("clients[%d]", i)
		if seen[cl.ID] {
			add(bad(key+".id", "duplicate client id %q", cl.ID))
		}
		seen[cl.ID] = true
		if cl.TokenEndpointAuthMethod != MethodPrivateKeyJWT && cl.SecretHash == "" {
			add(bad(key+".secret_hash", "must be a PHC hash (tokengw hash-secret makes one)"))
		}
		spec, err := cl.Spec(c.Assertions.AllowHTTPJWKSURI)
		if err != nil {
			add(bad(key+".jwks", "not a JWK Set: %v", err))
		} else if _, err := spec.Client(); err != nil {
			// One KeyError per problem, not one joined error.
			if j, ok := specErrors(key, err).(interface{ Unwrap() []error }); ok {
				errs = append(errs, j.Unwrap()...)
			}
		}
	}

	add(c.validateAssertions())

	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add(bad("log.level", "must be debug, info, warn or error, got %q", c.Log.Level))
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		add(bad("log.format", "must be json or text, got %q", c.Log.Format))
	}
	return errors.Join(errs...)
}

// MinAdminTokenLen is the shortest server.admin_token accepted.
const MinAdminTokenLen = 16

// loopbackHost reports whether a host:port names a loopback address
// ("localhost" included; an empty host means every interface).
func loopbackHost(hp string) bool {
	host, _, err := net.SplitHostPort(hp)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

func hostPort(key, v string, emptyOK bool) error {
	if v == "" {
		if emptyOK {
			return nil
		}
		return bad(key, "must not be empty")
	}
	if _, _, err := net.SplitHostPort(v); err != nil {
		return bad(key, "must be host:port, got %q", v)
	}
	return nil
}

func rate(key string, r Rate) error {
	var fe *limiter.FieldError
	if err := r.Limit().Validate(); errors.As(err, &fe) {
		return bad(key+"."+fe.Field, "%s", fe.Msg)
	}
	return nil
}

// specErrors turns the *clients.SpecError values joined in err into
// KeyErrors below prefix (clients[3].scopes[0], issuer.token_ttl).
func specErrors(prefix string, err error) error {
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	var out []error
	for _, e := range list {
		var se *clients.SpecError
		if errors.As(e, &se) {
			out = append(out, bad(prefix+"."+se.Field, "%s", se.Msg))
		} else {
			out = append(out, bad(prefix, "%v", e))
		}
	}
	return errors.Join(out...)
}

// Limit is r as the limiter takes it.
func (r Rate) Limit() limiter.Limit { return limiter.Limit{Rate: r.Rate, Burst: r.Burst} }

// Spec is the client as the client domain validates it; allowHTTPJWKSURI
// is assertions.allow_http_jwks_uri. The error is a jwks value that does
// not render as JSON.
func (c Client) Spec(allowHTTPJWKSURI bool) (clients.Spec, error) {
	jwks, err := JWKSJSON(c.JWKS)
	if err != nil {
		return clients.Spec{}, err
	}
	s := clients.Spec{
		ID: c.ID, SecretHash: c.SecretHash, Scopes: c.Scopes, GrantTypes: c.GrantTypes,
		TokenTTL: c.TokenTTL, Introspect: c.Introspect,
		AuthMethod: c.TokenEndpointAuthMethod, JWKS: jwks, JWKSURI: c.JWKSURI, Resources: c.Resources,
		AllowHTTPJWKSURI: allowHTTPJWKSURI,
	}
	if c.Limit != nil {
		s.Limit = &store.Limit{Rate: c.Limit.Rate, Burst: c.Limit.Burst}
	}
	return s, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// TrustedProxyPrefixes returns server.trusted_proxies parsed (validated by Load).
func (s Server) TrustedProxyPrefixes() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(s.TrustedProxies))
	for _, p := range s.TrustedProxies {
		if pf, err := parsePrefix(p); err == nil {
			out = append(out, pf.Masked())
		}
	}
	return out
}
