package txn

// AddOffsetsToTxn: v0-4 (KIP-98). Adds the group's __consumer_offsets
// partition to the transaction, as AddPartitionsToTxn would, so that the
// markers reach the group coordinator, which then commits or drops the
// TxnOffsetCommit offsets. v2+ get PRODUCER_FENCED, v0-1
// INVALID_PRODUCER_EPOCH. Transaction version 2 clients skip it:
// TxnOffsetCommit v5 adds the partition through the group coordinator's
// verification (AddPartitionsToTxn v5).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/coordinator"
)

// OffsetsTopic is the internal topic of committed offsets, whose
// partitions AddOffsetsToTxn adds.
const OffsetsTopic = "__consumer_offsets"

// AddOffsetsToTxn handles AddOffsetsToTxn v0-4. It returns once the
// group's __consumer_offsets partition is durably in the transaction.
func (c *Coordinator) AddOffsetsToTxn(ctx context.Context, req *kmsg.AddOffsetsToTxnRequest) *kmsg.AddOffsetsToTxnResponse {
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	tp := TopicPartition{Topic: OffsetsTopic, Partition: coordinator.PartitionFor(req.Group, c.cfg.OffsetsPartitions)}
	c.mu.Lock()
	res := c.decideAddLocked(addRequest{id: req.TransactionalID, producerID: req.ProducerID,
		epoch: req.ProducerEpoch, parts: []TopicPartition{tp}})
	c.mu.Unlock()
	if res.w != nil {
		res.code = c.await(ctx, res.w)
	}
	resp.ErrorCode = addCodeForVersion(res.code, req.Version)
	return resp
}
