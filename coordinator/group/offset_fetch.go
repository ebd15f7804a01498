package group

// OffsetFetch: v0-9.
//
// Returns committed offsets. A partition without a committed offset gets
// offset -1 and no error; a group that does not exist is not an error
// either. v2+ accepts a null topic list meaning every committed partition,
// and carries group-level errors at the top (v0-1 repeat them per
// partition). v5+ returns the committed leader epoch (KIP-320). v7+
// RequireStable (KIP-447): a partition whose commit is still being written,
// or that has a pending transactional offset of any producer (a
// TxnOffsetCommit whose marker has not come), gets UNSTABLE_OFFSET_COMMIT
// with offset -1, per partition at every version, which clients retry;
// without RequireStable the last committed offset is returned. A null topic
// list lists committed partitions only, as Kafka's fetchAllOffsets does,
// not those with only a pending offset. v8+ fetches many groups
// at once (KIP-709). v9+ (KIP-848) may name a member id and epoch of a
// consumer group; they are checked (UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH).
// A group, topic or partition given more than once is answered once: every
// copy could otherwise return up to offset.metadata.max.bytes of metadata.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/internal/uniq"
)

// fetchTopic is one requested topic (partitions nil: not used).
type fetchTopic struct {
	topic      string
	partitions []int32
}

// fetchedPartition is one answered partition.
type fetchedPartition struct {
	topic     string
	partition int32
	o         committedOffset
	found     bool
	code      int16
}

// OffsetFetch handles an OffsetFetch request (v0-9).
func (c *Coordinator) OffsetFetch(_ context.Context, req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	c.mu.Lock()
	defer c.mu.Unlock()
	if req.Version >= 8 {
		// A repeated group is answered once.
		for _, rg := range uniq.By(req.Groups, func(g kmsg.OffsetFetchRequestGroup) string { return g.Group }) {
			var topics []fetchTopic
			if rg.Topics != nil {
				topics = make([]fetchTopic, 0, len(rg.Topics))
				for _, t := range rg.Topics {
					topics = append(topics, fetchTopic{topic: t.Topic, partitions: t.Partitions})
				}
			}
			code, parts := c.fetchGroupLocked(rg.Group, uniqueFetchTopics(topics), req.RequireStable, rg.MemberID, rg.MemberEpoch)
			out := kmsg.NewOffsetFetchResponseGroup()
			out.Group, out.ErrorCode = rg.Group, code
			for _, p := range parts {
				n := len(out.Topics)
				if n == 0 || out.Topics[n-1].Topic != p.topic {
					t := kmsg.NewOffsetFetchResponseGroupTopic()
					t.Topic = p.topic
					out.Topics = append(out.Topics, t)
					n++
				}
				rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
				rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata, rp.ErrorCode = p.partition, p.offset(), p.o.leaderEpoch, p.metadata(), p.code
				out.Topics[n-1].Partitions = append(out.Topics[n-1].Partitions, rp)
			}
			resp.Groups = append(resp.Groups, out)
		}
		return resp
	}
	var topics []fetchTopic
	if req.Topics != nil || req.Version < 2 {
		topics = make([]fetchTopic, 0, len(req.Topics))
		for _, t := range req.Topics {
			topics = append(topics, fetchTopic{topic: t.Topic, partitions: t.Partitions})
		}
		topics = uniqueFetchTopics(topics)
	}
	code, parts := c.fetchGroupLocked(req.Group, topics, req.RequireStable, nil, -1)
	if code != 0 {
		if req.Version >= 2 {
			resp.ErrorCode = code
		}
		parts = parts[:0]
		for _, t := range topics {
			for _, p := range t.partitions {
				parts = append(parts, fetchedPartition{topic: t.topic, partition: p, code: code})
			}
		}
	}
	for _, p := range parts {
		n := len(resp.Topics)
		if n == 0 || resp.Topics[n-1].Topic != p.topic {
			t := kmsg.NewOffsetFetchResponseTopic()
			t.Topic = p.topic
			resp.Topics = append(resp.Topics, t)
			n++
		}
		rp := kmsg.NewOffsetFetchResponseTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata, rp.ErrorCode = p.partition, p.offset(), p.o.leaderEpoch, p.metadata(), p.code
		resp.Topics[n-1].Partitions = append(resp.Topics[n-1].Partitions, rp)
	}
	return resp
}

func (p fetchedPartition) offset() int64 {
	if !p.found {
		return -1
	}
	return p.o.offset
}

func (p fetchedPartition) metadata() *string {
	if !p.found {
		return kmsg.StringPtr("")
	}
	return kmsg.StringPtr(p.o.metadata)
}

// fetchGroupLocked answers one group: a group-level code, or its partitions
// (the requested ones, or every committed one when topics is nil).
func (c *Coordinator) fetchGroupLocked(groupID string, topics []fetchTopic, requireStable bool, memberID *string, memberEpoch int32) (int16, []fetchedPartition) {
	if _, code := c.servableLocked(groupID); code != 0 {
		return code, nil
	}
	g := c.mu.groups[groupID]
	if g != nil && g.kind == kindShare {
		// Kafka's ShareGroup.validateOffsetFetch.
		return kerr.GroupIDNotFound.Code, nil
	}
	if g != nil && g.kind == kindConsumer && (memberID != nil || memberEpoch >= 0) {
		var m *cmember
		if memberID != nil {
			m = g.cg.members[*memberID]
		}
		switch {
		case m == nil:
			return kerr.UnknownMemberID.Code, nil
		case memberEpoch > m.epoch:
			return kerr.FencedMemberEpoch.Code, nil
		case memberEpoch < m.epoch:
			return kerr.StaleMemberEpoch.Code, nil
		}
	}
	lookup := func(tp topicPartition) fetchedPartition {
		out := fetchedPartition{topic: tp.topic, partition: tp.partition, o: committedOffset{leaderEpoch: -1}}
		if g == nil {
			return out
		}
		if requireStable && (g.inflight[tp] > 0 || g.txn.has(tp)) {
			out.code = kerr.UnstableOffsetCommit.Code
			return out
		}
		if o, ok := g.offsets[tp]; ok {
			out.o, out.found = o, true
		}
		return out
	}
	var parts []fetchedPartition
	if topics == nil {
		if g != nil {
			for _, tp := range sortedOffsets(g.offsets) {
				parts = append(parts, lookup(tp))
			}
		}
		return 0, parts
	}
	for _, t := range topics {
		for _, p := range t.partitions {
			parts = append(parts, lookup(topicPartition{topic: t.topic, partition: p}))
		}
	}
	return 0, parts
}
