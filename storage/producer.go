package storage

import (
	"errors"
	"fmt"
	"math"

	"github.com/sluicedev/sluice/protocol/batch"
)

// producerWindow is how many recent batches per producer are remembered
// for duplicate detection; Kafka keeps 5, matching the client's maximum of
// 5 in-flight requests per connection with idempotence.
const producerWindow = 5

// batchMeta identifies one appended idempotent batch.
type batchMeta struct {
	FirstSeq, LastSeq      int32
	BaseOffset, LastOffset int64
}

// producerEntry is the state kept per producer id (Kafka's
// ProducerStateEntry).
type producerEntry struct {
	Epoch  int16
	LastTs int64 // MaxTimestamp of the newest batch, for expiration
	N      int   // batches in use, oldest first
	Recent [producerWindow]batchMeta
	// CoordEpoch is the coordinator epoch of the producer's newest marker,
	// -1 before any.
	CoordEpoch int32
	// TxnFirst is the offset of the first batch of the producer's ongoing
	// transaction in this log, -1 when none is ongoing.
	TxnFirst int64
}

func newProducerEntry(epoch int16) *producerEntry {
	return &producerEntry{Epoch: epoch, CoordEpoch: -1, TxnFirst: -1}
}

func (e *producerEntry) push(m batchMeta) {
	if e.N == producerWindow {
		copy(e.Recent[:], e.Recent[1:])
		e.N--
	}
	e.Recent[e.N] = m
	e.N++
}

// guardEntry is a verification guard handed out by BeginVerification and
// when (Unix ms), for expiry.
type guardEntry struct {
	guard VerificationGuard
	at    int64
}

// producerState validates and records idempotent and transactional
// appends. It is a plain value guarded by Log.mu, with no I/O; the
// transactions it starts and ends are reported to the caller (txnEvent),
// which keeps the Log's txnTracker in step.
type producerState struct {
	m map[int64]*producerEntry
	// guards are the outstanding verification guards (KIP-890), one per
	// producer at most; a separate map so a producer that never appends
	// leaves nothing in m or in snapshots.
	guards    map[int64]guardEntry
	nextGuard VerificationGuard
}

func newProducerState() producerState {
	return producerState{m: map[int64]*producerEntry{}, guards: map[int64]guardEntry{}}
}

// marker is what a control batch says for producer state: a COMMIT or
// ABORT (ok) and its coordinator epoch. Other control batches (unknown
// types, empty or unreadable ones on the follower path) have ok false and
// do not touch producer state.
type marker struct {
	ok         bool
	commit     bool
	coordEpoch int32
}

// parseMarker reads the marker of control batch b. On the leader path a
// damaged marker is an error; unknown and empty control batches are
// ignored everywhere, as Kafka ignores control records it does not know.
func parseMarker(b []byte, h *batch.Header) (marker, error) {
	if !h.Control() || h.ProducerID < 0 {
		return marker{}, nil
	}
	commit, epoch, err := batch.ParseMarker(b)
	switch {
	case err == nil:
		return marker{ok: true, commit: commit, coordEpoch: epoch}, nil
	case errors.Is(err, batch.ErrUnknownControlType), errors.Is(err, batch.ErrEmptyControl):
		return marker{}, nil
	default:
		return marker{}, fmt.Errorf("%w: control batch: %w", ErrInvalidBatch, err)
	}
}

// txnEvent is what one append did to its producer's transaction.
type txnEvent struct {
	started bool // a transaction began at first
	ended   bool // the transaction that began at first ended at last
	aborted bool // ... with an ABORT marker
	first   int64
	last    int64
}

// inSequence reports whether next directly follows last, wrapping at
// math.MaxInt32 (Kafka's ProducerAppendInfo.inSequence).
func inSequence(last, next int32) bool {
	return int64(next) == int64(last)+1 || (next == 0 && last == math.MaxInt32)
}

// check validates a batch from a client (the leader path) against the
// stored state, following Kafka's ProducerAppendInfo and KIP-360. It
// returns the original batch when h is a retry of one of the last
// producerWindow batches.
func (p *producerState) check(h batch.Header) (dup batchMeta, isDup bool, err error) {
	e := p.m[h.ProducerID]
	if e == nil {
		// No state (new producer, or its state expired or was removed with
		// the log prefix): accept any sequence, as Kafka 2.5+ does.
		return batchMeta{}, false, nil
	}
	if h.ProducerEpoch < e.Epoch {
		return batchMeta{}, false, fmt.Errorf("%w: producer %d epoch %d is older than %d",
			ErrInvalidProducerEpoch, h.ProducerID, h.ProducerEpoch, e.Epoch)
	}
	if h.Control() || h.BaseSequence == batch.NoSequence {
		return batchMeta{}, false, nil
	}
	if h.ProducerEpoch != e.Epoch {
		if h.BaseSequence != 0 {
			return batchMeta{}, false, fmt.Errorf("%w: producer %d new epoch %d must start at sequence 0, got %d",
				ErrOutOfOrderSequence, h.ProducerID, h.ProducerEpoch, h.BaseSequence)
		}
		return batchMeta{}, false, nil
	}
	last := h.LastSequence()
	for _, m := range e.Recent[:e.N] {
		if m.FirstSeq == h.BaseSequence && m.LastSeq == last {
			return m, true, nil
		}
	}
	lastSeq := int32(-1) // NO_SEQUENCE: only 0 follows it
	if e.N > 0 {
		lastSeq = e.Recent[e.N-1].LastSeq
	}
	if e.Epoch >= 0 && !inSequence(lastSeq, h.BaseSequence) {
		return batchMeta{}, false, fmt.Errorf("%w: producer %d epoch %d expected sequence %d, got %d",
			ErrOutOfOrderSequence, h.ProducerID, h.ProducerEpoch, batch.IncrementSequence(lastSeq, 1), h.BaseSequence)
	}
	return batchMeta{}, false, nil
}

// checkTxn applies the transaction rules of a leader append after check
// passed (Kafka's UnifiedLog.analyzeAndValidateProducerState and
// ProducerAppendInfo): a marker from a coordinator older than the last one
// seen is fenced; a transactional batch that would start a transaction
// needs the producer's verification guard when o.RequireVerification is
// set (KIP-890); a non-transactional batch cannot join an ongoing
// transaction.
func (p *producerState) checkTxn(h batch.Header, mk marker, o AppendOptions) error {
	e := p.m[h.ProducerID]
	ongoing := e != nil && e.TxnFirst >= 0
	switch {
	case h.Control():
		if mk.ok && e != nil && mk.coordEpoch < e.CoordEpoch {
			return fmt.Errorf("%w: producer %d marker from coordinator epoch %d, already saw %d",
				ErrCoordinatorFenced, h.ProducerID, mk.coordEpoch, e.CoordEpoch)
		}
	case h.Transactional():
		if ongoing && h.ProducerEpoch > e.Epoch {
			return fmt.Errorf("%w: producer %d epoch %d, its transaction at epoch %d began at offset %d",
				ErrTxnCompleting, h.ProducerID, h.ProducerEpoch, e.Epoch, e.TxnFirst)
		}
		if !ongoing && o.RequireVerification {
			g := p.guards[h.ProducerID].guard
			if g == 0 || g != o.Verification {
				return fmt.Errorf("%w: producer %d has no verified transaction in this partition",
					ErrInvalidTxnState, h.ProducerID)
			}
		}
	case ongoing:
		return fmt.Errorf("%w: non-transactional batch from producer %d during its transaction at offset %d",
			ErrInvalidTxnState, h.ProducerID, e.TxnFirst)
	}
	return nil
}

// update records an appended batch whose final offsets are known. It runs
// for leader and follower appends and during recovery; a new epoch clears
// the remembered batches, as Kafka's maybeUpdateProducerEpoch does. A
// transactional batch starts the producer's transaction if none is
// ongoing; a marker (mk.ok) ends it and records its coordinator epoch.
// Either clears the producer's verification guard (Kafka's
// UnifiedLog.updateProducers). Control batches that are not markers change
// nothing.
func (p *producerState) update(h batch.Header, mk marker) txnEvent {
	if h.Control() && !mk.ok {
		return txnEvent{}
	}
	e := p.m[h.ProducerID]
	if e == nil {
		e = newProducerEntry(h.ProducerEpoch)
		p.m[h.ProducerID] = e
	}
	if h.ProducerEpoch != e.Epoch {
		e.Epoch, e.N = h.ProducerEpoch, 0
	}
	e.LastTs = h.MaxTimestamp
	var ev txnEvent
	if h.Control() {
		delete(p.guards, h.ProducerID)
		e.CoordEpoch = mk.coordEpoch
		if e.TxnFirst >= 0 {
			ev = txnEvent{ended: true, aborted: !mk.commit, first: e.TxnFirst, last: h.BaseOffset}
		}
		e.TxnFirst = -1
		return ev
	}
	if h.BaseSequence != batch.NoSequence {
		e.push(batchMeta{FirstSeq: h.BaseSequence, LastSeq: h.LastSequence(), BaseOffset: h.BaseOffset, LastOffset: h.LastOffset()})
	}
	if h.Transactional() {
		delete(p.guards, h.ProducerID)
		if e.TxnFirst < 0 {
			e.TxnFirst = h.BaseOffset
			ev = txnEvent{started: true, first: h.BaseOffset}
		}
	}
	return ev
}

// beginVerification returns the producer's outstanding guard, creating one
// at nowMs if it has none; needed is false when the producer's transaction
// is already ongoing here at epoch, and ErrTxnCompleting when one of an older
// epoch is. A guard still outstanding is shared, as Kafka's
// maybeCreateVerificationStateEntry does, so pipelined requests of one
// producer verify once.
func (p *producerState) beginVerification(pid int64, epoch int16, nowMs int64, seed func() VerificationGuard) (VerificationGuard, bool, error) {
	if e := p.m[pid]; e != nil && e.TxnFirst >= 0 {
		if epoch > e.Epoch {
			return 0, false, fmt.Errorf("%w: producer %d epoch %d, its transaction at epoch %d began at offset %d",
				ErrTxnCompleting, pid, epoch, e.Epoch, e.TxnFirst)
		}
		return 0, false, nil
	}
	if g, ok := p.guards[pid]; ok {
		return g.guard, true, nil
	}
	if p.nextGuard == 0 {
		p.nextGuard = seed()
	}
	p.nextGuard++
	if p.nextGuard == 0 {
		p.nextGuard++
	}
	p.guards[pid] = guardEntry{guard: p.nextGuard, at: nowMs}
	return p.nextGuard, true, nil
}

// evictBelow forgets producers whose newest batch lies below the log start
// offset (Kafka's ProducerStateManager.truncateHead), except those with an
// ongoing transaction: its marker is still to come and must find the
// transaction, or the aborted-transaction index would miss it.
func (p *producerState) evictBelow(lso int64) {
	for id, e := range p.m {
		if e.TxnFirst < 0 && (e.N == 0 || e.Recent[e.N-1].LastOffset < lso) {
			delete(p.m, id)
		}
	}
}

// expire forgets producers idle since before cutoff (milliseconds), except
// those with an ongoing transaction (Kafka's isProducerExpired), and
// verification guards handed out before cutoff. It returns how many
// producers it dropped.
func (p *producerState) expire(cutoff int64) int {
	n := 0
	for id, e := range p.m {
		if e.LastTs < cutoff && e.TxnFirst < 0 {
			delete(p.m, id)
			n++
		}
	}
	for id, g := range p.guards {
		if g.at < cutoff {
			delete(p.guards, id)
		}
	}
	return n
}

// info describes one producer for Producers.
func (e *producerEntry) info(id int64) ProducerInfo {
	pi := ProducerInfo{ProducerID: id, ProducerEpoch: e.Epoch, LastSequence: -1, LastTimestamp: e.LastTs,
		CoordinatorEpoch: e.CoordEpoch, TxnStartOffset: e.TxnFirst}
	if e.N > 0 {
		pi.LastSequence = e.Recent[e.N-1].LastSeq
	}
	return pi
}
