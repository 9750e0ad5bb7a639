package server_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/app"
	"github.com/tokengw/tokengw/internal/issue"
	"github.com/tokengw/tokengw/internal/store"
	"github.com/tokengw/tokengw/internal/store/bolt"
	"github.com/tokengw/tokengw/internal/store/memory"
)

func boltConfig(t testing.TB, dir string, env ...string) []string {
	return append([]string{"TOKENGW_STORE__DRIVER=bolt", "TOKENGW_STORE__BOLT__PATH=" + filepath.Join(dir, "tokengw.db")}, env...)
}

func TestReuseOverHTTP(t *testing.T) {
	dir := t.TempDir()
	g := start(t, testConfig(t, boltConfig(t, dir)...), nil)
	const n = 200
	tokens := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, tj := post(t, g.url(), basic("demo", demoSecret), "grant_type=client_credentials")
			tokens[i] = tj.AccessToken
		}()
	}
	wg.Wait()
	for i := range tokens {
		if tokens[i] == "" || tokens[i] != tokens[0] {
			t.Fatalf("request %d got %q, request 0 got %q", i, tokens[i], tokens[0])
		}
	}
	if got, _ := g.app.Backend.(*bolt.Store).TokenCount(context.Background()); got != 1 {
		t.Fatalf("stored tokens = %d, want 1", got)
	}
	g.clk.Advance(90 * time.Second)
	_, tj := post(t, g.url(), basic("demo", demoSecret), "grant_type=client_credentials")
	if tj.AccessToken != tokens[0] || tj.ExpiresIn != 3510 {
		t.Fatalf("after 90s: same %v, expires_in %d (want 3510)", tj.AccessToken == tokens[0], tj.ExpiresIn)
	}
}

func TestManyConsumersOverHTTP(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, boltConfig(t, dir)...)
	base := cfg.Clients[0]
	cfg.Clients = nil
	for c := range 50 {
		cl := base
		cl.ID = fmt.Sprintf("consumer-%02d", c)
		cfg.Clients = append(cfg.Clients, cl)
	}
	g := start(t, cfg, nil)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for c := range 50 {
		for range 200 {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				resp, _ := post(t, g.url(), basic(fmt.Sprintf("consumer-%02d", c), demoSecret), "grant_type=client_credentials")
				if resp.StatusCode != 200 {
					t.Errorf("status %d", resp.StatusCode)
				}
			}()
		}
	}
	wg.Wait()
	if got, _ := g.app.Backend.(*bolt.Store).TokenCount(context.Background()); got != 50 {
		t.Fatalf("stored tokens = %d, want 50", got)
	}
}

func TestReuseOffMintsEveryTime(t *testing.T) {
	dir := t.TempDir()
	g := start(t, testConfig(t, boltConfig(t, dir, "TOKENGW_REUSE__ENABLED=false")...), nil)
	seen := map[string]bool{}
	for range 10 {
		_, tj := post(t, g.url(), basic("demo", demoSecret), "grant_type=client_credentials")
		if seen[tj.AccessToken] {
			t.Fatal("token reused with reuse off")
		}
		seen[tj.AccessToken] = true
	}
	if got, _ := g.app.Backend.(*bolt.Store).TokenCount(context.Background()); got != 10 {
		t.Fatalf("stored tokens = %d, want 10", got)
	}
}

// TestRestartKeepsTokens: the bolt store survives a restart; with reuse on,
// the live token is handed out again; with it off, the minted tokens are
// still in the store.
func TestRestartKeepsTokens(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	cfg := testConfig(t, boltConfig(t, dir)...)
	g1 := start(t, cfg, clk)
	_, first := post(t, g1.url(), basic("demo", demoSecret), "grant_type=client_credentials")
	g1.srv.Close()
	if err := g1.app.Close(); err != nil {
		t.Fatal(err)
	}

	clk.Advance(time.Minute)
	g2 := start(t, testConfig(t, boltConfig(t, dir)...), clk)
	tok, err := g2.app.Store.Token(context.Background(), issue.Hash(first.AccessToken))
	if err != nil || tok.ClientID != "demo" {
		t.Fatalf("token after restart: %+v, %v", tok, err)
	}
	_, again := post(t, g2.url(), basic("demo", demoSecret), "grant_type=client_credentials")
	if again.AccessToken != first.AccessToken || again.ExpiresIn != 3540 {
		t.Fatalf("after restart: same %v, expires_in %d", again.AccessToken == first.AccessToken, again.ExpiresIn)
	}
}

func TestSecretRotationStopsReuse(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	g1 := start(t, testConfig(t, boltConfig(t, dir)...), clk)
	_, first := post(t, g1.url(), basic("demo", demoSecret), "grant_type=client_credentials")
	g1.srv.Close()
	g1.app.Close()

	cfg := testConfig(t, boltConfig(t, dir)...)
	cfg.Clients[0].SecretHash = secretHashes(t)[otherSecret] // rotated in the config
	g2 := start(t, cfg, clk)
	resp, tj := post(t, g2.url(), basic("demo", otherSecret), "grant_type=client_credentials")
	if resp.StatusCode != 200 || tj.AccessToken == first.AccessToken {
		t.Fatalf("after rotation: %d, same token %v", resp.StatusCode, tj.AccessToken == first.AccessToken)
	}
}

// slowIssue is the memory store whose Issue takes d of the injected clock:
// a store that persists a mint slowly.
type slowIssue struct {
	*memory.Store
	clk *clock
	d   atomic.Int64 // nanoseconds
}

func (s *slowIssue) Issue(ctx context.Context, tok store.Token, cur *store.Current) (store.Current, bool, error) {
	s.clk.Advance(time.Duration(s.d.Load()))
	return s.Store.Issue(ctx, tok, cur)
}

// TestMintedExpiresInCountsFromTheMint: a minted token's expires_in is what
// is left of it when the answer is written (rounded up), not its lifetime
// counted from the answer: a mint whose store took 1.5 s answers 3599 for
// a one-hour token, never 3600, so a client never believes a token lives
// longer than it does.
func TestMintedExpiresInCountsFromTheMint(t *testing.T) {
	clk := newClock()
	st := &slowIssue{Store: memory.New(memory.Options{Now: clk.Now}), clk: clk}
	st.d.Store(int64(1500 * time.Millisecond))
	t.Cleanup(func() { st.Close() })
	a, err := app.New(context.Background(), testConfig(t), app.Options{Now: clk.Now, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	g := &gw{app: a, srv: httptest.NewServer(a.Server.Handler()), clk: clk}
	t.Cleanup(g.srv.Close)
	_, tj := post(t, g.url(), basic("demo", demoSecret), "grant_type=client_credentials")
	if tj.AccessToken == "" || tj.ExpiresIn != 3599 {
		t.Fatalf("mint persisted in 1.5 s: expires_in %d (%s), want 3599", tj.ExpiresIn, tj.Error)
	}
	st.d.Store(0)
	_, tj2 := post(t, g.url(), basic("demo", demoSecret), "grant_type=client_credentials&scope=write")
	if tj2.ExpiresIn != 3600 {
		t.Fatalf("mint answered at once: expires_in %d, want the full lifetime 3600", tj2.ExpiresIn)
	}
}
