package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestTxnClusterCommitAbort runs back-to-back transactions spanning
// partitions led by different brokers of a three-broker cluster, with the
// coordinator and the leaders apart, so markers and verifications cross
// brokers: read_committed sees exactly the committed ones, each record
// once.
func TestTxnClusterCommitAbort(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3, "--set", "transaction.state.log.num.partitions=6")
	c.createTopic("txn-cluster", 6, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	prod := c.client(kgo.TransactionalID("txn-cluster-p"), kgo.DefaultProduceTopic("txn-cluster"),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	committed := 0
	start := time.Now()
	for i := range 10 {
		if err := prod.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for j := range 12 {
			r := &kgo.Record{Value: []byte(fmt.Sprintf("t%d-%d", i, j))}
			if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("txn %d produce: %v", i, err)
			}
		}
		commit := i%3 != 1
		if err := prod.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("txn %d end: %v", i, err)
		}
		if commit {
			committed += 12
		}
	}
	t.Logf("10 transactions of 12 records in %v", time.Since(start))
	cons := c.client(kgo.ConsumeTopics("txn-cluster"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[string]bool{}
	defer func() {
		if !t.Failed() {
			return
		}
		adm := c.admin()
		hw, _ := adm.ListEndOffsets(context.Background(), "txn-cluster")
		lso, _ := adm.ListCommittedOffsets(context.Background(), "txn-cluster")
		hw.Each(func(o kadm.ListedOffset) {
			l, _ := lso.Lookup("txn-cluster", o.Partition)
			t.Logf("partition %d: high watermark %d, last stable offset %d (leader epoch %d)", o.Partition, o.Offset, l.Offset, o.LeaderEpoch)
		})
		ps, err := adm.DescribeProducers(context.Background(), kadm.TopicsSet{"txn-cluster": {0: {}, 1: {}, 2: {}, 3: {}, 4: {}, 5: {}}})
		t.Logf("describe producers: %v", err)
		ps.EachProducer(func(p kadm.DescribedProducer) {
			t.Logf("  p%d producer %d epoch %d last seq %d coord epoch %d txn start %d", p.Partition, p.ProducerID, p.ProducerEpoch, p.LastSequence, p.CoordinatorEpoch, p.CurrentTxnStartOffset)
		})
	}()
	waitFor(t, 30*time.Second, func() error {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		defer pcancel()
		cons.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			if seen[string(r.Value)] {
				t.Errorf("record %s read twice", r.Value)
			}
			seen[string(r.Value)] = true
		})
		if len(seen) < committed {
			return fmt.Errorf("read %d of %d committed records", len(seen), committed)
		}
		return nil
	})
	for v := range seen {
		var i, j int
		fmt.Sscanf(v, "t%d-%d", &i, &j)
		if i%3 == 1 {
			t.Errorf("read_committed consumer saw aborted record %s", v)
		}
	}
}
