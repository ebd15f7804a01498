package broker

// DeleteShareGroupState: v0 (KIP-932).
//
// Sent to the share coordinator to remove share-partitions' state
// (DeleteShareGroupOffsets, DeleteGroups of a share group). Served by
// coordinator/sharestate. Kafka reserves the API for brokers
// (CLUSTER_ACTION); Sluice has no authorizer yet.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) deleteShareGroupStateAPI() api {
	return api{key: 86, min: 0, max: 0, handle: b.handleDeleteShareGroupState}
}

func (b *Broker) handleDeleteShareGroupState(ctx context.Context, r *request) (kmsg.Response, error) {
	return b.shareState.DeleteShareGroupState(ctx, r.req.(*kmsg.DeleteShareGroupStateRequest)), nil
}
