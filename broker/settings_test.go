package broker

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/protocol"
	"github.com/sluicedev/sluice/storage"
)

func TestSettingsTopicResolution(t *testing.T) {
	t.Parallel()
	s, err := newSettings(map[string]string{"log.retention.hours": "24", "log.segment.bytes": "1048576"})
	if err != nil {
		t.Fatal(err)
	}
	s.setDynamic(map[string]string{"log.retention.minutes": "30"}, nil)
	cases := []struct {
		name      string
		overrides map[string]string
		want      string
		source    kmsg.ConfigSource
	}{
		{"retention.ms", nil, "1800000", kmsg.ConfigSourceDynamicBrokerConfig},
		{"retention.ms", map[string]string{"retention.ms": "5"}, "5", kmsg.ConfigSourceDynamicTopicConfig},
		{"segment.bytes", nil, "1048576", kmsg.ConfigSourceStaticBrokerConfig},
		{"cleanup.policy", nil, "delete", kmsg.ConfigSourceDefaultConfig},
		{"max.message.bytes", nil, "1048588", kmsg.ConfigSourceDefaultConfig},
	}
	for _, c := range cases {
		got := s.topic(c.name, c.overrides)
		if got.value != c.want || got.source != c.source {
			t.Errorf("%s with %v: %s (%v), want %s (%v)", c.name, c.overrides, got.value, got.source, c.want, c.source)
		}
	}
	// The synonym chain lists every layer, most specific first.
	syn := s.topic("retention.ms", nil).synonyms
	if len(syn) != 3 || syn[0].Name != "log.retention.minutes" || syn[1].Name != "log.retention.hours" || syn[2].Name != "retention.ms" {
		t.Errorf("synonyms: %+v", syn)
	}
}

func TestSettingsRejectBadStatic(t *testing.T) {
	t.Parallel()
	for _, m := range []map[string]string{
		{"no.such.setting": "1"},
		{"num.partitions": "zero"},
		{"num.partitions": "0"},
		{"log.cleanup.policy": "shred"},
	} {
		if _, err := newSettings(m); err == nil {
			t.Errorf("%v accepted", m)
		}
	}
}

func TestSettingsValidateTopicConfigs(t *testing.T) {
	t.Parallel()
	s, _ := newSettings(nil)
	good := []map[string]string{
		{"retention.ms": "-1"}, {"cleanup.policy": "compact,delete"}, {"message.timestamp.type": "LogAppendTime"},
		{"min.cleanable.dirty.ratio": "0.9"}, {"flush.messages": "1"},
	}
	bad := []map[string]string{
		{"retention.ms": "abc"}, {"retention.ms": "-2"}, {"cleanup.policy": "never"}, {"segment.bytes": "1"},
		{"unknown.thing": "1"}, {"min.cleanable.dirty.ratio": "2"}, {"preallocate": "yes"},
	}
	for _, m := range good {
		if err := s.validateTopicConfigs(m); err != nil {
			t.Errorf("%v rejected: %v", m, err)
		}
	}
	for _, m := range bad {
		if err := s.validateTopicConfigs(m); err == nil {
			t.Errorf("%v accepted", m)
		}
	}
}

func TestSettingsEditList(t *testing.T) {
	t.Parallel()
	cases := []struct {
		base, v string
		add     bool
		want    string
	}{
		{"delete", "compact", true, "delete,compact"},
		{"delete,compact", "compact", true, "delete,compact"},
		{"delete,compact", "delete", false, "compact"},
		{"", "compact", true, "compact"},
		{"delete", "compact", false, "delete"},
	}
	for _, c := range cases {
		if got := editList(c.base, c.v, c.add); got != c.want {
			t.Errorf("editList(%q, %q, %v) = %q, want %q", c.base, c.v, c.add, got, c.want)
		}
	}
}

func TestTopicNameValidation(t *testing.T) {
	t.Parallel()
	long := make([]byte, 250)
	for i := range long {
		long[i] = 'a'
	}
	for _, ok := range []string{"a", "orders.v2", "my_topic-1", string(long[:249])} {
		if err := validTopicName(ok); err != nil {
			t.Errorf("%q rejected: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "has space", "slash/", "ünï", string(long)} {
		if err := validTopicName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestResolveTopicTyped: a topic's settings are resolved once into typed
// values, from its overrides, then broker synonyms, then the registry's
// defaults (the one source of defaults), including when a stored value
// does not parse.
func TestResolveTopicTyped(t *testing.T) {
	t.Parallel()
	s, err := newSettings(map[string]string{"message.max.bytes": "2000000", "compression.type": "zstd"})
	if err != nil {
		t.Fatal(err)
	}
	tc := s.resolveTopic(map[string]string{
		"cleanup.policy": "compact", "min.insync.replicas": "2", "unclean.leader.election.enable": "true",
		"message.timestamp.after.max.ms": "3600000", "compression.zstd.level": "7", "segment.bytes": "not-a-number",
	})
	p := tc.produce
	if p.maxMessageBytes != 2000000 || tc.storage.MaxMessageBytes != 2000000 {
		t.Errorf("max message bytes %d / %d, want the broker's 2000000", p.maxMessageBytes, tc.storage.MaxMessageBytes)
	}
	if !p.validate.RequireKeys || !p.validate.CheckTimestamps || p.validate.AfterMaxMs != 3600000 || p.validate.BeforeMaxMs != math.MaxInt64 {
		t.Errorf("validate options %+v", p.validate)
	}
	if !p.recompress || p.codec != protocol.CodecZstd || p.level != 7 {
		t.Errorf("recompress %v codec %d level %d, want zstd level 7", p.recompress, p.codec, p.level)
	}
	if tc.minInsync != 2 || !tc.uncleanElection {
		t.Errorf("min.insync %d unclean %v", tc.minInsync, tc.uncleanElection)
	}
	if tc.storage.SegmentBytes != 1073741824 || tc.storage.CleanupPolicy != storage.CleanupCompact {
		t.Errorf("storage config %+v: a bad segment.bytes must fall back to the registry default", tc.storage)
	}
	def := s.resolveTopic(nil)
	if def.minInsync != 1 || def.uncleanElection || def.produce.validate.CheckTimestamps || def.produce.validate.RequireKeys ||
		def.storage.RetentionMs != 7*24*3600*1000 || def.storage.RetentionBytes != -1 {
		t.Errorf("defaults resolved to %+v", def)
	}
}

// BenchmarkProduceRulesOf measures the per-partition cost of a produce's
// topic settings: a struct copy, no parsing, no allocation.
func BenchmarkProduceRulesOf(b *testing.B) {
	s, _ := newSettings(nil)
	ts := &topicState{}
	ts.cfg.Store(s.resolveTopic(map[string]string{"message.timestamp.before.max.ms": "60000", "compression.type": "lz4"}))
	now := time.Now()
	b.ReportAllocs()
	var r produceRules
	for b.Loop() {
		r = produceRulesOf(ts, now)
	}
	if r.validate.Now != now.UnixMilli() {
		b.Fatal("clock not filled in")
	}
}

// TestConfigRegistryConsistent: every setting is defined once, its
// default passes its own validation, and it is documented.
func TestConfigRegistryConsistent(t *testing.T) {
	t.Parallel()
	for what, defs := range map[string][]configDef{"topic": topicConfigDefs(), "broker": brokerConfigDefs()} {
		seen := map[string]bool{}
		for _, d := range defs {
			if seen[d.name] {
				t.Errorf("%s setting %s defined twice", what, d.name)
			}
			seen[d.name] = true
			if d.doc == "" {
				t.Errorf("%s setting %s has no documentation", what, d.name)
			}
			if d.def != "" {
				if err := d.check(d.def); err != nil {
					t.Errorf("%s setting %s: default %q fails its own check: %v", what, d.name, d.def, err)
				}
			}
		}
	}
}

// TestNewRefusesConflictingNodeIDSetting: node.id or broker.id given as a
// setting must agree with the node id, not be silently ignored.
func TestNewRefusesConflictingNodeIDSetting(t *testing.T) {
	t.Parallel()
	for _, k := range []string{"node.id", "broker.id"} {
		_, err := New(context.Background(), Config{NodeID: 0, DataDir: t.TempDir(), Settings: map[string]string{k: "1"}})
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=1 with node id 0: %v, want a start-up error naming it", k, err)
		}
	}
}
