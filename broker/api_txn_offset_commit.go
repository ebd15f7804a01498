package broker

// TxnOffsetCommit: v0-5. The group coordinator (package coordinator/group)
// implements it: the offsets are written in a transactional batch of the
// producer and stay pending until the transaction's marker (see its
// txn_offset_commit.go).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) txnOffsetCommitAPI() api {
	return api{key: 28, min: 0, max: 5, handle: b.handleTxnOffsetCommit}
}

func (b *Broker) handleTxnOffsetCommit(ctx context.Context, r *request) (kmsg.Response, error) {
	return b.coord.TxnOffsetCommit(b.clientCtx(ctx, r), r.req.(*kmsg.TxnOffsetCommitRequest)), nil
}
