package broker

// DescribeProducers: v0 (KIP-664).
//
// For each partition this broker leads: the producers whose state its log
// keeps (idempotent and transactional), with the last sequence and
// timestamp, the coordinator epoch of their last marker and the first
// offset of their ongoing transaction, which is what an operator needs to
// find a transaction holding back the last stable offset. A partition named
// more than once is answered once.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) describeProducersAPI() api {
	return api{key: 61, min: 0, max: 0, handle: b.handleDescribeProducers}
}

func (b *Broker) handleDescribeProducers(_ context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.DescribeProducersRequest)
	resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
	topics := req.Topics
	if (partList{
		n:     len(topics),
		topic: func(i int) string { return topics[i].Topic },
		count: func(i int) int { return len(topics[i].Partitions) },
		part:  func(i, k int) int32 { return topics[i].Partitions[k] },
	}).hasRepeated() {
		topics = mergeLastWins(topics,
			func(t *kmsg.DescribeProducersRequestTopic) string { return t.Topic },
			func(t *kmsg.DescribeProducersRequestTopic) *[]int32 { return &t.Partitions },
			func(p *int32) int32 { return *p })
	}
	for _, rt := range topics {
		st := kmsg.NewDescribeProducersResponseTopic()
		st.Topic = rt.Topic
		ts := b.topics.get(rt.Topic)
		for _, p := range rt.Partitions {
			st.Partitions = append(st.Partitions, b.describeProducers(ts, p))
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

func (b *Broker) describeProducers(ts *topicState, p int32) kmsg.DescribeProducersResponseTopicPartition {
	sp := kmsg.NewDescribeProducersResponseTopicPartition()
	sp.Partition = p
	if ts == nil || p < 0 || p >= ts.meta().Partitions {
		sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
		return sp
	}
	part := ts.partition(p)
	if part == nil || !part.rep.leading.Load() {
		sp.ErrorCode = kerr.NotLeaderForPartition.Code
		return sp
	}
	for _, pi := range part.log.Producers() {
		ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
		ap.ProducerID, ap.ProducerEpoch = pi.ProducerID, int32(pi.ProducerEpoch)
		ap.LastSequence, ap.LastTimestamp = pi.LastSequence, pi.LastTimestamp
		ap.CoordinatorEpoch, ap.CurrentTxnStartOffset = pi.CoordinatorEpoch, pi.TxnStartOffset
		sp.ActiveProducers = append(sp.ActiveProducers, ap)
	}
	return sp
}
