package broker

// DescribeTransactions: v0 (KIP-664). The transaction coordinator (package
// coordinator/txn) describes the transactional ids it coordinates; others
// get NOT_COORDINATOR.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) describeTransactionsAPI() api {
	return api{key: 65, min: 0, max: 0, handle: b.handleDescribeTransactions}
}

func (b *Broker) handleDescribeTransactions(ctx context.Context, r *request) (kmsg.Response, error) {
	return b.txn.DescribeTransactions(ctx, r.req.(*kmsg.DescribeTransactionsRequest)), nil
}
