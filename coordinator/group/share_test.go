package group

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// shareClient simulates a share consumer: it keeps the last assignment and
// epoch it was given.
type shareClient struct {
	id       string
	topics   []string
	epoch    int32
	assigned partSet
	joined   bool
}

func newShareClient(n int, topics ...string) *shareClient {
	return &shareClient{id: fmt.Sprintf("00000000-0000-4000-8000-%012d", n), topics: topics, assigned: make(partSet)}
}

func shareReq(group, memberID string, epoch int32, topics []string) *kmsg.ShareGroupHeartbeatRequest {
	r := kmsg.NewPtrShareGroupHeartbeatRequest()
	r.Version = 1
	r.GroupID, r.MemberID, r.MemberEpoch = group, memberID, epoch
	r.SubscribedTopicNames = topics
	return r
}

// shb sends one heartbeat (a join if not joined) and applies the answer.
func (h *harness) shb(group string, cl *shareClient) *kmsg.ShareGroupHeartbeatResponse {
	h.t.Helper()
	r := shareReq(group, cl.id, cl.epoch, nil)
	if !cl.joined {
		r.MemberEpoch = 0
		r.SubscribedTopicNames = cl.topics
	}
	resp := h.c.ShareGroupHeartbeat(h.ctx, r)
	switch resp.ErrorCode {
	case 0:
	case kerr.FencedMemberEpoch.Code, kerr.UnknownMemberID.Code:
		cl.joined, cl.epoch, cl.assigned = false, 0, make(partSet)
		return resp
	default:
		return resp
	}
	cl.joined = true
	cl.epoch = resp.MemberEpoch
	if resp.Assignment != nil {
		cl.assigned = make(partSet)
		for _, t := range resp.Assignment.TopicPartitions {
			for _, p := range t.Partitions {
				cl.assigned[tpid{id: t.TopicID, p: p}] = struct{}{}
			}
		}
	}
	return resp
}

func (h *harness) sleave(group string, cl *shareClient) int16 {
	h.t.Helper()
	resp := h.c.ShareGroupHeartbeat(h.ctx, shareReq(group, cl.id, -1, nil))
	if resp.ErrorCode == 0 {
		cl.joined, cl.epoch = false, 0
		if resp.MemberEpoch != -1 {
			h.t.Fatalf("leave answered epoch %d, want -1", resp.MemberEpoch)
		}
	}
	return resp.ErrorCode
}

func (h *harness) sdescribe(group string) kmsg.ShareGroupDescribeResponseGroup {
	h.t.Helper()
	r := kmsg.NewPtrShareGroupDescribeRequest()
	r.Version = 1
	r.GroupIDs = []string{group}
	resp := h.c.ShareGroupDescribe(h.ctx, r)
	if len(resp.Groups) != 1 {
		h.t.Fatalf("describe answered %d groups", len(resp.Groups))
	}
	return resp.Groups[0]
}

// holders counts, per partition of topic id, the clients holding it.
func holders(clients []*shareClient, id [16]byte, parts int32) []int {
	out := make([]int, parts)
	for _, cl := range clients {
		for tp := range cl.assigned {
			if tp.id == id && tp.p < parts {
				out[tp.p]++
			}
		}
	}
	return out
}

// checkShareBalance checks the assignor's rule on what the clients hold:
// every partition held, by at most ceil(S/P) members, counts within one.
func checkShareBalance(t *testing.T, what string, clients []*shareClient, id [16]byte, parts int32) {
	t.Helper()
	s, p := len(clients), int(parts)
	share := (s + p - 1) / p
	for part, n := range holders(clients, id, parts) {
		if n == 0 || n > share {
			t.Fatalf("%s: partition %d held by %d members, want 1..%d", what, part, n, share)
		}
	}
	lo, hi := 1<<30, 0
	for _, cl := range clients {
		lo, hi = min(lo, len(cl.assigned)), max(hi, len(cl.assigned))
	}
	if hi-lo > 1 {
		t.Fatalf("%s: member partition counts range %d..%d", what, lo, hi)
	}
	if s >= p && lo < 1 {
		t.Fatalf("%s: a member got nothing with %d members over %d partitions", what, s, p)
	}
}

func TestShareAssignmentSharing(t *testing.T) {
	t.Parallel()
	for parts := int32(1); parts <= 5; parts++ {
		for n := 1; n <= 7; n++ {
			h := newHarness(t)
			id := h.topic("t", parts)
			var clients []*shareClient
			for i := range n {
				cl := newShareClient(i, "t")
				expectCode(t, "join", h.shb("g", cl).ErrorCode, nil)
				clients = append(clients, cl)
			}
			for _, cl := range clients { // everyone catches up to the last epoch
				expectCode(t, "heartbeat", h.shb("g", cl).ErrorCode, nil)
			}
			what := fmt.Sprintf("%d members, %d partitions", n, parts)
			checkShareBalance(t, what, clients, id, parts)
			if n > 1 {
				// One leaves: the rest still cover everything, and
				// keep most of what they had (sticky).
				before := make(map[string]partSet)
				for _, cl := range clients[1:] {
					before[cl.id] = cl.assigned
				}
				expectCode(t, "leave", h.sleave("g", clients[0]), nil)
				rest := clients[1:]
				for _, cl := range rest {
					expectCode(t, "heartbeat", h.shb("g", cl).ErrorCode, nil)
				}
				checkShareBalance(t, what+", one left", rest, id, parts)
				for _, cl := range rest {
					for tp := range before[cl.id] {
						if _, kept := cl.assigned[tp]; !kept && len(cl.assigned) >= len(before[cl.id]) {
							t.Fatalf("%s: member %s lost partition %d though its count did not shrink", what, cl.id, tp.p)
						}
					}
				}
			}
		}
	}
}

func TestShareHeartbeatJoinLeaveEpochs(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.topic("t", 3)
	a, b := newShareClient(1, "t"), newShareClient(2, "t")
	resp := h.shb("g", a)
	expectCode(t, "join a", resp.ErrorCode, nil)
	if resp.MemberEpoch != 1 || len(a.assigned) != 3 || resp.HeartbeatIntervalMillis != 5000 {
		t.Fatalf("join a: epoch %d, %d partitions, interval %d; want 1, 3, 5000", resp.MemberEpoch, len(a.assigned), resp.HeartbeatIntervalMillis)
	}
	if resp := h.shb("g", a); resp.Assignment != nil || resp.MemberEpoch != 1 {
		t.Fatalf("steady heartbeat: epoch %d, assignment %v; want 1 and none", resp.MemberEpoch, resp.Assignment)
	}
	expectCode(t, "join b", h.shb("g", b).ErrorCode, nil)
	if b.epoch != 2 {
		t.Fatalf("b epoch %d, want 2", b.epoch)
	}
	if resp := h.shb("g", a); resp.MemberEpoch != 2 || resp.Assignment == nil {
		t.Fatalf("a after b joined: epoch %d, assignment %v", resp.MemberEpoch, resp.Assignment)
	}
	if got := holders([]*shareClient{a, b}, id, 3); !slices.Equal(got, []int{1, 1, 1}) {
		t.Fatalf("holders %v, want each partition once", got)
	}
	// The previous epoch is accepted (the answer may have been lost) and
	// the answer repeated; a future epoch is fenced.
	prev := h.c.ShareGroupHeartbeat(h.ctx, shareReq("g", a.id, 1, nil))
	expectCode(t, "previous epoch", prev.ErrorCode, nil)
	if prev.MemberEpoch != 2 || prev.Assignment == nil {
		t.Fatalf("previous epoch: epoch %d, assignment %v; want 2 and repeated", prev.MemberEpoch, prev.Assignment)
	}
	ahead := shareReq("g", a.id, 9, nil)
	expectCode(t, "future epoch", h.c.ShareGroupHeartbeat(h.ctx, ahead).ErrorCode, kerr.FencedMemberEpoch)
	unknown := shareReq("g", "00000000-0000-4000-8000-999999999999", 2, nil)
	expectCode(t, "unknown member", h.c.ShareGroupHeartbeat(h.ctx, unknown).ErrorCode, kerr.UnknownMemberID)
	expectCode(t, "unknown member leave", h.c.ShareGroupHeartbeat(h.ctx, shareReq("g", unknown.MemberID, -1, nil)).ErrorCode, kerr.UnknownMemberID)
	expectCode(t, "unknown group", h.c.ShareGroupHeartbeat(h.ctx, shareReq("nope", a.id, 3, nil)).ErrorCode, kerr.UnknownMemberID)

	expectCode(t, "b leaves", h.sleave("g", b), nil)
	resp = h.shb("g", a)
	if resp.MemberEpoch != 3 || len(a.assigned) != 3 {
		t.Fatalf("a after b left: epoch %d, %d partitions; want 3, 3", resp.MemberEpoch, len(a.assigned))
	}
	stale := shareReq("g", a.id, 1, nil)
	expectCode(t, "stale epoch", h.c.ShareGroupHeartbeat(h.ctx, stale).ErrorCode, kerr.FencedMemberEpoch)
	// A subscription change rebalances.
	h.topic("u", 2)
	r := shareReq("g", a.id, a.epoch, []string{"t", "u"})
	resp = h.c.ShareGroupHeartbeat(h.ctx, r)
	expectCode(t, "resubscribe", resp.ErrorCode, nil)
	if resp.MemberEpoch != 4 || resp.Assignment == nil || len(resp.Assignment.TopicPartitions) != 2 {
		t.Fatalf("resubscribe: epoch %d, assignment %+v", resp.MemberEpoch, resp.Assignment)
	}
}

func TestShareHeartbeatValidation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	cases := []struct {
		name string
		req  *kmsg.ShareGroupHeartbeatRequest
		want *kerr.Error
	}{
		{"empty group", shareReq("", "m", 0, []string{"t"}), kerr.InvalidRequest},
		{"empty member", shareReq("g", "", 0, []string{"t"}), kerr.InvalidRequest},
		{"blank member", shareReq("g", "  ", 0, []string{"t"}), kerr.InvalidRequest},
		{"blank group", shareReq(" ", "m", 0, []string{"t"}), kerr.InvalidRequest},
		{"no topics on join", shareReq("g", "m", 0, nil), kerr.InvalidRequest},
		{"empty topics on join", shareReq("g", "m", 0, []string{}), kerr.InvalidRequest},
		{"bad epoch", shareReq("g", "m", -2, nil), kerr.InvalidRequest},
	}
	rack := shareReq("g", "m", 0, []string{"t"})
	rack.RackID = kmsg.StringPtr("")
	cases = append(cases, struct {
		name string
		req  *kmsg.ShareGroupHeartbeatRequest
		want *kerr.Error
	}{"empty rack", rack, kerr.InvalidRequest})
	v0 := shareReq("g", "m", 0, []string{"t"})
	v0.Version = 0
	cases = append(cases, struct {
		name string
		req  *kmsg.ShareGroupHeartbeatRequest
		want *kerr.Error
	}{"v0", v0, kerr.UnsupportedVersion})
	for _, tc := range cases {
		resp := h.c.ShareGroupHeartbeat(h.ctx, tc.req)
		expectCode(t, tc.name, resp.ErrorCode, tc.want)
	}
	if groupOf(h.c, "g") != nil {
		t.Fatal("a refused heartbeat left a group behind")
	}
}

func TestShareTypeConflicts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 2)
	// A consumer (KIP-848) group refuses share members, and vice versa.
	cl := newCClient("c1", "t")
	expectCode(t, "consumer join", h.cgHeartbeat("cons", cl).ErrorCode, nil)
	resp := h.c.ShareGroupHeartbeat(h.ctx, shareReq("cons", newShareClient(1).id, 0, []string{"t"}))
	expectCode(t, "share on consumer group", resp.ErrorCode, kerr.GroupIDNotFound)
	if resp.ErrorMessage == nil || *resp.ErrorMessage != "Group cons is not a share group." {
		t.Fatalf("message %v", resp.ErrorMessage)
	}
	// A classic group, even one with only offsets, too.
	expectCode(t, "simple commit", h.commit("simple", "", -1, "t", 0, 5), nil)
	expectCode(t, "share on classic group", h.c.ShareGroupHeartbeat(h.ctx, shareReq("simple", newShareClient(1).id, 0, []string{"t"})).ErrorCode, kerr.GroupIDNotFound)
	if _, code := h.c.ShareGroup("simple"); code != kerr.InconsistentGroupProtocol.Code {
		t.Fatalf("ShareGroup(classic) code %d", code)
	}
	if _, code := h.c.ShareGroup("missing"); code != kerr.GroupIDNotFound.Code {
		t.Fatalf("ShareGroup(missing) code %d", code)
	}

	s := newShareClient(1, "t")
	expectCode(t, "share join", h.shb("sg", s).ErrorCode, nil)
	cresp := h.c.ConsumerGroupHeartbeat(h.ctx, consumerJoin("sg", "c2", "t"))
	expectCode(t, "consumer heartbeat on share group", cresp.ErrorCode, kerr.GroupIDNotFound)
	jresp := recv(t, h.joinAsync(joinReq("sg", "", nil, "t")))
	expectCode(t, "JoinGroup on share group", jresp.ErrorCode, kerr.InconsistentGroupProtocol)
	expectCode(t, "OffsetCommit on share group", h.commit("sg", "", -1, "t", 0, 1), kerr.GroupIDNotFound)
	fr := kmsg.NewPtrOffsetFetchRequest()
	fr.Version = 8
	fr.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "sg"}}
	expectCode(t, "OffsetFetch on share group", h.c.OffsetFetch(h.ctx, fr).Groups[0].ErrorCode, kerr.GroupIDNotFound)
	odr := kmsg.NewPtrOffsetDeleteRequest()
	odr.Group = "sg"
	odr.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
	expectCode(t, "OffsetDelete on share group", h.c.OffsetDelete(h.ctx, odr).ErrorCode, kerr.GroupIDNotFound)
	dr := kmsg.NewPtrDescribeGroupsRequest()
	dr.Version = 6
	dr.Groups = []string{"sg"}
	dg := h.c.DescribeGroups(h.ctx, dr).Groups[0]
	expectCode(t, "DescribeGroups v6 on share group", dg.ErrorCode, kerr.GroupIDNotFound)
	cdr := kmsg.NewPtrConsumerGroupDescribeRequest()
	cdr.Groups = []string{"sg"}
	expectCode(t, "ConsumerGroupDescribe on share group", h.c.ConsumerGroupDescribe(h.ctx, cdr).Groups[0].ErrorCode, kerr.GroupIDNotFound)
	sd := h.sdescribe("cons")
	expectCode(t, "ShareGroupDescribe on consumer group", sd.ErrorCode, kerr.GroupIDNotFound)
	if sd.ErrorMessage == nil || *sd.ErrorMessage != "Group cons is not a share group." {
		t.Fatalf("message %v", sd.ErrorMessage)
	}
	expectCode(t, "ShareGroupDescribe missing", h.sdescribe("missing").ErrorCode, kerr.GroupIDNotFound)
	expectCode(t, "ShareGroupDescribe empty id", h.sdescribe("").ErrorCode, kerr.InvalidGroupID)
	// The share group is still intact.
	if g := groupOf(h.c, "sg"); g == nil || g.kind != kindShare || len(g.sg.members) != 1 {
		t.Fatal("share group damaged by requests of other types")
	}
}

func TestShareMaxSizeAndSettings(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) {
		c.ShareSettings = func(g string) ShareSettings {
			if g == "small" {
				return ShareSettings{HeartbeatInterval: time.Second, SessionTimeout: 10 * time.Second, MaxSize: 2}
			}
			return ShareSettings{}
		}
	})
	h.topic("t", 4)
	a, b, c := newShareClient(1, "t"), newShareClient(2, "t"), newShareClient(3, "t")
	resp := h.shb("small", a)
	if resp.HeartbeatIntervalMillis != 1000 {
		t.Fatalf("interval %d, want the group's 1000", resp.HeartbeatIntervalMillis)
	}
	expectCode(t, "b", h.shb("small", b).ErrorCode, nil)
	expectCode(t, "c past max size", h.shb("small", c).ErrorCode, kerr.GroupMaxSizeReached)
	if g := groupOf(h.c, "small"); len(g.sg.members) != 2 {
		t.Fatalf("%d members, want 2", len(g.sg.members))
	}
	// Other groups get the defaults.
	if resp := h.shb("big", c); resp.ErrorCode != 0 || resp.HeartbeatIntervalMillis != 5000 {
		t.Fatalf("default group: code %d interval %d", resp.ErrorCode, resp.HeartbeatIntervalMillis)
	}

	// Session expiry: a keeps heartbeating, b does not.
	epoch := h.sdescribe("small").GroupEpoch
	h.clock.Advance(6 * time.Second)
	expectCode(t, "a at 6s", h.shb("small", a).ErrorCode, nil)
	h.clock.Advance(5 * time.Second)
	d := h.sdescribe("small")
	if len(d.Members) != 1 || d.Members[0].MemberID != a.id || d.GroupEpoch != epoch+1 {
		t.Fatalf("after b's session: members %+v epoch %d (was %d)", d.Members, d.GroupEpoch, epoch)
	}
	expectCode(t, "expired b", h.shb("small", b).ErrorCode, kerr.UnknownMemberID)
	expectCode(t, "a after expiry", h.shb("small", a).ErrorCode, nil)
	if len(a.assigned) != 4 {
		t.Fatalf("a holds %d partitions after b expired, want 4", len(a.assigned))
	}
	// The expiry was written in the background.
	waitFor(t, "expiry written", func() bool {
		h.store.mu.Lock()
		defer h.store.mu.Unlock()
		return h.store.calls >= 4
	})
}

func TestShareUnknownTopicsLater(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a := newShareClient(1, "later")
	resp := h.shb("g", a)
	expectCode(t, "join", resp.ErrorCode, nil)
	if resp.Assignment == nil || len(resp.Assignment.TopicPartitions) != 0 {
		t.Fatalf("assignment %+v, want empty", resp.Assignment)
	}
	id := h.topic("later", 2)
	resp = h.shb("g", a)
	if resp.Assignment == nil || len(a.assigned) != 2 || resp.MemberEpoch != 2 {
		t.Fatalf("after topic created: epoch %d, %d partitions", resp.MemberEpoch, len(a.assigned))
	}
	h.topic("later", 3) // more partitions
	h.shb("g", a)
	if got := holders([]*shareClient{a}, id, 3); !slices.Equal(got, []int{1, 1, 1}) {
		t.Fatalf("after growing: holders %v", got)
	}
	info, code := h.c.ShareGroup("g")
	if code != 0 || info.Empty || !slices.Equal(info.Topics, []string{"later"}) {
		t.Fatalf("ShareGroup: %+v code %d", info, code)
	}
}

func TestShareDescribeListDelete(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.topic("t", 2)
	a, b := newShareClient(1, "t"), newShareClient(2, "t")
	h.shb("g", a)
	r := shareReq("g", b.id, 0, []string{"t"})
	r.RackID = kmsg.StringPtr("rack1")
	expectCode(t, "b join", h.c.ShareGroupHeartbeat(h.ctx, r).ErrorCode, nil)
	b.joined, b.epoch = true, 2
	h.shb("g", a)
	d := h.sdescribe("g")
	if d.ErrorCode != 0 || d.GroupState != "Stable" || d.GroupEpoch != 2 || d.AssignmentEpoch != 2 || d.Assignor != "simple" ||
		d.AuthorizedOperations != -2147483648 || len(d.Members) != 2 {
		t.Fatalf("describe: %+v", d)
	}
	m0, m1 := d.Members[0], d.Members[1]
	if m0.MemberID != a.id || m0.ClientID != "client" || m0.ClientHost != "/127.0.0.1" || m0.MemberEpoch != 2 ||
		!slices.Equal(m0.SubscribedTopicNames, []string{"t"}) || len(m0.Assignment.TopicPartitions) != 1 ||
		m0.Assignment.TopicPartitions[0].Topic != "t" || m0.Assignment.TopicPartitions[0].TopicID != id ||
		len(m0.Assignment.TopicPartitions[0].Partitions) != 1 {
		t.Fatalf("member a: %+v", m0)
	}
	if m1.RackID == nil || *m1.RackID != "rack1" {
		t.Fatalf("member b rack %v", m1.RackID)
	}

	// ListGroups: type and state, and the filters.
	h.cgHeartbeat("cons", newCClient("c1", "t"))
	list := func(states, types []string) []kmsg.ListGroupsResponseGroup {
		lr := kmsg.NewPtrListGroupsRequest()
		lr.Version = 5
		lr.StatesFilter, lr.TypesFilter = states, types
		return h.c.ListGroups(h.ctx, lr).Groups
	}
	got := list(nil, []string{"Share"})
	if len(got) != 1 || got[0].Group != "g" || got[0].GroupType != "share" || got[0].ProtocolType != "share" || got[0].GroupState != "Stable" {
		t.Fatalf("share listing: %+v", got)
	}
	if got := list(nil, []string{"consumer"}); len(got) != 1 || got[0].Group != "cons" {
		t.Fatalf("consumer listing: %+v", got)
	}
	if got := list([]string{"empty"}, []string{"share"}); len(got) != 0 {
		t.Fatalf("empty share listing while stable: %+v", got)
	}

	// DeleteGroups: refused while members remain.
	del := func(ids ...string) []kmsg.DeleteGroupsResponseGroup {
		dr := kmsg.NewPtrDeleteGroupsRequest()
		dr.Version = 2
		dr.Groups = ids
		return h.c.DeleteGroups(h.ctx, dr).Groups
	}
	expectCode(t, "delete non-empty", del("g")[0].ErrorCode, kerr.NonEmptyGroup)
	h.sleave("g", a)
	h.sleave("g", b)
	if got := list([]string{"Empty"}, []string{"share"}); len(got) != 1 {
		t.Fatalf("empty listing: %+v", got)
	}
	info, code := h.c.ShareGroup("g")
	if code != 0 || !info.Empty || !slices.Equal(info.Topics, []string{"t"}) {
		t.Fatalf("ShareGroup after all left: %+v code %d", info, code)
	}
	h.reload() // the empty group and its last topics are durable
	info, code = h.c.ShareGroup("g")
	if code != 0 || !info.Empty || !slices.Equal(info.Topics, []string{"t"}) {
		t.Fatalf("ShareGroup after all left and a reload: %+v code %d", info, code)
	}
	expectCode(t, "delete empty", del("g")[0].ErrorCode, nil)
	if _, code := h.c.ShareGroup("g"); code != kerr.GroupIDNotFound.Code {
		t.Fatalf("ShareGroup after delete: code %d", code)
	}
	h.reload()
	if _, code := h.c.ShareGroup("g"); code != kerr.GroupIDNotFound.Code {
		t.Fatalf("deleted share group came back after reload: code %d", code)
	}
}

func TestShareReload(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 3)
	h.topic("u", 1)
	a, b := newShareClient(1, "t"), newShareClient(2, "t", "u")
	h.shb("g", a)
	h.shb("g", b)
	epoch := h.sdescribe("g").GroupEpoch
	h.reload()
	d := h.sdescribe("g")
	if d.ErrorCode != 0 || d.GroupState != "Empty" || d.GroupEpoch != epoch || len(d.Members) != 0 {
		t.Fatalf("after reload: %+v (epoch before %d)", d, epoch)
	}
	info, code := h.c.ShareGroup("g")
	if code != 0 || !info.Empty || !slices.Equal(info.Topics, []string{"t", "u"}) {
		t.Fatalf("ShareGroup after reload: %+v code %d", info, code)
	}
	lr := kmsg.NewPtrListGroupsRequest()
	lr.Version = 5
	lr.TypesFilter = []string{"share"}
	if got := h.c.ListGroups(h.ctx, lr).Groups; len(got) != 1 || got[0].GroupState != "Empty" {
		t.Fatalf("listing after reload: %+v", got)
	}
	// Members are not persisted: their next heartbeat is unknown, they
	// rejoin, and the epoch continues.
	expectCode(t, "old member", h.shb("g", a).ErrorCode, kerr.UnknownMemberID)
	resp := h.shb("g", a)
	expectCode(t, "rejoin", resp.ErrorCode, nil)
	if resp.MemberEpoch != epoch+1 || len(a.assigned) != 3 {
		t.Fatalf("rejoin: epoch %d (want %d), %d partitions", resp.MemberEpoch, epoch+1, len(a.assigned))
	}
	// A share group id stays a share group after reload.
	expectCode(t, "consumer on reloaded share group", h.c.ConsumerGroupHeartbeat(h.ctx, consumerJoin("g", "c", "t")).ErrorCode, kerr.GroupIDNotFound)
}

func TestShareRecordRoundTrip(t *testing.T) {
	t.Parallel()
	sg := newShareGroup()
	sg.epoch = 7
	sg.subscribed = []string{"a", "bb"}
	v, err := decodeShareGroupValue(shareGroupValue(sg))
	if err != nil || v.epoch != 7 || !slices.Equal(v.subscribed, sg.subscribed) {
		t.Fatalf("round trip: %+v %v", v, err)
	}
	for _, bad := range [][]byte{nil, {0, 1}, {0, 0, 0, 0, 0, 7, 0x7f, 0xff, 0xff, 0xff}} {
		if _, err := decodeShareGroupValue(bad); err == nil {
			t.Fatalf("decoded %x", bad)
		}
	}
}

func TestShareHeartbeatPersistFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 1)
	h.store.setFail(errInjected)
	resp := h.c.ShareGroupHeartbeat(h.ctx, shareReq("g", newShareClient(1).id, 0, []string{"t"}))
	expectCode(t, "join with failing log", resp.ErrorCode, kerr.CoordinatorNotAvailable)
	h.store.setFail(nil)
	a := newShareClient(1, "t")
	expectCode(t, "join again", h.shb("g", a).ErrorCode, nil)
	h.reload()
	if _, code := h.c.ShareGroup("g"); code != 0 {
		t.Fatalf("group not durable after a successful join: code %d", code)
	}
}

// checkTargets checks the assignor's invariants on sg's targets.
func checkTargets(t *testing.T, what string, sg *shareGroup) {
	t.Helper()
	for name, tm := range sg.topics {
		var subs []*smember
		for _, m := range sg.members {
			if slices.Contains(m.topics, name) {
				subs = append(subs, m)
			}
		}
		if len(subs) == 0 {
			continue
		}
		share := (len(subs) + int(tm.partitions) - 1) / int(tm.partitions)
		count := make([]int, tm.partitions)
		lo, hi := 1<<30, 0
		for _, m := range subs {
			n := 0
			for tp := range m.target {
				if tp.id == tm.id {
					count[tp.p]++
					n++
				}
			}
			lo, hi = min(lo, n), max(hi, n)
		}
		for p, n := range count {
			if n == 0 || n > share {
				t.Fatalf("%s: topic %s partition %d held by %d, want 1..%d", what, name, p, n, share)
			}
		}
		if hi-lo > 1 {
			t.Fatalf("%s: topic %s counts range %d..%d", what, name, lo, hi)
		}
	}
	for _, m := range sg.members {
		for tp := range m.target {
			found := false
			for _, name := range m.topics {
				if tm, ok := sg.topics[name]; ok && tm.id == tp.id {
					found = true
				}
			}
			if !found {
				t.Fatalf("%s: member %s holds a partition of a topic it does not subscribe to", what, m.id)
			}
		}
	}
}

func TestShareAssignorHeterogeneousAndLarge(t *testing.T) {
	t.Parallel()
	mk := func(name string, parts int32) topicMeta {
		tm := topicMeta{name: name, partitions: parts}
		copy(tm.id[:], name)
		return tm
	}
	sg := newShareGroup()
	for _, tm := range []topicMeta{mk("a", 3), mk("b", 7), mk("c", 1)} {
		sg.topics[tm.name] = tm
	}
	subsOf := [][]string{{"a"}, {"a", "b"}, {"b", "c"}, {"a", "b", "c"}, {"c"}}
	for i, ts := range subsOf {
		sg.seq++
		sg.members[fmt.Sprint(i)] = &smember{id: fmt.Sprint(i), topics: ts, seq: sg.seq, target: make(partSet)}
	}
	assignShare(sg)
	checkTargets(t, "heterogeneous", sg)

	// Large: stays balanced, and a new member moves only its share.
	big := newShareGroup()
	big.topics["t"] = mk("t", 5000)
	for i := range 200 {
		big.seq++
		id := fmt.Sprintf("m%03d", i)
		big.members[id] = &smember{id: id, topics: []string{"t"}, seq: big.seq, target: make(partSet)}
	}
	assignShare(big)
	checkTargets(t, "200 members over 5000 partitions", big)
	before := make(map[string]partSet)
	for id, m := range big.members {
		before[id] = m.target
	}
	big.seq++
	big.members["new"] = &smember{id: "new", topics: []string{"t"}, seq: big.seq, target: make(partSet)}
	assignShare(big)
	checkTargets(t, "201 members", big)
	moved := 0
	for id, old := range before {
		for tp := range old {
			if _, ok := big.members[id].target[tp]; !ok {
				moved++
			}
		}
	}
	if moved > len(big.members["new"].target) {
		t.Fatalf("%d partitions moved between old members for a new member holding %d", moved, len(big.members["new"].target))
	}
}

func TestShareHeartbeatRepeatedTopics(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 2)
	topics := make([]string, 100_000)
	for i := range topics {
		topics[i] = "t"
	}
	topics[7] = ""
	resp := h.c.ShareGroupHeartbeat(h.ctx, shareReq("g", newShareClient(1).id, 0, topics))
	expectCode(t, "join with 100k copies of a topic", resp.ErrorCode, nil)
	d := h.sdescribe("g")
	if len(d.Members) != 1 || !slices.Equal(d.Members[0].SubscribedTopicNames, []string{"t"}) {
		t.Fatalf("subscription kept as %v", d.Members[0].SubscribedTopicNames[:min(3, len(d.Members[0].SubscribedTopicNames))])
	}
	if info, _ := h.c.ShareGroup("g"); !slices.Equal(info.Topics, []string{"t"}) {
		t.Fatalf("ShareGroup topics %v", info.Topics)
	}
}

func TestShareEnsureGroup(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 1)
	h.topic("u", 1)
	if code := h.c.EnsureShareGroup(h.ctx, "g", []string{"u", "t", "u"}); code != 0 {
		t.Fatalf("ensure new group: code %d", code)
	}
	info, code := h.c.ShareGroup("g")
	if code != 0 || !info.Empty || !slices.Equal(info.Topics, []string{"t", "u"}) {
		t.Fatalf("ShareGroup after ensure: %+v code %d", info, code)
	}
	h.reload()
	if info, code = h.c.ShareGroup("g"); code != 0 || !slices.Equal(info.Topics, []string{"t", "u"}) {
		t.Fatalf("ensured group after reload: %+v code %d", info, code)
	}
	// A member's subscription replaces what an empty group kept.
	a := newShareClient(1, "t")
	expectCode(t, "join", h.shb("g", a).ErrorCode, nil)
	if code := h.c.EnsureShareGroup(h.ctx, "g", []string{"v"}); code != 0 {
		t.Fatalf("ensure busy group: code %d", code)
	}
	if info, _ = h.c.ShareGroup("g"); info.Empty || !slices.Equal(info.Topics, []string{"t"}) {
		t.Fatalf("busy group changed by ensure: %+v", info)
	}
	// Another group type keeps its id.
	expectCode(t, "consumer group", h.c.ConsumerGroupHeartbeat(h.ctx, consumerJoin("c", "m", "t")).ErrorCode, nil)
	if code := h.c.EnsureShareGroup(h.ctx, "c", []string{"t"}); code != kerr.GroupIDNotFound.Code {
		t.Fatalf("ensure on a consumer group: code %d", code)
	}
}
