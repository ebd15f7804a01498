package txn

// In-memory state: one partState per __transaction_state partition loaded
// (or loading) here, holding one txn per transactional id.

import (
	"context"
	"sync"

	"github.com/sluicedev/sluice/coordinator"
)

// partState is one load of a __transaction_state partition. BeginLoad makes
// a fresh one and Unload drops it, so a pointer comparison tells whether
// anything that captured it (a write, a marker job, a timer) is stale.
// Guarded by Coordinator.mu, except the fields set at creation.
type partState struct {
	partition        int32
	gen              uint64
	coordinatorEpoch int32
	// ctx bounds every write and marker write of this load; dropping the
	// partition cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	loaded bool
	txns   map[string]*txn
	// durable counts the txns whose state is durable (Stats).
	durable int
	// active holds the transactions in Ongoing, PrepareCommit or
	// PrepareAbort: the ones the timeout scan and Stats look at.
	active map[*txn]struct{}

	// queue holds writes waiting for the partition's writer; writing is
	// true while it persists a batch.
	queue   []*write
	writing bool
	wake    chan struct{}
	// goroutines counts the goroutines working for this load: its writer,
	// its marker writes and producer id allocations. Dropping the load
	// cancels ctx and waits for them. Add is only called under
	// Coordinator.mu while the load is current, so no Add races the Wait.
	goroutines sync.WaitGroup
}

func newPartState(parent context.Context, partition int32, gen uint64, coordinatorEpoch int32) *partState {
	ps := &partState{
		partition:        partition,
		gen:              gen,
		coordinatorEpoch: coordinatorEpoch,
		txns:             make(map[string]*txn),
		active:           make(map[*txn]struct{}),
		wake:             make(chan struct{}, 1),
	}
	ps.ctx, ps.cancel = context.WithCancel(parent)
	return ps
}

// pendingKind is what keeps a transactional id busy: Kafka's pendingState.
// While it is not pendingNone, every request that would change the id gets
// CONCURRENT_TRANSACTIONS.
type pendingKind uint8

const (
	pendingNone pendingKind = iota
	// pendingWrite: a transition (or tombstone) is being written, or a
	// producer id is being allocated for one.
	pendingWrite
	// pendingComplete: Prepare* is durable and the markers, then
	// Complete*, are being written.
	pendingComplete
	// pendingStopped: a partition refused the markers for a newer
	// coordinator; the transaction waits in Prepare* for this partition
	// to be unloaded.
	pendingStopped
)

// txn is one transactional id.
type txn struct {
	id string
	// m is the durable state; it changes only when a write succeeded.
	m meta
	// durable is false while the id's first InitProducerId is being
	// written: other requests treat the id as unknown until then.
	durable bool
	pending pendingKind
	// issued is whether a client may hold the current producer id and
	// epoch; it decides whether bumping them fences someone (Stats.Fenced
	// and the fencing log line).
	issued bool
	// attempts counts failed marker or Complete* writes since the last
	// success, for the retry backoff; retry is the armed retry timer.
	attempts int
	retry    coordinator.Timer
	// completed is closed once the transaction being completed (Prepare*
	// durable) has its Complete* durable, or is forgotten; nil when none
	// is being completed. EndTxn waits on it (Config.CompletionWait).
	completed chan struct{}
}

// closeCompleted releases the EndTxn waiting for t's completion, if any.
func (t *txn) closeCompleted() {
	if t.completed != nil {
		close(t.completed)
		t.completed = nil
	}
}

// setMetaLocked makes next durable in memory and keeps the active set in
// step.
func (ps *partState) setMetaLocked(t *txn, next meta) {
	t.m = next
	if !t.durable {
		t.durable = true
		ps.durable++
	}
	if isActive(next.state) {
		ps.active[t] = struct{}{}
	} else {
		delete(ps.active, t)
	}
}

// removeLocked forgets t.
func (ps *partState) removeLocked(t *txn) {
	if t.durable {
		ps.durable--
	}
	delete(ps.txns, t.id)
	delete(ps.active, t)
	stopTimer(t.retry)
	t.closeCompleted()
	t.retry = nil
}

// dropPartitionLocked stops serving ps: its context is cancelled (writes
// and marker writes in flight end), its retry timers stopped. The caller
// removes ps from the partition table and then, without the lock, waits
// for ps.goroutines.
func (c *Coordinator) dropPartitionLocked(ps *partState) {
	ps.cancel()
	for _, t := range ps.txns {
		stopTimer(t.retry)
		t.retry = nil
		t.closeCompleted() // its completion is the next coordinator's now
	}
}

// goLocked starts f on a goroutine that both Close and the drop of ps wait
// for. The caller holds mu, and ps is current.
func (c *Coordinator) goLocked(ps *partState, f func()) {
	c.wg.Add(1)
	ps.goroutines.Add(1)
	go func() {
		defer c.wg.Done()
		defer ps.goroutines.Done()
		f()
	}()
}
