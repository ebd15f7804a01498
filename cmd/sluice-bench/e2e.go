package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// e2eFetchMaxWait is the e2e consumer's fetch.max.wait, as the flood probe
// and bench/run.sh's librdkafka cell use: a broker that does not answer a
// waiting fetch when records become readable shows up as up to this much
// latency, not as kgo's 5 s default.
const e2eFetchMaxWait = 100 * time.Millisecond

// e2ePollInterval is how long one poll of the e2e consumer waits for
// records before it looks whether the producer has finished.
const e2ePollInterval = 100 * time.Millisecond

// e2e runs --mode e2e. A consumer on its own connection, at --isolation,
// reads the topic from its start while the produce phase runs at --rate
// (idempotent, transactional with --txn-records, or plain), and times every
// record from the stamp in its value to the poll that returned it. With
// transactions a record becomes readable to read_committed only once its
// transaction has committed, so its latency includes the rest of the
// transaction, the commit and the marker. When the producer is done the
// consumer reads on to the end offsets the topic has then, and the records
// it read are checked by sequence number (see verification).
func (b *bench) e2e(ctx context.Context) error {
	offsets := make(map[int32]kgo.Offset, b.res.Partitions)
	for p := range b.res.Partitions {
		offsets[p] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(append(consumerOpts(b.cfg.isolation), kgo.SeedBrokers(b.seeds...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{b.cfg.topic: offsets}),
		kgo.FetchMaxWait(e2eFetchMaxWait))...)
	if err != nil {
		return fmt.Errorf("e2e consumer: %w", err)
	}
	defer cl.Close()
	c := newE2EConsumer(cl)
	consCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.run(consCtx); close(done) }()
	defer func() { // stop the consumer if finishE2E did not wait for it
		cancel()
		<-done
	}()

	if err := b.produce(ctx); err != nil {
		return b.afterFailedTxns(ctx, err, func(ctx context.Context) error { return b.finishE2E(ctx, c, done) })
	}
	return b.finishE2E(ctx, c, done)
}

// finishE2E lets the consumer read to the topic's current end offsets,
// waits for it (done), and checks what it read.
func (b *bench) finishE2E(ctx context.Context, c *e2eConsumer, done <-chan error) error {
	ranges, err := listRanges(ctx, b.adm, b.cfg.topic)
	if err != nil {
		return err
	}
	c.ends <- ranges
	err = <-done
	b.res.E2E, b.res.E2ERecords = latencyOf(c.hist), int64(c.hist.Count())
	if c.errors > 0 {
		b.res.Notes = append(b.res.Notes, fmt.Sprintf("e2e consumer: %d fetch errors, first: %v", c.errors, c.firstErr))
	}
	if err != nil {
		return err
	}
	if b.verifies() {
		b.res.Verify = verifySeqs(b.cfg.isolation, b.expected(), c.seen)
		return b.res.Verify.err()
	}
	return nil
}

// e2eConsumer is the consuming side of --mode e2e. Its fields belong to
// the goroutine running run until run returns.
type e2eConsumer struct {
	cl   *kgo.Client
	ends chan map[int32]consumeRange // the producer is done: read up to these

	hist     *histogram
	seen     *seqSet
	next     map[int32]int64 // per partition: the offset after the last record read
	errors   int64
	firstErr error
}

func newE2EConsumer(cl *kgo.Client) *e2eConsumer {
	return &e2eConsumer{cl: cl, ends: make(chan map[int32]consumeRange, 1), hist: newHistogram(),
		seen: &seqSet{}, next: make(map[int32]int64)}
}

// run polls until the end offsets arrive on c.ends and every partition has
// been read up to them, ctx ends (nil: the producer failed, and said so),
// nothing arrives for stallTimeout after the end offsets are known, or
// fetches fail more than maxFetchErrors times.
func (c *e2eConsumer) run(ctx context.Context) error {
	var pending map[int32]int64 // nil until the end offsets are known
	lastProgress := time.Now()
	for pending == nil || len(pending) > 0 {
		select {
		case ranges := <-c.ends:
			pending = c.remaining(ranges)
			lastProgress = time.Now()
			continue
		default:
		}
		pollCtx, cancel := context.WithTimeout(ctx, e2ePollInterval)
		fetches := c.cl.PollFetches(pollCtx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if c.take(fetches, pending) {
			lastProgress = time.Now()
		}
		switch {
		case c.errors > maxFetchErrors:
			return fmt.Errorf("e2e consume: %d fetch errors, first: %w", c.errors, c.firstErr)
		case pending != nil && time.Since(lastProgress) > stallTimeout:
			return fmt.Errorf("%w: e2e consumer read nothing for %s with %d partitions short of their end offsets",
				errConsumeStalled, stallTimeout, len(pending))
		}
	}
	return nil
}

// remaining is the partitions of ranges not yet read to their end.
func (c *e2eConsumer) remaining(ranges map[int32]consumeRange) map[int32]int64 {
	pending := make(map[int32]int64)
	for p, r := range ranges {
		if r.end > max(r.start, c.next[p]) {
			pending[p] = r.end
		}
	}
	return pending
}

// take times and notes the records of one poll and reports whether there
// were any; partitions read to their end leave pending.
func (c *e2eConsumer) take(fetches kgo.Fetches, pending map[int32]int64) bool {
	now := time.Now()
	fetches.EachError(func(_ string, _ int32, err error) {
		if errors.Is(err, context.DeadlineExceeded) {
			return // an idle poll
		}
		c.errors++
		if c.firstErr == nil {
			c.firstErr = err
		}
	})
	got := false
	fetches.EachRecord(func(r *kgo.Record) {
		got = true
		c.next[r.Partition] = r.Offset + 1
		if end, ok := pending[r.Partition]; ok && r.Offset+1 >= end {
			delete(pending, r.Partition)
		}
		if r.Attrs.IsControl() {
			return
		}
		at, seq, ok := readStamp(r.Value)
		if !ok {
			c.seen.add(-1)
			return
		}
		c.hist.Record(now.Sub(at))
		c.seen.add(seq)
	})
	return got
}
