package broker

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/coordinator/share"
	"github.com/sluicedev/sluice/protocol"
)

func headerMap(hs []kmsg.Header) map[string]string {
	m := map[string]string{}
	for _, h := range hs {
		m[h.Key] = string(h.Value)
	}
	return m
}

// TestDLQHeadersKIP1191: every dead letter carries the six context headers
// with Kafka's names, and the reason tells rejected from delivery limit.
func TestDLQHeadersKIP1191(t *testing.T) {
	t.Parallel()
	c := deadLetterContext{group: "g1", topic: "orders", partition: 7}
	for _, tc := range []struct {
		l   share.DeadLetter
		msg string
	}{
		{share.DeadLetter{Offset: 42, DeliveryCount: 1, Rejected: true}, dlqMessageRejected},
		{share.DeadLetter{Offset: 9000000000, DeliveryCount: 5}, dlqMessageDeliveryLimit},
	} {
		got := headerMap(dlqHeaders(c, tc.l))
		want := map[string]string{
			"__dlq.errors.topic":          "orders",
			"__dlq.errors.partition":      "7",
			"__dlq.errors.offset":         strconv.FormatInt(tc.l.Offset, 10),
			"__dlq.errors.group":          "g1",
			"__dlq.errors.delivery.count": strconv.Itoa(int(tc.l.DeliveryCount)),
			"__dlq.errors.message":        tc.msg,
		}
		if len(got) != len(want) {
			t.Fatalf("headers %v, want %v", got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %q, want %q", k, got[k], v)
			}
		}
	}
}

// TestDLQBatchCopiesPayloadOnlyWhenGiven: a letter with a source record
// gets its key, value and headers (older __dlq.errors context dropped); a
// letter without one (copy off, or the record is gone) only the context.
func TestDLQBatchCopiesPayloadOnlyWhenGiven(t *testing.T) {
	t.Parallel()
	c := deadLetterContext{group: "g", topic: "t", partition: 0}
	letters := []share.DeadLetter{{Offset: 3, DeliveryCount: 1, Rejected: true}, {Offset: 4, DeliveryCount: 2}}
	payloads := map[int64]kmsg.Record{3: {Key: []byte("k3"), Value: []byte("v3"), Headers: []kmsg.Header{
		{Key: "trace", Value: []byte("abc")}, {Key: dlqHeaderGroup, Value: []byte("older-group")},
	}}}
	bb := buildDeadLetterBatch(c, letters, payloads, 1<<20, time.UnixMilli(1000))
	if len(bb.records) != 2 {
		t.Fatalf("%d records, want 2", len(bb.records))
	}
	r0, r1 := bb.records[0], bb.records[1]
	if string(r0.Key) != "k3" || string(r0.Value) != "v3" {
		t.Errorf("record 0 key/value %q/%q, want k3/v3", r0.Key, r0.Value)
	}
	h0 := headerMap(r0.Headers)
	if h0["trace"] != "abc" || h0[dlqHeaderGroup] != "g" || h0[dlqHeaderOffset] != "3" {
		t.Errorf("record 0 headers %v", h0)
	}
	for _, h := range r0.Headers {
		if string(h.Value) == "older-group" {
			t.Error("an older __dlq.errors header was copied")
		}
	}
	if r1.Key != nil || r1.Value != nil || len(r1.Headers) != 6 {
		t.Errorf("record 1 = %+v, want context headers only", r1)
	}
	if r0.OffsetDelta != 0 || r1.OffsetDelta != 1 || bb.timestamp != 1000 {
		t.Errorf("deltas %d,%d timestamp %d", r0.OffsetDelta, r1.OffsetDelta, bb.timestamp)
	}
	// It encodes as a valid idempotent batch whose headers survive.
	raw, err := protocol.BuildBatch(protocol.NewCodecs(), protocol.CodecNone, 0, bb.records, protocol.BatchOptions{
		ProducerID: 77, ProducerEpoch: 0, BaseSequence: 10, PartitionLeaderEpoch: -1, FirstTimestamp: bb.timestamp,
	})
	if err != nil {
		t.Fatal(err)
	}
	rb, recs, err := protocol.DecodeRecords(raw, protocol.NewCodecs(), 1<<20)
	if err != nil || len(recs) != 2 || rb.ProducerID != 77 || rb.FirstSequence != 10 {
		t.Fatalf("decode: %v, %d records, producer %d seq %d", err, len(recs), rb.ProducerID, rb.FirstSequence)
	}
	if headerMap(recs[1].Headers)[dlqHeaderMessage] != dlqMessageDeliveryLimit {
		t.Errorf("decoded headers %v", headerMap(recs[1].Headers))
	}
}

// TestDLQBatchBoundedAndDeterministic: copies stop at maxBytes (the batch
// ends before the letter that would pass it), a single letter too big on
// its own goes without its copy, and building twice gives the same count.
func TestDLQBatchBoundedAndDeterministic(t *testing.T) {
	t.Parallel()
	c := deadLetterContext{group: "g", topic: "t"}
	big := bytes.Repeat([]byte("x"), 4000)
	var letters []share.DeadLetter
	payloads := map[int64]kmsg.Record{}
	for i := range 10 {
		letters = append(letters, share.DeadLetter{Offset: int64(i), DeliveryCount: 1, Rejected: true})
		payloads[int64(i)] = kmsg.Record{Value: big}
	}
	payloads[0] = kmsg.Record{Value: bytes.Repeat([]byte("y"), 20000)}
	a := buildDeadLetterBatch(c, letters, payloads, 10000, time.Now())
	b := buildDeadLetterBatch(c, letters, payloads, 10000, time.Now().Add(time.Hour))
	if len(a.records) != len(b.records) {
		t.Fatalf("counts differ: %d vs %d", len(a.records), len(b.records))
	}
	if a.records[0].Value != nil {
		t.Error("a letter bigger than the limit on its own was copied")
	}
	if n := len(a.records); n < 2 || n >= 10 {
		t.Fatalf("%d records, want the batch cut by size", n)
	}
	total := 0
	for _, r := range a.records {
		total += len(r.Value)
	}
	if total > 10000 {
		t.Errorf("%d copied bytes, limit 10000", total)
	}
}

// TestDLQPartitionAndBackoff: the DLQ partition is Kafka's source mod count;
// backoff doubles to its cap.
func TestDLQPartitionAndBackoff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ src, n, want int32 }{{0, 1, 0}, {5, 3, 2}, {2, 3, 2}, {7, 0, 0}} {
		if got := dlqPartition(tc.src, tc.n); got != tc.want {
			t.Errorf("dlqPartition(%d, %d) = %d, want %d", tc.src, tc.n, got, tc.want)
		}
	}
	if dlqBackoff(1) != dlqBackoffFirst || dlqBackoff(2) != 2*dlqBackoffFirst || dlqBackoff(100) != dlqBackoffMax {
		t.Errorf("backoff %v %v %v", dlqBackoff(1), dlqBackoff(2), dlqBackoff(100))
	}
}

// TestDLQWakeQueuesEachKeyOnce: wakes of a queued key are merged, and a
// wake while running queues it once more after the run.
func TestDLQWakeQueuesEachKeyOnce(t *testing.T) {
	t.Parallel()
	w := newDeadLetterWriter(&Broker{}, nil)
	w.mu.workers = dlqWorkers // no goroutine is started
	k1, k2 := share.Key{Group: "a"}, share.Key{Group: "b"}
	w.wake(k1)
	w.wake(k1)
	w.wake(k2)
	if len(w.mu.queue) != 2 {
		t.Fatalf("queue %v, want two keys", w.mu.queue)
	}
	w.mu.queue = w.mu.queue[1:]
	w.mu.state[k1] = dlqRunning
	w.wake(k1)
	w.wake(k1)
	if w.mu.state[k1] != dlqRunningAgain || len(w.mu.queue) != 1 {
		t.Fatalf("state %v queue %v", w.mu.state[k1], w.mu.queue)
	}
}

func createTestTopic(t *testing.T, b *Broker, name string, parts int32, configs map[string]string) *topicState {
	t.Helper()
	_, code, msg := b.createTopicFromSpec(context.Background(), topicSpec{name: name, partitions: parts, replicationFactor: 1, configs: configs}, false)
	if code != 0 {
		t.Fatalf("create %s: %d %v", name, code, msg)
	}
	ts := waitLeading(t, b, name, parts)
	return ts
}

func waitLeading(t *testing.T, b *Broker, name string, parts int32) *topicState {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ts := b.topics.get(name)
		ok := ts != nil
		for p := int32(0); ok && p < parts; p++ {
			pp := ts.partition(p)
			st, has := b.partitionState(name, p)
			ok = pp != nil && pp.rep.leading.Load() && has && st.Leader == b.cfg.NodeID
		}
		if ok {
			return ts
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s not led here within 20 s", name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDLQTopicRulesAndIdempotentWrite runs against a real broker: the
// KIP-1191 topic rules (prefix, internal names, opt-in config, missing
// topic, auto-creation), the source read for copies, and a dead-letter
// batch sent twice with the same producer and sequence (a retry after a
// crash) landing in the DLQ partition once.
func TestDLQTopicRulesAndIdempotentWrite(t *testing.T) {
	t.Parallel()
	b := startTestBrokerWith(t, slog.New(slog.DiscardHandler), map[string]string{"num.partitions": "2"})
	w := b.dlq
	ctx := context.Background()
	createTestTopic(t, b, "dlq.optedout", 1, nil)
	createTestTopic(t, b, "other", 1, map[string]string{topicConfigDLQEnable: "true"})
	good := createTestTopic(t, b, "dlq.good", 3, map[string]string{topicConfigDLQEnable: "true"})

	for name, kind := range map[string]string{
		"":             "not_configured",
		"__consumer_x": "invalid_name",
		"other":        "invalid_name",
		"dlq.optedout": "not_enabled",
		"dlq.missing":  "missing",
	} {
		_, err := w.resolveTopic(ctx, name)
		var ue *dlqUnusableError
		if !errors.As(err, &ue) || ue.kind != kind {
			t.Errorf("resolveTopic(%q) = %v, want unusable %s", name, err, kind)
		}
	}
	if ts, err := w.resolveTopic(ctx, "dlq.good"); err != nil || ts != good {
		t.Fatalf("resolveTopic(dlq.good) = %v, %v", ts, err)
	}

	// Auto-creation, once the cluster allows it.
	b.settings.setDynamic(nil, map[string]string{settingDLQAutoCreate: "true"})
	ts, err := w.resolveTopic(ctx, "dlq.auto")
	if err != nil {
		t.Fatalf("auto-create: %v", err)
	}
	if ts.meta().Partitions != 2 || ts.meta().Configs[topicConfigDLQEnable] != "true" {
		t.Errorf("auto-created topic %+v", ts.meta())
	}
	// An empty prefix allows any name but internal ones.
	b.settings.setDynamic(nil, map[string]string{settingDLQPrefix: ""})
	if _, err := w.resolveTopic(ctx, "other"); err != nil {
		t.Errorf("empty prefix: %v", err)
	}

	// The source records are read from the local log for copies.
	src := createTestTopic(t, b, "src", 1, nil)
	var recs []kmsg.Record
	for i := range 5 {
		recs = append(recs, kmsg.Record{OffsetDelta: int32(i), Key: []byte{'k', byte('0' + i)}, Value: []byte{'v', byte('0' + i)}})
	}
	raw, err := protocol.BuildBatch(b.codecs, protocol.CodecNone, 0, recs, protocol.DefaultBatchOptions())
	if err != nil {
		t.Fatal(err)
	}
	if code := w.produceLocal(ctx, "src", 0, raw); code != 0 {
		t.Fatalf("produce source: %d", code)
	}
	letters := []share.DeadLetter{{Offset: 1, DeliveryCount: 2, Rejected: true}, {Offset: 3, DeliveryCount: 5}, {Offset: 99}}
	got := w.readSources(src, 0, letters)
	if len(got) != 2 || string(got[1].Value) != "v1" || string(got[3].Key) != "k3" {
		t.Fatalf("readSources = %v", got)
	}

	// The same batch twice: one copy in the DLQ partition.
	bb := buildDeadLetterBatch(deadLetterContext{group: "g", topic: "src", partition: 0}, letters, got, 1<<20, time.Now())
	batchBytes, err := protocol.BuildBatch(b.codecs, protocol.CodecNone, 0, bb.records, protocol.BatchOptions{
		ProducerID: 4242, ProducerEpoch: 0, BaseSequence: 0, PartitionLeaderEpoch: -1, FirstTimestamp: bb.timestamp,
	})
	if err != nil {
		t.Fatal(err)
	}
	part := dlqPartition(5, good.meta().Partitions)
	for i := range 2 {
		if code := w.produce(ctx, "dlq.good", part, batchBytes); code != 0 && code != kerr.DuplicateSequenceNumber.Code {
			t.Fatalf("write %d: %s", i, kerr.ErrorForCode(code))
		}
	}
	if leo := good.partition(part).log.LogEndOffset(); leo != 3 {
		t.Fatalf("DLQ partition end offset %d after a repeated batch of 3, want 3", leo)
	}
	// The next sequence is accepted after it.
	bb2 := buildDeadLetterBatch(deadLetterContext{group: "g", topic: "src"}, letters[:1], nil, 1<<20, time.Now())
	next, _ := protocol.BuildBatch(b.codecs, protocol.CodecNone, 0, bb2.records, protocol.BatchOptions{
		ProducerID: 4242, BaseSequence: 3, PartitionLeaderEpoch: -1, FirstTimestamp: bb2.timestamp,
	})
	if code := w.produce(ctx, "dlq.good", part, next); code != 0 {
		t.Fatalf("next batch: %s", kerr.ErrorForCode(code))
	}
	data, err := good.partition(part).log.Read(0, 1<<20, 100)
	if err != nil {
		t.Fatal(err)
	}
	found := map[int64]kmsg.Record{}
	dlqScanBatches(b.codecs, data, map[int64]bool{0: true, 1: true, 2: true, 3: true}, found)
	if len(found) != 4 || string(found[0].Value) != "v1" || headerMap(found[1].Headers)[dlqHeaderDeliveryCount] != "5" || found[2].Value != nil {
		t.Errorf("DLQ records %v", found)
	}
}

// fakeShares is one share-partition's dead-letter side, for the writer.
type fakeShares struct {
	mu       sync.Mutex
	letters  []share.DeadLetter
	cursor   share.DeadLetterCursor
	persists int // completes that persisted
	// failWrites fails this many completes that archive offsets after a
	// write (seqs > 0): a crash between the DLQ append and the state write.
	failWrites int
	archived   map[int64]int32 // offset -> seqs of the complete that archived it
}

func (f *fakeShares) deadLetters(share.Key) (dlqJob, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return dlqJob{letters: slices.Clone(f.letters), cursor: f.cursor}, true
}

func (f *fakeShares) setProducer(_ share.Key, c share.DeadLetterCursor) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cursor = c
	return true
}

func (f *fakeShares) complete(_ share.Key, offsets []int64, seqs int32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if seqs > 0 && f.failWrites > 0 {
		f.failWrites--
		return errors.New("state write failed")
	}
	f.persists++
	f.cursor.Sequence += seqs
	for _, o := range offsets {
		f.archived[o] = seqs
		f.letters = slices.DeleteFunc(f.letters, func(l share.DeadLetter) bool { return l.Offset == o })
	}
	return nil
}

func (f *fakeShares) waitDrained(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		f.mu.Lock()
		n := len(f.letters)
		f.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d dead letters left after 20 s", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDLQWriterExactlyOnceThroughFailedStateWrites drives the writer
// against a real broker with a fake share-partition whose state writes
// fail twice after the DLQ append (as a crash there would): each dead
// letter is in the DLQ once, with its copy, and the sequence moved by the
// records written. A DLQ that does not exist archives without a write.
func TestDLQWriterExactlyOnceThroughFailedStateWrites(t *testing.T) {
	t.Parallel()
	b := startTestBrokerWith(t, slog.New(slog.DiscardHandler), nil)
	ctx := context.Background()
	src := createTestTopic(t, b, "jobs", 2, nil)
	dlqTS := createTestTopic(t, b, "dlq.jobs", 2, map[string]string{topicConfigDLQEnable: "true"})
	var recs []kmsg.Record
	for i := range 5 {
		recs = append(recs, kmsg.Record{OffsetDelta: int32(i), Value: []byte("job-" + strconv.Itoa(i))})
	}
	raw, _ := protocol.BuildBatch(b.codecs, protocol.CodecNone, 0, recs, protocol.DefaultBatchOptions())
	if code := b.dlq.produceLocal(ctx, "jobs", 1, raw); code != 0 {
		t.Fatalf("produce: %d", code)
	}
	f := &fakeShares{failWrites: 2, archived: map[int64]int32{}}
	for i := range 5 {
		f.letters = append(f.letters, share.DeadLetter{Offset: int64(i), DeliveryCount: int16(i + 1), Rejected: i%2 == 0})
	}
	w := b.dlq
	w.sp = f
	topic := "dlq.jobs"
	w.group = func(string) (string, bool) { return topic, true }
	k := share.Key{Group: "g", TopicID: src.meta().ID, Partition: 1}

	b.wakeDeadLetters(k)
	f.waitDrained(t)
	dl := dlqTS.partition(dlqPartition(1, 2)).log
	if leo := dl.LogEndOffset(); leo != 5 {
		t.Fatalf("DLQ end offset %d, want 5 (one copy of each dead letter)", leo)
	}
	if f.cursor.ProducerID <= 0 || f.cursor.Sequence != 5 {
		t.Errorf("cursor %+v, want a producer and sequence 5", f.cursor)
	}
	data, _ := dl.Read(0, 1<<20, 100)
	got := map[int64]kmsg.Record{}
	dlqScanBatches(b.codecs, data, map[int64]bool{0: true, 1: true, 2: true, 3: true, 4: true}, got)
	for i := range 5 {
		h := headerMap(got[int64(i)].Headers)
		if string(got[int64(i)].Value) != "job-"+strconv.Itoa(i) || h[dlqHeaderOffset] != strconv.Itoa(i) ||
			h[dlqHeaderPartition] != "1" || h[dlqHeaderTopic] != "jobs" || h[dlqHeaderDeliveryCount] != strconv.Itoa(i+1) {
			t.Errorf("DLQ record %d: %q %v", i, got[int64(i)].Value, h)
		}
	}

	// A DLQ that does not exist: archived without a write.
	topic = "dlq.missing"
	f.mu.Lock()
	f.letters = []share.DeadLetter{{Offset: 7, DeliveryCount: 5}}
	f.mu.Unlock()
	b.wakeDeadLetters(k)
	f.waitDrained(t)
	if seqs, ok := f.archived[7]; !ok || seqs != 0 || f.cursor.Sequence != 5 {
		t.Errorf("unusable DLQ: archived %v seqs %d, cursor %+v", ok, seqs, f.cursor)
	}
	if b.topics.get("dlq.missing") != nil {
		t.Error("a missing DLQ topic was created without auto-creation")
	}
}

// TestDLQWriterGivesUpAndDropsTheProducer: a DLQ that refuses every write
// (here: a batch over its max.message.bytes) is given up after
// dlqMaxAttempts; the records are archived without a write and the
// producer is dropped, so a batch that landed despite an error can never
// make the next one look like its duplicate.
func TestDLQWriterGivesUpAndDropsTheProducer(t *testing.T) {
	t.Parallel()
	b := startTestBrokerWith(t, slog.New(slog.DiscardHandler), nil)
	src := createTestTopic(t, b, "work", 1, nil)
	createTestTopic(t, b, "dlq.tiny", 1, map[string]string{topicConfigDLQEnable: "true", "max.message.bytes": "50"})
	f := &fakeShares{archived: map[int64]int32{}, letters: []share.DeadLetter{{Offset: 0, DeliveryCount: 1, Rejected: true}}}
	w := b.dlq
	w.sp = f
	w.group = func(string) (string, bool) { return "dlq.tiny", false }
	w.backoff = func(int) time.Duration { return time.Millisecond }
	b.wakeDeadLetters(share.Key{Group: "g", TopicID: src.meta().ID})
	f.waitDrained(t)
	f.mu.Lock()
	defer f.mu.Unlock()
	if seqs, ok := f.archived[0]; !ok || seqs != 0 {
		t.Errorf("archived %v with seqs %d, want archived without a write", ok, seqs)
	}
	if f.cursor != (share.DeadLetterCursor{}) {
		t.Errorf("cursor %+v, want the producer dropped", f.cursor)
	}
	if got := counterValue(t, b, "sluice_share_dlq_write_failures_total", kerr.MessageTooLarge.Message); got != dlqMaxAttempts {
		t.Errorf("%v failed attempts counted, want %d", got, dlqMaxAttempts)
	}
	if got := counterValue(t, b, "sluice_share_dlq_records_unwritten_total", "gave_up"); got != 1 {
		t.Errorf("gave_up counted %v, want 1", got)
	}
}

// counterValue is the value of name's series whose one label is label, or
// -1 when absent.
func counterValue(t *testing.T, b *Broker, name, label string) float64 {
	t.Helper()
	mfs, err := b.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

// TestDLQWriterThroughPeerLeader: when another broker leads the DLQ
// partition the writer sends it an acks=all Produce; a repeated batch
// (a failed state write after the append) is still written once.
func TestDLQWriterThroughPeerLeader(t *testing.T) {
	t.Parallel()
	b1 := startTestBrokerWith(t, slog.New(slog.DiscardHandler), nil)
	ctx, cancel := context.WithCancel(context.Background())
	b2, err := New(ctx, Config{
		NodeID: 2, Listen: "127.0.0.1:0", DataDir: t.TempDir(), Etcd: b1.embedded.Endpoints(),
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b2.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	deadline := time.Now().Add(20 * time.Second)
	for _, ok := b1.brokers.get(2); !ok; _, ok = b1.brokers.get(2) {
		if time.Now().After(deadline) {
			t.Fatal("broker 2 not seen by broker 1")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, code, msg := b1.createTopicFromSpec(context.Background(), topicSpec{name: "dlq.remote", partitions: 1, replicationFactor: 1,
		assignment: [][]int32{{2}}, configs: map[string]string{topicConfigDLQEnable: "true"}}, false)
	if code != 0 {
		t.Fatalf("create: %d %v", code, msg)
	}
	remote := waitLeading(t, b2, "dlq.remote", 1)
	for st, ok := b1.partitionState("dlq.remote", 0); !ok || st.Leader != 2; st, ok = b1.partitionState("dlq.remote", 0) {
		if time.Now().After(deadline) {
			t.Fatal("broker 1 does not see broker 2 leading dlq.remote")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, code, msg := b1.createTopicFromSpec(context.Background(), topicSpec{name: "local", partitions: 1, replicationFactor: 1,
		assignment: [][]int32{{1}}}, false); code != 0 {
		t.Fatalf("create: %d %v", code, msg)
	}
	src := waitLeading(t, b1, "local", 1)
	f := &fakeShares{failWrites: 1, archived: map[int64]int32{}}
	for i := range 3 {
		f.letters = append(f.letters, share.DeadLetter{Offset: int64(i), DeliveryCount: 2})
	}
	w := b1.dlq
	w.sp = f
	w.group = func(string) (string, bool) { return "dlq.remote", false }
	w.backoff = func(int) time.Duration { return time.Millisecond }
	b1.wakeDeadLetters(share.Key{Group: "g", TopicID: src.meta().ID})
	f.waitDrained(t)
	if leo := remote.partition(0).log.LogEndOffset(); leo != 3 {
		t.Fatalf("remote DLQ end offset %d, want 3", leo)
	}
	if f.cursor.Sequence != 3 || f.cursor.ProducerID <= 0 {
		t.Errorf("cursor %+v", f.cursor)
	}
}
