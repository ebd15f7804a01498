package txn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicedev/sluice/coordinator"
)

// Kafka's broker defaults for the settings in Config.
const (
	DefaultNumPartitions         = 50               // transaction.state.log.num.partitions
	DefaultMaxTimeout            = 15 * time.Minute // transaction.max.timeout.ms
	DefaultAbortTimedOutInterval = 10 * time.Second // transaction.abort.timed.out.transaction.cleanup.interval.ms
	DefaultIDExpiration          = 7 * 24 * time.Hour
	DefaultRemoveExpiredInterval = time.Hour // transaction.remove.expired.transaction.cleanup.interval.ms
	// DefaultOffsetsPartitions is offsets.topic.num.partitions, used for
	// AddOffsetsToTxn when Config.OffsetsPartitions is zero.
	DefaultOffsetsPartitions = 50
)

// serverTransactionVersion is the transaction.version Sluice finalizes
// (ApiVersions advertises 2). The coordinator's own aborts (timeouts, a new
// producer fencing an ongoing transaction) follow its rules, as Kafka's use
// the cluster's finalized level: they bump the epoch, and the markers carry
// the bumped epoch.
const serverTransactionVersion int8 = 2

// maxNumPartitions bounds NumPartitions: the coordinator keeps state per
// __transaction_state partition, and Kafka clusters use tens to hundreds.
const maxNumPartitions = 1 << 16

// Sentinel errors. Handlers never return Go errors (outcomes are Kafka error
// codes in the responses); these come from New, LoadFrom and the plumbing
// between the coordinator and the broker.
var (
	// ErrInvalidConfig is returned by New for a missing Persister,
	// MarkerWriter or ProducerIDs.
	ErrInvalidConfig = errors.New("txn: invalid config")
	// ErrNotCoordinator means the transactional id's partition was
	// unloaded while a write was in flight. A Persister may also return an
	// error wrapping it when the broker no longer leads the partition; the
	// client then gets NOT_COORDINATOR and looks the coordinator up again.
	ErrNotCoordinator = errors.New("txn: partition not loaded here")
	// ErrLoadSuperseded is returned by LoadFrom when the partition was
	// unloaded or loaded again meanwhile.
	ErrLoadSuperseded = errors.New("txn: partition load superseded")
	// ErrCoordinatorFenced is returned by a MarkerWriter when a partition
	// refused a marker because a newer coordinator epoch wrote there
	// (TRANSACTION_COORDINATOR_FENCED), or a newer producer epoch
	// (INVALID_PRODUCER_EPOCH): a newer coordinator owns the transaction,
	// so this one stops completing it.
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
	// whole cluster; required. It is called with no coordinator lock held
	// and may block (an etcd round trip); an error that wraps a *kerr.Error
	// reaches the client as that code, any other as
	// COORDINATOR_NOT_AVAILABLE, which clients retry.
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
	// with no coordinator lock held. It must report internal topics too:
	// the group coordinator verifies __consumer_offsets partitions.
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
	// CompletionWait is how long EndTxn waits, once Prepare* is durable,
	// for the markers and Complete* before it answers. The outcome is
	// decided at Prepare*, where Kafka answers; waiting a little more for
	// the markers, which normally take a replication round trip, spares the
	// client's next transaction CONCURRENT_TRANSACTIONS answers and, under
	// transaction version 2, produce retries while the previous marker is
	// on its way. Zero answers at Prepare*, as Kafka; brokers pass
	// DefaultCompletionWait.
	CompletionWait time.Duration
}

// DefaultCompletionWait bounds EndTxn's wait for the markers (see
// Config.CompletionWait): long enough for markers to replicate, short
// enough that a partition without a leader does not hold the client.
const DefaultCompletionWait = 5 * time.Second

// Persister makes transaction state durable in __transaction_state. The
// broker implements it by appending one record batch holding records, in
// order, to the partition and returning once it is durable under the
// acks=all rule. An error means the write may or may not have happened.
// Persist must not call back into the Coordinator. Calls for one partition
// never overlap. It must return soon after ctx ends: unloading a partition
// cancels the write in flight and waits for it.
//
// Errors reach clients as Kafka's TransactionStateManager maps append
// errors: an error wrapping ErrNotCoordinator, NOT_LEADER_OR_FOLLOWER or
// KAFKA_STORAGE_ERROR gives NOT_COORDINATOR; UNKNOWN_TOPIC_OR_PARTITION,
// NOT_ENOUGH_REPLICAS(_AFTER_APPEND) and REQUEST_TIMED_OUT give
// COORDINATOR_NOT_AVAILABLE; MESSAGE_TOO_LARGE and RECORD_LIST_TOO_LARGE
// give UNKNOWN_SERVER_ERROR; another *kerr.Error passes through; any other
// error gives COORDINATOR_NOT_AVAILABLE.
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
// cancels it when the partition is unloaded or the coordinator closed, and
// waits for it to return). It returns an error wrapping
// ErrCoordinatorFenced when a partition refused the marker's coordinator
// epoch. It must not call back into the Coordinator. Any other error makes the coordinator call it again later,
// with backoff, for as long as the partition stays loaded here; see doc.go
// for what each WriteTxnMarkers error code should become.
type MarkerWriter interface {
	WriteMarkers(ctx context.Context, m Marker) error
}

// Coordinator is the transaction coordinator for the __transaction_state
// partitions loaded into it. It is safe for concurrent use; see doc.go for
// the concurrency contract.
type Coordinator struct {
	cfg   Config
	log   *slog.Logger
	clock coordinator.Clock

	// ctx is the parent of every partition's context; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	// wg counts every goroutine and timer callback the coordinator runs:
	// partition writers, marker writes, background producer id
	// allocations, timer callbacks. Close waits for it. Add is only called
	// under mu while not closed, so no Add races Close's Wait.
	wg sync.WaitGroup

	mu struct {
		sync.Mutex
		closed bool
		// parts[p] is the state of __transaction_state partition p while
		// it is loading or loaded here, nil otherwise. Each BeginLoad
		// installs a fresh partState, so anything holding an old one can
		// tell it is stale by comparing pointers.
		parts   []*partState
		gen     uint64 // the generation of the latest BeginLoad
		markers markerQueue
		stats   counters
		// bg counts background producer id allocations running.
		bg          int
		abortTimer  coordinator.Timer
		expiryTimer coordinator.Timer
	}
}

// New validates cfg, fills defaults and returns a Coordinator that owns no
// partitions yet: for every __transaction_state partition this broker
// leads, call BeginLoad and then LoadFrom.
func New(cfg Config) (*Coordinator, error) {
	switch {
	case cfg.Persister == nil:
		return nil, fmt.Errorf("%w: Persister is required", ErrInvalidConfig)
	case cfg.Markers == nil:
		return nil, fmt.Errorf("%w: Markers is required", ErrInvalidConfig)
	case cfg.ProducerIDs == nil:
		return nil, fmt.Errorf("%w: ProducerIDs is required", ErrInvalidConfig)
	}
	fillDefaults(&cfg)
	if cfg.NumPartitions > maxNumPartitions {
		return nil, fmt.Errorf("%w: NumPartitions %d > %d", ErrInvalidConfig, cfg.NumPartitions, maxNumPartitions)
	}
	c := &Coordinator{cfg: cfg, log: cfg.Logger, clock: cfg.Clock}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.mu.parts = make([]*partState, cfg.NumPartitions)
	c.mu.Lock()
	c.armAbortTimerLocked()
	c.armExpiryTimerLocked()
	c.mu.Unlock()
	return c, nil
}

func fillDefaults(cfg *Config) {
	if cfg.Clock == nil {
		cfg.Clock = coordinator.SystemClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.NumPartitions <= 0 {
		cfg.NumPartitions = DefaultNumPartitions
	}
	if cfg.OffsetsPartitions <= 0 {
		cfg.OffsetsPartitions = DefaultOffsetsPartitions
	}
	if cfg.MaxTimeout <= 0 {
		cfg.MaxTimeout = DefaultMaxTimeout
	}
	if cfg.AbortTimedOutInterval <= 0 {
		cfg.AbortTimedOutInterval = DefaultAbortTimedOutInterval
	}
	if cfg.IDExpiration <= 0 {
		cfg.IDExpiration = DefaultIDExpiration
	}
	if cfg.RemoveExpiredInterval <= 0 {
		cfg.RemoveExpiredInterval = DefaultRemoveExpiredInterval
	}
}

// PartitionFor returns the __transaction_state partition that owns
// transactionalID (Kafka's TransactionStateManager.partitionFor).
func PartitionFor(transactionalID string, numPartitions int32) int32 {
	return coordinator.PartitionFor(transactionalID, numPartitions)
}

// Close stops every timer and marker write and waits for them. Requests
// waiting for a write are answered COORDINATOR_NOT_AVAILABLE, as are all
// later requests. Close is idempotent.
func (c *Coordinator) Close() {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return
	}
	c.mu.closed = true
	stopTimer(c.mu.abortTimer)
	stopTimer(c.mu.expiryTimer)
	for p, ps := range c.mu.parts {
		if ps != nil {
			c.dropPartitionLocked(ps)
			c.mu.parts[p] = nil
		}
	}
	c.mu.markers.queue = nil
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

// Owns reports whether partition is loaded or loading here.
func (c *Coordinator) Owns(partition int32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.mu.closed && c.validPartition(partition) && c.mu.parts[partition] != nil
}

func (c *Coordinator) validPartition(p int32) bool { return p >= 0 && p < c.cfg.NumPartitions }

// servableLocked returns the loaded partition state of transactionalID, or
// the error code a request for it gets when this coordinator cannot serve
// it right now.
func (c *Coordinator) servableLocked(transactionalID string) (*partState, int16) {
	if c.mu.closed {
		return nil, kerr.CoordinatorNotAvailable.Code
	}
	ps := c.mu.parts[PartitionFor(transactionalID, c.cfg.NumPartitions)]
	switch {
	case ps == nil:
		return nil, kerr.NotCoordinator.Code
	case !ps.loaded:
		return nil, kerr.CoordinatorLoadInProgress.Code
	}
	return ps, 0
}

// currentLocked reports whether t is still the live transaction of its id
// in the live state of its partition: not unloaded, reloaded or expired
// since the caller last looked.
func (c *Coordinator) currentLocked(ps *partState, t *txn) bool {
	return !c.mu.closed && c.mu.parts[ps.partition] == ps && ps.txns[t.id] == t
}

// goneCodeLocked is what a request gets when its transaction's partition went
// away while it waited.
func (c *Coordinator) goneCodeLocked() int16 {
	if c.mu.closed {
		return kerr.CoordinatorNotAvailable.Code
	}
	return kerr.NotCoordinator.Code
}

// afterFunc arms a clock timer whose callback is tracked for Close and
// skipped once the coordinator is closed. f runs without mu held.
func (c *Coordinator) afterFunc(d time.Duration, f func()) coordinator.Timer {
	return c.clock.AfterFunc(d, func() {
		c.mu.Lock()
		if c.mu.closed {
			c.mu.Unlock()
			return
		}
		c.wg.Add(1)
		c.mu.Unlock()
		defer c.wg.Done()
		f()
	})
}

func stopTimer(t coordinator.Timer) {
	if t != nil {
		t.Stop()
	}
}

// nowMs is the clock's time in Kafka's unit.
func (c *Coordinator) nowMs() int64 { return c.clock.Now().UnixMilli() }

// allocateProducerID asks Config.ProducerIDs for a new id and maps its
// failure to the code the client gets.
func (c *Coordinator) allocateProducerID(ctx context.Context) (int64, int16) {
	id, err := c.cfg.ProducerIDs(ctx)
	if err != nil {
		c.log.Warn("allocating a producer id failed", "err", err)
		var ke *kerr.Error
		if errors.As(err, &ke) {
			return -1, ke.Code
		}
		return -1, kerr.CoordinatorNotAvailable.Code
	}
	if id < 0 {
		c.log.Error("producer id allocator returned a negative id", "producer_id", id)
		return -1, kerr.UnknownServerError.Code
	}
	return id, 0
}

// persistErrorCode maps a Persist error to the code a client sees, as
// Kafka's TransactionStateManager.appendTransactionToLog maps append
// errors.
func persistErrorCode(err error) int16 {
	if errors.Is(err, ErrNotCoordinator) {
		return kerr.NotCoordinator.Code
	}
	var ke *kerr.Error
	if !errors.As(err, &ke) {
		return kerr.CoordinatorNotAvailable.Code
	}
	switch ke {
	case kerr.UnknownTopicOrPartition, kerr.NotEnoughReplicas, kerr.NotEnoughReplicasAfterAppend, kerr.RequestTimedOut:
		return kerr.CoordinatorNotAvailable.Code
	case kerr.NotLeaderForPartition, kerr.KafkaStorageError:
		return kerr.NotCoordinator.Code
	case kerr.MessageTooLarge, kerr.RecordListTooLarge:
		return kerr.UnknownServerError.Code
	}
	return ke.Code
}
