package broker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// startTestBroker runs a broker with an embedded etcd on loopback ports,
// stopped at cleanup.
func startTestBroker(t *testing.T) *Broker {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b, err := New(ctx, Config{
		NodeID: 1, Listen: "127.0.0.1:0", DataDir: t.TempDir(), HTTPListen: "127.0.0.1:0",
		EmbeddedEtcdClientAddr: "127.0.0.1:0", EmbeddedEtcdPeerAddr: "127.0.0.1:0",
		Logger: slog.New(slog.DiscardHandler),
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
		c.releaseIfIdle(br) // nothing arrives within idleRelease
		if c.retained() != 0 {
			t.Fatalf("an idle connection kept %d bytes", c.retained())
		}
		c.frame = make([]byte, 0, 4<<20)
		go func() { _, _ = client.Write([]byte{0, 0, 0, 1, 9}) }()
		c.releaseIfIdle(br)
		if cap(c.frame) != 4<<20 {
			t.Fatal("released while a request was arriving")
		}
		if _, err := br.Peek(5); err != nil {
			t.Fatalf("the request was not left readable: %v", err)
		}
	})
}
