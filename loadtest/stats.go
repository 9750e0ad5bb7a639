package main

import (
	"math/bits"
	"time"
)

// histogram is a log-linear latency histogram in microseconds: values below
// 64 µs are exact, above that every power of two is split into 64 buckets,
// so a reported percentile is within 1.6% of the true value. It covers up to
// 2^40 µs (12 days); larger values land in the last bucket. The maximum is
// kept exactly. The zero value is empty and ready to use; it is not safe for
// concurrent use.
type histogram struct {
	counts []uint64
	n      uint64
	sum    time.Duration
	max    time.Duration
}

const (
	histSubBits = 6
	histSub     = 1 << histSubBits
	histMaxExp  = 40
	histBuckets = histSub + (histMaxExp-histSubBits+1)*histSub
)

// histIndex is the bucket of v microseconds.
func histIndex(v uint64) int {
	if v < histSub {
		return int(v)
	}
	e := bits.Len64(v) - 1 // v in [2^e, 2^(e+1)), e >= histSubBits
	if e > histMaxExp {
		return histBuckets - 1
	}
	m := v >> (e - histSubBits) // in [64, 128)
	return histSub + (e-histSubBits)*histSub + int(m-histSub)
}

// histValue is the midpoint of bucket i, in microseconds.
func histValue(i int) float64 {
	if i < histSub {
		return float64(i)
	}
	e := (i-histSub)/histSub + histSubBits
	m := uint64((i-histSub)%histSub + histSub)
	lo := m << (e - histSubBits)
	width := uint64(1) << (e - histSubBits)
	return float64(lo) + float64(width)/2
}

func (h *histogram) add(d time.Duration) {
	if d < 0 {
		d = 0
	}
	if h.counts == nil {
		h.counts = make([]uint64, histBuckets)
	}
	h.counts[histIndex(uint64(d/time.Microsecond))]++
	h.n++
	h.sum += d
	h.max = max(h.max, d)
}

// quantile returns the q-quantile (0 < q <= 1) by the nearest-rank method;
// 0 when empty. It never exceeds the exact maximum.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.999999)
	rank = min(max(rank, 1), h.n)
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			d := time.Duration(histValue(i) * float64(time.Microsecond))
			return min(d, h.max)
		}
	}
	return h.max
}

func (h *histogram) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// counts are the outcomes of a set of requests.
type counts struct {
	Requests   int64 `json:"requests"`
	OK         int64 `json:"ok"`          // 2xx
	Limited    int64 `json:"limited"`     // 429
	Other      int64 `json:"other"`       // any other HTTP status
	Errors     int64 `json:"errors"`      // no HTTP response: connection errors, timeouts
	RetryAfter int64 `json:"retry_after"` // 429 responses that carried Retry-After
}

// bucket is one second of an attack, by completion time.
type bucket struct {
	counts
	hist histogram
}

// series is an attack's time line in one-second buckets, indexed by the
// second (since the attack began) in which each request completed.
type series struct {
	buckets []*bucket
}

func (s *series) at(sec int) *bucket {
	if sec < 0 {
		sec = 0
	}
	for len(s.buckets) <= sec {
		s.buckets = append(s.buckets, &bucket{})
	}
	return s.buckets[sec]
}
