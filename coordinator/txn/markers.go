package txn

// Completing transactions: once Prepare* is durable the markers are
// written to every partition of the transaction (Config.Markers), then
// Complete* is written. Marker writes run on goroutines the coordinator
// tracks, at most maxMarkerWriters at once; the rest wait in a queue.
// Failures are retried with a backoff measured on the clock, for as long
// as the partition stays loaded here; a partition that refuses the markers
// for a newer coordinator stops the completion (Kafka's
// TransactionMarkerChannelManager and its completion handler).

import (
	"errors"
	"slices"
	"time"
)

const (
	// maxMarkerWriters bounds the WriteMarkers calls in flight, so that
	// loading a partition full of prepared transactions does not start a
	// goroutine for each.
	maxMarkerWriters = 64
	// markerRetryMin and markerRetryMax bound the backoff between
	// attempts to write markers or Complete*.
	markerRetryMin = 100 * time.Millisecond
	markerRetryMax = 10 * time.Second
)

// markerQueue is guarded by Coordinator.mu.
type markerQueue struct {
	queue   []*markerJob
	running int
}

type markerJob struct {
	ps *partState
	t  *txn
	m  Marker
}

// startCompletionLocked starts completing t, which is durable in Prepare*
// and marked pendingComplete: markers first, unless the transaction has no
// partitions (a version 2 abort of an empty transaction).
func (c *Coordinator) startCompletionLocked(ps *partState, t *txn) {
	if len(t.m.partitions) == 0 {
		c.enqueueCompleteLocked(ps, t)
		return
	}
	c.queueMarkersLocked(&markerJob{ps: ps, t: t, m: Marker{
		TransactionalID:    t.id,
		ProducerID:         t.m.producerID,
		ProducerEpoch:      t.m.epoch,
		Commit:             t.m.state == statePrepareCommit,
		CoordinatorEpoch:   ps.coordinatorEpoch,
		TransactionVersion: t.m.tv,
		Partitions:         slices.Clone(t.m.partitions),
	}})
}

// enqueueCompleteLocked queues Complete* for t, durable in Prepare*.
func (c *Coordinator) enqueueCompleteLocked(ps *partState, t *txn) {
	c.enqueueLocked(ps, &write{t: t, kind: writeComplete, next: t.m.completeTransit(c.nowMs())})
}

func (c *Coordinator) queueMarkersLocked(job *markerJob) {
	c.mu.markers.queue = append(c.mu.markers.queue, job)
	c.pumpMarkersLocked()
}

// pumpMarkersLocked starts queued marker jobs while there is room.
func (c *Coordinator) pumpMarkersLocked() {
	q := &c.mu.markers
	for !c.mu.closed && q.running < maxMarkerWriters && len(q.queue) > 0 {
		job := q.queue[0]
		q.queue[0] = nil
		q.queue = q.queue[1:]
		if !c.currentLocked(job.ps, job.t) {
			continue
		}
		q.running++
		c.goLocked(job.ps, func() { c.writeMarkers(job) })
	}
	if len(q.queue) == 0 {
		q.queue = nil
	}
}

func (c *Coordinator) writeMarkers(job *markerJob) {
	err := c.cfg.Markers.WriteMarkers(job.ps.ctx, job.m)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.markers.running--
	defer c.pumpMarkersLocked()
	ps, t := job.ps, job.t
	if !c.currentLocked(ps, t) || ps.ctx.Err() != nil {
		return
	}
	switch {
	case err == nil:
		t.attempts = 0
		c.enqueueCompleteLocked(ps, t)
	case errors.Is(err, ErrCoordinatorFenced):
		// A newer coordinator owns the transaction and completes it;
		// writing Complete* here would put a stale state in a log this
		// broker is about to stop leading.
		t.pending = pendingStopped
		c.log.Warn("transaction markers refused by a newer coordinator; leaving the transaction to it",
			"transactional_id", t.id, "partition", ps.partition, "coordinator_epoch", job.m.CoordinatorEpoch,
			"producer_id", job.m.ProducerID, "producer_epoch", job.m.ProducerEpoch, "err", err)
	default:
		c.log.Warn("writing transaction markers failed; will retry", "transactional_id", t.id,
			"partition", ps.partition, "attempt", t.attempts+1, "err", err)
		c.retryLaterLocked(ps, t, func() { c.queueMarkersLocked(job) })
	}
}

// retryLaterLocked runs f under the lock after a backoff, if t is still
// current then.
func (c *Coordinator) retryLaterLocked(ps *partState, t *txn, f func()) {
	t.attempts++
	d := markerRetryMin << min(t.attempts-1, 10)
	d = min(d, markerRetryMax)
	stopTimer(t.retry)
	t.retry = c.afterFunc(d, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.currentLocked(ps, t) {
			return
		}
		t.retry = nil
		f()
	})
}
