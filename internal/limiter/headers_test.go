package limiter

import (
	"math"
	"net/http"
	"testing"
	"time"
)

func TestRetryAfterSeconds(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{
		{-time.Second, 1},
		{0, 1},
		{1, 1},
		{200 * time.Millisecond, 1},
		{time.Second, 1},
		{time.Second + 1, 2},
		{2 * time.Second, 2},
		{20 * time.Second, 20},
		{20*time.Second - 1, 20},
		{20*time.Second + 1, 21},
		{math.MaxInt64, math.MaxInt32},
	} {
		if got := RetryAfterSeconds(tc.d); got != tc.want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

func TestSetHeaders(t *testing.T) {
	for _, tc := range []struct {
		name       string
		d          Decision
		policy     string
		wantPolicy string
		wantLimit  string
		wantRetry  string
	}{
		{
			name:       "draft example",
			d:          Decision{Allowed: true, Limit: Limit{Rate: 0.5, Burst: 5}, Remaining: 3, Reset: 2 * time.Second},
			policy:     "default",
			wantPolicy: `"default";q=5;w=10`,
			wantLimit:  `"default";r=3;t=2`,
		},
		{
			name:       "full bucket has no reset",
			d:          Decision{Allowed: true, Limit: Limit{Rate: 1, Burst: 1}, Remaining: 1},
			policy:     "default",
			wantPolicy: `"default";q=1;w=1`,
			wantLimit:  `"default";r=1`,
		},
		{
			name:       "reset rounded up",
			d:          Decision{Allowed: true, Limit: Limit{Rate: 3, Burst: 10}, Remaining: 0, Reset: 333333334},
			policy:     "client",
			wantPolicy: `"client";q=10;w=4`,
			wantLimit:  `"client";r=0;t=1`,
		},
		{
			name:       "rejected",
			d:          Decision{Limit: Limit{Rate: 0.05, Burst: 3}, RetryAfter: 19*time.Second + 1, Reset: 19*time.Second + 1},
			policy:     "failed-auth",
			wantPolicy: `"failed-auth";q=3;w=60`,
			wantLimit:  `"failed-auth";r=0;t=20`,
			wantRetry:  "20",
		},
		{
			name:       "policy name escaped",
			d:          Decision{Allowed: true, Limit: Limit{Rate: 1, Burst: 2}, Remaining: 1, Reset: time.Second},
			policy:     "a\"b\\c\n",
			wantPolicy: `"a\"b\\c_";q=2;w=2`,
			wantLimit:  `"a\"b\\c_";r=1;t=1`,
		},
		{
			name:       "empty policy name",
			d:          Decision{Allowed: true, Limit: Limit{Rate: 1, Burst: 2}, Remaining: 1, Reset: time.Second},
			wantPolicy: `"default";q=2;w=2`,
			wantLimit:  `"default";r=1;t=1`,
		},
		{
			name:       "huge window capped to 15 digits",
			d:          Decision{Allowed: true, Limit: Limit{Rate: 1e-300, Burst: 1}},
			policy:     "p",
			wantPolicy: `"p";q=1;w=999999999999999`,
			wantLimit:  `"p";r=0`,
		},
		{
			name:   "unlimited writes nothing",
			d:      Decision{Allowed: true},
			policy: "default",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			h.Set("RateLimit", "stale")
			if tc.wantLimit == "" {
				h = http.Header{}
			}
			tc.d.SetHeaders(h, tc.policy)
			if got := h.Get("RateLimit-Policy"); got != tc.wantPolicy {
				t.Errorf("RateLimit-Policy = %q, want %q", got, tc.wantPolicy)
			}
			if got := h.Values("RateLimit"); tc.wantLimit != "" && (len(got) != 1 || got[0] != tc.wantLimit) {
				t.Errorf("RateLimit = %q, want [%q]", got, tc.wantLimit)
			}
			if got := h.Get("Retry-After"); got != tc.wantRetry {
				t.Errorf("Retry-After = %q, want %q", got, tc.wantRetry)
			}
			if tc.wantLimit == "" && len(h) != 0 {
				t.Errorf("headers written for an unlimited decision: %v", h)
			}
		})
	}
}

// TestSetHeadersFromSet ties the header helper to real decisions.
func TestSetHeadersFromSet(t *testing.T) {
	s, _ := newSet(t, Options{})
	l := Limit{Rate: 0.5, Burst: 5}
	s.Allow("k", l)
	h := http.Header{}
	s.Allow("k", l).SetHeaders(h, "default")
	if got, want := h.Get("RateLimit-Policy"), `"default";q=5;w=10`; got != want {
		t.Errorf("RateLimit-Policy = %q, want %q", got, want)
	}
	if got, want := h.Get("RateLimit"), `"default";r=3;t=2`; got != want {
		t.Errorf("RateLimit = %q, want %q", got, want)
	}
	for range 3 {
		s.Allow("k", l)
	}
	h = http.Header{}
	s.Allow("k", l).SetHeaders(h, "default")
	if got, want := h.Get("RateLimit"), `"default";r=0;t=2`; got != want {
		t.Errorf("rejected: RateLimit = %q, want %q", got, want)
	}
	if got, want := h.Get("Retry-After"), "2"; got != want {
		t.Errorf("rejected: Retry-After = %q, want %q", got, want)
	}
}
