package broker

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/coordinator/share"
)

// shareClient is one share-group member speaking ShareFetch and
// ShareAcknowledge directly, on its own client (its own connections).
type shareClient struct {
	t      *testing.T
	cl     *kgo.Client
	group  string
	member string
	epoch  int32
}

func newShareClient(t *testing.T, addr, group, member string) *shareClient {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &shareClient{t: t, cl: cl, group: group, member: member}
}

type shareAck struct {
	first, last int64
	typ         int8
}

// fetch sends a ShareFetch at the client's epoch naming the partition (on
// epoch 0) and acks; it moves the epoch on a success.
func (c *shareClient) fetch(ctx context.Context, id [16]byte, maxWait int32, acks ...shareAck) *kmsg.ShareFetchResponse {
	c.t.Helper()
	req := kmsg.NewPtrShareFetchRequest()
	req.Version = 2
	req.GroupID, req.MemberID = kmsg.StringPtr(c.group), kmsg.StringPtr(c.member)
	req.ShareSessionEpoch = c.epoch
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes, req.MaxRecords = maxWait, 1, 1<<20, 500
	rt := kmsg.NewShareFetchRequestTopic()
	rt.TopicID = id
	rp := kmsg.NewShareFetchRequestTopicPartition()
	for _, a := range acks {
		ab := kmsg.NewShareFetchRequestTopicPartitionAcknowledgementBatch()
		ab.FirstOffset, ab.LastOffset, ab.AcknowledgeTypes = a.first, a.last, []int8{a.typ}
		rp.AcknowledgementBatches = append(rp.AcknowledgementBatches, ab)
	}
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, c.cl)
	if err != nil {
		c.t.Fatalf("share fetch: %v", err)
	}
	if resp.ErrorCode == 0 {
		c.epoch++
	}
	return resp
}

// ack sends a ShareAcknowledge at the given epoch.
func (c *shareClient) ack(ctx context.Context, id [16]byte, epoch int32, acks ...shareAck) *kmsg.ShareAcknowledgeResponse {
	c.t.Helper()
	req := kmsg.NewPtrShareAcknowledgeRequest()
	req.Version = 2
	req.GroupID, req.MemberID = kmsg.StringPtr(c.group), kmsg.StringPtr(c.member)
	req.ShareSessionEpoch = epoch
	rt := kmsg.NewShareAcknowledgeRequestTopic()
	rt.TopicID = id
	rp := kmsg.NewShareAcknowledgeRequestTopicPartition()
	for _, a := range acks {
		ab := kmsg.NewShareAcknowledgeRequestTopicPartitionAcknowledgementBatch()
		ab.FirstOffset, ab.LastOffset, ab.AcknowledgeTypes = a.first, a.last, []int8{a.typ}
		rp.AcknowledgementBatches = append(rp.AcknowledgementBatches, ab)
	}
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, c.cl)
	if err != nil {
		c.t.Fatalf("share acknowledge: %v", err)
	}
	if resp.ErrorCode == 0 && epoch > 0 {
		c.epoch++
	}
	return resp
}

// acquired lists the acquired offsets of a response, with their delivery
// counts, checking that the records returned cover them.
func acquired(t *testing.T, resp *kmsg.ShareFetchResponse) map[int64]int16 {
	t.Helper()
	if resp.ErrorCode != 0 {
		t.Fatalf("share fetch error %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	out := map[int64]int16{}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rp.ErrorCode != 0 {
				t.Fatalf("share fetch partition error %v", kerr.ErrorForCode(rp.ErrorCode))
			}
			have := map[int64]bool{}
			fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{}, &kmsg.FetchResponseTopicPartition{RecordBatches: rp.Records}, kgo.DefaultDecompressor(), nil)
			for _, r := range fp.Records {
				have[r.Offset] = true
			}
			for _, ar := range rp.AcquiredRecords {
				for o := ar.FirstOffset; o <= ar.LastOffset; o++ {
					if !have[o] {
						t.Fatalf("acquired offset %d not among the records returned", o)
					}
					out[o] = ar.DeliveryCount
				}
			}
		}
	}
	return out
}

func shareTestTopic(t *testing.T, ctx context.Context, addr, topic string) ([16]byte, *kgo.Client) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	td, err := adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	return td[topic].ID, cl
}

func produceN(t *testing.T, ctx context.Context, cl *kgo.Client, from, n int) {
	t.Helper()
	var recs []*kgo.Record
	for i := from; i < from+n; i++ {
		recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, "v%d", i)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// TestShareFetchAcknowledge runs two members over one partition: records
// are acquired once, accepted records never come back, released ones come
// back to the other member with a higher delivery count, and the session
// and acknowledgement errors are Kafka's.
func TestShareFetchAcknowledge(t *testing.T) {
	b := startTestBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, prod := shareTestTopic(t, ctx, b.Addr(), "share")

	a := newShareClient(t, b.Addr(), "g", "member-a")
	if got := acquired(t, a.fetch(ctx, id, 10)); len(got) != 0 { // opens the session; latest: nothing yet
		t.Fatalf("acquired %v from an empty partition", got)
	}
	produceN(t, ctx, prod, 0, 10)
	got := acquired(t, a.fetch(ctx, id, 5000))
	if len(got) != 10 {
		t.Fatalf("member a acquired %d records, want 10: %v", len(got), got)
	}
	for o, dc := range got {
		if dc != 1 {
			t.Fatalf("offset %d delivery count %d, want 1", o, dc)
		}
	}

	// Another member gets nothing while a holds everything.
	bm := newShareClient(t, b.Addr(), "g", "member-b")
	if got := acquired(t, bm.fetch(ctx, id, 100)); len(got) != 0 {
		t.Fatalf("member b acquired %v held by a", got)
	}

	// b cannot acknowledge a's records; the state is unchanged.
	resp := bm.ack(ctx, id, bm.epoch, shareAck{0, 9, 1})
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidRecordState.Code {
		t.Fatalf("ack of another member's records: %v, want INVALID_RECORD_STATE", kerr.ErrorForCode(code))
	}
	// Session epochs: ShareAcknowledge cannot open one, a wrong epoch and
	// an unknown member are refused.
	if resp := a.ack(ctx, id, 0, shareAck{0, 0, 1}); resp.ErrorCode != kerr.InvalidShareSessionEpoch.Code {
		t.Fatalf("ack at epoch 0: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	if resp := a.ack(ctx, id, a.epoch+5, shareAck{0, 0, 1}); resp.ErrorCode != kerr.InvalidShareSessionEpoch.Code {
		t.Fatalf("ack at a wrong epoch: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	ghost := newShareClient(t, b.Addr(), "g", "ghost")
	if resp := ghost.ack(ctx, id, 3, shareAck{0, 0, 1}); resp.ErrorCode != kerr.ShareSessionNotFound.Code {
		t.Fatalf("ack without a session: %v", kerr.ErrorForCode(resp.ErrorCode))
	}

	// a accepts 0-4 and releases 5-9.
	resp = a.ack(ctx, id, a.epoch, shareAck{0, 4, 1}, shareAck{5, 9, 2})
	if resp.ErrorCode != 0 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("ack: %v / %v", kerr.ErrorForCode(resp.ErrorCode), kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode))
	}
	// Accepting the released records is refused: they are no longer
	// acquired.
	resp = a.ack(ctx, id, a.epoch, shareAck{5, 9, 1})
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidRecordState.Code {
		t.Fatalf("accept after release: %v, want INVALID_RECORD_STATE", kerr.ErrorForCode(code))
	}

	got = acquired(t, bm.fetch(ctx, id, 5000))
	if len(got) != 5 {
		t.Fatalf("member b acquired %v, want 5-9", got)
	}
	for o, dc := range got {
		if o < 5 || dc != 2 {
			t.Fatalf("member b acquired offset %d with delivery count %d, want 5-9 at 2", o, dc)
		}
	}

	// A long poll is woken by an append.
	done := make(chan map[int64]int16, 1)
	go func() { done <- acquired(t, a.fetch(ctx, id, 20000)) }()
	produceN(t, ctx, prod, 10, 1)
	select {
	case got := <-done:
		if len(got) != 1 || got[10] != 1 {
			t.Fatalf("long poll acquired %v, want offset 10", got)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("long poll not woken by an append")
	}

	// b's connection closing releases 5-9 for a.
	bm.cl.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got = acquired(t, a.fetch(ctx, id, 1000))
		if len(got) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("records of a closed connection's session were not released")
		}
	}
	for o, dc := range got {
		if o < 5 || o > 9 || dc != 3 {
			t.Fatalf("after b's close a acquired offset %d at delivery count %d, want 5-9 at 3", o, dc)
		}
	}
	// Closing the session with acks applies them first.
	var acks []shareAck
	for o := range int64(10) { // in offset order, as Kafka requires
		if _, ok := got[o]; ok {
			acks = append(acks, shareAck{o, o, 1})
		}
	}
	acks = append(acks, shareAck{10, 10, 1})
	resp = a.ack(ctx, id, -1, acks...)
	if resp.ErrorCode != 0 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("closing ack: %v / %v", kerr.ErrorForCode(resp.ErrorCode), kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode))
	}
	a.epoch = 0
	if got := acquired(t, a.fetch(ctx, id, 10)); len(got) != 0 {
		t.Fatalf("accepted records delivered again: %v", got)
	}
	st, found, err := b.readShareState(ctx, shareKeyOf("g", id, 0))
	if err != nil || !found || st.StartOffset != 11 {
		t.Fatalf("stored state %+v found %v err %v, want start offset 11", st, found, err)
	}

	// The metrics show the loaded share-partition and the redeliveries.
	mfs, err := b.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				if l.GetName() == "state" {
					name += "/" + l.GetValue()
				}
			}
			values[name] += v
		}
	}
	if values["sluice_share_partitions_loaded"] != 1 || values["sluice_share_redeliveries_total"] != 10 ||
		values["sluice_share_inflight_records/acquired"] != 0 {
		t.Fatalf("share metrics: loaded %v, redeliveries %v (want 5+5), acquired %v",
			values["sluice_share_partitions_loaded"], values["sluice_share_redeliveries_total"], values["sluice_share_inflight_records/acquired"])
	}
}

// TestShareLockExpiry checks that a lock expiring returns the records to
// another member (the timer wakes its waiting fetch), and the IsRenewAck
// and session-opening rules.
func TestShareLockExpiry(t *testing.T) {
	b := startTestBrokerWith(t, slog.New(slog.DiscardHandler), map[string]string{
		"group.share.record.lock.duration.ms":     "1000",
		"group.share.min.record.lock.duration.ms": "1000",
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, prod := shareTestTopic(t, ctx, b.Addr(), "expiry")
	a := newShareClient(t, b.Addr(), "g", "member-a")
	acquired(t, a.fetch(ctx, id, 0))
	produceN(t, ctx, prod, 0, 3)
	if got := acquired(t, a.fetch(ctx, id, 5000)); len(got) != 3 {
		t.Fatalf("acquired %v, want 3 records", got)
	}

	// Renewal: IsRenewAck fetches nothing and must carry no fetch limits.
	renew := func(maxWait int32) *kmsg.ShareFetchResponse {
		req := kmsg.NewPtrShareFetchRequest()
		req.Version, req.IsRenewAck = 2, true
		req.GroupID, req.MemberID = kmsg.StringPtr("g"), kmsg.StringPtr("member-a")
		req.ShareSessionEpoch, req.MaxWaitMillis, req.MaxBytes = a.epoch, maxWait, 0
		rt := kmsg.NewShareFetchRequestTopic()
		rt.TopicID = id
		rp := kmsg.NewShareFetchRequestTopicPartition()
		ab := kmsg.NewShareFetchRequestTopicPartitionAcknowledgementBatch()
		ab.FirstOffset, ab.LastOffset, ab.AcknowledgeTypes = 0, 2, []int8{4}
		rp.AcknowledgementBatches = append(rp.AcknowledgementBatches, ab)
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, a.cl)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ErrorCode == 0 {
			a.epoch++
		}
		return resp
	}
	if resp := renew(100); resp.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("renewal with a max wait: %v, want INVALID_REQUEST", kerr.ErrorForCode(resp.ErrorCode))
	}
	if resp := renew(0); resp.ErrorCode != 0 || resp.Topics[0].Partitions[0].AcknowledgeErrorCode != 0 ||
		len(resp.Topics[0].Partitions[0].AcquiredRecords) != 0 {
		t.Fatalf("renewal: %+v", resp)
	}

	// A fresh session may not carry acknowledgements.
	c := newShareClient(t, b.Addr(), "g", "member-c")
	if resp := c.fetch(ctx, id, 0, shareAck{0, 0, 1}); resp.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("acks on epoch 0: %v, want INVALID_REQUEST", kerr.ErrorForCode(resp.ErrorCode))
	}
	bm := newShareClient(t, b.Addr(), "g", "member-b")
	acquired(t, bm.fetch(ctx, id, 0))

	// a stops acknowledging: after its lock expires b gets the records
	// again, its waiting fetch woken by the expiry.
	start := time.Now()
	got := acquired(t, bm.fetch(ctx, id, 20000))
	if len(got) != 3 {
		t.Fatalf("after expiry b acquired %v, want 3 records", got)
	}
	for o, dc := range got {
		if dc != 2 {
			t.Fatalf("offset %d redelivered with delivery count %d, want 2", o, dc)
		}
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Fatalf("redelivery after %v: the expiry did not wake the fetch", waited)
	}
	// a's acknowledgement of the expired records is refused.
	resp := a.ack(ctx, id, a.epoch, shareAck{0, 2, 1})
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidRecordState.Code {
		t.Fatalf("ack after expiry: %v, want INVALID_RECORD_STATE", kerr.ErrorForCode(code))
	}
}

// TestShareSessions checks the session cache's epochs, bound and
// partition changes.
func TestShareSessions(t *testing.T) {
	s := newShareSessions(2)
	id := [16]byte{1}
	topics := func(ps ...int32) []kmsg.ShareFetchRequestTopic {
		rt := kmsg.NewShareFetchRequestTopic()
		rt.TopicID = id
		for _, p := range ps {
			rp := kmsg.NewShareFetchRequestTopicPartition()
			rp.Partition = p
			rt.Partitions = append(rt.Partitions, rp)
		}
		return []kmsg.ShareFetchRequestTopic{rt}
	}
	a, b, c := shareSessionKey{"g", "a"}, shareSessionKey{"g", "b"}, shareSessionKey{"g", "c"}
	parts, code := s.open(a, nil, topics(0, 1, 1))
	if code != 0 || len(parts) != 2 || !parts[0].new || !parts[1].new {
		t.Fatalf("open: %v %d", parts, code)
	}
	if _, code := s.open(b, nil, nil); code != 0 {
		t.Fatalf("open b: %d", code)
	}
	if _, code := s.open(c, nil, nil); code != kerr.ShareSessionLimitReached.Code {
		t.Fatalf("third session: %d, want SHARE_SESSION_LIMIT_REACHED", code)
	}
	if _, code := s.open(a, nil, topics(0)); code != 0 { // replacing one's own session fits
		t.Fatalf("reopen a: %d", code)
	}
	if _, code := s.update(a, nil, 2, nil, nil); code != kerr.InvalidShareSessionEpoch.Code {
		t.Fatalf("epoch 2 before 1: %d", code)
	}
	forget := kmsg.NewShareFetchRequestForgottenTopicsData()
	forget.TopicID, forget.Partitions = id, []int32{0}
	parts, code = s.update(a, nil, 1, topics(5), []kmsg.ShareFetchRequestForgottenTopicsData{forget})
	if code != 0 || len(parts) != 1 || parts[0].tp.partition != 5 || !parts[0].new {
		t.Fatalf("update: %v %d", parts, code)
	}
	parts, code = s.update(a, nil, 2, nil, nil)
	if code != 0 || len(parts) != 1 || parts[0].new {
		t.Fatalf("second update: %v %d", parts, code)
	}
	if _, code := s.update(c, nil, 1, nil, nil); code != kerr.ShareSessionNotFound.Code {
		t.Fatalf("unknown session: %d", code)
	}
	if _, code := s.close(a); code != 0 || s.exists(a) {
		t.Fatalf("close: %d", code)
	}
	many := make([]int32, maxShareSessionParts+1)
	for i := range many {
		many[i] = int32(i)
	}
	if _, code := s.open(a, nil, topics(many...)); code != kerr.InvalidRequest.Code {
		t.Fatalf("oversized session: %d, want INVALID_REQUEST", code)
	}
}

// TestShareReadCommitted checks a read_committed share read: aborted
// batches and markers are marked so the share-partition never hands them
// out, and only the committed record is acquired.
func TestShareReadCommitted(t *testing.T) {
	b := startTestBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, _ := shareTestTopic(t, ctx, b.Addr(), "txn-share")
	k := shareKeyOf("g", id, 0)
	e, code := b.shares.get(ctx, k) // starts at the (empty) log's end
	if code != 0 {
		t.Fatalf("load: %v", kerr.ErrorForCode(code))
	}

	txp, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.DefaultProduceTopic("txn-share"), kgo.TransactionalID("share-tx"))
	if err != nil {
		t.Fatal(err)
	}
	defer txp.Close()
	if err := txp.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txp.ProduceSync(ctx, &kgo.Record{Value: []byte("aborted-1")}, &kgo.Record{Value: []byte("aborted-2")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := txp.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	if err := txp.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txp.ProduceSync(ctx, &kgo.Record{Value: []byte("committed")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := txp.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}

	var tg shareTarget
	until := time.Now().Add(20 * time.Second)
	for { // the markers may land after EndTransaction returns
		tg = shareTarget{tp: shareTP{id, 0}, e: e}
		if code := b.shares.readShare(&tg, time.Now(), readCommitted, 1<<20, 500, true); code != 0 {
			t.Fatalf("read: %v", kerr.ErrorForCode(code))
		}
		if len(tg.lbs) == 4 || time.Now().After(until) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	want := []struct{ control, aborted bool }{{false, true}, {true, false}, {false, false}, {true, false}}
	if len(tg.lbs) != len(want) {
		t.Fatalf("read %d batches %+v, want data, abort marker, data, commit marker", len(tg.lbs), tg.lbs)
	}
	for i, w := range want {
		if tg.lbs[i].Control != w.control || tg.lbs[i].Aborted != w.aborted {
			t.Fatalf("batch %d %+v, want control %v aborted %v", i, tg.lbs[i], w.control, w.aborted)
		}
	}
	out := newShareFetchOut(b, kmsg.NewPtrShareFetchResponse())
	if !b.shares.acquireShares(ctx, []shareTarget{tg}, "m", 500, false, 0, out) {
		t.Fatal("nothing acquired")
	}
	got := acquired(t, out.resp)
	if len(got) != 1 || got[tg.lbs[2].FirstOffset] != 1 {
		t.Fatalf("acquired %v, want only the committed record at %d", got, tg.lbs[2].FirstOffset)
	}
}

// TestShareFencedWrite checks that an acknowledgement whose state write is
// fenced is answered with an error, not success, and that the
// share-partition is unloaded to be read again from the store, as it is on
// a leadership change.
func TestShareFencedWrite(t *testing.T) {
	b := startTestBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, prod := shareTestTopic(t, ctx, b.Addr(), "fenced")
	a := newShareClient(t, b.Addr(), "g", "member-a")
	acquired(t, a.fetch(ctx, id, 0))
	produceN(t, ctx, prod, 0, 2)
	if got := acquired(t, a.fetch(ctx, id, 5000)); len(got) != 2 {
		t.Fatalf("acquired %v, want 2 records", got)
	}
	k := shareKeyOf("g", id, 0)
	// A newer leader wrote the state meanwhile.
	if err := b.writeShareState(ctx, k, share.State{LeaderEpoch: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	resp := a.ack(ctx, id, a.epoch, shareAck{0, 1, 1})
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.NotLeaderForPartition.Code {
		t.Fatalf("fenced ack answered %v, want NOT_LEADER_OR_FOLLOWER", kerr.ErrorForCode(code))
	}
	if b.shares.loaded(k) != nil {
		t.Fatal("share-partition still loaded after a fenced write")
	}

	// A leadership change unloads the share-partitions of the partition.
	k2 := shareKeyOf("other", id, 0)
	e, code := b.shares.get(ctx, k2)
	if code != 0 {
		t.Fatalf("load: %v", kerr.ErrorForCode(code))
	}
	b.sharesOnTransition(e.part, stoppedLeading)
	if b.shares.loaded(k2) != nil || b.shares.use(e, func(*share.Partition) {}) == nil {
		t.Fatal("share-partition still usable after its partition's leadership changed")
	}

	// Deleting or altering a group's state unloads its share-partitions.
	if _, code := b.shares.get(ctx, k2); code != 0 {
		t.Fatalf("reload: %v", kerr.ErrorForCode(code))
	}
	b.unloadShareGroup("unrelated")
	if b.shares.loaded(k2) == nil {
		t.Fatal("another group's unload dropped this share-partition")
	}
	b.unloadShareGroup("other", id)
	if b.shares.loaded(k2) != nil {
		t.Fatal("share-partition still loaded after its group's unload")
	}
}

// TestShareFetchHostileLists checks that a partition named many times is
// answered once and that a session cannot grow past its bound.
func TestShareFetchHostileLists(t *testing.T) {
	b := startTestBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, _ := shareTestTopic(t, ctx, b.Addr(), "hostile")
	c := newShareClient(t, b.Addr(), "g", "m")
	req := kmsg.NewPtrShareFetchRequest()
	req.Version = 2
	req.GroupID, req.MemberID = kmsg.StringPtr("g"), kmsg.StringPtr("m")
	for range 200 {
		rt := kmsg.NewShareFetchRequestTopic()
		rt.TopicID = id
		for range 50 {
			rt.Partitions = append(rt.Partitions, kmsg.NewShareFetchRequestTopicPartition())
		}
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, c.cl)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("10000 mentions of one partition: %+v", resp)
	}
	unknown := kmsg.NewShareFetchRequestTopic()
	unknown.TopicID = [16]byte{9}
	for p := range int32(maxShareSessionParts + 1) {
		rp := kmsg.NewShareFetchRequestTopicPartition()
		rp.Partition = p
		unknown.Partitions = append(unknown.Partitions, rp)
	}
	req.Topics = []kmsg.ShareFetchRequestTopic{unknown}
	if resp, err = req.RequestWith(ctx, c.cl); err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("session past its bound: %v, want INVALID_REQUEST", kerr.ErrorForCode(resp.ErrorCode))
	}
}

// TestShareRecordLimit checks v2's record-limit acquire mode: a fetch never
// acquires more than MaxRecords, even inside one batch, and the next fetch
// goes on where it stopped.
func TestShareRecordLimit(t *testing.T) {
	b := startTestBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, prod := shareTestTopic(t, ctx, b.Addr(), "limit")
	a := newShareClient(t, b.Addr(), "g", "m")
	acquired(t, a.fetch(ctx, id, 0))
	produceN(t, ctx, prod, 0, 10) // one batch
	fetch := func() map[int64]int16 {
		req := kmsg.NewPtrShareFetchRequest()
		req.Version = 2
		req.GroupID, req.MemberID = kmsg.StringPtr("g"), kmsg.StringPtr("m")
		req.ShareSessionEpoch, req.MaxWaitMillis, req.MaxRecords, req.ShareAcquireMode = a.epoch, 5000, 3, 1
		resp, err := req.RequestWith(ctx, a.cl)
		if err != nil {
			t.Fatal(err)
		}
		a.epoch++
		return acquired(t, resp)
	}
	for _, want := range [][]int64{{0, 1, 2}, {3, 4, 5}} {
		got := fetch()
		if len(got) != len(want) {
			t.Fatalf("record-limit fetch acquired %v, want %v", got, want)
		}
		for _, o := range want {
			if _, ok := got[o]; !ok {
				t.Fatalf("record-limit fetch acquired %v, want %v", got, want)
			}
		}
	}
}
