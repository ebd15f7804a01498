package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

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
