package broker

// JoinGroup: v0-9. The group coordinator (package coordinator) implements it;
// see its join.go for the per-version behaviour.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) joinGroupAPI() api {
	return api{key: 11, min: 0, max: 9, handle: b.handleJoinGroup}
}

func (b *Broker) handleJoinGroup(ctx context.Context, r *request) (kmsg.Response, error) {
	return b.coord.JoinGroup(b.clientCtx(ctx, r), r.req.(*kmsg.JoinGroupRequest)), nil
}
