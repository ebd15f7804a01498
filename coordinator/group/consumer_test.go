package group

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func consumerJoin(group, memberID string, topics ...string) *kmsg.ConsumerGroupHeartbeatRequest {
	r := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	r.Version = 1
	if memberID == "" {
		r.Version = 0
	}
	r.Group = group
	r.MemberID = memberID
	r.MemberEpoch = 0
	r.RebalanceTimeoutMillis = 30_000
	r.SubscribedTopicNames = topics
	r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	return r
}

// cclient simulates a KIP-848 consumer: it holds exactly the partitions of
// the last assignment it was given, giving up revoked ones at once.
type cclient struct {
	id       string
	instance *string
	assignor *string
	topics   []string
	epoch    int32
	owned    partSet
	joined   bool
	fenced   int
}

func newCClient(id string, topics ...string) *cclient {
	return &cclient{id: id, topics: topics, owned: make(partSet)}
}

// heartbeat sends one heartbeat (a join if not joined) and applies the
// answer the way a client does.
func (h *harness) cgHeartbeat(group string, cl *cclient) *kmsg.ConsumerGroupHeartbeatResponse {
	h.t.Helper()
	var r *kmsg.ConsumerGroupHeartbeatRequest
	if !cl.joined {
		r = consumerJoin(group, cl.id, cl.topics...)
		r.InstanceID = cl.instance
		r.ServerAssignor = cl.assignor
		cl.owned = make(partSet)
	} else {
		r = kmsg.NewPtrConsumerGroupHeartbeatRequest()
		r.Version = 1
		r.Group, r.MemberID, r.MemberEpoch, r.InstanceID = group, cl.id, cl.epoch, cl.instance
		r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		for _, tp := range sortedParts(cl.owned) {
			if n := len(r.Topics); n > 0 && r.Topics[n-1].TopicID == tp.id {
				r.Topics[n-1].Partitions = append(r.Topics[n-1].Partitions, tp.p)
				continue
			}
			r.Topics = append(r.Topics, kmsg.ConsumerGroupHeartbeatRequestTopic{TopicID: tp.id, Partitions: []int32{tp.p}})
		}
	}
	resp := h.c.ConsumerGroupHeartbeat(h.ctx, r)
	switch resp.ErrorCode {
	case 0:
	case kerr.FencedMemberEpoch.Code, kerr.UnknownMemberID.Code:
		cl.joined, cl.owned, cl.epoch = false, make(partSet), 0
		cl.fenced++
		return resp
	default:
		return resp
	}
	cl.joined = true
	if resp.MemberID != nil {
		cl.id = *resp.MemberID
	}
	cl.epoch = resp.MemberEpoch
	if resp.Assignment != nil {
		cl.owned = make(partSet)
		for _, t := range resp.Assignment.Topics {
			for _, p := range t.Partitions {
				cl.owned[tpid{id: t.TopicID, p: p}] = struct{}{}
			}
		}
	}
	return resp
}

// checkExclusive fails if two clients hold the same partition, or the
// server's ownership bookkeeping disagrees with its members.
func (h *harness) checkExclusive(group string, clients []*cclient) {
	h.t.Helper()
	holder := make(map[tpid]string)
	for _, cl := range clients {
		if !cl.joined {
			continue
		}
		for tp := range cl.owned {
			if other, ok := holder[tp]; ok {
				h.t.Fatalf("partition %v held by %s and %s", tp, other, cl.id)
			}
			holder[tp] = cl.id
		}
	}
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	g := h.c.mu.groups[group]
	if g == nil || g.cg == nil {
		return
	}
	seen := make(map[tpid]string)
	for id, m := range g.cg.members {
		for _, set := range []map[tpid]struct{}{keysOf(m.assigned), m.revoking} {
			for tp := range set {
				if other, ok := seen[tp]; ok && other != id {
					h.t.Fatalf("server: partition %v owned by %s and %s", tp, other, id)
				}
				seen[tp] = id
				if g.cg.owners[tp] != id {
					h.t.Fatalf("server: owners[%v] = %q, member %s holds it", tp, g.cg.owners[tp], id)
				}
			}
		}
	}
	if len(seen) != len(g.cg.owners) {
		h.t.Fatalf("server: %d owned partitions, owners map has %d", len(seen), len(g.cg.owners))
	}
}

// converge heartbeats every client round-robin until the group is Stable.
func (h *harness) converge(group string, clients []*cclient) {
	h.t.Helper()
	for round := 0; round < 20; round++ {
		for _, cl := range clients {
			resp := h.cgHeartbeat(group, cl)
			expectCode(h.t, "heartbeat "+cl.id, resp.ErrorCode, nil)
			h.checkExclusive(group, clients)
		}
		h.c.mu.Lock()
		stable := h.c.mu.groups[group].cg.state() == cgStable
		h.c.mu.Unlock()
		if stable {
			// One more round so every client has seen the final epoch.
			for _, cl := range clients {
				h.cgHeartbeat(group, cl)
			}
			return
		}
	}
	h.t.Fatal("group did not converge")
}

func TestGroupConsumerUniformReconciliation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tid := h.topic("t", 6)
	a, b := newCClient("member-a", "t"), newCClient("member-b", "t")
	clients := []*cclient{a, b}
	h.converge("g", clients)
	for _, cl := range clients {
		if len(cl.owned) != 3 {
			t.Fatalf("%s owns %d partitions, want 3", cl.id, len(cl.owned))
		}
	}
	before := maps.Clone(a.owned)
	epochBefore := a.epoch
	c := newCClient("member-c", "t")
	clients = append(clients, c)
	h.converge("g", clients)
	all := make(partSet)
	for _, cl := range clients {
		if len(cl.owned) != 2 {
			t.Fatalf("%s owns %d partitions, want 2", cl.id, len(cl.owned))
		}
		for tp := range cl.owned {
			if tp.id != tid {
				t.Fatalf("unknown topic id in assignment")
			}
			all[tp] = struct{}{}
		}
		if cl.epoch <= epochBefore {
			t.Fatalf("%s at epoch %d, not past %d", cl.id, cl.epoch, epochBefore)
		}
	}
	if len(all) != 6 {
		t.Fatalf("%d partitions assigned, want 6", len(all))
	}
	kept := 0
	for tp := range a.owned {
		if _, ok := before[tp]; ok {
			kept++
		}
	}
	if kept != 2 {
		t.Fatalf("uniform assignor moved more than needed: a kept %d of its partitions", kept)
	}

	// Describe shows the converged group.
	d := kmsg.NewPtrConsumerGroupDescribeRequest()
	d.Version = 1
	d.Groups = []string{"g", "nobody", ""}
	resp := h.c.ConsumerGroupDescribe(h.ctx, d)
	dg := resp.Groups[0]
	if dg.State != "Stable" || len(dg.Members) != 3 || dg.AssignorName != AssignorUniform || dg.Epoch != dg.AssignmentEpoch {
		t.Fatalf("describe: %+v", dg)
	}
	for _, m := range dg.Members {
		if len(m.Assignment.TopicPartitions) != 1 || m.Assignment.TopicPartitions[0].Topic != "t" || m.MemberType != 1 {
			t.Fatalf("member %s: %+v", m.MemberID, m.Assignment)
		}
	}
	expectCode(t, "describe missing", resp.Groups[1].ErrorCode, kerr.GroupIDNotFound)
	expectCode(t, "describe empty id", resp.Groups[2].ErrorCode, kerr.InvalidGroupID)

	// A leaving member's partitions go to the others.
	leave := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	leave.Version = 1
	leave.Group, leave.MemberID, leave.MemberEpoch = "g", c.id, -1
	lr := h.c.ConsumerGroupHeartbeat(h.ctx, leave)
	if lr.ErrorCode != 0 || lr.MemberEpoch != -1 {
		t.Fatalf("leave: %+v", lr)
	}
	c.joined = false
	h.converge("g", clients[:2])
	if len(a.owned)+len(b.owned) != 6 {
		t.Fatalf("after leave a=%d b=%d", len(a.owned), len(b.owned))
	}
	if got := h.c.Stats().Rebalances[ReasonMemberLeft]; got != 1 {
		t.Fatalf("rebalances by member left = %d, want 1", got)
	}
}

func TestGroupConsumerRangeAssignor(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("x", 3)
	h.topic("y", 3)
	clients := []*cclient{newCClient("m1", "x", "y"), newCClient("m2", "x", "y")}
	for _, cl := range clients {
		cl.assignor = kmsg.StringPtr(AssignorRange)
	}
	h.converge("g", clients)
	// Range: m1 gets partitions 0,1 of each topic, m2 partition 2.
	if len(clients[0].owned) != 4 || len(clients[1].owned) != 2 {
		t.Fatalf("range: m1 %d m2 %d", len(clients[0].owned), len(clients[1].owned))
	}
	r := consumerJoin("g", "m3", "x")
	r.ServerAssignor = kmsg.StringPtr("sticky")
	expectCode(t, "unknown assignor", h.c.ConsumerGroupHeartbeat(h.ctx, r).ErrorCode, kerr.UnsupportedAssignor)
}

func TestGroupConsumerHeartbeatErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 2)
	a := newCClient("a", "t")
	h.converge("g", []*cclient{a})
	h.topic("t", 3) // a metadata change moves the member to epoch 2
	h.converge("g", []*cclient{a})
	if a.epoch != 2 {
		t.Fatalf("epoch %d, want 2", a.epoch)
	}
	hb := func(mutate func(*kmsg.ConsumerGroupHeartbeatRequest)) int16 {
		r := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		r.Version = 1
		r.Group, r.MemberID, r.MemberEpoch = "g", a.id, a.epoch
		mutate(r)
		return h.c.ConsumerGroupHeartbeat(h.ctx, r).ErrorCode
	}
	for _, tc := range []struct {
		name   string
		mutate func(*kmsg.ConsumerGroupHeartbeatRequest)
		want   *kerr.Error
	}{
		{"ok", func(*kmsg.ConsumerGroupHeartbeatRequest) {}, nil},
		{"empty group", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.Group = "" }, kerr.InvalidRequest},
		{"v1 without member id", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberID = "" }, kerr.InvalidRequest},
		{"epoch ahead", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberEpoch += 5 }, kerr.FencedMemberEpoch},
		{"previous epoch without owned partitions", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberEpoch = 1 }, kerr.FencedMemberEpoch},
		{"previous epoch owning a subset", func(r *kmsg.ConsumerGroupHeartbeatRequest) {
			r.MemberEpoch = 1
			r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		}, nil},
		{"unknown member", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberID = "ghost" }, kerr.UnknownMemberID},
		{"unknown group", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.Group = "ghost-group" }, kerr.UnknownMemberID},
		{"join without rebalance timeout", func(r *kmsg.ConsumerGroupHeartbeatRequest) {
			r.MemberEpoch, r.SubscribedTopicNames, r.Topics = 0, []string{"t"}, []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		}, kerr.InvalidRequest},
		{"join with owned partitions", func(r *kmsg.ConsumerGroupHeartbeatRequest) {
			r.MemberEpoch, r.RebalanceTimeoutMillis, r.SubscribedTopicNames = 0, 1000, []string{"t"}
			r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{{Partitions: []int32{0}}}
		}, kerr.InvalidRequest},
		{"bad regex", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.SubscribedTopicRegex = kmsg.StringPtr("(") }, kerr.InvalidRegularExpression},
		{"static leave without instance id", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberEpoch = -2 }, kerr.InvalidRequest},
	} {
		expectCode(t, tc.name, hb(tc.mutate), tc.want)
	}
	// A classic group with members cannot be joined through KIP-848, and
	// a KIP-848 group with members not through JoinGroup.
	h.stableGroup("classic", 1)
	expectCode(t, "join classic group", h.c.ConsumerGroupHeartbeat(h.ctx, consumerJoin("classic", "x", "t")).ErrorCode, kerr.GroupIDNotFound)
	expectCode(t, "JoinGroup on consumer group", h.c.JoinGroup(h.ctx, joinReq("g", "", nil, "t")).ErrorCode, kerr.InconsistentGroupProtocol)
	expectCode(t, "Heartbeat on consumer group", h.heartbeat("g", a.id, 1, nil), kerr.UnknownMemberID)
}

func TestGroupConsumerV0ServerMemberID(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 1)
	resp := h.c.ConsumerGroupHeartbeat(h.ctx, consumerJoin("g", "", "t"))
	expectCode(t, "v0 join", resp.ErrorCode, nil)
	if resp.MemberID == nil || len(*resp.MemberID) != 36 || resp.MemberEpoch != 1 || resp.HeartbeatIntervalMillis != 5000 {
		t.Fatalf("v0 join response: %+v", resp)
	}
	if resp.Assignment == nil || len(resp.Assignment.Topics) != 1 {
		t.Fatalf("single member did not get the partition: %+v", resp.Assignment)
	}
}

func TestGroupConsumerStaticMemberRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 4)
	a, b := newCClient("a-1", "t"), newCClient("b-1", "t")
	a.instance, b.instance = kmsg.StringPtr("ia"), kmsg.StringPtr("ib")
	h.converge("g", []*cclient{a, b})
	held := maps.Clone(a.owned)
	rebalances := h.c.Stats().Rebalances

	// a leaves temporarily (-2) and restarts with a new member id.
	r := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	r.Version = 1
	r.Group, r.MemberID, r.MemberEpoch, r.InstanceID = "g", a.id, -2, a.instance
	if resp := h.c.ConsumerGroupHeartbeat(h.ctx, r); resp.ErrorCode != 0 || resp.MemberEpoch != -2 {
		t.Fatalf("static leave: %+v", resp)
	}
	// Another process claiming the instance while a is active is refused.
	taken := consumerJoin("g", "b-2", "t")
	taken.InstanceID = b.instance
	expectCode(t, "unreleased instance", h.c.ConsumerGroupHeartbeat(h.ctx, taken).ErrorCode, kerr.UnreleasedInstanceID)

	a2 := newCClient("a-2", "t")
	a2.instance = a.instance
	resp := h.cgHeartbeat("g", a2)
	expectCode(t, "static rejoin", resp.ErrorCode, nil)
	if !maps.Equal(a2.owned, held) {
		t.Fatalf("restarted static member got %v, held %v", a2.owned, held)
	}
	if got := h.c.Stats().Rebalances; !maps.Equal(got, rebalances) {
		t.Fatalf("static restart rebalanced: %v -> %v", rebalances, got)
	}
	// The old incarnation is gone.
	old := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	old.Version = 1
	old.Group, old.MemberID, old.MemberEpoch = "g", a.id, a.epoch
	expectCode(t, "old incarnation", h.c.ConsumerGroupHeartbeat(h.ctx, old).ErrorCode, kerr.UnknownMemberID)
	h.converge("g", []*cclient{a2, b})
}

func TestGroupConsumerSessionAndRevocationTimeouts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 4)
	a, b := newCClient("a", "t"), newCClient("b", "t")
	h.converge("g", []*cclient{a})
	// b joins; a is asked to revoke two partitions but never heartbeats
	// again: its session (45s) ends it, and b gets everything.
	expectCode(t, "b join", h.cgHeartbeat("g", b).ErrorCode, nil)
	if len(b.owned) != 0 {
		t.Fatalf("b got %d partitions a still owns", len(b.owned))
	}
	for range 8 {
		h.clock.Advance(5 * time.Second)
		expectCode(t, "b heartbeat", h.cgHeartbeat("g", b).ErrorCode, nil)
		h.checkExclusive("g", []*cclient{a, b})
	}
	a.joined = false // from here on a's session is over
	for range 2 {
		h.clock.Advance(5 * time.Second)
		expectCode(t, "b heartbeat", h.cgHeartbeat("g", b).ErrorCode, nil)
		h.checkExclusive("g", []*cclient{b})
	}
	if len(b.owned) != 4 {
		t.Fatalf("after a's session expired b owns %d", len(b.owned))
	}
	if got := h.c.Stats().Rebalances[ReasonSessionExpired]; got != 1 {
		t.Fatalf("session expiries = %d", got)
	}

	// Revocation timeout: c joins, b is told to revoke and keeps
	// heartbeating while still claiming the partitions; after its
	// rebalance timeout (30s) it is fenced.
	c := newCClient("c", "t")
	expectCode(t, "c join", h.cgHeartbeat("g", c).ErrorCode, nil)
	stubborn := maps.Clone(b.owned)
	for range 8 {
		h.clock.Advance(5 * time.Second)
		b.owned = maps.Clone(stubborn) // refuses to give anything up
		h.cgHeartbeat("g", b)
		h.cgHeartbeat("g", c)
	}
	if b.fenced == 0 {
		t.Fatal("a member that never revoked was not fenced")
	}
	if got := h.c.Stats().Rebalances[ReasonRebalanceTimeout]; got != 1 {
		t.Fatalf("rebalance timeouts = %d", got)
	}
}

func TestGroupConsumerMetadataChange(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 2)
	a, b := newCClient("a", "t", "later"), newCClient("b", "t")
	clients := []*cclient{a, b}
	h.converge("g", clients)
	h.topic("t", 4)     // partitions added
	h.topic("later", 2) // a subscribed topic appears
	h.converge("g", clients)
	if n := len(a.owned) + len(b.owned); n != 6 {
		t.Fatalf("%d partitions owned after metadata change, want 6", n)
	}
	if h.c.Stats().Rebalances[ReasonMetadataChanged] == 0 {
		t.Fatal("no metadata-change rebalance counted")
	}
}

func TestGroupConsumerRegexSubscription(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("orders-eu", 1)
	h.topic("orders-us", 1)
	h.topic("payments", 1)
	r := consumerJoin("g", "m", "")
	r.SubscribedTopicNames = nil
	r.SubscribedTopicRegex = kmsg.StringPtr("orders-.*")
	resp := h.c.ConsumerGroupHeartbeat(h.ctx, r)
	expectCode(t, "regex join", resp.ErrorCode, nil)
	if resp.Assignment == nil || len(resp.Assignment.Topics) != 2 {
		t.Fatalf("regex assignment: %+v", resp.Assignment)
	}
	// Without ListTopics regexes are refused.
	h2 := newHarness(t, func(c *Config) { c.ListTopics = nil })
	expectCode(t, "regex unsupported", h2.c.ConsumerGroupHeartbeat(h2.ctx, r).ErrorCode, kerr.InvalidRequest)
}

func TestGroupConsumerOffsetCommit(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 2)
	a := newCClient("a", "t")
	h.converge("g", []*cclient{a})
	commit := func(version int16, member string, epoch int32) int16 {
		r := kmsg.NewPtrOffsetCommitRequest()
		r.Version = version
		r.Group, r.MemberID, r.Generation = "g", member, epoch
		r.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 9}}}}
		return h.c.OffsetCommit(h.ctx, r).Topics[0].Partitions[0].ErrorCode
	}
	expectCode(t, "member commit", commit(9, a.id, a.epoch), nil)
	expectCode(t, "old version", commit(8, a.id, a.epoch), kerr.UnsupportedVersion)
	expectCode(t, "epoch ahead", commit(9, a.id, a.epoch+1), kerr.FencedMemberEpoch)
	expectCode(t, "epoch before assignment", commit(9, a.id, 0), kerr.StaleMemberEpoch)
	expectCode(t, "unknown member", commit(9, "ghost", a.epoch), kerr.UnknownMemberID)
	expectCode(t, "simple commit with members", commit(9, "", -1), kerr.UnknownMemberID)
	// OffsetFetch v9 checks the member epoch.
	f := kmsg.NewPtrOffsetFetchRequest()
	f.Version = 9
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group, rg.MemberID, rg.MemberEpoch = "g", kmsg.StringPtr(a.id), a.epoch-1
	rg.Topics = []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{0}}}
	f.Groups = append(f.Groups, rg)
	expectCode(t, "fetch stale epoch", h.c.OffsetFetch(h.ctx, f).Groups[0].ErrorCode, kerr.StaleMemberEpoch)
	f.Groups[0].MemberEpoch = a.epoch
	if got := h.c.OffsetFetch(h.ctx, f).Groups[0].Topics[0].Partitions[0].Offset; got != 9 {
		t.Fatalf("fetched %d", got)
	}
}

func TestGroupConsumerEmptyGroupSwitchesToClassic(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 1)
	a := newCClient("a", "t")
	h.converge("g", []*cclient{a})
	expectCode(t, "commit", h.commit("g", "", -1, "t", 0, 1), kerr.UnknownMemberID)
	leave := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	leave.Version = 1
	leave.Group, leave.MemberID, leave.MemberEpoch = "g", a.id, -1
	expectCode(t, "leave", h.c.ConsumerGroupHeartbeat(h.ctx, leave).ErrorCode, nil)
	expectCode(t, "simple commit to empty consumer group", h.commit("g", "", -1, "t", 0, 4), nil)
	ids, _, _ := h.stableGroup("g", 1)
	if len(ids) != 1 || h.fetch("g", "t", 0) != 4 {
		t.Fatal("switch to classic lost the group's offsets")
	}
	// The log now says "classic": a reload agrees.
	c2 := h.newCoordinator()
	p := PartitionFor("g", testPartitions)
	c2.Load(p, h.store.records(p))
	if g := groupOf(c2, "g"); g == nil || g.kind != kindClassic || g.state != stateStable {
		t.Fatalf("reloaded group: %+v", g)
	}
}

func TestGroupUniformAssignorBalance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		members, partitions int
	}{{1, 5}, {2, 5}, {3, 7}, {5, 3}, {4, 16}} {
		t.Run(fmt.Sprintf("%dx%d", tc.members, tc.partitions), func(t *testing.T) {
			t.Parallel()
			in := assignInput{subs: map[string]map[string]bool{}, topics: map[string]topicMeta{"t": {name: "t", id: [16]byte{1}, partitions: int32(tc.partitions)}}, prev: map[string]partSet{}}
			for i := range tc.members {
				id := fmt.Sprintf("m%d", i)
				in.members = append(in.members, id)
				in.subs[id] = map[string]bool{"t": true}
			}
			// Start from everything on the first member: stickiness
			// must not prevent balance.
			in.prev["m0"] = make(partSet)
			for p := range int32(tc.partitions) {
				in.prev["m0"][tpid{id: [16]byte{1}, p: p}] = struct{}{}
			}
			out := assign(AssignorUniform, in)
			total, lo, hi := 0, tc.partitions, 0
			for _, id := range in.members {
				n := len(out[id])
				total += n
				lo, hi = min(lo, n), max(hi, n)
			}
			if total != tc.partitions || hi-lo > 1 {
				t.Fatalf("total %d (want %d), spread %d..%d", total, tc.partitions, lo, hi)
			}
			again := assign(AssignorUniform, assignInput{members: in.members, subs: in.subs, topics: in.topics, prev: out})
			for _, id := range in.members {
				if !maps.Equal(again[id], out[id]) {
					t.Fatalf("assignor not stable on its own output: %v vs %v", sortedParts(out[id]), sortedParts(again[id]))
				}
			}
		})
	}
}

func TestConsumerGroupOwnTimings(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) {
		c.ConsumerSettings = func(group string) (time.Duration, time.Duration) {
			if group == "own" {
				return 2 * time.Second, 10 * time.Second
			}
			return 0, 0 // the broker-wide defaults
		}
	})
	h.topic("t", 2)
	own := h.c.ConsumerGroupHeartbeat(h.ctx, consumerJoin("own", "a", "t"))
	other := h.c.ConsumerGroupHeartbeat(h.ctx, consumerJoin("other", "b", "t"))
	expectCode(t, "join own", own.ErrorCode, nil)
	expectCode(t, "join other", other.ErrorCode, nil)
	if own.HeartbeatIntervalMillis != 2000 || other.HeartbeatIntervalMillis != int32(DefaultConsumerHeartbeatInterval.Milliseconds()) {
		t.Fatalf("heartbeat intervals: own %d, other %d", own.HeartbeatIntervalMillis, other.HeartbeatIntervalMillis)
	}
	// Past the group's own 10 s session, short of the default 45 s.
	h.clock.Advance(11 * time.Second)
	beat := func(group, member string, epoch int32) int16 {
		r := consumerJoin(group, member)
		r.MemberEpoch = epoch
		r.SubscribedTopicNames = nil
		return h.c.ConsumerGroupHeartbeat(h.ctx, r).ErrorCode
	}
	expectCode(t, "own member after its session", beat("own", "a", own.MemberEpoch), kerr.UnknownMemberID)
	expectCode(t, "other member within the default session", beat("other", "b", other.MemberEpoch), nil)
}
