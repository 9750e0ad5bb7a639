package app

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/tokengw/tokengw/internal/config"
	"github.com/tokengw/tokengw/internal/issue"
	"github.com/tokengw/tokengw/internal/keyring"
	"github.com/tokengw/tokengw/internal/reuse"
	"github.com/tokengw/tokengw/internal/server"
	"github.com/tokengw/tokengw/internal/store"
)

// MaxTokenTTL is the longest token lifetime any validator accepts
// (issuer.token_ttl, clients[].token_ttl, the admin API): a retired signing
// key stays published that long after it stops signing, plus
// issuer.jwks_max_age.
const MaxTokenTTL = 30 * 24 * time.Hour

// NewKeyRing opens the JWT signing key ring on st (adding the first key to
// an empty ring), sealing private keys with store.seal_keys.
func NewKeyRing(ctx context.Context, cfg *config.Config, st store.Keys, now func() time.Time, log *slog.Logger) (*keyring.Ring, error) {
	sealer, err := newSealer(cfg)
	if err != nil {
		return nil, err
	}
	return keyring.New(ctx, keyring.Options{
		Store: st, Sealer: sealer, Alg: cfg.Issuer.Signing.Alg, JWKSMaxAge: cfg.Issuer.JWKSMaxAge,
		RotationPeriod: cfg.Issuer.Signing.RotationPeriod, MaxTokenTTL: MaxTokenTTL,
		StoreTimeout: 5 * cfg.Server.Timeouts.Store, Now: now, Logger: log,
	})
}

// minter is the token minter of issuer.token_format, and the key ring when
// it is jwt (nil otherwise).
func minter(ctx context.Context, cfg *config.Config, st store.Keys, now func() time.Time, log *slog.Logger) (reuse.Minter, *keyring.Ring, error) {
	if !cfg.Issuer.JWT() {
		return issue.Opaque{}, nil, nil
	}
	ring, err := NewKeyRing(ctx, cfg, st, now, log)
	if err != nil {
		return nil, nil, err
	}
	iss := strings.TrimSuffix(cfg.Issuer.URL, "/") // as the metadata's issuer
	return issue.JWT{Issuer: iss, Keys: ring, MaxLifetime: MaxTokenTTL}, ring, nil
}

// keySet is the ring as the server's KeySet; nil (no JWKS route) without one.
func keySet(ring *keyring.Ring) server.KeySet {
	if ring == nil {
		return nil
	}
	return ring
}
