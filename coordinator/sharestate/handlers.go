package sharestate

// The five share coordinator APIs (KIP-932; KIP-1226 for the v1 delivery
// complete count). Partition leaders send them; each handler takes the
// decoded request and returns the response with Kafka's error codes per
// partition. A (topic id, partition) named twice is answered once. Every
// partition's write is queued before any is waited for, so the writes of
// one request share a Persist per __share_group_state partition.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/coordinator/share"
)

// slot is one distinct (topic id, partition) of a request: where its
// answer goes and the write it waits for.
type slot struct {
	ti, pi int
	key    share.Key
	epoch  int32 // the leader epoch the request named, -1 for none
	code   int16
	op     *op
}

// slots lists the distinct partitions of a request, calling add(topic
// index in the answer, partition) for each topic's first-seen partitions;
// add returns the partition's index in the answer's topic.
type slotter struct {
	group string
	seen  map[share.Key]struct{}
	out   []slot
}

func newSlotter(group string) *slotter { return &slotter{group: group, seen: map[share.Key]struct{}{}} }

// add records partition p of topic id (answer topic ti, answer partition
// pi) unless it was seen; it reports whether it was new.
func (s *slotter) add(id [16]byte, p int32, epoch int32, ti int, pi func() int) bool {
	k := share.Key{Group: s.group, TopicID: id, Partition: p}
	if _, dup := s.seen[k]; dup {
		return false
	}
	s.seen[k] = struct{}{}
	sl := slot{ti: ti, key: k, epoch: epoch}
	sl.pi = pi()
	if s.group == "" || p < 0 || id == ([16]byte{}) {
		sl.code = kerr.InvalidRequest.Code
	}
	s.out = append(s.out, sl)
	return true
}

// peek returns k's durable entry (nil for none) or the code when the
// coordinator cannot serve k. Entries are never changed once installed,
// so the caller may read it without the lock.
func (c *Coordinator) peek(k share.Key) (*entry, int16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps, code := c.servableLocked(k)
	if code != 0 {
		return nil, code
	}
	return ps.entries[k], 0
}

// awaitAll enqueues the ops of the slots still without a code, then waits
// for each.
func (c *Coordinator) awaitAll(ctx context.Context, slots []slot) {
	for i := range slots {
		s := &slots[i]
		if s.code == 0 && s.op != nil {
			s.code = c.enqueue(s.op)
		}
		if s.code != 0 {
			s.op = nil
		}
	}
	for i := range slots {
		if s := &slots[i]; s.op != nil {
			s.code = c.await(ctx, s.op)
		}
	}
}

// ReadShareGroupState (key 84, v0) returns each share-partition's state.
// A leader epoch older than the stored one gets FENCED_LEADER_EPOCH; a
// newer one is recorded first (a write), which fences the previous leader's
// writes. A share-partition without state answers start offset -1, state
// epoch 0 and no batches.
func (c *Coordinator) ReadShareGroupState(ctx context.Context, req *kmsg.ReadShareGroupStateRequest) *kmsg.ReadShareGroupStateResponse {
	resp := req.ResponseKind().(*kmsg.ReadShareGroupStateResponse)
	s := newSlotter(req.GroupID)
	for _, t := range req.Topics {
		rt := kmsg.NewReadShareGroupStateResponseTopic()
		rt.TopicID = t.TopicID
		for _, p := range t.Partitions {
			s.add(t.TopicID, p.Partition, p.LeaderEpoch, len(resp.Topics), func() int {
				rp := kmsg.NewReadShareGroupStateResponseTopicPartition()
				rp.Partition = p.Partition
				rt.Partitions = append(rt.Partitions, rp)
				return len(rt.Partitions) - 1
			})
		}
		if len(rt.Partitions) > 0 {
			resp.Topics = append(resp.Topics, rt)
		}
	}
	for i := range s.out {
		sl := &s.out[i]
		if sl.code != 0 {
			continue
		}
		e, code := c.peek(sl.key)
		switch {
		case code != 0:
			sl.code = code
		case e == nil:
		case sl.epoch >= 0 && sl.epoch < e.st.LeaderEpoch:
			sl.code = kerr.FencedLeaderEpoch.Code
		case sl.epoch > e.st.LeaderEpoch:
			sl.op = &op{kind: opLeader, key: sl.key, leaderEpoch: sl.epoch}
		}
	}
	c.awaitAll(ctx, s.out)
	for _, sl := range s.out {
		rp := &resp.Topics[sl.ti].Partitions[sl.pi]
		code := sl.code
		var e *entry
		if code == 0 {
			e, code = c.peek(sl.key)
		}
		if code == 0 && e != nil && sl.epoch >= 0 && sl.epoch < e.st.LeaderEpoch {
			code = kerr.FencedLeaderEpoch.Code
		}
		if code != 0 {
			rp.ErrorCode, rp.StartOffset = code, -1
			continue
		}
		if e == nil {
			rp.StartOffset = -1
			continue
		}
		readPartition(rp, e.st)
	}
	return resp
}

// ReadShareGroupStateSummary (key 87, v0-1) returns each share-partition's
// start offset, state epoch and leader epoch, and in v1 its delivery
// complete count (Acknowledged and Archived offsets at or above the start
// offset, KIP-1226). It never writes. A share-partition without state
// answers start offset -1 and epochs 0.
func (c *Coordinator) ReadShareGroupStateSummary(_ context.Context, req *kmsg.ReadShareGroupStateSummaryRequest) *kmsg.ReadShareGroupStateSummaryResponse {
	resp := req.ResponseKind().(*kmsg.ReadShareGroupStateSummaryResponse)
	s := newSlotter(req.GroupID)
	for _, t := range req.Topics {
		rt := kmsg.NewReadShareGroupStateSummaryResponseTopic()
		rt.TopicID = t.TopicID
		for _, p := range t.Partitions {
			s.add(t.TopicID, p.Partition, p.LeaderEpoch, len(resp.Topics), func() int {
				rp := kmsg.NewReadShareGroupStateSummaryResponseTopicPartition()
				rp.Partition = p.Partition
				rt.Partitions = append(rt.Partitions, rp)
				return len(rt.Partitions) - 1
			})
		}
		if len(rt.Partitions) > 0 {
			resp.Topics = append(resp.Topics, rt)
		}
	}
	for _, sl := range s.out {
		rp := &resp.Topics[sl.ti].Partitions[sl.pi]
		code := sl.code
		var e *entry
		if code == 0 {
			e, code = c.peek(sl.key)
		}
		if code == 0 && e != nil && sl.epoch >= 0 && sl.epoch < e.st.LeaderEpoch {
			code = kerr.FencedLeaderEpoch.Code
		}
		switch {
		case code != 0:
			rp.ErrorCode, rp.StartOffset = code, -1
		case e == nil:
			rp.StartOffset = -1
		default:
			rp.StateEpoch, rp.LeaderEpoch, rp.StartOffset = e.st.StateEpoch, e.st.LeaderEpoch, e.st.StartOffset
			rp.DeliveryCompleteCount = int32(min(deliveryComplete(e.st), 1<<31-1))
		}
	}
	return resp
}

// WriteShareGroupState (key 85, v0-1) stores each share-partition's state:
// the sent batches replace the stored ones where they overlap, and
// everything below the new start offset (-1: unchanged) is dropped. An
// older state epoch gets FENCED_STATE_EPOCH, an older leader epoch
// FENCED_LEADER_EPOCH; a newer state epoch replaces the state whole.
// Malformed batches (negative or reversed offsets, unknown states, more
// than Config.MaxBatches) get INVALID_REQUEST. The v1 delivery complete
// count is recomputed from the batches, not trusted.
func (c *Coordinator) WriteShareGroupState(ctx context.Context, req *kmsg.WriteShareGroupStateRequest) *kmsg.WriteShareGroupStateResponse {
	resp := req.ResponseKind().(*kmsg.WriteShareGroupStateResponse)
	s := newSlotter(req.GroupID)
	for _, t := range req.Topics {
		rt := kmsg.NewWriteShareGroupStateResponseTopic()
		rt.TopicID = t.TopicID
		for i := range t.Partitions {
			p := &t.Partitions[i]
			if !s.add(t.TopicID, p.Partition, p.LeaderEpoch, len(resp.Topics), func() int {
				rp := kmsg.NewWriteShareGroupStateResponseTopicPartition()
				rp.Partition = p.Partition
				rt.Partitions = append(rt.Partitions, rp)
				return len(rt.Partitions) - 1
			}) {
				continue
			}
			sl := &s.out[len(s.out)-1]
			if sl.code != 0 {
				continue
			}
			batches, dl, code := writeBatches(p, c.cfg.MaxBatches)
			if code == 0 && p.StartOffset < -1 {
				code = kerr.InvalidRequest.Code
			}
			sl.code = code
			sl.op = &op{kind: opWrite, key: sl.key, stateEpoch: p.StateEpoch, leaderEpoch: p.LeaderEpoch,
				startOffset: p.StartOffset, batches: batches, deadLetter: dl}
		}
		if len(rt.Partitions) > 0 {
			resp.Topics = append(resp.Topics, rt)
		}
	}
	c.awaitAll(ctx, s.out)
	for _, sl := range s.out {
		resp.Topics[sl.ti].Partitions[sl.pi].ErrorCode = sl.code
	}
	return resp
}

// InitializeShareGroupState (key 83, v0) gives each share-partition a new
// state: the sent state epoch, which must be newer than the stored one
// (else FENCED_STATE_EPOCH), and start offset, with no batches. The
// partition leader's next write carries the old state epoch and is
// fenced, so it reads the new state (AlterShareGroupOffsets).
func (c *Coordinator) InitializeShareGroupState(ctx context.Context, req *kmsg.InitializeShareGroupStateRequest) *kmsg.InitializeShareGroupStateResponse {
	resp := req.ResponseKind().(*kmsg.InitializeShareGroupStateResponse)
	s := newSlotter(req.GroupID)
	for _, t := range req.Topics {
		rt := kmsg.NewInitializeShareGroupStateResponseTopic()
		rt.TopicID = t.TopicID
		for _, p := range t.Partitions {
			if !s.add(t.TopicID, p.Partition, -1, len(resp.Topics), func() int {
				rp := kmsg.NewInitializeShareGroupStateResponseTopicPartition()
				rp.Partition = p.Partition
				rt.Partitions = append(rt.Partitions, rp)
				return len(rt.Partitions) - 1
			}) {
				continue
			}
			sl := &s.out[len(s.out)-1]
			if p.StartOffset < -1 || p.StateEpoch < 0 {
				sl.code = kerr.InvalidRequest.Code
			}
			sl.op = &op{kind: opInitialize, key: sl.key, stateEpoch: p.StateEpoch, startOffset: p.StartOffset}
		}
		if len(rt.Partitions) > 0 {
			resp.Topics = append(resp.Topics, rt)
		}
	}
	c.awaitAll(ctx, s.out)
	for _, sl := range s.out {
		resp.Topics[sl.ti].Partitions[sl.pi].ErrorCode = sl.code
	}
	return resp
}

// DeleteShareGroupState (key 86, v0) removes each share-partition's state
// (tombstones for its snapshot and update keys). Deleting a state that
// does not exist succeeds.
func (c *Coordinator) DeleteShareGroupState(ctx context.Context, req *kmsg.DeleteShareGroupStateRequest) *kmsg.DeleteShareGroupStateResponse {
	resp := req.ResponseKind().(*kmsg.DeleteShareGroupStateResponse)
	s := newSlotter(req.GroupID)
	for _, t := range req.Topics {
		rt := kmsg.NewDeleteShareGroupStateResponseTopic()
		rt.TopicID = t.TopicID
		for _, p := range t.Partitions {
			if !s.add(t.TopicID, p.Partition, -1, len(resp.Topics), func() int {
				rp := kmsg.NewDeleteShareGroupStateResponseTopicPartition()
				rp.Partition = p.Partition
				rt.Partitions = append(rt.Partitions, rp)
				return len(rt.Partitions) - 1
			}) {
				continue
			}
			sl := &s.out[len(s.out)-1]
			sl.op = &op{kind: opDelete, key: sl.key}
		}
		if len(rt.Partitions) > 0 {
			resp.Topics = append(resp.Topics, rt)
		}
	}
	c.awaitAll(ctx, s.out)
	for _, sl := range s.out {
		resp.Topics[sl.ti].Partitions[sl.pi].ErrorCode = sl.code
	}
	return resp
}
