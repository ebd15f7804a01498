package txn

// The write path. Every change of a transactional id goes through its
// partition's writer: one goroutine per loaded partition that takes the
// queued writes, persists them as one batch (group commit: writes queued
// while a batch is in flight share the next one), and then, under the
// lock, applies each to memory or rolls its pending state back. So Persist
// calls for a partition never overlap, memory changes only after the log
// did, and nothing waits on a write while holding the lock.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
)

// maxBatchBytes bounds one Persist batch (keys and values), below the
// 1 MiB max.message.bytes a __transaction_state partition has by default;
// a larger record is written alone.
const maxBatchBytes = 512 << 10

type writeKind uint8

const (
	// writeTransition is a state change asked for by a request, a
	// timeout or a fence.
	writeTransition writeKind = iota
	// writeComplete is Complete* once the markers are written.
	writeComplete
	// writeExpire is the tombstone of an expired transactional id.
	writeExpire
)

// reason says why a transition is written, for what follows it: the log
// lines, Stats, and whether a client now holds the new epoch.
type reason uint8

const (
	reasonRequest      reason = iota // an ordinary request
	reasonInit                       // InitProducerId: the client gets the new epoch
	reasonFenceInit                  // InitProducerId bumped the epoch of another producer instance
	reasonFenceAbort                 // InitProducerId aborts the ongoing transaction of another instance
	reasonRecoverAbort               // InitProducerId (KIP-360) aborts the producer\'s own ongoing transaction
	reasonTimeout                    // the transaction timed out
	reasonEnd                        // EndTxn v5: the client gets the bumped epoch
)

// write is one record waiting for, or in, its partition's writer.
type write struct {
	t    *txn
	kind writeKind
	why  reason
	next meta // the state applied on success (writeTransition, writeComplete)
	rec  Record
	// done is closed once code holds the outcome; nil for writes nobody
	// waits for (timers, markers).
	done chan struct{}
	code int16
}

func (w *write) size() int { return len(w.rec.Key) + len(w.rec.Value) }

// enqueueLocked hands w to ps's writer. The caller has set w.t.pending.
func (c *Coordinator) enqueueLocked(ps *partState, w *write) {
	switch w.kind {
	case writeExpire:
		w.rec = tombstone(w.t.id)
	default:
		w.rec = stateRecord(w.t.id, w.next)
	}
	ps.queue = append(ps.queue, w)
	select {
	case ps.wake <- struct{}{}:
	default:
	}
}

// transitionLocked queues the state change of t to next and returns the
// write to wait for.
func (c *Coordinator) transitionLocked(ps *partState, t *txn, next meta, why reason) *write {
	t.pending = pendingWrite
	w := &write{t: t, kind: writeTransition, why: why, next: next, done: make(chan struct{})}
	c.enqueueLocked(ps, w)
	return w
}

// await waits for w's outcome. A request whose context ends first gets
// COORDINATOR_NOT_AVAILABLE, which clients retry; the write itself goes on
// and is applied (or not) as if the request were still there.
func (c *Coordinator) await(ctx context.Context, w *write) int16 {
	select {
	case <-w.done:
		return w.code
	case <-ctx.Done():
		return kerr.CoordinatorNotAvailable.Code
	}
}

// startWriterLocked starts ps's writer goroutine.
func (c *Coordinator) startWriterLocked(ps *partState) {
	c.goLocked(ps, func() { c.runWriter(ps) })
}

func (c *Coordinator) runWriter(ps *partState) {
	for {
		select {
		case <-ps.ctx.Done():
			c.mu.Lock()
			c.failQueuedLocked(ps)
			c.mu.Unlock()
			return
		case <-ps.wake:
		}
		for c.writeBatch(ps) {
		}
	}
}

// writeBatch persists the writes queued on ps, up to maxBatchBytes, and
// applies the outcome. It reports whether it wrote anything.
func (c *Coordinator) writeBatch(ps *partState) bool {
	c.mu.Lock()
	if ps.ctx.Err() != nil {
		c.failQueuedLocked(ps)
		c.mu.Unlock()
		return false
	}
	n, bytes := 0, 0
	for n < len(ps.queue) && (n == 0 || bytes+ps.queue[n].size() <= maxBatchBytes) {
		bytes += ps.queue[n].size()
		n++
	}
	if n == 0 {
		c.mu.Unlock()
		return false
	}
	batch := ps.queue[:n:n]
	ps.queue = ps.queue[n:]
	if len(ps.queue) == 0 {
		ps.queue = nil
	}
	ps.writing = true
	recs := make([]Record, len(batch))
	for i, w := range batch {
		recs[i] = w.rec
	}
	c.mu.Unlock()

	err := c.cfg.Persister.Persist(ps.ctx, ps.partition, recs)

	c.mu.Lock()
	defer c.mu.Unlock()
	ps.writing = false
	for _, w := range batch {
		c.finishWriteLocked(ps, w, err)
	}
	return true
}

// errPartitionGone finishes the writes still queued when a partition is
// dropped.
var errPartitionGone = errors.New("txn: partition dropped before the write")

func (c *Coordinator) failQueuedLocked(ps *partState) {
	q := ps.queue
	ps.queue = nil
	for _, w := range q {
		c.finishWriteLocked(ps, w, errPartitionGone)
	}
}

// finishWriteLocked applies the outcome of w: on success its state becomes
// durable in memory and whatever follows is started; on failure the
// pending state is rolled back so the id is usable again.
func (c *Coordinator) finishWriteLocked(ps *partState, w *write, err error) {
	defer func() {
		if w.done != nil {
			close(w.done)
		}
	}()
	t := w.t
	if !c.currentLocked(ps, t) {
		// Unloaded, reloaded or closed meanwhile: whatever reached the
		// log is for the next load to read.
		w.code = c.goneCodeLocked()
		return
	}
	if err != nil {
		w.code = persistErrorCode(err)
		c.writeFailedLocked(ps, w, err)
		return
	}
	switch w.kind {
	case writeExpire:
		ps.removeLocked(t)
		c.log.Info("transactional id expired", "transactional_id", t.id,
			"producer_id", t.m.producerID, "producer_epoch", t.m.epoch)
	case writeComplete:
		t.pending, t.attempts = pendingNone, 0
		ps.setMetaLocked(t, w.next)
		t.closeCompleted()
		if w.next.state == stateCompleteCommit {
			c.mu.stats.committed++
		} else {
			c.mu.stats.aborted++
		}
	default:
		c.transitionedLocked(ps, w)
	}
}

func (c *Coordinator) writeFailedLocked(ps *partState, w *write, err error) {
	t := w.t
	if w.kind == writeComplete {
		// The markers are written; only Complete* is missing. Keep the
		// id busy and write it again later, while still loaded here.
		c.log.Warn("writing transaction completion failed; will retry", "transactional_id", t.id,
			"partition", ps.partition, "err", err)
		c.retryLaterLocked(ps, t, func() { c.enqueueCompleteLocked(ps, t) })
		return
	}
	t.pending = pendingNone
	if !t.durable {
		ps.removeLocked(t)
	}
	if w.done == nil {
		c.log.Warn("writing transaction state failed", "transactional_id", t.id,
			"partition", ps.partition, "err", err)
	}
}

// transitionedLocked makes a durable transition visible and starts what
// follows it: the markers after Prepare*, and the log lines and counters
// for fencing and timeouts.
func (c *Coordinator) transitionedLocked(ps *partState, w *write) {
	t, prev := w.t, w.t.m
	t.pending = pendingNone
	ps.setMetaLocked(t, w.next)
	switch w.why {
	case reasonFenceInit:
		if t.issued {
			c.mu.stats.fenced++
			c.log.Info("producer fenced by a new instance", "transactional_id", t.id,
				"producer_id", prev.producerID, "producer_epoch", prev.epoch,
				"new_producer_id", w.next.producerID, "new_producer_epoch", w.next.epoch)
		}
		t.issued = true
	case reasonInit, reasonEnd:
		t.issued = true
	case reasonFenceAbort:
		if t.issued {
			c.mu.stats.fenced++
		}
		c.log.Info("producer fenced by a new instance; aborting its ongoing transaction", "transactional_id", t.id,
			"producer_id", prev.producerID, "producer_epoch", prev.epoch, "abort_epoch", w.next.epoch)
		t.issued = false
	case reasonRecoverAbort:
		c.log.Info("aborting the ongoing transaction of a recovering producer", "transactional_id", t.id,
			"producer_id", prev.producerID, "producer_epoch", prev.epoch, "abort_epoch", w.next.epoch)
		t.issued = false
	case reasonTimeout:
		c.mu.stats.timedOut++
		c.log.Info("aborting timed-out transaction", "transactional_id", t.id,
			"producer_id", prev.producerID, "producer_epoch", prev.epoch, "abort_epoch", w.next.epoch,
			"timeout_ms", prev.timeoutMs, "started_ms", prev.startMs)
		t.issued = false
	}
	if isPrepare(w.next.state) {
		t.pending = pendingComplete
		t.closeCompleted()
		t.completed = make(chan struct{})
		c.startCompletionLocked(ps, t)
	}
}
