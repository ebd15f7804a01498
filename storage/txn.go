package storage

// Transactions in a partition log (KIP-98): the producer state tracks each
// producer's ongoing transaction, control batches (COMMIT/ABORT markers)
// end them, aborted transactions are indexed per segment (.txnindex), and
// the last stable offset bounds what read_committed consumers see. See
// doc.go for the file formats and txntrack.go for how the LSO stays cheap.

import (
	"cmp"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
)

var (
	// ErrInvalidTxnState is returned by Append for a transactional batch
	// that would start a transaction the coordinator did not verify
	// (AppendOptions.RequireVerification with a stale or missing guard,
	// KIP-890), and for a non-transactional batch from a producer whose
	// transaction is ongoing in this log. Maps to INVALID_TXN_STATE.
	ErrInvalidTxnState = errors.New("storage: invalid transaction state")
	// ErrCoordinatorFenced is returned by Append for a marker whose
	// coordinator epoch is older than one already seen for its producer
	// (a deposed transaction coordinator). Maps to
	// TRANSACTION_COORDINATOR_FENCED.
	ErrCoordinatorFenced = errors.New("storage: transaction coordinator fenced")
	// ErrTxnCompleting is returned by Append and BeginVerification for a
	// transactional batch of a newer producer epoch than the producer's
	// transaction ongoing in this log: under transaction version 2 that is
	// the next transaction arriving before the previous one's marker.
	// Retrying after the marker succeeds; the broker answers
	// NOT_ENOUGH_REPLICAS, as Kafka answers a verification that cannot
	// complete yet.
	ErrTxnCompleting = errors.New("storage: the producer's previous transaction is still completing here")
	// ErrBeyondStableOffset is returned by DeleteRecordsBefore for an
	// offset above the last stable offset: records a read_committed
	// consumer cannot see yet (undecided, or decided by a marker not yet
	// replicated) must not disappear before it could skip or read them.
	// Nothing is changed. Maps to OFFSET_OUT_OF_RANGE, as Kafka answers
	// DeleteRecords beyond the high watermark.
	ErrBeyondStableOffset = errors.New("storage: offset beyond the last stable offset")
)

// VerificationGuard ties a transactional append to the coordinator check
// that preceded it (KIP-890 part 1). BeginVerification hands one out; a
// marker for the producer appended before the batch invalidates it, so a
// late or zombie write cannot start a transaction the coordinator already
// ended. The zero value is no guard.
type VerificationGuard uint64

// AbortedTxn is one entry of the aborted-transaction index (Kafka's
// AbortedTxn, 34 bytes on disk in the .txnindex file beside each segment).
type AbortedTxn struct {
	ProducerID int64
	// FirstOffset is the offset of the transaction's first batch in this
	// log; LastOffset that of its ABORT marker.
	FirstOffset, LastOffset int64
	// LastStableOffset is the log's last stable offset once the abort was
	// appended; readers use it to stop scanning older indexes early.
	LastStableOffset int64
}

// ProducerInfo is one producer's state in a log, as DescribeProducers
// (KIP-664) reports it.
type ProducerInfo struct {
	ProducerID    int64
	ProducerEpoch int16
	// LastSequence is the last sequence number appended, -1 if none.
	LastSequence int32
	// LastTimestamp is the MaxTimestamp of its newest batch, -1 if none.
	LastTimestamp int64
	// CoordinatorEpoch is the coordinator epoch of its newest marker, -1
	// if none.
	CoordinatorEpoch int32
	// TxnStartOffset is the first offset of its ongoing transaction in
	// this log, -1 when none is ongoing.
	TxnStartOffset int64
}

// LastStableOffset is the offset below which every transaction is decided:
// the first offset of the earliest transaction that is ongoing, or whose
// marker is not yet below the high watermark, else the high watermark
// (Kafka's UnifiedLog.lastStableOffset). Without a known high watermark it
// is bounded by the log end offset instead, and decided transactions do
// not hold it back. It is never below the log start offset (a transaction
// that began before it, as after a follower's log start moved, holds the
// LSO at the log start until its marker arrives). It is cheap enough to
// call per partition per fetch: a few atomic loads, and for a log with
// transactions in flight a leaf lock held for amortized O(1) work; it never
// waits for appends or I/O and does not allocate.
func (l *Log) LastStableOffset() int64 {
	// The log end offset is loaded first: appends publish it after
	// recording a transaction the batch started (see writeLocked).
	leo := l.leo.Load()
	hw := l.hw.Load()
	start := l.logStart.Load()
	bound := leo
	if hw >= 0 {
		bound = min(hw, leo)
	}
	if l.txns.active.Load() {
		bound = min(bound, l.txns.firstUnstable(hw))
	}
	return max(bound, start)
}

// lastStableLocked is LastStableOffset computed from the state mu guards.
func (l *Log) lastStableLocked() int64 {
	hw := l.highWatermarkLocked()
	bound := l.mu.leo
	if hw >= 0 {
		bound = hw
	}
	return max(min(bound, l.txns.firstUnstable(hw)), l.mu.lso)
}

// stableBoundLocked is the offset retention and compaction must stay
// below: the last stable offset when the high watermark is known,
// otherwise the first offset of the earliest ongoing transaction (no
// bound at all in a log without transactions).
func (l *Log) stableBoundLocked() int64 {
	hw := l.highWatermarkLocked()
	bound := int64(math.MaxInt64)
	if hw >= 0 {
		bound = hw
	}
	return min(bound, l.txns.firstUnstable(hw))
}

// AbortedTransactions returns the aborted transactions that overlap
// [from, to): LastOffset >= from and FirstOffset < to, ordered by
// FirstOffset. Fetch under read_committed sends them (producer id and
// first offset) with the batches it returns from that range; to is the
// offset after the last batch returned (Span.NextOffset, or
// batch.EndOffset of an inline read), though any larger bound such as the
// read's maxOffset is also correct, only answering more entries. It reads
// only the indexes of segments that can hold such entries, and for a log
// that never aborted a transaction it returns nil without locking. An
// index that cannot be read is logged and its entries are missing; use
// AppendAbortedTransactions to get the error instead.
func (l *Log) AbortedTransactions(from, to int64) []AbortedTxn {
	out, err := l.AppendAbortedTransactions(nil, from, to)
	if err != nil {
		l.logger.Error("storage: reading the aborted-transaction index failed", "from", from, "to", to, "err", err)
	}
	return out
}

// AppendAbortedTransactions is AbortedTransactions appending to dst (so a
// fetch can reuse one buffer for all its partitions) and reporting read
// errors: a fetch that cannot learn which transactions were aborted must
// fail the partition (KAFKA_STORAGE_ERROR) rather than let a
// read_committed consumer see aborted records.
func (l *Log) AppendAbortedTransactions(dst []AbortedTxn, from, to int64) ([]AbortedTxn, error) {
	if from >= to || l.aborted.Load() == 0 {
		return dst, nil
	}
	n0 := len(dst)
	for attempt := 0; ; attempt++ {
		gen := l.truncGen.Load()
		out, err := l.abortedOnce(dst[:n0], from, to)
		// A truncation while we read may have cut entries we read; retry.
		if l.truncGen.Load() == gen || attempt == 3 {
			slices.SortFunc(out[n0:], func(a, b AbortedTxn) int {
				return cmp.Compare(a.FirstOffset, b.FirstOffset)
			})
			return out, err
		}
	}
}

// txnSegView is a segment's aborted-transaction index as captured under
// Log.mu; the reader holds a reference on seg.
type txnSegView struct {
	seg *segment
	v   txnIndexView
}

func (l *Log) abortedOnce(dst []AbortedTxn, from, to int64) ([]AbortedTxn, error) {
	var held [4]txnSegView
	views := held[:0]
	l.mu.Lock()
	if l.mu.closed {
		l.mu.Unlock()
		return dst, ErrClosed
	}
	// Entries live in the segment holding their marker: those with
	// LastOffset >= from are in the segment holding from or later ones.
	for i := l.segIndexLocked(from); i < len(l.mu.segs); i++ {
		s := l.mu.segs[i]
		if s.txn.n == 0 {
			continue
		}
		if s.txn.minFirst < to {
			s.acquire()
			views = append(views, txnSegView{seg: s, v: s.txn.view()})
		}
		if s.txn.last.LastStableOffset >= to {
			break // no later entry starts below to
		}
	}
	l.mu.Unlock()
	defer func() {
		for _, v := range views {
			v.seg.release()
		}
	}()
	for _, v := range views {
		var done bool
		var err error
		if dst, done, err = v.v.collect(dst, from, to); err != nil || done {
			return dst, err
		}
	}
	return dst, nil
}

// Producers lists the producers whose state the log keeps, ordered by
// producer id (DescribeProducers, KIP-664).
func (l *Log) Producers() []ProducerInfo {
	l.mu.Lock()
	out := make([]ProducerInfo, 0, len(l.mu.producers.m))
	for id, e := range l.mu.producers.m {
		out = append(out, e.info(id))
	}
	l.mu.Unlock()
	slices.SortFunc(out, func(a, b ProducerInfo) int { return cmp.Compare(a.ProducerID, b.ProducerID) })
	return out
}

// BeginVerification prepares a transactional append by producerID at
// epoch. When the producer has no ongoing transaction in this log, the first
// batch it appends would start one, so the caller must verify with the
// transaction coordinator first: needed is true, and guard must be passed in
// AppendOptions.Verification. When a transaction of that epoch is already
// ongoing here, needed is false and no guard is required. A guard stays
// valid until a batch or marker of the producer is appended (a marker voids
// it; the batch that starts the transaction uses it up) or it expires with
// producer.id.expiration.ms; calls while one is outstanding return the same
// guard, so pipelined requests of one producer verify once (Kafka's
// maybeStartTransactionVerification).
//
// With transaction version 2 every transaction has its own producer epoch
// (KIP-890), and a producer may begin the next one before the marker of the
// last reaches this partition. BeginVerification then returns
// ErrTxnCompleting: the batch cannot be told apart from the previous
// transaction's until that marker is written, and verifying it now could be
// voided by the marker's arrival. The caller answers a retriable error.
func (l *Log) BeginVerification(producerID int64, epoch int16) (guard VerificationGuard, needed bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.producers.beginVerification(producerID, epoch, l.clock().UnixMilli(), randomGuard)
}

// randomGuard seeds a log's guard sequence, so guards from different
// openings of a log differ.
func randomGuard() VerificationGuard { return VerificationGuard(rand.Uint64()) }
