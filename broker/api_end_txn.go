package broker

// EndTxn: v0-5. The transaction coordinator (package coordinator/txn)
// implements it; v5 (transaction version 2, KIP-890) bumps the producer
// epoch on every commit and abort and answers the new one.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) endTxnAPI() api {
	return api{key: 26, min: 0, max: 5, handle: b.handleEndTxn}
}

func (b *Broker) handleEndTxn(ctx context.Context, r *request) (kmsg.Response, error) {
	return b.txn.EndTxn(ctx, r.req.(*kmsg.EndTxnRequest)), nil
}
