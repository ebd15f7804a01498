package broker

// The transactional side of Produce (KIP-98, KIP-890): which producer a
// request's transactional batches belong to, and the check with the
// transaction coordinator before a producer's first transactional batch in
// a partition.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/coordinator/txn"
	"github.com/sluicedev/sluice/protocol/batch"
	"github.com/sluicedev/sluice/storage"
)

// txnProduce is what a transactional produce request was cleared for: per
// partition the verification guard to append with, or the error to answer.
type txnProduce struct {
	// require is set when appends that start a transaction must carry a
	// current guard (verification enabled, or produce v12 adding
	// partitions itself).
	require bool
	guards  map[tp]storage.VerificationGuard
	failed  map[tp]int16
}

// appendOptions sets what a partition's append needs, or returns the
// verification's error.
func (t *txnProduce) appendOptions(topic string, partition int32, opts *storage.AppendOptions) (int16, *string) {
	k := tp{topic, partition}
	if code, ok := t.failed[k]; ok {
		if code == kerr.InvalidTxnState.Code {
			return code, kmsg.StringPtr("Partition was not added to the transaction")
		}
		return code, nil
	}
	opts.RequireVerification = t.require
	opts.Verification = t.guards[k]
	return 0, nil
}

// transactionalProduce finds the producer of req's transactional batches
// and, before any of them is appended, verifies with the transaction
// coordinator the partitions where the producer's transaction has not begun
// yet (or adds them, for produce v12 under transaction version 2). It
// returns nil for a request without transactional batches, and an error
// code for the whole request as Kafka answers: transactional batches
// without a transactional id are TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
// batches of more than one producer INVALID_PRODUCER_ID_MAPPING.
func (b *Broker) transactionalProduce(ctx context.Context, req *kmsg.ProduceRequest) (*txnProduce, int16) {
	var (
		pid     int64 = -1
		epoch   int16
		mixed   bool
		targets []txn.TopicPartition
	)
	for i := range req.Topics {
		rt := &req.Topics[i]
		for j := range rt.Partitions {
			h, err := batch.ParseHeader(rt.Partitions[j].Records)
			if err != nil || !h.Transactional() || h.ProducerID < 0 {
				continue // validation answers a bad batch
			}
			if pid >= 0 && (h.ProducerID != pid || h.ProducerEpoch != epoch) {
				mixed = true
			}
			pid, epoch = h.ProducerID, h.ProducerEpoch
			targets = append(targets, txn.TopicPartition{Topic: rt.Topic, Partition: rt.Partitions[j].Partition})
		}
	}
	switch {
	case len(targets) == 0:
		return nil, 0
	case req.TransactionID == nil:
		return nil, kerr.TransactionalIDAuthorizationFailed.Code
	case mixed:
		return nil, kerr.InvalidProducerIDMapping.Code
	}
	add := req.Version >= 12
	tx := &txnProduce{require: add || b.txnVerification()}
	if !tx.require {
		return tx, 0
	}
	tx.guards = make(map[tp]storage.VerificationGuard, len(targets))
	var verify []txn.TopicPartition
	for _, t := range targets {
		ts := b.topics.get(t.Topic)
		if code, _ := b.produceTarget(ts, t.Topic, t.Partition); code != 0 {
			continue // answered by produceOne
		}
		guard, needed, err := ts.partition(t.Partition).log.BeginVerification(pid, epoch)
		if err != nil {
			tx.fail(t, appendErrorCode(err))
			continue
		}
		if needed {
			tx.guards[tp{t.Topic, t.Partition}] = guard
			verify = append(verify, t)
		}
	}
	if len(verify) == 0 {
		return tx, 0
	}
	codes := b.verifyTxn(ctx, *req.TransactionID, pid, epoch, verify, add)
	for i, t := range verify {
		if codes[i] != 0 {
			tx.fail(t, produceVerifyCode(codes[i], req.Version))
		}
	}
	return tx, 0
}

// fail records the error a partition of the request is answered with.
func (t *txnProduce) fail(p txn.TopicPartition, code int16) {
	if t.failed == nil {
		t.failed = map[tp]int16{}
	}
	t.failed[tp{p.Topic, p.Partition}] = code
}
