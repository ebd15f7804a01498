package storage

// Transactions in a partition log (KIP-98): the producer state tracks each
// producer's ongoing transaction, control batches (COMMIT/ABORT markers)
// end them, aborted transactions are indexed per segment (.txnindex), and
// the last stable offset bounds what read_committed consumers see.
//
// SKELETON: the exported API below is the contract the broker is written
// against; the bodies are to be filled in.

import "errors"

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
// is bounded by the log end offset instead. It is cheap enough to call per
// partition per fetch.
func (l *Log) LastStableOffset() int64 { return l.HighWatermark() }

// AbortedTransactions returns the aborted transactions that overlap
// [from, to): LastOffset >= from and FirstOffset < to, ordered by
// FirstOffset. Fetch under read_committed sends them (producer id and
// first offset) with the batches it returns from that range.
func (l *Log) AbortedTransactions(from, to int64) []AbortedTxn { return nil }

// Producers lists the producers whose state the log keeps, ordered by
// producer id.
func (l *Log) Producers() []ProducerInfo { return nil }

// BeginVerification prepares a transactional append by producerID. When
// the producer has no ongoing transaction in this log, the first batch it
// appends would start one, so the caller must verify with the transaction
// coordinator first: needed is true, and guard must be passed in
// AppendOptions.Verification. When a transaction is already ongoing here,
// needed is false and no guard is required.
func (l *Log) BeginVerification(producerID int64) (guard VerificationGuard, needed bool) {
	return 0, false
}
