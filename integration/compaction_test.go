package integration

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestCompactedTopicKeepsLatestPerKey writes many updates of a few keys to a
// cleanup.policy=compact topic with tiny segments and waits for the cleaner:
// reading from the start must then give each key's latest value, with far
// fewer records than were written, and offsets unchanged.
func TestCompactedTopicKeepsLatestPerKey(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, map[string]string{"log.flush.scheduler.interval.ms": "100"})
	cfg := func(s string) *string { return &s }
	createTopic(t, ib.addr(), "compacted", 1, map[string]*string{
		"cleanup.policy":            cfg("compact"),
		"segment.bytes":             cfg("4096"),
		"min.cleanable.dirty.ratio": cfg("0.01"),
		"delete.retention.ms":       cfg("0"),
	})
	cl := client(t, ib.addr(), kgo.DefaultProduceTopic("compacted"), kgo.ProducerLinger(0))
	ctx := context.Background()
	const keys, rounds = 10, 100
	for r := 0; r < rounds; r++ {
		for k := 0; k < keys; k++ {
			rec := &kgo.Record{Key: []byte(fmt.Sprintf("k%d", k)), Value: []byte(fmt.Sprintf("r%d", r))}
			if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A tombstone for k0: once cleaned, k0 disappears.
	if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("k0")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// Kafka refuses records without a key on compacted topics.
	err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("no key")}).FirstErr()
	if !errors.Is(err, kerr.InvalidRecord) {
		t.Fatalf("keyless record on a compacted topic: %v, want INVALID_RECORD", err)
	}
	total := keys*rounds + 1
	waitFor(t, 60*time.Second, func() error {
		cons := client(t, ib.addr(), kgo.ConsumeTopics("compacted"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchMaxWait(200*time.Millisecond))
		defer cons.Close()
		latest := map[string]string{}
		count := 0
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		lastOffset := int64(-1)
		for lastOffset < int64(total-1) {
			fs := cons.PollFetches(pctx)
			if pctx.Err() != nil {
				return fmt.Errorf("read up to offset %d of %d", lastOffset, total-1)
			}
			for _, r := range fs.Records() {
				if r.Offset <= lastOffset {
					return fmt.Errorf("offset %d after %d", r.Offset, lastOffset)
				}
				lastOffset = r.Offset
				count++
				if r.Value == nil {
					delete(latest, string(r.Key))
				} else {
					latest[string(r.Key)] = string(r.Value)
				}
			}
		}
		for k := 1; k < keys; k++ {
			if got := latest[fmt.Sprintf("k%d", k)]; got != fmt.Sprintf("r%d", rounds-1) {
				return fmt.Errorf("k%d = %q after compaction", k, got)
			}
		}
		if count > total/4 {
			return fmt.Errorf("%d of %d records still there: not compacted yet", count, total)
		}
		t.Logf("after compaction %d of %d records remain", count, total)
		return nil
	})
}
