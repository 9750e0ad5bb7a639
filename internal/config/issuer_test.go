package config

import (
	"errors"
	"testing"
	"time"
)

func TestIssuerJWTKeys(t *testing.T) {
	c, err := Load("", []string{})
	if err != nil {
		t.Fatal(err)
	}
	i := c.Issuer
	if i.TokenFormat != "opaque" || i.JWT() || i.Signing.Alg != "ES256" || i.Signing.RotationPeriod != 0 ||
		i.JWKSMaxAge != 300*time.Second || i.DefaultAudience() != "http://127.0.0.1:8080" {
		t.Fatalf("defaults: %+v", i)
	}
	c, err = Load("", []string{"TOKENGW_ISSUER__TOKEN_FORMAT=jwt", "TOKENGW_ISSUER__SIGNING__ALG=RS256",
		"TOKENGW_ISSUER__SIGNING__ROTATION_PERIOD=24h", "TOKENGW_ISSUER__AUDIENCE=https://api.example", "TOKENGW_ISSUER__JWKS_MAX_AGE=60s"})
	if err != nil {
		t.Fatal(err)
	}
	if i := c.Issuer; !i.JWT() || i.Signing.Alg != "RS256" || i.Signing.RotationPeriod != 24*time.Hour ||
		i.DefaultAudience() != "https://api.example" || i.JWKSMaxAge != time.Minute {
		t.Fatalf("env: %+v", i)
	}

	for _, tc := range []struct {
		env []string
		key string
	}{
		{[]string{"TOKENGW_ISSUER__TOKEN_FORMAT=paseto"}, "issuer.token_format"},
		{[]string{"TOKENGW_ISSUER__SIGNING__ALG=HS256"}, "issuer.signing.alg"},
		{[]string{"TOKENGW_ISSUER__SIGNING__ALG=none"}, "issuer.signing.alg"},
		{[]string{"TOKENGW_ISSUER__SIGNING__ROTATION_PERIOD=10m"}, "issuer.signing.rotation_period"},
		{[]string{"TOKENGW_ISSUER__SIGNING__ROTATION_PERIOD=-1h"}, "issuer.signing.rotation_period"},
		{[]string{"TOKENGW_ISSUER__JWKS_MAX_AGE=1h", "TOKENGW_ISSUER__SIGNING__ROTATION_PERIOD=90m"}, "issuer.signing.rotation_period"},
		{[]string{"TOKENGW_ISSUER__JWKS_MAX_AGE=0s"}, "issuer.jwks_max_age"},
		{[]string{"TOKENGW_ISSUER__JWKS_MAX_AGE=48h"}, "issuer.jwks_max_age"},
		{[]string{"TOKENGW_ISSUER__AUDIENCE=not a uri"}, "issuer.audience"},
		{[]string{"TOKENGW_ISSUER__AUDIENCE=https://a.example/#x"}, "issuer.audience"},
	} {
		_, err := Load("", tc.env)
		var ke *KeyError
		if !errors.As(err, &ke) || ke.Key != tc.key {
			t.Errorf("%v: err = %v, want a KeyError naming %s", tc.env, err, tc.key)
		}
	}
}

func TestClientResources(t *testing.T) {
	c, err := Load("", []string{})
	if err != nil {
		t.Fatal(err)
	}
	c.Clients = []Client{{ID: "a", SecretHash: "$x", Resources: []string{"https://api.example/", "relative"}}}
	err = c.Validate()
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("err = %v, want the joined errors of Validate", err)
	}
	for _, e := range joined.Unwrap() {
		var ke *KeyError
		if errors.As(e, &ke) && ke.Key == "clients[0].resources[1]" {
			return
		}
	}
	t.Fatalf("err = %v, want a KeyError naming clients[0].resources[1]", err)
}
