package quota

import (
	"math"
	"time"
)

// Mutations is the controller mutation quota (KIP-599) of one
// CreateTopics, CreatePartitions or DeleteTopics request. Not safe for
// concurrent use; one request uses it from one goroutine.
type Mutations struct {
	m      *Manager
	s      *sensor // nil: no quota applies
	st     *stats
	limit  float64
	burst  float64
	strict bool

	throttle float64 // ms, from the last violation
	at       int64   // ms when throttle was computed
	recorded float64
}

// Mutations starts the controller mutation accounting of one request.
// strict requests (CreateTopics v6+, CreatePartitions v3+, DeleteTopics
// v5+) are refused while the quota is exhausted; older ones are always
// accepted and throttled afterwards, as Kafka's permissive quota does.
func (m *Manager) Mutations(user, clientID string, strict bool) *Mutations {
	q := &Mutations{m: m, strict: strict}
	if m.active[ControllerMutation].Load() == 0 {
		return q
	}
	now := m.nowMs()
	res, s, ok := m.resolve(ControllerMutation, user, clientID, now)
	if !ok {
		return q
	}
	q.s, q.st, q.limit = s, res.stats, res.limit
	q.burst = float64(m.samples[ControllerMutation]-1) * float64(m.window[ControllerMutation]) / 1000 * res.limit
	return q
}

// Record accounts for n partition mutations. A strict request gets
// ErrThrottled, and nothing is recorded, when the bucket is already
// negative (Kafka's StrictControllerMutationQuota checks before it
// records, so one request may take the bucket below zero). A permissive
// request is always recorded.
func (q *Mutations) Record(n int) error {
	if q.s == nil || n <= 0 {
		return nil
	}
	now := q.m.nowMs()
	q.s.mu.Lock()
	defer q.s.mu.Unlock()
	q.s.used = now
	if q.strict {
		if tokens := q.s.bucket.measure(now, q.limit, q.burst); tokens < 0 {
			q.violated(tokens, now)
			return ErrThrottled
		}
		q.s.bucket.record(float64(n), now, q.limit, q.burst)
		q.recorded += float64(n)
		return nil
	}
	q.s.bucket.record(float64(n), now, q.limit, q.burst)
	q.recorded += float64(n)
	if tokens := q.s.bucket.measure(now, q.limit, q.burst); tokens < 0 {
		q.violated(tokens, now)
	}
	return nil
}

// violated keeps the throttle of a negative bucket: the time it takes to
// refill to zero (Kafka: -tokens/quota seconds).
func (q *Mutations) violated(tokens float64, now int64) {
	q.throttle = min(math.Round(-tokens/q.limit*1000), math.MaxInt32)
	q.at = now
}

// Throttle is the throttle time the response carries: the last violation's
// throttle less the time since it was computed.
func (q *Mutations) Throttle() time.Duration {
	if q.throttle == 0 {
		return 0
	}
	left := q.throttle - float64(q.m.nowMs()-q.at)
	return time.Duration(max(left, 0)) * time.Millisecond
}

// Done counts the request in the statistics; applied is the throttle the
// response was given.
func (q *Mutations) Done(applied time.Duration) {
	if q.st != nil {
		q.st.add(q.recorded, applied)
	}
}
