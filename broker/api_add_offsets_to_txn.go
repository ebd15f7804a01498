package broker

// AddOffsetsToTxn: v0-4. The transaction coordinator (package coordinator/txn)
// implements it: it adds the group's __consumer_offsets partition to the
// producer's transaction.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) addOffsetsToTxnAPI() api {
	return api{key: 25, min: 0, max: 4, handle: b.handleAddOffsetsToTxn}
}

func (b *Broker) handleAddOffsetsToTxn(ctx context.Context, r *request) (kmsg.Response, error) {
	return b.txn.AddOffsetsToTxn(ctx, r.req.(*kmsg.AddOffsetsToTxnRequest)), nil
}
