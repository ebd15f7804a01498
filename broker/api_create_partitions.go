package broker

// CreatePartitions: v0-3.
//
// Added partitions count against controller_mutation_rate (KIP-599): v3
// answers THROTTLING_QUOTA_EXCEEDED while the quota is exhausted, older
// versions are served and throttled.
//
// Partitions can only be added (INVALID_PARTITIONS for a count at or below
// the current one). An explicit assignment lists replicas for the new
// partitions only. ValidateOnly runs the checks and changes nothing. The new
// count is written with compare-and-swap on the topic's etcd revision, so a
// concurrent change makes this request fail rather than be lost. A topic
// named more than once is answered once with INVALID_REQUEST; a request that
// would add more than maxRecordsPerUserOp partitions in all changes nothing
// and every topic gets POLICY_VIOLATION, as from Kafka's controller.

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/broker/quota"
	"github.com/sluicedev/sluice/metadata"
)

func (b *Broker) createPartitionsAPI() api {
	return api{key: 37, min: 0, max: 3, handle: b.handleCreatePartitions}
}

func (b *Broker) handleCreatePartitions(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.CreatePartitionsRequest)
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	mq := b.mutationQuota(r, req.Version >= 3)
	dup := repeated(len(req.Topics), func(i int) string { return req.Topics[i].Topic })
	var added int64
	for _, rt := range req.Topics {
		if ts := b.topics.get(rt.Topic); ts != nil && !dup[rt.Topic] {
			added += max(int64(rt.Count)-int64(ts.meta().Partitions), 0)
		}
	}
	var once onceSet
	for _, rt := range req.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		switch {
		case dup[rt.Topic]:
			if !once.first(rt.Topic) {
				continue // a repeated name is answered once, as in Kafka
			}
			st.ErrorCode, st.ErrorMessage = kerr.InvalidRequest.Code, kmsg.StringPtr("Duplicate topic name.")
		case added > maxRecordsPerUserOp:
			st.ErrorCode, st.ErrorMessage = policyViolationTooLarge()
		default:
			st.ErrorCode, st.ErrorMessage = b.createPartitions(ctx, rt, req.ValidateOnly, mq)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

func (b *Broker) createPartitions(ctx context.Context, rt kmsg.CreatePartitionsRequestTopic, validateOnly bool, mq *quota.Mutations) (int16, *string) {
	ts := b.topics.get(rt.Topic)
	if ts == nil {
		return kerr.UnknownTopicOrPartition.Code, nil
	}
	m := ts.meta()
	if rt.Count <= m.Partitions {
		return kerr.InvalidPartitions.Code, kmsg.StringPtr(fmt.Sprintf("topic currently has %d partitions, which is higher than or equal to the requested %d", m.Partitions, rt.Count))
	}
	added := rt.Count - m.Partitions
	spec := topicSpec{name: m.Name, partitions: added, replicationFactor: m.ReplicationFactor}
	if spec.replicationFactor <= 0 {
		spec.replicationFactor = 1
	}
	if rt.Assignment != nil {
		if int32(len(rt.Assignment)) != added {
			return kerr.InvalidReplicaAssignment.Code, kmsg.StringPtr(fmt.Sprintf("increasing the number of partitions by %d but %d assignments provided", added, len(rt.Assignment)))
		}
		for _, a := range rt.Assignment {
			spec.assignment = append(spec.assignment, a.Replicas)
		}
	}
	assign, code, msg := b.assignReplicas(spec, m.Partitions)
	if code != 0 {
		return code, msg
	}
	if validateOnly {
		return 0, nil
	}
	if code, msg := admitMutations(mq, added); code != 0 {
		return code, msg
	}
	m.Replicas = append(append([][]int32{}, m.Replicas...), assign...)
	m.Partitions = rt.Count
	updated, err := b.meta.UpdateTopic(ctx, m)
	switch {
	case errors.Is(err, metadata.ErrConflict):
		return kerr.ConcurrentTransactions.Code, kmsg.StringPtr("the topic changed concurrently; retry")
	case errors.Is(err, metadata.ErrTopicNotFound):
		return kerr.UnknownTopicOrPartition.Code, nil
	case err != nil:
		return kerr.UnknownServerError.Code, kmsg.StringPtr(err.Error())
	}
	if err := b.applyTopic(updated); err != nil {
		return kerr.KafkaStorageError.Code, kmsg.StringPtr(err.Error())
	}
	if err := b.initPartitionStates(ctx, updated, rt.Count-added); err != nil {
		b.log.Warn("writing partition states of new partitions", "topic", m.Name, "err", err)
	}
	return 0, nil
}
