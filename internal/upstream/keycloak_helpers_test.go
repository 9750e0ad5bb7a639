//go:build keycloak

package upstream_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/app"
	"github.com/tokengw/tokengw/internal/config"
	"github.com/tokengw/tokengw/internal/store"
)

// The realm of scripts/keycloak/realm.json.
const (
	realmPath     = "/realms/tokengw/protocol/openid-connect"
	serviceID     = "gw-service"
	serviceSecret = "gw-service-secret"
	appID         = "gw-app"
	appSecret     = "gw-app-secret"
	userName      = "alice"
	userPassword  = "alice-password"
)

// keycloakURL is TEST_KEYCLOAK_URL (scripts/test.sh exports it after
// scripts/keycloak.sh start); these tests need the real Keycloak.
func keycloakURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("TEST_KEYCLOAK_URL")
	if u == "" {
		t.Fatal("TEST_KEYCLOAK_URL is not set: these tests need a real Keycloak: run `make test`, or " +
			"`bash scripts/keycloak.sh start` and export TEST_KEYCLOAK_URL=http://127.0.0.1:8180")
	}
	return strings.TrimSuffix(u, "/")
}

// recorder is a reverse proxy between tokengw and Keycloak that counts the
// token requests it passes, by grant type.
type recorder struct {
	srv    *httptest.Server
	mu     sync.Mutex
	grants map[string]int
}

func newRecorder(t testing.TB, target string) *recorder {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{grants: map[string]int{}}
	proxy := httputil.NewSingleHostReverseProxy(u)
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if f, err := url.ParseQuery(string(body)); err == nil && strings.HasSuffix(r.URL.Path, "/token") {
			rec.mu.Lock()
			rec.grants[f.Get("grant_type")]++
			rec.mu.Unlock()
		}
		r.Host = u.Host // Keycloak's issuer is its own address
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (r *recorder) count(grant string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.grants[grant]
}

// gateway is one tokengw in upstream mode behind a real HTTP server.
type gateway struct {
	app *app.App
	srv *httptest.Server
}

func (g *gateway) tokenURL() string { return g.srv.URL + "/oauth2/token" }

// upstreamConfig is upstream mode on provider (a base URL serving the
// realm's endpoints); env adds or overrides TOKENGW_ variables.
func upstreamConfig(t testing.TB, provider string, env ...string) *config.Config {
	t.Helper()
	base := []string{
		"TOKENGW_STORE__DRIVER=memory",
		"TOKENGW_SERVER__ADMIN_ADDR=",
		"TOKENGW_UPSTREAM__TOKEN_URL=" + provider + realmPath + "/token",
		"TOKENGW_UPSTREAM__REVOCATION_URL=" + provider + realmPath + "/revoke",
		"TOKENGW_UPSTREAM__REFRESH__MAX_REPLAYS=100",
		"TOKENGW_UPSTREAM__REFRESH__REPLAY_WINDOW=30s",
		"TOKENGW_LIMITS__PER_IP_FAILED_AUTH__RATE=100",
		"TOKENGW_LIMITS__PER_IP_FAILED_AUTH__BURST=1000",
	}
	cfg, err := config.Load("", append(base, env...))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

func startGateway(t testing.TB, cfg *config.Config, st store.Store) *gateway {
	t.Helper()
	return startGatewayLog(t, cfg, st, nil)
}

// startGatewayLog is startGateway with the gateway's log going to log.
func startGatewayLog(t testing.TB, cfg *config.Config, st store.Store, log *slog.Logger) *gateway {
	t.Helper()
	a, err := app.New(context.Background(), cfg, app.Options{Store: st, Logger: log})
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	g := &gateway{app: a, srv: httptest.NewServer(a.Server.Handler())}
	t.Cleanup(func() {
		g.srv.Close()
		_ = a.Close()
	})
	return g
}

func basic(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("status %d, body is not JSON: %v: %.200s", a.status, err, a.body)
	}
	return m
}

// str is a string member of a JSON answer.
func (a answer) str(t testing.TB, name string) string {
	t.Helper()
	s, _ := a.json(t)[name].(string)
	return s
}

func post(t testing.TB, hc *http.Client, target, auth string, form url.Values) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		t.Error(err)
		return answer{}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Error(err)
		return answer{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

func ccForm() url.Values { return url.Values{"grant_type": {"client_credentials"}} }

// passwordGrant gets a fresh refresh token straight from Keycloak.
func passwordGrant(t testing.TB, hc *http.Client, kc string) string {
	t.Helper()
	a := post(t, hc, kc+realmPath+"/token", basic(appID, appSecret), url.Values{
		"grant_type": {"password"}, "username": {userName}, "password": {userPassword},
	})
	if a.status != http.StatusOK {
		t.Fatalf("password grant: %d %s", a.status, a.body)
	}
	rt := a.str(t, "refresh_token")
	if rt == "" {
		t.Fatalf("password grant: no refresh_token in %s", a.body)
	}
	return rt
}

func refreshForm(rt string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
}

// concurrently sends n requests at once (from n goroutines released
// together) and returns the answers in order.
func concurrently(t testing.TB, n int, send func(i int) answer) []answer {
	t.Helper()
	out := make([]answer, n)
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(n)
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			out[i] = send(i)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	return out
}

func httpClient(n int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = n
	tr.MaxConnsPerHost = 0
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}
