package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeYAML(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaults(t *testing.T) {
	c, err := Load("", []string{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Server.Addr != "127.0.0.1:8080" || !c.Reuse.Enabled || c.Reuse.MaxElapsedFraction != 0.5 ||
		c.Reuse.MinRemaining != time.Minute || c.Issuer.TokenTTL != time.Hour || c.Store.Driver != "bolt" ||
		c.Store.Cassandra.Replication["replication_factor"] != "1" {
		t.Fatalf("defaults = %+v", c)
	}
}

func TestYAMLAndEnv(t *testing.T) {
	p := writeYAML(t, `
server:
  addr: 0.0.0.0:9999
  trusted_proxies: [10.0.0.0/8]
reuse:
  enabled: true
  local_ttl: 3s
store:
  driver: memory
clients:
  - id: demo
    secret_hash: $argon2id$v=19$m=19456,t=2,p=1$yIzQs/ygdnZQU70BSqEspg$NpdsK9EyrNiNFlPBjqa1MCy+SyJWj+C8GvWP/69onF8
    scopes: [read, write]
    token_ttl: 30m
    limit: {rate: 0.5, burst: 2}
`)
	c, err := Load(p, []string{
		"TOKENGW_REUSE__ENABLED=false",
		"TOKENGW_LIMITS__PER_CLIENT__RATE=2.5",
		"TOKENGW_LIMITS__PER_CLIENT__BURST=5",
		"TOKENGW_STORE__SEAL_KEYS=" + strings.Repeat("A", 43) + "=," + strings.Repeat("B", 43) + "=",
		"TOKENGW_SERVER__TIMEOUTS__WRITE=7s",
		"OTHER_VAR=ignored",
	})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Server.Addr != "0.0.0.0:9999" || c.Reuse.Enabled || c.Reuse.LocalTTL != 3*time.Second {
		t.Fatalf("server/reuse = %+v %+v", c.Server, c.Reuse)
	}
	if c.Limits.PerClient.Rate != 2.5 || c.Limits.PerClient.Burst != 5 || c.Server.Timeouts.Write != 7*time.Second {
		t.Fatalf("env overrides not applied: %+v %+v", c.Limits, c.Server.Timeouts)
	}
	keys, err := c.Store.DecodedSealKeys()
	if err != nil || len(keys) != 2 {
		t.Fatalf("seal keys = %d, %v", len(keys), err)
	}
	if len(c.Clients) != 1 || c.Clients[0].Limit == nil || c.Clients[0].Limit.Rate != 0.5 || c.Clients[0].TokenTTL != 30*time.Minute {
		t.Fatalf("clients = %+v", c.Clients)
	}
	if got := c.Server.TrustedProxyPrefixes(); len(got) != 1 || got[0].String() != "10.0.0.0/8" {
		t.Fatalf("trusted proxies = %v", got)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name, yaml string
		env        []string
		key        string
	}{
		{"unknown top-level key", "servr: {}\n", nil, "servr"},
		{"unknown nested key", "server: {adr: x}\n", nil, "server.adr"},
		{"unknown env key", "", []string{"TOKENGW_REUSE__ENABLD=true"}, "reuse.enabld"},
		{"bad duration", "issuer: {token_ttl: soon}\n", nil, "token_ttl"},
		{"bad bool in env", "", []string{"TOKENGW_REUSE__ENABLED=maybe"}, "enabled"},
		{"fraction out of range", "reuse: {max_elapsed_fraction: 1.5}\n", nil, "reuse.max_elapsed_fraction"},
		{"ttl too short", "issuer: {token_ttl: 10ms}\n", nil, "issuer.token_ttl"},
		{"bad driver", "store: {driver: postgres}\n", nil, "store.driver"},
		{"cassandra without seal key", "store: {driver: cassandra}\n", nil, "store.seal_keys"},
		{"bad seal key", "store: {seal_keys: [abc]}\n", nil, "store.seal_keys[0]"},
		{"each_quorum on SimpleStrategy", "store: {driver: cassandra, cassandra: {consistency: each_quorum}}\n", nil, "store.cassandra.consistency"},
		{"negative rate", "limits: {per_client: {rate: -1}}\n", nil, "limits.per_client.rate"},
		{"rate without burst", "limits: {per_client: {rate: 1, burst: 0}}\n", nil, "limits.per_client.burst"},
		{"bad addr", "server: {addr: nope}\n", nil, "server.addr"},
		{"bad proxy", "server: {trusted_proxies: [nope]}\n", nil, "server.trusted_proxies[0]"},
		{"bad issuer", "issuer: {url: /relative}\n", nil, "issuer.url"},
		{"client without id", "clients: [{secret_hash: $x}]\n", nil, "clients[0].id"},
		{"duplicate client", "clients: [{id: a, secret_hash: $x}, {id: a, secret_hash: $x}]\n", nil, "clients[1].id"},
		{"client bad hash", "clients: [{id: a, secret_hash: plain}]\n", nil, "clients[0].secret_hash"},
		{"client bad scope", "clients: [{id: a, secret_hash: $x, scopes: [\"a\\\"b\"]}]\n", nil, "clients[0].scopes[0]"},
		{"client bad grant", "clients: [{id: a, secret_hash: $x, grant_types: [password]}]\n", nil, "clients[0].grant_types[0]"},
		{"unknown client key", "clients: [{id: a, secret_hash: $x, scope: [read]}]\n", nil, "scope"},
		{"bad log level", "log: {level: loud}\n", nil, "log.level"},
		{"short admin token", "server: {admin_token: short}\n", nil, "server.admin_token"},
		{"argon2 time 0", "auth: {argon2: {time: 0}}\n", nil, "auth.argon2.time"},
		{"argon2 threads 0", "auth: {argon2: {threads: 0}}\n", nil, "auth.argon2.threads"},
		{"argon2 memory below 8p", "auth: {argon2: {memory_kib: 15, threads: 2}}\n", nil, "auth.argon2.memory_kib"},
		{"argon2 memory too big", "", []string{"TOKENGW_AUTH__ARGON2__MEMORY_KIB=4000000"}, "auth.argon2.memory_kib"},
		{"argon2 work too big", "auth: {argon2: {memory_kib: 1048576, time: 5}}\n", nil, "auth.argon2.memory_kib"},
		{"negative cache entries", "auth: {cache_entries: -1}\n", nil, "auth.cache_entries"},
		{"negative cache max age", "auth: {cache_max_age: -1s}\n", nil, "auth.cache_max_age"},
		{"negative verify cap", "auth: {max_concurrent_verify: -2}\n", nil, "auth.max_concurrent_verify"},
		{"zero verify queue timeout", "auth: {verify_queue_timeout: 0s}\n", nil, "auth.verify_queue_timeout"},
		{"client refresh too long", "auth: {client_refresh: 1h}\n", nil, "auth.client_refresh"},
		{"negative client refresh", "", []string{"TOKENGW_AUTH__CLIENT_REFRESH=-1s"}, "auth.client_refresh"},
		{"zero client cache", "auth: {client_cache_entries: 0}\n", nil, "auth.client_cache_entries"},
		{"unknown auth key", "auth: {cache_size: 3}\n", nil, "auth.cache_size"},
		// One validator per rule (clients.Spec, limiter.Limit.Validate): the
		// admin API and the CLI refuse the same values.
		{"admin on all interfaces", "server: {admin_addr: \":9090\"}\n", nil, "server.admin_addr"},
		{"admin on a public address", "server: {admin_addr: \"192.0.2.1:9090\"}\n", nil, "server.admin_addr"},
		{"zero body timeout", "server: {timeouts: {body: 0s}}\n", nil, "server.timeouts.body"},
		{"negative shutdown delay", "server: {timeouts: {shutdown_delay: -1s}}\n", nil, "server.timeouts.shutdown_delay"},
		{"negative per-IP cap", "server: {max_in_flight_per_ip: -1}\n", nil, "server.max_in_flight_per_ip"},
		{"client id not ASCII", "clients: [{id: café, secret_hash: $x, scopes: [read]}]\n", nil, "clients[0].id"},
		{"client id padded", "clients: [{id: \" a\", secret_hash: $x, scopes: [read]}]\n", nil, "clients[0].id"},
		{"client without scopes", "clients: [{id: a, secret_hash: $x}]\n", nil, "clients[0].scopes"},
		{"client rate NaN", "clients: [{id: a, secret_hash: $x, scopes: [read], limit: {rate: .nan, burst: 1}}]\n", nil, "clients[0].limit.rate"},
		{"client rate Inf", "clients: [{id: a, secret_hash: $x, scopes: [read], limit: {rate: .inf, burst: 1}}]\n", nil, "clients[0].limit.rate"},
		{"client ttl too long", "clients: [{id: a, secret_hash: $x, scopes: [read], token_ttl: 1000h}]\n", nil, "clients[0].token_ttl"},
		{"rate NaN", "limits: {per_client: {rate: .nan, burst: 1}}\n", nil, "limits.per_client.rate"},
		{"failed-auth rate -Inf", "limits: {per_ip_failed_auth: {rate: -.inf, burst: 1}}\n", nil, "limits.per_ip_failed_auth.rate"},
		{"burst too big", "limits: {per_client: {rate: 1, burst: 2000000000}}\n", nil, "limits.per_client.burst"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := ""
			if tc.yaml != "" {
				p = writeYAML(t, tc.yaml)
			}
			env := tc.env
			if env == nil {
				env = []string{}
			}
			_, err := Load(p, env)
			if err == nil {
				t.Fatalf("Load succeeded, want an error naming %q", tc.key)
			}
			if !strings.Contains(err.Error(), tc.key) {
				t.Fatalf("error %q does not name %q", err, tc.key)
			}
		})
	}
}

func TestAuthDefaultsAndEnv(t *testing.T) {
	c, err := Load("", []string{})
	if err != nil {
		t.Fatal(err)
	}
	want := Auth{
		Argon2:       Argon2{MemoryKiB: 19456, Time: 2, Threads: 1},
		CacheEntries: 100000, VerifyQueueTimeout: time.Second,
		ClientRefresh: 5 * time.Second, ClientCacheEntries: 100000,
	}
	if c.Auth != want || c.Server.AdminToken != "" {
		t.Fatalf("auth defaults = %+v, want %+v", c.Auth, want)
	}
	c, err = Load("", []string{
		"TOKENGW_AUTH__ARGON2__MEMORY_KIB=1024", "TOKENGW_AUTH__ARGON2__TIME=1", "TOKENGW_AUTH__CACHE_ENTRIES=0",
		"TOKENGW_AUTH__CLIENT_REFRESH=0s", "TOKENGW_AUTH__MAX_CONCURRENT_VERIFY=3",
		"TOKENGW_SERVER__ADMIN_TOKEN=0123456789abcdef",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Auth.Argon2.MemoryKiB != 1024 || c.Auth.Argon2.Time != 1 || c.Auth.CacheEntries != 0 ||
		c.Auth.ClientRefresh != 0 || c.Auth.MaxConcurrentVerify != 3 || c.Server.AdminToken != "0123456789abcdef" {
		t.Fatalf("env overrides = %+v", c.Auth)
	}
}

func TestKeyErrorIsTyped(t *testing.T) {
	_, err := Load(writeYAML(t, "reuse: {cache_size_mb: 0}\n"), []string{})
	var ke *KeyError
	if !errors.As(err, &ke) || ke.Key != "reuse.cache_size_mb" {
		t.Fatalf("err = %v, want a *KeyError for reuse.cache_size_mb", err)
	}
}

func TestMissingFile(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "absent.yaml"), []string{}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist", err)
	}
}

// TestShippedConfigsLoad: the example and the container's config are valid.
func TestShippedConfigsLoad(t *testing.T) {
	for _, p := range []string{"../../config.example.yaml", "../../deploy/tokengw.yaml"} {
		c, err := Load(p, []string{})
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if p == "../../config.example.yaml" && (len(c.Clients) != 1 || c.Clients[0].ID != "demo") {
			t.Fatalf("%s: clients = %+v", p, c.Clients)
		}
	}
}
