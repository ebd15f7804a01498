package broker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestSettingsTopicResolution(t *testing.T) {
	t.Parallel()
	s, err := newSettings(map[string]string{"log.retention.hours": "24", "log.segment.bytes": "1048576"})
	if err != nil {
		t.Fatal(err)
	}
	s.setDynamic(map[string]string{"log.retention.minutes": "30"})
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
