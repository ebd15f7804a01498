package broker

// OffsetForLeaderEpoch: v0-4.
//
// KIP-101 and KIP-279: for a requested epoch, the largest epoch at or below
// it that this log knows and the offset where the next epoch began (the log
// end offset for the latest epoch). Clients use it to detect log truncation
// after a leader change (KIP-320); followers use it to truncate a divergent
// tail. CurrentLeaderEpoch (v2+) fences stale callers.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/replication"
)

func (b *Broker) offsetForLeaderEpochAPI() api {
	return api{key: 23, min: 0, max: 4, handle: b.handleOffsetForLeaderEpoch}
}

func (b *Broker) handleOffsetForLeaderEpoch(_ context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.OffsetForLeaderEpochRequest)
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		ts := b.topics.get(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LeaderEpoch, sp.EndOffset = -1, -1
			sp.ErrorCode = b.epochEndOffset(ts, rp, &sp)
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

func (b *Broker) epochEndOffset(ts *topicState, rp kmsg.OffsetForLeaderEpochRequestTopicPartition, sp *kmsg.OffsetForLeaderEpochResponseTopicPartition) int16 {
	if ts == nil || rp.Partition < 0 || rp.Partition >= ts.meta().Partitions {
		return kerr.UnknownTopicOrPartition.Code
	}
	p := ts.partition(rp.Partition)
	if p == nil {
		return kerr.NotLeaderForPartition.Code
	}
	var code int16
	err := p.rep.withLeader(func(l *replication.Leader) {
		ee, err := l.EndOffsetForEpoch(rp.CurrentLeaderEpoch, rp.LeaderEpoch)
		sp.LeaderEpoch, sp.EndOffset = ee.Epoch, ee.EndOffset
		code = errorCode(err)
	})
	if err != nil {
		return kerr.NotLeaderForPartition.Code
	}
	return code
}
