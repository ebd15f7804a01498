package broker

// FindCoordinator: v0-6.
//
// Groups (key type 0) are coordinated by the leader of their
// __consumer_offsets partition (Kafka's abs(hashCode(groupId)) %
// offsets.topic.num.partitions), transactional ids (key type 1) by the
// leader of their __transaction_state partition (the same hash, modulo
// transaction.state.log.num.partitions); either topic is created on first
// use. Share coordinators (key type 2, KIP-932) are the leaders of the
// __share_group_state partition of their key "group:topicId:partition"
// (the same hash, modulo share.coordinator.state.topic.num.partitions); a
// malformed key gets INVALID_REQUEST. v4+ asks for many keys at once
// (KIP-699). A key given more than once is answered once: each answer is
// many times the size of its key.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/coordinator"
	"github.com/sluicedev/sluice/coordinator/sharestate"
	"github.com/sluicedev/sluice/internal/uniq"
)

func (b *Broker) findCoordinatorAPI() api {
	return api{key: 10, min: 0, max: 6, handle: b.handleFindCoordinator}
}

func (b *Broker) handleFindCoordinator(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.FindCoordinatorRequest)
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	if req.Version < 4 {
		c := b.findCoordinator(ctx, req.CoordinatorKey, req.CoordinatorType)
		resp.ErrorCode, resp.ErrorMessage = c.ErrorCode, c.ErrorMessage
		resp.NodeID, resp.Host, resp.Port = c.NodeID, c.Host, c.Port
		return resp, nil
	}
	for _, key := range uniq.Strings(req.CoordinatorKeys) { // a repeated key is answered once
		resp.Coordinators = append(resp.Coordinators, b.findCoordinator(ctx, key, req.CoordinatorType))
	}
	return resp, nil
}

func (b *Broker) findCoordinator(ctx context.Context, key string, typ int8) kmsg.FindCoordinatorResponseCoordinator {
	c := kmsg.NewFindCoordinatorResponseCoordinator()
	c.Key, c.NodeID, c.Port = key, -1, -1
	var topic string
	var ensure func(context.Context) error
	switch typ {
	case 0:
		topic, ensure = offsetsTopic, b.ensureOffsetsTopic
	case 1:
		topic, ensure = txnStateTopic, b.ensureTxnTopic
	case 2:
		if _, ok := sharestate.ParseCoordinatorKey(key); !ok {
			c.ErrorCode = kerr.InvalidRequest.Code
			c.ErrorMessage = kmsg.StringPtr("a share coordinator key is group:topicId:partition")
			return c
		}
		topic, ensure = shareStateTopic, b.ensureShareStateTopic
	default:
		c.ErrorCode = kerr.InvalidRequest.Code
		return c
	}
	if err := ensure(ctx); err != nil {
		b.log.Warn("find coordinator", "key_type", typ, "err", err)
		c.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return c
	}
	ts := b.topics.get(topic)
	if ts == nil {
		c.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return c
	}
	leader := b.leaderOf(ts.meta(), coordinator.PartitionFor(key, ts.meta().Partitions))
	for _, br := range b.liveBrokers() {
		if br.NodeID == leader {
			c.NodeID, c.Host, c.Port = br.NodeID, br.Host, br.Port
			return c
		}
	}
	c.ErrorCode = kerr.CoordinatorNotAvailable.Code
	return c
}
