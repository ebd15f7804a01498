package broker

// WriteShareGroupState: v0-1 (KIP-932; v1 carries the delivery complete
// count, KIP-1226).
//
// Partition leaders send it to the share coordinator before they answer an
// acknowledgement: the changed state batches merge over the stored ones,
// the start offset moves, older state or leader epochs are fenced. Served
// by coordinator/sharestate. Kafka reserves the API for brokers
// (CLUSTER_ACTION); Sluice has no authorizer yet.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) writeShareGroupStateAPI() api {
	return api{key: 85, min: 0, max: 1, handle: b.handleWriteShareGroupState}
}

func (b *Broker) handleWriteShareGroupState(ctx context.Context, r *request) (kmsg.Response, error) {
	return b.shareState.WriteShareGroupState(ctx, r.req.(*kmsg.WriteShareGroupStateRequest)), nil
}
