package group

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestGroupOffsetCommitValidation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 4)
	ids, _, gen := h.stableGroup("g", 2)
	for _, tc := range []struct {
		name      string
		group     string
		member    string
		gen       int32
		partition int32
		version   int16
		want      *kerr.Error
	}{
		{"member, right generation", "g", ids[0], gen, 0, 8, nil},
		{"member, wrong generation", "g", ids[0], gen + 1, 0, 8, kerr.IllegalGeneration},
		{"unknown member", "g", "stranger", gen, 0, 8, kerr.UnknownMemberID},
		{"simple commit to a group with members", "g", "", -1, 0, 8, kerr.UnknownMemberID},
		{"simple commit creates a group", "simple", "", -1, 1, 8, nil},
		{"generation for a missing group, v8", "missing", "m", 1, 0, 8, kerr.IllegalGeneration},
		{"generation for a missing group, v9", "missing", "m", 1, 0, 9, kerr.GroupIDNotFound},
		{"unknown partition", "simple", "", -1, 9, 8, kerr.UnknownTopicOrPartition},
		{"empty group id is allowed", "", "", -1, 0, 8, nil},
	} {
		r := kmsg.NewPtrOffsetCommitRequest()
		r.Version = tc.version
		r.Group, r.MemberID, r.Generation = tc.group, tc.member, tc.gen
		r.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: tc.partition, Offset: 42, LeaderEpoch: -1}}}}
		resp := h.c.OffsetCommit(h.ctx, r)
		expectCode(t, tc.name, resp.Topics[0].Partitions[0].ErrorCode, tc.want)
		if want := int64(42); tc.want == nil && h.fetch(tc.group, "t", tc.partition) != want {
			t.Fatalf("%s: committed offset not visible", tc.name)
		}
	}
	if groupOf(h.c, "missing") != nil {
		t.Fatal("a rejected commit created a group")
	}
	// Metadata over offset.metadata.max.bytes is refused per partition.
	r := kmsg.NewPtrOffsetCommitRequest()
	r.Group, r.Generation = "simple", -1
	r.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{
		{Partition: 0, Offset: 1, Metadata: kmsg.StringPtr(strings.Repeat("x", 5000))},
		{Partition: 1, Offset: 2},
	}}}
	resp := h.c.OffsetCommit(h.ctx, r)
	expectCode(t, "large metadata", resp.Topics[0].Partitions[0].ErrorCode, kerr.OffsetMetadataTooLarge)
	expectCode(t, "next partition", resp.Topics[0].Partitions[1].ErrorCode, nil)
}

func TestGroupOffsetCommitDuringRebalance(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 1)
	a, b := h.memberID("g", "t"), h.memberID("g", "t")
	ca, cb := h.joinAsync(joinReq("g", a, nil, "t")), h.joinAsync(joinReq("g", b, nil, "t"))
	ra, _ := recv(t, ca), recv(t, cb)
	expectCode(t, "completing rebalance", h.commit("g", a, ra.Generation, "t", 0, 1), kerr.RebalanceInProgress)
	h.syncAll("g", []string{a, b}, ra.LeaderID, ra.Generation, map[string][]byte{a: []byte("a"), b: []byte("b")})
	expectCode(t, "stable", h.commit("g", a, ra.Generation, "t", 0, 2), nil)
	// While preparing the next rebalance, the old generation may still commit.
	cl := h.joinAsync(joinReq("g", ra.LeaderID, nil, "t"))
	h.waitParkedJoins("g", 1)
	expectCode(t, "preparing rebalance", h.commit("g", a, ra.Generation, "t", 0, 3), nil)
	if got := h.fetch("g", "t", 0); got != 3 {
		t.Fatalf("committed %d, want 3", got)
	}
	_ = cl
}

func TestGroupOffsetCommitPersistFailure(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want *kerr.Error
	}{
		{errInjected, kerr.CoordinatorNotAvailable},
		{fmt.Errorf("append: %w", kerr.NotLeaderForPartition), kerr.NotCoordinator},
		{fmt.Errorf("append: %w", kerr.MessageTooLarge), kerr.InvalidCommitOffsetSize},
	} {
		h := newHarness(t)
		h.topic("t", 1)
		h.store.setFail(tc.err)
		expectCode(t, tc.err.Error(), h.commit("g", "", -1, "t", 0, 5), tc.want)
		h.store.setFail(nil)
		if got := h.fetch("g", "t", 0); got != -1 {
			t.Fatalf("failed commit is visible: %d", got)
		}
		if groupOf(h.c, "g") != nil {
			t.Fatal("failed simple commit left a group")
		}
	}
}

func TestGroupOffsetFetchVersions(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("a", 2)
	h.topic("b", 1)
	expectCode(t, "commit a0", h.commit("g", "", -1, "a", 0, 10), nil)
	expectCode(t, "commit b0", h.commit("g", "", -1, "b", 0, 20), nil)

	// v1: explicit partitions, no top-level error; unknown -> -1.
	r := kmsg.NewPtrOffsetFetchRequest()
	r.Version = 1
	r.Group = "g"
	r.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "a", Partitions: []int32{0, 1}}}
	resp := h.c.OffsetFetch(h.ctx, r)
	if len(resp.Topics) != 1 || resp.Topics[0].Partitions[0].Offset != 10 || resp.Topics[0].Partitions[1].Offset != -1 {
		t.Fatalf("v1 fetch: %+v", resp.Topics)
	}
	// v5: null topics means all, with leader epochs.
	r = kmsg.NewPtrOffsetFetchRequest()
	r.Version = 7
	r.Group = "g"
	resp = h.c.OffsetFetch(h.ctx, r)
	if len(resp.Topics) != 2 || resp.Topics[1].Partitions[0].Offset != 20 || resp.Topics[0].Partitions[0].LeaderEpoch != 3 {
		t.Fatalf("v7 fetch all: %+v", resp.Topics)
	}
	if m := resp.Topics[0].Partitions[0].Metadata; m == nil || *m != "meta" {
		t.Fatalf("metadata %v", m)
	}
	// v8: several groups, one unknown (no error, -1) and one on an
	// unloaded partition.
	var other string
	for i := 0; ; i++ {
		other = fmt.Sprintf("other-%d", i)
		if p := PartitionFor(other, testPartitions); p != PartitionFor("g", testPartitions) && p != PartitionFor("nobody", testPartitions) {
			break
		}
	}
	h.c.Unload(PartitionFor(other, testPartitions))
	r = kmsg.NewPtrOffsetFetchRequest()
	r.Version = 8
	for _, id := range []string{"g", "nobody", other} {
		rg := kmsg.NewOffsetFetchRequestGroup()
		rg.Group = id
		rg.Topics = []kmsg.OffsetFetchRequestGroupTopic{{Topic: "a", Partitions: []int32{0}}}
		r.Groups = append(r.Groups, rg)
	}
	resp = h.c.OffsetFetch(h.ctx, r)
	if resp.Groups[0].Topics[0].Partitions[0].Offset != 10 || resp.Groups[1].Topics[0].Partitions[0].Offset != -1 {
		t.Fatalf("v8 fetch: %+v", resp.Groups)
	}
	expectCode(t, "v8 unloaded group", resp.Groups[2].ErrorCode, kerr.NotCoordinator)
	// v2-7 carry the group error at the top.
	r = kmsg.NewPtrOffsetFetchRequest()
	r.Version = 3
	r.Group = other
	expectCode(t, "v3 unloaded group", h.c.OffsetFetch(h.ctx, r).ErrorCode, kerr.NotCoordinator)
}

func TestGroupOffsetFetchRequireStable(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 1)
	expectCode(t, "commit", h.commit("g", "", -1, "t", 0, 1), nil)
	gate := make(chan struct{})
	h.store.mu.Lock()
	h.store.gate = gate
	h.store.mu.Unlock()
	done := make(chan int16, 1)
	go func() { done <- h.commit("g", "", -1, "t", 0, 2) }()
	waitFor(t, "commit in flight", func() bool {
		h.c.mu.Lock()
		defer h.c.mu.Unlock()
		return h.c.mu.groups["g"].inflight[topicPartition{"t", 0}] > 0
	})
	fetch := func(stable bool) kmsg.OffsetFetchResponseGroupTopicPartition {
		r := kmsg.NewPtrOffsetFetchRequest()
		r.Version = 8
		r.RequireStable = stable
		rg := kmsg.NewOffsetFetchRequestGroup()
		rg.Group = "g"
		rg.Topics = []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{0}}}
		r.Groups = append(r.Groups, rg)
		return h.c.OffsetFetch(h.ctx, r).Groups[0].Topics[0].Partitions[0]
	}
	if p := fetch(false); p.ErrorCode != 0 || p.Offset != 1 {
		t.Fatalf("unstable fetch: %+v", p)
	}
	expectCode(t, "require stable", fetch(true).ErrorCode, kerr.UnstableOffsetCommit)
	close(gate)
	expectCode(t, "gated commit", recv(t, done), nil)
	if p := fetch(true); p.ErrorCode != 0 || p.Offset != 2 {
		t.Fatalf("stable fetch after commit: %+v", p)
	}
}

func TestGroupOffsetExpiry(t *testing.T) {
	t.Parallel()
	const retention = 24 * time.Hour
	h := newHarness(t, func(c *Config) {
		c.OffsetsRetention = retention
		c.OffsetsRetentionCheckInterval = time.Hour
	})
	h.topic("t", 1)
	h.topic("u", 1)
	// A simple group expires from its commit time.
	expectCode(t, "simple commit", h.commit("simple", "", -1, "t", 0, 1), nil)
	// A consumer group: commits while Stable do not expire; once it is
	// Empty, retention counts from when it became empty.
	ids, _, gen := h.stableGroup("cg", 1)
	expectCode(t, "member commit", h.commit("cg", ids[0], gen, "t", 0, 7), nil)
	expectCode(t, "member commit, unsubscribed topic", h.commit("cg", ids[0], gen, "u", 0, 8), nil)

	keepAlive := func(d time.Duration) {
		for elapsed := time.Duration(0); elapsed < d; elapsed += 5 * time.Second {
			h.clock.Advance(5 * time.Second)
			h.heartbeat("cg", ids[0], gen, nil)
		}
	}
	keepAlive(retention + time.Hour)
	if got := h.fetch("simple", "t", 0); got != -1 {
		t.Fatalf("simple group offset survived retention: %d", got)
	}
	if groupOf(h.c, "simple") != nil {
		t.Fatal("empty simple group without offsets was not deleted")
	}
	if h.fetch("cg", "t", 0) != 7 {
		t.Fatal("a Stable group's subscribed offset expired")
	}
	if h.fetch("cg", "u", 0) != -1 {
		t.Fatal("a Stable group's unsubscribed offset did not expire")
	}
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Version = 5
	leave.Group = "cg"
	leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: ids[0]}}
	h.c.LeaveGroup(h.ctx, leave)
	if d := h.describe("cg"); d.State != "Empty" {
		t.Fatalf("state %s after the last member left", d.State)
	}
	h.clock.Advance(retention - 2*time.Hour)
	if h.fetch("cg", "t", 0) != 7 {
		t.Fatal("offset expired before retention counted from emptiness")
	}
	h.clock.Advance(3 * time.Hour)
	if got := h.fetch("cg", "t", 0); got != -1 {
		t.Fatalf("offset survived retention after the group emptied: %d", got)
	}
	if d := h.describe("cg"); d.State != "Dead" {
		t.Fatalf("state %s after every offset expired", d.State)
	}
	if s := h.c.Stats(); s.OffsetsExpired != 3 {
		t.Fatalf("OffsetsExpired = %d, want 3", s.OffsetsExpired)
	}
	// A restart replays the tombstones: nothing comes back.
	c2 := h.newCoordinator()
	for p := range int32(testPartitions) {
		c2.Load(p, h.store.records(p))
	}
	for _, g := range []string{"simple", "cg"} {
		if groupOf(c2, g) != nil {
			t.Fatalf("group %s came back after reload", g)
		}
	}
}

func TestGroupOffsetExpiryExplicitRetention(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.OffsetsRetentionCheckInterval = time.Minute })
	h.topic("t", 1)
	r := kmsg.NewPtrOffsetCommitRequest()
	r.Version = 2
	r.Group, r.Generation, r.RetentionTimeMillis = "g", -1, 10*60*1000
	r.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 5}}}}
	expectCode(t, "v2 commit", h.c.OffsetCommit(h.ctx, r).Topics[0].Partitions[0].ErrorCode, nil)
	h.clock.Advance(9 * time.Minute)
	if h.fetch("g", "t", 0) != 5 {
		t.Fatal("expired early")
	}
	h.clock.Advance(2 * time.Minute)
	if h.fetch("g", "t", 0) != -1 {
		t.Fatal("explicit retention ignored")
	}
}

func TestGroupDeleteGroups(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 2)
	h.stableGroup("busy", 1)
	expectCode(t, "commit", h.commit("idle", "", -1, "t", 0, 1), nil)
	expectCode(t, "commit", h.commit("idle", "", -1, "t", 1, 1), nil)
	p := PartitionFor("idle", testPartitions)
	before := h.store.tombstones(p)
	r := kmsg.NewPtrDeleteGroupsRequest()
	r.Version = 2
	r.Groups = []string{"busy", "idle", "nobody", ""}
	resp := h.c.DeleteGroups(h.ctx, r)
	expectCode(t, "busy", resp.Groups[0].ErrorCode, kerr.NonEmptyGroup)
	expectCode(t, "idle", resp.Groups[1].ErrorCode, nil)
	expectCode(t, "nobody", resp.Groups[2].ErrorCode, kerr.GroupIDNotFound)
	expectCode(t, "empty id", resp.Groups[3].ErrorCode, kerr.GroupIDNotFound)
	if got := h.store.tombstones(p) - before; got < 2 {
		t.Fatalf("%d tombstones written for a group with 2 offsets", got)
	}
	if h.fetch("idle", "t", 0) != -1 {
		t.Fatal("offsets survived DeleteGroups")
	}
}

func TestGroupOffsetDelete(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 1)
	h.topic("other", 1)
	ids, _, gen := h.stableGroup("g", 1) // subscribed to "t"
	expectCode(t, "commit t", h.commit("g", ids[0], gen, "t", 0, 1), nil)
	expectCode(t, "commit other", h.commit("g", ids[0], gen, "other", 0, 1), nil)
	expectCode(t, "commit simple", h.commit("simple", "", -1, "t", 0, 1), nil)
	del := func(group string, topics ...string) *kmsg.OffsetDeleteResponse {
		r := kmsg.NewPtrOffsetDeleteRequest()
		r.Group = group
		for _, tp := range topics {
			r.Topics = append(r.Topics, kmsg.OffsetDeleteRequestTopic{Topic: tp, Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}})
		}
		return h.c.OffsetDelete(h.ctx, r)
	}
	resp := del("g", "t", "other")
	expectCode(t, "group", resp.ErrorCode, nil)
	expectCode(t, "subscribed topic", resp.Topics[0].Partitions[0].ErrorCode, kerr.GroupSubscribedToTopic)
	expectCode(t, "unsubscribed topic", resp.Topics[1].Partitions[0].ErrorCode, nil)
	if h.fetch("g", "t", 0) != 1 || h.fetch("g", "other", 0) != -1 {
		t.Fatal("OffsetDelete removed the wrong offsets")
	}
	resp = del("simple", "t")
	expectCode(t, "empty group", resp.Topics[0].Partitions[0].ErrorCode, nil)
	if h.fetch("simple", "t", 0) != -1 {
		t.Fatal("offset of an empty group not deleted")
	}
	expectCode(t, "missing group", del("nobody", "t").ErrorCode, kerr.GroupIDNotFound)
	expectCode(t, "empty group id", del("", "t").ErrorCode, kerr.InvalidGroupID)
}

func TestGroupListAndDescribe(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 2)
	h.stableGroup("classic", 1)
	expectCode(t, "commit", h.commit("simple", "", -1, "t", 0, 1), nil)
	cgh := consumerJoin("modern", "", "t")
	expectCode(t, "consumer join", h.c.ConsumerGroupHeartbeat(h.ctx, cgh).ErrorCode, nil)
	list := func(states, types []string) map[string]kmsg.ListGroupsResponseGroup {
		r := kmsg.NewPtrListGroupsRequest()
		r.Version = 5
		r.StatesFilter, r.TypesFilter = states, types
		out := make(map[string]kmsg.ListGroupsResponseGroup)
		for _, g := range h.c.ListGroups(h.ctx, r).Groups {
			out[g.Group] = g
		}
		return out
	}
	all := list(nil, nil)
	if len(all) != 3 || all["classic"].GroupState != "Stable" || all["modern"].GroupType != "consumer" || all["simple"].ProtocolType != "" {
		t.Fatalf("list: %+v", all)
	}
	if got := list([]string{"stable"}, nil); len(got) != 2 {
		t.Fatalf("state filter: %+v", got)
	}
	if got := list(nil, []string{"Classic"}); len(got) != 2 || got["modern"].Group != "" {
		t.Fatalf("type filter: %+v", got)
	}
	if d := h.describe("modern"); d.State != "Dead" || d.ErrorCode != 0 {
		t.Fatalf("describing a consumer group through DescribeGroups: %+v", d)
	}
	r := kmsg.NewPtrDescribeGroupsRequest()
	r.Version = 6
	r.Groups = []string{"nobody"}
	expectCode(t, "describe v6 missing", h.c.DescribeGroups(h.ctx, r).Groups[0].ErrorCode, kerr.GroupIDNotFound)
	s := h.c.Stats()
	if s.Groups[GroupStateKey{"classic", "Stable"}] != 1 || s.Groups[GroupStateKey{"consumer", "Stable"}] != 1 || s.Members != 2 || s.LoadedPartitions != testPartitions {
		t.Fatalf("stats: %+v", s)
	}
	var offsets int
	h.c.CommittedOffsets(func(group, topic string, partition int32, offset int64) {
		if group == "simple" && topic == "t" && partition == 0 && offset == 1 {
			offsets++
		}
	})
	if offsets != 1 {
		t.Fatal("CommittedOffsets missed the committed offset")
	}
}
