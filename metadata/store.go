package metadata

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"
)

// Sentinel errors. Callers test them with errors.Is; implementations wrap
// them with the topic, broker or partition concerned.
var (
	// ErrTopicExists is returned by CreateTopic when a topic of that name is
	// already present (Kafka: TOPIC_ALREADY_EXISTS).
	ErrTopicExists = errors.New("metadata: topic already exists")
	// ErrTopicNotFound is returned when the named topic is absent (Kafka:
	// UNKNOWN_TOPIC_OR_PARTITION).
	ErrTopicNotFound = errors.New("metadata: topic not found")
	// ErrConflict is returned by a compare-and-swap write whose expected
	// Revision no longer matches the stored one: someone else wrote first.
	// Re-read, re-apply the change and retry.
	ErrConflict = errors.New("metadata: revision conflict")
	// ErrInvalidTopic is returned for a topic record that cannot be stored:
	// an empty name or one containing '/', a negative partition count, a
	// replica list whose length disagrees with Partitions, or an update
	// without a topic id.
	ErrInvalidTopic = errors.New("metadata: invalid topic")
	// ErrBrokerIDInUse is returned by RegisterBroker when the node id is held
	// by a live registration (another process, or this node's previous
	// incarnation whose lease has not expired yet; retry for up to one TTL).
	ErrBrokerIDInUse = errors.New("metadata: broker id already registered")
	// ErrLeaseLost is reported by Registration.Err and Leadership.Err when
	// the lease behind them expired or was revoked, or could not be renewed
	// in time (for a Registration: before ValidUntil).
	ErrLeaseLost = errors.New("metadata: lease lost")
	// ErrPartitionNotFound is returned when no state record exists for a
	// topic partition.
	ErrPartitionNotFound = errors.New("metadata: partition state not found")
	// ErrNoController is returned by Controller when no node holds the
	// controller election.
	ErrNoController = errors.New("metadata: no controller elected")
	// ErrClosed is returned by every method of a store after Close.
	ErrClosed = errors.New("metadata: store closed")
)

// DefaultBrokerTTL is the lease TTL RegisterBroker uses when given ttl <= 0.
// It matches the spirit of Kafka's broker.session.timeout.ms (9 s): long
// enough to ride out a GC pause, short enough to notice a dead broker.
const DefaultBrokerTTL = 9 * time.Second

// Broker is a live broker's registration record: where clients reach it.
type Broker struct {
	NodeID int32
	Host   string
	Port   int32
	Rack   string // empty when the broker has no rack
	// Incarnation is a random id stored in the broker's data directory. A
	// broker restarted on the same directory after a crash presents the
	// same incarnation and takes over its stale registration at once,
	// instead of waiting for the dead process's lease to expire; a second,
	// different process claiming the node id is still refused.
	Incarnation string
	// Epoch is the store revision at which this registration wrote the
	// record (Registration.Epoch of the registration that wrote it). It is
	// not part of the stored value: Brokers and WatchBrokers take it from
	// the key's revision, and RegisterBroker ignores what the caller sets.
	// Every registration, including a takeover by the same Incarnation,
	// gets a larger epoch than any before it, so a new epoch for a node id
	// tells the other brokers that it restarted (its previous process is
	// gone, with whatever it held in memory) even if they never saw the
	// record disappear.
	Epoch int64
}

// Topic is a topic's cluster-wide definition. Leaders and ISRs are not part
// of it; they live in PartitionState records so that leadership changes do
// not rewrite (and conflict with) the topic record.
type Topic struct {
	Name string
	// ID is the topic's UUID (KIP-516). CreateTopic assigns a random one when
	// it is zero; it never changes afterwards.
	ID                [16]byte
	Partitions        int32
	ReplicationFactor int16
	// Replicas holds the replica assignment, one list of node ids per
	// partition (len(Replicas) == Partitions when set). The first entry is
	// the preferred leader.
	Replicas [][]int32
	// Configs holds only the topic configs set explicitly (Kafka's dynamic
	// topic overrides); defaults are the broker's business. Never nil when
	// returned by a store.
	Configs map[string]string
	// Revision is the store revision of the last write of this record. Pass
	// it back unchanged to UpdateTopic for compare-and-swap.
	Revision int64
}

// Clone returns a deep copy of t, so that callers can modify the copy
// without racing with other holders of the original.
func (t Topic) Clone() Topic {
	c := t
	if t.Replicas != nil {
		c.Replicas = make([][]int32, len(t.Replicas))
		for i, r := range t.Replicas {
			c.Replicas[i] = slices.Clone(r)
		}
	}
	c.Configs = maps.Clone(t.Configs)
	if c.Configs == nil {
		c.Configs = map[string]string{}
	}
	return c
}

// EventType says what happened to the record carried by an event.
type EventType int8

const (
	// EventPut means the record was created or changed; the event carries its
	// new value. Events of the initial snapshot are puts too.
	EventPut EventType = iota + 1
	// EventDelete means the record was removed; the event carries its last
	// value (for topics: name, id, partitions, ...), so a consumer can clean
	// up what belonged to that incarnation.
	EventDelete
)

// String returns "put" or "delete".
func (e EventType) String() string {
	switch e {
	case EventPut:
		return "put"
	case EventDelete:
		return "delete"
	default:
		return "unknown"
	}
}

// BrokerConfigsEvent is one change seen by WatchBrokerConfigs: the dynamic
// configs of NodeID (-1: the cluster-wide defaults) after it; a delete
// carries none.
type BrokerConfigsEvent struct {
	Type     EventType
	NodeID   int32
	Configs  map[string]string
	Snapshot bool // as in TopicEvent
}

// TopicEvent is one change seen by WatchTopics.
type TopicEvent struct {
	Type  EventType
	Topic Topic
	// Snapshot is true for the events that replay the state at the start of
	// the watch (one put per topic, in name order), false for live changes.
	Snapshot bool
}

// BrokerEvent is one change seen by WatchBrokers. Broker.Epoch is set in
// every event. Broker records are written only by RegisterBroker, so every
// live put is a new registration with a new epoch; a put for a node id that
// is already known, with no delete in between, is a restart that took the
// record over, and means the previous process is gone.
type BrokerEvent struct {
	Type     EventType
	Broker   Broker
	Snapshot bool // as in TopicEvent
}

// PartitionState is the leadership record of one partition, written by the
// controller with compare-and-swap (the equivalent of Kafka's
// PartitionRegistration / the ZooKeeper partition state znode).
type PartitionState struct {
	Topic     string
	Partition int32
	// Leader is the leader's node id, or -1 when the partition is offline.
	Leader int32
	// LeaderEpoch increases every time the leader changes (KIP-101).
	LeaderEpoch int32
	// ISR is the in-sync replica set, leader included.
	ISR []int32
	// PartitionEpoch increases on every change of this record (KIP-841), so
	// AlterPartition requests built from a stale view can be rejected.
	PartitionEpoch int32
	// Revision is the store revision of the last write; 0 for a record that
	// has not been stored yet.
	Revision int64
}

// PartitionEvent is one change seen by WatchPartitions.
type PartitionEvent struct {
	Type EventType
	// State is the record's new value for a put; for a delete (DeleteTopic,
	// or CreateTopic clearing records a failed deletion left), its last value,
	// Revision included, so a consumer knows which leader and epochs ended.
	State    PartitionState
	Snapshot bool // as in TopicEvent; the snapshot is ordered by topic, then partition
}

// Store is the cluster metadata API that the broker is written against.
// Implementations are safe for concurrent use. All methods return ErrClosed
// after Close.
type Store interface {
	// ClusterID returns the cluster id, creating a random one on first use.
	// Every caller, on every node and after restarts, sees the same value.
	ClusterID(ctx context.Context) (string, error)

	// RegisterBroker publishes b for as long as the returned Registration is
	// alive (lease with the given TTL, DefaultBrokerTTL when ttl <= 0, kept
	// alive in the background). ErrBrokerIDInUse if b.NodeID is taken.
	RegisterBroker(ctx context.Context, b Broker, ttl time.Duration) (*Registration, error)
	// Brokers returns the registered brokers ordered by node id, each with
	// its Epoch.
	Brokers(ctx context.Context) ([]Broker, error)
	// WatchBrokers sends one put per registered broker, then every change,
	// until ctx ends (the channel is then closed).
	WatchBrokers(ctx context.Context) (<-chan BrokerEvent, error)

	// CreateTopic stores a new topic, assigning a random ID when t.ID is
	// zero. It returns the stored topic (ID and Revision set) or
	// ErrTopicExists.
	CreateTopic(ctx context.Context, t Topic) (Topic, error)
	// DeleteTopic removes the topic and its partition states, or returns
	// ErrTopicNotFound.
	DeleteTopic(ctx context.Context, name string) error
	// Topic returns one topic or ErrTopicNotFound.
	Topic(ctx context.Context, name string) (Topic, error)
	// Topics returns every topic ordered by name.
	Topics(ctx context.Context) ([]Topic, error)
	// UpdateTopic replaces the topic if its stored Revision still equals
	// t.Revision (ErrConflict otherwise, ErrTopicNotFound if it is gone) and
	// returns it with the new Revision.
	UpdateTopic(ctx context.Context, t Topic) (Topic, error)
	// WatchTopics sends one put per existing topic (Snapshot set), then every
	// change, until ctx ends (the channel is then closed).
	WatchTopics(ctx context.Context) (<-chan TopicEvent, error)

	// BrokerConfigs returns the dynamic configs of one broker (nodeID -1:
	// the cluster-wide defaults). An empty, non-nil map when none are set.
	BrokerConfigs(ctx context.Context, nodeID int32) (map[string]string, error)
	// SetBrokerConfigs replaces the dynamic configs of one broker (nodeID -1:
	// the cluster-wide defaults); an empty map removes them all.
	SetBrokerConfigs(ctx context.Context, nodeID int32, configs map[string]string) error
	// WatchBrokerConfigs sends one put per broker (and the cluster-wide
	// defaults) with dynamic configs (Snapshot set), then every change,
	// until ctx ends (the channel is then closed). Every broker watches it,
	// so a setting altered through any broker applies on all of them.
	WatchBrokerConfigs(ctx context.Context) (<-chan BrokerConfigsEvent, error)

	// PartitionState returns the state of one partition or
	// ErrPartitionNotFound.
	PartitionState(ctx context.Context, topic string, partition int32) (PartitionState, error)
	// PartitionStates returns the states of all partitions of a topic that
	// have one, ordered by partition.
	PartitionStates(ctx context.Context, topic string) ([]PartitionState, error)
	// SetPartitionState writes s if the stored record's Revision still
	// equals s.Revision (0: only if absent), else ErrConflict. The topic must
	// exist (ErrTopicNotFound).
	SetPartitionState(ctx context.Context, s PartitionState) (PartitionState, error)
	// CreatePartitionStates writes the first records of many partitions of
	// one topic, each only where none exists yet, in as few transactions
	// as the store's per-transaction operation limit allows (etcd's
	// --max-txn-ops, 128 by default) instead of one per partition. It
	// returns the records it wrote; a partition that already had one (a
	// controller filling the gap first) is skipped, not an error. The
	// topic must exist (ErrTopicNotFound).
	CreatePartitionStates(ctx context.Context, states []PartitionState) ([]PartitionState, error)
	// WatchPartitions sends one put per existing partition state of every
	// topic (Snapshot set, ordered by topic name then partition), then every
	// change in commit order, until ctx ends (the channel is then closed).
	// State.Revision is the record's mod revision, as PartitionState
	// returns it. One watch follows every partition, so a broker learns of
	// leadership and ISR changes without a watch per topic.
	WatchPartitions(ctx context.Context) (<-chan PartitionEvent, error)

	// ClientQuota returns the quota record of one entity: one without
	// values and with Revision 0 when the entity has none.
	ClientQuota(ctx context.Context, e QuotaEntity) (ClientQuota, error)
	// ClientQuotas returns every entity that has quotas, in key order
	// (user entities, then client-id entities; see quotaKey).
	ClientQuotas(ctx context.Context) ([]ClientQuota, error)
	// SetClientQuota replaces the quotas of q.Entity if the stored record's
	// Revision still equals q.Revision (0: only if absent), else
	// ErrConflict; empty Values delete the record. It returns the record as
	// stored (Revision 0 once deleted). ErrInvalidQuota for an empty entity.
	SetClientQuota(ctx context.Context, q ClientQuota) (ClientQuota, error)
	// WatchClientQuotas sends one put per entity with quotas (Snapshot set,
	// in key order), then every change, until ctx ends (the channel is then
	// closed). Every broker follows it to apply quota changes live.
	WatchClientQuotas(ctx context.Context) (<-chan ClientQuotaEvent, error)

	// GroupConfig returns the config record of one group (Kafka's GROUP
	// config resource): one without configs and with Revision 0 when the
	// group has none. ErrInvalidGroupConfig for an empty name.
	GroupConfig(ctx context.Context, group string) (GroupConfig, error)
	// GroupConfigs returns every group with configs, in key order.
	GroupConfigs(ctx context.Context) ([]GroupConfig, error)
	// SetGroupConfig replaces the configs of c.Group if the stored record's
	// Revision still equals c.Revision (0: only if absent), else
	// ErrConflict; empty Configs delete the record. It returns the record
	// as stored (Revision 0 once deleted).
	SetGroupConfig(ctx context.Context, c GroupConfig) (GroupConfig, error)
	// WatchGroupConfigs sends one put per group with configs (Snapshot
	// set, in key order), then every change, until ctx ends (the channel
	// is then closed). Every broker follows it to apply group configs live.
	WatchGroupConfigs(ctx context.Context) (<-chan GroupConfigEvent, error)

	// Features returns the finalized feature levels set with
	// UpdateFeatures (no levels and Revision 0 when none was ever set).
	Features(ctx context.Context) (FinalizedFeatures, error)
	// SetFeatures replaces the finalized levels if the stored Revision
	// still equals f.Revision (0: only if never set), else ErrConflict, and
	// returns them with the new Revision.
	SetFeatures(ctx context.Context, f FinalizedFeatures) (FinalizedFeatures, error)
	// WatchFeatures sends the finalized levels (Snapshot set, if any were
	// ever set), then every change, until ctx ends (the channel is then
	// closed).
	WatchFeatures(ctx context.Context) (<-chan FeaturesEvent, error)

	// AllocateProducerIDs reserves n consecutive producer ids, unique
	// across the cluster and across restarts, and returns the first.
	AllocateProducerIDs(ctx context.Context, n int64) (int64, error)

	// Campaign blocks until nodeID is elected controller or ctx ends.
	Campaign(ctx context.Context, nodeID int32) (*Leadership, error)
	// WithdrawCandidacies ends every controller candidacy of nodeID,
	// including a won election. Callers use it for a node whose broker
	// registration is gone: such a node has stopped acting as a cluster
	// member, and its candidacy (on a lease of its own) must not keep the
	// election from moving on.
	WithdrawCandidacies(ctx context.Context, nodeID int32) error
	// Controller returns the elected controller and its epoch, or
	// ErrNoController.
	Controller(ctx context.Context) (nodeID int32, epoch int64, err error)

	// Close releases the store: open registrations and leaderships are
	// given up, watches end. Idempotent.
	Close() error
}
