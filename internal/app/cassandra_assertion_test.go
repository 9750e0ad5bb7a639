//go:build cassandra

package app_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/tokengw/tokengw/internal/config"
)

// One client assertion, sent through two replicas on one Cassandra: twice
// in a row (one per replica), then 50 times at once spread over both.
// Exactly one request gets a token each time; every other answer is 401
// invalid_client. The assertions are signed with lestrrat-go/jwx; tokengw
// verifies with go-jose; the jti claim is Cassandra's INSERT IF NOT EXISTS.
func TestCassandraClientAssertionOnceAcrossReplicas(t *testing.T) {
	addr := cassandraAddr(t)
	ks := newKeyspace(t, addr)
	seal := newSealKey()

	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwk.Import(priv)
	if err != nil {
		t.Fatal(err)
	}
	_ = k.Set(jwk.KeyIDKey, "k1")
	pub, err := k.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	pubJSON, _ := json.Marshal(pub)
	client := config.Client{
		ID: "svc", TokenEndpointAuthMethod: config.MethodPrivateKeyJWT, Scopes: []string{"read"},
		JWKS: `{"keys":[` + string(pubJSON) + `]}`,
	}
	var reps []*replica
	for range 2 {
		cfg := gatewayConfig(t, addr, ks, seal, "TOKENGW_LIMITS__PER_IP_FAILED_AUTH__RATE=0")
		cfg.Clients = append(cfg.Clients, client)
		reps = append(reps, startReplica(t, cfg))
	}
	aud := reps[0].app.Config.Issuer.URL
	sign := func() string {
		now := time.Now()
		payload, _ := json.Marshal(map[string]any{
			"iss": "svc", "sub": "svc", "aud": aud, "jti": rand.Text(),
			"iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		})
		h := jws.NewHeaders()
		_ = h.Set(jws.KeyIDKey, "k1")
		out, err := jws.Sign(payload, jws.WithKey(jwa.ES256(), priv, jws.WithProtectedHeaders(h)))
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	hc := newHTTPClient(t, 50)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	send := func(r *replica, assertion string) (tokenResp, error) {
		form := url.Values{
			"grant_type":            {"client_credentials"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {assertion},
		}
		status, h, body, err := postForm(ctx, hc, r.url("/oauth2/token"), "", form)
		tr := tokenResp{Status: status, Header: h}
		if err == nil {
			err = json.Unmarshal(body, &tr)
		}
		return tr, err
	}

	a := sign()
	if got, err := send(reps[0], a); err != nil || got.Status != http.StatusOK {
		t.Fatalf("first use on replica 0: %v %v", got, err)
	}
	if got, err := send(reps[1], a); err != nil || got.Status != http.StatusUnauthorized || got.Error != "invalid_client" {
		t.Fatalf("second use on replica 1: %v %v, want 401 invalid_client", got, err)
	}

	a = sign()
	const n = 50
	results := make([]tokenResp, n)
	errs := make([]error, n)
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-gate
			results[i], errs[i] = send(reps[i%2], a)
		})
	}
	close(gate)
	wg.Wait()
	ok := 0
	for i := range n {
		switch r := results[i]; {
		case errs[i] != nil:
			t.Fatalf("request %d (replica %d): %v", i, i%2, errs[i])
		case r.Status == http.StatusOK:
			ok++
		case r.Status != http.StatusUnauthorized || r.Error != "invalid_client":
			t.Fatalf("request %d (replica %d): %v, want 200 or 401 invalid_client", i, i%2, r)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d uses of one assertion over two replicas got a token, want exactly 1", ok, n)
	}
}
