package main

import (
	"math"
	"math/bits"
	"time"
)

// subBits is how many bits below the leading one a bucket keeps. Values
// below 1<<(subBits+1) get a bucket each; above that a bucket spans 1<<shift
// values, so a bucket's width is at most 1/(1<<subBits) of its lower bound:
// the relative error of any reported value is under 0.8%.
const subBits = 7

// numBuckets covers every non-negative int64: the largest shift is
// 63-subBits-1 and the largest mantissa is 1<<(subBits+1)-1.
const numBuckets = (63-subBits-1)<<subBits + 1<<(subBits+1)

// histogram is a log-linear histogram of durations in nanoseconds, the
// layout HdrHistogram uses, cut down to what the benchmark needs. It records
// in constant time with no allocation, so it can sit in a producer's promise
// callback. It is not safe for concurrent use: callers serialize Record.
type histogram struct {
	counts   [numBuckets]uint64
	total    uint64
	min, max int64
	sum      float64
}

func newHistogram() *histogram { return &histogram{min: math.MaxInt64} }

// bucketOf returns the bucket index of a non-negative value v.
func bucketOf(v int64) int {
	shift := bits.Len64(uint64(v)) - subBits - 1
	if shift < 0 {
		shift = 0
	}
	return shift<<subBits + int(v>>uint(shift))
}

// bucketRange returns the lowest and highest values that land in bucket i.
func bucketRange(i int) (lo, hi int64) {
	shift := i>>subBits - 1
	if shift < 0 {
		shift = 0
	}
	mantissa := int64(i - shift<<subBits)
	lo = mantissa << uint(shift)
	return lo, lo + (int64(1) << uint(shift)) - 1
}

// Record adds one duration; negative durations (a clock that went backwards)
// count as zero.
func (h *histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)]++
	h.total++
	h.sum += float64(v)
	if v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
}

// Count is the number of recorded values.
func (h *histogram) Count() uint64 { return h.total }

// Max is the largest recorded value, exact; zero when empty.
func (h *histogram) Max() time.Duration { return time.Duration(h.max) }

// Min is the smallest recorded value, exact; zero when empty.
func (h *histogram) Min() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.min)
}

// Mean is the exact arithmetic mean; zero when empty.
func (h *histogram) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.total))
}

// Quantile returns the value at quantile q in [0, 1] by the nearest-rank
// method: the smallest recorded value v such that at least q of all values
// are <= v. It reports the highest value of v's bucket (never more than the
// exact maximum), so it errs high by under 1/128, never low. Empty: zero.
func (h *histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := nearestRank(q, h.total)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			_, hi := bucketRange(i)
			return time.Duration(min(hi, h.max))
		}
	}
	return time.Duration(h.max)
}

// Merge adds every value recorded in o to h.
func (h *histogram) Merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// nearestRank is the 1-based rank of quantile q among n > 0 sorted values:
// ceil(q*n), at least 1. The product is nudged down by a hair first so that
// q*n landing a rounding error above an integer (0.99*200) does not skip a
// rank.
func nearestRank(q float64, n uint64) uint64 {
	q = math.Max(0, math.Min(1, q))
	rank := uint64(math.Ceil(q*float64(n) - 1e-9))
	return max(1, min(rank, n))
}
