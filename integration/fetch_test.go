package integration

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fetchConn is one raw Kafka connection: requests encoded by kmsg, written
// as they are, responses read and decoded by kmsg. It lets a test send what
// no well-behaved client would (70,000 copies of one partition, stale
// session epochs) and see exactly what the broker answers.
type fetchConn struct {
	t    testing.TB
	c    net.Conn
	f    *kmsg.RequestFormatter
	corr int32
}

func dialFetchConn(t testing.TB, addr string) *fetchConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &fetchConn{t: t, c: c, f: kmsg.NewRequestFormatter(kmsg.FormatterClientID("fetch-test"))}
}

// do sends req and returns its decoded response, failing the test on any
// I/O or decoding error.
func (fc *fetchConn) do(req kmsg.Request) kmsg.Response {
	fc.t.Helper()
	resp, err := fc.try(req)
	if err != nil {
		fc.t.Fatalf("%s v%d: %v", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	return resp
}

func (fc *fetchConn) try(req kmsg.Request) (kmsg.Response, error) {
	fc.corr++
	if err := fc.c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return nil, err
	}
	if _, err := fc.c.Write(fc.f.AppendRequest(nil, req, fc.corr)); err != nil {
		return nil, fmt.Errorf("write: %w", err)
	}
	var size [4]byte
	if _, err := io.ReadFull(fc.c, size[:]); err != nil {
		return nil, fmt.Errorf("read size: %w", err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(fc.c, body); err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	rd := kbin.Reader{Src: body}
	if corr := rd.Int32(); corr != fc.corr {
		return nil, fmt.Errorf("correlation id %d, want %d", corr, fc.corr)
	}
	if req.IsFlexible() && req.Key() != 18 {
		kmsg.SkipTags(&rd)
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if err := resp.ReadFrom(rd.Src); err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	return resp, nil
}

// fetchReq is a Fetch of the given version over partitions of topic (by
// name, or by id from v13), each from offset 0, with no wait.
func fetchReq(version int16, topic string, id [16]byte, sessionID, epoch int32, partitions ...int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.Version = version
	req.ReplicaID = -1
	req.MaxBytes = 1 << 20
	req.SessionID, req.SessionEpoch = sessionID, epoch
	if len(partitions) == 0 {
		return req
	}
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, id
	for _, p := range partitions {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = p
		rp.PartitionMaxBytes = 1 << 20
		rp.CurrentLeaderEpoch = -1
		rp.LastFetchedEpoch = -1
		rp.LogStartOffset = -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	return req
}

// responseParts flattens a Fetch response's partitions by partition number.
func responseParts(resp *kmsg.FetchResponse) map[int32]kmsg.FetchResponseTopicPartition {
	out := map[int32]kmsg.FetchResponseTopicPartition{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			out[p.Partition] = p
		}
	}
	return out
}

// checkProduceConsume has a franz-go producer and a consumer round-trip a
// few records through topic, proving the broker still serves.
func checkProduceConsume(t *testing.T, addr, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := client(t, addr, kgo.DefaultProduceTopic(topic))
	for i := range 5 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(itoa(i))}).FirstErr(); err != nil {
			t.Fatalf("produce after the attack: %v", err)
		}
	}
	recs := consumeAll(t, addr, topic, 5)
	if len(recs) < 5 {
		t.Fatalf("consumed %d records, want 5", len(recs))
	}
}

// A Fetch listing one partition 70,000 times (about 2 MB) used to crash the
// broker process: the long poll selected over one channel per entry, and the
// runtime panics past 65,536 select cases. Now the partition is answered
// once, as Kafka answers a repeated partition, and the broker goes on.
func TestFetchDuplicatePartitionsDoNotCrash(t *testing.T) {
	t.Parallel()
	p := startProc(t)
	waitFor(t, 30*time.Second, func() error {
		c, err := net.DialTimeout("tcp", p.addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
	createTopic(t, p.addr, "dup", 1, nil)

	for _, version := range []int16{4, 12, 16} {
		var id [16]byte
		if version >= 13 {
			md, err := admin(t, p.addr).ListTopics(context.Background(), "dup")
			if err != nil {
				t.Fatal(err)
			}
			id = md["dup"].ID
		}
		req := fetchReq(version, "dup", id, 0, -1)
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = "dup", id
		for range 70_000 {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.PartitionMaxBytes, rp.CurrentLeaderEpoch, rp.LastFetchedEpoch, rp.LogStartOffset = 1<<20, -1, -1, -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		// Long poll: nothing to read, so the broker waits on every entry.
		req.MaxWaitMillis, req.MinBytes = 300, 1
		if n := len(req.AppendTo(nil)); n < 1<<20 {
			t.Fatalf("request is only %d bytes", n)
		}
		resp := dialFetchConn(t, p.addr).do(req).(*kmsg.FetchResponse)
		if resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("v%d: error %d, %d topics, want one topic with the partition once", version, resp.ErrorCode, len(resp.Topics))
		}
		if sp := resp.Topics[0].Partitions[0]; sp.ErrorCode != 0 || sp.HighWatermark != 0 {
			t.Fatalf("v%d: partition error %d HW %d", version, sp.ErrorCode, sp.HighWatermark)
		}
	}
	if !p.running() {
		t.Fatalf("broker exited:\n%s", p.output())
	}
	checkProduceConsume(t, p.addr, "dup")
	if !p.running() {
		t.Fatalf("broker exited:\n%s", p.output())
	}
	// franz-go's consumer asks for a fetch session (KIP-227) and got one.
	if n := p.metric(t, "sluice_fetch_sessions"); n < 1 {
		t.Fatalf("sluice_fetch_sessions = %v after a franz-go consumer, want >= 1", n)
	}
}

// A partition named twice is answered once, where it first appears, with
// the fetch offset of its last mention (Kafka's fetchData is a map keyed by
// topic-partition).
func TestFetchDuplicatePartitionLastMentionWins(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, nil)
	createTopic(t, ib.addr(), "twice", 2, nil)
	cl := client(t, ib.addr(), kgo.DefaultProduceTopic("twice"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range 3 {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Partition: 0, Value: []byte(itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	req := fetchReq(12, "twice", [16]byte{}, 0, -1, 0, 1, 0)
	req.Topics[0].Partitions[2].FetchOffset = 3 // the last mention asks from the end
	resp := dialFetchConn(t, ib.addr()).do(req).(*kmsg.FetchResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 2 {
		t.Fatalf("got %+v, want one topic with partitions 0 and 1", resp.Topics)
	}
	ps := resp.Topics[0].Partitions
	if ps[0].Partition != 0 || ps[1].Partition != 1 {
		t.Fatalf("partition order %d, %d; want 0, 1", ps[0].Partition, ps[1].Partition)
	}
	if len(ps[0].RecordBatches) != 0 || ps[0].HighWatermark != 3 {
		t.Fatalf("partition 0: %d bytes, HW %d; want none from offset 3, HW 3", len(ps[0].RecordBatches), ps[0].HighWatermark)
	}
}

// KIP-227: session epoch -1 or 0 is a full fetch whatever the session id.
// Clients that never use sessions send epoch -1 with session id -1 (or
// another id); they used to get FETCH_SESSION_ID_NOT_FOUND and no data.
func TestFetchFullWhateverSessionID(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, nil)
	createTopic(t, ib.addr(), "full", 1, nil)
	cl := client(t, ib.addr(), kgo.DefaultProduceTopic("full"))
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fc := dialFetchConn(t, ib.addr())
	for _, c := range []struct{ id, epoch int32 }{{-1, -1}, {0, -1}, {12345, -1}, {-1, 0}, {0, 0}, {777, 0}} {
		resp := fc.do(fetchReq(12, "full", [16]byte{}, c.id, c.epoch, 0)).(*kmsg.FetchResponse)
		if resp.ErrorCode != 0 {
			t.Fatalf("session %d epoch %d: error %d", c.id, c.epoch, resp.ErrorCode)
		}
		sp := responseParts(resp)[0]
		if sp.ErrorCode != 0 || len(sp.RecordBatches) == 0 || sp.HighWatermark != 1 {
			t.Fatalf("session %d epoch %d: partition error %d, %d bytes, HW %d; want the record", c.id, c.epoch, sp.ErrorCode, len(sp.RecordBatches), sp.HighWatermark)
		}
	}
}

// produceTo writes one record to topic/partition with acks=all.
func produceTo(t *testing.T, cl *kgo.Client, topic string, partition int32, value string) {
	t.Helper()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Partition: partition, Value: []byte(value)}).FirstErr(); err != nil {
		t.Fatalf("produce to %s/%d: %v", topic, partition, err)
	}
}

// partitionsOf lists the partitions a Fetch response carries, in order.
func partitionsOf(resp *kmsg.FetchResponse) []int32 {
	var out []int32
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			out = append(out, p.Partition)
		}
	}
	return out
}

func samePartitions(got []int32, want ...int32) bool {
	if len(got) != len(want) {
		return false
	}
	seen := map[int32]bool{}
	for _, p := range got {
		seen[p] = true
	}
	for _, p := range want {
		if !seen[p] {
			return false
		}
	}
	return true
}

// KIP-227 over the wire, by name (v12) and by topic id (v16): a full fetch
// with epoch 0 creates a session; incremental fetches return only the
// partitions that changed, take new fetch offsets and forgotten topics,
// long-poll over the whole session, and refuse a stale epoch, an unknown
// session, or a session used across the topic-id boundary.
func TestFetchSessionIncremental(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, nil)
	cl := client(t, ib.addr(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for _, version := range []int16{12, 16} {
		topic := "sess-" + itoa(int(version))
		createTopic(t, ib.addr(), topic, 3, nil)
		md, err := admin(t, ib.addr()).ListTopics(context.Background(), topic)
		if err != nil {
			t.Fatal(err)
		}
		topicID := [16]byte(md[topic].ID)
		var id [16]byte
		if version >= 13 {
			id = topicID
		}
		produceTo(t, cl, topic, 0, "a")
		fc := dialFetchConn(t, ib.addr())
		fetch := func(session, epoch int32, parts ...int32) *kmsg.FetchResponse {
			t.Helper()
			return fc.do(fetchReq(version, topic, id, session, epoch, parts...)).(*kmsg.FetchResponse)
		}
		full := fetch(0, 0, 0, 1, 2)
		if full.ErrorCode != 0 || full.SessionID == 0 {
			t.Fatalf("v%d full fetch: error %d session %d; want a new session", version, full.ErrorCode, full.SessionID)
		}
		if !samePartitions(partitionsOf(full), 0, 1, 2) {
			t.Fatalf("v%d full fetch carried %v, want all three", version, partitionsOf(full))
		}
		sid := full.SessionID
		hw0 := responseParts(full)[0].HighWatermark

		// Partition 0 moves on to its end: nothing changed, nothing comes back.
		req := fetchReq(version, topic, id, sid, 1, 0)
		req.Topics[0].Partitions[0].FetchOffset = hw0
		inc := fc.do(req).(*kmsg.FetchResponse)
		if inc.ErrorCode != 0 || inc.SessionID != sid || len(partitionsOf(inc)) != 0 {
			t.Fatalf("v%d incremental 1: error %d session %d partitions %v; want none", version, inc.ErrorCode, inc.SessionID, partitionsOf(inc))
		}

		// A record on partition 2: only it comes back, from the offset
		// the session remembers.
		produceTo(t, cl, topic, 2, "b")
		inc = fetch(sid, 2)
		if inc.ErrorCode != 0 || !samePartitions(partitionsOf(inc), 2) || len(responseParts(inc)[2].RecordBatches) == 0 {
			t.Fatalf("v%d incremental 2: error %d partitions %v; want partition 2 with records", version, inc.ErrorCode, partitionsOf(inc))
		}

		// The same epoch again is a duplicate.
		if dup := fetch(sid, 2); dup.ErrorCode != kerr.InvalidFetchSessionEpoch.Code || len(dup.Topics) != 0 {
			t.Fatalf("v%d repeated epoch: error %d, %d topics; want INVALID_FETCH_SESSION_EPOCH", version, dup.ErrorCode, len(dup.Topics))
		}
		// The other side of the topic-id boundary.
		other := int16(16)
		if version >= 13 {
			other = 12
		}
		if x := fc.do(fetchReq(other, topic, topicID, sid, 3)).(*kmsg.FetchResponse); x.ErrorCode != kerr.FetchSessionTopicIDError.Code {
			t.Fatalf("v%d session used by v%d: error %d; want FETCH_SESSION_TOPIC_ID_ERROR", version, other, x.ErrorCode)
		}

		// Forget partition 2 and move it and partition 0 to their ends;
		// partition 1 gets a record: only partition 1 comes back.
		req = fetchReq(version, topic, id, sid, 3)
		ft := kmsg.NewFetchRequestForgottenTopic()
		ft.Topic, ft.TopicID, ft.Partitions = topic, id, []int32{2}
		req.ForgottenTopics = append(req.ForgottenTopics, ft)
		if inc = fc.do(req).(*kmsg.FetchResponse); inc.ErrorCode != 0 {
			t.Fatalf("v%d forget: error %d", version, inc.ErrorCode)
		}
		produceTo(t, cl, topic, 2, "c")
		produceTo(t, cl, topic, 1, "d")
		inc = fetch(sid, 4)
		if inc.ErrorCode != 0 || !samePartitions(partitionsOf(inc), 1) {
			t.Fatalf("v%d after forgetting 2: error %d partitions %v; want only 1", version, inc.ErrorCode, partitionsOf(inc))
		}

		// A long poll over the session is woken by a record on any of its
		// partitions and answers with that partition only.
		req = fetchReq(version, topic, id, sid, 5, 1)
		req.Topics[0].Partitions[0].FetchOffset = responseParts(inc)[1].HighWatermark
		req.MaxWaitMillis, req.MinBytes = 20_000, 1
		got := make(chan *kmsg.FetchResponse, 1)
		go func() {
			r, err := fc.try(req)
			if err != nil {
				t.Errorf("long poll: %v", err)
			}
			resp, _ := r.(*kmsg.FetchResponse)
			got <- resp
		}()
		produceTo(t, kgoClientFor(t, ib.addr()), topic, 1, "e")
		if lp := <-got; lp == nil || lp.ErrorCode != 0 || !samePartitions(partitionsOf(lp), 1) || len(responseParts(lp)[1].RecordBatches) == 0 {
			t.Fatalf("v%d long poll: %+v; want partition 1 with the new record", version, lp)
		}

		// An unknown session, then closing this one with a full fetch.
		if x := fetch(sid^0x5a5a, 1); x.ErrorCode != kerr.FetchSessionIDNotFound.Code {
			t.Fatalf("v%d unknown session: error %d; want FETCH_SESSION_ID_NOT_FOUND", version, x.ErrorCode)
		}
		if x := fetch(sid, -1, 0); x.ErrorCode != 0 || x.SessionID != 0 || !samePartitions(partitionsOf(x), 0) {
			t.Fatalf("v%d closing full fetch: error %d session %d partitions %v", version, x.ErrorCode, x.SessionID, partitionsOf(x))
		}
		if x := fetch(sid, 6); x.ErrorCode != kerr.FetchSessionIDNotFound.Code {
			t.Fatalf("v%d closed session: error %d; want FETCH_SESSION_ID_NOT_FOUND", version, x.ErrorCode)
		}
	}
}

// kgoClientFor is a separate producer, so a test's raw connection can wait
// in a long poll meanwhile.
func kgoClientFor(t *testing.T, addr string) *kgo.Client {
	return client(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
}

// With every session slot taken by a session too young to evict, a full
// fetch asking for a session gets none (id 0) and still its data, as in
// Kafka; a sessionless client is not affected.
func TestFetchSessionCacheFull(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, map[string]string{"max.incremental.fetch.session.cache.slots": "1"})
	createTopic(t, ib.addr(), "slots", 1, nil)
	produceTo(t, kgoClientFor(t, ib.addr()), "slots", 0, "v")
	first := dialFetchConn(t, ib.addr()).do(fetchReq(12, "slots", [16]byte{}, 0, 0, 0)).(*kmsg.FetchResponse)
	if first.SessionID == 0 {
		t.Fatal("first full fetch got no session")
	}
	second := dialFetchConn(t, ib.addr()).do(fetchReq(12, "slots", [16]byte{}, 0, 0, 0)).(*kmsg.FetchResponse)
	if second.ErrorCode != 0 || second.SessionID != 0 || len(responseParts(second)[0].RecordBatches) == 0 {
		t.Fatalf("second full fetch: error %d session %d; want data and no session", second.ErrorCode, second.SessionID)
	}
	// The first session still works.
	inc := dialFetchConn(t, ib.addr()).do(fetchReq(12, "slots", [16]byte{}, first.SessionID, 1)).(*kmsg.FetchResponse)
	if inc.ErrorCode != 0 || inc.SessionID != first.SessionID {
		t.Fatalf("first session: error %d session %d", inc.ErrorCode, inc.SessionID)
	}
}

// Followers fetch in KIP-227 sessions too: with min.insync.replicas=2
// every acks=all produce needs the follower to fetch the new records
// through its incremental session, and before any consumer fetches, each
// leader's cache holds its follower's session.
func TestFetchSessionFollowers(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2)
	c.createTopic("follow", 4, 2, map[string]*string{"min.insync.replicas": kmsg.StringPtr("2")})
	c.waitISR("follow", 2, 30*time.Second)
	cl := c.client(kgo.DefaultProduceTopic("follow"), kgo.RequiredAcks(kgo.AllISRAcks()))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range 200 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(itoa(i)), Value: []byte(itoa(i))}).FirstErr(); err != nil {
			t.Fatalf("acks=all produce %d: %v", i, err)
		}
	}
	// No consumer has fetched yet: every cached session is a follower's.
	for _, id := range c.ids() {
		if n := c.procs[id].metric(t, "sluice_fetch_sessions"); n < 1 {
			t.Fatalf("broker %d caches %v fetch sessions; want its follower's", id, n)
		}
		if n := c.procs[id].metric(t, "sluice_fetch_session_partitions"); n < 1 {
			t.Fatalf("broker %d caches %v session partitions", id, n)
		}
	}
	total := 0
	for p := range int32(4) {
		total += len(c.consumePartition("follow", p))
	}
	if total != 200 {
		t.Fatalf("consumed %d records, want 200", total)
	}
}

// fetch.max.bytes bounds what a consumer's Fetch carries whatever its
// max_bytes asks, as in Kafka (the first batch still goes out whole,
// KIP-74).
func TestFetchMaxBytesBroker(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		limit   string
		batches int
	}{{"1024", 1}, {"", 3}} {
		var settings map[string]string
		if c.limit != "" {
			settings = map[string]string{"fetch.max.bytes": c.limit}
		}
		ib := startBroker(t, settings)
		createTopic(t, ib.addr(), "capped", 1, nil)
		cl := client(t, ib.addr())
		value := string(make([]byte, 600))
		for range 3 {
			if r := produceRaw(t, cl, "capped", buildBatch(-1, -1, -1, value)); r.ErrorCode != 0 {
				t.Fatalf("produce: error %d", r.ErrorCode)
			}
		}
		req := fetchReq(12, "capped", [16]byte{}, 0, -1, 0)
		req.MaxBytes = 50 << 20
		resp := dialFetchConn(t, ib.addr()).do(req).(*kmsg.FetchResponse)
		sp := responseParts(resp)[0]
		n, rest := 0, sp.RecordBatches
		for len(rest) >= 12 {
			size := 12 + int(binary.BigEndian.Uint32(rest[8:12]))
			if size > len(rest) {
				break // a trailing partial batch
			}
			n, rest = n+1, rest[size:]
		}
		if sp.ErrorCode != 0 || n != c.batches {
			t.Fatalf("fetch.max.bytes=%q: error %d, %d whole batches in %d bytes; want %d", c.limit, sp.ErrorCode, n, len(sp.RecordBatches), c.batches)
		}
	}
}
