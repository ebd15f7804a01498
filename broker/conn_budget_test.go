package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestConnBudgetAccountsEveryRequest runs pipelined producers and
// consumers of swinging sizes through a small request budget: every record
// arrives intact, the budget is all given back once the clients are gone,
// and a frame larger than the whole budget closes its connection.
func TestConnBudgetAccountsEveryRequest(t *testing.T) {
	t.Parallel()
	const budgetBytes = 3 << 20
	b := startTestBrokerWith(t, slog.New(slog.DiscardHandler), map[string]string{
		"queued.max.request.bytes": fmt.Sprint(budgetBytes), "queued.max.requests": "4",
	})
	const topic, partitions, perPartition = "budget", 4, 150
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adm, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kadm.NewClient(adm).CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	adm.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 2*partitions)
	for p := range int32(partitions) {
		wg.Add(2)
		go func() {
			defer wg.Done()
			errs <- consumeAndCheck(ctx, b.Addr(), topic, p, perPartition)
		}()
		go func() { // one producer per partition: many connections at once
			defer wg.Done()
			errs <- producePartition(ctx, b.Addr(), topic, p, perPartition)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if max := gaugeValue(t, b, "sluice_request_memory_limit_bytes"); max != budgetBytes {
		t.Errorf("sluice_request_memory_limit_bytes = %v, want %d", max, budgetBytes)
	}
	waitUntil(t, func() bool {
		return gaugeValue(t, b, "sluice_request_memory_bytes") == 0 && gaugeValue(t, b, "sluice_queued_requests") == 0
	})

	bad := gaugeValue(t, b, "sluice_bad_requests_total")
	nc, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var head [6]byte
	binary.BigEndian.PutUint32(head[:], budgetBytes+1)
	if _, err := nc.Write(head[:]); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(nc, head[:4]); !errors.Is(err, io.EOF) {
		t.Fatalf("a frame over the budget: %v, want the connection closed", err)
	}
	if got := gaugeValue(t, b, "sluice_bad_requests_total"); got != bad+1 {
		t.Errorf("sluice_bad_requests_total went from %v to %v, want one more", bad, got)
	}
}

// producePartition produces n records of swinging sizes to one partition
// with pipelined requests on its own client.
func producePartition(ctx context.Context, addr, topic string, p int32, n int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DisableIdempotentWrite(), kgo.ProducerLinger(0),
		kgo.MaxProduceRequestsInflightPerBroker(8), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return err
	}
	defer cl.Close()
	var first error
	var mu sync.Mutex
	for i := range n {
		cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: p, Value: recordValue(p, i)}, func(_ *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil && first == nil {
				first = fmt.Errorf("produce to %d: %w", p, err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	return first
}
