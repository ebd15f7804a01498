package share

import (
	"time"
)

// This file is the contract the broker codes against. Bodies are filled in
// by the share-partition state machine work; signatures change only by
// agreement.

// RecordState is the delivery state of one in-flight record, numbered as
// Kafka's RecordState (and the DeliveryState of WriteShareGroupState).
type RecordState int8

// Record states. Archiving is KIP-1191's: rejected or over the delivery
// limit, waiting for its dead-letter write; it becomes Archived once the
// write is durable.
const (
	Available    RecordState = 0
	Acquired     RecordState = 1
	Acknowledged RecordState = 2
	Archiving    RecordState = 3
	Archived     RecordState = 4
)

// AckType is an acknowledgement type of ShareFetch/ShareAcknowledge
// (KIP-932; Renew is KIP-1222).
type AckType int8

// Acknowledgement types as numbered on the wire.
const (
	AckGap     AckType = 0
	AckAccept  AckType = 1
	AckRelease AckType = 2
	AckReject  AckType = 3
	AckRenew   AckType = 4
)

// Key names one share-partition: a share group on one topic-partition.
type Key struct {
	Group     string
	TopicID   [16]byte
	Partition int32
}

// Backoff is Sluice's redelivery backoff (beyond Kafka): a released or
// expired record becomes Available again only Initial*Multiplier^(n-1)
// after its n-th failed delivery, capped at Max. Initial zero turns it off.
type Backoff struct {
	Initial, Max time.Duration
	Multiplier   float64
}

// Config is a share-partition's settings, resolved from the group's
// configs over the broker's defaults.
type Config struct {
	// LockDuration is share.record.lock.duration.ms: how long an
	// acquisition lasts before its records return to Available.
	LockDuration time.Duration
	// DeliveryLimit is share.delivery.count.limit: deliveries after which a
	// released or expired record is archived (or dead-lettered).
	DeliveryLimit int16
	// MaxRecordLocks is share.partition.max.record.locks: the most records
	// in the in-flight window; acquisition stops at it.
	MaxRecordLocks int
	// Backoff delays redelivery of released and expired records.
	Backoff Backoff
	// DeadLetter is true when the group has a dead-letter topic: rejected
	// records and those over the delivery limit go to Archiving instead of
	// Archived, and are listed by DeadLetters until DeadLettered.
	DeadLetter bool
}

// StateBatch is a run of offsets with one state and delivery count, as the
// share coordinator stores it. NotBefore (Sluice's backoff) is zero unless
// an Available run waits for its backoff to end.
type StateBatch struct {
	FirstOffset, LastOffset int64
	State                   RecordState
	DeliveryCount           int16
	NotBefore               time.Time
}

// DeadLetterCursor is the idempotent producer a share-partition writes its
// dead letters with: the same id, epoch and next sequence after a restart,
// so a dead-letter write repeated after a crash is deduplicated by the DLQ
// partition (Kafka's idempotent producer rules), never written twice.
type DeadLetterCursor struct {
	ProducerID    int64
	ProducerEpoch int16
	Sequence      int32
}

// State is the durable part of a share-partition: everything a new leader
// needs to go on. Acquired records are never part of it (an acquisition
// does not survive a restart; the record is delivered again, as in Kafka).
type State struct {
	StateEpoch  int32
	LeaderEpoch int32
	// StartOffset is the share-partition start offset (SPSO): every offset
	// below it is done.
	StartOffset int64
	// Batches are the non-Available runs at or above StartOffset (and
	// Available runs with a NotBefore or a delivery count above zero), in
	// offset order, not overlapping.
	Batches    []StateBatch
	DeadLetter DeadLetterCursor
}

// LogBatch describes one batch the broker read from the log for Acquire:
// its offsets, whether it is a control batch, and whether (read_committed)
// it belongs to an aborted transaction. Control and aborted batches are
// never delivered: their offsets are archived.
type LogBatch struct {
	FirstOffset, LastOffset int64
	Control, Aborted        bool
}

// AcquiredRange is a run of offsets acquired for one member, as
// ShareFetch's AcquiredRecords lists them.
type AcquiredRange struct {
	FirstOffset, LastOffset int64
	DeliveryCount           int16
}

// Ack is one acknowledgement batch: Types has one entry for the whole run
// or one per offset (KIP-932's AcknowledgeTypes).
type Ack struct {
	FirstOffset, LastOffset int64
	Types                   []AckType
}

// DeadLetter is a record in Archiving, waiting for its dead-letter write.
type DeadLetter struct {
	Offset        int64
	DeliveryCount int16
	// Rejected is true when a consumer rejected it, false when it ran out
	// of deliveries.
	Rejected bool
}

// Stats is a share-partition's in-flight window for metrics.
type Stats struct {
	Available, Acquired, Acknowledged, Archiving, Archived int
	// OldestAvailable is when the oldest Available record became
	// available (zero when none is).
	OldestAvailable time.Time
}

// Partition is one share-partition's in-flight window. It is not safe for
// concurrent use: the broker guards each one with a mutex. Every method
// that takes now is pure apart from its clock reading.
type Partition struct {
	cfg Config
	// start is the SPSO; recs[i] is offset start+i, so the window end
	// (SPEO+1, exclusive) is start+len(recs).
	start int64
	recs  []rec

	stateEpoch, leaderEpoch int32
	dl                      DeadLetterCursor
	version                 uint64
	// unstamped is true after New until a method with a clock reading
	// stamps the restored Available records' since.
	unstamped bool
}

// New returns a share-partition continuing from st (a zero State with
// StartOffset set for a new one).
func New(cfg Config, st State) *Partition { return restore(cfg, st) }

// Configure applies changed group configs to the records acquired from
// now on.
func (p *Partition) Configure(cfg Config) { p.configure(cfg) }

// FetchOffset is where the broker should read the log from for the next
// Acquire: the first Available record whose backoff has ended, else the end
// of the window. ok is false when nothing can be acquired now (the window
// is at MaxRecordLocks and nothing in it is Available).
func (p *Partition) FetchOffset(now time.Time) (offset int64, ok bool) {
	return p.fetchOffset(now.UnixNano())
}

// Acquire acquires for member, from batches read from the log at
// FetchOffset, the Available records (and new records past the window) up
// to about maxRecords (whole batches may exceed it, as Kafka's batch
// optimised mode does) and the window bound, locking them until now +
// LockDuration and counting a delivery for each. maxRecords <= 0 means no
// limit but the window's. batches must be consecutive batches of one log
// read, in order (see AcquireFrom for which offsets they prove absent).
func (p *Partition) Acquire(now time.Time, member string, batches []LogBatch, maxRecords int) []AcquiredRange {
	return p.acquire(now.UnixNano(), member, -1, batches, maxRecords)
}

// AcquireFrom is Acquire for batches read from the log at readOffset (the
// FetchOffset the broker read at, which may be stale by now): offsets from
// readOffset up to the first batch are known absent (compacted away) and
// archived, even inside the window. Acquire, not knowing where the read
// started, archives such offsets only past the window end, so an Available
// record compacted away inside the window would wait until a read from it.
// Either way batches must be consecutive batches of one log read, in
// order.
func (p *Partition) AcquireFrom(now time.Time, member string, readOffset int64, batches []LogBatch, maxRecords int) []AcquiredRange {
	return p.acquire(now.UnixNano(), member, max(readOffset, 0), batches, maxRecords)
}

// Acknowledge applies acks of member, all or none: it returns a Kafka error
// code (INVALID_RECORD_STATE for a record not acquired by member,
// INVALID_REQUEST for malformed batches) and changes nothing on error.
// Renew extends the member's locks by LockDuration.
func (p *Partition) Acknowledge(now time.Time, member string, acks []Ack) int16 {
	if code := ValidateAcks(acks, AckRenew); code != 0 {
		return code
	}
	return p.acknowledge(now.UnixNano(), member, acks)
}

// Release returns every record member holds to Available (its session
// closed or it left), as Kafka does: the delivery count stays as the
// acquisition raised it, a record at the delivery limit is archived (or
// dead-lettered), and the backoff applies as to any failed delivery.
func (p *Partition) Release(now time.Time, member string) { p.release(now.UnixNano(), member) }

// Expire returns records whose locks ended to Available (or past the
// delivery limit, to Archived or Archiving) and reports how many; it also
// ends the backoffs whose time came (not counted), which State shows.
func (p *Partition) Expire(now time.Time) int { return p.expire(now.UnixNano()) }

// NextDeadline is the earliest lock expiry or backoff end, for the
// broker's timer: when it passes, call Expire (then FetchOffset may have
// moved back, so waiting fetches can be woken).
func (p *Partition) NextDeadline() (time.Time, bool) { return p.nextDeadline() }

// State is the durable state now, to write to the share coordinator.
// Version increases with every change State would show.
func (p *Partition) State() (st State, version uint64) { return p.state(), p.version }

// Version is State's version without building the State: whether the
// durable state changed since a version the caller wrote.
func (p *Partition) Version() uint64 { return p.version }

// DeadLetters lists the records in Archiving, oldest first.
func (p *Partition) DeadLetters() []DeadLetter { return p.deadLetters() }

// DeadLettered moves offsets from Archiving to Archived once their
// dead-letter write is durable, and advances the cursor's sequence by seqs.
func (p *Partition) DeadLettered(offsets []int64, seqs int32) { p.deadLettered(offsets, seqs) }

// SetDeadLetterProducer sets the producer dead letters are written with.
func (p *Partition) SetDeadLetterProducer(c DeadLetterCursor) {
	if p.dl != c {
		p.dl = c
		p.version++
	}
}

// AdvanceLogStart drops the part of the window below the log's start
// offset (retention, DeleteRecords): those records can no longer be
// delivered.
func (p *Partition) AdvanceLogStart(offset int64) { p.advanceLogStart(offset) }

// StartOffset is the share-partition start offset now (State's, without
// building the State).
func (p *Partition) StartOffset() int64 { return p.start }

// Stats reports the window for metrics.
func (p *Partition) Stats() Stats { return p.stats() }
