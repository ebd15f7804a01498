package broker

// ListGroups: v0-5. The group coordinator (package coordinator) implements it;
// see its list.go for the per-version behaviour.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) listGroupsAPI() api {
	return api{key: 16, min: 0, max: 5, handle: b.handleListGroups}
}

func (b *Broker) handleListGroups(ctx context.Context, r *request) (kmsg.Response, error) {
	return b.coord.ListGroups(b.clientCtx(ctx, r), r.req.(*kmsg.ListGroupsRequest)), nil
}
