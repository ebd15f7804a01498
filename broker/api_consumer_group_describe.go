package broker

// ConsumerGroupDescribe: v0-1. The group coordinator (package coordinator) implements it;
// see its consumer_describe.go for the per-version behaviour.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) consumerGroupDescribeAPI() api {
	return api{key: 69, min: 0, max: 1, handle: b.handleConsumerGroupDescribe}
}

func (b *Broker) handleConsumerGroupDescribe(ctx context.Context, r *request) (kmsg.Response, error) {
	return b.coord.ConsumerGroupDescribe(b.clientCtx(ctx, r), r.req.(*kmsg.ConsumerGroupDescribeRequest)), nil
}
