package broker

// ConsumerGroupHeartbeat: v0-1. The group coordinator (package coordinator) implements it;
// see its consumer_heartbeat.go for the per-version behaviour. With
// group.version finalized at 0 the protocol is off, as in Kafka:
// UNSUPPORTED_VERSION (and ApiVersions leaves the API out).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) consumerGroupHeartbeatAPI() api {
	return api{key: 68, min: 0, max: 1, handle: b.handleConsumerGroupHeartbeat}
}

func (b *Broker) handleConsumerGroupHeartbeat(ctx context.Context, r *request) (kmsg.Response, error) {
	if b.featureLevel(featureGroupVersion) < 1 {
		resp := r.req.(*kmsg.ConsumerGroupHeartbeatRequest).ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		resp.ErrorMessage = kmsg.StringPtr("the consumer group protocol is off (group.version 0)")
		return resp, nil
	}
	return b.coord.ConsumerGroupHeartbeat(b.clientCtx(ctx, r), r.req.(*kmsg.ConsumerGroupHeartbeatRequest)), nil
}
