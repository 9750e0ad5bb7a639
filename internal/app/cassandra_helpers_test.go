//go:build cassandra || cassandra_outage

package app_test

// Helpers shared by the Cassandra integration tests (build tag cassandra),
// the outage test (build tag cassandra_outage) and the benchmark. They run
// tokengw as it runs in production: app.New on a configuration that names
// the cassandra driver, a real HTTP server (httptest) on the app's handler,
// real HTTP requests, a real Cassandra. Nothing is mocked.
//
// The Cassandra is the one named by TEST_CASSANDRA_ADDR (host:port;
// `make test` starts one and sets it). The tests fail, not skip, without
// it: the build tag says the caller asked for them. Every test migrates its
// own keyspace (tokengw_it_<random>) and drops it at the end.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/tokengw/tokengw/internal/app"
	"github.com/tokengw/tokengw/internal/clientauth"
	"github.com/tokengw/tokengw/internal/config"
	"github.com/tokengw/tokengw/internal/store/cassandra"
)

const envAddr = "TEST_CASSANDRA_ADDR"

// Clients of every test gateway. The secrets are hashed with cheap argon2id
// parameters so the tests spend their time on Cassandra, not on hashing.
const (
	demoSecret  = "demo-secret-0123456789"  // "demo": read write
	otherSecret = "other-secret-0123456789" // "other": read
	rsSecret    = "rs-secret-0123456789"    // "rs": read, may introspect
)

var cheapArgon2 = clientauth.Argon2Params{Memory: 1024, Time: 1, Threads: 1}

var (
	hashesOnce sync.Once
	hashesErr  error
	hashes     map[string]string
)

func testClients(t testing.TB) []config.Client {
	t.Helper()
	hashesOnce.Do(func() {
		hashes = map[string]string{}
		for _, s := range []string{demoSecret, otherSecret, rsSecret} {
			h, err := clientauth.HashSecret(s, cheapArgon2)
			if err != nil {
				hashesErr = err
				return
			}
			hashes[s] = h
		}
	})
	if hashesErr != nil {
		t.Fatal(hashesErr)
	}
	return []config.Client{
		{ID: "demo", SecretHash: hashes[demoSecret], Scopes: []string{"read", "write"}},
		{ID: "other", SecretHash: hashes[otherSecret], Scopes: []string{"read"}},
		{ID: "rs", SecretHash: hashes[rsSecret], Scopes: []string{"read"}, Introspect: true},
	}
}

// cassandraAddr returns TEST_CASSANDRA_ADDR after checking that
// something listens there.
func cassandraAddr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv(envAddr)
	if addr == "" {
		t.Fatalf("%s is not set: these tests need a real Cassandra (host:port): run `make test`, or "+
			"`bash scripts/cassandra.sh start` and export %s=127.0.0.1:9042", envAddr, envAddr)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		t.Fatalf("%s=%q: %v", envAddr, addr, err)
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("%s=%s is unreachable (bash scripts/cassandra.sh start): %v", envAddr, addr, err)
	}
	_ = c.Close()
	return addr
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newKeyspace migrates a fresh keyspace and drops it when the test ends.
// Cleanups run last-in first-out: register after this call whatever must
// happen before the drop (the outage test's restart of Cassandra).
func newKeyspace(tb testing.TB, addr string) string {
	tb.Helper()
	return newKeyspaceCleanup(tb, addr, tb.Cleanup)
}

// newKeyspaceCleanup is newKeyspace with the drop registered on cleanup
// (benchmarks register it on the parent benchmark).
func newKeyspaceCleanup(tb testing.TB, addr string, cleanup func(func())) string {
	tb.Helper()
	ks := "tokengw_it_" + randomHex(6)
	cfg := config.Cassandra{
		Hosts:          []string{addr},
		Keyspace:       ks,
		Consistency:    "LOCAL_QUORUM",
		Timeout:        30 * time.Second,
		ConnectTimeout: 10 * time.Second,
		NumConns:       1,
		Replication:    map[string]string{"class": "SimpleStrategy", "replication_factor": "1"},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t0 := time.Now()
	if err := cassandra.Migrate(ctx, cfg); err != nil {
		tb.Fatalf("migrate keyspace %s on %s: %v", ks, addr, err)
	}
	tb.Logf("keyspace %s migrated in %v", ks, time.Since(t0).Round(time.Millisecond))
	cleanup(func() {
		s, err := rawSession(addr)
		if err != nil {
			tb.Errorf("drop keyspace %s: %v", ks, err)
			return
		}
		defer s.Close()
		if err := s.Query("DROP KEYSPACE IF EXISTS " + ks).Exec(); err != nil {
			tb.Errorf("drop keyspace %s: %v", ks, err)
		}
	})
	return ks
}

// rawSession is a plain gocql session (no keyspace) for setting up and
// inspecting what the store does not expose.
func rawSession(addr string) (*gocql.Session, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	c := gocql.NewCluster(host)
	if c.Port, err = strconv.Atoi(port); err != nil {
		return nil, err
	}
	c.Consistency = gocql.One
	c.Timeout = 30 * time.Second
	c.ConnectTimeout = 10 * time.Second
	c.NumConns = 1
	return c.CreateSession()
}

// newSealKey returns a store.seal_keys entry: base64 of 32 random bytes.
func newSealKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// gatewayConfig is the configuration of one replica on keyspace ks; env
// adds or overrides TOKENGW_ variables. Replicas of one test share sealKey,
// as production replicas must.
func gatewayConfig(tb testing.TB, addr, ks, sealKey string, env ...string) *config.Config {
	tb.Helper()
	base := []string{
		"TOKENGW_STORE__DRIVER=cassandra",
		"TOKENGW_STORE__SEAL_KEYS=" + sealKey,
		"TOKENGW_STORE__CASSANDRA__HOSTS=" + addr,
		"TOKENGW_STORE__CASSANDRA__KEYSPACE=" + ks,
		"TOKENGW_SERVER__ADMIN_ADDR=", // never listened on: tests serve the handler only
		"TOKENGW_AUTH__ARGON2__MEMORY_KIB=1024",
		"TOKENGW_AUTH__ARGON2__TIME=1",
	}
	cfg, err := config.Load("", append(base, env...))
	if err != nil {
		tb.Fatalf("config: %v", err)
	}
	cfg.Clients = testClients(tb)
	return cfg
}

// replica is one running gateway: an App behind a real HTTP server.
type replica struct {
	app       *app.App
	srv       *httptest.Server
	closeOnce sync.Once
}

// startReplica builds an App on cfg (real clock: Cassandra's TTLs run on
// the server's clock) and serves its handler; it is closed at the end of
// the test unless closed before.
func startReplica(tb testing.TB, cfg *config.Config) *replica {
	tb.Helper()
	return startReplicaCleanup(tb, cfg, tb.Cleanup)
}

func startReplicaCleanup(tb testing.TB, cfg *config.Config, cleanup func(func())) *replica {
	tb.Helper()
	// Not a deadline context: app.New hands ctx to the reuse cache
	// (bigcache), whose clean-up goroutine lives as long as ctx does.
	a, err := app.New(context.Background(), cfg, app.Options{})
	if err != nil {
		tb.Fatalf("app.New: %v", err)
	}
	r := &replica{app: a, srv: httptest.NewServer(a.Server.Handler())}
	cleanup(r.close)
	return r
}

// close stops the HTTP server and closes the App (its Cassandra session).
func (r *replica) close() {
	r.closeOnce.Do(func() {
		r.srv.Close()
		_ = r.app.Close()
	})
}

func (r *replica) url(path string) string { return r.srv.URL + path }

// tokenCount counts the live rows of the tokens table through the driver.
func (r *replica) tokenCount(tb testing.TB) int {
	tb.Helper()
	c, ok := r.app.Backend.(interface {
		TokenCount(context.Context) (int, error)
	})
	if !ok {
		tb.Fatalf("backend %T has no TokenCount", r.app.Backend)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := c.TokenCount(ctx)
	if err != nil {
		tb.Fatalf("TokenCount: %v", err)
	}
	return n
}

// newHTTPClient is a client whose pool keeps up to idle connections per
// host (the default 2 would make concurrent tests dial on every request).
func newHTTPClient(tb testing.TB, idle int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = idle
	tr.MaxIdleConnsPerHost = idle
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	tb.Cleanup(tr.CloseIdleConnections)
	return hc
}

// basicAuth is client_secret_basic, form-encoded per RFC 6749 §2.3.1.
func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// tokenResp is a token endpoint response.
type tokenResp struct {
	Status      int
	Header      http.Header
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func (tr tokenResp) String() string {
	if tr.Status == http.StatusOK {
		return fmt.Sprintf("200 token …%s expires_in=%d scope=%q", tail(tr.AccessToken), tr.ExpiresIn, tr.Scope)
	}
	return fmt.Sprintf("%d %s (%s) Retry-After=%q", tr.Status, tr.Error, tr.Description, tr.Header.Get("Retry-After"))
}

// tail is the end of a token, enough to tell tokens apart in a log.
func tail(tok string) string {
	if len(tok) > 6 {
		return tok[len(tok)-6:]
	}
	return tok
}

// postForm sends an authenticated form POST and returns status, headers
// and body. It never calls t.Fatal, so goroutines may use it.
func postForm(ctx context.Context, hc *http.Client, target, auth string, form url.Values) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, body, nil
}

// requestToken asks r for a client_credentials token (scope "" = the
// client's registered scopes).
func requestToken(ctx context.Context, hc *http.Client, r *replica, id, secret, scope string) (tokenResp, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		form.Set("scope", scope)
	}
	status, h, body, err := postForm(ctx, hc, r.url("/oauth2/token"), basicAuth(id, secret), form)
	if err != nil {
		return tokenResp{}, err
	}
	tr := tokenResp{Status: status, Header: h}
	if err := json.Unmarshal(body, &tr); err != nil {
		return tokenResp{}, fmt.Errorf("token response %d is not JSON: %q", status, body)
	}
	return tr, nil
}

// mustToken is requestToken that fails the test on a transport error (any
// HTTP status is returned).
func mustToken(t testing.TB, hc *http.Client, r *replica, id, secret, scope string) tokenResp {
	t.Helper()
	tr, err := requestToken(context.Background(), hc, r, id, secret, scope)
	if err != nil {
		t.Fatalf("token request (%s, %q): %v", id, scope, err)
	}
	return tr
}

// mustMint is mustToken that requires a 200 with a token.
func mustMint(t testing.TB, hc *http.Client, r *replica, id, secret, scope string) tokenResp {
	t.Helper()
	tr := mustToken(t, hc, r, id, secret, scope)
	if tr.Status != http.StatusOK || tr.AccessToken == "" {
		t.Fatalf("token request (%s, %q): %v", id, scope, tr)
	}
	return tr
}

// introspect asks r about token as the introspecting client "rs".
func introspect(t testing.TB, hc *http.Client, r *replica, token string) map[string]any {
	t.Helper()
	status, _, body, err := postForm(context.Background(), hc, r.url("/oauth2/introspect"), basicAuth("rs", rsSecret),
		url.Values{"token": {token}})
	if err != nil {
		t.Fatalf("introspect: %v", err)
	}
	var m map[string]any
	if status != http.StatusOK || json.Unmarshal(body, &m) != nil {
		t.Fatalf("introspect: %d %q", status, body)
	}
	return m
}

// revoke revokes token at r as client id (RFC 7009) and requires a 200.
func revoke(t testing.TB, hc *http.Client, r *replica, id, secret, token string) {
	t.Helper()
	status, _, body, err := postForm(context.Background(), hc, r.url("/oauth2/revoke"), basicAuth(id, secret),
		url.Values{"token": {token}, "token_type_hint": {"access_token"}})
	if err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if status != http.StatusOK {
		t.Fatalf("revoke: %d %q", status, body)
	}
}

// get does a GET and returns status and headers.
func get(t testing.TB, hc *http.Client, target string) (int, http.Header) {
	t.Helper()
	resp, err := hc.Get(target)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header
}

// waitFor polls cond every interval until it reports true, and returns how
// long that took; after timeout it fails the test with cond's last
// description of what it saw.
func waitFor(t testing.TB, what string, timeout, interval time.Duration, cond func() (bool, string)) time.Duration {
	t.Helper()
	t0 := time.Now()
	deadline := t0.Add(timeout)
	for {
		ok, saw := cond()
		if ok {
			return time.Since(t0)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last saw: %s", what, timeout, saw)
		}
		time.Sleep(interval)
	}
}
