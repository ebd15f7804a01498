package broker

// OffsetCommit: v0-9. The group coordinator (package coordinator) implements it;
// see its offset_commit.go for the per-version behaviour.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) offsetCommitAPI() api {
	return api{key: 8, min: 0, max: 9, handle: b.handleOffsetCommit}
}

func (b *Broker) handleOffsetCommit(ctx context.Context, r *request) (kmsg.Response, error) {
	return b.coord.OffsetCommit(b.clientCtx(ctx, r), r.req.(*kmsg.OffsetCommitRequest)), nil
}
