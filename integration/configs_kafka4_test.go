package integration

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kafka4TopicConfigs are the topic settings Apache Kafka 4.0 accepts
// (TopicConfig / LogConfig).
var kafka4TopicConfigs = []string{
	"cleanup.policy", "compression.gzip.level", "compression.lz4.level", "compression.type", "compression.zstd.level",
	"delete.retention.ms", "file.delete.delay.ms", "flush.messages", "flush.ms",
	"follower.replication.throttled.replicas", "index.interval.bytes", "leader.replication.throttled.replicas",
	"local.retention.bytes", "local.retention.ms", "max.compaction.lag.ms", "max.message.bytes",
	"message.downconversion.enable", "message.timestamp.after.max.ms", "message.timestamp.before.max.ms",
	"message.timestamp.type", "min.cleanable.dirty.ratio", "min.compaction.lag.ms", "min.insync.replicas",
	"preallocate", "remote.log.copy.disable", "remote.log.delete.on.disable", "remote.storage.enable",
	"retention.bytes", "retention.ms", "segment.bytes", "segment.index.bytes", "segment.jitter.ms", "segment.ms",
	"unclean.leader.election.enable",
}

// kafka4BrokerConfigs are Kafka 4.0 broker settings Sluice accepts, applied
// or documented as without effect. Admission-control and quota settings
// (max.connections*, queued.max.*, quota.window.*, connections.max.idle.ms,
// max.incremental.fetch.session.cache.slots) are covered by their own
// tests, and security and tiered-storage plug-ins beyond their defaults
// are refused on purpose.
var kafka4BrokerConfigs = []string{
	"alter.config.policy.class.name", "alter.log.dirs.replication.quota.window.num", "alter.log.dirs.replication.quota.window.size.seconds",
	"authorizer.class.name", "auto.create.topics.enable", "auto.leader.rebalance.enable", "background.threads",
	"broker.heartbeat.interval.ms", "broker.id", "broker.rack", "broker.session.timeout.ms", "client.quota.callback.class",
	"compression.gzip.level", "compression.lz4.level", "compression.type", "compression.zstd.level",
	"connection.failed.authentication.delay.ms", "connections.max.reauth.ms", "controlled.shutdown.enable",
	"controller.listener.names", "controller.quorum.append.linger.ms", "controller.quorum.bootstrap.servers",
	"controller.quorum.election.backoff.max.ms", "controller.quorum.election.timeout.ms", "controller.quorum.fetch.timeout.ms",
	"controller.quorum.request.timeout.ms", "controller.quorum.retry.backoff.ms", "controller.quorum.voters",
	"create.topic.policy.class.name", "default.replication.factor", "delete.records.purgatory.purge.interval.requests",
	"delete.topic.enable", "fetch.max.bytes", "fetch.purgatory.purge.interval.requests", "follower.replication.throttled.rate",
	"group.consumer.assignors", "group.consumer.heartbeat.interval.ms", "group.consumer.max.heartbeat.interval.ms",
	"group.consumer.max.session.timeout.ms", "group.consumer.max.size", "group.consumer.migration.policy",
	"group.consumer.min.heartbeat.interval.ms", "group.consumer.min.session.timeout.ms", "group.consumer.session.timeout.ms",
	"group.coordinator.append.linger.ms", "group.coordinator.rebalance.protocols", "group.coordinator.threads",
	"group.initial.rebalance.delay.ms", "group.max.session.timeout.ms", "group.max.size", "group.min.session.timeout.ms",
	"initial.broker.registration.timeout.ms", "kafka.metrics.polling.interval.secs", "kafka.metrics.reporters",
	"leader.imbalance.check.interval.seconds", "leader.imbalance.per.broker.percentage", "leader.replication.throttled.rate",
	"log.cleaner.backoff.ms", "log.cleaner.dedupe.buffer.size", "log.cleaner.delete.retention.ms", "log.cleaner.enable",
	"log.cleaner.io.buffer.load.factor", "log.cleaner.io.buffer.size", "log.cleaner.io.max.bytes.per.second",
	"log.cleaner.max.compaction.lag.ms", "log.cleaner.min.cleanable.ratio", "log.cleaner.min.compaction.lag.ms",
	"log.cleaner.threads", "log.cleanup.policy", "log.dir", "log.dir.failure.timeout.ms", "log.dirs",
	"log.flush.interval.messages", "log.flush.interval.ms", "log.flush.offset.checkpoint.interval.ms",
	"log.flush.scheduler.interval.ms", "log.flush.start.offset.checkpoint.interval.ms", "log.index.interval.bytes",
	"log.index.size.max.bytes", "log.initial.task.delay.ms", "log.local.retention.bytes", "log.local.retention.ms",
	"log.message.downconversion.enable", "log.message.timestamp.after.max.ms", "log.message.timestamp.before.max.ms",
	"log.message.timestamp.type", "log.preallocate", "log.retention.bytes", "log.retention.check.interval.ms",
	"log.retention.hours", "log.retention.minutes", "log.retention.ms", "log.roll.hours", "log.roll.jitter.hours",
	"log.roll.jitter.ms", "log.roll.ms", "log.segment.bytes", "log.segment.delete.delay.ms", "message.max.bytes",
	"metadata.log.dir", "metadata.log.max.record.bytes.between.snapshots", "metadata.log.max.snapshot.interval.ms",
	"metadata.log.segment.bytes", "metadata.log.segment.ms", "metadata.max.idle.interval.ms", "metadata.max.retention.bytes",
	"metadata.max.retention.ms", "metric.reporters", "metrics.num.samples", "metrics.recording.level", "metrics.sample.window.ms",
	"min.insync.replicas", "node.id", "num.io.threads", "num.network.threads", "num.partitions",
	"num.recovery.threads.per.data.dir", "num.replica.alter.log.dirs.threads", "num.replica.fetchers",
	"offset.metadata.max.bytes", "offsets.commit.timeout.ms", "offsets.load.buffer.size", "offsets.retention.check.interval.ms",
	"offsets.retention.minutes", "offsets.topic.compression.codec", "offsets.topic.num.partitions",
	"offsets.topic.replication.factor", "offsets.topic.segment.bytes", "process.roles", "producer.id.expiration.check.interval.ms",
	"producer.id.expiration.ms", "producer.purgatory.purge.interval.requests", "remote.log.storage.system.enable",
	"replica.alter.log.dirs.io.max.bytes.per.second", "replica.fetch.backoff.ms", "replica.fetch.max.bytes",
	"replica.fetch.min.bytes", "replica.fetch.response.max.bytes", "replica.fetch.wait.max.ms",
	"replica.high.watermark.checkpoint.interval.ms", "replica.lag.time.max.ms", "replica.selector.class",
	"replica.socket.receive.buffer.bytes", "replica.socket.timeout.ms", "replication.quota.window.num",
	"replication.quota.window.size.seconds", "request.timeout.ms", "sasl.enabled.mechanisms", "security.inter.broker.protocol",
	"socket.connection.setup.timeout.max.ms", "socket.connection.setup.timeout.ms", "socket.listen.backlog.size",
	"socket.receive.buffer.bytes", "socket.request.max.bytes", "socket.send.buffer.bytes", "ssl.client.auth",
	"telemetry.max.bytes", "transaction.abort.timed.out.transaction.cleanup.interval.ms", "transaction.max.timeout.ms",
	"transaction.partition.verification.enable", "transaction.remove.expired.transaction.cleanup.interval.ms",
	"transaction.state.log.load.buffer.size", "transaction.state.log.min.isr", "transaction.state.log.num.partitions",
	"transaction.state.log.replication.factor", "transaction.state.log.segment.bytes", "transactional.id.expiration.ms",
	"unclean.leader.election.enable", "controlled.shutdown.timeout.ms",
}

// otherHelpersConfigs are admission-control settings tested elsewhere.
func otherHelpersConfig(name string) bool {
	return strings.HasPrefix(name, "max.connection") || strings.HasPrefix(name, "queued.max.") ||
		strings.HasPrefix(name, "quota.window.") || name == "connections.max.idle.ms" ||
		name == "max.incremental.fetch.session.cache.slots"
}

// describedConfig is one entry of a DescribeConfigs v4 answer.
type describedConfig struct {
	value    *string
	source   kmsg.ConfigSource
	readOnly bool
	typ      kmsg.ConfigType
	doc      string
}

func describeRaw(t *testing.T, cl *kgo.Client, typ kmsg.ConfigResourceType, name string) map[string]describedConfig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.Version = 4
	req.IncludeDocumentation = true
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = typ, name
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Resources) != 1 || resp.Resources[0].ErrorCode != 0 {
		t.Fatalf("describe %v %q: %+v", typ, name, resp.Resources)
	}
	out := map[string]describedConfig{}
	for _, c := range resp.Resources[0].Configs {
		out[c.Name] = describedConfig{value: c.Value, source: c.Source, readOnly: c.ReadOnly, typ: c.ConfigType, doc: derefOr(c.Documentation, "")}
	}
	return out
}

// testValue is a valid value to set a setting to: its default, or for
// settings without one a value of its type.
func testValue(c describedConfig) string {
	if c.value != nil {
		return *c.value
	}
	switch c.typ {
	case kmsg.ConfigTypeInt, kmsg.ConfigTypeLong:
		return "604800000"
	case kmsg.ConfigTypeShort:
		return "1"
	case kmsg.ConfigTypeBoolean:
		return "false"
	case kmsg.ConfigTypeDouble:
		return "0.5"
	}
	return ""
}

// TestKafka4ConfigsAcceptedAndDescribed: every Kafka 4 topic setting is
// accepted by CreateTopics and every Kafka 4 broker setting by --set
// (static ones) or IncrementalAlterConfigs (dynamic ones), and
// DescribeConfigs then reports each with the value set and its source; on
// a fresh broker each is described with its default and DEFAULT_CONFIG.
func TestKafka4ConfigsAcceptedAndDescribed(t *testing.T) {
	t.Parallel()
	probe := startBroker(t, nil)
	pcl := client(t, probe.addr())
	defaults := describeRaw(t, pcl, kmsg.ConfigResourceTypeBroker, "1")
	static := map[string]string{}
	dynamic := map[string]string{}
	for _, name := range kafka4BrokerConfigs {
		if otherHelpersConfig(name) {
			continue
		}
		c, ok := defaults[name]
		if !ok {
			t.Errorf("broker setting %s is not described", name)
			continue
		}
		if c.doc == "" {
			t.Errorf("broker setting %s has no documentation", name)
		}
		if c.value != nil && c.source != kmsg.ConfigSourceDefaultConfig && name != "node.id" && name != "broker.id" {
			t.Errorf("fresh broker: %s source %v, want DEFAULT_CONFIG", name, c.source)
		}
		switch {
		case name == "node.id" || name == "broker.id":
		case c.readOnly:
			static[name] = testValue(c)
		default:
			dynamic[name] = testValue(c)
		}
	}
	if t.Failed() {
		return
	}

	t.Logf("%d static and %d dynamic broker settings", len(static), len(dynamic))
	ib := startBroker(t, static)
	cl := client(t, ib.addr())
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var alters []kadm.AlterConfig
	for name, v := range dynamic {
		alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: name, Value: kadm.StringPtr(v)})
	}
	ar, err := adm.AlterBrokerConfigs(ctx, alters, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ar {
		if r.Err != nil {
			t.Fatalf("IncrementalAlterConfigs of %d dynamic broker settings: %v %s", len(alters), r.Err, r.ErrMessage)
		}
	}
	got := describeRaw(t, cl, kmsg.ConfigResourceTypeBroker, "1")
	check := func(what string, want map[string]string, source kmsg.ConfigSource, got map[string]describedConfig) {
		for name, v := range want {
			c := got[name]
			if c.value == nil || *c.value != v || c.source != source {
				t.Errorf("%s %s: described %v (%v), want %q (%v)", what, name, derefOr(c.value, "<nil>"), c.source, v, source)
			}
		}
	}
	check("static broker setting", static, kmsg.ConfigSourceStaticBrokerConfig, got)
	check("dynamic broker setting", dynamic, kmsg.ConfigSourceDynamicBrokerConfig, got)

	// Topic settings: defaults on a plain topic, then every one set at
	// creation.
	createTopic(t, ib.addr(), "plain", 1, nil)
	tdef := describeRaw(t, cl, kmsg.ConfigResourceTypeTopic, "plain")
	topic := map[string]*string{}
	want := map[string]string{}
	for _, name := range kafka4TopicConfigs {
		c, ok := tdef[name]
		if !ok {
			t.Errorf("topic setting %s is not described", name)
			continue
		}
		v := testValue(c)
		topic[name], want[name] = kadm.StringPtr(v), v
	}
	createTopic(t, ib.addr(), "every-config", 1, topic)
	check("topic setting", want, kmsg.ConfigSourceDynamicTopicConfig, describeRaw(t, cl, kmsg.ConfigResourceTypeTopic, "every-config"))

	// The topic takes writes and reads with all of them set.
	pc := client(t, ib.addr(), kgo.DefaultProduceTopic("every-config"))
	if err := pc.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce to the topic with every setting: %v", err)
	}
	if recs := consumeAll(t, ib.addr(), "every-config", 1); string(recs[0].Value) != "v" {
		t.Fatalf("consumed %q", recs[0].Value)
	}
}

// TestKafka4ConfigsFeatureGuards: settings of features Sluice lacks are
// refused with INVALID_CONFIG beyond Kafka's defaults, rather than
// silently ignored.
func TestKafka4ConfigsFeatureGuards(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, nil)
	adm := admin(t, ib.addr())
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"remote.storage.enable": kadm.StringPtr("true")}, "tiered")
	if err == nil {
		err = resp.Err
	}
	if !errors.Is(err, kerr.InvalidConfig) {
		t.Fatalf("remote.storage.enable=true: %v, want INVALID_CONFIG", err)
	}
	resp, err = adm.CreateTopic(ctx, 1, 1, map[string]*string{"leader.replication.throttled.replicas": kadm.StringPtr("0:x")}, "throttled")
	if err == nil {
		err = resp.Err
	}
	if !errors.Is(err, kerr.InvalidConfig) {
		t.Fatalf("leader.replication.throttled.replicas=0:x: %v, want INVALID_CONFIG", err)
	}
}

func derefOr(s *string, ifNil string) string {
	if s == nil {
		return ifNil
	}
	return *s
}
