package broker

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/metadata"
)

func TestGroupConfigValidate(t *testing.T) {
	t.Parallel()
	s, err := newSettings(map[string]string{"errors.deadletterqueue.topic.name.prefix": "dead."})
	if err != nil {
		t.Fatal(err)
	}
	g := newGroupConfigs()
	for _, tc := range []struct {
		cfg  map[string]string
		want string // "" accepted, else a part of the error
	}{
		{map[string]string{}, ""},
		{map[string]string{"share.record.lock.duration.ms": "20000", "share.isolation.level": "read_committed"}, ""},
		{map[string]string{"share.auto.offset.reset": "by_duration:PT1H30M"}, ""},
		{map[string]string{"share.auto.offset.reset": "by_duration:P1DT0.5S"}, ""},
		{map[string]string{"share.auto.offset.reset": "by_duration:-PT1H"}, "negative"},
		{map[string]string{"share.auto.offset.reset": "by_duration:1h"}, "ISO-8601"},
		{map[string]string{"share.auto.offset.reset": "by_duration:PT"}, "ISO-8601"},
		{map[string]string{"share.auto.offset.reset": "none"}, "share.auto.offset.reset"},
		{map[string]string{"share.isolation.level": "serializable"}, "share.isolation.level"},
		{map[string]string{"no.such.config": "1"}, "Unknown group config name: no.such.config"},
		{map[string]string{"share.record.lock.duration.ms": "abc"}, "Invalid value abc for configuration share.record.lock.duration.ms"},
		{map[string]string{"share.record.lock.duration.ms": "14999"}, "share.record.lock.duration.ms must be greater than or equal to group.share.min.record.lock.duration.ms"},
		{map[string]string{"share.record.lock.duration.ms": "60001"}, "share.record.lock.duration.ms must be less than or equal to group.share.max.record.lock.duration.ms"},
		{map[string]string{"share.delivery.count.limit": "1"}, "greater than or equal to group.share.min.delivery.count.limit"},
		{map[string]string{"share.delivery.count.limit": "11"}, "less than or equal to group.share.max.delivery.count.limit"},
		{map[string]string{"share.delivery.count.limit": "10"}, ""},
		{map[string]string{"share.partition.max.record.locks": "10001"}, "group.share.max.partition.max.record.locks"},
		{map[string]string{"consumer.session.timeout.ms": "44999"}, "group.consumer.min.session.timeout.ms"},
		{map[string]string{"consumer.heartbeat.interval.ms": "15001"}, "group.consumer.max.heartbeat.interval.ms"},
		{map[string]string{"share.heartbeat.interval.ms": "4999"}, "group.share.min.heartbeat.interval.ms"},
		{map[string]string{"share.session.timeout.ms": "60001"}, "group.share.max.session.timeout.ms"},
		{map[string]string{"errors.deadletterqueue.topic.name": "dead.orders", "errors.deadletterqueue.copy.record.enable": "true"}, ""},
		{map[string]string{"errors.deadletterqueue.topic.name": "dlq.orders"}, `must start with "dead."`},
		{map[string]string{"errors.deadletterqueue.topic.name": "dead.a/b"}, "Invalid value"},
		{map[string]string{"share.record.redelivery.backoff.ms": "1000", "share.record.redelivery.backoff.max.ms": "500"}, "backoff.max.ms must be greater than or equal"},
		{map[string]string{"share.record.redelivery.backoff.ms": "70000"}, "backoff.max.ms must be greater than or equal"},
		{map[string]string{"share.record.redelivery.backoff.multiplier": "0.5"}, "multiplier"},
		{map[string]string{"streams.num.standby.replicas": "2"}, ""},
	} {
		err := g.validate(s, tc.cfg)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v refused: %v", tc.cfg, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: err %v, want one containing %q", tc.cfg, err, tc.want)
		}
	}
}

// Kafka's cross checks apply to the effective values once either side of
// a pair is set: a heartbeat at or above the session timeout is refused.
func TestGroupConfigValidateSessionOverHeartbeat(t *testing.T) {
	t.Parallel()
	s, err := newSettings(map[string]string{"group.share.max.heartbeat.interval.ms": "60000"})
	if err != nil {
		t.Fatal(err)
	}
	g := newGroupConfigs()
	err = g.validate(s, map[string]string{"share.heartbeat.interval.ms": "45000"})
	if err == nil || err.Error() != "share.session.timeout.ms must be greater than share.heartbeat.interval.ms" {
		t.Fatalf("heartbeat = session timeout: %v", err)
	}
	if err := g.validate(s, map[string]string{"share.heartbeat.interval.ms": "44999"}); err != nil {
		t.Fatal(err)
	}
}

func TestGroupConfigResolve(t *testing.T) {
	t.Parallel()
	s, err := newSettings(map[string]string{
		"group.share.record.lock.duration.ms":      "20000",
		"group.share.record.redelivery.backoff.ms": "250",
	})
	if err != nil {
		t.Fatal(err)
	}
	g := newGroupConfigs()
	g.refresh(s)
	b := &Broker{settings: s, groupCfg: g}
	def := b.groupSettings("nobody")
	want := groupSettings{
		ShareAutoOffsetReset: "latest", ShareRecordLockDuration: 20 * time.Second, ShareDeliveryCountLimit: 5,
		SharePartitionMaxRecordLocks: 2000, ShareHeartbeatInterval: 5 * time.Second, ShareSessionTimeout: 45 * time.Second,
		ConsumerHeartbeatInterval: 5 * time.Second, ConsumerSessionTimeout: 45 * time.Second,
	}
	want.ShareBackoff.Initial, want.ShareBackoff.Max, want.ShareBackoff.Multiplier = 250*time.Millisecond, time.Minute, 2
	if def != want {
		t.Fatalf("defaults\n got %+v\nwant %+v", def, want)
	}
	g.apply(s, metadata.GroupConfig{Group: "q", Revision: 5, Configs: map[string]string{
		"share.record.lock.duration.ms": "50000", "share.isolation.level": "read_committed",
		"share.delivery.count.limit": "8", "errors.deadletterqueue.topic.name": "dlq.q",
		"errors.deadletterqueue.copy.record.enable": "true", "share.record.redelivery.backoff.multiplier": "1.5",
		"share.auto.offset.reset": "by_duration:PT10M",
	}}, false)
	q := b.groupSettings("q")
	if q.ShareRecordLockDuration != 50*time.Second || q.ShareIsolationLevel != 1 || q.ShareDeliveryCountLimit != 8 ||
		q.DLQTopic != "dlq.q" || !q.DLQCopyRecord || q.ShareBackoff.Multiplier != 1.5 || q.ShareBackoff.Initial != 250*time.Millisecond {
		t.Fatalf("group q: %+v", q)
	}
	if d, ok := shareResetDuration(q.ShareAutoOffsetReset); !ok || d != 10*time.Minute {
		t.Fatalf("reset %q: %v %v", q.ShareAutoOffsetReset, d, ok)
	}
	// An older record does not replace a newer one.
	g.apply(s, metadata.GroupConfig{Group: "q", Revision: 4, Configs: map[string]string{"share.delivery.count.limit": "3"}}, false)
	if got := b.groupSettings("q").ShareDeliveryCountLimit; got != 8 {
		t.Fatalf("stale record applied: limit %d", got)
	}
	// A lowered broker bound clamps the group's value at use (KIP-1240).
	s.setDynamic(nil, map[string]string{"group.share.max.record.lock.duration.ms": "40000", "group.share.max.delivery.count.limit": "6"})
	g.refresh(s)
	if q := b.groupSettings("q"); q.ShareRecordLockDuration != 40*time.Second || q.ShareDeliveryCountLimit != 6 {
		t.Fatalf("after lowering the bounds: %+v", q)
	}
	g.apply(s, metadata.GroupConfig{Group: "q", Revision: 5}, true)
	if got := b.groupSettings("q"); got != b.groupSettings("nobody") {
		t.Fatalf("deleted group still resolved: %+v", got)
	}
}

func TestGroupConfigDescribeSources(t *testing.T) {
	t.Parallel()
	s, err := newSettings(map[string]string{"group.share.delivery.count.limit": "7"})
	if err != nil {
		t.Fatal(err)
	}
	g := newGroupConfigs()
	over := map[string]string{"share.record.lock.duration.ms": "16000"}
	for _, tc := range []struct {
		name, value string
		source      kmsg.ConfigSource
	}{
		{"share.record.lock.duration.ms", "16000", kmsg.ConfigSourceGroupConfig},
		{"share.delivery.count.limit", "7", kmsg.ConfigSourceStaticBrokerConfig},
		{"share.session.timeout.ms", "45000", kmsg.ConfigSourceDefaultConfig},
		{"share.isolation.level", "read_uncommitted", kmsg.ConfigSourceDefaultConfig},
	} {
		rv := g.value(s, tc.name, over)
		if rv.value != tc.value || rv.source != tc.source || len(rv.synonyms) == 0 {
			t.Errorf("%s = %q from %v (%d synonyms), want %q from %v", tc.name, rv.value, rv.source, len(rv.synonyms), tc.value, tc.source)
		}
	}
}

func TestGroupConfigBrokerShareSettings(t *testing.T) {
	t.Parallel()
	s, err := newSettings(map[string]string{"group.share.partition.max.record.locks": "500", "share.coordinator.state.topic.num.partitions": "7"})
	if err != nil {
		t.Fatal(err)
	}
	sh := s.share.Load()
	if sh.PartitionMaxRecordLocks != 500 || sh.StateTopicPartitions != 7 || sh.RecordLockDuration != 30*time.Second ||
		sh.DeliveryCountLimit != 5 || sh.DLQTopicPrefix != "dlq." || sh.DLQAutoCreate || sh.MaxShareSessions != 2000 || sh.MaxSize != 200 {
		t.Fatalf("share settings %+v", sh)
	}
	s.setDynamic(nil, map[string]string{"errors.deadletterqueue.auto.create.topics.enable": "true"})
	if !s.share.Load().DLQAutoCreate {
		t.Fatal("a dynamic change was not resolved")
	}
	for _, bad := range []map[string]string{
		{"group.share.delivery.count.limit": "11"},
		{"group.share.partition.max.record.locks": "50"},
		{"group.share.record.lock.duration.ms": "999"},
	} {
		if _, err := newSettings(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if _, err := newSettings(nil); err != nil {
		t.Fatal(err)
	}
	tc := s.reg.topic["errors.deadletterqueue.group.enable"]
	if tc == nil || tc.def != "false" {
		t.Fatalf("topic config errors.deadletterqueue.group.enable: %+v", tc)
	}
}

func TestGroupConfigISODuration(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{
		"PT0S": 0, "PT1.5S": 1500 * time.Millisecond, "P2D": 48 * time.Hour, "P1DT2H3M4S": 26*time.Hour + 3*time.Minute + 4*time.Second,
		"pt15m": 15 * time.Minute,
	} {
		if got, err := parseISODuration(in); err != nil || got != want {
			t.Errorf("%s = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "P", "PT", "P1H", "1D", "P1DT", "PT1.1234567891S", "P99999999999999999999D", "P106752D"} {
		if d, err := parseISODuration(bad); err == nil {
			t.Errorf("%q accepted as %v", bad, d)
		}
	}
}

// Every group config is documented, passes its own check at its default,
// and names a broker setting that exists when it has one.
func TestGroupConfigDefsConsistent(t *testing.T) {
	t.Parallel()
	reg := newConfigRegistry()
	seen := map[string]bool{}
	for _, d := range groupConfigDefs() {
		if seen[d.name] {
			t.Errorf("group config %s defined twice", d.name)
		}
		seen[d.name] = true
		if d.doc == "" {
			t.Errorf("group config %s has no documentation", d.name)
		}
		if d.def != "" {
			if err := d.check(d.def); err != nil {
				t.Errorf("group config %s: default %q fails its own check: %v", d.name, d.def, err)
			}
		}
		for _, sy := range d.synonyms {
			bd := reg.broker[sy.name]
			if bd == nil {
				t.Errorf("group config %s: broker setting %s does not exist", d.name, sy.name)
			} else if bd.def != d.def {
				t.Errorf("group config %s default %q, broker setting %s default %q", d.name, d.def, sy.name, bd.def)
			}
		}
	}
}
