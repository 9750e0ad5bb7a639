package config

import (
	"errors"
	"math"
	"time"

	"github.com/tokengw/tokengw/internal/clientauth"
)

// Auth is client authentication: the hashes tokengw makes for generated
// secrets, the verified-credential cache, the cap on concurrent hash
// verifications, and the cache of store-managed clients.
type Auth struct {
	Argon2              Argon2        `koanf:"argon2"`                // parameters of the hashes tokengw makes
	CacheEntries        int           `koanf:"cache_entries"`         // verified-credential cache bound, entries; 0 = off
	CacheMaxAge         time.Duration `koanf:"cache_max_age"`         // re-verify a cached credential after this; 0 = never
	MaxConcurrentVerify int           `koanf:"max_concurrent_verify"` // hash verifications at once; 0 = number of CPUs
	VerifyQueueTimeout  time.Duration `koanf:"verify_queue_timeout"`  // wait for a verification slot before 503
	ClientRefresh       time.Duration `koanf:"client_refresh"`        // store-managed clients are re-read after this; 0 = every request
	ClientCacheEntries  int           `koanf:"client_cache_entries"`  // bound of the store-client cache (known and unknown ids each)
}

// Argon2 are argon2id cost parameters (RFC 9106).
type Argon2 struct {
	MemoryKiB int `koanf:"memory_kib"` // m, KiB
	Time      int `koanf:"time"`       // t, passes
	Threads   int `koanf:"threads"`    // p, lanes
}

// Caps of the auth section.
const (
	maxCacheEntries  = 10_000_000
	maxClientRefresh = 10 * time.Minute
)

func (a Auth) validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	var pe *clientauth.ParamError
	if err := a.Argon2.Params().Validate(); errors.As(err, &pe) {
		name := map[string]string{"m": "memory_kib", "t": "time", "p": "threads"}[pe.Param]
		add(bad("auth.argon2."+name, "%s (RFC 9106; at most 2 GiB, 100 passes, 64 lanes, memory_kib × time <= 4194304)", pe.Msg))
	}
	if a.CacheEntries < 0 || a.CacheEntries > maxCacheEntries {
		add(bad("auth.cache_entries", "must be between 0 (cache off) and %d, got %d", maxCacheEntries, a.CacheEntries))
	}
	if a.CacheMaxAge < 0 {
		add(bad("auth.cache_max_age", "must be >= 0 (0 = no age limit), got %v", a.CacheMaxAge))
	}
	if a.MaxConcurrentVerify < 0 || a.MaxConcurrentVerify > 4096 {
		add(bad("auth.max_concurrent_verify", "must be between 0 (number of CPUs) and 4096, got %d", a.MaxConcurrentVerify))
	}
	if a.VerifyQueueTimeout <= 0 {
		add(bad("auth.verify_queue_timeout", "must be a positive duration, got %v", a.VerifyQueueTimeout))
	}
	if a.ClientRefresh < 0 || a.ClientRefresh > maxClientRefresh {
		add(bad("auth.client_refresh", "must be between 0 (no caching) and %v, got %v", maxClientRefresh, a.ClientRefresh))
	}
	if a.ClientCacheEntries < 1 || a.ClientCacheEntries > maxCacheEntries {
		add(bad("auth.client_cache_entries", "must be between 1 and %d, got %d", maxCacheEntries, a.ClientCacheEntries))
	}
	return errors.Join(errs...)
}

// Params are a's values as clientauth takes them; values outside the
// parameters' ranges become ones that Validate refuses.
func (a Argon2) Params() clientauth.Argon2Params {
	clamp := func(v int, max uint64) uint64 {
		if v < 0 {
			return 0
		}
		return min(uint64(v), max)
	}
	return clientauth.Argon2Params{
		Memory:  uint32(clamp(a.MemoryKiB, math.MaxUint32)),
		Time:    uint32(clamp(a.Time, math.MaxUint32)),
		Threads: uint8(clamp(a.Threads, math.MaxUint8)),
	}
}
