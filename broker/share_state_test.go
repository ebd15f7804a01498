package broker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/coordinator/share"
	"github.com/sluicedev/sluice/coordinator/sharestate"
)

// TestShareStateBroker drives the share coordinator through one broker:
// __share_group_state is created on first use, state written through
// writeShareState comes back from readShareState with Sluice's tagged
// fields, older state epochs are fenced, the state survives an unload and
// reload of its __share_group_state partition (replayed from the log), the
// five APIs answer on the wire, and deleteShareGroupState removes it.
func TestShareStateBroker(t *testing.T) {
	t.Parallel()
	b := startTestBrokerWith(t, nil, map[string]string{"share.coordinator.state.topic.num.partitions": "3"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, nil, "q"); err != nil {
		t.Fatal(err)
	}
	ts := b.topics.get("q")
	if ts == nil {
		t.Fatal("topic q not known to the broker")
	}
	k := share.Key{Group: "g", TopicID: ts.meta().ID, Partition: 1}

	if _, found, err := b.readShareState(ctx, k); err != nil || found {
		t.Fatalf("first read: found %v, err %v", found, err)
	}
	if n := b.topics.get(shareStateTopic).meta().Partitions; n != 3 {
		t.Fatalf("%s has %d partitions, want 3", shareStateTopic, n)
	}
	nb := time.UnixMilli(time.Now().Add(time.Minute).UnixMilli())
	st := share.State{StateEpoch: 1, LeaderEpoch: 0, StartOffset: 5, Batches: []share.StateBatch{
		{FirstOffset: 5, LastOffset: 6, State: share.Acknowledged, DeliveryCount: 1},
		{FirstOffset: 7, LastOffset: 7, State: share.Available, DeliveryCount: 3, NotBefore: nb},
	}, DeadLetter: share.DeadLetterCursor{ProducerID: 12, ProducerEpoch: 1, Sequence: 3}}
	if err := b.writeShareState(ctx, k, st); err != nil {
		t.Fatal(err)
	}
	check := func(what string) {
		t.Helper()
		got, found, err := b.readShareState(ctx, k)
		if err != nil || !found {
			t.Fatalf("%s: found %v, err %v", what, found, err)
		}
		if got.StateEpoch != 1 || got.StartOffset != 5 || len(got.Batches) != 2 || got.DeadLetter != st.DeadLetter ||
			!got.Batches[1].NotBefore.Equal(nb) || got.Batches[1].DeliveryCount != 3 {
			t.Fatalf("%s: read %+v, want %+v", what, got, st)
		}
	}
	check("after write")
	old := st
	old.StateEpoch = 0
	if err := b.writeShareState(ctx, k, old); !errors.Is(err, errShareStateFenced) {
		t.Fatalf("write with an older state epoch: %v, want errShareStateFenced", err)
	}

	// Reload the partition from its log, as a new leader would.
	p := sharestate.PartitionFor(k, 3)
	part := b.topics.get(shareStateTopic).partition(p)
	b.shareState.Unload(p)
	b.shareStateOnTransition(part, becameLeader)
	check("after reload")

	// On the wire (the peer path), the summary has the delivery complete count.
	sum := kmsg.NewPtrReadShareGroupStateSummaryRequest()
	sum.Version = 1
	sum.GroupID = "g"
	sum.Topics = []kmsg.ReadShareGroupStateSummaryRequestTopic{{TopicID: k.TopicID,
		Partitions: []kmsg.ReadShareGroupStateSummaryRequestTopicPartition{{Partition: 1, LeaderEpoch: -1}}}}
	raw, err := b.peers.roundTrip(ctx, b, b.cfg.NodeID, sum)
	if err != nil {
		t.Fatal(err)
	}
	sp := raw.(*kmsg.ReadShareGroupStateSummaryResponse).Topics[0].Partitions[0]
	if sp.ErrorCode != 0 || sp.StartOffset != 5 || sp.DeliveryCompleteCount != 2 {
		t.Fatalf("summary on the wire: %+v", sp)
	}

	if err := b.deleteShareGroupState(ctx, "g", []string{"q", "no-such-topic"}); err != nil {
		t.Fatal(err)
	}
	if _, found, err := b.readShareState(ctx, k); err != nil || found {
		t.Fatalf("after delete: found %v, err %v", found, err)
	}
}
