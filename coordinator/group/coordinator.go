package group

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Kafka's broker defaults for the settings in Config. New applies them to
// zero fields, except InitialRebalanceDelay, whose zero value means "no
// delay" (tests rely on that); brokers pass DefaultInitialRebalanceDelay.
const (
	DefaultNumPartitions                 = 50                 // offsets.topic.num.partitions
	DefaultMinSessionTimeout             = 6 * time.Second    // group.min.session.timeout.ms
	DefaultMaxSessionTimeout             = 30 * time.Minute   // group.max.session.timeout.ms
	DefaultInitialRebalanceDelay         = 3 * time.Second    // group.initial.rebalance.delay.ms
	DefaultOffsetsRetention              = 7 * 24 * time.Hour // offsets.retention.minutes
	DefaultOffsetsRetentionCheckInterval = 10 * time.Minute   // offsets.retention.check.interval.ms
	DefaultMaxOffsetMetadataBytes        = 4096               // offset.metadata.max.bytes
	DefaultConsumerHeartbeatInterval     = 5 * time.Second    // group.consumer.heartbeat.interval.ms
	DefaultConsumerSessionTimeout        = 45 * time.Second   // group.consumer.session.timeout.ms
)

// maxNumPartitions bounds NumPartitions: the coordinator keeps a mutex per
// partition, and Kafka clusters use tens to hundreds.
const maxNumPartitions = 1 << 16

// Sentinel errors. Handlers never return Go errors (outcomes are Kafka error
// codes in the responses); these come from New and from Persist plumbing.
var (
	// ErrInvalidConfig is returned by New for a missing Persister or
	// inconsistent limits.
	ErrInvalidConfig = errors.New("coordinator: invalid config")
	// ErrNotCoordinator means the group's __consumer_offsets partition was
	// unloaded (or the group replaced) while a write was in flight.
	ErrNotCoordinator = errors.New("coordinator: partition not loaded here")
)

// Config configures a Coordinator. Field comments name the Kafka broker
// setting each one mirrors; zero values take Kafka's defaults (see the
// Default* constants).
type Config struct {
	// Clock supplies time and timers; nil means SystemClock().
	Clock Clock
	// Logger receives one Info line per rebalance and warnings for failed
	// writes; nil discards.
	Logger *slog.Logger
	// Persister makes group state durable; required.
	Persister Persister
	// NumPartitions is offsets.topic.num.partitions: the modulus of
	// PartitionFor. It must match the real partition count of
	// __consumer_offsets and never change for the life of the cluster.
	NumPartitions int32
	// MinSessionTimeout and MaxSessionTimeout bound the session timeout a
	// classic member may ask for (group.min/max.session.timeout.ms);
	// outside them JoinGroup answers INVALID_SESSION_TIMEOUT.
	MinSessionTimeout, MaxSessionTimeout time.Duration
	// InitialRebalanceDelay is group.initial.rebalance.delay.ms: how long
	// the first rebalance of an empty classic group waits for more members.
	// Zero means no delay.
	InitialRebalanceDelay time.Duration
	// MaxGroupSize is group.max.size (MaxInt32 when zero).
	MaxGroupSize int
	// OffsetsRetention is offsets.retention.minutes (KIP-211).
	OffsetsRetention time.Duration
	// OffsetsRetentionCheckInterval is offsets.retention.check.interval.ms:
	// how often expired offsets are looked for.
	OffsetsRetentionCheckInterval time.Duration
	// MaxOffsetMetadataBytes is offset.metadata.max.bytes; longer commit
	// metadata gets OFFSET_METADATA_TOO_LARGE.
	MaxOffsetMetadataBytes int
	// ConsumerHeartbeatInterval and ConsumerSessionTimeout are
	// group.consumer.heartbeat.interval.ms and
	// group.consumer.session.timeout.ms for KIP-848 groups.
	ConsumerHeartbeatInterval, ConsumerSessionTimeout time.Duration
	// ConsumerSettings, when set, gives one KIP-848 group's own
	// consumer.heartbeat.interval.ms and consumer.session.timeout.ms (its
	// group configs, KIP-848); a zero value falls back to the fields
	// above. It may be called with the coordinator lock held and must not
	// call back into the Coordinator.
	ConsumerSettings func(group string) (heartbeatInterval, sessionTimeout time.Duration)
	// ShareSettings returns the effective settings of share group group
	// (group.share.heartbeat.interval.ms, group.share.session.timeout.ms,
	// group.share.max.size, overridden by the group's configs
	// share.heartbeat.interval.ms and share.session.timeout.ms). Nil, or
	// zero fields, mean Kafka's defaults (DefaultShare*). It is called
	// with the coordinator lock held on every ShareGroupHeartbeat: it must
	// be cheap and must not call back into the Coordinator.
	ShareSettings func(group string) ShareSettings
	// ConsumerAssignors is group.consumer.assignors: the server-side
	// assignors members may name; the first is the default. Only "uniform"
	// and "range" exist. Nil means {"uniform", "range"}.
	ConsumerAssignors []string
	// TopicMetadata resolves a topic name to its id and partition count. It
	// feeds the KIP-848 assignors and OffsetCommit's unknown-topic check;
	// nil means no topic is known to exist (commits are then not checked).
	// It is called with the coordinator lock held: it must not call back
	// into the Coordinator.
	TopicMetadata func(topic string) (id [16]byte, partitions int32, ok bool)
	// ListTopics lists every topic name. It is optional and only enables
	// KIP-848 regex subscriptions; without it they get INVALID_REQUEST.
	// Same locking rule as TopicMetadata.
	ListTopics func() []string
	// Rand is the randomness for member ids; nil means crypto/rand.
	Rand io.Reader
	// TxnVerifier, when set, checks every TxnOffsetCommit with the
	// transaction coordinator before writing it
	// (transaction.partition.verification.enable); TxnOffsetCommit v5+
	// under transaction version 2 needs it to add the partition. Without
	// it a v5 commit is written but never added to its transaction, so no
	// marker ever ends it: a broker that serves v5 sets it even with
	// verification disabled, and answers 0 itself when add is false (Kafka
	// 4 adds for transaction version 2 whatever that setting says).
	TxnVerifier TxnVerifier
}

// Persister makes group state durable in __consumer_offsets. The broker
// implements it by appending one record batch holding records, in order, to
// the given partition and returning once the batch is durable under the
// acks=all rule. An error means the write may or may not have happened; the
// coordinator then answers with an error code (see doc.go). Neither method
// may call back into the Coordinator. Calls for one partition never overlap.
type Persister interface {
	Persist(ctx context.Context, partition int32, records []Record) error
	// PersistTxn is Persist for TxnOffsetCommit: one transactional batch
	// of producerID at producerEpoch, whose offsets take effect only when
	// the transaction's COMMIT marker follows (CompleteTxn).
	PersistTxn(ctx context.Context, partition int32, producerID int64, producerEpoch int16, records []Record) error
}

// Marker says whether a record is a transaction marker, and which.
type Marker int8

// The markers a RecordSource yields: NoMarker for data records, and Kafka's
// two control record types.
const (
	NoMarker Marker = iota
	CommitMarker
	AbortMarker
)

// Record is one __consumer_offsets record. Value nil is a tombstone. The
// coordinator never retains or modifies a Record after handing it over.
//
// When a RecordSource replays a partition, records read from a
// transactional batch have Transactional set and their batch's ProducerID
// (TxnOffsetCommit offsets, pending until a marker of that producer), and
// each control batch yields one Record with Marker set, its ProducerID, and
// no key or value. Records handed to a Persister leave these fields zero.
type Record struct {
	Key, Value    []byte
	Transactional bool
	ProducerID    int64
	Marker        Marker
}

// TxnVerifier asks the transaction coordinator about a producer's ongoing
// transaction (KIP-890). With add false it checks that the
// __consumer_offsets partition was added to it (AddOffsetsToTxn); with add
// true (TxnOffsetCommit v5+ under transaction version 2) it adds it. It
// returns a Kafka error code, 0 when the commit may be written. It must not
// call back into the Coordinator.
//
// It is called without any coordinator lock, before the commit is
// validated, as Kafka verifies before running the commit. A non-zero code
// answers every partition of the request, adapted as Kafka adapts it:
// NETWORK_EXCEPTION (no answer from the transaction coordinator) becomes
// COORDINATOR_LOAD_IN_PROGRESS so clients retry without a coordinator
// lookup; NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT and
// UNKNOWN_TOPIC_OR_PARTITION become COORDINATOR_NOT_AVAILABLE;
// NOT_LEADER_OR_FOLLOWER and KAFKA_STORAGE_ERROR become NOT_COORDINATOR;
// PRODUCER_FENCED becomes INVALID_PRODUCER_EPOCH; TRANSACTION_ABORTABLE
// becomes INVALID_TXN_STATE for clients older than v4. Every other code is
// answered as is (INVALID_TXN_STATE, INVALID_PRODUCER_EPOCH,
// INVALID_PRODUCER_ID_MAPPING, CONCURRENT_TRANSACTIONS, ...).
//
// The broker may answer 0 without asking when its log shows a transaction
// of the producer, at this epoch, already ongoing in the partition, as
// Kafka does: a marker of
// the producer written while a verification is in flight makes the
// coordinator verify again, so a transaction that ends meanwhile is never
// written after its marker.
type TxnVerifier interface {
	VerifyTxn(ctx context.Context, transactionalID string, producerID int64, producerEpoch int16, partition int32, add bool) int16
}

type partitionStatus int8

const (
	partitionUnloaded partitionStatus = iota
	partitionLoading
	partitionLoaded
)

// Coordinator is the consumer-group coordinator for the __consumer_offsets
// partitions loaded into it. It is safe for concurrent use; see doc.go for
// the concurrency contract and lock order.
type Coordinator struct {
	cfg   Config
	log   *slog.Logger
	clock Clock

	// ctx bounds writes made on behalf of the whole group (timers, sync);
	// Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	// persistMu[p] serializes every write to partition p, from building
	// the records to applying the result, so the log and memory agree on
	// the order of writes. Lock order: persistMu[p] before mu.
	persistMu []sync.Mutex

	// callbacks counts timer callbacks running; Close waits for them.
	callbacks sync.WaitGroup

	mu struct {
		sync.Mutex
		closed bool
		parts  []partitionStatus
		loads  []uint64 // per partition: the generation of its latest BeginLoad
		groups map[string]*group
		seq    uint64 // join order of classic members, for determinism
		stats  counters
		expiry Timer

		// Transactions (txn_offsets.go), per partition: the position
		// of the latest offset write applied, the groups holding
		// pending offsets of each producer, and the markers written
		// while the partition loads (producer -> commit).
		offsetPos   []uint64
		openTxns    []map[int64]map[string]struct{}
		loadMarkers []map[int64]bool
		// markerWatch follows markers of producers whose
		// TxnOffsetCommit is being verified.
		markerWatch map[txnKey]*markerWatch
	}
}

// New validates cfg, fills defaults and returns a Coordinator that owns no
// partitions yet: for every __consumer_offsets partition this broker leads,
// call BeginLoad and then LoadFrom (or Load, with the records in memory).
func New(cfg Config) (*Coordinator, error) {
	if cfg.Persister == nil {
		return nil, fmt.Errorf("%w: Persister is required", ErrInvalidConfig)
	}
	fillDefaults(&cfg)
	if cfg.NumPartitions > maxNumPartitions {
		return nil, fmt.Errorf("%w: NumPartitions %d > %d", ErrInvalidConfig, cfg.NumPartitions, maxNumPartitions)
	}
	if cfg.MinSessionTimeout > cfg.MaxSessionTimeout {
		return nil, fmt.Errorf("%w: MinSessionTimeout %v > MaxSessionTimeout %v", ErrInvalidConfig, cfg.MinSessionTimeout, cfg.MaxSessionTimeout)
	}
	for _, a := range cfg.ConsumerAssignors {
		if a != AssignorUniform && a != AssignorRange {
			return nil, fmt.Errorf("%w: unknown consumer assignor %q", ErrInvalidConfig, a)
		}
	}
	c := &Coordinator{
		cfg:       cfg,
		log:       cfg.Logger,
		clock:     cfg.Clock,
		persistMu: make([]sync.Mutex, cfg.NumPartitions),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.mu.parts = make([]partitionStatus, cfg.NumPartitions)
	c.mu.loads = make([]uint64, cfg.NumPartitions)
	c.mu.groups = make(map[string]*group)
	c.mu.stats.rebalances = make(map[RebalanceReason]uint64)
	c.mu.offsetPos = make([]uint64, cfg.NumPartitions)
	c.mu.openTxns = make([]map[int64]map[string]struct{}, cfg.NumPartitions)
	c.mu.loadMarkers = make([]map[int64]bool, cfg.NumPartitions)
	c.mu.markerWatch = make(map[txnKey]*markerWatch)
	c.mu.Lock()
	c.scheduleExpiryLocked()
	c.mu.Unlock()
	return c, nil
}

func fillDefaults(cfg *Config) {
	if cfg.Clock == nil {
		cfg.Clock = SystemClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.NumPartitions <= 0 {
		cfg.NumPartitions = DefaultNumPartitions
	}
	if cfg.MinSessionTimeout <= 0 {
		cfg.MinSessionTimeout = DefaultMinSessionTimeout
	}
	if cfg.MaxSessionTimeout <= 0 {
		cfg.MaxSessionTimeout = DefaultMaxSessionTimeout
	}
	if cfg.InitialRebalanceDelay < 0 {
		cfg.InitialRebalanceDelay = 0
	}
	if cfg.MaxGroupSize <= 0 {
		cfg.MaxGroupSize = math.MaxInt32
	}
	if cfg.OffsetsRetention <= 0 {
		cfg.OffsetsRetention = DefaultOffsetsRetention
	}
	if cfg.OffsetsRetentionCheckInterval <= 0 {
		cfg.OffsetsRetentionCheckInterval = DefaultOffsetsRetentionCheckInterval
	}
	if cfg.MaxOffsetMetadataBytes <= 0 {
		cfg.MaxOffsetMetadataBytes = DefaultMaxOffsetMetadataBytes
	}
	if cfg.ConsumerHeartbeatInterval <= 0 {
		cfg.ConsumerHeartbeatInterval = DefaultConsumerHeartbeatInterval
	}
	if cfg.ConsumerSessionTimeout <= 0 {
		cfg.ConsumerSessionTimeout = DefaultConsumerSessionTimeout
	}
	if len(cfg.ConsumerAssignors) == 0 {
		cfg.ConsumerAssignors = []string{AssignorUniform, AssignorRange}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
}

// Close stops every timer, answers requests blocked in JoinGroup or SyncGroup
// with COORDINATOR_NOT_AVAILABLE, cancels in-flight background writes and
// waits for running timer callbacks. Later calls to handlers answer
// COORDINATOR_NOT_AVAILABLE. Close is idempotent.
func (c *Coordinator) Close() {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return
	}
	c.mu.closed = true
	if c.mu.expiry != nil {
		c.mu.expiry.Stop()
	}
	for _, g := range c.mu.groups {
		c.dropGroupLocked(g, kerr.CoordinatorNotAvailable.Code)
	}
	c.mu.groups = make(map[string]*group)
	c.mu.Unlock()
	c.cancel()
	c.callbacks.Wait()
}

// Owns reports whether partition is loaded here, i.e. whether this
// coordinator currently serves the groups that hash to it.
func (c *Coordinator) Owns(partition int32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.mu.closed && c.validPartition(partition) && c.mu.parts[partition] == partitionLoaded
}

func (c *Coordinator) validPartition(p int32) bool { return p >= 0 && p < c.cfg.NumPartitions }

// servableLocked returns the group's partition and the error code a request
// for it gets if this coordinator cannot serve it right now (0 if it can).
func (c *Coordinator) servableLocked(groupID string) (int32, int16) {
	p := PartitionFor(groupID, c.cfg.NumPartitions)
	if c.mu.closed {
		return p, kerr.CoordinatorNotAvailable.Code
	}
	switch c.mu.parts[p] {
	case partitionLoading:
		return p, kerr.CoordinatorLoadInProgress.Code
	case partitionUnloaded:
		return p, kerr.NotCoordinator.Code
	}
	return p, 0
}

// currentLocked reports whether g is still the live group for its id.
func (c *Coordinator) currentLocked(g *group) bool {
	return !c.mu.closed && c.mu.groups[g.id] == g
}

// afterFunc arms a clock timer whose callback is tracked for Close and
// skipped once the coordinator is closed.
func (c *Coordinator) afterFunc(d time.Duration, f func()) Timer {
	return c.clock.AfterFunc(d, func() {
		c.mu.Lock()
		if c.mu.closed {
			c.mu.Unlock()
			return
		}
		c.callbacks.Add(1)
		c.mu.Unlock()
		defer c.callbacks.Done()
		f()
	})
}

// newMemberID returns prefix-<uuid v4>, the shape Kafka gives member ids
// (client id or group.instance.id, a dash, a random UUID).
func (c *Coordinator) newMemberID(prefix string) string {
	u := c.newUUID()
	if prefix == "" {
		return u
	}
	return prefix + "-" + u
}

func (c *Coordinator) newUUID() string {
	var b [16]byte
	if _, err := io.ReadFull(c.cfg.Rand, b[:]); err != nil {
		// Only a broken Rand gets here; fall back to a counter so ids
		// stay unique within this process.
		c.mu.seq++
		for i := range 8 {
			b[i] = byte(c.mu.seq >> (8 * i))
		}
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hex = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, x := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hex[x>>4], hex[x&0x0f])
	}
	return string(out)
}

// persistCtx returns a context that ends when either ctx or the coordinator
// ends, for writes made on behalf of one request.
func (c *Coordinator) persistCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	pctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, cancel)
	return pctx, func() { stop(); cancel() }
}

// persistErrorCode maps a Persist error to the code a client sees, following
// Kafka's GroupMetadataManager mapping of append errors. forCommit selects
// the OffsetCommit flavour (oversized writes are the client's fault there).
func persistErrorCode(err error, forCommit bool) int16 {
	if errors.Is(err, ErrNotCoordinator) {
		return kerr.NotCoordinator.Code
	}
	var ke *kerr.Error
	if !errors.As(err, &ke) {
		return kerr.CoordinatorNotAvailable.Code
	}
	switch ke {
	case kerr.NotLeaderForPartition, kerr.KafkaStorageError, kerr.NotCoordinator:
		return kerr.NotCoordinator.Code
	case kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidFetchSize:
		if forCommit {
			return kerr.InvalidCommitOffsetSize.Code
		}
		return kerr.UnknownServerError.Code
	case kerr.RequestTimedOut:
		if forCommit {
			return kerr.CoordinatorNotAvailable.Code
		}
		return kerr.RebalanceInProgress.Code
	}
	return kerr.CoordinatorNotAvailable.Code
}

// availabilityErrorCode maps a Persist error for APIs whose only storage
// errors are NOT_COORDINATOR and COORDINATOR_NOT_AVAILABLE
// (ConsumerGroupHeartbeat, DeleteGroups).
func availabilityErrorCode(err error) int16 {
	if persistErrorCode(err, true) == kerr.NotCoordinator.Code {
		return kerr.NotCoordinator.Code
	}
	return kerr.CoordinatorNotAvailable.Code
}

type clientKey struct{}

type clientInfo struct{ id, host string }

// WithClient returns a context carrying the client id (from the request
// header) and the client host (the peer address) of a connection. Handlers
// read it to name new members and to fill DescribeGroups; without it both
// are empty.
func WithClient(ctx context.Context, clientID, clientHost string) context.Context {
	return context.WithValue(ctx, clientKey{}, clientInfo{id: clientID, host: clientHost})
}

func clientFrom(ctx context.Context) clientInfo {
	ci, _ := ctx.Value(clientKey{}).(clientInfo)
	return ci
}
