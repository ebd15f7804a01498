package txn

// AddPartitionsToTxn: v0-5 (KIP-98, KIP-890).
//
//   - v0-3 come from clients: one transaction, its partitions added.
//   - v2+: a fenced producer gets PRODUCER_FENCED; v0-1 get
//     INVALID_PRODUCER_EPOCH (Kafka's KafkaApis maps it).
//   - v4+ come from partition leaders, batched by transactional id
//     (KIP-890 part 1): VerifyOnly checks that each partition is in the
//     ongoing transaction, without writing (TRANSACTION_ABORTABLE for one
//     that is not; INVALID_TXN_STATE to a v4 request, since v5 added the
//     code). VerifyOnly=false adds, as a client request does; v5 marks the
//     transaction as transaction version 2 (produce v12, part 2).
//   - A partition of a topic that does not exist, or beyond its partition
//     count (Config.TopicPartitions), fails its whole transaction:
//     UNKNOWN_TOPIC_OR_PARTITION for it, OPERATION_NOT_ATTEMPTED for the
//     others, before anything else is checked (KafkaApis).
//   - A repeated partition or transactional id is answered once.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// addRequest is one transaction of an AddPartitionsToTxn (or the partition
// of an AddOffsetsToTxn).
type addRequest struct {
	id         string
	producerID int64
	epoch      int16
	parts      []TopicPartition // distinct
	verify     bool
	tv         int8
}

// addResult is the outcome for one addRequest: a code for every partition,
// or per partition when codes is set.
type addResult struct {
	code  int16
	codes []int16
	w     *write
}

func (r addResult) codeAt(i int) int16 {
	if r.codes != nil {
		return r.codes[i]
	}
	return r.code
}

// AddPartitionsToTxn handles AddPartitionsToTxn v0-5: v0-3 from clients,
// v4+ batched from partition leaders, verify-only (KIP-890 part 1) or
// adding (part 2, for produce v12). The broker authorizes the request
// first (WRITE on the transactional id and topics for v0-3, CLUSTER_ACTION
// for v4+). It returns once the added partitions are durable; a
// verification never writes.
func (c *Coordinator) AddPartitionsToTxn(ctx context.Context, req *kmsg.AddPartitionsToTxnRequest) *kmsg.AddPartitionsToTxnResponse {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	if req.Version <= 3 {
		ar := addRequest{id: req.TransactionalID, producerID: req.ProducerID, epoch: req.ProducerEpoch,
			parts: clientPartitions(req.Topics)}
		res := c.addAll(ctx, []addRequest{ar}, req.Version)[0]
		GroupByTopic(ar.parts, func(topic string, idx []int) {
			rt := kmsg.NewAddPartitionsToTxnResponseTopic()
			rt.Topic = topic
			for _, i := range idx {
				rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
				rp.Partition, rp.ErrorCode = ar.parts[i].Partition, res.codeAt(i)
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		})
		return resp
	}
	txns := uniqueTransactions(req.Transactions)
	ars := make([]addRequest, len(txns))
	for i, t := range txns {
		ars[i] = addRequest{id: t.TransactionalID, producerID: t.ProducerID, epoch: t.ProducerEpoch,
			parts: brokerPartitions(t.Topics), verify: t.VerifyOnly}
		if req.Version >= 5 {
			ars[i].tv = 2
		}
	}
	results := c.addAll(ctx, ars, req.Version)
	for i, ar := range ars {
		rt := kmsg.NewAddPartitionsToTxnResponseTransaction()
		rt.TransactionalID = ar.id
		GroupByTopic(ar.parts, func(topic string, idx []int) {
			tt := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
			tt.Topic = topic
			for _, j := range idx {
				tp := kmsg.NewAddPartitionsToTxnResponseTransactionTopicPartition()
				tp.Partition, tp.ErrorCode = ar.parts[j].Partition, results[i].codeAt(j)
				tt.Partitions = append(tt.Partitions, tp)
			}
			rt.Topics = append(rt.Topics, tt)
		})
		resp.Transactions = append(resp.Transactions, rt)
	}
	return resp
}

// addAll checks the partitions of every request exist, decides them all
// under one lock, then waits for the writes (which the partition writers
// batch together), and maps the codes for the request version.
func (c *Coordinator) addAll(ctx context.Context, ars []addRequest, version int16) []addResult {
	results := make([]addResult, len(ars))
	decided := make([]bool, len(ars))
	exists := c.partitionChecker()
	for i, ar := range ars {
		if codes := unknownPartitionCodes(ar.parts, exists); codes != nil {
			results[i], decided[i] = addResult{codes: codes}, true
		}
	}
	c.mu.Lock()
	for i, ar := range ars {
		if !decided[i] {
			results[i] = c.decideAddLocked(ar)
		}
	}
	c.mu.Unlock()
	for i := range results {
		r := &results[i]
		if r.w != nil {
			r.code = c.await(ctx, r.w)
		}
		r.code = addCodeForVersion(r.code, version)
		for j := range r.codes {
			r.codes[j] = addCodeForVersion(r.codes[j], version)
		}
	}
	return results
}

func addCodeForVersion(code, version int16) int16 {
	switch {
	case code == kerr.ProducerFenced.Code && version < 2:
		return kerr.InvalidProducerEpoch.Code
	case code == kerr.TransactionAbortable.Code && version < 5:
		return kerr.InvalidTxnState.Code
	}
	return code
}

// partitionChecker returns whether a partition exists, asking
// Config.TopicPartitions once per distinct topic.
func (c *Coordinator) partitionChecker() func(TopicPartition) bool {
	if c.cfg.TopicPartitions == nil {
		return func(TopicPartition) bool { return true }
	}
	counts := make(map[string]int32)
	return func(tp TopicPartition) bool {
		n, seen := counts[tp.Topic]
		if !seen {
			var ok bool
			if n, ok = c.cfg.TopicPartitions(tp.Topic); !ok {
				n = -1
			}
			counts[tp.Topic] = n
		}
		return tp.Partition >= 0 && tp.Partition < n
	}
}

// unknownPartitionCodes returns nil when every partition exists, else the
// per-partition codes that fail the transaction.
func unknownPartitionCodes(tps []TopicPartition, exists func(TopicPartition) bool) []int16 {
	var codes []int16
	for i, tp := range tps {
		if exists(tp) {
			continue
		}
		if codes == nil {
			codes = make([]int16, len(tps))
			for j := range codes {
				codes[j] = kerr.OperationNotAttempted.Code
			}
		}
		codes[i] = kerr.UnknownTopicOrPartition.Code
	}
	return codes
}

func (c *Coordinator) decideAddLocked(ar addRequest) addResult {
	if ar.id == "" {
		return addResult{code: kerr.InvalidRequest.Code}
	}
	ps, code := c.servableLocked(ar.id)
	if code != 0 {
		return addResult{code: code}
	}
	t := ps.txns[ar.id]
	if t == nil || !t.durable {
		return addResult{code: kerr.InvalidProducerIDMapping.Code}
	}
	if ar.verify {
		return verifyLocked(t, ar)
	}
	m := t.m
	switch {
	case t.pending != pendingNone:
		// First: after a version 2 end that rotates the producer id the
		// client already holds the new id while Complete* is pending,
		// and must retry rather than be told its id is unknown
		// (KAFKA-18660).
		return addResult{code: kerr.ConcurrentTransactions.Code}
	case m.producerID != ar.producerID:
		return addResult{code: kerr.InvalidProducerIDMapping.Code}
	case m.epoch != ar.epoch:
		return addResult{code: kerr.ProducerFenced.Code}
	case isPrepare(m.state):
		return addResult{code: kerr.ConcurrentTransactions.Code}
	case len(ar.parts) == 0 || (m.state == stateOngoing && m.hasAll(ar.parts)):
		return addResult{}
	}
	return addResult{w: c.transitionLocked(ps, t, m.addTransit(ar.parts, ar.tv, c.nowMs()), reasonRequest)}
}

// verifyLocked answers a verify-only request (Kafka's
// handleVerifyPartitionsInTransaction). It looks at the durable state and
// ignores a pending one: the partition's own append check is final.
func verifyLocked(t *txn, ar addRequest) addResult {
	m := t.m
	switch {
	case m.producerID != ar.producerID:
		return addResult{code: kerr.InvalidProducerIDMapping.Code}
	case m.epoch != ar.epoch:
		return addResult{code: kerr.ProducerFenced.Code}
	case isPrepare(m.state):
		return addResult{code: kerr.ConcurrentTransactions.Code}
	}
	codes := make([]int16, len(ar.parts))
	for i, tp := range ar.parts {
		if !m.hasPartition(tp) {
			codes[i] = kerr.TransactionAbortable.Code
		}
	}
	return addResult{codes: codes}
}
