//go:build cluster

package clustertest_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/app"
	"github.com/tokengw/tokengw/internal/clustertest"
	"github.com/tokengw/tokengw/internal/config"
	"github.com/tokengw/tokengw/internal/store/cassandra"
)

// The cluster is the one scripts/cassandra.sh start --nodes 3 started:
// CASSANDRA_CLUSTER_IPS names its addresses as it does for the script
// (default 127.0.1.1 127.0.1.2 127.0.1.3), and the test runs the same
// script (with the caller's environment: CASSANDRA_RUN_DIR) to kill and
// restart nodes. TEST_CLUSTER_RECOVERY (default 60s) is how long errors may
// linger after the two killed nodes are back; TEST_CLUSTER_HISTORY, when
// set, is a file the whole history is written to (JSON lines).
const (
	adminToken   = "cluster-test-admin-token-0123456789"
	localTTL     = 2 * time.Second
	refresh      = time.Second
	minRemaining = time.Second
	longTTL      = 10 * time.Minute
	shortTTL     = 4 * time.Second // reuse window 2 s: mints never stop
)

type gateway struct {
	app         *app.App
	api, admin  *httptest.Server
	apiURL, adm string
}

type secret struct {
	value string
	gen   int
}

type consumer struct {
	clustertest.Client
	secret atomic.Pointer[secret]
}

type run struct {
	t        *testing.T
	hc       *http.Client
	gws      []*gateway
	hist     clustertest.History
	script   string
	clients  []*consumer
	mu       sync.Mutex
	recent   map[string]string // client -> last token handed out
	phasesMu sync.Mutex
	phases   []clustertest.Phase
}

func TestClusterUnderFaults(t *testing.T) {
	ips := strings.Fields(os.Getenv("CASSANDRA_CLUSTER_IPS"))
	if len(ips) == 0 {
		ips = []string{"127.0.1.1", "127.0.1.2", "127.0.1.3"}
	}
	if len(ips) < 3 {
		t.Fatalf("CASSANDRA_CLUSTER_IPS=%q: the test needs a cluster of 3 nodes", ips)
	}
	recovery := 60 * time.Second
	if v := os.Getenv("TEST_CLUSTER_RECOVERY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("TEST_CLUSTER_RECOVERY=%q: %v", v, err)
		}
		recovery = d
	}
	script, err := filepath.Abs(filepath.Join("..", "..", "scripts", "cassandra.sh"))
	if err != nil {
		t.Fatal(err)
	}
	r := &run{t: t, script: script, recent: map[string]string{}}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 200, 100
	r.hc = &http.Client{Transport: tr, Timeout: 20 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)

	// Keyspace: replication factor 3, QUORUM (and SERIAL for Paxos).
	ks := "tokengw_cluster_" + randomHex(4)
	sealKey := make([]byte, 32)
	_, _ = rand.Read(sealKey)
	hosts := make([]string, len(ips[:3]))
	for i, ip := range ips[:3] {
		hosts[i] = ip + ":9042"
	}
	newConfig := func() *config.Config {
		cfg, err := config.Load("", []string{
			"TOKENGW_STORE__DRIVER=cassandra",
			"TOKENGW_STORE__SEAL_KEYS=" + base64.StdEncoding.EncodeToString(sealKey),
			"TOKENGW_STORE__CASSANDRA__KEYSPACE=" + ks,
			"TOKENGW_STORE__CASSANDRA__CONSISTENCY=QUORUM",
			"TOKENGW_SERVER__ADMIN_ADDR=",
			"TOKENGW_SERVER__ADMIN_TOKEN=" + adminToken,
			"TOKENGW_AUTH__ARGON2__MEMORY_KIB=1024",
			"TOKENGW_AUTH__ARGON2__TIME=1",
			"TOKENGW_AUTH__CLIENT_REFRESH=" + refresh.String(),
			"TOKENGW_REUSE__LOCAL_TTL=" + localTTL.String(),
			"TOKENGW_REUSE__MIN_REMAINING=" + minRemaining.String(),
			"TOKENGW_LIMITS__PER_IP_FAILED_AUTH__RATE=0",
		})
		if err != nil {
			t.Fatalf("config: %v", err)
		}
		cfg.Store.Cassandra.Hosts = hosts
		cfg.Store.Cassandra.Replication = map[string]string{"class": "SimpleStrategy", "replication_factor": "3"}
		return cfg
	}
	cfg := newConfig()
	// Schema changes on a fresh three-node cluster are quick, except when a
	// node misses a schema push and pulls it a minute later (seen on a
	// loaded two-core machine): the driver then waits for agreement.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	if err := cassandra.Migrate(ctx, cfg.Store.Cassandra); err != nil {
		cancel()
		t.Fatalf("migrate %s on %v (is the cluster up? bash scripts/cassandra.sh start --nodes 3): %v", ks, hosts, err)
	}
	cancel()
	params := clustertest.Params{
		MaxElapsedFraction: cfg.Reuse.MaxElapsedFraction,
		MinRemaining:       minRemaining, LocalTTL: localTTL, ClientRefresh: refresh,
		Slack: 1500 * time.Millisecond,
	}

	// Two replicas, each its own App (own Cassandra session, own caches)
	// behind real listeners.
	logDir := os.Getenv("TEST_CLUSTER_LOG_DIR")
	if logDir == "" {
		logDir = t.TempDir()
	}
	for i := range 2 {
		// Each replica's log (the access lines carry every error's cause).
		lf, err := os.Create(filepath.Join(logDir, fmt.Sprintf("replica-%d.log", i)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = lf.Close() })
		logger := slog.New(failuresOnly{slog.NewJSONHandler(lf, nil)})
		a, err := app.New(context.Background(), newConfig(), app.Options{Logger: logger})
		if err != nil {
			t.Fatalf("app.New: %v", err)
		}
		g := &gateway{app: a, api: httptest.NewServer(a.Server.Handler()), admin: httptest.NewServer(a.Server.AdminHandler())}
		g.apiURL, g.adm = g.api.URL, g.admin.URL
		t.Cleanup(func() { g.api.Close(); g.admin.Close(); _ = a.Close() })
		r.gws = append(r.gws, g)
	}

	// Consumers, made through the admin API.
	add := func(id string, ttl time.Duration, rotated bool) {
		c := &consumer{Client: clustertest.Client{ID: id, TTL: ttl, Rotated: rotated}}
		body := fmt.Sprintf(`{"id": %q, "scopes": ["read", "write"], "token_ttl": %q}`, id, ttl.String())
		status, resp, err := r.admin(0, http.MethodPost, "/admin/clients", body)
		if err != nil || status != http.StatusCreated {
			t.Fatalf("create client %s: %d %s %v", id, status, resp, err)
		}
		var out struct {
			Secret string `json:"secret"`
		}
		if err := json.Unmarshal(resp, &out); err != nil || out.Secret == "" {
			t.Fatalf("create client %s: %s %v", id, resp, err)
		}
		c.secret.Store(&secret{value: out.Secret})
		r.clients = append(r.clients, c)
	}
	for i := range 12 {
		add(fmt.Sprintf("steady-%02d", i), longTTL, false)
	}
	for i := range 4 {
		add(fmt.Sprintf("short-%02d", i), shortTTL, false)
	}
	for i := range 2 {
		add(fmt.Sprintf("rotated-%02d", i), longTTL, true)
	}
	clients := map[string]clustertest.Client{}
	for _, c := range r.clients {
		clients[c.ID] = c.Client
	}
	// The workload.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// Three workers per consumer, each on random replicas: the replicas
	// race for the consumer's reuse slot whenever it is empty.
	for _, c := range r.clients {
		for range 3 {
			wg.Add(1)
			go func() { defer wg.Done(); r.consume(c, stop) }()
		}
	}
	wg.Add(3)
	go func() { defer wg.Done(); r.every(stop, time.Second, r.revokeOne) }()
	go func() { defer wg.Done(); r.every(stop, 7*time.Second, r.revokeAll) }()
	go func() { defer wg.Done(); r.every(stop, 9*time.Second, r.rotate) }()

	// The faults, phase by phase (TEST_CLUSTER_FAULTS=off: 60 s without,
	// for a quick look at the checker).
	t0 := time.Now()
	var faultErr error
	// The first seconds of a fresh cluster and fresh replicas (prepared
	// statements, JIT, empty caches) under the full workload at once: 503s
	// with Retry-After are counted there, not held against invariant 4.
	r.phase("warm-up", clustertest.WarmUp)
	time.Sleep(10 * time.Second)
	r.phase("healthy", clustertest.Healthy)
	if os.Getenv("TEST_CLUSTER_FAULTS") == "off" {
		time.Sleep(60 * time.Second)
		r.phase("settled", clustertest.Settled)
		time.Sleep(5 * time.Second)
	} else {
		faultErr = r.faults(recovery)
	}
	close(stop)
	wg.Wait()
	if faultErr != nil {
		t.Fatal(faultErr)
	}
	end := time.Now()
	r.phase("", "")
	t.Logf("workload ran %v; the replicas' logs (warnings and errors, with causes) are in %s", end.Sub(t0).Round(time.Second), logDir)

	ops := r.hist.Ops()
	if path := os.Getenv("TEST_CLUSTER_HISTORY"); path != "" {
		writeHistory(t, path, ops)
	}
	rep := clustertest.Check(ops, r.phases, clients, params)

	// 3. Nothing acknowledged was lost: every live, unrevoked token is
	// active on both replicas; every acknowledged revocation holds.
	after := time.Now().Add(2 * time.Second)
	survivors := clustertest.Survivors(ops, clients, params, after)
	revoked := clustertest.Revoked(ops, clients, params, after)
	for _, tok := range survivors {
		for i := range r.gws {
			rep.Checks[3]++
			if active, err := r.introspect(i, tok.Value); err != nil || !active {
				rep.Violations = append(rep.Violations, fmt.Sprintf(
					"invariant 3: key %s: token …%s (first handed out by %s) is not active on replica %d after the run (err %v)",
					tok.Key(), tail(tok.Value), tok.First, i, err))
				rep.Categories["invariant 3: a live token is not active after the run"]++
			}
		}
	}
	for _, tok := range revoked {
		for i := range r.gws {
			rep.Checks[3]++
			if active, err := r.introspect(i, tok.Value); err != nil || active {
				rep.Violations = append(rep.Violations, fmt.Sprintf(
					"invariant 3: key %s: token …%s was revoked but introspects active on replica %d after the run (err %v)",
					tok.Key(), tail(tok.Value), i, err))
				rep.Categories["invariant 3: a revoked token is active after the run"]++
			}
		}
	}
	rep.Print(t.Logf)
	t.Logf("after the run: %d live unrevoked tokens active on both replicas checked, %d revoked ones inactive; %d introspections",
		len(survivors), len(revoked), rep.Checks[3])
	for i, v := range rep.Violations {
		if i == 50 {
			t.Errorf("... and %d more violations", len(rep.Violations)-50)
			break
		}
		t.Error(v)
	}
}

// faults kills and restarts Cassandra nodes, phase by phase, after the
// first healthy phase. It stops at the first script that fails.
func (r *run) faults(recovery time.Duration) error {
	steps := []func() error{
		func() error { time.Sleep(15 * time.Second); return nil },
		func() error { r.phase("one-down", clustertest.OneDown); return r.cassandra("kill-node", "3") },
		func() error { time.Sleep(20 * time.Second); return nil },
		func() error { r.phase("one-back", clustertest.OneDown); return r.cassandra("start-node", "3") },
		func() error { r.phase("healthy-2", clustertest.Healthy); time.Sleep(15 * time.Second); return nil },
		func() error {
			r.phase("two-down", clustertest.TwoDown)
			return r.parallel(func() error { return r.cassandra("kill-node", "1") }, func() error { return r.cassandra("kill-node", "3") })
		},
		func() error { time.Sleep(15 * time.Second); return nil },
		func() error {
			r.phase("two-back", clustertest.TwoDown)
			return r.parallel(func() error { return r.cassandra("start-node", "1") }, func() error { return r.cassandra("start-node", "3") })
		},
		func() error { r.phase("recovering", clustertest.Recovering); time.Sleep(recovery); return nil },
		func() error { r.phase("settled", clustertest.Settled); time.Sleep(15 * time.Second); return nil },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// phase ends the current phase and begins the next ("" ends the last).
func (r *run) phase(name string, mode clustertest.Mode) {
	r.phasesMu.Lock()
	defer r.phasesMu.Unlock()
	now := time.Now()
	if n := len(r.phases); n > 0 {
		r.phases[n-1].End = now
	}
	if name != "" {
		r.phases = append(r.phases, clustertest.Phase{Name: name, Mode: mode, Start: now})
		r.t.Logf("%s phase %s (%s)", now.Format("15:04:05.000"), name, mode)
	}
}

func (r *run) cassandra(args ...string) error {
	t0 := time.Now()
	out, err := exec.Command("bash", append([]string{r.script}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cassandra.sh %v: %w\n%s", args, err, out)
	}
	r.t.Logf("cassandra.sh %s took %v", strings.Join(args, " "), time.Since(t0).Round(100*time.Millisecond))
	return nil
}

func (r *run) parallel(fs ...func() error) error {
	errs := make([]error, len(fs))
	var wg sync.WaitGroup
	for i, f := range fs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = f() }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// every runs f every d until stop (the first time after d).
func (r *run) every(stop <-chan struct{}, d time.Duration, f func()) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			f()
		}
	}
}

// consume asks for a token on every call, on a random replica, with a
// random one of two scope sets (two reuse keys per client).
func (r *run) consume(c *consumer, stop <-chan struct{}) {
	tick := time.NewTicker(60 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		sec := c.secret.Load()
		op := clustertest.Op{Kind: clustertest.KindToken, Client: c.ID, Gen: sec.gen, Replica: mrand.IntN(len(r.gws))}
		form := url.Values{"grant_type": {"client_credentials"}}
		if mrand.IntN(2) == 0 {
			op.Scope = "read"
			form.Set("scope", "read")
		}
		req, _ := http.NewRequest(http.MethodPost, r.gws[op.Replica].apiURL+"/oauth2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", basicAuth(c.ID, sec.value))
		var body struct {
			AccessToken string `json:"access_token"`
			ExpiresIn   int64  `json:"expires_in"`
		}
		r.do(&op, req, &body)
		if op.Status == http.StatusOK {
			op.Token, op.ExpiresIn = body.AccessToken, body.ExpiresIn
			if !c.Rotated {
				r.mu.Lock()
				r.recent[c.ID] = body.AccessToken
				r.mu.Unlock()
			}
		}
		r.hist.Add(op)
	}
}

// do sends req, recording its start, end, status and Retry-After, and
// decodes a 200 body into out.
func (r *run) do(op *clustertest.Op, req *http.Request, out any) []byte {
	op.Start = time.Now()
	resp, err := r.hc.Do(req)
	if err != nil {
		op.End = time.Now()
		op.Err = err.Error()
		return nil
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	op.End = time.Now()
	op.Status = resp.StatusCode
	op.RetryAfter = resp.Header.Get("Retry-After")
	if err != nil {
		op.Status, op.Err = 0, err.Error()
		return nil
	}
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			op.Status, op.Err = 0, "undecodable 200: "+err.Error()
		}
	}
	return b
}

// revokeOne revokes (RFC 7009) the token last handed out to a random
// consumer whose secret is not rotated, authenticated as that consumer.
func (r *run) revokeOne() {
	c := r.clients[mrand.IntN(len(r.clients))]
	if c.Rotated {
		return
	}
	r.mu.Lock()
	tok := r.recent[c.ID]
	r.mu.Unlock()
	if tok == "" {
		return
	}
	op := clustertest.Op{Kind: clustertest.KindRevoke, Client: c.ID, Replica: mrand.IntN(len(r.gws)), Token: tok}
	form := url.Values{"token": {tok}}
	req, _ := http.NewRequest(http.MethodPost, r.gws[op.Replica].apiURL+"/oauth2/revoke", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", basicAuth(c.ID, c.secret.Load().value))
	r.do(&op, req, nil)
	r.hist.Add(op)
}

// revokeAll revokes every token of a random steady consumer (admin API).
func (r *run) revokeAll() {
	c := r.clients[mrand.IntN(12)]
	op := clustertest.Op{Kind: clustertest.KindRevokeAll, Client: c.ID, Replica: mrand.IntN(len(r.gws))}
	req, _ := http.NewRequest(http.MethodDelete, r.gws[op.Replica].adm+"/admin/tokens?client_id="+url.QueryEscape(c.ID), nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	r.do(&op, req, nil)
	r.hist.Add(op)
}

// rotate rotates the secret of one of the rotated consumers, by turns.
func (r *run) rotate() {
	var rotated []*consumer
	for _, c := range r.clients {
		if c.Rotated {
			rotated = append(rotated, c)
		}
	}
	c := rotated[mrand.IntN(len(rotated))]
	op := clustertest.Op{Kind: clustertest.KindRotate, Client: c.ID, Replica: mrand.IntN(len(r.gws))}
	req, _ := http.NewRequest(http.MethodPost, r.gws[op.Replica].adm+"/admin/clients/"+url.PathEscape(c.ID)+"/secret", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	var out struct {
		Secret string `json:"secret"`
	}
	r.do(&op, req, &out)
	if op.Status == http.StatusOK && out.Secret != "" {
		c.secret.Store(&secret{value: out.Secret, gen: c.secret.Load().gen + 1})
	}
	r.hist.Add(op)
}

func (r *run) admin(i int, method, path, body string) (int, []byte, error) {
	req, err := http.NewRequest(method, r.gws[i].adm+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// introspect asks replica i (RFC 7662, with the admin bearer token).
func (r *run) introspect(i int, tok string) (bool, error) {
	form := url.Values{"token": {tok}}
	req, _ := http.NewRequest(http.MethodPost, r.gws[i].apiURL+"/oauth2/introspect", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := r.hc.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("introspect: status %d", resp.StatusCode)
	}
	var out struct {
		Active bool `json:"active"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return false, err
	}
	return out.Active, nil
}

func writeHistory(t *testing.T, path string, ops []clustertest.Op) {
	f, err := os.Create(path)
	if err != nil {
		t.Errorf("history: %v", err)
		return
	}
	defer f.Close()
	enc := json.NewEncoder(f)
	for _, o := range ops {
		o.Token = tail(o.Token) // never a whole bearer token in a file
		if err := enc.Encode(o); err != nil {
			t.Errorf("history: %v", err)
			return
		}
	}
	t.Logf("history of %d requests written to %s", len(ops), path)
}

// basicAuth is client_secret_basic, form-encoded per RFC 6749 §2.3.1.
func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func tail(tok string) string {
	if len(tok) > 8 {
		return tok[len(tok)-8:]
	}
	return tok
}

// failuresOnly keeps a replica's log to what explains a failure: every
// record but the access lines of requests answered below 400.
type failuresOnly struct{ slog.Handler }

func (h failuresOnly) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "request" {
		ok := false
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "status" {
				ok = a.Value.Int64() < 400
				return false
			}
			return true
		})
		if ok {
			return nil
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h failuresOnly) WithAttrs(as []slog.Attr) slog.Handler {
	return failuresOnly{h.Handler.WithAttrs(as)}
}
func (h failuresOnly) WithGroup(g string) slog.Handler { return failuresOnly{h.Handler.WithGroup(g)} }
