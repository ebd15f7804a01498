package broker

// DeleteGroups: v0-3. The group coordinator (package coordinator) implements it;
// see its delete.go for the per-version behaviour.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) deleteGroupsAPI() api {
	return api{key: 42, min: 0, max: 3, handle: b.handleDeleteGroups}
}

func (b *Broker) handleDeleteGroups(ctx context.Context, r *request) (kmsg.Response, error) {
	return b.coord.DeleteGroups(b.clientCtx(ctx, r), r.req.(*kmsg.DeleteGroupsRequest)), nil
}
