package quota

// sampledRate is Kafka's Rate over a SampledStat of windowed sums: see the
// package documentation. Times are in milliseconds, as Kafka's are, so the
// throttle arithmetic rounds the same way.
type sampledRate struct {
	samples []sample
	current int
}

type sample struct {
	start int64 // when the window began: the first value recorded in it
	value float64
}

// record adds value at now, opening a new window when the current one is
// complete.
func (r *sampledRate) record(value float64, now int64, n int, window int64) {
	s := r.currentSample(now)
	if now-s.start >= window {
		// The new window starts on the grid of the previous one, so that
		// windows tile time even after an idle gap.
		end := s.start + window
		s = r.advance(now-(now-end)%window, n)
	}
	s.value += value
}

func (r *sampledRate) currentSample(now int64) *sample {
	if len(r.samples) == 0 {
		r.samples = append(r.samples, sample{start: now})
	}
	return &r.samples[r.current]
}

func (r *sampledRate) advance(now int64, n int) *sample {
	r.current = (r.current + 1) % n
	if r.current >= len(r.samples) {
		r.samples = append(r.samples, sample{start: now})
		r.current = len(r.samples) - 1
	} else {
		r.samples[r.current] = sample{start: now}
	}
	return &r.samples[r.current]
}

// purge resets the windows that ended more than n windows ago.
func (r *sampledRate) purge(now int64, n int, window int64) {
	for i := range r.samples {
		if now-r.samples[i].start >= int64(n)*window {
			r.samples[i] = sample{start: now}
		}
	}
}

// windowSize is the time, in ms, the rate is measured over at now: since
// the oldest window began, but at least n-1 whole windows, and at least 1.
func (r *sampledRate) windowSize(now int64, n int, window int64) int64 {
	r.purge(now, n, window)
	oldest := r.currentSample(now).start
	for _, s := range r.samples {
		oldest = min(oldest, s.start)
	}
	elapsed := now - oldest
	if full := elapsed / window; full < int64(n-1) {
		elapsed += (int64(n-1) - full) * window
	}
	return max(elapsed, 1)
}

// measure returns the rate per second at now and the window size (ms) it
// was measured over.
func (r *sampledRate) measure(now int64, n int, window int64) (perSecond float64, sizeMs int64) {
	size := r.windowSize(now, n, window)
	var sum float64
	for _, s := range r.samples {
		sum += s.value
	}
	return sum / (float64(size) / 1000), size
}

// newest returns the start of the newest window: the last time a value
// opened one.
func (r *sampledRate) newest() int64 {
	var last int64
	for _, s := range r.samples {
		last = max(last, s.start)
	}
	return last
}

// tokenBucket is Kafka's TokenBucket stat (KIP-599): tokens refill at the
// quota per second up to burst; recording takes tokens, and the balance may
// go negative. A new bucket starts full.
type tokenBucket struct {
	tokens float64
	last   int64 // ms of the last refill; 0 for a new bucket
	fresh  bool
}

func (b *tokenBucket) refill(now int64, quota, burst float64) {
	if !b.fresh {
		b.tokens, b.fresh = burst, true
	} else {
		b.tokens = min(burst, b.tokens+quota*float64(now-b.last)/1000)
	}
	b.last = now
}

func (b *tokenBucket) measure(now int64, quota, burst float64) float64 {
	b.refill(now, quota, burst)
	return b.tokens
}

func (b *tokenBucket) record(value float64, now int64, quota, burst float64) {
	b.refill(now, quota, burst)
	b.tokens = min(burst, b.tokens-value)
}
