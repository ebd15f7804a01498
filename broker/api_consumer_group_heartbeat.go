package broker

// ConsumerGroupHeartbeat: v0-1. The group coordinator (package coordinator) implements it;
// see its consumer_heartbeat.go for the per-version behaviour.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) consumerGroupHeartbeatAPI() api {
	return api{key: 68, min: 0, max: 1, handle: b.handleConsumerGroupHeartbeat}
}

func (b *Broker) handleConsumerGroupHeartbeat(ctx context.Context, r *request) (kmsg.Response, error) {
	return b.coord.ConsumerGroupHeartbeat(b.clientCtx(ctx, r), r.req.(*kmsg.ConsumerGroupHeartbeatRequest)), nil
}
