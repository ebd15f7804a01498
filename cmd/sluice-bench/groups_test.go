package main

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupConfigLog records the GROUP config alterations a kfake cluster sees.
type groupConfigLog struct {
	mu  sync.Mutex
	set map[string]string // group -> share.auto.offset.reset
}

func watchGroupConfigs(cluster *kfake.Cluster) *groupConfigLog {
	l := &groupConfigLog{set: make(map[string]string)}
	cluster.ControlKey(int16(kmsg.IncrementalAlterConfigs), func(req kmsg.Request) (kmsg.Response, error, bool) {
		for _, r := range req.(*kmsg.IncrementalAlterConfigsRequest).Resources {
			if r.ResourceType != kmsg.ConfigResourceTypeGroupConfig {
				continue
			}
			for _, c := range r.Configs {
				if c.Name == "share.auto.offset.reset" && c.Value != nil {
					l.mu.Lock()
					l.set[r.ResourceName] = *c.Value
					l.mu.Unlock()
				}
			}
		}
		return nil, nil, false
	})
	return l
}

func (l *groupConfigLog) get(group string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.set[group]
}

// TestShareGroupConsumesEveryRecordOnce runs --mode share with three
// members over two partitions: the group's offset reset is set to
// earliest first, every produced key is accepted exactly once, and the
// acknowledgement latency is measured.
func TestShareGroupConsumesEveryRecordOnce(t *testing.T) {
	t.Parallel()
	cluster := newTestCluster(t)
	configs := watchGroupConfigs(cluster)
	res, err := runAgainst(t, cluster, "--mode", "share", "--records", "3000", "--members", "3", "--partitions", "2",
		"--record-size", "64", "--acks", "all", "--idempotent", "--group", "g1", "--delete-topic")
	if err != nil {
		t.Fatalf("runBench: %v (result %+v)", err, res)
	}
	if got := configs.get("g1"); got != "earliest" {
		t.Errorf("share.auto.offset.reset of g1 set to %q, want earliest", got)
	}
	g, c, v := res.Group, res.Consume, res.Verify
	if g == nil || g.Kind != kindShare || g.Group != "g1" || g.Members != 3 || g.MembersWithRecords < 1 ||
		g.Ack == nil || g.Ack.P50Ms <= 0 || g.Polls == 0 || g.AckErrors != 0 {
		t.Fatalf("group %+v", g)
	}
	if c == nil || c.Records != 3000 || c.RecordsPS <= 0 || c.Bytes != 3000*(64+8) {
		t.Errorf("consume %+v", c)
	}
	if v == nil || !v.OK || !v.BySequence || v.Expected != 3000 || v.Consumed != 3000 || v.Duplicates != 0 {
		t.Errorf("verify %+v", v)
	}
}

// TestClassicGroupConsumesEveryRecordOnce runs --mode group with more
// members than partitions: only as many members as partitions get
// records, and every key is read once.
func TestClassicGroupConsumesEveryRecordOnce(t *testing.T) {
	t.Parallel()
	cluster := newTestCluster(t)
	configs := watchGroupConfigs(cluster)
	res, err := runAgainst(t, cluster, "--mode", "group", "--records", "2000", "--members", "4", "--partitions", "2",
		"--record-size", "64")
	if err != nil {
		t.Fatalf("runBench: %v (result %+v)", err, res)
	}
	g, v := res.Group, res.Verify
	if g == nil || g.Kind != kindClassic || g.Members != 4 || g.MembersWithRecords < 1 || g.MembersWithRecords > 2 ||
		g.Ack == nil || g.Group != res.Topic+"-group" {
		t.Fatalf("group %+v", g)
	}
	if v == nil || !v.OK || v.Expected != 2000 || v.Consumed != 2000 {
		t.Errorf("verify %+v", v)
	}
	if got := configs.get(g.Group); got != "" {
		t.Errorf("a classic group's config was altered: %q", got)
	}
}

// keyed returns a fetch of records whose keys are seqs (8 bytes) and, for
// a negative seq, a record without a key.
func keyed(seqs ...int64) kgo.Fetches {
	var rs []*kgo.Record
	for _, s := range seqs {
		r := &kgo.Record{Topic: "t", Value: []byte("v")}
		if s >= 0 {
			r.Key = binary.BigEndian.AppendUint64(nil, uint64(s))
		}
		rs = append(rs, r)
	}
	return kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: "t", Partitions: []kgo.FetchPartition{{Records: rs}}}}}}
}

// TestGroupRunTally checks the members' shared tally: the run ends only
// once every distinct record's acknowledgement is confirmed (a duplicate
// does not count towards it), and the by-key check reports duplicates,
// missing records and records without a sequence key.
func TestGroupRunTally(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g := newGroupRun(4, cancel)
	now := time.Now()
	fresh := g.polled(keyed(0, 1, 1), 0, now)
	if fresh != 2 {
		t.Fatalf("fresh = %d, want 2", fresh)
	}
	g.acked(3, fresh, time.Millisecond)
	fresh = g.polled(keyed(2, 1), 1, now)
	g.acked(2, fresh, 2*time.Millisecond)
	if ctx.Err() != nil {
		t.Fatal("run ended with 3 of 4 records acknowledged")
	}
	fresh = g.polled(keyed(-1, 3), 1, now)
	g.acked(2, fresh, 3*time.Millisecond)
	if ctx.Err() == nil {
		t.Fatal("run did not end with every record acknowledged")
	}
	v := verifySeqs(readUncommitted, []seqRange{{0, 4}}, &g.mu.seen)
	if v.OK || v.Duplicates != 2 || v.Missing != 0 || v.Unexpected != 1 || v.Consumed != 7 {
		t.Errorf("verify %+v, want 2 duplicates and 1 unexpected", v)
	}
	if g.records.Load() != 7 || len(g.mu.withRecs) != 2 || g.mu.hist.Count() != 7 || g.polls.Load() != 3 {
		t.Errorf("records %d members %d acks %d polls %d", g.records.Load(), len(g.mu.withRecs), g.mu.hist.Count(), g.polls.Load())
	}
	if !errors.Is(verifySeqs(readUncommitted, []seqRange{{0, 5}}, &g.mu.seen).err(), errVerifyFailed) {
		t.Error("a missing record passed the check")
	}
}
