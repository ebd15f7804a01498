package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// waitFor polls cond every few milliseconds until it holds or timeout
// passes, and reports whether it held.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

func newTestCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.AllowAutoTopicCreation()}, opts...)...)
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// produceShape is what a broker saw of one produce request.
type produceShape struct{ batches, records int }

// shapeOf counts the record batches and records in a produce request.
func shapeOf(req *kmsg.ProduceRequest) (produceShape, error) {
	var s produceShape
	for _, topic := range req.Topics {
		for _, part := range topic.Partitions {
			for b := part.Records; len(b) > 0; {
				var batch kmsg.RecordBatch
				if err := batch.ReadFrom(b); err != nil {
					return s, fmt.Errorf("decode batch: %w", err)
				}
				s.batches++
				s.records += int(batch.NumRecords)
				size := 12 + int(batch.Length)
				if size > len(b) {
					return s, fmt.Errorf("batch of %d bytes in %d", size, len(b))
				}
				b = b[size:]
			}
		}
	}
	return s, nil
}

// TestProduceOnePerRequest checks on the broker's side that --one-per-request
// puts exactly one record in every produce request, for record sizes around
// the varint and kgo-minimum boundaries, and that requests stay pipelined:
// while the broker holds one request back, more are written behind it.
func TestProduceOnePerRequest(t *testing.T) {
	t.Parallel()
	for _, size := range []int{1, 63, 64, 100, 1024, 10000} {
		t.Run(fmt.Sprintf("size-%d", size), func(t *testing.T) {
			t.Parallel()
			cluster := newTestCluster(t, kfake.SeedTopics(1, "one"))
			c, err := parseFlags([]string{"--fake", "--records", "300", "--one-per-request", "--acks", "all",
				"--record-size", fmt.Sprint(size), "--topic", "one", "--max-inflight", "4"}, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			stats := newProducerStats()
			inflight := func() int64 { stats.mu.Lock(); defer stats.mu.Unlock(); return stats.mu.maxSeen }

			var mu sync.Mutex
			var shapes []produceShape
			var shapeErr error
			cluster.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
				s, err := shapeOf(req.(*kmsg.ProduceRequest))
				mu.Lock()
				shapes = append(shapes, s)
				n := len(shapes)
				if err != nil && shapeErr == nil {
					shapeErr = err
				}
				mu.Unlock()
				if n == 10 { // hold one request until others queue up behind it
					waitFor(10*time.Second, func() bool { return inflight() >= 3 })
				}
				return nil, nil, false
			})

			cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cluster.ListenAddrs()...)}, producerOpts(&c, stats)...)...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			start, err := produceLoop(ctx, cl, &c, stats)
			if err != nil {
				t.Fatal(err)
			}
			p := stats.phase(start, time.Now())
			if p.Records != 300 || p.Errors != 0 {
				t.Fatalf("acked %d records with %d errors (%s), want 300 and 0", p.Records, p.Errors, p.FirstError)
			}

			mu.Lock()
			defer mu.Unlock()
			if shapeErr != nil {
				t.Fatal(shapeErr)
			}
			if len(shapes) != 300 {
				t.Errorf("broker saw %d produce requests for 300 records", len(shapes))
			}
			for i, s := range shapes {
				if s.batches != 1 || s.records != 1 {
					t.Fatalf("request %d carried %d batches and %d records, want 1 and 1", i, s.batches, s.records)
				}
			}
			if p.MaxBatchRecords != 1 || p.Requests != 300 {
				t.Errorf("client saw %d requests, largest batch %d records; want 300 and 1", p.Requests, p.MaxBatchRecords)
			}
			if p.MaxInflightSeen < 3 || p.MaxInflightSeen > 4 {
				t.Errorf("max in flight seen %d, want 3 or 4 (--max-inflight 4)", p.MaxInflightSeen)
			}
		})
	}
}

func TestBenchFakeProduceConsume(t *testing.T) {
	t.Parallel()
	c, err := parseFlags([]string{"--fake", "--records", "3000", "--record-size", "200", "--partitions", "3",
		"--acks", "all", "--topic-config", "retention.ms=-1", "--delete-topic"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	res, err := runBench(context.Background(), c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("runBench: %v (result %+v)", err, res)
	}
	p, cons := res.Produce, res.Consume
	if p == nil || cons == nil {
		t.Fatalf("missing phase: produce %v consume %v", p, cons)
	}
	if p.Records != 3000 || p.Bytes != 3000*200 || p.RecordsPS <= 0 || p.Latency == nil {
		t.Errorf("produce: %+v", p)
	}
	if cons.Records != 3000 || cons.Bytes != 3000*200 || cons.RecordsPS <= 0 {
		t.Errorf("consume: %+v", cons)
	}
	if res.Partitions != 3 || p.BrokerCPU == nil || res.CPUScope == "" {
		t.Errorf("partitions %d broker cpu %v scope %q", res.Partitions, p.BrokerCPU, res.CPUScope)
	}
	if len(res.Notes) != 1 { // the "includes the client" note, and no delete failure
		t.Errorf("notes: %q", res.Notes)
	}
}

func TestBenchMaxP99Check(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		maxP99 string
		wantOK bool
	}{
		{"generous", "1h", true},
		{"impossible", "1ns", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := parseFlags([]string{"--fake", "--records", "200", "--rate", "2000", "--mode", "produce",
				"--max-p99", tt.maxP99}, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			res, err := runBench(context.Background(), c, slog.New(slog.DiscardHandler))
			if res.P99OK == nil || *res.P99OK != tt.wantOK || (err == nil) != tt.wantOK ||
				(err != nil && !errors.Is(err, errP99Exceeded)) {
				t.Fatalf("p99 ok %v, err %v; want ok %v", res.P99OK, err, tt.wantOK)
			}
			if res.Consume != nil {
				t.Error("--mode produce consumed")
			}
		})
	}
}

func TestBenchConsumeExistingTopic(t *testing.T) {
	t.Parallel()
	cluster := newTestCluster(t, kfake.SeedTopics(2, "existing"))
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.DefaultProduceTopic("existing"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range 50 {
		cl.Produce(context.Background(), &kgo.Record{Key: []byte{byte(i)}, Value: []byte("value")}, nil)
	}
	if err := cl.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	c, err := parseFlags([]string{"--brokers", cluster.ListenAddrs()[0], "--mode", "consume", "--topic", "existing"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	res, err := runBench(context.Background(), c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if res.Produce != nil || res.Consume == nil || res.Consume.Records != 50 || res.Consume.Bytes != 50*6 {
		t.Fatalf("produce %+v consume %+v", res.Produce, res.Consume)
	}
}

// TestServeFakeServesAndStops runs --serve-fake as a goroutine, benchmarks
// it over the network, and checks that cancelling (SIGTERM in main) stops it.
func TestServeFakeServesAndStops(t *testing.T) {
	t.Parallel()
	var ports bytes.Buffer
	if err := freePorts(1, &ports); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strings.TrimSpace(ports.String())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serveFake(ctx, addr, true, io.Discard) }()

	c, err := parseFlags([]string{"--brokers", addr, "--records", "100", "--broker-pid", fmt.Sprint(os.Getpid())}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	res, err := runBench(context.Background(), c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("bench against --serve-fake: %v", err)
	}
	if res.Produce.Records != 100 || res.Consume.Records != 100 || res.Produce.BrokerCPU == nil || res.Produce.ClientCPU == nil {
		t.Fatalf("produce %+v consume %+v", res.Produce, res.Consume)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serveFake: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serveFake did not stop after cancel")
	}
}

func TestServeFakeBadAddress(t *testing.T) {
	t.Parallel()
	if err := serveFake(context.Background(), "256.0.0.1:1", false, io.Discard); err == nil {
		t.Fatal("serveFake on an invalid address succeeded")
	}
}

func TestFreePortsDistinct(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := freePorts(5, &out); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, p := range strings.Fields(out.String()) {
		if n, err := strconv.Atoi(p); err != nil || n <= 0 || n > 65535 || seen[p] {
			t.Fatalf("bad or repeated port %q in %q", p, out.String())
		}
		seen[p] = true
	}
	if len(seen) != 5 {
		t.Fatalf("got %d ports, want 5: %q", len(seen), out.String())
	}
}
