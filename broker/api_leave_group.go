package broker

// LeaveGroup: v0-5. The group coordinator (package coordinator) implements it;
// see its leave.go for the per-version behaviour.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) leaveGroupAPI() api {
	return api{key: 13, min: 0, max: 5, handle: b.handleLeaveGroup}
}

func (b *Broker) handleLeaveGroup(ctx context.Context, r *request) (kmsg.Response, error) {
	return b.coord.LeaveGroup(b.clientCtx(ctx, r), r.req.(*kmsg.LeaveGroupRequest)), nil
}
