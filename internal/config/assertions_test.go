package config

import (
	"strings"
	"testing"
	"time"
)

const testJWK = `{kty: EC, crv: P-256, kid: k1, x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}`

// A YAML file with a private_key_jwt client (jwks as a mapping) and a
// trusted issuer loads; the jwks renders as JSON.
func TestAssertionsYAML(t *testing.T) {
	p := writeYAML(t, `
store: {driver: memory}
assertions: {max_lifetime: 10m, strict_audience: true}
clients:
  - id: worker
    token_endpoint_auth_method: private_key_jwt
    jwks: {keys: [`+testJWK+`]}
    scopes: [read]
trusted_issuers:
  - issuer: https://token.actions.githubusercontent.com
    jwks_uri: https://token.actions.githubusercontent.com/.well-known/jwks
    subjects: ["repo:example/app:ref:refs/heads/main"]
    scopes: [deploy]
    replay: allow
`)
	c, err := Load(p, []string{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Assertions.MaxLifetime != 10*time.Minute || !c.Assertions.StrictAudience || c.Assertions.ClockSkew != 30*time.Second {
		t.Fatalf("assertions = %+v", c.Assertions)
	}
	j, err := JWKSJSON(c.Clients[0].JWKS)
	if err != nil || !strings.HasPrefix(j, `{"keys":[{`) {
		t.Fatalf("jwks = %q, %v", j, err)
	}
	if len(c.TrustedIssuers) != 1 || c.TrustedIssuers[0].Replay != "allow" {
		t.Fatalf("trusted_issuers = %+v", c.TrustedIssuers)
	}
}

// Bad values stop start-up with an error naming the key.
func TestAssertionsErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		yaml, key string
	}{
		{`assertions: {max_lifetime: 0s}`, "assertions.max_lifetime"},
		{`assertions: {clock_skew: 1h}`, "assertions.clock_skew"},
		{`assertions: {jwks_min_refresh: 0s}`, "assertions.jwks_min_refresh"},
		{`assertions: {verified_cache_entries: -1}`, "assertions.verified_cache_entries"},
		{`clients: [{id: a, token_endpoint_auth_method: client_secret_jwt, secret_hash: "$x"}]`, "clients[0].token_endpoint_auth_method"},
		{`clients: [{id: a, token_endpoint_auth_method: private_key_jwt, jwks_uri: "http://idp.example/jwks"}]`, "clients[0].jwks_uri"},
		{`clients: [{id: a, token_endpoint_auth_method: private_key_jwt}]`, "clients[0].jwks"},
		{`clients: [{id: a, token_endpoint_auth_method: private_key_jwt, secret_hash: "$x", jwks_uri: "https://i/j"}]`, "clients[0].secret_hash"},
		{`clients: [{id: a, secret_hash: "$x", jwks_uri: "https://i/j"}]`, "clients[0].jwks_uri"},
		{`clients: [{id: a, token_endpoint_auth_method: private_key_jwt, jwks: {keys: [{kty: oct, k: c2VjcmV0}]}}]`, "clients[0].jwks"},
		{`trusted_issuers: [{issuer: "", jwks_uri: "https://i/j", allow_any_subject: true, scopes: [a]}]`, "trusted_issuers[0].issuer"},
		{`trusted_issuers: [{issuer: i, jwks_uri: "https://i/j", scopes: [a]}]`, "trusted_issuers[0].subjects"},
		{`trusted_issuers: [{issuer: i, jwks_uri: "https://i/j", allow_any_subject: true}]`, "trusted_issuers[0].scopes"},
		{`trusted_issuers: [{issuer: i, jwks_uri: "https://i/j", allow_any_subject: true, scopes: [a], replay: sometimes}]`, "trusted_issuers[0].replay"},
		{`trusted_issuers: [{issuer: i, allow_any_subject: true, scopes: [a]}]`, "trusted_issuers[0].jwks"},
	} {
		_, err := Load(writeYAML(t, "store: {driver: memory}\n"+tc.yaml+"\n"), []string{})
		if err == nil || !strings.Contains(err.Error(), "config: "+tc.key+":") {
			t.Errorf("%s: err = %v, want one naming %s", tc.yaml, err, tc.key)
		}
	}
	// http jwks_uri is allowed with allow_http_jwks_uri.
	if _, err := Load(writeYAML(t, "store: {driver: memory}\nassertions: {allow_http_jwks_uri: true}\n"+
		`clients: [{id: a, token_endpoint_auth_method: private_key_jwt, jwks_uri: "http://127.0.0.1:1/jwks", scopes: [r]}]`+"\n"), []string{}); err != nil {
		t.Fatalf("http jwks_uri with allow_http_jwks_uri: %v", err)
	}
}
