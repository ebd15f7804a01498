package broker

// ShareGroupHeartbeat: v1 (KIP-932). The group coordinator (package
// coordinator/group) implements it; see its share_heartbeat.go for the
// behaviour. v0 (Kafka 4.0's early access) is not served, as in Kafka 4.1+.
// While share groups are disabled (the finalized share.version is 0) the
// answer is UNSUPPORTED_VERSION, as Kafka's.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) shareGroupHeartbeatAPI() api {
	return api{key: 76, min: 1, max: 1, handle: b.handleShareGroupHeartbeat}
}

func (b *Broker) handleShareGroupHeartbeat(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.ShareGroupHeartbeatRequest)
	if !b.shareEnabled() {
		resp := req.ResponseKind().(*kmsg.ShareGroupHeartbeatResponse)
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		return resp, nil
	}
	return b.coord.ShareGroupHeartbeat(b.clientCtx(ctx, r), req), nil
}
