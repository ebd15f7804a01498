package broker

// InitializeShareGroupState: v0 (KIP-932).
//
// Sent to the share coordinator of each share-partition (the leader of its
// __share_group_state partition) to give it a new state epoch and start
// offset, as AlterShareGroupOffsets does; served by coordinator/sharestate.
// Kafka reserves the API for brokers (CLUSTER_ACTION); Sluice has no
// authorizer yet, as Kafka without one.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) initializeShareGroupStateAPI() api {
	return api{key: 83, min: 0, max: 0, handle: b.handleInitializeShareGroupState}
}

func (b *Broker) handleInitializeShareGroupState(ctx context.Context, r *request) (kmsg.Response, error) {
	return b.shareState.InitializeShareGroupState(ctx, r.req.(*kmsg.InitializeShareGroupStateRequest)), nil
}
