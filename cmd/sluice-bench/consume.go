package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// stallTimeout fails the consume phase when no record arrives for this long:
// a broker that stops serving fetches should end the benchmark, not hang it.
const stallTimeout = 30 * time.Second

// maxFetchErrors ends the consume phase when the broker keeps answering
// fetches with errors that kgo surfaces instead of retrying silently.
const maxFetchErrors = 1000

// errConsumeStalled means the consumer received nothing for stallTimeout.
var errConsumeStalled = errors.New("sluice-bench: consumer stalled")

// consumeRange is what there is to read in one partition: [start, end).
type consumeRange struct{ start, end int64 }

// listRanges returns each partition's log start and end offset, as of now.
func listRanges(ctx context.Context, adm *kadm.Client, topic string) (map[int32]consumeRange, error) {
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list start offsets: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	ranges := make(map[int32]consumeRange)
	starts.Each(func(o kadm.ListedOffset) { ranges[o.Partition] = consumeRange{start: o.Offset, end: o.Offset} })
	ends.Each(func(o kadm.ListedOffset) {
		r := ranges[o.Partition]
		r.end = o.Offset
		ranges[o.Partition] = r
	})
	if len(ranges) == 0 {
		return nil, fmt.Errorf("list offsets: topic %q has no partitions", topic)
	}
	return ranges, nil
}

// consumeAll reads every partition of topic from its start offset to the end
// offset it had when this began, with a fresh consumer (no group) at the
// given isolation level. The consumer keeps control records (transaction
// markers): they are not counted, but a partition whose last offset is a
// marker is finished when the marker arrives. A read_committed consumer
// gets no records of aborted transactions, only their markers. A non-nil
// byPID gets the count of (non-control) records per producer id.
func consumeAll(ctx context.Context, seeds []string, topic, isolation string, ranges map[int32]consumeRange,
	byPID map[int64]int64) (*phase, error) {
	offsets := make(map[int32]kgo.Offset)
	pending := make(map[int32]int64) // partition -> end offset still to reach
	for p, r := range ranges {
		if r.end > r.start {
			offsets[p] = kgo.NewOffset().At(r.start)
			pending[p] = r.end
		}
	}
	p := &phase{}
	if len(pending) == 0 {
		return p, nil
	}
	cl, err := kgo.NewClient(append(consumerOpts(isolation), kgo.SeedBrokers(seeds...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}))...)
	if err != nil {
		return nil, fmt.Errorf("consumer client: %w", err)
	}
	defer cl.Close()

	start := time.Now()
	for len(pending) > 0 {
		if err := pollOnce(ctx, cl, p, pending, byPID); err != nil {
			p.fillRates(time.Since(start))
			return p, err
		}
	}
	p.fillRates(time.Since(start))
	return p, nil
}

// consumerOpts are the kgo options every benchmark consumer shares.
func consumerOpts(isolation string) []kgo.Opt {
	level := kgo.ReadUncommitted()
	if isolation == readCommitted {
		level = kgo.ReadCommitted()
	}
	return []kgo.Opt{kgo.FetchIsolationLevel(level), kgo.KeepControlRecords()}
}

// pollOnce runs one poll, counting records and retiring partitions that
// reached their end offset; byPID, when not nil, counts records per
// producer id.
func pollOnce(ctx context.Context, cl *kgo.Client, p *phase, pending map[int32]int64, byPID map[int64]int64) error {
	pollCtx, cancel := context.WithTimeout(ctx, stallTimeout)
	defer cancel()
	fetches := cl.PollFetches(pollCtx)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	if fetches.IsClientClosed() {
		return fmt.Errorf("consume: %w", kgo.ErrClientClosed)
	}
	var fatal error
	fetches.EachError(func(_ string, _ int32, err error) {
		if errors.Is(err, context.DeadlineExceeded) {
			fatal = fmt.Errorf("%w: no record for %s", errConsumeStalled, stallTimeout)
			return
		}
		p.Errors++
		if p.FirstError == "" {
			p.FirstError = err.Error()
		}
	})
	fetches.EachRecord(func(r *kgo.Record) {
		if !r.Attrs.IsControl() {
			p.Records++
			p.Bytes += int64(len(r.Key) + len(r.Value))
			if byPID != nil {
				byPID[r.ProducerID]++
			}
		}
		if end, ok := pending[r.Partition]; ok && r.Offset+1 >= end {
			delete(pending, r.Partition)
		}
	})
	if fatal == nil && p.Errors > maxFetchErrors {
		fatal = fmt.Errorf("consume: %d fetch errors, first: %s", p.Errors, p.FirstError)
	}
	return fatal
}
