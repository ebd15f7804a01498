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
