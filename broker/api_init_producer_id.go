package broker

// InitProducerId: v0-5.
//
// Idempotent producers get a producer id from blocks allocated in etcd, so
// ids stay unique across restarts and brokers. A producer that presents its
// current id and epoch (KIP-360, v3+) gets the same id with the epoch bumped,
// or a fresh id when the epoch would overflow. A request with a
// transactional id goes to the transaction coordinator (coordinator/txn),
// which answers NOT_COORDINATOR unless this broker leads the id's
// __transaction_state partition.

import (
	"context"
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) initProducerIDAPI() api {
	return api{key: 22, min: 0, max: 5, handle: b.handleInitProducerID}
}

func (b *Broker) handleInitProducerID(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	if req.TransactionalID != nil {
		return b.txn.InitProducerID(ctx, req), nil
	}
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.ProducerID >= 0 && req.ProducerEpoch >= 0 && req.ProducerEpoch < math.MaxInt16-1 {
		resp.ProducerID, resp.ProducerEpoch = req.ProducerID, req.ProducerEpoch+1
		return resp, nil
	}
	id, err := b.producer.next(ctx)
	if err != nil {
		b.log.Warn("allocating producer id", "err", err)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp, nil
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp, nil
}
