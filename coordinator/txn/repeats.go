package txn

// Repeated entries in requests. No request may cost more than its distinct
// entries need: a transactional id, topic or partition listed many times is
// looked up, written and answered once (Kafka's handlers build sets from
// these lists too), and nothing is allocated per repeat beyond the list
// the decoder already built.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/internal/uniq"
)

// distinctPartitions returns the distinct partitions a request names, in
// order of first appearance. topics and partitions read the request's
// entries, so that the v0-3 and v4+ shapes share it.
func distinctPartitions(n int, topic func(i int) string, partitions func(i int) []int32) []TopicPartition {
	total := 0
	for i := range n {
		total += len(partitions(i))
	}
	seen := make(map[TopicPartition]struct{}, uniq.SizeHint(total))
	out := make([]TopicPartition, 0, uniq.SizeHint(total))
	for i := range n {
		t := topic(i)
		for _, p := range partitions(i) {
			tp := TopicPartition{Topic: t, Partition: p}
			if _, dup := seen[tp]; dup {
				continue
			}
			seen[tp] = struct{}{}
			out = append(out, tp)
		}
	}
	return out
}

func clientPartitions(ts []kmsg.AddPartitionsToTxnRequestTopic) []TopicPartition {
	return distinctPartitions(len(ts),
		func(i int) string { return ts[i].Topic },
		func(i int) []int32 { return ts[i].Partitions })
}

func brokerPartitions(ts []kmsg.AddPartitionsToTxnRequestTransactionTopic) []TopicPartition {
	return distinctPartitions(len(ts),
		func(i int) string { return ts[i].Topic },
		func(i int) []int32 { return ts[i].Partitions })
}

// uniqueTransactions keeps the first entry of each transactional id of an
// AddPartitionsToTxn v4+ batch: the batch is answered per transactional
// id, and a partition leader sends one entry per id.
func uniqueTransactions(ts []kmsg.AddPartitionsToTxnRequestTransaction) []kmsg.AddPartitionsToTxnRequestTransaction {
	return uniq.By(ts, func(t kmsg.AddPartitionsToTxnRequestTransaction) string { return t.TransactionalID })
}

// GroupByTopic calls fn once per topic of tps, in order of first
// appearance, with that topic's partitions' indexes into tps: the shape of
// every request and response that lists a transaction's partitions by
// topic, here and in the broker.
func GroupByTopic(tps []TopicPartition, fn func(topic string, idx []int)) {
	if len(tps) == 0 {
		return
	}
	order := make([]string, 0, uniq.SizeHint(len(tps)))
	byTopic := make(map[string][]int, uniq.SizeHint(len(tps)))
	for i, tp := range tps {
		if _, ok := byTopic[tp.Topic]; !ok {
			order = append(order, tp.Topic)
		}
		byTopic[tp.Topic] = append(byTopic[tp.Topic], i)
	}
	for _, t := range order {
		fn(t, byTopic[t])
	}
}
