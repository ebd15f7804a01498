package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestTxnCommitAbortReadCommitted runs franz-go transactions against one
// broker: a committed transaction is visible to read_committed and
// read_uncommitted consumers, an aborted one only to read_uncommitted.
func TestTxnCommitAbortReadCommitted(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	createTopic(t, b.addr(), "txn-basic", 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	prod := client(t, b.addr(), kgo.TransactionalID("txn-basic-producer"), kgo.DefaultProduceTopic("txn-basic"))
	run := func(commit bool, prefix string, n int) {
		t.Helper()
		if err := prod.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			r := &kgo.Record{Key: []byte(fmt.Sprintf("%s-%d", prefix, i%3)), Value: []byte(fmt.Sprintf("%s-%d", prefix, i))}
			if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce %s: %v", prefix, err)
			}
		}
		if err := prod.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("end %s: %v", prefix, err)
		}
	}
	run(true, "c1", 10)
	run(false, "a1", 10)
	run(true, "c2", 10)

	read := func(level kgo.IsolationLevel) map[string]int {
		t.Helper()
		cl := client(t, b.addr(), kgo.ConsumeTopics("txn-basic"), kgo.FetchIsolationLevel(level),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		seen := map[string]int{}
		total := 0
		want := 20
		if level == kgo.ReadUncommitted() {
			want = 30
		}
		deadline := time.Now().Add(30 * time.Second)
		for total < want && time.Now().Before(deadline) {
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			fs := cl.PollFetches(pctx)
			pcancel()
			fs.EachRecord(func(r *kgo.Record) {
				seen[strings.SplitN(string(r.Value), "-", 2)[0]]++
				total++
			})
		}
		return seen
	}
	committed := read(kgo.ReadCommitted())
	if committed["c1"] != 10 || committed["c2"] != 10 || committed["a1"] != 0 {
		t.Fatalf("read_committed saw %v, want 10 of c1 and c2 and no a1", committed)
	}
	all := read(kgo.ReadUncommitted())
	if all["c1"] != 10 || all["c2"] != 10 || all["a1"] != 10 {
		t.Fatalf("read_uncommitted saw %v, want 10 of each", all)
	}
}

// TestTxnAdminDescribeListProducers checks the operator's view of an open
// transaction through kadm: DescribeTransactions and ListTransactions (by
// state and producer id) name it Ongoing with its partitions, and
// DescribeProducers shows the first offset holding back the last stable
// offset, which ListOffsets under read_committed answers.
func TestTxnAdminDescribeListProducers(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	createTopic(t, b.addr(), "txn-admin", 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := admin(t, b.addr())
	prod := client(t, b.addr(), kgo.TransactionalID("txn-admin-p"), kgo.DefaultProduceTopic("txn-admin"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produce := func(p int32, v string) {
		t.Helper()
		if err := prod.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	produce(0, "committed")
	if err := prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	produce(1, "open")

	described, err := adm.DescribeTransactions(ctx, "txn-admin-p")
	if err != nil {
		t.Fatal(err)
	}
	d := described["txn-admin-p"]
	if d.Err != nil || d.State != "Ongoing" || d.ProducerID < 0 {
		t.Fatalf("DescribeTransactions: %+v", d)
	}
	if _, ok := d.Topics["txn-admin"][1]; !ok || len(d.Topics["txn-admin"]) != 1 {
		t.Fatalf("DescribeTransactions partitions %v, want txn-admin-1 alone", d.Topics)
	}
	listed, err := adm.ListTransactions(ctx, []int64{d.ProducerID}, []string{"Ongoing"})
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := listed["txn-admin-p"]; !ok || l.State != "Ongoing" || len(listed) != 1 {
		t.Fatalf("ListTransactions(Ongoing, producer %d) = %v", d.ProducerID, listed)
	}
	if none, err := adm.ListTransactions(ctx, nil, []string{"PrepareCommit"}); err != nil || len(none) != 0 {
		t.Fatalf("ListTransactions(PrepareCommit) = %v, %v; want none", none, err)
	}
	producers, err := adm.DescribeProducers(ctx, kadm.TopicsSet{"txn-admin": {0: {}, 1: {}}})
	if err != nil {
		t.Fatal(err)
	}
	starts := map[int32]int64{}
	producers.EachProducer(func(p kadm.DescribedProducer) {
		if p.ProducerID == d.ProducerID {
			starts[p.Partition] = p.CurrentTxnStartOffset
		}
	})
	if starts[0] != -1 || starts[1] != 0 {
		t.Fatalf("DescribeProducers transaction starts %v, want partition 0 none (-1) and partition 1 at 0", starts)
	}
	committedEnds, err := adm.ListCommittedOffsets(ctx, "txn-admin")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := committedEnds.Lookup("txn-admin", 1); o.Offset != 0 {
		t.Fatalf("read_committed end offset of partition 1: %d, want 0 (held by the open transaction)", o.Offset)
	}
	if err := prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		ends, err := adm.ListCommittedOffsets(ctx, "txn-admin")
		if err != nil {
			return err
		}
		if o, _ := ends.Lookup("txn-admin", 1); o.Offset != 2 {
			return fmt.Errorf("read_committed end offset of partition 1: %d, want 2 after the commit", o.Offset)
		}
		return nil
	})
}
