package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// txnCopies is how often an attack on the transaction APIs repeats one
// entry: past the 65,536 select cases a per-entry wait once built.
const txnCopies = 70_000

// TestTxnRepetitionAttacksBrokerKeepsServing sends the transaction APIs
// requests that repeat one entry 70,000 times, to a broker process: each
// is answered promptly, once per distinct entry (or, where Kafka answers
// every entry, as Kafka does), writes at most once, and the broker's
// goroutines and memory stay bounded while a well-behaved transactional
// producer and read_committed consumer keep working.
func TestTxnRepetitionAttacksBrokerKeepsServing(t *testing.T) {
	t.Parallel()
	p := startProc(t, "--log-level", "warn", "--set", "transaction.state.log.num.partitions=4",
		"--set", "group.initial.rebalance.delay.ms=0")
	addr := p.addr
	createTopic(t, addr, "trep", 2, nil)
	adm := admin(t, addr)
	w := newTxnWellBehaved(t, addr, "trep")
	w.check("start")
	base := p.metric(t, "go_goroutines")
	if base <= 0 {
		t.Fatal("no go_goroutines metric")
	}
	pid, epoch := initTxnProducer(t, addr, "rep-txn", 300000)

	// send answers req within a bound: a repeat must cost a lookup, not a
	// write, a goroutine or a wait.
	send := func(t *testing.T, req kmsg.Request) kmsg.Response {
		t.Helper()
		start := time.Now()
		resp := roundTrip(t, addr, req)
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%T with %d copies answered after %v", req, txnCopies, d.Round(time.Millisecond))
		}
		return resp
	}
	hw := func(t *testing.T, partition int32) int64 {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		offs, err := adm.ListEndOffsets(ctx, "trep")
		if err != nil {
			t.Fatal(err)
		}
		o, _ := offs.Lookup("trep", partition)
		return o.Offset
	}
	after := func(t *testing.T, name string) {
		t.Helper()
		w.t = t
		w.check(name)
		assertServing(t, p, base)
	}

	t.Run("WriteTxnMarkers 70k copies of one marker", func(t *testing.T) {
		d := describeTxn(t, adm, "well-behaved-trep")
		coordEpoch := describedCoordinatorEpoch(t, adm, "trep", d.ProducerID)
		before := hw(t, 0)
		req := markerRequest(d.ProducerID, d.ProducerEpoch, true, coordEpoch, "trep", 0)
		for range txnCopies - 1 {
			req.Markers = append(req.Markers, req.Markers[0])
		}
		codes, n := markerCodes(send(t, req).(*kmsg.WriteTxnMarkersResponse))
		if n != 1 || codes[fmt.Sprintf("%d:trep/0", d.ProducerID)] != 0 {
			t.Errorf("answered %d partitions (%v), want trep/0 once without error", n, codes)
		}
		if got := hw(t, 0) - before; got != 1 {
			t.Errorf("the high watermark moved by %d, want 1 (one marker written)", got)
		}
		after(t, "repeated markers")
	})

	t.Run("WriteTxnMarkers one marker naming a partition 70k times", func(t *testing.T) {
		d := describeTxn(t, adm, "well-behaved-trep")
		coordEpoch := describedCoordinatorEpoch(t, adm, "trep", d.ProducerID)
		before := hw(t, 1)
		req := markerRequest(d.ProducerID, d.ProducerEpoch, true, coordEpoch, "trep", make([]int32, txnCopies)...)
		for i := range req.Markers[0].Topics[0].Partitions {
			req.Markers[0].Topics[0].Partitions[i] = 1
		}
		codes, n := markerCodes(send(t, req).(*kmsg.WriteTxnMarkersResponse))
		if n != 1 || codes[fmt.Sprintf("%d:trep/1", d.ProducerID)] != 0 {
			t.Errorf("answered %d partitions (%v), want trep/1 once without error", n, codes)
		}
		if got := hw(t, 1) - before; got != 1 {
			t.Errorf("the high watermark moved by %d, want 1 (one marker written)", got)
		}
		after(t, "repeated marker partitions")
	})

	t.Run("AddPartitionsToTxn v3 70k copies of a topic", func(t *testing.T) {
		req := addPartitionsV3("rep-txn", pid, epoch, nil)
		for range txnCopies {
			req.Topics = append(req.Topics, kmsg.AddPartitionsToTxnRequestTopic{Topic: "trep", Partitions: []int32{0, 1, 0}})
		}
		codes := addPartitionsCodes(send(t, req).(*kmsg.AddPartitionsToTxnResponse))
		if want := (map[string]int16{"trep/0": 0, "trep/1": 0}); fmt.Sprint(codes) != fmt.Sprint(want) {
			t.Errorf("answered %v, want %v", codes, want)
		}
		if d := describeTxn(t, adm, "rep-txn"); d.State != "Ongoing" || len(d.Topics["trep"]) != 2 {
			t.Errorf("transaction %s, want Ongoing with trep/0 and trep/1", txnState(d))
		}
		after(t, "repeated AddPartitionsToTxn topics")
	})

	t.Run("AddPartitionsToTxn v4 70k copies of one transaction", func(t *testing.T) {
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		req.Version = 4
		tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
		tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tx.VerifyOnly = "rep-txn", pid, epoch, true
		tx.Topics = []kmsg.AddPartitionsToTxnRequestTransactionTopic{{Topic: "trep", Partitions: []int32{0, 0, 1}}}
		for range txnCopies {
			req.Transactions = append(req.Transactions, tx)
		}
		resp := send(t, req).(*kmsg.AddPartitionsToTxnResponse)
		codes := addPartitionsCodes(resp)
		if want := (map[string]int16{"rep-txn:trep/0": 0, "rep-txn:trep/1": 0}); resp.ErrorCode != 0 || len(resp.Transactions) != 1 || fmt.Sprint(codes) != fmt.Sprint(want) {
			t.Errorf("answered error %d, %d transactions, %v; want rep-txn once, both partitions verified", resp.ErrorCode, len(resp.Transactions), codes)
		}
		after(t, "repeated AddPartitionsToTxn transactions")
	})

	t.Run("DescribeTransactions and ListTransactions 70k copies", func(t *testing.T) {
		dr := kmsg.NewPtrDescribeTransactionsRequest()
		for range txnCopies {
			dr.TransactionalIDs = append(dr.TransactionalIDs, "rep-txn")
		}
		ds := send(t, dr).(*kmsg.DescribeTransactionsResponse).TransactionStates
		if len(ds) != 1 || ds[0].ErrorCode != 0 || ds[0].State != "Ongoing" {
			t.Errorf("described %d transactions (%+v), want rep-txn once, Ongoing", len(ds), ds[:min(len(ds), 2)])
		}
		lr := kmsg.NewPtrListTransactionsRequest()
		lr.Version = 1
		lr.DurationFilterMillis = -1
		for range txnCopies {
			lr.StateFilters = append(lr.StateFilters, "Ongoing")
			lr.ProducerIDFilters = append(lr.ProducerIDFilters, pid)
		}
		ls := send(t, lr).(*kmsg.ListTransactionsResponse)
		if ls.ErrorCode != 0 || len(ls.TransactionStates) != 1 || ls.TransactionStates[0].TransactionalID != "rep-txn" {
			t.Errorf("listed error %d, %+v; want rep-txn alone", ls.ErrorCode, ls.TransactionStates[:min(len(ls.TransactionStates), 3)])
		}
		after(t, "repeated describe and list")
	})

	t.Run("DescribeProducers 70k copies of a partition", func(t *testing.T) {
		req := kmsg.NewPtrDescribeProducersRequest()
		req.Topics = []kmsg.DescribeProducersRequestTopic{{Topic: "trep", Partitions: make([]int32, txnCopies)}}
		ts := send(t, req).(*kmsg.DescribeProducersResponse).Topics
		if len(ts) != 1 || len(ts[0].Partitions) != 1 || ts[0].Partitions[0].ErrorCode != 0 || len(ts[0].Partitions[0].ActiveProducers) == 0 {
			t.Errorf("answered %+v, want trep/0 once with its producers", ts)
		}
		after(t, "repeated DescribeProducers")
	})

	t.Run("TxnOffsetCommit 70k copies of a partition", func(t *testing.T) {
		// As a client does, find the group's coordinator first (which
		// creates __consumer_offsets).
		waitFor(t, 20*time.Second, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return adm.FindGroupCoordinators(ctx, "rep-group").Error()
		})
		ao := kmsg.NewPtrAddOffsetsToTxnRequest()
		ao.Version = 3
		ao.TransactionalID, ao.ProducerID, ao.ProducerEpoch, ao.Group = "rep-txn", pid, epoch, "rep-group"
		if code := send(t, ao).(*kmsg.AddOffsetsToTxnResponse).ErrorCode; code != 0 {
			t.Fatalf("AddOffsetsToTxn: %s", errName(code))
		}
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.Version = 3
		req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch, req.Generation = "rep-txn", "rep-group", pid, epoch, -1
		rt := kmsg.TxnOffsetCommitRequestTopic{Topic: "trep"}
		for i := range txnCopies {
			rt.Partitions = append(rt.Partitions, kmsg.TxnOffsetCommitRequestTopicPartition{Partition: 0, Offset: int64(i), LeaderEpoch: -1})
		}
		req.Topics = []kmsg.TxnOffsetCommitRequestTopic{rt}
		resp := send(t, req).(*kmsg.TxnOffsetCommitResponse)
		// Kafka answers every entry of a TxnOffsetCommit; the last wins.
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != txnCopies {
			t.Fatalf("answered %d topics, want trep with %d entries", len(resp.Topics), txnCopies)
		}
		for _, p := range resp.Topics[0].Partitions {
			if p.ErrorCode != 0 {
				t.Fatalf("entry answered %s", errName(p.ErrorCode))
			}
		}
		end := kmsg.NewPtrEndTxnRequest()
		end.Version = 3
		end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = "rep-txn", pid, epoch, true
		if code := send(t, end).(*kmsg.EndTxnResponse).ErrorCode; code != 0 {
			t.Fatalf("commit: %s", errName(code))
		}
		waitFor(t, 20*time.Second, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			offs, err := adm.FetchOffsets(ctx, "rep-group")
			if err != nil {
				return err
			}
			o, ok := offs.Lookup("trep", 0)
			if !ok || o.At != txnCopies-1 {
				return fmt.Errorf("committed offset %+v, want %d (the last entry)", o, txnCopies-1)
			}
			return nil
		})
		// A marker repeated for the group's partition reaches the group
		// coordinator once and leaves the committed offset alone.
		mr := markerRequest(pid, epoch, true, 0, "__consumer_offsets", 0)
		for range txnCopies - 1 {
			mr.Markers = append(mr.Markers, mr.Markers[0])
		}
		codes, n := markerCodes(send(t, mr).(*kmsg.WriteTxnMarkersResponse))
		if n != 1 || codes[fmt.Sprintf("%d:__consumer_offsets/0", pid)] != 0 {
			t.Errorf("marker for __consumer_offsets/0: answered %d partitions (%v), want one without error", n, codes)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		offs, err := adm.FetchOffsets(ctx, "rep-group")
		if o, _ := offs.Lookup("trep", 0); err != nil || o.At != txnCopies-1 {
			t.Errorf("committed offset after the repeated marker: %+v %v, want %d", o, err, txnCopies-1)
		}
		after(t, "repeated TxnOffsetCommit")
	})
}
