package broker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/sluicedev/sluice/coordinator/txn"
	"github.com/sluicedev/sluice/protocol"
)

// txnStateTopic holds the transaction coordinator's state, as Kafka lays
// it out, so a coordinator rebuilds its transactions from the log.
const txnStateTopic = "__transaction_state"

// newTxnCoordinator builds the transaction coordinator from the broker
// settings; it persists its records in __transaction_state and writes
// markers through the partition leaders.
func (b *Broker) newTxnCoordinator() (*txn.Coordinator, error) {
	ms := func(name string, def int64) time.Duration { return b.settings.brokerMillis(name, def) }
	return txn.New(txn.Config{
		Logger:                b.log.With("component", "transactions"),
		Persister:             txnPersister{b},
		Markers:               markerWriter{b},
		ProducerIDs:           func(ctx context.Context) (int64, error) { return b.producer.next(ctx) },
		NumPartitions:         b.txnPartitions(),
		OffsetsPartitions:     b.offsetsPartitions(),
		TopicPartitions:       b.topicPartitionCount,
		MaxTimeout:            ms("transaction.max.timeout.ms", 900000),
		AbortTimedOutInterval: ms("transaction.abort.timed.out.transaction.cleanup.interval.ms", 10000),
		IDExpiration:          ms("transactional.id.expiration.ms", 604800000),
		RemoveExpiredInterval: ms("transaction.remove.expired.transaction.cleanup.interval.ms", 3600000),
		CompletionWait:        txn.DefaultCompletionWait,
	})
}

func (b *Broker) txnPartitions() int32 {
	return int32(b.settings.brokerInt64("transaction.state.log.num.partitions", 50))
}

// topicPartitionCount reports a topic's partition count for the
// transaction coordinator's AddPartitionsToTxn checks.
func (b *Broker) topicPartitionCount(topic string) (int32, bool) {
	ts := b.topics.get(topic)
	if ts == nil {
		return 0, false
	}
	return ts.meta().Partitions, true
}

// ensureTxnTopic creates __transaction_state on first use, as Kafka does
// when the first FindCoordinator for a transactional id arrives. Its
// min.insync.replicas is transaction.state.log.min.isr capped at the
// replication factor, so a single broker can coordinate transactions.
func (b *Broker) ensureTxnTopic(ctx context.Context) error {
	rf := int16(b.settings.brokerInt64("transaction.state.log.replication.factor", 3))
	minISR := b.settings.brokerInt64("transaction.state.log.min.isr", 2)
	return b.ensureInternalTopic(ctx, txnStateTopic, b.txnPartitions(), rf, func(rf int16) map[string]string {
		return map[string]string{
			"cleanup.policy":                 "compact",
			"segment.bytes":                  b.settings.broker("transaction.state.log.segment.bytes").value,
			"compression.type":               "uncompressed",
			"min.insync.replicas":            strconv.FormatInt(min(minISR, int64(rf)), 10),
			"unclean.leader.election.enable": "false",
		}
	})
}

// coordinatorsOnTransition hands the coordinators the partitions of their
// internal topics this broker started or stopped leading. The caller holds
// the transitions lock, which orders loads and unloads of a partition.
func (b *Broker) coordinatorsOnTransition(part *partition, t transition) {
	b.sharesOnTransition(part, t)
	b.shareStateOnTransition(part, t)
	switch part.log.Topic() {
	case offsetsTopic:
		if b.coord == nil {
			return
		}
		switch t {
		case becameLeader:
			b.loadOffsetsPartition(part)
		case stoppedLeading:
			b.coord.Unload(part.index)
		}
	case txnStateTopic:
		if b.txn == nil {
			return
		}
		switch t {
		case becameLeader:
			b.loadTxnPartition(part)
		case stoppedLeading:
			b.txn.Unload(part.index)
		}
	}
}

// loadTxnPartition hands a __transaction_state partition this broker just
// became leader of to the transaction coordinator: it is marked loading at
// once, with the partition's leader epoch as the coordinator epoch its
// markers carry, and replayed in the background.
func (b *Broker) loadTxnPartition(part *partition) {
	if b.txn.Owns(part.index) {
		return
	}
	token := b.txn.BeginLoad(part.index, part.rep.leaderEpoch.Load())
	ctx := b.bgCtx()
	b.goroutines.Go("txn-load", func() { b.runTxnLoad(ctx, part, token) })
}

// runTxnLoad replays part's log into the transaction coordinator, retrying
// with backoff after a read error for as long as the load is still wanted.
func (b *Broker) runTxnLoad(ctx context.Context, part *partition, token txn.LoadToken) {
	start := time.Now()
	if b.retryLoad(ctx, "transaction state", part.index,
		func() error { return b.txn.LoadFrom(token, txnLogSource(b.codecs, part)) },
		txn.ErrLoadSuperseded, func() bool { return b.txn.Loading(token) }) {
		b.txnMetrics.loadSeconds.Observe(time.Since(start).Seconds())
	}
}

// txnLogSource streams the records of a __transaction_state partition.
func txnLogSource(codecs *protocol.Codecs, part *partition) txn.RecordSource {
	return func(yield func(txn.Record) bool) error {
		return scanInternalLog(codecs, part.log, func(r internalRecord) bool {
			if r.marker != markerNone {
				return true
			}
			return yield(txn.Record{Key: r.key, Value: r.value})
		})
	}
}

// txnPersister writes transaction coordinator records to
// __transaction_state, as durably as an acks=all produce.
type txnPersister struct{ b *Broker }

// Persist appends records as one batch and waits for the ISR, bounded by
// request.timeout.ms as Kafka's TransactionStateManager appends.
func (tp txnPersister) Persist(ctx context.Context, partition int32, records []txn.Record) error {
	recs := numberedRecords(records, func(r txn.Record) ([]byte, []byte) { return r.Key, r.Value })
	err := tp.b.appendInternal(ctx, txnStateTopic, partition, recs, protocol.DefaultBatchOptions(), peerRequestTimeout)
	if errors.Is(err, errNoInternalPartition) {
		return fmt.Errorf("%w: %w", txn.ErrNotCoordinator, err)
	}
	return err
}
