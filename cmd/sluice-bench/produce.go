package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kgo"
)

// defaultBatchMaxBytes is kgo's default record batch cap (Kafka's
// max.message.bytes default), used for every topic but the benchmark's when
// --one-per-request narrows the cap for that one topic.
const defaultBatchMaxBytes = 1000012

// recordBatchOverhead is the largest encoded size of an empty v2 record
// batch as kgo counts it when deciding whether a record fits: the 61-byte
// batch header plus a 4-byte length prefix (flexible produce versions use a
// uvarint prefix, which is shorter for any batch under 256 MiB).
const recordBatchOverhead = 61 + 4

// recordWireSize is the encoded size, length prefix included, of a record
// with no key, no headers, a value of valueSize bytes, and timestamp and
// offset deltas of zero.
func recordWireSize(valueSize int) int {
	body := 1 + // attributes
		1 + // timestamp delta 0
		1 + // offset delta 0
		kbin.VarintLen(-1) + // null key
		kbin.VarintLen(int32(valueSize)) + valueSize +
		kbin.VarintLen(0) // header count
	return kbin.VarintLen(int32(body)) + body
}

// oneRecordBatchLimit is a record batch cap that one record of valueSize
// bytes fits under and two never do: the one-record batch plus half a
// record. A second record's deltas can only make it larger, so it still
// does not fit.
func oneRecordBatchLimit(valueSize int) int32 {
	rec := recordWireSize(valueSize)
	return int32(recordBatchOverhead + rec + rec/2)
}

// producerOpts are the kgo options for the benchmark producer.
func producerOpts(c *config, hooks kgo.Hook) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.ProducerBatchCompression(codecOf(c.compression)),
		kgo.ProducerLinger(c.linger),
		kgo.WithHooks(hooks),
	}
	if c.acks == "all" {
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	} else {
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()))
	}
	if !c.idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(c.maxInflight))
	}
	if c.txnRecords > 0 {
		opts = append(opts, kgo.TransactionalID(transactionalID(c)), kgo.TransactionTimeout(c.txnTimeout))
	}
	if c.onePerRequest {
		topic, limit := c.topic, oneRecordBatchLimit(c.recordSize)
		opts = append(opts, kgo.ProducerBatchMaxBytesFn(func(t string) int32 {
			if t == topic {
				return limit
			}
			return defaultBatchMaxBytes
		}))
	}
	return opts
}

// producerStats collects what the promise callbacks and the wire hooks see.
// Promises for different partitions may run concurrently, hence mu.
type producerStats struct {
	acked, bytes, errs atomic.Int64

	requests, batches, maxBatch atomic.Int64

	mu struct {
		sync.Mutex
		hist     *histogram
		firstErr error
		lastAck  time.Time
		inflight map[int32]int64 // produce requests written but not yet answered, per broker
		maxSeen  int64
		// pids counts acknowledged records per producer id, so the
		// consume phase can tell producers apart (--producers).
		pids map[int64]int64
	}
}

func newProducerStats() *producerStats {
	s := &producerStats{}
	s.mu.hist = newHistogram()
	s.mu.inflight = make(map[int32]int64)
	s.mu.pids = make(map[int64]int64)
	return s
}

// mergeProducerStats sums the stats of a run's producer clients, each of
// which has finished, into one for the phase figures: counters add up,
// histograms merge, the last acknowledgement is the latest and the largest
// batch and in-flight counts are the largest of any client.
func mergeProducerStats(all []*producerStats) *producerStats {
	m := newProducerStats()
	for _, s := range all {
		m.acked.Add(s.acked.Load())
		m.bytes.Add(s.bytes.Load())
		m.errs.Add(s.errs.Load())
		m.requests.Add(s.requests.Load())
		m.batches.Add(s.batches.Load())
		m.maxBatch.Store(max(m.maxBatch.Load(), s.maxBatch.Load()))
		s.mu.Lock()
		m.mu.hist.Merge(s.mu.hist)
		if m.mu.firstErr == nil {
			m.mu.firstErr = s.mu.firstErr
		}
		if s.mu.lastAck.After(m.mu.lastAck) {
			m.mu.lastAck = s.mu.lastAck
		}
		m.mu.maxSeen = max(m.mu.maxSeen, s.mu.maxSeen)
		for pid, n := range s.mu.pids {
			m.mu.pids[pid] += n
		}
		s.mu.Unlock()
	}
	return m
}

// producerIDs returns the producer ids of the acknowledged records, sorted.
func (s *producerStats) producerIDs() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.mu.pids))
}

// promise returns the callback for a record handed to Produce at start.
func (s *producerStats) promise(start time.Time) func(*kgo.Record, error) {
	return func(r *kgo.Record, err error) { s.finish(r, err, start) }
}

func (s *producerStats) finish(r *kgo.Record, err error, start time.Time) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.errs.Add(1)
		if s.mu.firstErr == nil {
			s.mu.firstErr = err
		}
		return
	}
	s.acked.Add(1)
	s.bytes.Add(int64(len(r.Value)))
	s.mu.pids[r.ProducerID]++
	s.mu.hist.Record(now.Sub(start))
	s.mu.lastAck = now
}

// OnBrokerWrite counts produce requests and how many are in flight.
func (s *producerStats) OnBrokerWrite(meta kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key != 0 || err != nil {
		return
	}
	s.requests.Add(1)
	s.mu.Lock()
	s.mu.inflight[meta.NodeID]++
	s.mu.maxSeen = max(s.mu.maxSeen, s.mu.inflight[meta.NodeID])
	s.mu.Unlock()
}

// OnBrokerRead notes a produce response. kgo runs the write hook before it
// queues the response read, so a read never overtakes its write; the floor at
// zero only guards against a read kgo reports for a request whose write
// failed.
func (s *producerStats) OnBrokerRead(meta kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, _ error) {
	if key != 0 {
		return
	}
	s.mu.Lock()
	if s.mu.inflight[meta.NodeID] > 0 {
		s.mu.inflight[meta.NodeID]--
	}
	s.mu.Unlock()
}

// OnProduceBatchWritten counts acknowledged batches and their largest size.
func (s *producerStats) OnProduceBatchWritten(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.ProduceBatchMetrics) {
	s.batches.Add(1)
	n := int64(m.NumRecords)
	for {
		cur := s.maxBatch.Load()
		if n <= cur || s.maxBatch.CompareAndSwap(cur, n) {
			return
		}
	}
}

// phase snapshots the counters once every promise has run.
func (s *producerStats) phase(start time.Time, end time.Time) *phase {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &phase{
		Records: s.acked.Load(), Bytes: s.bytes.Load(), Errors: s.errs.Load(),
		Latency: latencyOf(s.mu.hist), Requests: s.requests.Load(), Batches: s.batches.Load(),
		MaxBatchRecords: s.maxBatch.Load(), MaxInflightSeen: s.mu.maxSeen,
	}
	if s.mu.firstErr != nil {
		p.FirstError = s.mu.firstErr.Error()
	}
	if !s.mu.lastAck.IsZero() {
		end = s.mu.lastAck
	}
	p.fillRates(end.Sub(start))
	return p
}

// makeValue returns valueSize pseudo-random bytes from a fixed seed, so a
// broker or link that compresses gains nothing and runs are repeatable.
func makeValue(valueSize int) []byte {
	rng := rand.NewChaCha8([32]byte{'s', 'l', 'u', 'i', 'c', 'e'})
	b := make([]byte, valueSize)
	_, _ = rng.Read(b) // ChaCha8.Read never fails
	return b
}

// produceLoop hands records to cl until --records or --duration is reached,
// pacing them at --rate when set, then flushes. It returns when start was
// (the first Produce call) and when producing stopped.
func produceLoop(ctx context.Context, cl *kgo.Client, c *config, s *producerStats) (start time.Time, err error) {
	snd := newSender(cl, c, s)
	defer snd.stop()
	var deadline time.Time
	if c.duration > 0 {
		deadline = snd.start.Add(c.duration)
	}
	for c.records == 0 || snd.sent < c.records {
		if !snd.next(ctx, deadline) {
			break
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return snd.start, fmt.Errorf("flush: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return snd.start, fmt.Errorf("produce: %w", err)
	}
	return snd.start, nil
}

// stampSize is the prefix --mode e2e writes at the start of every value:
// the time the record was handed to the client (Unix nanoseconds) and its
// sequence number in the run, both big-endian uint64.
const stampSize = 16

// sender hands records to a producer client one at a time, paced at --rate,
// each with a promise into the producer's stats. Values are one shared
// pseudo-random buffer, or with stamp a copy of it per record that starts
// with the record's stamp (see stampSize).
type sender struct {
	cl    *kgo.Client
	topic string
	value []byte
	stamp bool
	keyed bool // every key is the record's sequence number, 8 bytes big-endian (--mode share/group)
	pace  *pacer
	stats *producerStats
	start time.Time // when the sender was made: record n is due at start + n/rate
	sent  int64     // records handed to the client; the next one's sequence number
}

func newSender(cl *kgo.Client, c *config, s *producerStats) *sender {
	return &sender{cl: cl, topic: c.topic, value: makeValue(c.recordSize), stamp: c.mode == modeE2E,
		keyed: c.mode == modeShare || c.mode == modeGroup,
		pace:  newPacer(c.rate), stats: s, start: time.Now()}
}

// next hands the next record to the client once it is due, unless ctx ends
// or deadline (zero: none) passes first; it reports whether it did.
func (s *sender) next(ctx context.Context, deadline time.Time) bool {
	for {
		now := time.Now()
		if ctx.Err() != nil || (!deadline.IsZero() && !now.Before(deadline)) {
			return false
		}
		if s.pace.wait(ctx, s.start, now, s.sent) {
			continue // re-read the clock after sleeping
		}
		value := s.value
		if s.stamp {
			value = stamped(s.value, now, s.sent)
		}
		r := &kgo.Record{Topic: s.topic, Value: value}
		if s.keyed {
			r.Key = binary.BigEndian.AppendUint64(nil, uint64(s.sent))
		}
		s.cl.Produce(ctx, r, s.stats.promise(now))
		s.sent++
		return true
	}
}

func (s *sender) stop() { s.pace.stop() }

// stamped returns a copy of value that starts with the stamp of the record
// with sequence number seq, handed to the client at now.
func stamped(value []byte, now time.Time, seq int64) []byte {
	v := make([]byte, len(value))
	copy(v, value)
	binary.BigEndian.PutUint64(v, uint64(now.UnixNano()))
	binary.BigEndian.PutUint64(v[8:], uint64(seq))
	return v
}

// readStamp returns the production time and sequence number a stamped
// value starts with; ok is false for a value too short to hold them.
func readStamp(value []byte) (at time.Time, seq int64, ok bool) {
	if len(value) < stampSize {
		return time.Time{}, 0, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(value))), int64(binary.BigEndian.Uint64(value[8:])), true
}

// pacer holds a producer to a fixed rate: record n is due at start + n/rate.
// When the loop is ahead it sleeps until the next record is due; after a
// late wake-up every overdue record goes out at once, so the average rate
// holds even though timer resolution is coarser than 1/rate.
type pacer struct {
	rate  float64
	timer *time.Timer
}

func newPacer(rate float64) *pacer { return &pacer{rate: rate} }

// wait sleeps if record number sent is not yet due and reports whether it
// did. A zero rate never waits.
func (p *pacer) wait(ctx context.Context, start, now time.Time, sent int64) bool {
	if p.rate <= 0 {
		return false
	}
	due := start.Add(time.Duration(float64(sent) / p.rate * float64(time.Second)))
	d := due.Sub(now)
	if d <= 0 {
		return false
	}
	if p.timer == nil {
		p.timer = time.NewTimer(d)
	} else {
		p.timer.Reset(d)
	}
	select {
	case <-p.timer.C:
	case <-ctx.Done():
	}
	return true
}

func (p *pacer) stop() {
	if p.timer != nil {
		p.timer.Stop()
	}
}

// codecOf names the producer codec of --compression.
func codecOf(name string) kgo.CompressionCodec {
	switch name {
	case "lz4":
		return kgo.Lz4Compression()
	case "zstd":
		return kgo.ZstdCompression()
	default:
		return kgo.NoCompression()
	}
}
