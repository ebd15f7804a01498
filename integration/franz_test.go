package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// consumeAll reads n records of topic from the start, failing after timeout.
func consumeAll(t testing.TB, addr, topic string, n int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl := client(t, addr, append([]kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500 * time.Millisecond)}, opts...)...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before timeout", len(out), n)
		}
		fs.EachError(func(tp string, p int32, err error) {
			t.Fatalf("fetch %s[%d]: %v", tp, p, err)
		})
		out = append(out, fs.Records()...)
	}
	return out
}

func TestFranzProduceConsumeKeyedInOrder(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, nil)
	createTopic(t, ib.addr(), "orders", 3, nil)
	cl := client(t, ib.addr(), kgo.DefaultProduceTopic("orders"))
	const n = 3000
	ctx := context.Background()
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("key-%d", i%17)
		cl.Produce(ctx, &kgo.Record{Key: []byte(key), Value: []byte(fmt.Sprintf("%d", i))}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	recs := consumeAll(t, ib.addr(), "orders", n)
	if len(recs) != n {
		t.Fatalf("got %d records, want %d", len(recs), n)
	}
	lastByKey := map[string]int{}
	partOfKey := map[string]int32{}
	nextOffset := map[int32]int64{}
	for _, r := range recs {
		var v int
		fmt.Sscanf(string(r.Value), "%d", &v)
		k := string(r.Key)
		if last, ok := lastByKey[k]; ok && v <= last {
			t.Fatalf("key %s: value %d after %d: order broken", k, v, last)
		}
		lastByKey[k] = v
		if p, ok := partOfKey[k]; ok && p != r.Partition {
			t.Fatalf("key %s in partitions %d and %d", k, p, r.Partition)
		}
		partOfKey[k] = r.Partition
		if r.Offset != nextOffset[r.Partition] {
			t.Fatalf("partition %d: offset %d, want %d (gap or duplicate)", r.Partition, r.Offset, nextOffset[r.Partition])
		}
		nextOffset[r.Partition]++
	}
}

func TestFranzCompressionCodecs(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, nil)
	codecs := map[string]kgo.CompressionCodec{
		"gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
	}
	for name, codec := range codecs {
		t.Run(name, func(t *testing.T) {
			topic := "codec-" + name
			createTopic(t, ib.addr(), topic, 1, nil)
			cl := client(t, ib.addr(), kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(codec), kgo.ProducerLinger(50*time.Millisecond))
			const n = 500
			ctx := context.Background()
			for i := 0; i < n; i++ {
				cl.Produce(ctx, &kgo.Record{Value: bytes.Repeat([]byte{byte('a' + i%26)}, 200)}, nil)
			}
			if err := cl.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			recs := consumeAll(t, ib.addr(), topic, n)
			for i, r := range recs {
				if want := bytes.Repeat([]byte{byte('a' + i%26)}, 200); !bytes.Equal(r.Value, want) || r.Offset != int64(i) {
					t.Fatalf("record %d: offset %d value %q...", i, r.Offset, r.Value[:8])
				}
			}
		})
	}
}

func TestFranzLargeRecordAndMessageTooLarge(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, nil)
	createTopic(t, ib.addr(), "big", 1, nil)
	small := "20000"
	createTopic(t, ib.addr(), "small-limit", 1, map[string]*string{"max.message.bytes": &small})
	cl := client(t, ib.addr(), kgo.ProducerBatchMaxBytes(4<<20), kgo.RecordRetries(1))
	ctx := context.Background()
	big := bytes.Repeat([]byte("x"), 900<<10)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "big", Value: big}).FirstErr(); err != nil {
		t.Fatalf("900 KiB record: %v", err)
	}
	recs := consumeAll(t, ib.addr(), "big", 1)
	if !bytes.Equal(recs[0].Value, big) {
		t.Fatalf("900 KiB record came back with %d bytes", len(recs[0].Value))
	}
	// Random bytes: franz-go compresses by default, and the limit applies to
	// the batch as sent.
	noise := make([]byte, 40000)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range noise {
		noise[i] = byte(r.Uint32())
	}
	err := cl.ProduceSync(ctx, &kgo.Record{Topic: "small-limit", Value: noise}).FirstErr()
	if !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("oversized record: got %v, want MESSAGE_TOO_LARGE", err)
	}
	offs, lerr := kadm.NewClient(cl).ListEndOffsets(ctx, "small-limit")
	if lerr != nil {
		t.Fatal(lerr)
	}
	if o, _ := offs.Lookup("small-limit", 0); o.Offset != 0 {
		t.Fatalf("rejected record was stored: end offset %d", o.Offset)
	}
}

func TestFranzLongPollWakesOnProduce(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, nil)
	createTopic(t, ib.addr(), "wake", 1, nil)
	consumer := client(t, ib.addr(), kgo.ConsumeTopics("wake"), kgo.FetchMaxWait(20*time.Second))
	// Let the consumer reach its long poll on the empty partition.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := make(chan time.Time, 1)
	go func() {
		for {
			fs := consumer.PollFetches(ctx)
			if len(fs.Records()) > 0 || ctx.Err() != nil {
				got <- time.Now()
				return
			}
		}
	}()
	time.Sleep(time.Second) // the consumer is now parked in a 20 s long poll
	producer := client(t, ib.addr())
	sent := time.Now()
	if err := producer.ProduceSync(ctx, &kgo.Record{Topic: "wake", Value: []byte("hello")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	at := <-got
	if ctx.Err() != nil {
		t.Fatal("consumer never received the record")
	}
	// A poll-driven broker would answer only at MaxWait (20 s).
	if d := at.Sub(sent); d > 5*time.Second {
		t.Fatalf("long poll woke %v after the produce; want an immediate wake-up", d)
	}
}

func TestFranzListOffsetsByTime(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, nil)
	createTopic(t, ib.addr(), "times", 1, nil)
	cl := client(t, ib.addr(), kgo.DefaultProduceTopic("times"))
	ctx := context.Background()
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for i := 0; i < 10; i++ {
		r := &kgo.Record{Value: []byte{byte(i)}, Timestamp: base.Add(time.Duration(i) * time.Minute)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(cl)
	cases := []struct {
		at   time.Time
		want int64
	}{
		{base.Add(-time.Minute), 0},
		{base, 0},
		{base.Add(3*time.Minute + time.Second), 4},
		{base.Add(9 * time.Minute), 9},
		{base.Add(10 * time.Minute), -1},
	}
	for _, c := range cases {
		offs, err := adm.ListOffsetsAfterMilli(ctx, c.at.UnixMilli(), "times")
		if err != nil {
			t.Fatal(err)
		}
		o, _ := offs.Lookup("times", 0)
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		want := c.want
		if want == -1 {
			want = 10 // kadm maps "no such record" to the end offset
		}
		if o.Offset != want {
			t.Errorf("offset after %v: got %d, want %d", c.at.Sub(base), o.Offset, want)
		}
	}
	maxTS, err := adm.ListMaxTimestampOffsets(ctx, "times")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := maxTS.Lookup("times", 0); o.Offset != 9 {
		t.Errorf("max timestamp offset: got %d, want 9", o.Offset)
	}
}

func TestFranzDeleteRecords(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, nil)
	createTopic(t, ib.addr(), "trim", 1, nil)
	cl := client(t, ib.addr(), kgo.DefaultProduceTopic("trim"))
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(cl)
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "trim", Partition: 0, At: 12})
	res, err := adm.DeleteRecords(ctx, offs)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := res.Lookup("trim", 0); r.Err != nil || r.LowWatermark != 12 {
		t.Fatalf("delete records: low watermark %d, err %v", r.LowWatermark, r.Err)
	}
	starts, err := adm.ListStartOffsets(ctx, "trim")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := starts.Lookup("trim", 0); o.Offset != 12 {
		t.Fatalf("start offset %d, want 12", o.Offset)
	}
	recs := consumeAll(t, ib.addr(), "trim", 8)
	if recs[0].Offset != 12 || recs[0].Value[0] != 12 {
		t.Fatalf("first record after delete: offset %d", recs[0].Offset)
	}
	offs = kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "trim", Partition: 0, At: 25})
	res, err = adm.DeleteRecords(ctx, offs)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := res.Lookup("trim", 0); !errors.Is(r.Err, kerr.OffsetOutOfRange) {
		t.Fatalf("delete past the high watermark: %v, want OFFSET_OUT_OF_RANGE", r.Err)
	}
}

func TestFranzTopicConfigs(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, map[string]string{"log.retention.hours": "24"})
	adm := admin(t, ib.addr())
	ctx := context.Background()
	bad := "abc"
	resp, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"retention.ms": &bad}, "badcfg")
	if !errors.Is(err, kerr.InvalidConfig) || !errors.Is(resp.Err, kerr.InvalidConfig) {
		t.Fatalf("retention.ms=abc: got %v / %v, want INVALID_CONFIG", err, resp.Err)
	}
	seg := "1048576"
	createTopic(t, ib.addr(), "cfg", 1, map[string]*string{"segment.bytes": &seg})
	rcs, err := adm.DescribeTopicConfigs(ctx, "cfg")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On("cfg", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		value  string
		source string
	}{
		"segment.bytes":  {"1048576", "DYNAMIC_TOPIC_CONFIG"},
		"retention.ms":   {"86400000", "STATIC_BROKER_CONFIG"},
		"cleanup.policy": {"delete", "DEFAULT_CONFIG"},
	}
	for _, c := range rc.Configs {
		if w, ok := want[c.Key]; ok {
			if c.MaybeValue() != w.value || c.Source.String() != w.source {
				t.Errorf("%s = %s (%s), want %s (%s)", c.Key, c.MaybeValue(), c.Source, w.value, w.source)
			}
			delete(want, c.Key)
		}
	}
	if len(want) > 0 {
		t.Errorf("configs missing from DescribeConfigs: %v", want)
	}
	v := "3600000"
	ar, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: &v}}, "cfg")
	if err != nil || ar[0].Err != nil {
		t.Fatalf("alter: %v %v %s", err, ar[0].Err, ar[0].ErrMessage)
	}
	rcs, _ = adm.DescribeTopicConfigs(ctx, "cfg")
	rc, _ = rcs.On("cfg", nil)
	for _, c := range rc.Configs {
		if c.Key == "retention.ms" && (c.MaybeValue() != v || c.Source.String() != "DYNAMIC_TOPIC_CONFIG") {
			t.Errorf("after alter retention.ms = %s (%s)", c.MaybeValue(), c.Source)
		}
	}
	ar, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: &bad}}, "cfg")
	if err != nil || !errors.Is(ar[0].Err, kerr.InvalidConfig) {
		t.Fatalf("alter to abc: %v %v, want INVALID_CONFIG", err, ar)
	}
	brs, err := adm.DescribeBrokerConfigs(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, rc := range brs {
		for _, c := range rc.Configs {
			if c.Key == "log.retention.hours" {
				found = c.MaybeValue() == "24"
			}
		}
	}
	if !found {
		t.Error("broker DescribeConfigs does not report log.retention.hours=24")
	}
}

func TestFranzCreatePartitions(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, nil)
	createTopic(t, ib.addr(), "grow", 1, nil)
	cl := client(t, ib.addr(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	res, err := adm.CreatePartitions(ctx, 2, "grow")
	if err != nil || res["grow"].Err != nil {
		t.Fatalf("create partitions: %v %v", err, res)
	}
	md, err := adm.Metadata(ctx, "grow")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(md.Topics["grow"].Partitions); n != 3 {
		t.Fatalf("partitions after adding 2: %d", n)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "grow", Partition: 2, Value: []byte("p2")}).FirstErr(); err != nil {
		t.Fatalf("produce to the new partition: %v", err)
	}
	res, err = adm.UpdatePartitions(ctx, 2, "grow")
	if err != nil || !errors.Is(res["grow"].Err, kerr.InvalidPartitions) {
		t.Fatalf("shrinking: %v %v, want INVALID_PARTITIONS", err, res["grow"].Err)
	}
}

// TestFranzReplicationFactorAboveLiveBrokersRefused checks that a
// replication factor larger than the live broker count is refused with
// INVALID_REPLICATION_FACTOR, as Kafka does, rather than accepted with
// fewer copies.
func TestFranzReplicationFactorAboveLiveBrokersRefused(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, nil)
	_, err := admin(t, ib.addr()).CreateTopic(context.Background(), 1, 2, nil, "rf2")
	if !errors.Is(err, kerr.InvalidReplicationFactor) {
		t.Fatalf("replication factor 2: %v, want INVALID_REPLICATION_FACTOR", err)
	}
}
