//go:build cassandra

package server_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/tokengw/tokengw/internal/store/cassandra"
)

// TestAdminTwoReplicasCassandra: two gateways (two app.App, each with its
// own session) on one Cassandra keyspace. A client added, rotated and
// removed through replica A's admin API holds on A at once and on B once
// auth.client_refresh has passed. The gateways' clock is injected (the
// registry's bound is judged by it); Cassandra's TTLs run on real time,
// which the few seconds the test advances do not disturb.
//
// It needs TEST_CASSANDRA_ADDR (host:port; `make test` sets it) and
// fails without it: with the cassandra build tag the caller asked for it.
func TestAdminTwoReplicasCassandra(t *testing.T) {
	addr := os.Getenv("TEST_CASSANDRA_ADDR")
	if addr == "" {
		t.Fatal("TEST_CASSANDRA_ADDR is not set: this test needs a real Cassandra (host:port); " +
			"`make test`, or `bash scripts/cassandra.sh start` and export TEST_CASSANDRA_ADDR=127.0.0.1:9042")
	}
	b := make([]byte, 6)
	rand.Read(b)
	ks := "tokengw_test_admin_" + hex.EncodeToString(b)
	seal := make([]byte, 32)
	rand.Read(seal)

	cfg := testConfig(t, adminEnv(
		"TOKENGW_STORE__DRIVER=cassandra",
		"TOKENGW_STORE__CASSANDRA__HOSTS="+addr,
		"TOKENGW_STORE__CASSANDRA__KEYSPACE="+ks,
		"TOKENGW_STORE__CASSANDRA__TIMEOUT=10s",
		"TOKENGW_STORE__CASSANDRA__NUM_CONNS=1",
		"TOKENGW_STORE__SEAL_KEYS="+base64.StdEncoding.EncodeToString(seal),
		"TOKENGW_SERVER__TIMEOUTS__STORE=10s",
	)...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cassandra.Migrate(ctx, cfg.Store.Cassandra); err != nil {
		t.Fatalf("migrate %s on %s (is Cassandra running? bash scripts/cassandra.sh start): %v", ks, addr, err)
	}
	t.Cleanup(func() { dropKeyspace(t, addr, ks) })

	clk := &clock{t: time.Now()}
	a := startAdmin(t, cfg, clk, nil)
	repB := startAdmin(t, cfg, clk, nil)
	bound := cfg.Auth.ClientRefresh
	if bound != 5*time.Second {
		t.Fatalf("auth.client_refresh = %v, want the default 5s", bound)
	}

	// B has looked the id up and cached "unknown".
	if code, _ := repB.token(t, "svc", "nothing-yet"); code != 401 {
		t.Fatalf("B before create: %d", code)
	}
	_, s1 := a.create(t, `{"id": "svc", "scopes": ["read"]}`)
	if code, _ := a.token(t, "svc", s1); code != 200 {
		t.Fatalf("A right after create: %d", code)
	}
	if code, _ := repB.token(t, "svc", s1); code != 401 {
		t.Fatalf("B within the bound: %d (its cached unknown answer should hold)", code)
	}
	clk.Advance(bound)
	code, tb := repB.token(t, "svc", s1)
	if code != 200 {
		t.Fatalf("B after the bound: %d %+v", code, tb)
	}
	// The replicas share the reuse row: A hands out B's token.
	if _, ta := a.token(t, "svc", s1); ta.AccessToken != tb.AccessToken {
		t.Fatal("A and B hold different tokens for one reuse slot")
	}

	rot := a.do(t, "POST", "/admin/clients/svc/secret", adminToken, "")
	s2 := rot.str("secret")
	if rot.status != 200 || s2 == "" {
		t.Fatalf("rotate: %d %s", rot.status, rot.raw)
	}
	if code, _ := a.token(t, "svc", s1); code != 401 {
		t.Fatalf("A, old secret right after rotation: %d", code)
	}
	code, t2 := a.token(t, "svc", s2)
	if code != 200 || t2.AccessToken == tb.AccessToken {
		t.Fatalf("A, new secret: %d, old token reused %v", code, t2.AccessToken == tb.AccessToken)
	}
	if code, _ := repB.token(t, "svc", s1); code != 200 {
		t.Fatalf("B, old secret within the bound: %d", code)
	}
	clk.Advance(bound)
	if code, _ := repB.token(t, "svc", s1); code != 401 {
		t.Fatalf("B, old secret after the bound: %d", code)
	}
	if code, _ := repB.token(t, "svc", s2); code != 200 {
		t.Fatalf("B, new secret after the bound: %d", code)
	}

	if r := a.do(t, "DELETE", "/admin/clients/svc", adminToken, ""); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.raw)
	}
	if code, _ := a.token(t, "svc", s2); code != 401 {
		t.Fatalf("A after delete: %d", code)
	}
	clk.Advance(bound)
	if code, _ := repB.token(t, "svc", s2); code != 401 {
		t.Fatalf("B after delete and the bound: %d", code)
	}
}

// TestAdminPrivateKeyJWTCassandra: a private_key_jwt client registered
// through replica A's admin API on Cassandra authenticates with its key on
// both replicas; after A replaces its jwks, A refuses the old key at once
// and B once auth.client_refresh has passed, and both accept the new one.
func TestAdminPrivateKeyJWTCassandra(t *testing.T) {
	addr := os.Getenv("TEST_CASSANDRA_ADDR")
	if addr == "" {
		t.Fatal("TEST_CASSANDRA_ADDR is not set: this test needs a real Cassandra (host:port); " +
			"`make test`, or `bash scripts/cassandra.sh start` and export TEST_CASSANDRA_ADDR=127.0.0.1:9042")
	}
	b := make([]byte, 6)
	rand.Read(b)
	ks := "tokengw_test_adminjwt_" + hex.EncodeToString(b)
	seal := make([]byte, 32)
	rand.Read(seal)
	cfg := testConfig(t, adminEnv(
		"TOKENGW_STORE__DRIVER=cassandra",
		"TOKENGW_STORE__CASSANDRA__HOSTS="+addr,
		"TOKENGW_STORE__CASSANDRA__KEYSPACE="+ks,
		"TOKENGW_STORE__CASSANDRA__TIMEOUT=10s",
		"TOKENGW_STORE__CASSANDRA__NUM_CONNS=1",
		"TOKENGW_STORE__SEAL_KEYS="+base64.StdEncoding.EncodeToString(seal),
		"TOKENGW_SERVER__TIMEOUTS__STORE=10s",
		noFailedAuthLimit,
	)...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cassandra.Migrate(ctx, cfg.Store.Cassandra); err != nil {
		t.Fatalf("migrate %s on %s (is Cassandra running? bash scripts/cassandra.sh start): %v", ks, addr, err)
	}
	t.Cleanup(func() { dropKeyspace(t, addr, ks) })
	clk := &clock{t: time.Now()}
	a := startAdmin(t, cfg, clk, nil)
	repB := startAdmin(t, cfg, clk, nil)
	iss, bound := cfg.Issuer.URL, cfg.Auth.ClientRefresh
	k1, k2 := newECKey(t, "k1"), newECKey(t, "k2")

	r := a.do(t, "POST", "/admin/clients", adminToken, `{"id": "pkj", "scopes": ["read"], "token_endpoint_auth_method": "private_key_jwt", "jwks": `+jwksOf(t, k1)+`, "resources": ["`+apiA+`"]}`)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	if got := repB.do(t, "GET", "/admin/clients/pkj", adminToken, ""); got.str("client", "token_endpoint_auth_method") != "private_key_jwt" ||
		!strings.Contains(got.raw, `"kid":"k1"`) || !strings.Contains(got.raw, apiA) {
		t.Fatalf("B reads the client from Cassandra as %s", got.raw)
	}
	for name, g := range map[string]*adminGW{"A": a, "B": repB} {
		if got := g.assertionToken(t, k1, "pkj", iss, "resource", apiA); got.status != 200 {
			t.Fatalf("%s, k1: %d %s", name, got.status, got.raw)
		}
	}
	if r := a.do(t, "PATCH", "/admin/clients/pkj", adminToken, `{"jwks": `+jwksOf(t, k2)+`}`); r.status != 200 {
		t.Fatalf("patch: %d %s", r.status, r.raw)
	}
	if got := a.assertionToken(t, k1, "pkj", iss); got.status != 401 || got.tok.Error != "invalid_client" {
		t.Fatalf("A, old key right after the patch: %d %s", got.status, got.raw)
	}
	if got := repB.assertionToken(t, k1, "pkj", iss); got.status != 200 {
		t.Fatalf("B, old key within the bound: %d %s", got.status, got.raw)
	}
	clk.Advance(bound)
	if got := repB.assertionToken(t, k1, "pkj", iss); got.status != 401 || got.tok.Error != "invalid_client" {
		t.Fatalf("B, old key after the bound: %d %s", got.status, got.raw)
	}
	for name, g := range map[string]*adminGW{"A": a, "B": repB} {
		if got := g.assertionToken(t, k2, "pkj", iss); got.status != 200 {
			t.Fatalf("%s, new key: %d %s", name, got.status, got.raw)
		}
	}
}

func dropKeyspace(t *testing.T, addr, ks string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Errorf("drop %s: %v", ks, err)
		return
	}
	c := gocql.NewCluster(host)
	c.Port, _ = strconv.Atoi(port)
	c.Consistency = gocql.One
	c.Timeout = 30 * time.Second
	c.NumConns = 1
	s, err := c.CreateSession()
	if err != nil {
		t.Errorf("drop %s: %v", ks, err)
		return
	}
	defer s.Close()
	if err := s.Query("DROP KEYSPACE IF EXISTS " + ks).Exec(); err != nil {
		t.Errorf("drop %s: %v", ks, err)
	}
}
