package broker

// SyncGroup: v0-5. The group coordinator (package coordinator) implements it;
// see its sync.go for the per-version behaviour.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) syncGroupAPI() api {
	return api{key: 14, min: 0, max: 5, handle: b.handleSyncGroup}
}

func (b *Broker) handleSyncGroup(ctx context.Context, r *request) (kmsg.Response, error) {
	return b.coord.SyncGroup(b.clientCtx(ctx, r), r.req.(*kmsg.SyncGroupRequest)), nil
}
