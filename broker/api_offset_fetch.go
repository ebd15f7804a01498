package broker

// OffsetFetch: v0-9. The group coordinator (package coordinator) implements it;
// see its offset_fetch.go for the per-version behaviour.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) offsetFetchAPI() api {
	return api{key: 9, min: 0, max: 9, handle: b.handleOffsetFetch}
}

func (b *Broker) handleOffsetFetch(ctx context.Context, r *request) (kmsg.Response, error) {
	return b.coord.OffsetFetch(b.clientCtx(ctx, r), r.req.(*kmsg.OffsetFetchRequest)), nil
}
