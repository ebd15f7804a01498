package txn

// InitProducerId: v0-5, for transactional producers (KIP-98). Idempotent
// producers (no transactional id) are the broker's.
//
//   - v3+ (KIP-360): the producer may name the producer id and epoch it
//     holds, to recover after an abortable error; a retried request whose
//     answer was lost is answered with the same epoch again.
//   - v4+: a fenced producer gets PRODUCER_FENCED; older versions get
//     INVALID_PRODUCER_EPOCH (Kafka's KafkaApis maps it).
//   - An ongoing transaction of another producer instance is aborted with
//     a bumped epoch first; the request gets CONCURRENT_TRANSACTIONS and
//     the client retries until the abort completes, then gets the next
//     epoch (TransactionCoordinator.prepareInitProducerIdTransit).
//   - An exhausted epoch (Short.MaxValue-1) rotates to a new producer id
//     with epoch 0.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// maxAllocationRounds bounds how often a request allocates a producer id
// and finds the state changed meanwhile before giving up with
// CONCURRENT_TRANSACTIONS (which clients retry).
const maxAllocationRounds = 3

// InitProducerID handles InitProducerId v0-5 for a transactional id
// (req.TransactionalID non-nil; idempotent producers are the broker's, and
// a request without an id gets INVALID_REQUEST here). It returns once the
// new epoch is durable, or with COORDINATOR_NOT_AVAILABLE when ctx ends
// first; it may call Config.ProducerIDs.
func (c *Coordinator) InitProducerID(ctx context.Context, req *kmsg.InitProducerIDRequest) *kmsg.InitProducerIDResponse {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	code, producerID, epoch := c.initProducerID(ctx, req)
	if code == kerr.ProducerFenced.Code && req.Version < 4 {
		code = kerr.InvalidProducerEpoch.Code
	}
	resp.ErrorCode = code
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if code == 0 {
		resp.ProducerID, resp.ProducerEpoch = producerID, epoch
	}
	return resp
}

func (c *Coordinator) initProducerID(ctx context.Context, req *kmsg.InitProducerIDRequest) (int16, int64, int16) {
	if req.TransactionalID == nil || *req.TransactionalID == "" {
		return kerr.InvalidRequest.Code, -1, -1
	}
	id := *req.TransactionalID
	var expected *producerRef
	switch {
	case req.ProducerID == -1 && req.ProducerEpoch == -1:
	case req.ProducerID == -1 || req.ProducerEpoch == -1:
		return kerr.InvalidRequest.Code, -1, -1
	default:
		expected = &producerRef{id: req.ProducerID, epoch: req.ProducerEpoch}
	}
	timeout := time.Duration(req.TransactionTimeoutMillis) * time.Millisecond
	if req.TransactionTimeoutMillis <= 0 || timeout > c.cfg.MaxTimeout {
		return kerr.InvalidTransactionTimeout.Code, -1, -1
	}
	newProducerID := int64(-1)
	for range maxAllocationRounds {
		d := c.decideInit(id, req.TransactionTimeoutMillis, expected, newProducerID)
		if d.needProducerID {
			var code int16
			if newProducerID, code = c.allocateProducerID(ctx); code != 0 {
				return code, -1, -1
			}
			continue
		}
		if d.w == nil {
			return d.code, -1, -1
		}
		if code := c.await(ctx, d.w); code != 0 {
			return code, -1, -1
		}
		if d.fence {
			return kerr.ConcurrentTransactions.Code, -1, -1
		}
		return 0, d.w.next.producerID, d.w.next.epoch
	}
	return kerr.ConcurrentTransactions.Code, -1, -1
}

// decision is what a handler decided under the lock: an answer now (code),
// a write to wait for (w), or a producer id to allocate first.
type decision struct {
	code           int16
	w              *write
	needProducerID bool
	// fence: the write aborts another instance's transaction, and the
	// request is answered CONCURRENT_TRANSACTIONS once it is durable.
	fence bool
}

func (c *Coordinator) decideInit(id string, timeoutMs int32, expected *producerRef, newProducerID int64) decision {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps, code := c.servableLocked(id)
	if code != 0 {
		return decision{code: code}
	}
	now := c.nowMs()
	t := ps.txns[id]
	if t == nil {
		if newProducerID < 0 {
			return decision{needProducerID: true}
		}
		// Not durable until its first record is: other requests treat
		// the id as unknown, a concurrent InitProducerId as busy.
		t = &txn{id: id, m: newMeta(newProducerID, timeoutMs, now)}
		ps.txns[id] = t
		newProducerID = -1
	} else if t.pending != pendingNone {
		return decision{code: kerr.ConcurrentTransactions.Code}
	}
	d := c.initTransitLocked(ps, t, timeoutMs, expected, newProducerID, now)
	if d.w == nil && !t.durable {
		ps.removeLocked(t)
	}
	return d
}

// initTransitLocked decides InitProducerId for t, which is not busy.
func (c *Coordinator) initTransitLocked(ps *partState, t *txn, timeoutMs int32, expected *producerRef, newProducerID, now int64) decision {
	m := t.m
	if expected != nil && !(m.epoch == -1 || expected.id == m.producerID ||
		(expected.id == m.prevProducerID && epochExhausted(expected.epoch))) {
		// Neither this id's producer, nor a retry across a rotation.
		return decision{code: kerr.ProducerFenced.Code}
	}
	switch {
	case isPrepare(m.state):
		return decision{code: kerr.ConcurrentTransactions.Code}
	case m.state == stateOngoing:
		why := reasonFenceAbort
		if expected != nil && expected.id == m.producerID && expected.epoch == m.epoch {
			why = reasonRecoverAbort
		}
		w := c.fenceAbortLocked(ps, t, why, newProducerID)
		if w == nil {
			return decision{needProducerID: true}
		}
		return decision{w: w, fence: true}
	}
	why := reasonInit
	if expected == nil && t.durable && m.epoch >= 0 {
		why = reasonFenceInit
	}
	if epochExhausted(m.epoch) && (expected == nil || expected.epoch == m.epoch) {
		if newProducerID < 0 {
			return decision{needProducerID: true}
		}
		next := m.rotateTransit(newProducerID, expected != nil, timeoutMs, now)
		return decision{w: c.transitionLocked(ps, t, next, why)}
	}
	next, ok := m.bumpEpochTransit(expected, timeoutMs, now)
	if !ok {
		return decision{code: kerr.ProducerFenced.Code}
	}
	return decision{w: c.transitionLocked(ps, t, next, why)}
}
