package server_test

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"
)

// TestBoltFileHoldsNoBearerToken mints tokens (reuse on, so sealed reuse
// copies are stored too), closes the store and scans the database file for
// every issued token, as text and as raw bytes.
func TestBoltFileHoldsNoBearerToken(t *testing.T) {
	dir := t.TempDir()
	g := start(t, testConfig(t, boltConfig(t, dir)...), nil)
	var tokens []string
	for _, c := range []struct{ id, secret, scope string }{{"demo", demoSecret, "read"}, {"demo", demoSecret, "write"}, {oddID, oddSecret, "read"}} {
		_, tj := post(t, g.url(), basic(c.id, c.secret), "grant_type=client_credentials&scope="+c.scope)
		if tj.AccessToken == "" {
			t.Fatal("no token")
		}
		tokens = append(tokens, tj.AccessToken)
	}
	g.srv.Close()
	if err := g.app.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := os.ReadFile(filepath.Join(dir, "tokengw.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range tokens {
		raw, _ := base64.RawURLEncoding.DecodeString(tok)
		if bytes.Contains(db, []byte(tok)) || bytes.Contains(db, raw) {
			t.Fatalf("the bolt file holds a bearer token in clear")
		}
	}
}
