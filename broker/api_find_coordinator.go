package broker

// FindCoordinator: v0-6.
//
// Groups are coordinated by the leader of their __consumer_offsets
// partition (Kafka's abs(hashCode(groupId)) % offsets.topic.num.partitions),
// which is created on first use. v4+ asks for many keys at once (KIP-699).
// Transaction coordinators (key type 1) do not exist yet: INVALID_REQUEST.
// Share-group coordinators (key type 2) likewise. A key given more than
// once is answered once: each answer is many times the size of its key.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/coordinator/group"
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
	if typ != 0 {
		c.ErrorCode = kerr.InvalidRequest.Code
		c.ErrorMessage = kmsg.StringPtr("only group coordinators are supported; transactions are not supported yet")
		return c
	}
	if err := b.ensureOffsetsTopic(ctx); err != nil {
		b.log.Warn("find coordinator", "err", err)
		c.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return c
	}
	ts := b.topics.get(offsetsTopic)
	if ts == nil {
		c.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return c
	}
	p := group.PartitionFor(key, ts.meta().Partitions)
	leader := b.leaderOf(ts.meta(), p)
	for _, br := range b.liveBrokers() {
		if br.NodeID == leader {
			c.NodeID, c.Host, c.Port = br.NodeID, br.Host, br.Port
			return c
		}
	}
	c.ErrorCode = kerr.CoordinatorNotAvailable.Code
	return c
}
