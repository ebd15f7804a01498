package protocol

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// kgoCodecs maps our codec numbers to kgo's producer options.
var kgoCodecs = map[int8]kgo.CompressionCodec{
	CodecNone:   kgo.NoCompression(),
	CodecGzip:   kgo.GzipCompression(),
	CodecSnappy: kgo.SnappyCompression(),
	CodecLZ4:    kgo.Lz4Compression(),
	CodecZstd:   kgo.ZstdCompression(),
}

// interopCluster starts an in-process kfake broker with one single-partition
// topic per codec and direction, and a raw client pinned to versions that
// address topics by name (Fetch v12, Produce v9).
func interopCluster(t *testing.T) (*kfake.Cluster, *kgo.Client) {
	t.Helper()
	var topics []string
	for _, codec := range allCodecs {
		topics = append(topics, "from-kgo-"+codecName(codec), "to-kgo-"+codecName(codec))
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	raw, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.MaxVersions(kversion.V3_0_0()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(raw.Close)
	return cluster, raw
}

// TestRecordsKgoInterop checks both directions against franz-go: batches
// kgo produces with every codec decode with DecodeRecords, and batches
// BuildBatch makes are accepted by kfake (which checks their CRC) and
// consumed by kgo (which checks the CRC and decompresses with its own
// codecs).
func TestRecordsKgoInterop(t *testing.T) {
	t.Parallel()
	cluster, raw := interopCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, codec := range allCodecs {
		t.Run("from kgo "+codecName(codec), func(t *testing.T) {
			topic := "from-kgo-" + codecName(codec)
			want := produceWithKgo(ctx, t, cluster, topic, codec)
			got := fetchRaw(ctx, t, raw, topic, codec)
			if len(got) != len(want) {
				t.Fatalf("%d records, want %d", len(got), len(want))
			}
			for i := range got {
				if !bytes.Equal(got[i].Key, want[i].Key) || !bytes.Equal(got[i].Value, want[i].Value) {
					t.Fatalf("record %d: %q=%q, want %q=%q", i, got[i].Key, got[i].Value, want[i].Key, want[i].Value)
				}
			}
		})
		t.Run("to kgo "+codecName(codec), func(t *testing.T) {
			topic := "to-kgo-" + codecName(codec)
			recs := testRecords(50)
			opts := DefaultBatchOptions()
			opts.FirstTimestamp = time.Now().UnixMilli()
			b, err := BuildBatch(nil, codec, 0, recs, opts)
			if err != nil {
				t.Fatal(err)
			}
			produceRaw(ctx, t, raw, topic, b)
			got := consumeWithKgo(ctx, t, cluster, topic, len(recs))
			for i, r := range got {
				w := recs[i]
				if r.Offset != int64(i) || !bytes.Equal(r.Key, w.Key) || !bytes.Equal(r.Value, w.Value) ||
					len(r.Headers) != len(w.Headers) || r.Timestamp.UnixMilli() != opts.FirstTimestamp+w.TimestampDelta64 {
					t.Fatalf("record %d: got %+v, want %+v", i, r, w)
				}
			}
		})
	}
}

// produceWithKgo produces 200 compressible records with codec and returns
// them; kgo packs them into one or a few batches.
func produceWithKgo(ctx context.Context, t *testing.T, cluster *kfake.Cluster, topic string, codec int8) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchCompression(kgoCodecs[codec]))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := range 200 {
		recs = append(recs, &kgo.Record{
			Key:     fmt.Appendf(nil, "key-%d", i),
			Value:   bytes.Repeat(fmt.Appendf(nil, "value-%d ", i), 20),
			Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("v")}},
		})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return recs
}

// fetchRaw fetches partition 0 of topic from offset 0 and decodes every
// batch with DecodeRecords, checking each carries codec.
func fetchRaw(ctx context.Context, t *testing.T, raw *kgo.Client, topic string, codec int8) []kmsg.Record {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MaxBytes = 100, 10<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes = 10 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	p := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
		t.Fatal(err)
	}
	c := NewCodecs()
	var out []kmsg.Record
	for rest := p.RecordBatches; len(rest) > 0; {
		size := 12 + int(binary.BigEndian.Uint32(rest[8:]))
		rb, recs, err := DecodeRecords(rest[:size], c, 10<<20)
		if err != nil {
			t.Fatal(err)
		}
		if got := int8(rb.Attributes & attrCodecMask); got != codec {
			t.Fatalf("kgo wrote codec %d, want %d", got, codec)
		}
		out = append(out, recs...)
		rest = rest[size:]
	}
	return out
}

// produceRaw sends batch as-is in a Produce request and fails on any error.
func produceRaw(ctx context.Context, t *testing.T, raw *kgo.Client, topic string, batch []byte) {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	p := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
		msg := ""
		if p.ErrorMessage != nil {
			msg = *p.ErrorMessage
		}
		t.Fatalf("produce: %v %s", err, msg)
	}
}

// consumeWithKgo reads n records of topic from the start.
func consumeWithKgo(ctx context.Context, t *testing.T, cluster *kfake.Cluster, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("after %d records: %v", len(out), err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("consume: %v", err) })
		out = append(out, fs.Records()...)
	}
	return out
}
