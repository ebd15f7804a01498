package group

// OffsetDelete: v0 (KIP-496).
//
// Deletes committed offsets of a group. An Empty group may lose any of its
// offsets. A group with members may only lose offsets of topics none of its
// members subscribes to; the others get GROUP_SUBSCRIBED_TO_TOPIC. Classic
// groups that do not use the "consumer" protocol type (so their
// subscriptions cannot be read) get NON_EMPTY_GROUP while they have members.
// A missing group is GROUP_ID_NOT_FOUND. Tombstones are written before the
// answer, also for a partition that only has pending transactional offsets;
// the tombstone drops those, so their transaction's COMMIT does not bring
// the partition back (Kafka's OffsetMetadataManager.deleteOffsets).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetDelete handles an OffsetDelete request (v0).
func (c *Coordinator) OffsetDelete(ctx context.Context, req *kmsg.OffsetDeleteRequest) *kmsg.OffsetDeleteResponse {
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	p := PartitionFor(req.Group, c.cfg.NumPartitions)
	pm := &c.persistMu[p]
	pm.Lock()
	defer pm.Unlock()
	c.mu.Lock()
	g, records, deleted, code := c.planOffsetDeleteLocked(req, resp)
	c.mu.Unlock()
	resp.ErrorCode = code
	if code != 0 || len(records) == 0 {
		return resp
	}
	pctx, cancel := c.persistCtx(ctx)
	err := c.cfg.Persister.Persist(pctx, p, records)
	cancel()
	if err != nil {
		c.log.Warn("writing offset deletion failed", "group", req.Group, "err", err)
		resp.ErrorCode = persistErrorCode(err, true)
		return resp
	}
	c.mu.Lock()
	if c.currentLocked(g) {
		for _, tp := range deleted {
			delete(g.offsets, tp)
			g.txn.drop(tp)
		}
	}
	c.mu.Unlock()
	return resp
}

func (c *Coordinator) planOffsetDeleteLocked(req *kmsg.OffsetDeleteRequest, resp *kmsg.OffsetDeleteResponse) (*group, []Record, []topicPartition, int16) {
	if _, code := c.servableLocked(req.Group); code != 0 {
		return nil, nil, nil, code
	}
	g := c.mu.groups[req.Group]
	if g == nil {
		return nil, nil, nil, kerr.GroupIDNotFound.Code
	}
	// subscribed == nil means every offset may go.
	var subscribed func(string) bool
	switch {
	case g.kind == kindShare:
		// Kafka's ShareGroup.validateOffsetDelete.
		return nil, nil, nil, kerr.GroupIDNotFound.Code
	case g.kind == kindConsumer:
		if len(g.cg.members) > 0 {
			names := g.cg.subscribedTopicNames()
			subscribed = func(t string) bool { return names[t] }
		}
	case g.state != stateEmpty && g.protocolType == "consumer":
		names, known := classicSubscribedTopics(g)
		subscribed = func(t string) bool { return !known || names[t] }
	case g.state != stateEmpty:
		return nil, nil, nil, kerr.NonEmptyGroup.Code
	}
	var records []Record
	var deleted []topicPartition
	var queued map[topicPartition]bool
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition = p.Partition
			tp := topicPartition{topic: t.Topic, partition: p.Partition}
			switch {
			case subscribed != nil && subscribed(t.Topic):
				rp.ErrorCode = kerr.GroupSubscribedToTopic.Code
			case c.cfg.TopicMetadata != nil && !c.topicPartitionExists(t.Topic, p.Partition):
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			default:
				if _, ok := g.offsets[tp]; (ok || g.txn.has(tp)) && !queued[tp] {
					if queued == nil {
						queued = make(map[topicPartition]bool)
					}
					queued[tp] = true // one tombstone for a repeated partition
					records = append(records, Record{Key: offsetKey(g.id, tp.topic, tp.partition)})
					deleted = append(deleted, tp)
				}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return g, records, deleted, 0
}

func (c *Coordinator) topicPartitionExists(topic string, partition int32) bool {
	_, parts, ok := c.cfg.TopicMetadata(topic)
	return ok && partition >= 0 && partition < parts
}

// classicSubscribedTopics reads the topics of every member's subscription
// (ConsumerMemberMetadata of the selected protocol, or of every protocol
// before one is selected). known is false if some metadata does not parse,
// in which case Kafka treats every topic as subscribed.
func classicSubscribedTopics(g *group) (map[string]bool, bool) {
	out := make(map[string]bool)
	for _, m := range g.members {
		for _, p := range m.protocols {
			if g.protocol != "" && p.Name != g.protocol {
				continue
			}
			var meta kmsg.ConsumerMemberMetadata
			if err := meta.ReadFrom(p.Metadata); err != nil {
				return nil, false
			}
			for _, t := range meta.Topics {
				out[t] = true
			}
		}
	}
	return out, true
}
