package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// metadataFor sends a Metadata request for topic at version v.
func metadataFor(t *testing.T, cl *kgo.Client, v int16, topic string, allowAuto bool) kmsg.MetadataResponseTopic {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	req.Version = v
	req.AllowAutoTopicCreation = allowAuto
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Topics) != 1 {
		t.Fatalf("metadata for %s: %d topics", topic, len(resp.Topics))
	}
	return resp.Topics[0]
}

// completeTopic reports why mt is not a topic whose every partition has
// a leader and no error, or nil; and fails t on a partition listed with
// leader -1 and no error code, which no response may contain.
func completeTopic(t *testing.T, mt kmsg.MetadataResponseTopic, partitions int) error {
	t.Helper()
	for _, p := range mt.Partitions {
		if p.Leader < 0 && p.ErrorCode == 0 {
			t.Fatalf("partition %d listed with leader %d and no error code", p.Partition, p.Leader)
		}
	}
	if mt.ErrorCode != 0 {
		return fmt.Errorf("topic error %v", kerr.ErrorForCode(mt.ErrorCode))
	}
	if len(mt.Partitions) != partitions {
		return fmt.Errorf("%d partitions listed, want %d", len(mt.Partitions), partitions)
	}
	for _, p := range mt.Partitions {
		if p.ErrorCode != 0 || p.Leader < 0 {
			return fmt.Errorf("partition %d: leader %d, %v", p.Partition, p.Leader, kerr.ErrorForCode(p.ErrorCode))
		}
	}
	return nil
}

// TestMetadataAutoCreateLeaderNotAvailable: a Metadata request that
// creates a topic is answered as Kafka answers it, LEADER_NOT_AVAILABLE
// and no partitions; the next request lists every partition with its
// leader. v0 requests create implicitly; v4+ only when allowed.
func TestMetadataAutoCreateLeaderNotAvailable(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, map[string]string{"num.partitions": "3"})
	cl := client(t, ib.addr())
	for _, v := range []int16{0, 12} {
		topic := fmt.Sprintf("auto-v%d", v)
		mt := metadataFor(t, cl, v, topic, true)
		if mt.ErrorCode != kerr.LeaderNotAvailable.Code || len(mt.Partitions) != 0 {
			t.Fatalf("v%d creating request: error %v, %d partitions; want LEADER_NOT_AVAILABLE and none",
				v, kerr.ErrorForCode(mt.ErrorCode), len(mt.Partitions))
		}
		if err := completeTopic(t, metadataFor(t, cl, v, topic, true), 3); err != nil {
			t.Fatalf("v%d after creation: %v", v, err)
		}
	}
	if mt := metadataFor(t, cl, 12, "not-allowed", false); mt.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("v12 without AllowAutoTopicCreation: %v, want UNKNOWN_TOPIC_OR_PARTITION", kerr.ErrorForCode(mt.ErrorCode))
	}
	// A franz-go producer relying on auto-creation retries through it.
	pc := client(t, ib.addr(), kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("auto-produce"))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := pc.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatalf("produce to an auto-created topic: %v", err)
	}
}

// TestCreateTopicsAnswersWithLeaders: when CreateTopics answers, every
// broker lists every partition of the new topic with a leader (no
// 0-partition or leaderless window, whichever broker a client asks next).
func TestCreateTopicsAnswersWithLeaders(t *testing.T) {
	c := startCluster(t, 3)
	const parts = 200
	for i := range 3 {
		topic := fmt.Sprintf("wide-%d", i)
		ctl := c.client()
		adm := kadm.NewClient(ctl)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		start := time.Now()
		resp, err := adm.CreateTopic(ctx, parts, 3, nil, topic)
		cancel()
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			t.Fatalf("create %s: %v", topic, err)
		}
		took := time.Since(start)
		// Every broker, not only the one that answered, lists the topic
		// complete as soon as CreateTopics has answered.
		for _, id := range c.ids() {
			if err := completeTopic(t, metadataFor(t, client(t, c.procs[id].addr), 12, topic, false), parts); err != nil {
				t.Fatalf("%s on broker %d right after CreateTopics answered (%v): %v", topic, id, took, err)
			}
		}
		t.Logf("%s: CreateTopics of %d partitions took %v", topic, parts, took)
	}
}
