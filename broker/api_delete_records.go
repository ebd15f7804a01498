package broker

// DeleteRecords: v0-2.
//
// Moves a partition's log start offset forward. Offset -1 means the high
// watermark (the last stable offset while a transaction is open); an offset
// past it is OFFSET_OUT_OF_RANGE. Unlike Kafka, which bounds it by the high
// watermark alone, Sluice never deletes records of a transaction that is
// still open, so a read_committed consumer never loses them. The new start is
// persisted by the storage layer and whole segments below it are removed.
// A partition given more than once is moved once, to the last offset given
// for it, and answered once, as Kafka's per-partition map does.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/storage"
)

func (b *Broker) deleteRecordsAPI() api {
	return api{key: 21, min: 0, max: 2, handle: b.handleDeleteRecords}
}

func (b *Broker) handleDeleteRecords(_ context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.DeleteRecordsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	topics := req.Topics
	if (partList{
		n:     len(topics),
		topic: func(i int) string { return topics[i].Topic },
		count: func(i int) int { return len(topics[i].Partitions) },
		part:  func(i, k int) int32 { return topics[i].Partitions[k].Partition },
	}).hasRepeated() {
		req.Topics = mergeLastWins(topics,
			func(t *kmsg.DeleteRecordsRequestTopic) string { return t.Topic },
			func(t *kmsg.DeleteRecordsRequestTopic) *[]kmsg.DeleteRecordsRequestTopicPartition {
				return &t.Partitions
			},
			func(p *kmsg.DeleteRecordsRequestTopicPartition) int32 { return p.Partition })
	}
	for _, rt := range req.Topics {
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		ts := b.topics.get(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LowWatermark = -1
			sp.ErrorCode, sp.LowWatermark = b.deleteRecords(ts, rp.Partition, rp.Offset)
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

func (b *Broker) deleteRecords(ts *topicState, part int32, offset int64) (int16, int64) {
	if ts == nil || part < 0 || part >= ts.meta().Partitions {
		return kerr.UnknownTopicOrPartition.Code, -1
	}
	p := ts.partition(part)
	if p == nil {
		return kerr.NotLeaderForPartition.Code, -1
	}
	hw, _, code := p.rep.readBound(-1)
	if code != 0 {
		return code, -1
	}
	// Records of a transaction still open stay for read_committed
	// consumers: nothing at or past the last stable offset is deleted.
	stable := min(hw, p.log.LastStableOffset())
	if offset == -1 {
		offset = stable
	}
	if offset < 0 || offset > stable {
		return kerr.OffsetOutOfRange.Code, -1
	}
	low, err := p.log.DeleteRecordsBefore(offset)
	if errors.Is(err, storage.ErrBeyondStableOffset) || errors.Is(err, storage.ErrOffsetOutOfRange) {
		return kerr.OffsetOutOfRange.Code, -1 // a transaction began or the log moved since the check
	}
	if err != nil {
		b.log.Error("delete records", "topic", ts.meta().Name, "partition", part, "err", err)
		return kerr.KafkaStorageError.Code, -1
	}
	return 0, low
}
