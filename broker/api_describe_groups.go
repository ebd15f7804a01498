package broker

// DescribeGroups: v0-6. The group coordinator (package coordinator) implements it;
// see its describe.go for the per-version behaviour.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) describeGroupsAPI() api {
	return api{key: 15, min: 0, max: 6, handle: b.handleDescribeGroups}
}

func (b *Broker) handleDescribeGroups(ctx context.Context, r *request) (kmsg.Response, error) {
	return b.coord.DescribeGroups(b.clientCtx(ctx, r), r.req.(*kmsg.DescribeGroupsRequest)), nil
}
