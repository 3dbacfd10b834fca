package load

import (
	"math/bits"
	"time"
)

// Histogram records durations with a relative error below 1/128 (0.8%):
// values under 128ns are exact, larger ones keep their top 8 significant
// bits (a log-linear layout, as HdrHistogram does). The zero value is
// ready to use; it is not safe for concurrent use.
type Histogram struct {
	counts []uint64
	n      uint64
	min    time.Duration
	max    time.Duration
	sum    time.Duration
}

const subBuckets = 128

func bucketOf(v uint64) int {
	if v < subBuckets {
		return int(v)
	}
	e := bits.Len64(v) - 8 // shift that leaves 8 significant bits
	m := v >> uint(e)      // in [128, 256)
	return subBuckets + e*subBuckets + int(m-subBuckets)
}

// bucketValue is the midpoint of bucket i.
func bucketValue(i int) uint64 {
	if i < subBuckets {
		return uint64(i)
	}
	e := (i - subBuckets) / subBuckets
	m := uint64(i-subBuckets)%subBuckets + subBuckets
	lo := m << uint(e)
	return lo + ((uint64(1)<<uint(e))-1)/2
}

// Record adds one duration (negative ones count as 0).
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	i := bucketOf(uint64(d))
	if i >= len(h.counts) {
		n := make([]uint64, i+1+subBuckets)
		copy(n, h.counts)
		h.counts = n
	}
	h.counts[i]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.n++
	h.sum += d
}

// Merge adds o's samples to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.n == 0 {
		return
	}
	if len(o.counts) > len(h.counts) {
		n := make([]uint64, len(o.counts))
		copy(n, h.counts)
		h.counts = n
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of samples.
func (h *Histogram) Count() uint64 { return h.n }

// Min and Max are the exact extremes (0 when empty).
func (h *Histogram) Min() time.Duration { return h.min }

// Max is the largest sample.
func (h *Histogram) Max() time.Duration { return h.max }

// Mean is the exact mean (0 when empty).
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// Quantile returns the q-quantile (0 <= q <= 1): the value of the sample
// of rank ceil(q*n), to within the histogram's precision and clamped to
// [Min, Max]. It is 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q <= 0 {
		return h.min
	}
	if q >= 1 {
		return h.max
	}
	rank := uint64(q*float64(h.n) + 0.9999999)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := time.Duration(bucketValue(i))
			if v < h.min {
				v = h.min
			}
			if v > h.max {
				v = h.max
			}
			return v
		}
	}
	return h.max
}
