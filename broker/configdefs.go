package broker

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// configType is Kafka's ConfigEntry type (KIP-569), reported by DescribeConfigs v3+.
type configType int8

// Kafka's config type codes, as DescribeConfigsResponse v3 numbers them.
const (
	typeBoolean  configType = 1
	typeString   configType = 2
	typeInt      configType = 3
	typeShort    configType = 4
	typeLong     configType = 5
	typeDouble   configType = 6
	typeList     configType = 7
	typeClass    configType = 8
	typePassword configType = 9
)

// synonym is a broker setting that supplies a topic setting's default, with
// the factor that converts its unit into the topic setting's unit
// (log.retention.hours feeds retention.ms with a factor of 3,600,000).
type synonym struct {
	name   string
	factor int64
}

// configDef describes one setting under its Kafka name: its type and
// default, how to validate a value, and, for topic settings, which broker
// settings supply the default (first present wins, as in Kafka's LogConfig).
type configDef struct {
	name     string
	typ      configType
	def      string
	doc      string
	synonyms []synonym
	validate func(string) error
	readOnly bool // broker settings that cannot be changed at run time
}

func (d *configDef) check(v string) error {
	if err := checkType(d.typ, v); err != nil {
		return err
	}
	if d.validate != nil {
		return d.validate(v)
	}
	return nil
}

func checkType(t configType, v string) error {
	switch t {
	case typeBoolean:
		if v != "true" && v != "false" {
			return fmt.Errorf("value %q is not a boolean", v)
		}
	case typeInt, typeShort:
		if _, err := strconv.ParseInt(v, 10, 32); err != nil {
			return fmt.Errorf("value %q is not an int", v)
		}
	case typeLong:
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			return fmt.Errorf("value %q is not a long", v)
		}
	case typeDouble:
		if _, err := strconv.ParseFloat(v, 64); err != nil {
			return fmt.Errorf("value %q is not a double", v)
		}
	case typeString, typeList, typeClass, typePassword:
	}
	return nil
}

func atLeast(min int64) func(string) error {
	return func(v string) error {
		n, _ := strconv.ParseInt(v, 10, 64)
		if n < min {
			return fmt.Errorf("value %s must be at least %d", v, min)
		}
		return nil
	}
}

func oneOf(allowed ...string) func(string) error {
	return func(v string) error {
		for _, a := range allowed {
			if v == a {
				return nil
			}
		}
		return fmt.Errorf("value %q is not one of %s", v, strings.Join(allowed, ", "))
	}
}

func listOf(allowed ...string) func(string) error {
	one := oneOf(allowed...)
	return func(v string) error {
		for _, item := range strings.Split(v, ",") {
			if err := one(strings.TrimSpace(item)); err != nil {
				return err
			}
		}
		return nil
	}
}

func between(lo, hi float64) func(string) error {
	return func(v string) error {
		f, _ := strconv.ParseFloat(v, 64)
		if f < lo || f > hi {
			return fmt.Errorf("value %s must be between %g and %g", v, lo, hi)
		}
		return nil
	}
}

var (
	maxLong = strconv.FormatInt(math.MaxInt64, 10)
	weekMs  = strconv.FormatInt(7*24*3600*1000, 10)
)

// topicConfigDefs are the per-topic settings Sluice accepts, with Kafka's
// defaults and the broker settings that override those defaults.
func topicConfigDefs() []configDef {
	return append([]configDef{
		{name: "cleanup.policy", typ: typeList, def: "delete", synonyms: []synonym{{"log.cleanup.policy", 1}},
			validate: listOf("delete", "compact"), doc: "delete: drop old segments by retention; compact: keep the latest record per key."},
		{name: "compression.type", typ: typeString, def: "producer", synonyms: []synonym{{"compression.type", 1}},
			validate: oneOf(compressionTypes...), doc: "producer stores batches as the producer compressed them; uncompressed, gzip, snappy, lz4 or zstd recompresses batches in another codec."},
		{name: "delete.retention.ms", typ: typeLong, def: "86400000", synonyms: []synonym{{"log.cleaner.delete.retention.ms", 1}},
			validate: atLeast(0), doc: "How long tombstones are kept in compacted topics."},
		{name: "file.delete.delay.ms", typ: typeLong, def: "60000", synonyms: []synonym{{"log.segment.delete.delay.ms", 1}},
			validate: atLeast(0), doc: "Delay before a deleted segment's files are removed."},
		{name: "flush.messages", typ: typeLong, def: maxLong, synonyms: []synonym{{"log.flush.interval.messages", 1}},
			validate: atLeast(1), doc: "fsync after this many messages; 1 fsyncs before every acknowledgement (group commit)."},
		{name: "flush.ms", typ: typeLong, def: maxLong, synonyms: []synonym{{"log.flush.interval.ms", 1}},
			validate: atLeast(0), doc: "fsync at least this often."},
		{name: "index.interval.bytes", typ: typeInt, def: "4096", synonyms: []synonym{{"log.index.interval.bytes", 1}},
			validate: atLeast(0), doc: "Bytes between offset index entries."},
		{name: "max.compaction.lag.ms", typ: typeLong, def: maxLong, synonyms: []synonym{{"log.cleaner.max.compaction.lag.ms", 1}},
			validate: atLeast(1), doc: "Longest time a record stays ineligible for compaction."},
		{name: "max.message.bytes", typ: typeInt, def: "1048588", synonyms: []synonym{{"message.max.bytes", 1}},
			validate: atLeast(0), doc: "Largest record batch accepted, in bytes."},
		{name: "message.timestamp.type", typ: typeString, def: "CreateTime", synonyms: []synonym{{"log.message.timestamp.type", 1}},
			validate: oneOf("CreateTime", "LogAppendTime"), doc: "CreateTime keeps the producer's timestamp; LogAppendTime stamps the broker's clock."},
		{name: "message.timestamp.before.max.ms", typ: typeLong, def: maxLong, synonyms: []synonym{{"log.message.timestamp.before.max.ms", 1}},
			validate: atLeast(0), doc: "Largest allowed age of a CreateTime timestamp."},
		{name: "message.timestamp.after.max.ms", typ: typeLong, def: maxLong, synonyms: []synonym{{"log.message.timestamp.after.max.ms", 1}},
			validate: atLeast(0), doc: "Largest allowed lead of a CreateTime timestamp over the broker's clock."},
		{name: "min.cleanable.dirty.ratio", typ: typeDouble, def: "0.5", synonyms: []synonym{{"log.cleaner.min.cleanable.ratio", 1}},
			validate: between(0, 1), doc: "Share of the log that must be uncompacted before compaction runs."},
		{name: "min.compaction.lag.ms", typ: typeLong, def: "0", synonyms: []synonym{{"log.cleaner.min.compaction.lag.ms", 1}},
			validate: atLeast(0), doc: "Shortest time a record stays uncompacted."},
		{name: "min.insync.replicas", typ: typeInt, def: "1", synonyms: []synonym{{"min.insync.replicas", 1}},
			validate: atLeast(1), doc: "In-sync replicas needed for acks=all."},
		{name: "preallocate", typ: typeBoolean, def: "false", synonyms: []synonym{{"log.preallocate", 1}},
			doc: "Accepted for compatibility; segments are not preallocated."},
		{name: "retention.bytes", typ: typeLong, def: "-1", synonyms: []synonym{{"log.retention.bytes", 1}},
			doc: "Largest size of a partition before old segments are deleted; -1 is unlimited."},
		{name: "retention.ms", typ: typeLong, def: weekMs,
			synonyms: []synonym{{"log.retention.ms", 1}, {"log.retention.minutes", 60000}, {"log.retention.hours", 3600000}},
			validate: atLeast(-1), doc: "How long segments are kept; -1 is forever."},
		{name: "segment.bytes", typ: typeInt, def: "1073741824", synonyms: []synonym{{"log.segment.bytes", 1}},
			validate: atLeast(14), doc: "Size at which a segment is rolled."},
		{name: "segment.index.bytes", typ: typeInt, def: "10485760", synonyms: []synonym{{"log.index.size.max.bytes", 1}},
			validate: atLeast(4), doc: "Accepted for compatibility; index files grow as needed."},
		{name: "segment.jitter.ms", typ: typeLong, def: "0", synonyms: []synonym{{"log.roll.jitter.ms", 1}, {"log.roll.jitter.hours", 3600000}},
			validate: atLeast(0), doc: "Accepted for compatibility; no jitter is applied."},
		{name: "segment.ms", typ: typeLong, def: weekMs, synonyms: []synonym{{"log.roll.ms", 1}, {"log.roll.hours", 3600000}},
			validate: atLeast(1), doc: "Age at which a segment is rolled."},
		{name: "unclean.leader.election.enable", typ: typeBoolean, def: "false", synonyms: []synonym{{"unclean.leader.election.enable", 1}},
			doc: "Whether an out-of-sync replica may become leader."},
	}, append(append(produceTopicConfigDefs(), compatTopicConfigDefs()...), dlqTopicConfigDefs()...)...)
}

// brokerConfigDefs are the broker settings accepted by --set and reported by
// DescribeConfigs on the broker resource.
func brokerConfigDefs() []configDef {
	defs := []configDef{
		{name: "node.id", typ: typeInt, def: "1", readOnly: true, doc: "This broker's id."},
		{name: "broker.id", typ: typeInt, def: "1", readOnly: true, doc: "Alias of node.id."},
		{name: "num.partitions", typ: typeInt, def: "1", validate: atLeast(1), doc: "Partitions of an auto-created topic or of CreateTopics asking for -1."},
		{name: "default.replication.factor", typ: typeShort, def: "1", validate: atLeast(1), doc: "Replication factor used when a topic does not ask for one."},
		{name: "auto.create.topics.enable", typ: typeBoolean, def: "true", doc: "Create unknown topics named in Metadata requests."},
		{name: "delete.topic.enable", typ: typeBoolean, def: "true", doc: "Allow DeleteTopics."},
		{name: "message.max.bytes", typ: typeInt, def: "1048588", validate: atLeast(0), doc: "Default max.message.bytes of topics."},
		{name: "socket.request.max.bytes", typ: typeInt, def: "104857600", validate: atLeast(1), readOnly: true, doc: "Largest request frame accepted."},
		{name: "connections.max.idle.ms", typ: typeLong, def: "600000", validate: atLeast(1), readOnly: true, doc: "Idle connections are closed after this long."},
		{name: "log.segment.bytes", typ: typeInt, def: "1073741824", validate: atLeast(14), doc: "Default segment.bytes."},
		{name: "log.roll.ms", typ: typeLong, def: "", doc: "Default segment.ms."},
		{name: "log.roll.hours", typ: typeInt, def: "168", validate: atLeast(1), doc: "Default segment.ms, in hours."},
		{name: "log.retention.ms", typ: typeLong, def: "", doc: "Default retention.ms."},
		{name: "log.retention.minutes", typ: typeInt, def: "", doc: "Default retention.ms, in minutes."},
		{name: "log.retention.hours", typ: typeInt, def: "168", doc: "Default retention.ms, in hours."},
		{name: "log.retention.bytes", typ: typeLong, def: "-1", doc: "Default retention.bytes."},
		{name: "log.retention.check.interval.ms", typ: typeLong, def: "300000", validate: atLeast(1), readOnly: true, doc: "How often segments past retention.ms or retention.bytes, or below the log start offset, are deleted (the first check runs at most 30 s after start-up)."},
		{name: "log.flush.interval.messages", typ: typeLong, def: maxLong, validate: atLeast(1), doc: "Default flush.messages."},
		{name: "log.flush.interval.ms", typ: typeLong, def: "", doc: "Default flush.ms."},
		{name: "log.flush.scheduler.interval.ms", typ: typeLong, def: "1000", validate: atLeast(1), readOnly: true, doc: "How often flush.ms and segment.ms are checked."},
		{name: "log.cleanup.policy", typ: typeList, def: "delete", validate: listOf("delete", "compact"), doc: "Default cleanup.policy."},
		{name: "log.index.interval.bytes", typ: typeInt, def: "4096", validate: atLeast(0), doc: "Default index.interval.bytes."},
		{name: "log.message.timestamp.type", typ: typeString, def: "CreateTime", validate: oneOf("CreateTime", "LogAppendTime"), doc: "Default message.timestamp.type."},
		{name: "log.message.timestamp.before.max.ms", typ: typeLong, def: maxLong, validate: atLeast(0), doc: "Default message.timestamp.before.max.ms."},
		{name: "log.message.timestamp.after.max.ms", typ: typeLong, def: maxLong, validate: atLeast(0), doc: "Default message.timestamp.after.max.ms."},
		{name: "log.cleaner.delete.retention.ms", typ: typeLong, def: "86400000", validate: atLeast(0), doc: "Default delete.retention.ms."},
		{name: "log.cleaner.min.compaction.lag.ms", typ: typeLong, def: "0", validate: atLeast(0), doc: "Default min.compaction.lag.ms."},
		{name: "log.cleaner.max.compaction.lag.ms", typ: typeLong, def: maxLong, validate: atLeast(1), doc: "Default max.compaction.lag.ms."},
		{name: "log.cleaner.min.cleanable.ratio", typ: typeDouble, def: "0.5", validate: between(0, 1), doc: "Default min.cleanable.dirty.ratio."},
		{name: "log.segment.delete.delay.ms", typ: typeLong, def: "60000", validate: atLeast(0), doc: "Default file.delete.delay.ms."},
		{name: "log.preallocate", typ: typeBoolean, def: "false", doc: "Default preallocate."},
		{name: "log.index.size.max.bytes", typ: typeInt, def: "10485760", validate: atLeast(4), doc: "Default segment.index.bytes."},
		{name: "log.roll.jitter.ms", typ: typeLong, def: "", doc: "Default segment.jitter.ms."},
		{name: "log.roll.jitter.hours", typ: typeInt, def: "0", doc: "Default segment.jitter.ms, in hours."},
		{name: "min.insync.replicas", typ: typeInt, def: "1", validate: atLeast(1), doc: "Default min.insync.replicas."},
		{name: "unclean.leader.election.enable", typ: typeBoolean, def: "false", doc: "Default unclean.leader.election.enable."},
		{name: "broker.session.timeout.ms", typ: typeInt, def: "9000", validate: atLeast(1000), readOnly: true, doc: "TTL of this broker's etcd lease: a broker silent for this long is gone."},
		{name: "replica.lag.time.max.ms", typ: typeLong, def: "30000", validate: atLeast(1), readOnly: true, doc: "A follower not caught up for this long leaves the ISR."},
		{name: "replica.fetch.wait.max.ms", typ: typeInt, def: "500", validate: atLeast(0), readOnly: true, doc: "Longest wait of a follower fetch for new data."},
		{name: "replica.fetch.min.bytes", typ: typeInt, def: "1", validate: atLeast(0), readOnly: true, doc: "Bytes a follower fetch waits for."},
		{name: "replica.fetch.max.bytes", typ: typeInt, def: "1048576", validate: atLeast(0), readOnly: true, doc: "Bytes a follower fetches per partition."},
		{name: "replica.fetch.response.max.bytes", typ: typeInt, def: "10485760", validate: atLeast(0), readOnly: true, doc: "Bytes a follower fetches per request."},
		{name: "replica.fetch.backoff.ms", typ: typeInt, def: "1000", validate: atLeast(0), readOnly: true, doc: "Pause after a failed follower fetch."},
		{name: "max.incremental.fetch.session.cache.slots", typ: typeInt, def: "1000", validate: atLeast(0), readOnly: true, doc: "Incremental fetch sessions (KIP-227) the broker keeps; 0 disables them."},
		{name: "replica.socket.timeout.ms", typ: typeInt, def: "30000", validate: atLeast(1), readOnly: true, doc: "Deadline of a follower's request to its leader, beyond the fetch wait."},
		{name: "auto.leader.rebalance.enable", typ: typeBoolean, def: "true", readOnly: true, doc: "The controller moves leadership back to preferred replicas."},
		{name: "leader.imbalance.check.interval.seconds", typ: typeLong, def: "300", validate: atLeast(1), readOnly: true, doc: "How often the controller checks leader imbalance."},
		{name: "leader.imbalance.per.broker.percentage", typ: typeInt, def: "10", validate: atLeast(0), readOnly: true, doc: "Share of a broker's preferred partitions led elsewhere that triggers preferred elections."},
		{name: "controlled.shutdown.enable", typ: typeBoolean, def: "true", readOnly: true, doc: "Hand leaderships over before shutting down."},
		{name: "controlled.shutdown.timeout.ms", typ: typeLong, def: "10000", validate: atLeast(0), readOnly: true, doc: "Longest wait for leaderships to move away at shutdown."},
		{name: "compression.type", typ: typeString, def: "producer", validate: oneOf(compressionTypes...), doc: "Default compression.type of topics."},
		{name: "offsets.topic.num.partitions", typ: typeInt, def: "50", validate: atLeast(1), readOnly: true, doc: "Partitions of __consumer_offsets."},
		{name: "offsets.topic.replication.factor", typ: typeShort, def: "3", validate: atLeast(1), readOnly: true, doc: "Replication factor of __consumer_offsets, capped at the live brokers when it is created."},
		{name: "offsets.topic.segment.bytes", typ: typeInt, def: "104857600", validate: atLeast(14), readOnly: true, doc: "segment.bytes of __consumer_offsets."},
		{name: "offsets.commit.timeout.ms", typ: typeInt, def: "5000", validate: atLeast(1), readOnly: true, doc: "Longest wait for a group write to reach the ISR of its __consumer_offsets partition."},
		{name: "offsets.retention.minutes", typ: typeInt, def: "10080", validate: atLeast(1), readOnly: true, doc: "How long committed offsets of empty groups are kept (KIP-211)."},
		{name: "offsets.retention.check.interval.ms", typ: typeLong, def: "600000", validate: atLeast(1), readOnly: true, doc: "How often expired offsets are removed."},
		{name: "offset.metadata.max.bytes", typ: typeInt, def: "4096", validate: atLeast(0), readOnly: true, doc: "Largest metadata string of a committed offset."},
		{name: "group.min.session.timeout.ms", typ: typeInt, def: "6000", validate: atLeast(0), readOnly: true, doc: "Smallest session timeout a classic group member may ask for."},
		{name: "group.max.session.timeout.ms", typ: typeInt, def: "1800000", validate: atLeast(0), readOnly: true, doc: "Largest session timeout a classic group member may ask for."},
		{name: "group.initial.rebalance.delay.ms", typ: typeInt, def: "3000", validate: atLeast(0), readOnly: true, doc: "How long the first rebalance of an empty group waits for more members."},
		{name: "group.max.size", typ: typeInt, def: "2147483647", validate: atLeast(1), readOnly: true, doc: "Most members a group may have."},
		{name: "group.consumer.heartbeat.interval.ms", typ: typeInt, def: "5000", validate: atLeast(1), readOnly: true, doc: "Heartbeat interval given to KIP-848 consumers."},
		{name: "group.consumer.session.timeout.ms", typ: typeInt, def: "45000", validate: atLeast(1), readOnly: true, doc: "Session timeout of KIP-848 consumers."},
		{name: "group.consumer.assignors", typ: typeList, def: "uniform,range", validate: listOf("uniform", "range"), readOnly: true, doc: "Server-side assignors of KIP-848 groups; the first is the default."},
	}
	defs = append(defs, produceConfigDefs()...)
	defs = append(defs, txnConfigDefs()...)
	defs = append(defs, compatBrokerConfigDefs()...)
	defs = append(defs, admissionConfigDefs()...)
	defs = append(defs, quotaConfigDefs()...)
	defs = append(defs, dlqBrokerConfigDefs()...)
	return defs
}

// configRegistry indexes the definitions by name.
type configRegistry struct {
	topic  map[string]*configDef
	broker map[string]*configDef
	// topicOrder and brokerOrder keep DescribeConfigs output stable.
	topicOrder  []string
	brokerOrder []string
}

func newConfigRegistry() *configRegistry {
	r := &configRegistry{topic: map[string]*configDef{}, broker: map[string]*configDef{}}
	for _, d := range topicConfigDefs() {
		d := d
		r.topic[d.name] = &d
		r.topicOrder = append(r.topicOrder, d.name)
	}
	for _, d := range brokerConfigDefs() {
		d := d
		r.broker[d.name] = &d
		r.brokerOrder = append(r.brokerOrder, d.name)
	}
	return r
}

// configSource is Kafka's ConfigSource enum (DescribeConfigs v1+).
type configSource = kmsg.ConfigSource

// resolved is one setting's effective value and where it came from.
type resolved struct {
	value    string
	source   configSource
	synonyms []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym
}
