package broker

// ListOffsets: v1-8.
//
// Special timestamps: -1 latest (the high watermark, or the last stable
// offset under read_committed, KIP-98), -2 earliest (the log start offset),
// -3 the record with the largest timestamp (KIP-734, v7+), -4 earliest local
// (KIP-405, v8+; everything is local here). Any other timestamp finds the
// first record whose timestamp is at or after it below the same bound,
// using the time index to find the batch and decoding that batch for the
// exact record. v4+ reports the leader epoch (KIP-320) and fences stale or
// future epochs. A partition given more than once gets INVALID_REQUEST, as
// in Kafka (ListOffsetsRequest.duplicatePartitions), once rather than for
// every copy, so repeats cannot multiply the response.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/protocol/batch"
	"github.com/sluicedev/sluice/replication"
)

func (b *Broker) listOffsetsAPI() api {
	return api{key: 2, min: 1, max: 8, handle: b.handleListOffsets}
}

func (b *Broker) handleListOffsets(_ context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.ListOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	topics := req.Topics
	dup := partList{
		n:     len(topics),
		topic: func(i int) string { return topics[i].Topic },
		count: func(i int) int { return len(topics[i].Partitions) },
		part:  func(i, k int) int32 { return topics[i].Partitions[k].Partition },
	}.repeated()
	answered := map[tp]bool{}
	for _, rt := range req.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		ts := b.topics.get(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.Timestamp, sp.Offset, sp.LeaderEpoch = -1, -1, -1
			if k := (tp{rt.Topic, rp.Partition}); dup[k] {
				if answered[k] {
					continue
				}
				answered[k] = true
				sp.ErrorCode = kerr.InvalidRequest.Code
			} else {
				b.listOffset(ts, rp, req.ReplicaID, req.IsolationLevel, &sp)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		if len(st.Partitions) > 0 || len(rt.Partitions) == 0 { // not only repeats answered before
			resp.Topics = append(resp.Topics, st)
		}
	}
	return resp, nil
}

func (b *Broker) listOffset(ts *topicState, rp kmsg.ListOffsetsRequestTopicPartition, replicaID int32, isolation int8, sp *kmsg.ListOffsetsResponseTopicPartition) {
	if ts == nil || rp.Partition < 0 || rp.Partition >= ts.meta().Partitions {
		sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
		return
	}
	p := ts.partition(rp.Partition)
	if p == nil {
		sp.ErrorCode = kerr.NotLeaderForPartition.Code
		return
	}
	hw, epoch, code := p.rep.readBound(rp.CurrentLeaderEpoch)
	if code != 0 {
		sp.ErrorCode = code
		return
	}
	if replicaID >= 0 {
		// A follower recovering from OFFSET_OUT_OF_RANGE sees the whole
		// log, not just the committed part.
		hw = p.log.LogEndOffset()
	} else if code := p.rep.checkListOffsets(); code != 0 {
		sp.ErrorCode = code
		return
	} else if isolation == readCommitted {
		hw = min(hw, p.log.LastStableOffset())
	}
	switch rp.Timestamp {
	case -1:
		sp.Offset, sp.LeaderEpoch = hw, epoch
	case -2, -4:
		sp.Offset, sp.LeaderEpoch = p.log.LogStartOffset(), p.epochAt(p.log.LogStartOffset())
	case -3:
		tsMax, off := p.log.MaxTimestamp()
		if off >= 0 && off < hw {
			sp.Timestamp, sp.Offset, sp.LeaderEpoch = tsMax, off, p.epochAt(off)
		}
	default:
		if rp.Timestamp < 0 {
			sp.ErrorCode = kerr.InvalidRequest.Code
			return
		}
		b.offsetForTime(p, rp.Timestamp, hw, sp)
	}
}

// offsetForTime finds the first record at or after ts below hw.
func (b *Broker) offsetForTime(p *partition, ts, hw int64, sp *kmsg.ListOffsetsResponseTopicPartition) {
	off, _, ok, err := p.log.OffsetForTimestamp(ts)
	if err != nil {
		sp.ErrorCode = kerr.KafkaStorageError.Code
		return
	}
	for ok && off < hw {
		data, err := p.log.Read(off, 1, hw)
		if err != nil || len(data) == 0 {
			return
		}
		one, _, err := batch.Next(data)
		if err != nil {
			return
		}
		h, _ := batch.ParseHeader(one)
		if h.MaxTimestamp >= ts {
			if recOff, recTS, found := b.firstRecordAtOrAfter(one, h, ts); found {
				sp.Offset, sp.Timestamp, sp.LeaderEpoch = recOff, recTS, h.PartitionLeaderEpoch
				return
			}
		}
		off = h.NextOffset()
	}
}

// firstRecordAtOrAfter decodes one batch and returns its first record whose
// timestamp is at or after ts.
func (b *Broker) firstRecordAtOrAfter(one []byte, h batch.Header, ts int64) (int64, int64, bool) {
	if h.LogAppendTime() {
		return h.BaseOffset, h.MaxTimestamp, h.MaxTimestamp >= ts
	}
	_, recs, err := b.decodeRecords(one)
	if err != nil {
		return h.BaseOffset, h.MaxTimestamp, true
	}
	for _, rec := range recs {
		rts := h.FirstTimestamp + rec.TimestampDelta64
		if rts >= ts {
			return h.BaseOffset + int64(rec.OffsetDelta), rts, true
		}
	}
	return 0, 0, false
}

// epochAt is the leader epoch of the batch holding offset, or -1.
func (p *partition) epochAt(offset int64) int32 {
	data, err := p.log.Read(offset, 1, p.log.LogEndOffset())
	if err != nil || len(data) < batch.HeaderSize {
		return -1
	}
	h, err := batch.ParseHeader(data)
	if err != nil {
		return -1
	}
	return h.PartitionLeaderEpoch
}

// checkListOffsets answers OFFSET_NOT_AVAILABLE while a new leader's HW
// has not reached the start of its epoch, so a consumer's "latest" never
// goes backwards (Kafka's Partition.fetchOffsetForTimestamp).
func (r *replica) checkListOffsets() int16 {
	var code int16
	if err := r.withLeader(func(l *replication.Leader) { code = errorCode(l.CheckListOffsets()) }); err != nil {
		return kerr.NotLeaderForPartition.Code
	}
	return code
}
