package integration

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// buildBatch encodes a v2 record batch with kmsg and a CRC-32C computed here,
// independently of the broker's own code.
func buildBatch(pid int64, epoch int16, seq int32, values ...string) []byte {
	now := time.Now().UnixMilli()
	var recs []byte
	for i, v := range values {
		r := kmsg.Record{OffsetDelta: int32(i), Value: []byte(v)}
		r.Length = int32(len(r.AppendTo(nil)) - 1) // the zero Length took one varint byte
		recs = r.AppendTo(recs)
	}
	rb := kmsg.RecordBatch{
		FirstOffset: 0, Magic: 2, LastOffsetDelta: int32(len(values) - 1),
		FirstTimestamp: now, MaxTimestamp: now,
		ProducerID: pid, ProducerEpoch: epoch, FirstSequence: seq,
		NumRecords: int32(len(values)), Records: recs,
	}
	b := rb.AppendTo(nil)
	// Length covers everything after itself; CRC covers Attributes onward.
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	crc := crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli))
	binary.BigEndian.PutUint32(b[17:], crc)
	return b
}

// produceRequest is a Produce of one batch to topic/partition 0. (kgo
// replaces acks with the client's own setting when it sends it.)
func produceRequest(topic string, acks int16, timeoutMillis int32, batch []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = acks, timeoutMillis
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// produceRaw sends one batch to topic/partition 0 with acks=all.
func produceRaw(t testing.TB, cl *kgo.Client, topic string, batch []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := produceRequest(topic, -1, 5000, batch)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatalf("produce: %v", err)
	}
	return resp.Topics[0].Partitions[0]
}

func initProducerID(t testing.TB, cl *kgo.Client) (int64, int16) {
	t.Helper()
	resp, err := kmsg.NewPtrInitProducerIDRequest().RequestWith(context.Background(), cl)
	if err != nil || resp.ErrorCode != 0 {
		t.Fatalf("InitProducerId: %v code %d", err, resp.ErrorCode)
	}
	return resp.ProducerID, resp.ProducerEpoch
}

func endOffset(t testing.TB, cl *kgo.Client, topic string) int64 {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Timestamp = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Topics[0].Partitions[0].Offset
}

func TestIdempotentRetryNotDuplicated(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, nil)
	createTopic(t, ib.addr(), "idem", 1, nil)
	cl := client(t, ib.addr())
	pid, epoch := initProducerID(t, cl)

	first := produceRaw(t, cl, "idem", buildBatch(pid, epoch, 0, "a", "b"))
	if first.ErrorCode != 0 || first.BaseOffset != 0 {
		t.Fatalf("first append: code %d offset %d", first.ErrorCode, first.BaseOffset)
	}
	retry := produceRaw(t, cl, "idem", buildBatch(pid, epoch, 0, "a", "b"))
	if retry.ErrorCode != 0 || retry.BaseOffset != 0 {
		t.Fatalf("retried batch: code %d offset %d, want the original offset 0", retry.ErrorCode, retry.BaseOffset)
	}
	if end := endOffset(t, cl, "idem"); end != 2 {
		t.Fatalf("end offset after a retry: %d, want 2 (appended once)", end)
	}
	gap := produceRaw(t, cl, "idem", buildBatch(pid, epoch, 5, "x"))
	if gap.ErrorCode != 45 { // OUT_OF_ORDER_SEQUENCE_NUMBER
		t.Fatalf("sequence gap: code %d, want 45", gap.ErrorCode)
	}
	next := produceRaw(t, cl, "idem", buildBatch(pid, epoch, 2, "c"))
	if next.ErrorCode != 0 || next.BaseOffset != 2 {
		t.Fatalf("next in sequence: code %d offset %d", next.ErrorCode, next.BaseOffset)
	}

	// Producer state survives a restart: the same retry is still recognised.
	cfg := ib.cfg
	ib.stop()
	cfg.Listen = "127.0.0.1:0"
	ib2 := startBrokerConfig(t, cfg)
	cl2 := client(t, ib2.addr())
	again := produceRaw(t, cl2, "idem", buildBatch(pid, epoch, 2, "c"))
	if again.ErrorCode != 0 || again.BaseOffset != 2 {
		t.Fatalf("retry after restart: code %d offset %d, want 0 / 2", again.ErrorCode, again.BaseOffset)
	}
	if end := endOffset(t, cl2, "idem"); end != 3 {
		t.Fatalf("end offset after restart and retry: %d, want 3", end)
	}
}

func TestProduceCorruptCRCStoresNothing(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, nil)
	createTopic(t, ib.addr(), "crc", 1, nil)
	cl := client(t, ib.addr())
	b := buildBatch(-1, -1, -1, "hello")
	b[len(b)-1] ^= 0xff
	resp := produceRaw(t, cl, "crc", b)
	if resp.ErrorCode != 2 { // CORRUPT_MESSAGE
		t.Fatalf("corrupt CRC: code %d, want CORRUPT_MESSAGE (2)", resp.ErrorCode)
	}
	if end := endOffset(t, cl, "crc"); end != 0 {
		t.Fatalf("a corrupt batch was stored: end offset %d", end)
	}
	ok := produceRaw(t, cl, "crc", buildBatch(-1, -1, -1, "hello"))
	if ok.ErrorCode != 0 || ok.BaseOffset != 0 {
		t.Fatalf("valid batch after a corrupt one: code %d offset %d", ok.ErrorCode, ok.BaseOffset)
	}
}
