package broker

// Heartbeat: v0-4. The group coordinator (package coordinator) implements it;
// see its heartbeat.go for the per-version behaviour.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) heartbeatAPI() api {
	return api{key: 12, min: 0, max: 4, handle: b.handleHeartbeat}
}

func (b *Broker) handleHeartbeat(ctx context.Context, r *request) (kmsg.Response, error) {
	return b.coord.Heartbeat(b.clientCtx(ctx, r), r.req.(*kmsg.HeartbeatRequest)), nil
}
