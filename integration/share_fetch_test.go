package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestShareFetchTwoConsumers runs two franz-go share consumers in one
// share group over a three-partition topic: together they get every one of
// N records, accepting each (franz-go accepts a poll's records on the next
// poll), and no record is delivered twice.
func TestShareFetchTwoConsumers(t *testing.T) {
	ib := startBroker(t, nil)
	const topic, group, n = "share-fetch", "share-fetch-group", 300
	createTopic(t, ib.addr(), topic, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	var (
		mu     sync.Mutex
		seen   = map[string]int{} // marked value -> deliveries
		warmed = map[int32]bool{}
	)
	consume := func(name string, cl *kgo.Client) {
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachError(func(tp string, p int32, err error) {
				if ctx.Err() == nil {
					t.Logf("%s: fetch error %s/%d: %v", name, tp, p, err)
				}
			})
			mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				v := string(r.Value)
				if strings.HasPrefix(v, "warm") {
					warmed[r.Partition] = true
					return
				}
				seen[v]++
			})
			mu.Unlock()
		}
	}
	var wg sync.WaitGroup
	for i := range 2 {
		cl := client(t, ib.addr(), kgo.ShareGroup(group), kgo.ConsumeTopics(topic))
		wg.Add(1)
		go func() {
			defer wg.Done()
			consume(fmt.Sprintf("consumer %d", i), cl)
		}()
	}
	defer wg.Wait()
	defer cancel()

	// share.auto.offset.reset is latest: produce warm-up records to every
	// partition until a consumer got one from each, so the share-partitions
	// exist before the records counted.
	prod := client(t, ib.addr(), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	waitFor(t, 60*time.Second, func() error {
		mu.Lock()
		missing := []int32{}
		for p := range int32(3) {
			if !warmed[p] {
				missing = append(missing, p)
			}
		}
		mu.Unlock()
		for _, p := range missing {
			if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("warm"), Partition: p}).FirstErr(); err != nil {
				return err
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("no warm-up record consumed yet from partitions %v", missing)
		}
		return nil
	})
	for i := range n {
		prod.Produce(ctx, &kgo.Record{Value: fmt.Appendf(nil, "r%04d", i), Partition: int32(i % 3)}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) < n {
			return fmt.Errorf("%d of %d records consumed", len(seen), n)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	for i := range n {
		if c := seen[fmt.Sprintf("r%04d", i)]; c != 1 {
			t.Errorf("record r%04d delivered %d times, want once", i, c)
		}
	}
}
