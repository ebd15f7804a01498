package group

import (
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const copies = 100_000

func TestRepeatsDescribeAndDeleteGroupsOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 1)
	h.stableGroup("busy", 2)
	expectCode(t, "commit", h.commit("idle", "", -1, "t", 0, 1), nil)

	d := kmsg.NewPtrDescribeGroupsRequest()
	d.Version = 5
	for range copies {
		d.Groups = append(d.Groups, "busy")
	}
	d.Groups = append(d.Groups, "idle")
	resp := h.c.DescribeGroups(h.ctx, d)
	if len(resp.Groups) != 2 || resp.Groups[0].Group != "busy" || resp.Groups[1].Group != "idle" || len(resp.Groups[0].Members) != 2 {
		t.Fatalf("DescribeGroups of %d copies answered %d groups", copies, len(resp.Groups))
	}

	cd := kmsg.NewPtrConsumerGroupDescribeRequest()
	for range copies {
		cd.Groups = append(cd.Groups, "busy")
	}
	if got := len(h.c.ConsumerGroupDescribe(h.ctx, cd).Groups); got != 1 {
		t.Fatalf("ConsumerGroupDescribe of %d copies answered %d groups", copies, got)
	}

	p := PartitionFor("idle", testPartitions)
	before := len(h.store.records(p))
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Version = 2
	for range copies {
		del.Groups = append(del.Groups, "idle")
	}
	dr := h.c.DeleteGroups(h.ctx, del)
	if len(dr.Groups) != 1 {
		t.Fatalf("DeleteGroups of %d copies answered %d groups", copies, len(dr.Groups))
	}
	expectCode(t, "delete", dr.Groups[0].ErrorCode, nil)
	if got := len(h.store.records(p)) - before; got > 2 {
		t.Fatalf("deleting one group with one offset wrote %d records", got)
	}
}

func TestRepeatsOffsetCommitWritesLastOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 2)
	r := kmsg.NewPtrOffsetCommitRequest()
	r.Version = 8
	r.Group, r.Generation = "g", -1
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = "t"
	for i := range copies {
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = int32(i%2), int64(i)
		rt.Partitions = append(rt.Partitions, rp)
	}
	r.Topics = append(r.Topics, rt)
	p := PartitionFor("g", testPartitions)
	before := len(h.store.records(p))
	resp := h.c.OffsetCommit(h.ctx, r)
	if got := len(resp.Topics[0].Partitions); got != copies {
		t.Fatalf("%d entries answered, want every one of %d", got, copies)
	}
	for _, rp := range resp.Topics[0].Partitions {
		expectCode(t, "commit", rp.ErrorCode, nil)
	}
	if got := len(h.store.records(p)) - before; got != 2 {
		t.Fatalf("%d records written for 2 distinct partitions", got)
	}
	if h.fetch("g", "t", 0) != copies-2 || h.fetch("g", "t", 1) != copies-1 {
		t.Fatalf("committed %d and %d, want the last entries %d and %d", h.fetch("g", "t", 0), h.fetch("g", "t", 1), copies-2, copies-1)
	}
	// A failed write answers every entry with its error.
	h.store.setFail(errInjected)
	failed := h.c.OffsetCommit(h.ctx, r)
	for i, rp := range failed.Topics[0].Partitions {
		if rp.ErrorCode == 0 {
			t.Fatalf("entry %d of a failed commit answered without error", i)
		}
	}
}

func TestRepeatsOffsetFetchAnsweredOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 1)
	expectCode(t, "commit", h.commit("g", "", -1, "t", 0, 7), nil)
	r := kmsg.NewPtrOffsetFetchRequest()
	r.Version = 8
	for range copies / 10 {
		rg := kmsg.NewOffsetFetchRequestGroup()
		rg.Group = "g" // Topics nil: every committed offset
		r.Groups = append(r.Groups, rg)
	}
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = "other"
	rg.Topics = []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: make([]int32, copies)}, {Topic: "t", Partitions: []int32{0, 1}}}
	r.Groups = append(r.Groups, rg)
	resp := h.c.OffsetFetch(h.ctx, r)
	if len(resp.Groups) != 2 {
		t.Fatalf("%d groups answered, want 2", len(resp.Groups))
	}
	if g := resp.Groups[0]; len(g.Topics) != 1 || len(g.Topics[0].Partitions) != 1 || g.Topics[0].Partitions[0].Offset != 7 {
		t.Fatalf("group g answered %+v", g.Topics)
	}
	if g := resp.Groups[1]; len(g.Topics) != 1 || len(g.Topics[0].Partitions) != 2 {
		t.Fatalf("group other answered %d topics / %+v, want partitions 0 and 1 once", len(g.Topics), g.Topics)
	}

	// v1: one group, repeated partitions.
	r1 := kmsg.NewPtrOffsetFetchRequest()
	r1.Version = 1
	r1.Group = "g"
	r1.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: make([]int32, copies)}}
	if got := h.c.OffsetFetch(h.ctx, r1); len(got.Topics) != 1 || len(got.Topics[0].Partitions) != 1 || got.Topics[0].Partitions[0].Offset != 7 {
		t.Fatalf("v1 answered %+v", got.Topics)
	}
}

func TestRepeatsOffsetDeleteOneTombstone(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 1)
	expectCode(t, "commit", h.commit("g", "", -1, "t", 0, 7), nil)
	p := PartitionFor("g", testPartitions)
	before := h.store.tombstones(p)
	r := kmsg.NewPtrOffsetDeleteRequest()
	r.Group = "g"
	rt := kmsg.NewOffsetDeleteRequestTopic()
	rt.Topic = "t"
	for range copies {
		rt.Partitions = append(rt.Partitions, kmsg.OffsetDeleteRequestTopicPartition{Partition: 0})
	}
	r.Topics = append(r.Topics, rt)
	resp := h.c.OffsetDelete(h.ctx, r)
	expectCode(t, "offset delete", resp.ErrorCode, nil)
	if got := h.store.tombstones(p) - before; got != 1 {
		t.Fatalf("%d tombstones for one partition", got)
	}
}

// Protocol checks are linear: members that each list 100,000 protocols
// (repeats included) join at once, a repeated name counts once, and the
// protocol all share is selected.
func TestRepeatsJoinGroupManyProtocols(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	many := func(meta string) []kmsg.JoinGroupRequestProtocol {
		ps := make([]kmsg.JoinGroupRequestProtocol, 0, copies+1)
		for i := range copies {
			ps = append(ps, kmsg.JoinGroupRequestProtocol{Name: "p" + strconv.Itoa(i%(copies/2)), Metadata: []byte(meta)})
		}
		return append(ps, kmsg.JoinGroupRequestProtocol{Name: "range", Metadata: consumerMeta("t")})
	}
	start := time.Now()
	var ids []string
	for range 3 {
		ids = append(ids, h.memberID("g"))
	}
	var chans []<-chan *kmsg.JoinGroupResponse
	for i, id := range ids {
		req := joinReq("g", id, nil)
		req.Protocols = many(strconv.Itoa(i))
		chans = append(chans, h.joinAsync(req))
	}
	for _, ch := range chans {
		r := recv(t, ch)
		expectCode(t, "join", r.ErrorCode, nil)
		if r.Protocol == nil || *r.Protocol != "p0" {
			t.Fatalf("selected protocol %v, want p0 (every member's first)", r.Protocol)
		}
	}
	// A protocol list the members do not share is refused.
	odd := joinReq("g", "", nil)
	odd.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "other"}}
	expectCode(t, "unshared protocol", h.c.JoinGroup(h.ctx, odd).ErrorCode, kerr.InconsistentGroupProtocol)
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("joining with %d protocols each took %v", copies, d)
	}
	g := groupOf(h.c, "g")
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	for _, m := range g.members {
		if len(m.protocols) != copies/2+1 {
			t.Errorf("member keeps %d protocols, want the %d distinct ones", len(m.protocols), copies/2+1)
		}
		if string(m.metadataFor("p1")) != string(m.protocols[0].Metadata) {
			t.Errorf("metadata of a repeated protocol is not its first entry's")
		}
	}
}
