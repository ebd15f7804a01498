package broker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/protocol"
	"github.com/sluicedev/sluice/storage"
)

// startTestBroker runs a broker with an embedded etcd on loopback ports,
// stopped at cleanup.
func startTestBroker(t *testing.T) *Broker {
	t.Helper()
	return startTestBrokerWith(t, slog.New(slog.DiscardHandler), nil)
}

// startTestBrokerWith is startTestBroker with a logger and broker settings.
func startTestBrokerWith(t *testing.T, log *slog.Logger, settings map[string]string) *Broker {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b, err := New(ctx, Config{
		NodeID: 1, Listen: "127.0.0.1:0", DataDir: t.TempDir(), HTTPListen: "127.0.0.1:0",
		EmbeddedEtcdClientAddr: "127.0.0.1:0", EmbeddedEtcdPeerAddr: "127.0.0.1:0",
		Logger: log, Settings: settings,
	})
	if err != nil {
		cancel()
		t.Fatalf("start broker: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("broker Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("broker did not stop within 30 s")
		}
	})
	return b
}

// recordValue is the value of record i of a partition: its size varies
// widely so produce frames and fetch reads keep changing size, and its
// bytes name the partition and index so misplaced bytes are caught.
func recordValue(p int32, i int) []byte {
	size := []int{8, 100, 3000, 40000, 200000}[i%5]
	v := make([]byte, size)
	for j := 0; j+8 <= size; j += 8 {
		binary.BigEndian.PutUint64(v[j:], uint64(p)<<48|uint64(i)<<16|uint64(j&0xffff))
	}
	return v
}

// TestConnRecycledBuffersKeepData produces pipelined requests of swinging
// sizes on one connection while consumers fetch concurrently, so frames and
// fetch read buffers are recycled constantly, and checks every record.
func TestConnRecycledBuffersKeepData(t *testing.T) {
	t.Parallel()
	b := startTestBroker(t)
	const topic, partitions, perPartition = "recycle", 4, 400
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adm, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	if _, err := kadm.NewClient(adm).CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.DisableIdempotentWrite(),
		kgo.MaxProduceRequestsInflightPerBroker(16), kgo.ProducerLinger(0), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()

	var wg sync.WaitGroup
	errs := make(chan error, partitions+1)
	for p := range int32(partitions) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- consumeAndCheck(ctx, b.Addr(), topic, p, perPartition)
		}()
	}
	for i := range perPartition {
		for p := range int32(partitions) {
			prod.Produce(ctx, &kgo.Record{Topic: topic, Partition: p, Value: recordValue(p, i)}, func(_ *kgo.Record, err error) {
				if err != nil {
					errs <- fmt.Errorf("produce: %w", err)
				}
			})
		}
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// consumeAndCheck reads n records of one partition and checks each value.
func consumeAndCheck(ctx context.Context, addr, topic string, p int32, n int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.FetchMaxPartitionBytes(300<<10),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().AtStart()}}))
	if err != nil {
		return err
	}
	defer cl.Close()
	for i := 0; i < n; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("partition %d: %d of %d records: %w", p, i, n, err)
		}
		var bad error
		fs.EachError(func(_ string, _ int32, err error) { bad = err })
		fs.EachRecord(func(r *kgo.Record) {
			if bad == nil && (r.Offset != int64(i) || !bytes.Equal(r.Value, recordValue(p, i))) {
				bad = fmt.Errorf("partition %d offset %d: wrong record (want offset %d)", p, r.Offset, i)
			}
			i++
		})
		if bad != nil {
			return bad
		}
	}
	return nil
}

func TestConnBufferRetention(t *testing.T) {
	t.Parallel()
	t.Run("frame kept through swings, dropped when mostly unused", func(t *testing.T) {
		c := &conn{readBufs: make(chan []byte, maxReadBufs)}
		big := make([]byte, 4<<20)
		c.recycleFrame(0, big)
		if cap(c.frame) != len(big) {
			t.Fatal("a full produce frame was not kept")
		}
		for i := range shrinkAfter - 1 {
			c.recycleFrame(0, c.frame[:100])
			if cap(c.frame) != len(big) {
				t.Fatalf("dropped after %d small frames, want %d", i+1, shrinkAfter)
			}
		}
		c.recycleFrame(0, c.frame[:100])
		if c.frame != nil {
			t.Fatal("kept after a run of mostly unused frames")
		}
		c.recycleFrame(11, big) // JoinGroup: the request may outlive its handler
		if c.frame != nil {
			t.Fatal("kept the frame of an API whose handler may retain it")
		}
	})
	t.Run("read buffers", func(t *testing.T) {
		c := &conn{readBufs: make(chan []byte, 2)}
		c.giveReadBuf(make([]byte, 1<<20), 100)
		if c.takeReadBuf() != nil {
			t.Fatal("kept a mostly unused large read buffer")
		}
		c.giveReadBuf(make([]byte, 1<<20), 1<<20)
		c.giveReadBuf(make([]byte, 100), 0)
		c.giveReadBuf(make([]byte, 100), 0) // over the bound: dropped
		if got := c.readBufBytes.Load(); got != 1<<20+100 {
			t.Fatalf("accounted %d bytes, want %d", got, 1<<20+100)
		}
		if cap(c.takeReadBuf()) != 1<<20 || cap(c.takeReadBuf()) != 100 || c.takeReadBuf() != nil {
			t.Fatal("buffers not handed back in order")
		}
		if got := c.readBufBytes.Load(); got != 0 {
			t.Fatalf("accounted %d bytes after taking everything", got)
		}
	})
	t.Run("released when idle", func(t *testing.T) {
		client, server := net.Pipe()
		defer client.Close()
		defer server.Close()
		c := &conn{nc: server, readBufs: make(chan []byte, maxReadBufs), frame: make([]byte, 0, 4<<20)}
		c.giveReadBuf(make([]byte, 1<<20), 1<<20)
		br := bufio.NewReader(server)
		far := time.Now().Add(time.Hour)
		c.releaseIfIdle(br, far) // nothing arrives within idleRelease
		if c.retained() != 0 {
			t.Fatalf("an idle connection kept %d bytes", c.retained())
		}
		c.frame = make([]byte, 0, 4<<20)
		go func() { _, _ = client.Write([]byte{0, 0, 0, 1, 9}) }()
		c.releaseIfIdle(br, far)
		if cap(c.frame) != 4<<20 {
			t.Fatal("released while a request was arriving")
		}
		if _, err := br.Peek(5); err != nil {
			t.Fatalf("the request was not left readable: %v", err)
		}
	})
}

// testBatch is a minimal valid v2 batch of one record with value v, built
// with kmsg and its CRC-32C set as a producer would.
func testBatch(t *testing.T, v []byte) []byte {
	t.Helper()
	rec := kmsg.Record{Value: v}
	rec.Length = int32(len(rec.AppendTo(nil)) - 1)
	rb := kmsg.RecordBatch{PartitionLeaderEpoch: -1, Magic: 2, ProducerID: -1, ProducerEpoch: -1,
		FirstSequence: -1, NumRecords: 1, Records: rec.AppendTo(nil)}
	raw := rb.AppendTo(nil)
	rb.Length = int32(len(raw) - 12)
	raw = rb.AppendTo(raw[:0])
	rb.CRC = int32(crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return rb.AppendTo(raw[:0])
}

// TestConnSpanTruncatedWhileSending checks that a fetch response whose log
// is truncated before it is sent is never completed: the send fails where
// the file ends, or, if new appends refilled it, just before the last byte.
func TestConnSpanTruncatedWhileSending(t *testing.T) {
	t.Parallel()
	for _, change := range []string{"none", "shrunk", "rewritten"} {
		l, err := storage.Open(filepath.Join(t.TempDir(), "t-0"), storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		for i := range 4 {
			if _, err := l.Append(testBatch(t, bytes.Repeat([]byte{byte(i)}, 10000)), storage.AppendOptions{AssignOffsets: true}); err != nil {
				t.Fatal(err)
			}
		}
		client, server := net.Pipe()
		c := &conn{nc: server, sendfile: true} // a pipe: spans go through memory
		w := &replyWriter{c: c, bw: bufio.NewWriter(server)}
		fr := &fetchReply{FetchResponse: kmsg.NewPtrFetchResponse(), conn: c}
		fr.Version = 12
		tp := kmsg.NewFetchResponseTopic()
		tp.Topic = "t"
		tp.Partitions = append(tp.Partitions, kmsg.NewFetchResponseTopicPartition())
		fr.Topics = append(fr.Topics, tp)
		data, span, err := fr.read(l, 0, 1<<20, l.LogEndOffset())
		if err != nil || data != nil || span.Len == 0 {
			t.Fatalf("read: %d bytes, span of %d, %v", len(data), span.Len, err)
		}
		want, _ := l.Read(0, 1<<20, l.LogEndOffset())
		fr.Topics[0].Partitions[0].RecordBatches = fr.keep([2]int{0, 0}, data, span)
		wantFrame := protocol.AppendResponse(nil, 7, withRecords(fr.FetchResponse, want))
		if change != "none" {
			if err := l.TruncateTo(2); err != nil {
				t.Fatal(err)
			}
		}
		if change == "rewritten" { // same length, other bytes
			for i := range 2 {
				if _, err := l.Append(testBatch(t, bytes.Repeat([]byte{byte(100 + i)}, 10000)), storage.AppendOptions{AssignOffsets: true}); err != nil {
					t.Fatal(err)
				}
			}
		}
		got := make(chan []byte)
		go func() {
			b, _ := io.ReadAll(client)
			got <- b
		}()
		err = w.write(&request{hdr: protocol.Header{CorrelationID: 7}, resp: fr})
		fr.release()
		server.Close()
		b := <-got
		switch {
		case change == "none" && (err != nil || !bytes.Equal(b, wantFrame)):
			t.Fatalf("unchanged: %v, got %d bytes, want %d", err, len(b), len(wantFrame))
		case change == "shrunk" && (err == nil || len(b) >= len(wantFrame) || !bytes.HasPrefix(wantFrame, b)):
			t.Fatalf("shrunk: %v, got %d bytes; want an error and a strict prefix of the %d", err, len(b), len(wantFrame))
		case change == "rewritten" && (!errors.Is(err, errSpanChanged) || len(b) != len(wantFrame)-1):
			t.Fatalf("rewritten: %v after %d bytes, want %v after all but the last of %d", err, len(b), errSpanChanged, len(wantFrame))
		}
	}
}

// withRecords returns a copy of resp with its one partition holding data.
func withRecords(resp *kmsg.FetchResponse, data []byte) *kmsg.FetchResponse {
	c := *resp
	c.Topics = []kmsg.FetchResponseTopic{resp.Topics[0]}
	c.Topics[0].Partitions = []kmsg.FetchResponseTopicPartition{resp.Topics[0].Partitions[0]}
	c.Topics[0].Partitions[0].RecordBatches = data
	return &c
}
