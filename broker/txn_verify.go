package broker

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/coordinator/txn"
)

// verifyTxn asks the coordinator of transactionalID, in process or over a
// peer connection, whether tps are part of the producer's ongoing
// transaction (add false: verify only, KIP-890 part 1), or adds them to it
// (add true: for produce v12 and TxnOffsetCommit v5 under transaction
// version 2), with AddPartitionsToTxn v5. It returns the coordinator's error code
// for each partition, in tps order; a coordinator that cannot be reached
// answers COORDINATOR_NOT_AVAILABLE or NETWORK_EXCEPTION.
//
// A coordinator busy with another change of the same transaction (the
// adds of other partition leaders, KIP-890 part 2) answers
// CONCURRENT_TRANSACTIONS; the partitions so answered are asked again after
// add.partitions.to.txn.retry.backoff.ms, doubling, for up to
// add.partitions.to.txn.retry.backoff.max.ms, as Kafka's
// AddPartitionsToTxnManager does, so the producer sees the answer only if
// the coordinator stays busy.
func (b *Broker) verifyTxn(ctx context.Context, transactionalID string, producerID int64, producerEpoch int16, tps []txn.TopicPartition, add bool) []int16 {
	codes := b.verifyTxnOnce(ctx, transactionalID, producerID, producerEpoch, tps, add)
	backoff := b.settings.brokerMillis("add.partitions.to.txn.retry.backoff.ms", 20)
	deadline := time.Now().Add(b.settings.brokerMillis("add.partitions.to.txn.retry.backoff.max.ms", 100))
	for {
		var again []int
		for i, code := range codes {
			if code == kerr.ConcurrentTransactions.Code {
				again = append(again, i)
			}
		}
		if len(again) == 0 || time.Now().Add(backoff).After(deadline) {
			return codes
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return codes
		case <-t.C:
		}
		retry := make([]txn.TopicPartition, len(again))
		for j, i := range again {
			retry[j] = tps[i]
		}
		for j, code := range b.verifyTxnOnce(ctx, transactionalID, producerID, producerEpoch, retry, add) {
			codes[again[j]] = code
		}
		backoff *= 2
	}
}

// verifyTxnOnce is one round of verifyTxn.
func (b *Broker) verifyTxnOnce(ctx context.Context, transactionalID string, producerID int64, producerEpoch int16, tps []txn.TopicPartition, add bool) []int16 {
	fill := func(code int16) []int16 {
		b.txnMetrics.verifications.WithLabelValues(resultLabel(code)).Add(float64(len(tps)))
		return sameCode(len(tps), code)
	}
	ts := b.topics.get(txnStateTopic)
	if ts == nil {
		return fill(kerr.CoordinatorNotAvailable.Code)
	}
	leader := b.leaderOf(ts.meta(), txn.PartitionFor(transactionalID, ts.meta().Partitions))
	if leader < 0 {
		return fill(kerr.CoordinatorNotAvailable.Code)
	}
	req := addPartitionsRequest(transactionalID, producerID, producerEpoch, tps, add)
	var resp *kmsg.AddPartitionsToTxnResponse
	if leader == b.cfg.NodeID {
		resp = b.txn.AddPartitionsToTxn(ctx, req)
	} else {
		raw, err := b.peers.roundTrip(ctx, b, leader, req)
		if err != nil {
			b.log.Debug("AddPartitionsToTxn round trip failed", "node", leader, "err", err)
			return fill(kerr.NetworkException.Code)
		}
		resp = raw.(*kmsg.AddPartitionsToTxnResponse)
	}
	if resp.ErrorCode != 0 {
		return fill(resp.ErrorCode)
	}
	got := map[txn.TopicPartition]int16{}
	for _, tr := range resp.Transactions {
		for _, t := range tr.Topics {
			for _, p := range t.Partitions {
				got[txn.TopicPartition{Topic: t.Topic, Partition: p.Partition}] = p.ErrorCode
			}
		}
	}
	codes := codesInOrder(tps, got)
	for _, code := range codes {
		b.txnMetrics.verifications.WithLabelValues(resultLabel(code)).Inc()
	}
	return codes
}

// txnVerification is transaction.partition.verification.enable (dynamic).
func (b *Broker) txnVerification() bool {
	return b.settings.brokerBool("transaction.partition.verification.enable")
}

// addPartitionsRequest is the broker-to-coordinator form of
// AddPartitionsToTxn (v4+): one transaction, verify only unless add.
func addPartitionsRequest(transactionalID string, producerID int64, producerEpoch int16, tps []txn.TopicPartition, add bool) *kmsg.AddPartitionsToTxnRequest {
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = 5 // as Kafka's brokers send it, verifying or adding
	tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
	tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tx.VerifyOnly = transactionalID, producerID, producerEpoch, !add
	txn.GroupByTopic(tps, func(topic string, idx []int) {
		t := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
		t.Topic = topic
		for _, i := range idx {
			t.Partitions = append(t.Partitions, tps[i].Partition)
		}
		tx.Topics = append(tx.Topics, t)
	})
	req.Transactions = append(req.Transactions, tx)
	return req
}

// groupTxnVerifier is the group coordinator's check of TxnOffsetCommit
// with the transaction coordinator.
type groupTxnVerifier struct{ b *Broker }

// VerifyTxn verifies (or adds) the group's __consumer_offsets partition.
// Verification alone is skipped while
// transaction.partition.verification.enable is false; adding never is.
func (v groupTxnVerifier) VerifyTxn(ctx context.Context, transactionalID string, producerID int64, producerEpoch int16, partition int32, add bool) int16 {
	if !add && !v.b.txnVerification() {
		return 0
	}
	tp := []txn.TopicPartition{{Topic: offsetsTopic, Partition: partition}}
	return v.b.verifyTxn(ctx, transactionalID, producerID, producerEpoch, tp, add)[0]
}

// produceVerifyCode turns a coordinator's answer to a produce verification
// into what the producer is told, as Kafka's ReplicaManager does: errors a
// client might not retry become NOT_ENOUGH_REPLICAS (retriable, and no
// metadata refresh), PRODUCER_FENCED becomes INVALID_PRODUCER_EPOCH, and
// TRANSACTION_ABORTABLE reaches only Produce v11+, which knows it.
func produceVerifyCode(code, version int16) int16 {
	switch code {
	case kerr.ConcurrentTransactions.Code, kerr.NetworkException.Code, kerr.CoordinatorLoadInProgress.Code,
		kerr.CoordinatorNotAvailable.Code, kerr.NotCoordinator.Code:
		return kerr.NotEnoughReplicas.Code
	case kerr.ProducerFenced.Code:
		return kerr.InvalidProducerEpoch.Code
	case kerr.TransactionAbortable.Code:
		if version <= 10 {
			return kerr.InvalidTxnState.Code
		}
	}
	return code
}
