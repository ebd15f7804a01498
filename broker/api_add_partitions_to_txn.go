package broker

// AddPartitionsToTxn: v0-5. The transaction coordinator (package coordinator/txn)
// implements it: v0-3 from producers, v4+ batched from partition leaders
// that verify (KIP-890 part 1) or add (part 2) a partition before appending
// a producer's first transactional batch there; see its add_partitions.go.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) addPartitionsToTxnAPI() api {
	return api{key: 24, min: 0, max: 5, handle: b.handleAddPartitionsToTxn}
}

func (b *Broker) handleAddPartitionsToTxn(ctx context.Context, r *request) (kmsg.Response, error) {
	return b.txn.AddPartitionsToTxn(ctx, r.req.(*kmsg.AddPartitionsToTxnRequest)), nil
}
