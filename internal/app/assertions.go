package app

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokengw/tokengw/internal/assertion"
	"github.com/tokengw/tokengw/internal/clientauth"
	"github.com/tokengw/tokengw/internal/config"
	"github.com/tokengw/tokengw/internal/oauth"
	"github.com/tokengw/tokengw/internal/server"
	"github.com/tokengw/tokengw/internal/store"
)

// Assertions is the signed-JWT side of an App: private_key_jwt client
// authentication and, with trusted_issuers, the jwt-bearer grant.
type Assertions struct {
	Verifier *assertion.Verifier
	Sources  *assertion.Sources
	JWTAuth  *clientauth.JWTAuthenticator
	Grant    *assertion.Grant // nil without trusted_issuers
}

// newAssertions builds the verifier, the key sources, the private_key_jwt
// authenticator and the grant from the configuration. jtis is the store.
func newAssertions(cfg *config.Config, st store.Store, lookup clientauth.Lookup, now func() time.Time) (*Assertions, error) {
	jtis, ok := st.(store.Assertions)
	if !ok {
		return nil, errors.New("app: the store does not record assertion identifiers")
	}
	ac := cfg.Assertions
	iss := strings.TrimSuffix(cfg.Issuer.URL, "/")
	skew := ac.ClockSkew
	if skew == 0 {
		skew = -1 // configured 0: no skew (the Verifier's 0 is its default)
	}
	entries := ac.VerifiedCacheEntries
	if entries == 0 {
		entries = -1 // configured 0: cache off
	}
	v, err := assertion.New(assertion.Options{
		Issuer: iss, TokenEndpoint: iss + "/oauth2/token", StrictAudience: ac.StrictAudience,
		MaxLifetime: ac.MaxLifetime, ClockSkew: skew, CacheEntries: entries,
		JTIs: jtis, StoreTimeout: cfg.Server.Timeouts.Store, Now: now,
	})
	if err != nil {
		return nil, err
	}
	sources, err := assertion.NewSources(assertion.RemoteOptions{
		MinRefresh: ac.JWKSMinRefresh, AllowHTTP: ac.AllowHTTPJWKSURI, Now: now,
	}, 0)
	if err != nil {
		return nil, err
	}
	out := &Assertions{Verifier: v, Sources: sources}
	if out.JWTAuth, err = clientauth.NewJWT(clientauth.JWTOptions{Verifier: v, Lookup: lookup, Sources: sources}); err != nil {
		return nil, err
	}
	if len(cfg.TrustedIssuers) == 0 {
		return out, nil
	}
	list := make([]assertion.TrustedIssuer, 0, len(cfg.TrustedIssuers))
	for i, ti := range cfg.TrustedIssuers {
		jwks, err := config.JWKSJSON(ti.JWKS)
		if err != nil {
			return nil, fmt.Errorf("config: trusted_issuers[%d].jwks: %w", i, err)
		}
		src, err := sources.For(jwks, ti.JWKSURI)
		if err != nil {
			return nil, fmt.Errorf("config: trusted_issuers[%d]: %w", i, err)
		}
		subjects := make(map[string]bool, len(ti.Subjects))
		for _, s := range ti.Subjects {
			subjects[s] = true
		}
		list = append(list, assertion.TrustedIssuer{
			Issuer: ti.Issuer, Keys: src, Subjects: subjects, AllowAnySubject: ti.AllowAnySubject,
			Scopes: oauth.NewScope(ti.Scopes...).Tokens(), TokenTTL: ti.TokenTTL, OneTime: ti.Replay != "allow",
		})
	}
	issuers, err := assertion.NewIssuers(list)
	if err != nil {
		return nil, err
	}
	if out.Grant, err = assertion.NewGrant(v, issuers); err != nil {
		return nil, err
	}
	return out, nil
}

// collectors are the assertion metrics.
func (as *Assertions) collectors() []prometheus.Collector {
	v := as.Verifier
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tokengw_assertion_signature_verifications_total",
			Help: "Signatures of JWT assertions verified (verified-JWT cache misses).",
		}, func() float64 { return float64(v.Verifications()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tokengw_assertion_cache_hits_total",
			Help: "JWT assertions answered by the verified-JWT cache (no signature verification).",
		}, func() float64 { return float64(v.CacheHits()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tokengw_assertion_auth_failures_total",
			Help: "private_key_jwt client authentications refused.",
		}, func() float64 { return float64(as.JWTAuth.Failures()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tokengw_assertion_cache_entries",
			Help: "Entries in the verified-JWT cache.",
		}, func() float64 { return float64(v.CacheLen()) }),
	}
}

// bearerGrant is the Grant as a server.BearerGrant: nil (not a typed nil)
// without trusted issuers, so the server answers unsupported_grant_type.
func (as *Assertions) bearerGrant() server.BearerGrant {
	if as.Grant == nil {
		return nil
	}
	return as.Grant
}
