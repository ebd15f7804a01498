package broker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
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

	// FindCoordinator key type 2 names the share coordinator of a key.
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.Version = 6
	fc.CoordinatorType = 2
	fc.CoordinatorKeys = []string{sharestate.CoordinatorKey(k), "not-a-share-key"}
	fr, err := fc.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[string]kmsg.FindCoordinatorResponseCoordinator{}
	for _, c := range fr.Coordinators { // the client may split the keys and merge the answers in any order
		byKey[c.Key] = c
	}
	if good, bad := byKey[sharestate.CoordinatorKey(k)], byKey["not-a-share-key"]; len(fr.Coordinators) != 2 ||
		good.ErrorCode != 0 || good.NodeID != b.cfg.NodeID || bad.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("FindCoordinator key type 2: %+v", fr.Coordinators)
	}

	if err := b.deleteShareGroupState(ctx, "g", []string{"q", "no-such-topic"}); err != nil {
		t.Fatal(err)
	}
	if _, found, err := b.readShareState(ctx, k); err != nil || found {
		t.Fatalf("after delete: found %v, err %v", found, err)
	}
}

// TestShareGroupOffsetsAPIs drives Describe-, Alter- and
// DeleteShareGroupOffsets through a running broker: an empty share group's
// offsets are set, described with their lag, refused while the group has
// a member, and deleted.
func TestShareGroupOffsetsAPIs(t *testing.T) {
	t.Parallel()
	b := startTestBrokerWith(t, nil, map[string]string{"share.coordinator.state.topic.num.partitions": "2"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, nil, "so"); err != nil {
		t.Fatal(err)
	}
	// Ten records in partition 0, for the lag.
	for i := range 10 {
		r := &kgo.Record{Topic: "so", Partition: 0, Value: []byte{byte(i)}}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	const member = "5c0b5a1e-0000-4000-8000-0000000000b1"
	hb := func(epoch int32) {
		t.Helper()
		for {
			req := kmsg.NewPtrShareGroupHeartbeatRequest()
			req.Version = 1
			req.GroupID, req.MemberID, req.MemberEpoch = "og", member, epoch
			if epoch == 0 {
				req.SubscribedTopicNames = []string{"so"}
			}
			resp, err := req.RequestWith(ctx, cl)
			if err != nil {
				t.Fatal(err)
			}
			switch resp.ErrorCode {
			case 0:
				return
			case kerr.CoordinatorLoadInProgress.Code, kerr.NotCoordinator.Code, kerr.CoordinatorNotAvailable.Code:
				time.Sleep(10 * time.Millisecond) // the offsets topic is being created
				continue
			}
			t.Fatalf("heartbeat epoch %d: %v", epoch, kerr.ErrorForCode(resp.ErrorCode))
		}
	}
	alter := func(start int64) *kmsg.AlterShareGroupOffsetsResponse {
		t.Helper()
		req := kmsg.NewPtrAlterShareGroupOffsetsRequest()
		req.GroupID = "og"
		req.Topics = []kmsg.AlterShareGroupOffsetsRequestTopic{
			{Topic: "so", Partitions: []kmsg.AlterShareGroupOffsetsRequestTopicPartition{{Partition: 0, StartOffset: start}, {Partition: 9, StartOffset: 1}}},
			{Topic: "nope", Partitions: []kmsg.AlterShareGroupOffsetsRequestTopicPartition{{Partition: 0, StartOffset: 1}}},
		}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	hb(0)
	if resp := alter(4); resp.ErrorCode != kerr.NonEmptyGroup.Code {
		t.Fatalf("alter with a member: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	hb(-1) // the member leaves: the group is empty
	resp := alter(4)
	if resp.ErrorCode != 0 || len(resp.Topics) != 2 || resp.Topics[0].Partitions[0].ErrorCode != 0 ||
		resp.Topics[0].Partitions[1].ErrorCode != kerr.UnknownTopicOrPartition.Code ||
		resp.Topics[1].Partitions[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("alter: %+v", resp)
	}
	// The leader of so-0 would now read start offset 4 at a new state epoch.
	k := share.Key{Group: "og", TopicID: b.topics.get("so").meta().ID, Partition: 0}
	st, found, err := b.readShareState(ctx, k)
	if err != nil || !found || st.StartOffset != 4 || st.StateEpoch != 1 {
		t.Fatalf("state after alter: %+v found %v err %v", st, found, err)
	}
	// Two of the ten records after the start offset are acknowledged.
	st.Batches = []share.StateBatch{{FirstOffset: 4, LastOffset: 5, State: share.Acknowledged, DeliveryCount: 1}}
	if err := b.writeShareState(ctx, k, st); err != nil {
		t.Fatal(err)
	}

	dreq := kmsg.NewPtrDescribeShareGroupOffsetsRequest()
	dreq.Version = 1
	dreq.Groups = []kmsg.DescribeShareGroupOffsetsRequestGroup{{GroupID: "og"}, {GroupID: "og"}} // null topics: all
	dresp, err := dreq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(dresp.Groups) != 1 || dresp.Groups[0].ErrorCode != 0 || len(dresp.Groups[0].Topics) != 1 {
		t.Fatalf("describe: %+v", dresp.Groups)
	}
	parts := dresp.Groups[0].Topics[0].Partitions
	if len(parts) != 2 || parts[0].StartOffset != 4 || parts[0].Lag != 4 || parts[1].StartOffset != -1 || parts[1].Lag != -1 {
		t.Fatalf("describe partitions: %+v, want so-0 at 4 with lag 4 and so-1 without state", parts)
	}

	delReq := kmsg.NewPtrDeleteShareGroupOffsetsRequest()
	delReq.GroupID = "og"
	delReq.Topics = []kmsg.DeleteShareGroupOffsetsRequestTopic{{Topic: "so"}, {Topic: "nope"}}
	delResp, err := delReq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if delResp.ErrorCode != 0 || len(delResp.Topics) != 2 || delResp.Topics[0].ErrorCode != 0 || delResp.Topics[1].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("delete offsets: %+v", delResp)
	}
	if _, found, err := b.readShareState(ctx, k); err != nil || found {
		t.Fatalf("after delete offsets: found %v err %v", found, err)
	}
	delReq.GroupID = "no-such-group"
	if delResp, err = delReq.RequestWith(ctx, cl); err != nil || delResp.ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("delete offsets of no group: %+v %v", delResp, err)
	}
}
