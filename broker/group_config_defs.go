package broker

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/sluicedev/sluice/coordinator/share"
)

// The share-group settings of Kafka 4.2 (KIP-932, KIP-1240, KIP-1191)
// under Kafka's names and defaults, the bounds the per-group configs are
// checked against, and Sluice's redelivery backoff (beyond Kafka, named in
// Kafka's style). They are resolved into shareBrokerSettings whenever the
// broker settings change; group configs (group_config.go) override some of
// them per group, within the min/max bounds here.

// shareGroupDefs are the broker settings of share groups. The ones the
// broker acts on are cluster-wide dynamic (readOnly false) so a change
// through IncrementalAlterConfigs applies on every broker.
func shareGroupDefs() []configDef {
	const static, dynamic = true, false
	return []configDef{
		// Kafka 4.0 gated share groups with this setting; 4.1 replaced it by
		// the share.version feature. Accepted so older server.properties load.
		inert("group.share.enable", typeBoolean, "false", static,
			"removed in Kafka 4.1; share groups are turned on and off with the share.version feature (kafka-features.sh, UpdateFeatures)."),
		{name: "group.share.record.lock.duration.ms", typ: typeInt, def: "30000", validate: atLeast(1000),
			doc: "How long records acquired by a share consumer stay locked to it before they return to Available; the default of share.record.lock.duration.ms."},
		{name: "group.share.min.record.lock.duration.ms", typ: typeInt, def: "15000", validate: atLeast(1000),
			doc: "Smallest share.record.lock.duration.ms a group may set."},
		{name: "group.share.max.record.lock.duration.ms", typ: typeInt, def: "60000", validate: atLeast(1000),
			doc: "Largest share.record.lock.duration.ms a group may set."},
		{name: "group.share.delivery.count.limit", typ: typeInt, def: "5", validate: inRange(2, 10),
			doc: "Deliveries of a record after which it is archived (or dead-lettered) instead of delivered again; the default of share.delivery.count.limit."},
		{name: "group.share.min.delivery.count.limit", typ: typeInt, def: "2", validate: inRange(2, 10),
			doc: "Smallest share.delivery.count.limit a group may set."},
		{name: "group.share.max.delivery.count.limit", typ: typeInt, def: "10", validate: inRange(2, 10),
			doc: "Largest share.delivery.count.limit a group may set."},
		{name: "group.share.partition.max.record.locks", typ: typeInt, def: "2000", validate: inRange(100, 10000),
			doc: "Most records of one share-partition acquired at once (the in-flight window); the default of share.partition.max.record.locks."},
		{name: "group.share.min.partition.max.record.locks", typ: typeInt, def: "100", validate: inRange(100, 10000),
			doc: "Smallest share.partition.max.record.locks a group may set."},
		{name: "group.share.max.partition.max.record.locks", typ: typeInt, def: "10000", validate: inRange(100, 10000),
			doc: "Largest share.partition.max.record.locks a group may set."},
		{name: "group.share.heartbeat.interval.ms", typ: typeInt, def: "5000", validate: atLeast(1),
			doc: "Heartbeat interval given to share consumers; the default of share.heartbeat.interval.ms."},
		{name: "group.share.min.heartbeat.interval.ms", typ: typeInt, def: "5000", validate: atLeast(1),
			doc: "Smallest share.heartbeat.interval.ms a group may set."},
		{name: "group.share.max.heartbeat.interval.ms", typ: typeInt, def: "15000", validate: atLeast(1),
			doc: "Largest share.heartbeat.interval.ms a group may set."},
		{name: "group.share.session.timeout.ms", typ: typeInt, def: "45000", validate: atLeast(1),
			doc: "A share consumer silent for this long leaves its group; the default of share.session.timeout.ms."},
		{name: "group.share.min.session.timeout.ms", typ: typeInt, def: "45000", validate: atLeast(1),
			doc: "Smallest share.session.timeout.ms a group may set."},
		{name: "group.share.max.session.timeout.ms", typ: typeInt, def: "60000", validate: atLeast(1),
			doc: "Largest share.session.timeout.ms a group may set."},
		{name: "group.share.max.size", typ: typeInt, def: "200", validate: inRange(1, 1000),
			doc: "Most members a share group may have."},
		{name: "group.share.max.share.sessions", typ: typeInt, def: "2000", validate: atLeast(1),
			doc: "Most share sessions (of ShareFetch) a broker keeps at once."},
		{name: "group.share.assignors", typ: typeList, def: "simple", readOnly: true, validate: listOf("simple"),
			doc: "Server-side assignors of share groups; only Kafka's simple assignor exists."},
		inert("group.share.persister.class.name", typeString, "org.apache.kafka.server.share.persister.DefaultStatePersister", static,
			"share state is kept by Sluice's share coordinator in __share_group_state."),
		inert("group.share.max.groups", typeShort, "10", static, "removed in Kafka 4.1; share groups are not counted."),
		inert("share.fetch.purgatory.purge.interval.requests", typeInt, "1000", static, "waiting share fetches are removed when they end."),
		// The share coordinator and its internal topic.
		{name: "share.coordinator.state.topic.num.partitions", typ: typeInt, def: "50", validate: atLeast(1), readOnly: true,
			doc: "Partitions of __share_group_state."},
		{name: "share.coordinator.state.topic.replication.factor", typ: typeShort, def: "3", validate: atLeast(1), readOnly: true,
			doc: "Replication factor of __share_group_state, capped at the live brokers when it is created."},
		{name: "share.coordinator.state.topic.min.isr", typ: typeShort, def: "2", validate: atLeast(1), readOnly: true,
			doc: "min.insync.replicas of __share_group_state, capped at its replication factor."},
		{name: "share.coordinator.state.topic.segment.bytes", typ: typeInt, def: "104857600", validate: atLeast(14), readOnly: true,
			doc: "segment.bytes of __share_group_state."},
		{name: "share.coordinator.write.timeout.ms", typ: typeInt, def: "5000", validate: atLeast(1), readOnly: true,
			doc: "Longest wait for a share state write to reach the ISR of its __share_group_state partition."},
		inert("share.coordinator.state.topic.compression.codec", typeInt, "0", static, "share state records are written uncompressed."),
		{name: "share.coordinator.snapshot.update.records.per.snapshot", typ: typeInt, def: "500", validate: atLeast(1), readOnly: true,
			doc: "Update records of one share-partition after which the share coordinator writes a snapshot of its whole state instead."},
		inert("share.coordinator.threads", typeInt, "1", static, noThreadsWhy),
		inert("share.coordinator.load.buffer.size", typeInt, "5242880", static, "__share_group_state is read in bounded batches."),
		inert("share.coordinator.append.linger.ms", typeInt, "5", static, "share state records are written as soon as they are made."),
		inert("share.coordinator.cold.partition.snapshot.interval.ms", typeInt, "300000", static, "every state write is a full snapshot."),
		inert("share.coordinator.state.topic.prune.interval.ms", typeLong, "300000", static, "__share_group_state is compacted."),
		// Dead-letter queues (KIP-1191).
		// Sluice's redelivery backoff: the broker-wide defaults of the
		// share.record.redelivery.backoff.* group configs.
		{name: "group.share.record.redelivery.backoff.ms", typ: typeLong, def: "0", validate: atLeast(0),
			doc: "Sluice: delay before a released or lock-expired record is delivered again, after its first failed delivery; 0 turns the backoff off. The default of share.record.redelivery.backoff.ms."},
		{name: "group.share.record.redelivery.backoff.max.ms", typ: typeLong, def: "60000", validate: atLeast(0),
			doc: "Sluice: longest redelivery backoff; the default of share.record.redelivery.backoff.max.ms."},
		{name: "group.share.record.redelivery.backoff.multiplier", typ: typeDouble, def: "2.0", validate: between(1, 1000),
			doc: "Sluice: factor by which the redelivery backoff grows with each failed delivery; the default of share.record.redelivery.backoff.multiplier."},
	}
}

// noThreadsWhy is the reason thread-pool settings are inert.
const noThreadsWhy = "Sluice runs one goroutine per connection and per task instead of fixed thread pools."

// groupLimitDefs are the bounds of the KIP-848 consumer group configs,
// which group configs are checked against (Kafka's GroupConfig).
func groupLimitDefs() []configDef {
	return []configDef{
		{name: "group.consumer.min.session.timeout.ms", typ: typeInt, def: "45000", validate: atLeast(1), readOnly: true,
			doc: "Smallest consumer.session.timeout.ms a group may set."},
		{name: "group.consumer.max.session.timeout.ms", typ: typeInt, def: "60000", validate: atLeast(1), readOnly: true,
			doc: "Largest consumer.session.timeout.ms a group may set."},
		{name: "group.consumer.min.heartbeat.interval.ms", typ: typeInt, def: "5000", validate: atLeast(1), readOnly: true,
			doc: "Smallest consumer.heartbeat.interval.ms a group may set."},
		{name: "group.consumer.max.heartbeat.interval.ms", typ: typeInt, def: "15000", validate: atLeast(1), readOnly: true,
			doc: "Largest consumer.heartbeat.interval.ms a group may set."},
		inert("group.streams.heartbeat.interval.ms", typeInt, "5000", true, "streams groups (KIP-1071) are not implemented."),
		inert("group.streams.session.timeout.ms", typeInt, "45000", true, "streams groups (KIP-1071) are not implemented."),
		inert("group.streams.num.standby.replicas", typeInt, "0", true, "streams groups (KIP-1071) are not implemented."),
	}
}

// inRange accepts integers in [lo, hi].
func inRange(lo, hi int64) func(string) error {
	return func(v string) error {
		n, _ := strconv.ParseInt(v, 10, 64)
		if n < lo || n > hi {
			return fmt.Errorf("value %s must be between %d and %d", v, lo, hi)
		}
		return nil
	}
}

// shareBrokerSettings are the share-group broker settings as typed values,
// resolved once whenever the broker settings change (settings.share).
type shareBrokerSettings struct {
	RecordLockDuration, MinRecordLockDuration, MaxRecordLockDuration time.Duration
	DeliveryCountLimit, MinDeliveryCountLimit, MaxDeliveryCountLimit int16
	PartitionMaxRecordLocks, MinPartitionMaxRecordLocks              int
	MaxPartitionMaxRecordLocks                                       int
	HeartbeatInterval, MinHeartbeatInterval, MaxHeartbeatInterval    time.Duration
	SessionTimeout, MinSessionTimeout, MaxSessionTimeout             time.Duration
	// MaxSize is group.share.max.size: members of one share group.
	MaxSize int
	// MaxShareSessions is group.share.max.share.sessions: share sessions
	// one broker keeps.
	MaxShareSessions int

	// StateTopicPartitions, StateTopicReplicationFactor, StateTopicMinISR
	// and StateTopicSegmentBytes shape __share_group_state;
	// WriteTimeout bounds one state write.
	StateTopicPartitions        int32
	StateTopicReplicationFactor int16
	StateTopicMinISR            int
	StateTopicSegmentBytes      int
	WriteTimeout                time.Duration
	// SnapshotEvery is share.coordinator.snapshot.update.records.per.snapshot.
	SnapshotEvery int

	// DLQTopicPrefix and DLQAutoCreate are KIP-1191's
	// errors.deadletterqueue.topic.name.prefix and
	// errors.deadletterqueue.auto.create.topics.enable.
	DLQTopicPrefix string
	DLQAutoCreate  bool

	// Backoff is the broker default of Sluice's redelivery backoff.
	Backoff share.Backoff

	// Consumer group bounds (KIP-848) and defaults.
	ConsumerHeartbeatInterval, MinConsumerHeartbeatInterval, MaxConsumerHeartbeatInterval time.Duration
	ConsumerSessionTimeout, MinConsumerSessionTimeout, MaxConsumerSessionTimeout          time.Duration
}

// resolveShareSettings reads the share-group settings from s. Values were
// validated when they were set; one that does not parse falls back to
// Kafka's default.
func resolveShareSettings(s *settings) *shareBrokerSettings {
	ms := func(name string, def int64) time.Duration { return s.brokerMillis(name, def) }
	n := func(name string, def int64) int64 { return s.brokerInt64(name, def) }
	mult, err := strconv.ParseFloat(s.broker("group.share.record.redelivery.backoff.multiplier").value, 64)
	if err != nil || mult < 1 || math.IsInf(mult, 0) {
		mult = 2
	}
	return &shareBrokerSettings{
		RecordLockDuration:          ms("group.share.record.lock.duration.ms", 30000),
		MinRecordLockDuration:       ms("group.share.min.record.lock.duration.ms", 15000),
		MaxRecordLockDuration:       ms("group.share.max.record.lock.duration.ms", 60000),
		DeliveryCountLimit:          int16(n("group.share.delivery.count.limit", 5)),
		MinDeliveryCountLimit:       int16(n("group.share.min.delivery.count.limit", 2)),
		MaxDeliveryCountLimit:       int16(n("group.share.max.delivery.count.limit", 10)),
		PartitionMaxRecordLocks:     int(n("group.share.partition.max.record.locks", 2000)),
		MinPartitionMaxRecordLocks:  int(n("group.share.min.partition.max.record.locks", 100)),
		MaxPartitionMaxRecordLocks:  int(n("group.share.max.partition.max.record.locks", 10000)),
		HeartbeatInterval:           ms("group.share.heartbeat.interval.ms", 5000),
		MinHeartbeatInterval:        ms("group.share.min.heartbeat.interval.ms", 5000),
		MaxHeartbeatInterval:        ms("group.share.max.heartbeat.interval.ms", 15000),
		SessionTimeout:              ms("group.share.session.timeout.ms", 45000),
		MinSessionTimeout:           ms("group.share.min.session.timeout.ms", 45000),
		MaxSessionTimeout:           ms("group.share.max.session.timeout.ms", 60000),
		MaxSize:                     int(n("group.share.max.size", 200)),
		MaxShareSessions:            int(n("group.share.max.share.sessions", 2000)),
		StateTopicPartitions:        int32(n("share.coordinator.state.topic.num.partitions", 50)),
		StateTopicReplicationFactor: int16(n("share.coordinator.state.topic.replication.factor", 3)),
		StateTopicMinISR:            int(n("share.coordinator.state.topic.min.isr", 2)),
		StateTopicSegmentBytes:      int(n("share.coordinator.state.topic.segment.bytes", 104857600)),
		WriteTimeout:                ms("share.coordinator.write.timeout.ms", 5000),
		SnapshotEvery:               int(n("share.coordinator.snapshot.update.records.per.snapshot", 500)),
		DLQTopicPrefix:              s.broker("errors.deadletterqueue.topic.name.prefix").value,
		DLQAutoCreate:               s.brokerBool("errors.deadletterqueue.auto.create.topics.enable"),
		Backoff: share.Backoff{
			Initial:    ms("group.share.record.redelivery.backoff.ms", 0),
			Max:        ms("group.share.record.redelivery.backoff.max.ms", 60000),
			Multiplier: mult,
		},
		ConsumerHeartbeatInterval:    ms("group.consumer.heartbeat.interval.ms", 5000),
		MinConsumerHeartbeatInterval: ms("group.consumer.min.heartbeat.interval.ms", 5000),
		MaxConsumerHeartbeatInterval: ms("group.consumer.max.heartbeat.interval.ms", 15000),
		ConsumerSessionTimeout:       ms("group.consumer.session.timeout.ms", 45000),
		MinConsumerSessionTimeout:    ms("group.consumer.min.session.timeout.ms", 45000),
		MaxConsumerSessionTimeout:    ms("group.consumer.max.session.timeout.ms", 60000),
	}
}

// shareSettings returns the share-group broker settings as last resolved;
// cheap (an atomic load), for the share coordinator, share fetch and
// dead-letter code.
func (b *Broker) shareSettings() *shareBrokerSettings { return b.settings.share.Load() }

// dlqTopicEnabled reports whether topic exists and opts in as a
// dead-letter topic (errors.deadletterqueue.group.enable=true, KIP-1191).
func (b *Broker) dlqTopicEnabled(topic string) bool {
	ts := b.topics.get(topic)
	if ts == nil {
		return false
	}
	return b.settings.topic("errors.deadletterqueue.group.enable", ts.meta().Configs).value == "true"
}
