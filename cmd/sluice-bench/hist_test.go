package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistogramBucketBounds(t *testing.T) {
	t.Parallel()
	values := []int64{0, 1, 127, 128, 255, 256, 257, 511, 512, 1000, 1 << 20, 1<<20 + 1, 123456789, math.MaxInt64}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		values = append(values, rng.Int64N(1<<40))
	}
	for _, v := range values {
		i := bucketOf(v)
		if i < 0 || i >= numBuckets {
			t.Fatalf("bucketOf(%d) = %d, outside [0, %d)", v, i, numBuckets)
		}
		lo, hi := bucketRange(i)
		if v < lo || v > hi {
			t.Fatalf("value %d in bucket %d whose range is [%d, %d]", v, i, lo, hi)
		}
		if width := hi - lo + 1; v >= 1<<(subBits+1) && width > lo>>subBits {
			t.Fatalf("bucket %d [%d, %d] is wider than 1/%d of its lower bound", i, lo, hi, 1<<subBits)
		}
	}
}

func TestHistogramBucketsContiguous(t *testing.T) {
	t.Parallel()
	next := int64(0)
	for i := range numBuckets {
		lo, hi := bucketRange(i)
		if lo != next {
			t.Fatalf("bucket %d starts at %d, want %d", i, lo, next)
		}
		if hi < lo {
			t.Fatalf("bucket %d has hi %d < lo %d", i, hi, lo)
		}
		next = hi + 1
	}
	if next != math.MinInt64 { // the last bucket ends at MaxInt64, so next wrapped
		t.Fatalf("buckets end before MaxInt64: next would be %d", next)
	}
}

func TestHistogramQuantileExactForSmallValues(t *testing.T) {
	t.Parallel()
	h := newHistogram()
	for v := 1; v <= 200; v++ {
		h.Record(time.Duration(v))
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{
		{0, 1}, {0.005, 1}, {0.5, 100}, {0.99, 198}, {0.999, 200}, {1, 200},
	}
	for _, tt := range tests {
		if got := h.Quantile(tt.q); got != tt.want {
			t.Errorf("Quantile(%v) = %d, want %d", tt.q, got, tt.want)
		}
	}
	if h.Count() != 200 || h.Min() != 1 || h.Max() != 200 {
		t.Errorf("count %d min %d max %d, want 200 1 200", h.Count(), h.Min(), h.Max())
	}
	if got, want := h.Mean(), time.Duration(100); got != want { // 100.5 truncated
		t.Errorf("Mean = %d, want %d", got, want)
	}
}

// TestHistogramQuantileBoundedError checks the promise of Quantile against
// the exact nearest-rank value of a sorted sample: never low, high by under
// 1/128.
func TestHistogramQuantileBoundedError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		gen  func(*rand.Rand) int64
	}{
		{"uniform-ms", func(r *rand.Rand) int64 { return r.Int64N(int64(50 * time.Millisecond)) }},
		{"lognormal", func(r *rand.Rand) int64 { return int64(math.Exp(r.NormFloat64()*2+12)) + 1 }},
		{"bimodal", func(r *rand.Rand) int64 {
			if r.IntN(100) == 0 {
				return int64(20*time.Millisecond) + r.Int64N(int64(time.Millisecond))
			}
			return int64(200*time.Microsecond) + r.Int64N(int64(50*time.Microsecond))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(7, 11))
			h := newHistogram()
			sample := make([]int64, 20001)
			for i := range sample {
				sample[i] = tt.gen(rng)
				h.Record(time.Duration(sample[i]))
			}
			slices.Sort(sample)
			for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
				exact := sample[nearestRank(q, uint64(len(sample)))-1]
				got := int64(h.Quantile(q))
				if got < exact || float64(got-exact) > float64(exact)/128 {
					t.Errorf("q %v: got %d, exact %d (error %.4f%%)", q, got, exact, 100*float64(got-exact)/float64(exact))
				}
			}
		})
	}
}

func TestHistogramEmptyAndNegative(t *testing.T) {
	t.Parallel()
	h := newHistogram()
	if h.Quantile(0.99) != 0 || h.Mean() != 0 || h.Min() != 0 || h.Max() != 0 {
		t.Fatal("empty histogram reports non-zero values")
	}
	if latencyOf(h) != nil {
		t.Fatal("latencyOf an empty histogram is not nil")
	}
	h.Record(-time.Second)
	if h.Count() != 1 || h.Max() != 0 || h.Quantile(1) != 0 {
		t.Fatalf("negative duration not recorded as zero: count %d max %d", h.Count(), h.Max())
	}
}

func TestHistogramMerge(t *testing.T) {
	t.Parallel()
	a, b, all := newHistogram(), newHistogram(), newHistogram()
	for v := range 1000 {
		d := time.Duration(v * v)
		all.Record(d)
		if v%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(b)
	if a.Count() != all.Count() || a.Min() != all.Min() || a.Max() != all.Max() || a.Mean() != all.Mean() {
		t.Fatalf("merged summary differs: %d/%d/%d/%d vs %d/%d/%d/%d",
			a.Count(), a.Min(), a.Max(), a.Mean(), all.Count(), all.Min(), all.Max(), all.Mean())
	}
	for _, q := range []float64{0.5, 0.99, 0.999} {
		if a.Quantile(q) != all.Quantile(q) {
			t.Errorf("q %v: merged %d, direct %d", q, a.Quantile(q), all.Quantile(q))
		}
	}
}
