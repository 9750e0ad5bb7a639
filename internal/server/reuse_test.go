package server_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/issue"
	"github.com/tokengw/tokengw/internal/store/bolt"
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
