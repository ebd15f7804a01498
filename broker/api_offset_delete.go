package broker

// OffsetDelete: v0-0. The group coordinator (package coordinator) implements it;
// see its offset_delete.go for the per-version behaviour.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) offsetDeleteAPI() api {
	return api{key: 47, min: 0, max: 0, handle: b.handleOffsetDelete}
}

func (b *Broker) handleOffsetDelete(ctx context.Context, r *request) (kmsg.Response, error) {
	return b.coord.OffsetDelete(b.clientCtx(ctx, r), r.req.(*kmsg.OffsetDeleteRequest)), nil
}
