package broker

// ListTransactions: v0-2 (KIP-664; KIP-994 duration filter, KIP-1152
// transactional id pattern). Each broker lists the transactions of the
// __transaction_state partitions it leads; admin clients ask every broker.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) listTransactionsAPI() api {
	return api{key: 66, min: 0, max: 2, handle: b.handleListTransactions}
}

func (b *Broker) handleListTransactions(ctx context.Context, r *request) (kmsg.Response, error) {
	return b.txn.ListTransactions(ctx, r.req.(*kmsg.ListTransactionsRequest)), nil
}
