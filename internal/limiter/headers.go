package limiter

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tokengw/tokengw/internal/oauth"
)

// maxSFInteger is the largest Integer a structured field may carry
// (RFC 9651 §3.3.1: at most 15 digits).
const maxSFInteger = 999_999_999_999_999

// RetryAfterSeconds converts a wait into a Retry-After value by
// oauth.RetryAfter's rule, capped at math.MaxInt32.
func RetryAfterSeconds(d time.Duration) int {
	return int(min(oauth.RetryAfter(d), math.MaxInt32))
}

// SetHeaders writes d onto h as the fields of
// draft-ietf-httpapi-ratelimit-headers-10, under the policy name policy
// (e.g. "default"), replacing any earlier values:
//
//	RateLimit-Policy: "default";q=5;w=10
//	RateLimit: "default";r=3;t=2
//
// q is Burst, w is Burst/Rate in seconds (rounded up), r is Remaining and t
// is Reset in seconds (rounded up; omitted when the bucket is full). When d
// was not allowed it also sets Retry-After from d.RetryAfter, which is never
// earlier than t, as the draft requires. It writes nothing for an unlimited
// decision.
func (d Decision) SetHeaders(h http.Header, policy string) {
	if d.Limit.Unlimited() {
		return
	}
	l := d.Limit.normalized()
	name := sfString(policy)

	var b strings.Builder
	b.Grow(len(name) + 32)
	b.WriteString(name)
	b.WriteString(";q=")
	b.WriteString(strconv.FormatInt(min(int64(l.Burst), maxSFInteger), 10))
	b.WriteString(";w=")
	b.WriteString(strconv.FormatInt(windowSeconds(l), 10))
	h.Set("RateLimit-Policy", b.String())

	b.Reset()
	b.WriteString(name)
	b.WriteString(";r=")
	b.WriteString(strconv.FormatInt(min(int64(max(d.Remaining, 0)), maxSFInteger), 10))
	if d.Reset > 0 {
		b.WriteString(";t=")
		b.WriteString(strconv.FormatInt(min(int64(RetryAfterSeconds(d.Reset)), maxSFInteger), 10))
	}
	h.Set("RateLimit", b.String())

	if !d.Allowed {
		h.Set("Retry-After", strconv.Itoa(RetryAfterSeconds(d.RetryAfter)))
	}
}

// windowSeconds is the time an empty bucket takes to refill, in whole
// seconds rounded up, at least 1 (the draft's w must be positive).
func windowSeconds(l Limit) int64 {
	w := math.Ceil(float64(l.Burst) / l.Rate)
	if !(w >= 1) {
		return 1
	}
	if w > maxSFInteger {
		return maxSFInteger
	}
	return int64(w)
}

// sfString renders s as a structured-field String (RFC 9651 §3.3.3):
// quoted, with '"' and '\' escaped; characters outside printable ASCII,
// which a String cannot hold, become '_'. An empty name becomes "default".
func sfString(s string) string {
	if s == "" {
		s = "default"
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c > 0x7e:
			b.WriteByte('_')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
