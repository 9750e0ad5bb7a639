package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistIndexRoundTrip(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 1000, 12345, 1 << 20, 1<<40 - 1, 1 << 40, 1 << 50} {
		i := histIndex(v)
		if i < prev {
			t.Fatalf("histIndex not monotonic at %d: %d < %d", v, i, prev)
		}
		prev = i
		if i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d, beyond %d buckets", v, i, histBuckets)
		}
		if v < histSub && histValue(i) != float64(v) {
			t.Errorf("histValue(histIndex(%d)) = %v, want exact", v, histValue(i))
		}
		if v >= histSub && v < 1<<40 {
			if got := histValue(i); got < float64(v)*0.98 || got > float64(v)*1.02 {
				t.Errorf("histValue(histIndex(%d)) = %v, more than 2%% off", v, got)
			}
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	tests := []struct {
		name    string
		samples []time.Duration
		q       float64
		want    time.Duration
	}{
		{"empty", nil, 0.99, 0},
		{"one sample", []time.Duration{5 * time.Millisecond}, 0.5, 5 * time.Millisecond},
		{"max is exact", []time.Duration{time.Millisecond, 3 * time.Second}, 1, 3 * time.Second},
		{"p50 of 1..100 ms", seq(100, time.Millisecond), 0.5, 50 * time.Millisecond},
		{"p99 of 1..100 ms", seq(100, time.Millisecond), 0.99, 99 * time.Millisecond},
		{"sub-64µs exact", []time.Duration{10 * time.Microsecond, 20 * time.Microsecond, 30 * time.Microsecond}, 0.5, 20 * time.Microsecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h histogram
			for _, s := range tt.samples {
				h.add(s)
			}
			got := h.quantile(tt.q)
			if diff := float64(got - tt.want); diff > 0.02*float64(tt.want) || diff < -0.02*float64(tt.want) {
				t.Fatalf("quantile(%v) = %v, want %v ±2%%", tt.q, got, tt.want)
			}
		})
	}
}

func TestHistogramAgainstSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h histogram
	var all []time.Duration
	for range 20000 {
		d := time.Duration(r.ExpFloat64() * float64(2*time.Millisecond))
		all = append(all, d)
		h.add(d)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := all[int(q*float64(len(all)))-1]
		if got := h.quantile(q); float64(got-exact)/float64(exact) > 0.02 || float64(got-exact)/float64(exact) < -0.02 {
			t.Errorf("p%v = %v, exact %v", q*100, got, exact)
		}
	}
	if h.max != all[len(all)-1] || h.n != uint64(len(all)) {
		t.Errorf("max = %v, n = %d; want %v, %d", h.max, h.n, all[len(all)-1], len(all))
	}
}

func seq(n int, unit time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i+1) * unit
	}
	return out
}
