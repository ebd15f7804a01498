package txn

// Timers: the periodic scans Kafka's TransactionCoordinator schedules.
// Every AbortTimedOutInterval, ongoing transactions past their timeout are
// aborted with a bumped epoch, which fences their producer; every
// RemoveExpiredInterval, ids idle for IDExpiration are tombstoned. Both
// only queue writes; nothing here waits.

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sluicedev/sluice/coordinator"
)

func (c *Coordinator) armAbortTimerLocked() {
	c.mu.abortTimer = c.everyLocked(c.cfg.AbortTimedOutInterval, c.armAbortTimerLocked,
		func(ps *partState, now int64) { c.abortTimedOutLocked(ps, now) })
}

func (c *Coordinator) armExpiryTimerLocked() {
	c.mu.expiryTimer = c.everyLocked(c.cfg.RemoveExpiredInterval, c.armExpiryTimerLocked, c.expireLocked)
}

// everyLocked arms a scan: after d, scan runs under the lock for every
// loaded partition, then rearm arms the next one.
func (c *Coordinator) everyLocked(d time.Duration, rearm func(), scan func(ps *partState, nowMs int64)) coordinator.Timer {
	return c.afterFunc(d, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.mu.closed {
			return
		}
		now := c.nowMs()
		for _, ps := range c.mu.parts {
			if ps != nil && ps.loaded {
				scan(ps, now)
			}
		}
		rearm()
	})
}

// abortTimedOutLocked aborts every ongoing transaction of ps whose timeout
// has passed (Kafka: start + timeout < now) and is not busy, and returns
// how many it started aborting.
func (c *Coordinator) abortTimedOutLocked(ps *partState, nowMs int64) int {
	var due []*txn
	for t := range ps.active {
		if t.m.state == stateOngoing && t.pending == pendingNone && t.m.startMs+int64(t.m.timeoutMs) < nowMs {
			due = append(due, t)
		}
	}
	slices.SortFunc(due, func(a, b *txn) int { return strings.Compare(a.id, b.id) })
	for _, t := range due {
		if c.fenceAbortLocked(ps, t, reasonTimeout, -1) == nil {
			c.allocateThenLocked(ps, t, func(id int64) { c.fenceAbortLocked(ps, t, reasonTimeout, id) })
		}
	}
	return len(due)
}

// fenceAbortLocked queues the abort of t's ongoing transaction by the
// coordinator itself (a timeout, or a new producer instance): version 2
// rules, so the epoch is bumped once and the markers carry it, which
// fences the producer (Kafka bumps it twice before KAFKA-19367). When the
// epoch is exhausted the abort also needs the producer id Complete*
// rotates to (KAFKA-20090): without newProducerID it returns nil and the
// caller allocates one first.
func (c *Coordinator) fenceAbortLocked(ps *partState, t *txn, why reason, newProducerID int64) *write {
	next := int64(-1)
	if epochExhausted(t.m.epoch) {
		if newProducerID < 0 {
			return nil
		}
		next = newProducerID
	}
	w := c.transitionLocked(ps, t, t.m.endTransit(statePrepareAbort, serverTransactionVersion, next, c.nowMs(), false), why)
	if why == reasonTimeout {
		w.done = nil
	}
	return w
}

// allocateThenLocked keeps t busy while a background goroutine allocates a
// producer id, then runs then under the lock if t is still current. A
// failed allocation just releases t; the next scan tries again.
func (c *Coordinator) allocateThenLocked(ps *partState, t *txn, then func(producerID int64)) {
	t.pending = pendingWrite
	c.mu.bg++
	c.goLocked(ps, func() {
		id, code := c.allocateProducerID(ps.ctx)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.mu.bg--
		if !c.currentLocked(ps, t) {
			return
		}
		t.pending = pendingNone
		if code == 0 {
			then(id)
		}
	})
}

// expireLocked tombstones every id of ps that has had no transaction for
// IDExpiration (Kafka's removeExpiredTransactionalIds: Empty or Complete*,
// not busy, last updated at least that long ago).
func (c *Coordinator) expireLocked(ps *partState, nowMs int64) {
	cutoff := nowMs - c.cfg.IDExpiration.Milliseconds()
	for _, id := range slices.Sorted(maps.Keys(ps.txns)) {
		t := ps.txns[id]
		if !t.durable || t.pending != pendingNone || !isEnded(t.m.state) || t.m.lastUpdateMs > cutoff {
			continue
		}
		t.pending = pendingWrite
		c.enqueueLocked(ps, &write{t: t, kind: writeExpire})
	}
}
