package reuse

import "time"

// Policy decides whether a live token may be handed out again.
//
// A token issued at iat and expiring at exp (lifetime = exp - iat) is reusable
// at now while
//
//	elapsed   = now - iat < MaxElapsedFraction × lifetime, and
//	remaining = exp - now >= MinRemaining (and at least one second),
//
// so a caller never gets a token with less than MinRemaining left, and a
// token stops being handed out once a fraction of its life is gone (which
// bounds how long a leaked token keeps being re-issued).
type Policy struct {
	MinRemaining       time.Duration
	MaxElapsedFraction float64
}

// minUseful is the least remaining life worth handing out: expires_in is in
// whole seconds, and "expires_in": 0 helps nobody.
const minUseful = time.Second

// Reusable applies the policy. A token whose iat lies ahead of now (another
// replica's clock runs ahead) counts as just issued.
func (p Policy) Reusable(iat, exp, now time.Time) bool {
	lifetime := exp.Sub(iat)
	if lifetime <= 0 {
		return false
	}
	elapsed := max(now.Sub(iat), 0)
	remaining := exp.Sub(now)
	if remaining < p.MinRemaining || remaining < minUseful {
		return false
	}
	return float64(elapsed) < p.MaxElapsedFraction*float64(lifetime)
}

// Window is how long after minting a token of this lifetime may be reused:
// the lifetime of its reuse row. Zero means never.
func (p Policy) Window(lifetime time.Duration) time.Duration {
	w := time.Duration(p.MaxElapsedFraction * float64(lifetime))
	w = min(w, lifetime-p.MinRemaining, lifetime-minUseful)
	return max(w, 0)
}

// ExpiresIn is the expires_in of a response at now: floor(exp - now) in
// seconds, never more than the token's lifetime (clock skew between replicas)
// and never negative.
func ExpiresIn(iat, exp, now time.Time) int64 {
	remaining := exp.Sub(now)
	if lifetime := exp.Sub(iat); remaining > lifetime {
		remaining = lifetime
	}
	if remaining < 0 {
		return 0
	}
	return int64(remaining / time.Second)
}
