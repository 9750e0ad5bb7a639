package reuse

import (
	"testing"
	"time"
)

func TestPolicyReusable(t *testing.T) {
	p := Policy{MinRemaining: time.Minute, MaxElapsedFraction: 0.5}
	iat := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	exp := iat.Add(time.Hour)
	tests := []struct {
		name string
		now  time.Time
		want bool
	}{
		{"just issued", iat, true},
		{"well inside", iat.Add(10 * time.Minute), true},
		{"1ns before the fraction boundary", iat.Add(30*time.Minute - 1), true},
		{"exactly at the fraction boundary", iat.Add(30 * time.Minute), false},
		{"past the boundary", iat.Add(31 * time.Minute), false},
		{"exact expiry", exp, false},
		{"after expiry", exp.Add(time.Second), false},
		{"issuer clock 10s ahead of ours", iat.Add(-10 * time.Second), true},
		{"issuer clock far ahead: more than a lifetime", iat.Add(-2 * time.Hour), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.Reusable(iat, exp, tc.now); got != tc.want {
				t.Fatalf("Reusable(now=iat%+v) = %v, want %v", tc.now.Sub(iat), got, tc.want)
			}
		})
	}
}

func TestPolicyMinRemainingBoundary(t *testing.T) {
	// Fraction 1: only min_remaining limits reuse.
	p := Policy{MinRemaining: time.Minute, MaxElapsedFraction: 1}
	iat := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	exp := iat.Add(10 * time.Minute)
	tests := []struct {
		name string
		now  time.Time
		want bool
	}{
		{"remaining exactly min_remaining", exp.Add(-time.Minute), true},
		{"remaining 1ns below min_remaining", exp.Add(-time.Minute + 1), false},
		{"remaining 1ns above min_remaining", exp.Add(-time.Minute - 1), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.Reusable(iat, exp, tc.now); got != tc.want {
				t.Fatalf("Reusable = %v, want %v", got, tc.want)
			}
		})
	}
	// min_remaining 0 still never hands out less than a second.
	p0 := Policy{MaxElapsedFraction: 1}
	if p0.Reusable(iat, exp, exp.Add(-500*time.Millisecond)) {
		t.Fatal("reused a token with 0.5s left")
	}
	if (Policy{MaxElapsedFraction: 1}).Reusable(iat, iat, iat) {
		t.Fatal("reused a token with no lifetime")
	}
}

func TestPolicyWindow(t *testing.T) {
	tests := []struct {
		name     string
		p        Policy
		lifetime time.Duration
		want     time.Duration
	}{
		{"fraction bounds", Policy{MinRemaining: time.Minute, MaxElapsedFraction: 0.5}, time.Hour, 30 * time.Minute},
		{"min_remaining bounds", Policy{MinRemaining: 50 * time.Minute, MaxElapsedFraction: 0.5}, time.Hour, 10 * time.Minute},
		{"lifetime shorter than min_remaining", Policy{MinRemaining: time.Minute, MaxElapsedFraction: 0.5}, 30 * time.Second, 0},
		{"fraction 1, no min", Policy{MaxElapsedFraction: 1}, time.Hour, time.Hour - time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.Window(tc.lifetime); got != tc.want {
				t.Fatalf("Window(%v) = %v, want %v", tc.lifetime, got, tc.want)
			}
		})
	}
}

func TestExpiresIn(t *testing.T) {
	iat := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	exp := iat.Add(time.Hour)
	tests := []struct {
		name string
		now  time.Time
		want int64
	}{
		{"fresh", iat, 3600},
		{"floors", iat.Add(1500 * time.Millisecond), 3598},
		{"one ns in", iat.Add(1), 3599},
		{"expired", exp.Add(time.Second), 0},
		{"issuer clock ahead: capped at the lifetime", iat.Add(-time.Minute), 3600},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ExpiresIn(iat, exp, tc.now); got != tc.want {
				t.Fatalf("ExpiresIn = %d, want %d", got, tc.want)
			}
		})
	}
}
