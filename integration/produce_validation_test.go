package integration

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/protocol"
)

// Kafka error codes the produce validation answers.
const (
	codeCorruptMessage  = 2
	codeMessageTooLarge = 10
	codeInvalidRecord   = 87
)

// recordBytes hand-encodes one record from its parts; lengthDelta is added
// to the true body length so tests can make it lie.
func recordBytes(lengthDelta int32, parts ...[]byte) []byte {
	var body []byte
	for _, p := range parts {
		body = append(body, p...)
	}
	return append(kbin.AppendVarint(nil, int32(len(body))+lengthDelta), body...)
}

func vint(v int32) []byte { return kbin.AppendVarint(nil, v) }

// goodRecord is a well-formed record with offset delta d and key k.
func goodRecord(d int32, k string) []byte {
	return recordBytes(0, []byte{0}, vint(0), vint(d), vint(int32(len(k))), []byte(k), vint(1), []byte("v"), vint(0))
}

// wrapBatch builds a v2 batch around records (compressed with codec) with
// the given counts and a correct CRC.
func wrapBatch(t *testing.T, codec int8, num, last int32, records []byte) []byte {
	t.Helper()
	section := records
	if codec != protocol.CodecNone {
		var err error
		if section, err = protocol.NewCodecs().Compress(codec, nil, records); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UnixMilli()
	rb := kmsg.RecordBatch{Magic: 2, Attributes: int16(codec), LastOffsetDelta: last, FirstTimestamp: now, MaxTimestamp: now,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, PartitionLeaderEpoch: -1, NumRecords: num, Records: section}
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// zstdBomb is a small zstd batch whose one record claims a 1 GiB value,
// made of 256 concatenated frames of 4 MiB of zeros.
func zstdBomb(t *testing.T) []byte {
	t.Helper()
	c := protocol.NewCodecs()
	const size = 1 << 30
	body := append([]byte{0}, vint(0)...)
	body = append(body, vint(0)...)
	body = append(body, vint(-1)...)
	body = append(body, vint(size)...)
	head := append(kbin.AppendVarint(nil, int32(len(body))+size+1), body...)
	first, err := c.Compress(protocol.CodecZstd, nil, head)
	if err != nil {
		t.Fatal(err)
	}
	frame, err := c.Compress(protocol.CodecZstd, nil, make([]byte, 4<<20))
	if err != nil {
		t.Fatal(err)
	}
	b := wrapBatch(t, protocol.CodecNone, 1, 0, append(first, bytes.Repeat(frame, 256)...))
	binary.BigEndian.PutUint16(b[21:], uint16(protocol.CodecZstd))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

func TestProduceValidationRefusesCorruptBatches(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, nil)
	createTopic(t, ib.addr(), "corrupt", 1, nil)
	cl := client(t, ib.addr())
	two := append(goodRecord(0, "a"), goodRecord(1, "b")...)
	cases := []struct {
		name  string
		batch []byte
		code  int16
	}{
		{"record length overruns the batch", wrapBatch(t, protocol.CodecNone, 1, 0, recordBytes(30, []byte{0}, vint(0), vint(0), vint(-1), vint(-1), vint(0))), codeInvalidRecord},
		{"record length disagrees with fields", wrapBatch(t, protocol.CodecNone, 1, 0, recordBytes(1, []byte{0}, vint(0), vint(0), vint(-1), vint(-1), vint(0), []byte{9})), codeInvalidRecord},
		{"more records than NumRecords", wrapBatch(t, protocol.CodecNone, 1, 0, two), codeInvalidRecord},
		{"fewer records than NumRecords", wrapBatch(t, protocol.CodecLZ4, 3, 2, two), codeInvalidRecord},
		{"last offset delta disagrees", wrapBatch(t, protocol.CodecNone, 2, 4, two), codeInvalidRecord},
		{"offset deltas out of sequence", wrapBatch(t, protocol.CodecZstd, 2, 1, append(goodRecord(0, "a"), goodRecord(3, "b")...)), codeInvalidRecord},
		{"null header key", wrapBatch(t, protocol.CodecZstd, 1, 0, recordBytes(0, []byte{0}, vint(0), vint(0), vint(-1), vint(-1), vint(1), vint(-1), vint(-1))), codeInvalidRecord},
		{"negative header count", wrapBatch(t, protocol.CodecGzip, 1, 0, recordBytes(0, []byte{0}, vint(0), vint(0), vint(-1), vint(-1), vint(-4))), codeInvalidRecord},
		{"zstd bomb", zstdBomb(t), codeMessageTooLarge},
	}
	for _, tt := range cases {
		start := time.Now()
		resp := produceRaw(t, cl, "corrupt", tt.batch)
		if resp.ErrorCode != tt.code {
			t.Fatalf("%s: code %d (%v), want %d", tt.name, resp.ErrorCode, deref(resp.ErrorMessage), tt.code)
		}
		if end := endOffset(t, cl, "corrupt"); end != 0 {
			t.Fatalf("%s: stored, log end offset %d", tt.name, end)
		}
		t.Logf("%s: refused in %v: %s", tt.name, time.Since(start), deref(resp.ErrorMessage))
	}
	// The partition still serves a real producer and consumer from offset 0.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	pcl := client(t, ib.addr(), kgo.DefaultProduceTopic("corrupt"), kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	for i := range 3 {
		if err := pcl.ProduceSync(ctx, kgo.StringRecord(fmt.Sprintf("ok-%d", i))).FirstErr(); err != nil {
			t.Fatalf("produce after corrupt batches: %v", err)
		}
	}
	got := consume(ctx, t, ib.addr(), "corrupt", 3)
	for i, r := range got {
		if r.Offset != int64(i) || string(r.Value) != fmt.Sprintf("ok-%d", i) {
			t.Fatalf("record %d: offset %d value %q", i, r.Offset, r.Value)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// consume reads n records of topic from the start.
func consume(ctx context.Context, t *testing.T, addr, topic string, n int) []*kgo.Record {
	t.Helper()
	ccl := client(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []*kgo.Record
	for len(got) < n {
		fs := ccl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", len(got), n, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		got = append(got, fs.Records()...)
	}
	return got
}

func TestProduceRecordErrorsKeylessOnCompactedTopic(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, nil)
	compact := "compact"
	createTopic(t, ib.addr(), "keyed", 1, map[string]*string{"cleanup.policy": &compact})
	cl := client(t, ib.addr())
	recs := append(goodRecord(0, "a"), recordBytes(0, []byte{0}, vint(0), vint(1), vint(-1), vint(1), []byte("v"), vint(0))...)
	recs = append(recs, goodRecord(2, "c")...)
	req := produceRequest("keyed", -1, 5000, wrapBatch(t, protocol.CodecLZ4, 3, 2, recs))
	req.SetVersion(8) // KIP-467: RecordErrors from v8
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != codeInvalidRecord || p.ErrorMessage == nil {
		t.Fatalf("keyless record: code %d message %v, want INVALID_RECORD with a message", p.ErrorCode, deref(p.ErrorMessage))
	}
	if len(p.ErrorRecords) != 1 || p.ErrorRecords[0].RelativeOffset != 1 || p.ErrorRecords[0].ErrorMessage == nil {
		t.Fatalf("record errors %+v, want batch index 1", p.ErrorRecords)
	}
	if end := endOffset(t, cl, "keyed"); end != 0 {
		t.Fatalf("refused batch stored: end offset %d", end)
	}
	// A franz-go producer sees the record-level error too.
	pcl := client(t, ib.addr(), kgo.DefaultProduceTopic("keyed"), kgo.RecordRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := pcl.ProduceSync(ctx, kgo.StringRecord("no key")).FirstErr(); err == nil {
		t.Fatal("a keyless record on a compacted topic was accepted")
	}
	if err := pcl.ProduceSync(ctx, &kgo.Record{Key: []byte("k"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("keyed record: %v", err)
	}
}

func TestProduceCompressionTypeRecompresses(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, nil)
	zstd, level := "zstd", "7"
	createTopic(t, ib.addr(), "recompress", 1, map[string]*string{"compression.type": &zstd, "compression.zstd.level": &level})
	cl := client(t, ib.addr())
	// An uncompressed raw batch and an lz4 batch from a franz-go producer.
	if resp := produceRaw(t, cl, "recompress", wrapBatch(t, protocol.CodecNone, 2, 1, append(goodRecord(0, "a"), goodRecord(1, "b")...))); resp.ErrorCode != 0 {
		t.Fatalf("uncompressed batch: code %d %s", resp.ErrorCode, deref(resp.ErrorMessage))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	pcl := client(t, ib.addr(), kgo.DefaultProduceTopic("recompress"), kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	if err := pcl.ProduceSync(ctx, &kgo.Record{Key: []byte("c"), Value: bytes.Repeat([]byte("x"), 2000)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	got := consume(ctx, t, ib.addr(), "recompress", 3)
	for i, r := range got {
		if codec := r.Attrs.CompressionType(); codec != 4 {
			t.Fatalf("record %d: batch codec %d, want zstd (4)", i, codec)
		}
		if r.Offset != int64(i) {
			t.Fatalf("record %d at offset %d", i, r.Offset)
		}
	}
	if string(got[0].Key) != "a" || string(got[2].Value) != string(bytes.Repeat([]byte("x"), 2000)) {
		t.Fatalf("records changed by recompression: %q %q", got[0].Key, got[2].Value)
	}

	// Every Kafka value and the KIP-390 levels are accepted; a level out of
	// range is not.
	adm := admin(t, ib.addr())
	for _, v := range []string{"producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"} {
		rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "compression.type", Value: &v}}, "recompress")
		if err != nil || rs[0].Err != nil {
			t.Fatalf("compression.type=%s: %v %v", v, err, rs)
		}
	}
	bad := "99"
	rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "compression.gzip.level", Value: &bad}}, "recompress")
	if err != nil || rs[0].Err == nil {
		t.Fatalf("compression.gzip.level=99 accepted: %v %v", err, rs)
	}
}

func TestApiVersionsListsProduceFromV0(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, nil)
	cl := client(t, ib.addr())
	resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, k := range resp.ApiKeys {
		if k.ApiKey == 0 {
			found = k.MinVersion == 0 && k.MaxVersion == 12
		}
	}
	if !found {
		t.Fatalf("Produce not listed as v0-12: %+v", resp.ApiKeys)
	}
	// A Produce v2 request is still refused: Kafka 4 fails its parsing and
	// closes the connection.
	conn, err := net.Dial("tcp", ib.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := produceRequest("any", 1, 1000, wrapBatch(t, protocol.CodecNone, 1, 0, goodRecord(0, "k")))
	req.SetVersion(2)
	body := append(header(0, 2, 9), req.AppendTo(nil)...)
	if _, err := conn.Write(frame(body)); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, conn)
	// Other clients are unaffected.
	if _, err := kmsg.NewPtrApiVersionsRequest().RequestWith(context.Background(), cl); err != nil {
		t.Fatalf("after a v2 produce on another connection: %v", err)
	}
}

func TestProduceBrokerCompressionTypeDefault(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, map[string]string{"compression.type": "gzip", "compression.gzip.level": "1"})
	createTopic(t, ib.addr(), "gzipped", 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	pcl := client(t, ib.addr(), kgo.DefaultProduceTopic("gzipped"), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err := pcl.ProduceSync(ctx, kgo.StringRecord("plain")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	got := consume(ctx, t, ib.addr(), "gzipped", 1)
	if codec := got[0].Attrs.CompressionType(); codec != 1 || string(got[0].Value) != "plain" {
		t.Fatalf("broker default compression.type=gzip: codec %d value %q, want gzip (1)", codec, got[0].Value)
	}
}
