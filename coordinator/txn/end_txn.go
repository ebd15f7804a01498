package txn

// EndTxn: v0-5 (KIP-98, KIP-890 part 2).
//
//   - The outcome is decided once Prepare* is durable; the markers and
//     Complete* follow in the background. The request is answered when
//     they are done, or Config.CompletionWait after Prepare* at the latest
//     (Kafka answers at Prepare*; see CompletionWait for why).
//   - v2+ get PRODUCER_FENCED, v0-1 INVALID_PRODUCER_EPOCH.
//   - v0-4 (transaction version 0/1): the epoch stays; a retry after the
//     transaction completed the same way is answered NONE.
//   - v5 (transaction version 2): every end bumps the epoch, the markers
//     carry the bumped epoch, and the response gives the producer id and
//     epoch the client continues with (a new producer id with epoch 0 when
//     the epoch is exhausted). A retry is recognised by its epoch being
//     one behind (or, across a rotation, the previous producer id at
//     MaxValue-1). Aborting with no transaction ongoing is allowed and
//     just bumps the epoch.

import (
	"context"
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// EndTxn handles EndTxn v0-5. It returns once PrepareCommit or
// PrepareAbort is durable and the markers and Complete* followed, or
// Config.CompletionWait passed.
func (c *Coordinator) EndTxn(ctx context.Context, req *kmsg.EndTxnRequest) *kmsg.EndTxnResponse {
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	tv := int8(0)
	if req.Version >= 5 {
		tv = 2
	}
	code, producerID, epoch := c.endTxn(ctx, req, tv)
	if code == kerr.ProducerFenced.Code && req.Version < 2 {
		code = kerr.InvalidProducerEpoch.Code
	}
	resp.ErrorCode = code
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if code == 0 && tv >= 2 {
		resp.ProducerID, resp.ProducerEpoch = producerID, epoch
	}
	return resp
}

func (c *Coordinator) endTxn(ctx context.Context, req *kmsg.EndTxnRequest, tv int8) (int16, int64, int16) {
	if req.TransactionalID == "" {
		return kerr.InvalidRequest.Code, -1, -1
	}
	newProducerID := int64(-1)
	for range maxAllocationRounds {
		d, producerID, epoch := c.decideEnd(req, tv, newProducerID)
		if d.needProducerID {
			var code int16
			if newProducerID, code = c.allocateProducerID(ctx); code != 0 {
				return code, -1, -1
			}
			continue
		}
		if d.w == nil {
			return d.code, producerID, epoch
		}
		if code := c.await(ctx, d.w); code != 0 {
			return code, -1, -1
		}
		c.awaitCompletion(ctx, d.w.t)
		producerID, epoch = d.w.next.clientProducer()
		return 0, producerID, epoch
	}
	return kerr.ConcurrentTransactions.Code, -1, -1
}

// decideEnd decides an EndTxn under the lock. For an answer given at once
// without error (a recognised retry) it also returns the producer id and
// epoch the client continues with.
func (c *Coordinator) decideEnd(req *kmsg.EndTxnRequest, tv int8, newProducerID int64) (decision, int64, int16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps, code := c.servableLocked(req.TransactionalID)
	if code != 0 {
		return decision{code: code}, -1, -1
	}
	t := ps.txns[req.TransactionalID]
	if t == nil || !t.durable {
		return decision{code: kerr.InvalidProducerIDMapping.Code}, -1, -1
	}
	if tv >= 2 {
		d := c.decideEndV2Locked(ps, t, req, newProducerID)
		return d, t.m.producerID, t.m.epoch
	}
	return c.decideEndV1Locked(ps, t, req), -1, -1
}

// decideEndV1Locked is Kafka's endTransactionWithTV1: strict epoch
// equality, no bump.
func (c *Coordinator) decideEndV1Locked(ps *partState, t *txn, req *kmsg.EndTxnRequest) decision {
	m := t.m
	switch {
	case m.producerID != req.ProducerID:
		return decision{code: kerr.InvalidProducerIDMapping.Code}
	case m.epoch != req.ProducerEpoch:
		return decision{code: kerr.ProducerFenced.Code}
	case t.pending != pendingNone:
		return decision{code: kerr.ConcurrentTransactions.Code}
	}
	switch m.state {
	case stateOngoing:
		to := statePrepareAbort
		if req.Commit {
			to = statePrepareCommit
		}
		return decision{w: c.transitionLocked(ps, t, m.endTransit(to, 0, -1, c.nowMs(), false), reasonRequest)}
	case stateCompleteCommit, stateCompleteAbort:
		if req.Commit == (m.state == stateCompleteCommit) {
			return decision{} // a retry of the end that completed
		}
	case statePrepareCommit, statePrepareAbort:
		if req.Commit == (m.state == statePrepareCommit) {
			return decision{code: kerr.ConcurrentTransactions.Code}
		}
	}
	c.invalidEndLocked(t, req)
	return decision{code: kerr.InvalidTxnState.Code}
}

// decideEndV2Locked is Kafka's endTransaction for transaction version 2:
//
//	                 Abort             Commit
//	                 retry  current    retry  current
//	Empty            FENCED bump       FENCED INVALID
//	CompleteAbort    NONE   bump       INVALID INVALID
//	CompleteCommit   INVALID bump      NONE   INVALID
//
// Ongoing ends with a bump at the current epoch; Prepare* answers a retry
// of the same end CONCURRENT_TRANSACTIONS (it is still completing).
func (c *Coordinator) decideEndV2Locked(ps *partState, t *txn, req *kmsg.EndTxnRequest, newProducerID int64) decision {
	m := t.m
	retryOnOverflow := m.prevProducerID == req.ProducerID && req.ProducerEpoch == math.MaxInt16-1 && m.epoch == 0
	retryOnBump := int32(m.epoch) == int32(req.ProducerEpoch)+1
	isRetry := retryOnBump || retryOnOverflow
	var validEpoch bool
	switch {
	case isPrepare(m.state):
		validEpoch = retryOnBump
	case m.state == stateCompleteCommit || m.state == stateCompleteAbort:
		validEpoch = isRetry || req.ProducerEpoch == m.epoch
	default:
		validEpoch = req.ProducerEpoch == m.epoch
	}
	switch {
	case m.producerID != req.ProducerID && !retryOnOverflow:
		return decision{code: kerr.InvalidProducerIDMapping.Code}
	case !validEpoch:
		return decision{code: kerr.ProducerFenced.Code}
	case t.pending != pendingNone:
		return decision{code: kerr.ConcurrentTransactions.Code}
	}
	prepare := func(to kmsg.TransactionState, emptyAbort bool) decision {
		next := int64(-1)
		if epochExhausted(m.epoch) {
			if newProducerID < 0 {
				return decision{needProducerID: true}
			}
			next = newProducerID
		}
		return decision{w: c.transitionLocked(ps, t, m.endTransit(to, 2, next, c.nowMs(), emptyAbort), reasonEnd)}
	}
	switch m.state {
	case stateOngoing:
		if req.Commit {
			return prepare(statePrepareCommit, false)
		}
		return prepare(statePrepareAbort, false)
	case stateEmpty:
		if !req.Commit {
			return prepare(statePrepareAbort, true)
		}
	case stateCompleteCommit:
		if req.Commit && isRetry {
			return decision{}
		}
		if !req.Commit && !isRetry {
			return prepare(statePrepareAbort, true)
		}
	case stateCompleteAbort:
		if !req.Commit {
			if isRetry {
				return decision{}
			}
			return prepare(statePrepareAbort, true)
		}
	case statePrepareCommit, statePrepareAbort:
		if req.Commit == (m.state == statePrepareCommit) {
			return decision{code: kerr.ConcurrentTransactions.Code}
		}
	}
	c.invalidEndLocked(t, req)
	return decision{code: kerr.InvalidTxnState.Code}
}

func (c *Coordinator) invalidEndLocked(t *txn, req *kmsg.EndTxnRequest) {
	c.log.Debug("EndTxn in an invalid state", "transactional_id", t.id, "state", t.m.state.String(),
		"commit", req.Commit, "version", req.Version)
}

// awaitCompletion waits, at most Config.CompletionWait, for the completion
// that t's durable Prepare* started; the answer is the same either way.
func (c *Coordinator) awaitCompletion(ctx context.Context, t *txn) {
	if c.cfg.CompletionWait <= 0 {
		return
	}
	c.mu.Lock()
	done := t.completed
	c.mu.Unlock()
	if done == nil {
		return
	}
	expired := make(chan struct{})
	timer := c.clock.AfterFunc(c.cfg.CompletionWait, func() { close(expired) })
	defer timer.Stop()
	select {
	case <-done:
	case <-expired:
	case <-ctx.Done():
	}
}
