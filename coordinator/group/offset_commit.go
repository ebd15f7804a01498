package group

// OffsetCommit: v0-9.
//
// Stores committed offsets; a commit is acknowledged only once its records
// are durable (Persister.Persist returned nil). A failed write answers every
// partition of the request with the mapped error (COORDINATOR_NOT_AVAILABLE,
// NOT_COORDINATOR, or INVALID_COMMIT_OFFSET_SIZE), as Kafka does.
//
// Validation follows Kafka's group coordinator:
//   - Generation -1 ("simple" commits from admin tools or consumers that
//     assign partitions themselves) is accepted for a group with no members;
//     a group that does not exist yet is created for it. A commit to a missing
//     group with a generation gets ILLEGAL_GENERATION, or GROUP_ID_NOT_FOUND
//     from v9 on.
//   - Classic groups: unknown member -> UNKNOWN_MEMBER_ID, wrong generation ->
//     ILLEGAL_GENERATION, a fenced static member (v7+, KIP-345) ->
//     FENCED_INSTANCE_ID, CompletingRebalance -> REBALANCE_IN_PROGRESS.
//   - KIP-848 groups: the generation is the member epoch and v9+ is required
//     (UNSUPPORTED_VERSION otherwise). An epoch above the member's is
//     FENCED_MEMBER_EPOCH; an older epoch is accepted for partitions the
//     member already held at that epoch (the relaxation of KIP-1251), else
//     STALE_MEMBER_EPOCH.
//   - v2-v4 RetentionTimeMillis sets an explicit expiry (stored as
//     OffsetCommitValue v1); v5+ dropped it (KIP-211).
//   - v6+ carries the leader epoch of the committed offset (KIP-320).
//   - Metadata longer than offset.metadata.max.bytes gets
//     OFFSET_METADATA_TOO_LARGE; a topic or partition that TopicMetadata does
//     not know gets UNKNOWN_TOPIC_OR_PARTITION.
//   - v10 names topics by id; it is not supported (UNSUPPORTED_VERSION).
//   - A partition given more than once is answered for every entry and its
//     last entry wins, as in Kafka; only that last offset is written.
//   - A commit written after a TxnOffsetCommit of the same partition stays
//     when that transaction commits; one written before is replaced (the
//     later record wins, as Kafka compares log offsets).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// commitPlan is a validated commit waiting to be written.
type commitPlan struct {
	g       *group
	records []Record
	entries []commitEntry
}

// commitEntry is one distinct partition of a commit: the offset of its
// last entry, and the answers of all its entries (resp, then more).
type commitEntry struct {
	tp   topicPartition
	o    committedOffset
	resp *kmsg.OffsetCommitResponseTopicPartition
	more []*kmsg.OffsetCommitResponseTopicPartition
}

// OffsetCommit handles an OffsetCommit request (v0-9). It returns once the
// offsets are durable or the write failed.
func (c *Coordinator) OffsetCommit(ctx context.Context, req *kmsg.OffsetCommitRequest) *kmsg.OffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	setAll := func(code int16) *kmsg.OffsetCommitResponse {
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				resp.Topics[i].Partitions[j].ErrorCode = code
			}
		}
		return resp
	}
	if req.Version >= 10 {
		return setAll(kerr.UnsupportedVersion.Code)
	}
	p := PartitionFor(req.Group, c.cfg.NumPartitions)
	pm := &c.persistMu[p]
	pm.Lock()
	defer pm.Unlock()
	c.mu.Lock()
	plan, code := c.planCommitLocked(req, resp)
	c.mu.Unlock()
	if code != 0 {
		return setAll(code)
	}
	if len(plan.records) == 0 {
		return resp
	}
	pctx, cancel := c.persistCtx(ctx)
	err := c.cfg.Persister.Persist(pctx, p, plan.records)
	cancel()
	c.mu.Lock()
	c.applyCommitLocked(plan, err)
	c.mu.Unlock()
	if err != nil {
		c.log.Warn("writing offset commit failed", "group", req.Group, "err", err)
		code := persistErrorCode(err, true)
		for _, e := range plan.entries {
			e.resp.ErrorCode = code
			for _, r := range e.more {
				r.ErrorCode = code
			}
		}
	}
	return resp
}

// planCommitLocked validates req, fills per-partition errors into resp and
// returns the records to write (group-level errors as code).
func (c *Coordinator) planCommitLocked(req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse) (commitPlan, int16) {
	p, code := c.servableLocked(req.Group)
	if code != 0 {
		return commitPlan{}, code
	}
	g := c.mu.groups[req.Group]
	if g == nil {
		switch {
		case req.Generation >= 0 && req.Version >= 9:
			return commitPlan{}, kerr.GroupIDNotFound.Code
		case req.Generation >= 0:
			return commitPlan{}, kerr.IllegalGeneration.Code
		}
		g = newGroup(req.Group, p)
		g.stateSince = c.clock.Now()
		c.mu.groups[req.Group] = g
	}
	var cm *cmember
	switch g.kind {
	case kindShare:
		// Kafka's ShareGroup.validateOffsetCommit: share groups keep no
		// committed offsets.
		code = kerr.GroupIDNotFound.Code
	case kindConsumer:
		cm, code = c.validateConsumerCommitLocked(g, req)
	default:
		code = c.validateClassicCommitLocked(g, req)
	}
	if code != 0 {
		c.dropIfUnusedLocked(g)
		return commitPlan{}, code
	}
	plan := commitPlan{g: g}
	var entryOf map[topicPartition]int // a partition's entry, which later entries rewrite
	now := c.clock.Now().UnixMilli()
	for i, t := range req.Topics {
		for j, rp := range t.Partitions {
			out := &resp.Topics[i].Partitions[j]
			if out.ErrorCode = c.checkCommitPartitionLocked(g, cm, req, t.Topic, rp); out.ErrorCode != 0 {
				continue
			}
			o := committedOffset{offset: rp.Offset, leaderEpoch: -1, commitTime: now, expireTime: -1}
			if req.Version >= 6 {
				o.leaderEpoch = rp.LeaderEpoch
			}
			if rp.Metadata != nil {
				o.metadata = *rp.Metadata
			}
			if req.Version >= 2 && req.Version <= 4 && req.RetentionTimeMillis >= 0 {
				o.expireTime = now + req.RetentionTimeMillis
			}
			tp := topicPartition{topic: t.Topic, partition: rp.Partition}
			if i, ok := entryOf[tp]; ok {
				plan.entries[i].o = o
				plan.entries[i].more = append(plan.entries[i].more, out)
				continue
			}
			if entryOf == nil && len(plan.entries) > 0 {
				entryOf = make(map[topicPartition]int)
				for k, e := range plan.entries {
					entryOf[e.tp] = k
				}
			}
			if entryOf != nil {
				entryOf[tp] = len(plan.entries)
			}
			plan.entries = append(plan.entries, commitEntry{tp: tp, o: o, resp: out})
			g.inflight[tp]++
		}
	}
	for _, e := range plan.entries {
		plan.records = append(plan.records, Record{Key: offsetKey(g.id, e.tp.topic, e.tp.partition), Value: offsetValue(e.o)})
	}
	if len(plan.entries) == 0 {
		c.dropIfUnusedLocked(g)
	}
	return plan, 0
}

// checkCommitPartitionLocked returns the per-partition error of one commit.
func (c *Coordinator) checkCommitPartitionLocked(g *group, cm *cmember, req *kmsg.OffsetCommitRequest, topic string, rp kmsg.OffsetCommitRequestTopicPartition) int16 {
	if rp.Metadata != nil && len(*rp.Metadata) > c.cfg.MaxOffsetMetadataBytes {
		return kerr.OffsetMetadataTooLarge.Code
	}
	var id [16]byte
	if c.cfg.TopicMetadata != nil {
		tid, parts, ok := c.cfg.TopicMetadata(topic)
		if !ok || rp.Partition < 0 || rp.Partition >= parts {
			return kerr.UnknownTopicOrPartition.Code
		}
		id = tid
	}
	if cm != nil && req.Generation < cm.epoch {
		tp := tpid{id: id, p: rp.Partition}
		_, revoking := cm.revoking[tp]
		if at, ok := cm.assigned[tp]; !revoking && (!ok || at > req.Generation) {
			return kerr.StaleMemberEpoch.Code
		}
	}
	return 0
}

// validateClassicCommitLocked is Kafka's ClassicGroup.validateOffsetCommit.
func (c *Coordinator) validateClassicCommitLocked(g *group, req *kmsg.OffsetCommitRequest) int16 {
	if req.Generation < 0 && g.state == stateEmpty {
		return 0
	}
	var m *member
	if req.Generation >= 0 || req.MemberID != "" || req.InstanceID != nil {
		if iid := req.InstanceID; iid != nil {
			known, ok := g.static[*iid]
			if !ok {
				return kerr.UnknownMemberID.Code
			}
			if known != req.MemberID {
				return kerr.FencedInstanceID.Code
			}
		}
		if m = g.members[req.MemberID]; m == nil {
			return kerr.UnknownMemberID.Code
		}
		if req.Generation != g.generation {
			return kerr.IllegalGeneration.Code
		}
	} else if g.state != stateEmpty {
		return kerr.UnknownMemberID.Code
	}
	if g.state == stateCompletingRebalance {
		return kerr.RebalanceInProgress.Code
	}
	if m != nil {
		m.deadline = c.clock.Now().Add(m.sessionTimeout)
		c.rearmLocked(g)
	}
	return 0
}

// validateConsumerCommitLocked is Kafka's ConsumerGroup.validateOffsetCommit;
// the per-partition epoch relaxation is in checkCommitPartitionLocked.
func (c *Coordinator) validateConsumerCommitLocked(g *group, req *kmsg.OffsetCommitRequest) (*cmember, int16) {
	if req.Generation < 0 && len(g.cg.members) == 0 {
		return nil, 0
	}
	m := g.cg.members[req.MemberID]
	switch {
	case m == nil:
		return nil, kerr.UnknownMemberID.Code
	case req.Version < 9:
		return nil, kerr.UnsupportedVersion.Code
	case req.Generation > m.epoch:
		return nil, kerr.FencedMemberEpoch.Code
	}
	return m, 0
}

func (c *Coordinator) applyCommitLocked(plan commitPlan, err error) {
	g := plan.g
	for _, e := range plan.entries {
		if g.inflight[e.tp]--; g.inflight[e.tp] <= 0 {
			delete(g.inflight, e.tp)
		}
	}
	if err != nil {
		if c.currentLocked(g) {
			c.dropIfUnusedLocked(g)
		}
		return
	}
	c.mu.stats.commits += uint64(len(plan.entries))
	if !c.currentLocked(g) {
		return // unloaded meanwhile; the records are durable and the next owner loads them
	}
	for _, e := range plan.entries {
		o := e.o
		o.pos = c.nextPosLocked(g.partition)
		g.offsets[e.tp] = o
	}
}
