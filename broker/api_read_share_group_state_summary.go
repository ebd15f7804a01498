package broker

// ReadShareGroupStateSummary: v0-1 (KIP-932; v1 adds the delivery complete
// count, KIP-1226).
//
// Sent to the share coordinator for DescribeShareGroupOffsets: each
// share-partition's start offset, state epoch and leader epoch, without
// its batches. Served by coordinator/sharestate. Kafka reserves the API
// for brokers (CLUSTER_ACTION); Sluice has no authorizer yet.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) readShareGroupStateSummaryAPI() api {
	return api{key: 87, min: 0, max: 1, handle: b.handleReadShareGroupStateSummary}
}

func (b *Broker) handleReadShareGroupStateSummary(ctx context.Context, r *request) (kmsg.Response, error) {
	return b.shareState.ReadShareGroupStateSummary(ctx, r.req.(*kmsg.ReadShareGroupStateSummaryRequest)), nil
}
