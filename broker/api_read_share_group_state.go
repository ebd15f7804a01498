package broker

// ReadShareGroupState: v0 (KIP-932).
//
// Partition leaders send it to the share coordinator when they start
// serving a share-partition: the stored state (start offset, state epoch,
// state batches with Sluice's NotBefore tag, the dead-letter producer tag).
// A newer leader epoch is recorded, fencing the previous leader's writes.
// Served by coordinator/sharestate. Kafka reserves the API for brokers
// (CLUSTER_ACTION); Sluice has no authorizer yet.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) readShareGroupStateAPI() api {
	return api{key: 84, min: 0, max: 0, handle: b.handleReadShareGroupState}
}

func (b *Broker) handleReadShareGroupState(ctx context.Context, r *request) (kmsg.Response, error) {
	return b.shareState.ReadShareGroupState(ctx, r.req.(*kmsg.ReadShareGroupStateRequest)), nil
}
