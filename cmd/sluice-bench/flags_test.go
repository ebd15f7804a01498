package main

import (
	"errors"
	"flag"
	"io"
	"maps"
	"slices"
	"testing"
	"time"
)

func TestFlagsParseValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, c config)
	}{
		{"defaults", []string{"--brokers", "127.0.0.1:9092"}, func(t *testing.T, c config) {
			if !slices.Equal(c.brokers, []string{"127.0.0.1:9092"}) || c.recordSize != 1024 || c.partitions != 1 ||
				c.acks != "1" || c.mode != modeBoth || c.duration != defaultDuration || c.records != 0 ||
				c.maxInflight != 5 || c.rate != 0 || c.linger != 0 || c.replication != 1 {
				t.Errorf("unexpected defaults: %+v", c)
			}
		}},
		{"broker list", []string{"--brokers", "a:1, b:2,,c:3"}, func(t *testing.T, c config) {
			if !slices.Equal(c.brokers, []string{"a:1", "b:2", "c:3"}) {
				t.Errorf("brokers = %q", c.brokers)
			}
		}},
		{"records without duration", []string{"--fake", "--records", "500"}, func(t *testing.T, c config) {
			if c.records != 500 || c.duration != 0 || !c.fake {
				t.Errorf("records %d duration %s fake %v", c.records, c.duration, c.fake)
			}
		}},
		{"workload", []string{
			"--brokers=h:1", "--record-size=100", "--partitions=8", "--acks=all", "--duration=3s", "--rate=10000",
			"--mode=produce", "--topic=t", "--linger=5ms", "--max-inflight=16", "--broker-pid=42", "--json",
			"--label=cell", "--target=sluice", "--max-p99=20ms", "--delete-topic",
		}, func(t *testing.T, c config) {
			if c.recordSize != 100 || c.partitions != 8 || c.acks != "all" || c.duration != 3*time.Second ||
				c.rate != 10000 || c.mode != modeProduce || c.topic != "t" || c.linger != 5*time.Millisecond ||
				c.maxInflight != 16 || c.brokerPID != 42 || !c.jsonOut || c.label != "cell" || c.target != "sluice" ||
				c.maxP99 != 20*time.Millisecond || !c.deleteTopic {
				t.Errorf("unexpected config: %+v", c)
			}
		}},
		{"acks -1 means all", []string{"--fake", "--acks", "-1", "--idempotent"}, func(t *testing.T, c config) {
			if c.acks != "all" || !c.idempotent {
				t.Errorf("acks %q idempotent %v", c.acks, c.idempotent)
			}
		}},
		{"topic configs repeat", []string{"--fake", "--topic-config", "flush.messages=1", "--topic-config", " segment.bytes = 1048576 "},
			func(t *testing.T, c config) {
				want := map[string]string{"flush.messages": "1", "segment.bytes": "1048576"}
				if !maps.Equal(c.topicConfigs, want) {
					t.Errorf("topic configs %v, want %v", c.topicConfigs, want)
				}
			}},
		{"one per request drops linger", []string{"--fake", "--linger", "10ms", "--one-per-request"}, func(t *testing.T, c config) {
			if !c.onePerRequest || c.linger != 0 {
				t.Errorf("one-per-request %v linger %s", c.onePerRequest, c.linger)
			}
		}},
		{"serve fake", []string{"--serve-fake", "127.0.0.1:9999"}, func(t *testing.T, c config) {
			if c.serveFake != "127.0.0.1:9999" {
				t.Errorf("serveFake %q", c.serveFake)
			}
		}},
		{"compare", []string{"--compare", "r.jsonl", "--subject", "a", "--reference", "b"}, func(t *testing.T, c config) {
			if c.compare != "r.jsonl" || c.subject != "a" || c.reference != "b" {
				t.Errorf("compare %q subject %q reference %q", c.compare, c.subject, c.reference)
			}
		}},
		{"transactions", []string{"--fake", "--acks", "all", "--txn-records", "1000", "--ratio-to", "idem", "--min-ratio", "0.8"},
			func(t *testing.T, c config) {
				if c.txnRecords != 1000 || !c.idempotent || c.isolation != readCommitted || c.ratioTo != "idem" || c.minRatio != 0.8 {
					t.Errorf("txn %d idempotent %v isolation %q ratio-to %q min %g", c.txnRecords, c.idempotent, c.isolation, c.ratioTo, c.minRatio)
				}
			}},
		{"isolation default and override", []string{"--fake", "--acks", "all", "--txn-records", "10", "--isolation", "read_uncommitted",
			"--mode", "e2e", "--rate", "100", "--txn-abort-every", "4"}, func(t *testing.T, c config) {
			if c.isolation != readUncommitted || c.mode != modeE2E || c.txnAbortEvery != 4 {
				t.Errorf("isolation %q mode %q abort every %d", c.isolation, c.mode, c.txnAbortEvery)
			}
		}},
		{"no transactions reads uncommitted", []string{"--fake"}, func(t *testing.T, c config) {
			if c.isolation != readUncommitted || c.txnRecords != 0 || c.idempotent {
				t.Errorf("isolation %q txn %d idempotent %v", c.isolation, c.txnRecords, c.idempotent)
			}
		}},
		{"producers default per mode", []string{"--fake", "--mode", "flood", "--duration", "1s"}, func(t *testing.T, c config) {
			if c.producers != defaultFloodProducers {
				t.Errorf("flood producers %d, want %d", c.producers, defaultFloodProducers)
			}
		}},
		{"producers default one", []string{"--fake", "--acks", "all", "--idempotent"}, func(t *testing.T, c config) {
			if c.producers != 1 {
				t.Errorf("producers %d, want 1", c.producers)
			}
		}},
		{"flood without producers", []string{"--fake", "--mode", "flood", "--duration", "1s", "--producers", "0"}, func(t *testing.T, c config) {
			if c.producers != 0 {
				t.Errorf("producers %d, want 0", c.producers)
			}
		}},
		{"transactional producers", []string{"--fake", "--acks", "all", "--txn-records", "1000", "--producers", "4", "--mode", "produce"},
			func(t *testing.T, c config) {
				if c.producers != 4 || c.txnRecords != 1000 || !c.idempotent {
					t.Errorf("producers %d txn %d idempotent %v", c.producers, c.txnRecords, c.idempotent)
				}
			}},
		{"share group", []string{"--fake", "--mode", "share", "--members", "16", "--group", "g", "--records", "10"},
			func(t *testing.T, c config) {
				if c.mode != modeShare || c.members != 16 || c.group != "g" || groupName(&c) != "g" {
					t.Errorf("mode %q members %d group %q", c.mode, c.members, c.group)
				}
			}},
		{"classic group default name", []string{"--fake", "--mode", "group", "--topic", "t"}, func(t *testing.T, c config) {
			if c.mode != modeGroup || c.members != 1 || groupName(&c) != "t-group" {
				t.Errorf("mode %q members %d group %q", c.mode, c.members, groupName(&c))
			}
		}},
		{"consume with topic", []string{"--fake", "--mode", "consume", "--topic", "t"}, func(t *testing.T, c config) {
			if c.mode != modeConsume {
				t.Errorf("mode %q", c.mode)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := parseFlags(tt.args, io.Discard)
			if err != nil {
				t.Fatalf("parseFlags(%q): %v", tt.args, err)
			}
			tt.check(t, c)
		})
	}
}

func TestFlagsParseInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
	}{
		{"no action", nil},
		{"brokers and fake", []string{"--brokers", "h:1", "--fake"}},
		{"fake and serve-fake", []string{"--fake", "--serve-fake", "127.0.0.1:1"}},
		{"fake with broker pid", []string{"--fake", "--broker-pid", "1"}},
		{"bad acks", []string{"--fake", "--acks", "0"}},
		{"bad mode", []string{"--fake", "--mode", "both-ways"}},
		{"consume without topic", []string{"--fake", "--mode", "consume"}},
		{"zero record size", []string{"--fake", "--record-size", "0"}},
		{"zero partitions", []string{"--fake", "--partitions", "0"}},
		{"huge partitions", []string{"--fake", "--partitions", "4294967297"}},
		{"negative rate", []string{"--fake", "--rate", "-1"}},
		{"negative records", []string{"--fake", "--records", "-5"}},
		{"zero inflight", []string{"--fake", "--max-inflight", "0"}},
		{"idempotent acks 1", []string{"--fake", "--idempotent"}},
		{"idempotent with inflight", []string{"--fake", "--acks", "all", "--idempotent", "--max-inflight", "8"}},
		{"topic config without =", []string{"--fake", "--topic-config", "flush.messages"}},
		{"unknown compression", []string{"--fake", "--compression", "brotli"}},
		{"txn acks 1", []string{"--fake", "--txn-records", "10"}},
		{"txn negative", []string{"--fake", "--acks", "all", "--txn-records", "-1"}},
		{"txn with inflight", []string{"--fake", "--acks", "all", "--txn-records", "10", "--max-inflight", "8"}},
		{"txn flood", []string{"--fake", "--acks", "all", "--txn-records", "10", "--mode", "flood", "--duration", "1s"}},
		{"txn timeout zero", []string{"--fake", "--acks", "all", "--txn-records", "10", "--txn-timeout", "0s"}},
		{"abort every without txn", []string{"--fake", "--acks", "all", "--txn-abort-every", "2"}},
		{"bad isolation", []string{"--fake", "--isolation", "serializable"}},
		{"e2e without rate", []string{"--fake", "--mode", "e2e"}},
		{"e2e tiny records", []string{"--fake", "--mode", "e2e", "--rate", "10", "--record-size", "15"}},
		{"min ratio without ratio-to", []string{"--fake", "--min-ratio", "0.8"}},
		{"min ratio on e2e", []string{"--fake", "--mode", "e2e", "--rate", "10", "--ratio-to", "x", "--min-ratio", "0.8"}},
		{"ratio to itself", []string{"--fake", "--label", "x", "--ratio-to", "x"}},
		{"producers without idempotence", []string{"--fake", "--producers", "4"}},
		{"producers zero in produce", []string{"--fake", "--acks", "all", "--idempotent", "--producers", "0"}},
		{"producers with rate", []string{"--fake", "--acks", "all", "--idempotent", "--producers", "2", "--rate", "100"}},
		{"producers in e2e", []string{"--fake", "--acks", "all", "--idempotent", "--producers", "2", "--mode", "e2e", "--rate", "100"}},
		{"producers in consume", []string{"--fake", "--producers", "2", "--mode", "consume", "--topic", "t"}},
		{"producers one per request", []string{"--fake", "--acks", "all", "--idempotent", "--producers", "2", "--one-per-request"}},
		{"producers above records", []string{"--fake", "--acks", "all", "--idempotent", "--producers", "4", "--records", "3"}},
		{"zero members", []string{"--fake", "--mode", "share", "--members", "0"}},
		{"too many members", []string{"--fake", "--mode", "share", "--members", "1025"}},
		{"members without group mode", []string{"--fake", "--members", "4"}},
		{"group id without group mode", []string{"--fake", "--group", "g"}},
		{"txn share", []string{"--fake", "--mode", "share", "--acks", "all", "--txn-records", "10"}},
		{"stray argument", []string{"--fake", "extra"}},
		{"unknown flag", []string{"--fake", "--no-such-flag"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if c, err := parseFlags(tt.args, io.Discard); err == nil {
				t.Fatalf("parseFlags(%q) = %+v, want an error", tt.args, c)
			}
		})
	}
}

func TestFlagsParseHelp(t *testing.T) {
	t.Parallel()
	if _, err := parseFlags([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: got %v, want flag.ErrHelp", err)
	}
	_, err := parseFlags([]string{"--fake", "--acks", "2"}, io.Discard)
	if !errors.Is(err, errUsage) {
		t.Fatalf("bad acks: got %v, want errUsage", err)
	}
}
