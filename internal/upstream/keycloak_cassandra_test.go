//go:build keycloak && cassandra

package upstream_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/tokengw/tokengw/internal/store/cassandra"
)

// twoReplicas starts two gateways in upstream mode on provider, each with
// its own session to a fresh keyspace of the real Cassandra at
// TEST_CASSANDRA_ADDR, sharing the seal key as replicas must.
func twoReplicas(t *testing.T, provider string) (*gateway, *gateway) {
	t.Helper()
	addr := os.Getenv("TEST_CASSANDRA_ADDR")
	if addr == "" {
		t.Fatal("TEST_CASSANDRA_ADDR is not set: run `make test`, or `bash scripts/cassandra.sh start` and export TEST_CASSANDRA_ADDR=127.0.0.1:9042")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	ks := "tokengw_up_" + hex.EncodeToString(b)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	env := []string{
		"TOKENGW_STORE__DRIVER=cassandra",
		"TOKENGW_STORE__SEAL_KEYS=" + base64.StdEncoding.EncodeToString(key),
		"TOKENGW_STORE__CASSANDRA__HOSTS=" + addr,
		"TOKENGW_STORE__CASSANDRA__KEYSPACE=" + ks,
		"TOKENGW_STORE__CASSANDRA__TIMEOUT=10s",
	}
	cfgA := upstreamConfig(t, provider, env...)
	mig := cfgA.Store.Cassandra
	mig.Timeout = 30 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cassandra.Migrate(ctx, mig); err != nil {
		t.Fatalf("migrate %s: %v", ks, err)
	}
	t.Cleanup(func() { dropKeyspace(t, addr, ks) })
	return startGateway(t, cfgA, nil), startGateway(t, upstreamConfig(t, provider, env...), nil)
}

func dropKeyspace(t *testing.T, addr, ks string) {
	host, port, _ := net.SplitHostPort(addr)
	c := gocql.NewCluster(host)
	c.Port, _ = strconv.Atoi(port)
	c.Timeout = 30 * time.Second
	s, err := c.CreateSession()
	if err != nil {
		t.Errorf("drop keyspace %s: %v", ks, err)
		return
	}
	defer s.Close()
	if err := s.Query("DROP KEYSPACE IF EXISTS " + ks).Exec(); err != nil {
		t.Errorf("drop keyspace %s: %v", ks, err)
	}
}

// TestKeycloakReplicasClientCredentials: 200 concurrent client_credentials
// requests spread over two replicas sharing Cassandra make one upstream
// call (the lease in the store), and every answer holds the same token.
func TestKeycloakReplicasClientCredentials(t *testing.T) {
	kc := keycloakURL(t)
	rec := newRecorder(t, kc)
	a, b := twoReplicas(t, rec.srv.URL)
	hc := httpClient(200)
	answers := concurrently(t, 200, func(i int) answer {
		gw := a
		if i%2 == 1 {
			gw = b
		}
		return post(t, hc, gw.tokenURL(), basic(serviceID, serviceSecret), ccForm())
	})
	first := ""
	for i, ans := range answers {
		if ans.status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, ans.status, ans.body)
		}
		if first == "" {
			first = ans.str(t, "access_token")
		}
		if ans.str(t, "access_token") != first {
			t.Fatalf("request %d (replica %d) got another token", i, i%2)
		}
	}
	if n := rec.count("client_credentials"); n != 1 {
		t.Fatalf("upstream client_credentials requests = %d across two replicas, want 1", n)
	}
}

// TestKeycloakReplicasRefresh: 50 concurrent refreshes of one refresh token
// spread over two replicas: 50 identical successes, one upstream call.
func TestKeycloakReplicasRefresh(t *testing.T) {
	kc := keycloakURL(t)
	rec := newRecorder(t, kc)
	a, b := twoReplicas(t, rec.srv.URL)
	hc := httpClient(50)
	rt := passwordGrant(t, hc, kc)
	answers := concurrently(t, 50, func(i int) answer {
		gw := a
		if i%2 == 1 {
			gw = b
		}
		return post(t, hc, gw.tokenURL(), basic(appID, appSecret), refreshForm(rt))
	})
	var at, newRT string
	for i, ans := range answers {
		if ans.status != http.StatusOK {
			t.Fatalf("request %d (replica %d): %d %s", i, i%2, ans.status, ans.body)
		}
		if i == 0 {
			at, newRT = ans.str(t, "access_token"), ans.str(t, "refresh_token")
		}
		if ans.str(t, "access_token") != at || ans.str(t, "refresh_token") != newRT {
			t.Fatalf("request %d (replica %d) got another answer", i, i%2)
		}
	}
	if n := rec.count("refresh_token"); n != 1 {
		t.Fatalf("upstream refresh_token requests = %d across two replicas, want 1", n)
	}
}
