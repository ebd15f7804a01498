package txn

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/coordinator"
)

// Kafka's broker defaults for the settings in Config.
const (
	DefaultNumPartitions         = 50               // transaction.state.log.num.partitions
	DefaultMaxTimeout            = 15 * time.Minute // transaction.max.timeout.ms
	DefaultAbortTimedOutInterval = 10 * time.Second // transaction.abort.timed.out.transaction.cleanup.interval.ms
	DefaultIDExpiration          = 7 * 24 * time.Hour
	DefaultRemoveExpiredInterval = time.Hour // transaction.remove.expired.transaction.cleanup.interval.ms
)

// Sentinel errors.
var (
	// ErrInvalidConfig is returned by New for a missing Persister,
	// MarkerWriter or ProducerIDs.
	ErrInvalidConfig = errors.New("txn: invalid config")
	// ErrNotCoordinator means the transactional id's partition was unloaded
	// while a write was in flight.
	ErrNotCoordinator = errors.New("txn: partition not loaded here")
	// ErrLoadSuperseded is returned by LoadFrom when the partition was
	// unloaded or loaded again meanwhile.
	ErrLoadSuperseded = errors.New("txn: partition load superseded")
	// ErrCoordinatorFenced is returned by a MarkerWriter when a partition
	// refused a marker because a newer coordinator epoch wrote there.
	ErrCoordinatorFenced = errors.New("txn: coordinator epoch fenced")
)

// Config configures a Coordinator. Zero durations and counts take Kafka's
// defaults (the Default* constants).
type Config struct {
	// Clock supplies time and timers; nil means coordinator.SystemClock().
	Clock coordinator.Clock
	// Logger receives one line per timed-out abort and per fencing, with
	// the transactional id; nil discards.
	Logger *slog.Logger
	// Persister makes transaction state durable in __transaction_state;
	// required.
	Persister Persister
	// Markers writes COMMIT/ABORT markers to the partitions of a
	// transaction; required.
	Markers MarkerWriter
	// ProducerIDs allocates a producer id never handed out before, in the
	// whole cluster; required.
	ProducerIDs func(ctx context.Context) (int64, error)
	// NumPartitions is transaction.state.log.num.partitions: the modulus of
	// PartitionFor. It must match __transaction_state's partition count.
	NumPartitions int32
	// OffsetsPartitions is offsets.topic.num.partitions: AddOffsetsToTxn
	// adds the group's __consumer_offsets partition
	// (coordinator.PartitionFor(group, OffsetsPartitions)).
	OffsetsPartitions int32
	// TopicPartitions reports a topic's partition count, so
	// AddPartitionsToTxn refuses partitions that do not exist
	// (UNKNOWN_TOPIC_OR_PARTITION). Nil accepts every partition. Called
	// with no coordinator lock held.
	TopicPartitions func(topic string) (partitions int32, ok bool)
	// MaxTimeout is transaction.max.timeout.ms: InitProducerId with a
	// larger transaction timeout gets INVALID_TRANSACTION_TIMEOUT.
	MaxTimeout time.Duration
	// AbortTimedOutInterval is
	// transaction.abort.timed.out.transaction.cleanup.interval.ms: how
	// often ongoing transactions past their timeout are looked for and
	// aborted.
	AbortTimedOutInterval time.Duration
	// IDExpiration is transactional.id.expiration.ms: a transactional id
	// with no transaction for this long is forgotten (tombstoned).
	IDExpiration time.Duration
	// RemoveExpiredInterval is
	// transaction.remove.expired.transaction.cleanup.interval.ms.
	RemoveExpiredInterval time.Duration
}

// Persister makes transaction state durable in __transaction_state. The
// broker implements it by appending one record batch holding records, in
// order, to the partition and returning once it is durable under the
// acks=all rule. An error means the write may or may not have happened.
// Persist must not call back into the Coordinator. Calls for one partition
// never overlap.
type Persister interface {
	Persist(ctx context.Context, partition int32, records []Record) error
}

// Record is one __transaction_state record: Kafka's TransactionLogKey and
// TransactionLogValue (kmsg.TxnMetadataKey, kmsg.TxnMetadataValue). Value
// nil is a tombstone.
type Record struct {
	Key, Value []byte
}

// RecordSource yields one __transaction_state partition's records in log
// order and returns the error that stopped it early, if any.
type RecordSource func(yield func(Record) bool) error

// TopicPartition names one partition of a transaction.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Marker asks for the end of one transaction to be written to its
// partitions.
type Marker struct {
	TransactionalID string
	ProducerID      int64
	// ProducerEpoch is the epoch the markers carry: with transaction
	// version 2, the epoch bumped by EndTxn (KIP-890).
	ProducerEpoch int16
	Commit        bool
	// CoordinatorEpoch is the leader epoch of the __transaction_state
	// partition when this coordinator loaded it; partition leaders refuse
	// markers from an older one.
	CoordinatorEpoch int32
	// TransactionVersion is the client's transaction version (0-2),
	// passed on in WriteTxnMarkers v2.
	TransactionVersion int8
	Partitions         []TopicPartition
}

// MarkerWriter writes transaction markers (WriteTxnMarkers to each
// partition's leader, acks=all). WriteMarkers returns nil once every
// partition of m has its marker or no longer exists; it retries leader
// moves and unavailable partitions itself until ctx ends (the coordinator
// cancels it when the partition is unloaded or the coordinator closed). It
// returns an error wrapping ErrCoordinatorFenced when a partition refused
// the marker's coordinator epoch. It must not call back into the
// Coordinator.
type MarkerWriter interface {
	WriteMarkers(ctx context.Context, m Marker) error
}

// LoadToken names one BeginLoad of a partition; a load that finishes after
// leadership moved on carries a stale token and is discarded.
type LoadToken struct {
	partition int32
	gen       uint64
}

// Stats is a snapshot of the coordinator's counters for metrics.
type Stats struct {
	// Ongoing is the number of transactions in Ongoing, PrepareCommit or
	// PrepareAbort; OldestOngoing the age of the oldest of them.
	Ongoing       int
	OldestOngoing time.Duration
	// Committed, Aborted and TimedOut count transactions completed since
	// New; TimedOut ones are also counted in Aborted.
	Committed, Aborted, TimedOut uint64
	// Fenced counts producers fenced by a newer epoch.
	Fenced uint64
	// TransactionalIDs is the number of ids the loaded partitions hold.
	TransactionalIDs int
}

// Coordinator is the transaction coordinator for the __transaction_state
// partitions loaded into it. It is safe for concurrent use.
type Coordinator struct {
	cfg Config
}

// New validates cfg, fills defaults and returns a Coordinator that owns no
// partitions yet.
func New(cfg Config) (*Coordinator, error) { return &Coordinator{cfg: cfg}, nil }

// PartitionFor returns the __transaction_state partition that owns
// transactionalID (Kafka's TransactionStateManager.partitionFor).
func PartitionFor(transactionalID string, numPartitions int32) int32 {
	return coordinator.PartitionFor(transactionalID, numPartitions)
}

// BeginLoad marks partition as loading: requests for its ids get
// COORDINATOR_LOAD_IN_PROGRESS until LoadFrom finishes. coordinatorEpoch is
// the partition's leader epoch; the markers this coordinator writes carry
// it.
func (c *Coordinator) BeginLoad(partition, coordinatorEpoch int32) LoadToken {
	return LoadToken{partition: partition}
}

// Loading reports whether token's load is still wanted.
func (c *Coordinator) Loading(token LoadToken) bool { return false }

// LoadFrom replays src into the transactions of token's partition and
// starts serving them: transactions found in PrepareCommit or PrepareAbort
// get their markers written again, ongoing ones past their timeout are
// aborted. It returns ErrLoadSuperseded when the partition was unloaded or
// loaded again meanwhile; another error leaves it loading, for the caller
// to retry.
func (c *Coordinator) LoadFrom(token LoadToken, src RecordSource) error { return nil }

// Unload stops serving partition: its transactions are dropped from memory
// (their state stays in the log) and marker writes in flight are
// cancelled.
func (c *Coordinator) Unload(partition int32) {}

// Owns reports whether partition is loaded or loading here.
func (c *Coordinator) Owns(partition int32) bool { return false }

// Close stops every timer and marker write and waits for them.
func (c *Coordinator) Close() {}

// Stats returns the current counters.
func (c *Coordinator) Stats() Stats { return Stats{} }

// InitProducerID handles InitProducerId v0-5 for a transactional id
// (req.TransactionalID non-nil; idempotent producers are the broker's).
func (c *Coordinator) InitProducerID(ctx context.Context, req *kmsg.InitProducerIDRequest) *kmsg.InitProducerIDResponse {
	return req.ResponseKind().(*kmsg.InitProducerIDResponse)
}

// AddPartitionsToTxn handles AddPartitionsToTxn v0-5: v0-3 from clients,
// v4+ batched from partition leaders, verify-only (KIP-890 part 1) or
// adding (part 2, for produce v12).
func (c *Coordinator) AddPartitionsToTxn(ctx context.Context, req *kmsg.AddPartitionsToTxnRequest) *kmsg.AddPartitionsToTxnResponse {
	return req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
}

// AddOffsetsToTxn handles AddOffsetsToTxn v0-4.
func (c *Coordinator) AddOffsetsToTxn(ctx context.Context, req *kmsg.AddOffsetsToTxnRequest) *kmsg.AddOffsetsToTxnResponse {
	return req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
}

// EndTxn handles EndTxn v0-5.
func (c *Coordinator) EndTxn(ctx context.Context, req *kmsg.EndTxnRequest) *kmsg.EndTxnResponse {
	return req.ResponseKind().(*kmsg.EndTxnResponse)
}

// DescribeTransactions handles DescribeTransactions v0.
func (c *Coordinator) DescribeTransactions(ctx context.Context, req *kmsg.DescribeTransactionsRequest) *kmsg.DescribeTransactionsResponse {
	return req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
}

// ListTransactions handles ListTransactions v0-2 for the partitions loaded
// here.
func (c *Coordinator) ListTransactions(ctx context.Context, req *kmsg.ListTransactionsRequest) *kmsg.ListTransactionsResponse {
	return req.ResponseKind().(*kmsg.ListTransactionsResponse)
}
