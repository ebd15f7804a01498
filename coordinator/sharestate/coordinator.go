package sharestate

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicedev/sluice/coordinator"
	"github.com/sluicedev/sluice/coordinator/share"
)

// Kafka's broker defaults for the settings in Config.
const (
	// DefaultNumPartitions is share.coordinator.state.topic.num.partitions.
	DefaultNumPartitions = 50
	// DefaultSnapshotEvery is
	// share.coordinator.snapshot.update.records.per.snapshot: how many
	// update records a key gets before the next write is a snapshot.
	DefaultSnapshotEvery = 500
	// DefaultMaxBatches bounds the state batches of one share-partition
	// (stored, or sent in one write). Kafka's in-flight window is at most
	// group.share.partition.max.record.locks records (default 2000, at most
	// 10000), so an honest leader never comes near it.
	DefaultMaxBatches = 1 << 16
)

// maxNumPartitions bounds NumPartitions, as in package txn.
const maxNumPartitions = 1 << 16

// Sentinel errors. Handlers never return Go errors; these come from New,
// LoadFrom and the plumbing between the coordinator and the broker.
var (
	// ErrInvalidConfig is returned by New for a missing Persister.
	ErrInvalidConfig = errors.New("sharestate: invalid config")
	// ErrNotCoordinator may be wrapped by a Persister error when the broker
	// no longer leads the partition: the caller gets NOT_COORDINATOR.
	ErrNotCoordinator = errors.New("sharestate: partition not loaded here")
	// ErrLoadSuperseded is returned by LoadFrom when the partition was
	// unloaded or loaded again meanwhile.
	ErrLoadSuperseded = errors.New("sharestate: partition load superseded")
	// errMalformed marks a record LoadFrom skips.
	errMalformed = errors.New("sharestate: malformed __share_group_state record")
)

// Config configures a Coordinator. Zero values take the Default* constants.
type Config struct {
	// Clock supplies time (load durations in the log; the coordinator has
	// no timers); nil means coordinator.SystemClock().
	Clock coordinator.Clock
	// Logger receives one line per load and per failed write; nil
	// discards.
	Logger *slog.Logger
	// Persister makes records durable in __share_group_state; required.
	Persister Persister
	// NumPartitions is share.coordinator.state.topic.num.partitions: the
	// modulus of PartitionFor; it must match the topic's partition count.
	NumPartitions int32
	// SnapshotEvery is how many update records a share-partition gets
	// before its next write is a whole snapshot (Kafka's
	// share.coordinator.snapshot.update.records.per.snapshot).
	SnapshotEvery int
	// MaxBatches bounds the state batches of one share-partition: a write
	// sending more, or whose merge would store more, gets INVALID_REQUEST.
	MaxBatches int
}

// Persister makes share state durable in __share_group_state. The broker
// implements it by appending one record batch holding records, in order,
// to the partition and returning once it is durable under the acks=all
// rule. An error means the write may or may not have happened; memory is
// left as it was. Calls for one partition never overlap; Persist must
// return soon after ctx ends and must not call into the Coordinator.
//
// Errors reach callers as NOT_COORDINATOR when they wrap ErrNotCoordinator,
// NOT_LEADER_OR_FOLLOWER or KAFKA_STORAGE_ERROR, else as
// COORDINATOR_NOT_AVAILABLE (both are retried by partition leaders).
type Persister interface {
	Persist(ctx context.Context, partition int32, records []Record) error
}

// Record is one __share_group_state record (see doc.go for the layout).
// Value nil is a tombstone.
type Record struct {
	Key, Value []byte
}

// RecordSource yields one __share_group_state partition's records in log
// order and returns the error that stopped it early, if any.
type RecordSource func(yield func(Record) bool) error

// Coordinator is the share coordinator for the __share_group_state
// partitions loaded into it. It is safe for concurrent use.
type Coordinator struct {
	cfg   Config
	log   *slog.Logger
	clock coordinator.Clock

	ctx    context.Context
	cancel context.CancelFunc

	mu struct {
		sync.Mutex
		closed bool
		// parts[p] is the state of partition p while it is loading or
		// loaded here, nil otherwise. Every BeginLoad installs a fresh
		// one, so a pointer comparison tells a stale one.
		parts []*partState
		gen   uint64
	}
}

// New validates cfg, fills defaults and returns a Coordinator that owns no
// partitions yet: call BeginLoad and LoadFrom for every __share_group_state
// partition this broker leads.
func New(cfg Config) (*Coordinator, error) {
	if cfg.Persister == nil {
		return nil, fmt.Errorf("%w: Persister is required", ErrInvalidConfig)
	}
	if cfg.Clock == nil {
		cfg.Clock = coordinator.SystemClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.NumPartitions <= 0 {
		cfg.NumPartitions = DefaultNumPartitions
	}
	if cfg.NumPartitions > maxNumPartitions {
		return nil, fmt.Errorf("%w: NumPartitions %d > %d", ErrInvalidConfig, cfg.NumPartitions, maxNumPartitions)
	}
	if cfg.SnapshotEvery <= 0 {
		cfg.SnapshotEvery = DefaultSnapshotEvery
	}
	if cfg.MaxBatches <= 0 {
		cfg.MaxBatches = DefaultMaxBatches
	}
	c := &Coordinator{cfg: cfg, log: cfg.Logger, clock: cfg.Clock}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.mu.parts = make([]*partState, cfg.NumPartitions)
	return c, nil
}

// Close drops every partition, cancels the writes in flight and waits for
// them; later requests get COORDINATOR_NOT_AVAILABLE. Close is idempotent.
func (c *Coordinator) Close() {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return
	}
	c.mu.closed = true
	var dropped []*partState
	for p, ps := range c.mu.parts {
		if ps != nil {
			ps.cancel()
			dropped = append(dropped, ps)
			c.mu.parts[p] = nil
		}
	}
	c.mu.Unlock()
	c.cancel()
	for _, ps := range dropped {
		ps.goroutines.Wait()
	}
}

// CoordinatorKey is the string Kafka hashes to place a share-partition's
// state: "group:topicId:partition" with the topic id in Kafka's Uuid
// form (URL-safe base64 without padding), as SharePartitionKey.asCoordinatorKey.
func CoordinatorKey(k share.Key) string {
	return k.Group + ":" + base64.RawURLEncoding.EncodeToString(k.TopicID[:]) + ":" + strconv.FormatInt(int64(k.Partition), 10)
}

// ParseCoordinatorKey parses a CoordinatorKey (FindCoordinator key type 2).
// The group may itself contain colons; the topic id and partition are the
// last two fields.
func ParseCoordinatorKey(s string) (share.Key, bool) {
	j := strings.LastIndexByte(s, ':')
	if j < 0 {
		return share.Key{}, false
	}
	i := strings.LastIndexByte(s[:j], ':')
	if i <= 0 {
		return share.Key{}, false
	}
	p, err := strconv.ParseInt(s[j+1:], 10, 32)
	id, derr := base64.RawURLEncoding.DecodeString(s[i+1 : j])
	if err != nil || p < 0 || derr != nil || len(id) != 16 {
		return share.Key{}, false
	}
	k := share.Key{Group: s[:i], Partition: int32(p)}
	copy(k.TopicID[:], id)
	return k, true
}

// PartitionFor returns the __share_group_state partition that owns k
// (Kafka's ShareCoordinatorService.partitionFor over CoordinatorKey).
func PartitionFor(k share.Key, numPartitions int32) int32 {
	return coordinator.PartitionFor(CoordinatorKey(k), numPartitions)
}

// Owns reports whether partition is loaded or loading here.
func (c *Coordinator) Owns(partition int32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.mu.closed && c.validPartition(partition) && c.mu.parts[partition] != nil
}

func (c *Coordinator) validPartition(p int32) bool { return p >= 0 && p < c.cfg.NumPartitions }

// servableLocked returns the loaded partition state of k, or the code a
// request for it gets when this coordinator cannot serve it now.
func (c *Coordinator) servableLocked(k share.Key) (*partState, int16) {
	if c.mu.closed {
		return nil, kerr.CoordinatorNotAvailable.Code
	}
	ps := c.mu.parts[PartitionFor(k, c.cfg.NumPartitions)]
	switch {
	case ps == nil:
		return nil, kerr.NotCoordinator.Code
	case !ps.loaded:
		return nil, kerr.CoordinatorLoadInProgress.Code
	}
	return ps, 0
}

// persistErrorCode maps a Persist error to the code a caller sees.
func persistErrorCode(err error) int16 {
	if errors.Is(err, ErrNotCoordinator) {
		return kerr.NotCoordinator.Code
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		switch ke {
		case kerr.NotLeaderForPartition, kerr.KafkaStorageError:
			return kerr.NotCoordinator.Code
		}
	}
	return kerr.CoordinatorNotAvailable.Code
}
