package integration

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// txnWellBehaved commits a transaction over two partitions with a
// franz-go producer and reads it back with a read_committed consumer,
// proving the broker still serves transactions.
type txnWellBehaved struct {
	t        *testing.T
	topic    string
	producer *kgo.Client
	consumer *kgo.Client
	n        int
}

func newTxnWellBehaved(t *testing.T, addr, topic string) *txnWellBehaved {
	return &txnWellBehaved{t: t, topic: topic,
		producer: client(t, addr, kgo.TransactionalID("well-behaved-"+topic), kgo.DefaultProduceTopic(topic),
			kgo.RecordPartitioner(kgo.ManualPartitioner())),
		consumer: client(t, addr, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond)),
	}
}

func (w *txnWellBehaved) check(after string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w.n++
	want := map[string]bool{}
	if err := w.producer.BeginTransaction(); err != nil {
		w.t.Fatalf("after %s: begin: %v", after, err)
	}
	for p := range int32(2) {
		v := fmt.Sprintf("after %s %d/%d", after, w.n, p)
		want[v] = true
		if err := w.producer.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte(v)}).FirstErr(); err != nil {
			w.t.Fatalf("after %s: transactional produce: %v", after, err)
		}
	}
	if err := w.producer.EndTransaction(ctx, kgo.TryCommit); err != nil {
		w.t.Fatalf("after %s: commit: %v", after, err)
	}
	for len(want) > 0 {
		fs := w.consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			w.t.Fatalf("after %s: committed records %v not read by read_committed: %v", after, want, err)
		}
		fs.EachRecord(func(r *kgo.Record) { delete(want, string(r.Value)) })
	}
}

// TestTxnBadInputKafkaErrorsNothingStored sends the transaction requests a
// broken, stale or hostile client or coordinator might, as raw requests to
// one in-process broker: each gets Kafka's error code, stores nothing (the
// partitions' high watermarks and last stable offsets, __transaction_state
// and the transactions' described state are unchanged), and a
// well-behaved transactional producer and read_committed consumer work
// afterwards.
func TestTxnBadInputKafkaErrorsNothingStored(t *testing.T) {
	t.Parallel()
	settings := map[string]string{"transaction.max.timeout.ms": "300000", "transaction.state.log.num.partitions": "4"}
	ib := startBroker(t, settings)
	createTopic(t, ib.addr(), "tbad", 2, nil)
	// A first transaction's markers carry coordinator epoch 0; after a
	// restart the coordinator epoch (the leader epoch of the
	// __transaction_state partitions) is higher, so markers from the
	// coordinator that ran before the restart are stale.
	first := newTxnWellBehaved(t, ib.addr(), "tbad")
	first.check("first start")
	first.producer.Close()
	first.consumer.Close()
	cfg := ib.cfg
	ib.stop()
	cfg.Listen = "127.0.0.1:0"
	ib = startBrokerConfig(t, cfg)
	addr := ib.addr()
	adm := admin(t, addr)
	w := newTxnWellBehaved(t, addr, "tbad")
	w.check("restart")

	// unchanged captures what must not move while a bad request is
	// answered.
	unchanged := func(t *testing.T, ids ...string) func() {
		t.Helper()
		snap := func() string {
			s := offsetsView(t, adm, "tbad", "__transaction_state")
			for _, id := range ids {
				s += id + ": " + txnState(describeTxn(t, adm, id)) + "; "
			}
			return s
		}
		before := snap()
		return func() {
			t.Helper()
			if after := snap(); after != before {
				t.Errorf("a refused request changed the broker's state:\nbefore %s\nafter  %s", before, after)
			}
		}
	}
	expect := func(t *testing.T, what string, got, want int16) {
		t.Helper()
		if got != want {
			t.Errorf("%s: error %s, want %s", what, errName(got), errName(want))
		}
	}

	t.Run("transaction timeout above the maximum", func(t *testing.T) {
		check := unchanged(t, "tb-timeout")
		for _, ms := range []int32{300001, 1 << 30, 0, -1} {
			req := kmsg.NewPtrInitProducerIDRequest()
			req.Version = 4
			req.TransactionalID, req.TransactionTimeoutMillis = kmsg.StringPtr("tb-timeout"), ms
			req.ProducerID, req.ProducerEpoch = -1, -1
			resp := roundTrip(t, addr, req).(*kmsg.InitProducerIDResponse)
			expect(t, fmt.Sprintf("InitProducerId with timeout %d ms", ms), resp.ErrorCode, kerr.InvalidTransactionTimeout.Code)
			if resp.ProducerID != -1 {
				t.Errorf("InitProducerId with timeout %d ms handed out producer id %d", ms, resp.ProducerID)
			}
		}
		check()
		if d := describeTxn(t, adm, "tb-timeout"); !errors.Is(d.Err, kerr.TransactionalIDNotFound) {
			t.Errorf("refused InitProducerId created the id: %s", txnState(d))
		}
		// A known id keeps its state when a later InitProducerId asks for
		// too much.
		initTxnProducer(t, addr, "tb-timeout", 300000)
		check = unchanged(t, "tb-timeout")
		req := kmsg.NewPtrInitProducerIDRequest()
		req.Version = 4
		req.TransactionalID, req.TransactionTimeoutMillis = kmsg.StringPtr("tb-timeout"), 300001
		req.ProducerID, req.ProducerEpoch = -1, -1
		expect(t, "InitProducerId of a known id with timeout 300001 ms", roundTrip(t, addr, req).(*kmsg.InitProducerIDResponse).ErrorCode,
			kerr.InvalidTransactionTimeout.Code)
		check()
		w.t = t
		w.check("timeout above the maximum")
	})

	t.Run("EndTxn for an unknown or mismatched id", func(t *testing.T) {
		pid, epoch := initTxnProducer(t, addr, "tb-end", 300000)
		check := unchanged(t, "tb-end", "tb-never")
		for _, v := range []int16{1, 3, 4, 5} {
			end := func(id string, pid int64, epoch int16, commit bool) int16 {
				req := kmsg.NewPtrEndTxnRequest()
				req.Version = v
				req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = id, pid, epoch, commit
				return roundTrip(t, addr, req).(*kmsg.EndTxnResponse).ErrorCode
			}
			expect(t, fmt.Sprintf("EndTxn v%d of an unknown id", v), end("tb-never", 4242, 0, true), kerr.InvalidProducerIDMapping.Code)
			expect(t, fmt.Sprintf("EndTxn v%d without an id", v), end("", pid, epoch, true), kerr.InvalidRequest.Code)
			expect(t, fmt.Sprintf("EndTxn v%d with another producer id", v), end("tb-end", pid+1000, epoch, true), kerr.InvalidProducerIDMapping.Code)
			fenced := kerr.ProducerFenced.Code
			if v < 2 {
				fenced = kerr.InvalidProducerEpoch.Code
			}
			expect(t, fmt.Sprintf("EndTxn v%d with a newer epoch", v), end("tb-end", pid, epoch+5, true), fenced)
			if v < 5 {
				// Transaction version 2 may abort with nothing ongoing (it
				// bumps the epoch); under 0/1 ending nothing is invalid.
				expect(t, fmt.Sprintf("EndTxn v%d commit with no transaction", v), end("tb-end", pid, epoch, true), kerr.InvalidTxnState.Code)
				expect(t, fmt.Sprintf("EndTxn v%d abort with no transaction", v), end("tb-end", pid, epoch, false), kerr.InvalidTxnState.Code)
			}
		}
		check()
		if d := describeTxn(t, adm, "tb-never"); !errors.Is(d.Err, kerr.TransactionalIDNotFound) {
			t.Errorf("EndTxn of an unknown id created it: %s", txnState(d))
		}
		w.t = t
		w.check("EndTxn")
	})

	t.Run("AddPartitionsToTxn for unknown topics", func(t *testing.T) {
		pid, epoch := initTxnProducer(t, addr, "tb-add", 300000)
		check := unchanged(t, "tb-add")
		resp := roundTrip(t, addr, addPartitionsV3("tb-add", pid, epoch, map[string][]int32{
			"tb-no-such-topic": {0}, "tbad": {0, 7, -1},
		})).(*kmsg.AddPartitionsToTxnResponse)
		got := addPartitionsCodes(resp)
		want := map[string]int16{
			"tb-no-such-topic/0": kerr.UnknownTopicOrPartition.Code,
			"tbad/7":             kerr.UnknownTopicOrPartition.Code,
			"tbad/-1":            kerr.UnknownTopicOrPartition.Code,
			"tbad/0":             kerr.OperationNotAttempted.Code,
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("AddPartitionsToTxn v3: answered %v, want %v", got, want)
		}
		// The same from a partition leader's batch (v4, adding).
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		req.Version = 4
		tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
		tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch = "tb-add", pid, epoch
		tx.Topics = []kmsg.AddPartitionsToTxnRequestTransactionTopic{{Topic: "tb-no-such-topic", Partitions: []int32{0}}, {Topic: "tbad", Partitions: []int32{1}}}
		req.Transactions = append(req.Transactions, tx)
		got = addPartitionsCodes(roundTrip(t, addr, req).(*kmsg.AddPartitionsToTxnResponse))
		want = map[string]int16{
			"tb-add:tb-no-such-topic/0": kerr.UnknownTopicOrPartition.Code,
			"tb-add:tbad/1":             kerr.OperationNotAttempted.Code,
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("AddPartitionsToTxn v4: answered %v, want %v", got, want)
		}
		// Known partitions for an id the coordinator never saw.
		got = addPartitionsCodes(roundTrip(t, addr, addPartitionsV3("tb-never", 4242, 0, map[string][]int32{"tbad": {0}})).(*kmsg.AddPartitionsToTxnResponse))
		if want := (map[string]int16{"tbad/0": kerr.InvalidProducerIDMapping.Code}); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("AddPartitionsToTxn of an unknown id: answered %v, want %v", got, want)
		}
		check()
		if d := describeTxn(t, adm, "tb-add"); d.State != "Empty" || len(d.Topics) != 0 {
			t.Errorf("transaction after refused adds: %s, want Empty with no partitions", txnState(d))
		}
		w.t = t
		w.check("AddPartitionsToTxn")
	})

	t.Run("transactional batch for a partition not in the transaction", func(t *testing.T) {
		pid, epoch := initTxnProducer(t, addr, "tb-notin", 300000)
		added := addPartitionsCodes(roundTrip(t, addr, addPartitionsV3("tb-notin", pid, epoch, map[string][]int32{"tbad": {0}})).(*kmsg.AddPartitionsToTxnResponse))
		if added["tbad/0"] != 0 {
			t.Fatalf("adding tbad/0: %v", added)
		}
		check := unchanged(t, "tb-notin")
		for _, c := range []struct {
			version int16
			want    int16
		}{
			{3, kerr.InvalidTxnState.Code},
			{9, kerr.InvalidTxnState.Code},
			{10, kerr.InvalidTxnState.Code},
			{11, kerr.TransactionAbortable.Code}, // produce v11 added the code (KIP-890)
		} {
			req := txnProduceRequest(c.version, "tb-notin", "tbad", 1, txnBatch(pid, epoch, 0, "not in the transaction"))
			p := roundTrip(t, addr, req).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
			expect(t, fmt.Sprintf("produce v%d of a transactional batch to a partition not added", c.version), p.ErrorCode, c.want)
		}
		check()
		// The partition that was added takes the batch; abort it.
		p := roundTrip(t, addr, txnProduceRequest(9, "tb-notin", "tbad", 0, txnBatch(pid, epoch, 0, "in the transaction"))).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
		expect(t, "produce to the partition added", p.ErrorCode, 0)
		end := kmsg.NewPtrEndTxnRequest()
		end.Version = 3
		end.TransactionalID, end.ProducerID, end.ProducerEpoch = "tb-notin", pid, epoch
		expect(t, "abort", roundTrip(t, addr, end).(*kmsg.EndTxnResponse).ErrorCode, 0)
		waitFor(t, 10*time.Second, func() error {
			if d := describeTxn(t, adm, "tb-notin"); d.State != "CompleteAbort" {
				return fmt.Errorf("transaction %s", txnState(d))
			}
			return nil
		})
		w.t = t
		w.check("batch outside the transaction")
	})

	t.Run("markers with a stale coordinator or producer epoch", func(t *testing.T) {
		prod := client(t, addr, kgo.TransactionalID("tb-marker"), kgo.DefaultProduceTopic("tbad"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		txn := func(prefix string) {
			t.Helper()
			if err := prod.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			for p := range int32(2) {
				if err := prod.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte(fmt.Sprintf("%s/%d", prefix, p))}).FirstErr(); err != nil {
					t.Fatalf("%s: %v", prefix, err)
				}
			}
		}
		// One committed transaction leaves the current coordinator's epoch
		// with the producer in both partitions; the second stays open.
		txn("marker committed")
		if err := prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
		txn("marker open")
		d := describeTxn(t, adm, "tb-marker")
		if d.State != "Ongoing" {
			t.Fatalf("transaction %s, want Ongoing", txnState(d))
		}
		coordEpoch := describedCoordinatorEpoch(t, adm, "tbad", d.ProducerID)
		if coordEpoch < 1 {
			t.Fatalf("coordinator epoch %d after a restart, want at least 1", coordEpoch)
		}
		check := unchanged(t, "tb-marker")
		got, n := markerCodes(roundTrip(t, addr, markerRequest(d.ProducerID, d.ProducerEpoch, false, coordEpoch-1, "tbad", 0, 1)).(*kmsg.WriteTxnMarkersResponse))
		fenced := kerr.TransactionCoordinatorFenced.Code
		if key := fmt.Sprintf("%d:tbad/", d.ProducerID); n != 2 || got[key+"0"] != fenced || got[key+"1"] != fenced {
			t.Errorf("abort marker from coordinator epoch %d (current %d): answered %v, want TRANSACTION_COORDINATOR_FENCED for tbad/0 and 1", coordEpoch-1, coordEpoch, got)
		}
		got, n = markerCodes(roundTrip(t, addr, markerRequest(d.ProducerID, d.ProducerEpoch-1, false, coordEpoch, "tbad", 0, 1)).(*kmsg.WriteTxnMarkersResponse))
		stale := kerr.InvalidProducerEpoch.Code
		if key := fmt.Sprintf("%d:tbad/", d.ProducerID); n != 2 || got[key+"0"] != stale || got[key+"1"] != stale {
			t.Errorf("abort marker of producer epoch %d (current %d): answered %v, want INVALID_PRODUCER_EPOCH for tbad/0 and 1", d.ProducerEpoch-1, d.ProducerEpoch, got)
		}
		got, _ = markerCodes(roundTrip(t, addr, markerRequest(d.ProducerID, d.ProducerEpoch, false, coordEpoch, "tb-no-such-topic", 0)).(*kmsg.WriteTxnMarkersResponse))
		if key := fmt.Sprintf("%d:tb-no-such-topic/0", d.ProducerID); got[key] != kerr.UnknownTopicOrPartition.Code {
			t.Errorf("marker for an unknown topic: answered %v, want UNKNOWN_TOPIC_OR_PARTITION", got)
		}
		check()
		if after := describedCoordinatorEpoch(t, adm, "tbad", d.ProducerID); after != coordEpoch {
			t.Errorf("producer's coordinator epoch %d after refused markers, was %d", after, coordEpoch)
		}
		// The transaction the stale markers tried to abort commits.
		if err := prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatalf("commit after the stale markers: %v", err)
		}
		seen := map[string]bool{}
		cons := client(t, addr, kgo.ConsumeTopics("tbad"), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		waitFor(t, 20*time.Second, func() error {
			pctx, pcancel := context.WithTimeout(ctx, time.Second)
			defer pcancel()
			cons.PollFetches(pctx).EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
			if !seen["marker open/0"] || !seen["marker open/1"] {
				return fmt.Errorf("the committed transaction is not visible to read_committed")
			}
			return nil
		})
		w.t = t
		w.check("stale markers")
	})
}

// describedCoordinatorEpoch is the coordinator epoch DescribeProducers
// reports for producer pid in partition 0 of topic.
func describedCoordinatorEpoch(t *testing.T, adm *kadm.Client, topic string, pid int64) int32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ps, err := adm.DescribeProducers(ctx, kadm.TopicsSet{topic: {0: {}}})
	if err != nil {
		t.Fatalf("describe producers: %v", err)
	}
	epoch := int32(-2)
	ps.EachProducer(func(p kadm.DescribedProducer) {
		if p.ProducerID == pid {
			epoch = p.CoordinatorEpoch
		}
	})
	if epoch == -2 {
		t.Fatalf("producer %d not described in %s/0", pid, topic)
	}
	return epoch
}
