package txn

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const hostileRepeats = 100_000

// A partition named many times is added, written and answered once, and
// costs no more allocations than naming it once. Not parallel:
// AllocsPerRun counts the whole process.
func TestTxnRepeatedPartitionsAnsweredOnce(t *testing.T) {
	h := newHarness(t)
	pid, epoch := h.mustInit("a")
	build := func(n int) *kmsg.AddPartitionsToTxnRequest {
		r := kmsg.NewPtrAddPartitionsToTxnRequest()
		r.Version = 3
		r.TransactionalID, r.ProducerID, r.ProducerEpoch = "a", pid, epoch
		ps := make([]int32, n)
		r.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: "t", Partitions: ps}, {Topic: "t", Partitions: ps}}
		return r
	}
	calls := h.log.callCount()
	resp := h.c.AddPartitionsToTxn(h.ctx, build(hostileRepeats))
	h.settle()
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("response: %+v", resp.Topics)
	}
	if h.log.callCount() != calls+1 {
		t.Fatalf("%d writes, want 1", h.log.callCount()-calls)
	}
	one, many := build(1), build(hostileRepeats)
	a1 := testing.AllocsPerRun(5, func() { h.c.AddPartitionsToTxn(h.ctx, one) })
	aN := testing.AllocsPerRun(5, func() { h.c.AddPartitionsToTxn(h.ctx, many) })
	if aN > a1+5 {
		t.Fatalf("%d repeats cost %.0f allocations, one %.0f", hostileRepeats, aN, a1)
	}
}

// Repeated transactional ids in DescribeTransactions and in a v4+ batch,
// and repeated ListTransactions filters, are answered once.
func TestTxnRepeatedIDsAnsweredOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pid, epoch := h.mustInit("a")
	h.mustAdd("a", pid, epoch, "t-0")

	d := kmsg.NewPtrDescribeTransactionsRequest()
	for range hostileRepeats {
		d.TransactionalIDs = append(d.TransactionalIDs, "a", "nope")
	}
	if got := h.c.DescribeTransactions(h.ctx, d).TransactionStates; len(got) != 2 ||
		got[0].State != "Ongoing" || got[1].ErrorCode != kerr.TransactionalIDNotFound.Code {
		t.Fatalf("describe: %d states", len(got))
	}

	r := kmsg.NewPtrAddPartitionsToTxnRequest()
	r.Version = 5
	for i := range 1000 {
		tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
		tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tx.VerifyOnly = "a", pid, epoch, i%2 == 0
		tx.Topics = []kmsg.AddPartitionsToTxnRequestTransactionTopic{{Topic: "t", Partitions: []int32{0, 0, 0}}}
		r.Transactions = append(r.Transactions, tx)
	}
	resp := h.c.AddPartitionsToTxn(h.ctx, r)
	if len(resp.Transactions) != 1 || len(resp.Transactions[0].Topics[0].Partitions) != 1 {
		t.Fatalf("batch: %+v", resp.Transactions)
	}

	l := kmsg.NewPtrListTransactionsRequest()
	l.Version = 2
	for range hostileRepeats {
		l.StateFilters = append(l.StateFilters, "Ongoing", "Bogus")
		l.ProducerIDFilters = append(l.ProducerIDFilters, pid)
	}
	lr := h.c.ListTransactions(h.ctx, l)
	if len(lr.TransactionStates) != 1 || len(lr.UnknownStateFilters) != 1 {
		t.Fatalf("list: %d states, unknown %v", len(lr.TransactionStates), lr.UnknownStateFilters)
	}
}

// A client's AddPartitionsToTxn naming a partition that does not exist
// adds nothing: UNKNOWN_TOPIC_OR_PARTITION for it, OPERATION_NOT_ATTEMPTED
// for the rest, before any coordinator check.
func TestTxnAddUnknownPartitions(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pid, epoch := h.mustInit("a")
	calls := h.log.callCount()
	got := h.add(3, "a", pid, epoch, "t-0", "t-4", "missing-0", "u-1")
	want := []string{"missing-0:UNKNOWN_TOPIC_OR_PARTITION", "t-0:OPERATION_NOT_ATTEMPTED",
		"t-4:UNKNOWN_TOPIC_OR_PARTITION", "u-1:OPERATION_NOT_ATTEMPTED"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	if h.log.callCount() != calls {
		t.Fatal("a failed add was written")
	}
	// Checked before the coordinator: even a wrong epoch gets these codes.
	if got := h.add(3, "a", pid, epoch+5, "missing-0"); got[0] != "missing-0:UNKNOWN_TOPIC_OR_PARTITION" {
		t.Fatalf("got %v", got)
	}
	// AddOffsetsToTxn needs no topic check; its partition is the group's.
	r := kmsg.NewPtrAddOffsetsToTxnRequest()
	r.Version = 1
	r.TransactionalID, r.ProducerID, r.ProducerEpoch, r.Group = "a", pid, epoch+1, "g"
	expectCode(t, "offsets v1 fenced", h.c.AddOffsetsToTxn(h.ctx, r).ErrorCode, kerr.InvalidProducerEpoch)
	r.Version, r.ProducerEpoch = 3, epoch
	expectCode(t, "offsets", h.c.AddOffsetsToTxn(h.ctx, r).ErrorCode, nil)
	h.settle()
	if m, _, _ := h.state("a"); !m.hasPartition(TopicPartition{Topic: OffsetsTopic, Partition: 3}) {
		t.Fatalf("partitions %v", m.partitions)
	}
}

// No more than maxMarkerWriters marker writes run at once; the rest wait
// their turn and all complete.
func TestTxnMarkerWritesBounded(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.markers.setMode("block")
	n := maxMarkerWriters + 36
	for i := range n {
		id := fmt.Sprintf("id-%d", i)
		pid, epoch := h.mustInit(id)
		h.mustAdd(id, pid, epoch, "t-0")
		expectCode(t, "end", h.end(4, id, pid, epoch, true).ErrorCode, nil)
	}
	h.c.mu.Lock()
	running, queued := h.c.mu.markers.running, len(h.c.mu.markers.queue)
	h.c.mu.Unlock()
	if running != maxMarkerWriters || queued != n-maxMarkerWriters {
		t.Fatalf("running %d queued %d, want %d and %d", running, queued, maxMarkerWriters, n-maxMarkerWriters)
	}
	h.markers.setMode("ok")
	h.settle()
	if st := h.c.Stats(); st.Committed != uint64(n) || st.Ongoing != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// In a v4+ batch each transaction stands alone: one naming an unknown
// partition fails by itself while the others are verified or added; a v4
// add keeps transaction version 0, a v5 add marks version 2.
func TestTxnLeaderBatchTransactionsIndependent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pa, ea := h.mustInit("a")
	pb, eb := h.mustInit("b")
	pc, ec := h.mustInit("c")
	h.mustAdd("c", pc, ec, "t-0")
	r := kmsg.NewPtrAddPartitionsToTxnRequest()
	r.Version = 4
	for _, tx := range []struct {
		id     string
		pid    int64
		epoch  int16
		verify bool
		topic  string
	}{{"a", pa, ea, false, "t"}, {"b", pb, eb, false, "missing"}, {"c", pc, ec, true, "t"}} {
		x := kmsg.NewAddPartitionsToTxnRequestTransaction()
		x.TransactionalID, x.ProducerID, x.ProducerEpoch, x.VerifyOnly = tx.id, tx.pid, tx.epoch, tx.verify
		x.Topics = []kmsg.AddPartitionsToTxnRequestTransactionTopic{{Topic: tx.topic, Partitions: []int32{0}}}
		r.Transactions = append(r.Transactions, x)
	}
	resp := h.c.AddPartitionsToTxn(h.ctx, r)
	h.settle()
	got := make(map[string]int16)
	for _, rt := range resp.Transactions {
		got[rt.TransactionalID] = rt.Topics[0].Partitions[0].ErrorCode
	}
	if got["a"] != 0 || got["b"] != kerr.UnknownTopicOrPartition.Code || got["c"] != 0 {
		t.Fatalf("codes %v", got)
	}
	if m, _, _ := h.state("a"); m.state != stateOngoing || m.tv != 0 {
		t.Fatalf("a after a v4 add: %s tv=%d", m.state, m.tv)
	}
	if _, _, ok := h.state("b"); !ok {
		t.Fatal("b lost")
	}
	if got := h.leader(5, false, "b", pb, eb, "u-1"); got[0] != "u-1:NONE" {
		t.Fatalf("v5 add: %v", got)
	}
	if m, _, _ := h.state("b"); m.tv != 2 {
		t.Fatalf("b after a v5 add: tv=%d", m.tv)
	}
}
