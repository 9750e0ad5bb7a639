//go:build keycloak

package upstream_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/store/memory"
)

// leaseHook is a replica's view of the shared store with a fault hook: the
// first lease it asks for waits for before, which runs the other replica's
// whole request meanwhile.
type leaseHook struct {
	*memory.Store
	once   sync.Once
	before func()
}

func (h *leaseHook) UpstreamLease(ctx context.Context, key []byte, holder string, ttl time.Duration) (bool, error) {
	h.once.Do(h.before)
	return h.Store.UpstreamLease(ctx, key, holder, ttl)
}

// TestKeycloakLeaseAfterRelease: replica B looks for a result (none yet);
// replica A then makes the upstream call, stores the result and releases
// the lease, all before B asks for the lease, which B then gets. B must
// look again under the lease and answer with A's result, not spend the
// refresh token a second time (Keycloak would refuse it: reuse detection)
// nor ask for a second client_credentials token.
func TestKeycloakLeaseAfterRelease(t *testing.T) {
	kc := keycloakURL(t)
	for _, tc := range []struct {
		name, grant, auth string
		form              func(t *testing.T) url.Values
	}{
		{"refresh_token", "refresh_token", basic(appID, appSecret), func(t *testing.T) url.Values { return refreshForm(passwordGrant(t, httpClient(1), kc)) }},
		{"client_credentials", "client_credentials", basic(serviceID, serviceSecret), func(*testing.T) url.Values { return ccForm() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder(t, kc)
			shared := memory.New(memory.Options{})
			seal := "TOKENGW_STORE__SEAL_KEYS=" + base64.StdEncoding.EncodeToString(make([]byte, 32))
			a := startGateway(t, upstreamConfig(t, rec.srv.URL, seal), shared)
			hc := httpClient(2)
			form := tc.form(t)
			var fromA answer
			hook := &leaseHook{Store: shared, before: func() { fromA = post(t, hc, a.tokenURL(), tc.auth, form) }}
			b := startGateway(t, upstreamConfig(t, rec.srv.URL, seal), hook)

			fromB := post(t, hc, b.tokenURL(), tc.auth, form)
			if fromA.status != http.StatusOK || fromB.status != http.StatusOK {
				t.Fatalf("replica A: %d %s; replica B: %d %s", fromA.status, fromA.body, fromB.status, fromB.body)
			}
			if fromA.str(t, "access_token") != fromB.str(t, "access_token") || fromA.str(t, "refresh_token") != fromB.str(t, "refresh_token") {
				t.Fatal("replica B answered with another token than replica A's")
			}
			if n := rec.count(tc.grant); n != 1 {
				t.Fatalf("upstream %s requests = %d, want 1", tc.grant, n)
			}
		})
	}
}
