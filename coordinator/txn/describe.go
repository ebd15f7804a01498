package txn

// DescribeTransactions: v0 (KIP-664). Each distinct transactional id is
// answered once: its durable state, producer, timeout, start time and
// partitions; TRANSACTIONAL_ID_NOT_FOUND for an id this coordinator does
// not know (or whose first InitProducerId is not yet durable); the
// partition's NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS or (closed)
// COORDINATOR_NOT_AVAILABLE otherwise.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/internal/uniq"
)

// DescribeTransactions handles DescribeTransactions v0.
func (c *Coordinator) DescribeTransactions(ctx context.Context, req *kmsg.DescribeTransactionsRequest) *kmsg.DescribeTransactionsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	ids := uniq.Strings(req.TransactionalIDs)
	resp.TransactionStates = make([]kmsg.DescribeTransactionsResponseTransactionState, 0, len(ids))
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		resp.TransactionStates = append(resp.TransactionStates, c.describeLocked(id))
	}
	return resp
}

func (c *Coordinator) describeLocked(id string) kmsg.DescribeTransactionsResponseTransactionState {
	st := kmsg.NewDescribeTransactionsResponseTransactionState()
	st.TransactionalID = id
	if c.mu.closed {
		st.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return st
	}
	if id == "" {
		st.ErrorCode = kerr.InvalidRequest.Code
		return st
	}
	ps, code := c.servableLocked(id)
	if code != 0 {
		st.ErrorCode = code
		return st
	}
	t := ps.txns[id]
	if t == nil || !t.durable {
		st.ErrorCode = kerr.TransactionalIDNotFound.Code
		return st
	}
	m := t.m
	st.State = m.state.String()
	st.TimeoutMillis = m.timeoutMs
	st.StartTimestamp = m.startMs
	st.ProducerID = m.producerID
	st.ProducerEpoch = m.epoch
	for i := 0; i < len(m.partitions); {
		rt := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
		rt.Topic = m.partitions[i].Topic
		for ; i < len(m.partitions) && m.partitions[i].Topic == rt.Topic; i++ {
			rt.Partitions = append(rt.Partitions, m.partitions[i].Partition)
		}
		st.Topics = append(st.Topics, rt)
	}
	return st
}
