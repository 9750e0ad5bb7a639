package server_test

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengw/tokengw/internal/app"
)

// authlibPython prepares (once per machine; scripts/test.sh does it before
// the tests) the virtualenv with Authlib and returns its python.
func authlibPython(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", filepath.Join("..", "..", "scripts", "authlib-venv.sh")).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("scripts/authlib-venv.sh: %v\n%s", err, stderr)
	}
	return strings.TrimSpace(string(out))
}

// A stock client library's private_key_jwt, unchanged: Authlib's
// PrivateKeyJWT (RS256, aud = the token endpoint URL, a fresh jti, exp one
// hour after iat) gets a token from a real listener, twice.
func TestAuthlibPrivateKeyJWT(t *testing.T) {
	python := authlibPython(t)
	key := newRSAKey(t, "")
	der, err := x509.MarshalPKCS8PrivateKey(key.raw.(*rsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "client.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}

	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	cfg := testConfig(t, "TOKENGW_ISSUER__URL="+base)
	cfg.Clients = append(cfg.Clients, jwtClient("authlib-client", jwksOf(t, key)))
	a, err := app.New(context.Background(), cfg, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = a.Server.Handler()
	srv.Start()
	t.Cleanup(func() { srv.Close(); a.Close() })

	for i := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, python, filepath.Join("testdata", "authlib_private_key_jwt.py"), base+"/oauth2/token", "authlib-client", keyFile)
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("run %d: authlib: %v\n%s", i+1, err, out)
		}
		var tok struct {
			AccessToken string `json:"access_token"`
			TokenType   string `json:"token_type"`
			Scope       string `json:"scope"`
		}
		if err := json.Unmarshal(out, &tok); err != nil || tok.AccessToken == "" || tok.TokenType != "Bearer" || tok.Scope != "read" {
			t.Fatalf("run %d: authlib's token response: %s (%v)", i+1, out, err)
		}
	}
	if v := a.Assertions.Verifier.Verifications(); v != 2 {
		t.Fatalf("%d verifications, want 2", v)
	}
}
