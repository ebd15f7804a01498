package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// topicReadyTimeout bounds the wait for a created topic to have leaders.
const topicReadyTimeout = 30 * time.Second

// errTopicNotReady means a topic's partitions did not all get a leader in time.
var errTopicNotReady = errors.New("sluice-bench: topic not ready")

// errP99Exceeded means produce p99 latency was not below --max-p99.
var errP99Exceeded = errors.New("sluice-bench: produce p99 not below --max-p99")

// bench is one benchmark run against one broker (or cluster).
type bench struct {
	cfg     *config
	log     *slog.Logger
	seeds   []string
	broker  *cpuReader // nil: broker CPU not measured
	client  cpuReader  // this process
	adm     *kadm.Client
	admCl   *kgo.Client
	res     *result
	cluster *kfake.Cluster // --fake only

	// produced holds the sequence numbers of the records the produce phase
	// wrote (with --txn-records: those of committed transactions; without,
	// every record handed to the client, as a failed one fails the run
	// before the check), for the consume phase's check.
	produced []seqRange
	// sent is how many records the produce phase handed to the client.
	sent int64
	// producers is every producer client's part of the produce phase;
	// with more than one (--producers) the consume phase checks each
	// client's records by producer id.
	producers []*producerRun
	// createdTopic is whether this run created the topic, so that what the
	// consume phase reads is what the produce phase wrote.
	createdTopic bool
}

// runBench runs the benchmark c describes. The returned result is filled as
// far as the run got, even when the error is not nil.
func runBench(ctx context.Context, c config, log *slog.Logger) (*result, error) {
	if c.topic == "" {
		c.topic = "sluice-bench-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	b := &bench{cfg: &c, log: log, seeds: c.brokers, client: newCPUReader(0), res: newResult(&c)}
	err := b.run(ctx)
	if err != nil {
		b.res.Error = err.Error()
	}
	return b.res, err
}

func newResult(c *config) *result {
	return &result{
		Label: c.label, Target: c.target, Brokers: strings.Join(c.brokers, ","), Fake: c.fake,
		Topic: c.topic, TopicConfigs: c.topicConfigs, Partitions: c.partitions, RecordSize: c.recordSize,
		Acks: c.acks, Rate: c.rate, Linger: c.linger.String(), MaxInflight: c.maxInflight,
		Idempotent: c.idempotent, OnePerRequest: c.onePerRequest, Mode: c.mode,
		TxnRecords: c.txnRecords, TxnAbortEvery: c.txnAbortEvery, Isolation: c.isolation,
		RatioTo: c.ratioTo, MinRatio: c.minRatio,
	}
}

func (b *bench) run(ctx context.Context) error {
	if b.cfg.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.cfg.timeout)
		defer cancel()
	}
	err := b.setup()
	defer b.close()
	if err != nil {
		return err
	}
	if b.cfg.deleteTopic {
		defer b.deleteTopic(ctx)
	}
	if b.cfg.mode == modeFlood {
		if err := b.ensureTopic(ctx); err != nil {
			return err
		}
		return b.flood(ctx)
	}
	if b.cfg.mode == modeE2E {
		if err := b.ensureTopic(ctx); err != nil {
			return err
		}
		if err := b.e2e(ctx); err != nil {
			return err
		}
		return b.checkP99()
	}
	if b.cfg.mode == modeShare || b.cfg.mode == modeGroup {
		if err := b.ensureTopic(ctx); err != nil {
			return err
		}
		if err := b.produce(ctx); err != nil {
			return err
		}
		return b.groupConsume(ctx)
	}
	if b.cfg.mode != modeConsume {
		if err := b.ensureTopic(ctx); err != nil {
			return err
		}
		if err := b.produce(ctx); err != nil {
			return b.afterFailedTxns(ctx, err, b.consume)
		}
	}
	if b.cfg.mode != modeProduce {
		if err := b.consume(ctx); err != nil {
			return err
		}
	}
	return b.checkP99()
}

// afterFailedTxns runs check (the consume phase) after transactional
// produce failed with err, so the run still reports what a consumer reads:
// the transactions that committed, and none of those that failed or were
// aborted. A broker that fails a commit but makes its records readable
// anyway shows up here. It returns err joined with check's error.
func (b *bench) afterFailedTxns(ctx context.Context, err error, check func(context.Context) error) error {
	// Only read_committed has a known answer here: read_uncommitted would
	// read the failed transaction's appended records but not its refused ones.
	if b.cfg.txnRecords == 0 || b.cfg.isolation != readCommitted || b.cfg.mode == modeProduce ||
		!b.verifies() || ctx.Err() != nil {
		return err
	}
	b.res.Notes = append(b.res.Notes, "produce failed; the consumer still checked what it read against the committed transactions")
	return errors.Join(err, check(ctx))
}

// checkP99 applies --max-p99 and returns errP99Exceeded if it failed.
func (b *bench) checkP99() error {
	b.check()
	if b.res.P99OK != nil && !*b.res.P99OK {
		return fmt.Errorf("%w: %.3f ms, limit %.3f ms", errP99Exceeded, b.res.Produce.Latency.P99Ms, b.res.MaxP99Ms)
	}
	return nil
}

// setup starts the in-process fake if asked, picks whose CPU to measure,
// and opens the admin client.
func (b *bench) setup() error {
	switch {
	case b.cfg.fake:
		cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
		if err != nil {
			return fmt.Errorf("start kfake: %w", err)
		}
		b.cluster = cluster
		b.seeds = cluster.ListenAddrs()
		b.res.Brokers = strings.Join(b.seeds, ",")
		self := newCPUReader(0)
		b.broker = &self
		b.res.CPUScope = "this process: in-process kfake broker AND the benchmark client"
		b.res.Notes = append(b.res.Notes, "broker_cpu includes the client; use --serve-fake and --broker-pid to measure the fake alone")
	case b.cfg.brokerPID != 0:
		r := newCPUReader(b.cfg.brokerPID)
		if _, err := r.Read(); err != nil {
			return fmt.Errorf("--broker-pid %d: %w", b.cfg.brokerPID, err)
		}
		b.broker = &r
		b.res.CPUScope = "broker pid " + strconv.Itoa(b.cfg.brokerPID)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.seeds...))
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	b.admCl, b.adm = cl, kadm.NewClient(cl)
	return nil
}

// close releases what setup opened, however far it got.
func (b *bench) close() {
	if b.admCl != nil {
		b.admCl.Close()
	}
	if b.cluster != nil {
		b.cluster.Close()
	}
}

// ensureTopic creates the topic, or uses it as it is if it already exists,
// then waits until every partition has a leader.
func (b *bench) ensureTopic(ctx context.Context) error {
	c := b.cfg
	configs := make(map[string]*string, len(c.topicConfigs))
	for k, v := range c.topicConfigs {
		configs[k] = &v
	}
	err := b.createTopic(ctx, configs)
	switch {
	case errors.Is(err, kerr.TopicAlreadyExists):
		b.res.Notes = append(b.res.Notes, "topic already existed: --partitions, --replication-factor and --topic-config were not applied")
	case err != nil:
		return fmt.Errorf("create topic %q: %w", c.topic, err)
	default:
		b.createdTopic = true
		b.log.Info("created topic", "topic", c.topic, "partitions", c.partitions, "configs", c.topicConfigs)
	}
	return b.waitTopicReady(ctx)
}

// createTopic issues CreateTopics, retrying refused connections and errors
// Kafka marks retriable (a broker that has just started may not listen yet,
// or not have a controller yet) for up to topicReadyTimeout.
func (b *bench) createTopic(ctx context.Context, configs map[string]*string) error {
	c := b.cfg
	deadline := time.Now().Add(topicReadyTimeout)
	for {
		resp, err := b.adm.CreateTopic(ctx, c.partitions, c.replication, configs, c.topic)
		if err == nil {
			err = resp.Err
		}
		retry := kerr.IsRetriable(err) || errors.Is(err, syscall.ECONNREFUSED)
		if err == nil || !retry || time.Now().After(deadline) {
			return err
		}
		b.log.Info("create topic: retrying", "topic", c.topic, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (b *bench) waitTopicReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, topicReadyTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		n, err := b.topicLeaders(ctx)
		if err == nil {
			b.res.Partitions = n
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %q after %s: %w", errTopicNotReady, b.cfg.topic, topicReadyTimeout, last)
		case <-tick.C:
		}
	}
}

// topicLeaders returns the partition count once every partition has a leader.
func (b *bench) topicLeaders(ctx context.Context) (int32, error) {
	details, err := b.adm.ListTopics(ctx, b.cfg.topic)
	if err != nil {
		return 0, err
	}
	td, ok := details[b.cfg.topic]
	switch {
	case !ok:
		return 0, errors.New("not in metadata")
	case td.Err != nil:
		return 0, td.Err
	case len(td.Partitions) == 0:
		return 0, errors.New("no partitions")
	}
	for _, p := range td.Partitions {
		if p.Err != nil {
			return 0, fmt.Errorf("partition %d: %w", p.Partition, p.Err)
		}
		if p.Leader < 0 {
			return 0, fmt.Errorf("partition %d has no leader", p.Partition)
		}
	}
	return int32(len(td.Partitions)), nil
}

// produce runs the produce phase into b.res.Produce (and b.res.Txn): one
// producer client, or --producers clients running concurrently, whose
// figures add up (records/s over the time from the first client's first
// Produce call to the last client's end).
func (b *bench) produce(ctx context.Context) error {
	n := max(b.cfg.producers, 1)
	b.log.Info("producing", "topic", b.cfg.topic, "records", b.cfg.records, "duration", b.cfg.duration,
		"rate", b.cfg.rate, "txn_records", b.cfg.txnRecords, "producers", n)
	runs := make([]*producerRun, n)
	spans := b.startCPU()
	var wg sync.WaitGroup
	for i := range runs {
		runs[i] = &producerRun{stats: newProducerStats()}
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.runProducer(ctx, producerConfig(b.cfg, i), runs[i])
		}()
	}
	wg.Wait()
	start, end := runs[0].start, runs[0].end
	all := make([]*producerStats, n)
	var errs []error
	for i, r := range runs {
		all[i] = r.stats
		if r.start.Before(start) {
			start = r.start
		}
		if r.end.After(end) {
			end = r.end
		}
		if r.err != nil {
			if n > 1 {
				r.err = fmt.Errorf("producer %d: %w", i, r.err)
			}
			errs = append(errs, r.err)
		}
	}
	err := errors.Join(errs...)
	stats := mergeProducerStats(all)
	var p *phase
	if b.cfg.txnRecords > 0 {
		ts := newTxnStats(b.cfg.txnRecords)
		for _, r := range runs {
			ts.add(r.txn)
		}
		b.res.Txn = ts
		p = stats.phase(start, end)
		b.sent = p.Records + p.Errors
		ts.finish(p, start, end)
	} else {
		p = stats.phase(start, end)
		b.sent = p.Records + p.Errors
	}
	b.producers = runs
	if n == 1 {
		b.produced = runs[0].produced
	}
	if n > 1 {
		b.res.Producers = n
	}
	p.TargetRate = b.cfg.rate
	b.stopCPU(spans, p, end.Sub(start))
	b.res.Produce = p
	if err != nil {
		return err
	}
	if p.Errors > 0 {
		return fmt.Errorf("%d of %d records failed, first: %s", p.Errors, p.Errors+p.Records, p.FirstError)
	}
	if b.cfg.rate > 0 && p.RecordsPS < 0.95*b.cfg.rate && (b.res.Txn == nil || b.res.Txn.Aborted == 0) {
		b.res.Notes = append(b.res.Notes, fmt.Sprintf("achieved %.0f rec/s, below the target %.0f: latency was measured under less load than asked", p.RecordsPS, b.cfg.rate))
	}
	return nil
}

// producerRun is what one producer client of the produce phase did.
type producerRun struct {
	stats *producerStats
	txn   *txnStats // --txn-records only
	// start is the client's first Produce call; end its last
	// acknowledgement, or with --txn-records the end of its last
	// EndTransaction.
	start, end time.Time
	// produced holds the sequence numbers (per client, from 0) the
	// consumer should read of this client: with --txn-records those of
	// committed transactions, otherwise every record handed to it.
	produced []seqRange
	sent     int64 // records handed to the client
	err      error
}

// producerConfig is the config of producer client i of --producers: its
// index (for its transactional id) and its share of --records.
func producerConfig(c *config, i int) *config {
	pc := *c
	pc.producerIndex = i
	if n := int64(max(c.producers, 1)); c.records > 0 && n > 1 {
		pc.records = c.records / n
		if int64(i) < c.records%n {
			pc.records++
		}
	}
	return &pc
}

// runProducer runs one producer client into r.
func (b *bench) runProducer(ctx context.Context, c *config, r *producerRun) {
	r.start = time.Now()
	r.end = r.start
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.seeds...)}, producerOpts(c, r.stats)...)...)
	if err != nil {
		r.err = fmt.Errorf("producer client: %w", err)
		return
	}
	defer cl.Close()
	if c.txnRecords > 0 {
		r.txn = newTxnStats(c.txnRecords)
		r.start, r.end, r.err = txnLoop(ctx, cl, c, r.stats, r.txn)
		r.produced = r.txn.committedSeqs
		r.sent = r.stats.acked.Load() + r.stats.errs.Load()
		return
	}
	r.start, r.err = produceLoop(ctx, cl, c, r.stats)
	r.end = time.Now()
	r.sent = r.stats.acked.Load() + r.stats.errs.Load()
	r.produced = []seqRange{{0, r.sent}}
}

// consume runs the consume phase into b.res.Consume, then checks what it
// read when the run produced into a topic it created (see verification).
func (b *bench) consume(ctx context.Context) error {
	ranges, err := listRanges(ctx, b.adm, b.cfg.topic)
	if err != nil {
		return err
	}
	b.res.Partitions = int32(len(ranges))
	b.log.Info("consuming", "topic", b.cfg.topic, "partitions", len(ranges), "isolation", b.cfg.isolation)
	spans := b.startCPU()
	start := time.Now()
	var byPID map[int64]int64
	if len(b.producers) > 1 {
		byPID = make(map[int64]int64)
	}
	p, err := consumeAll(ctx, b.seeds, b.cfg.topic, b.cfg.isolation, ranges, byPID)
	if p != nil {
		b.stopCPU(spans, p, time.Since(start))
		b.res.Consume = p
	}
	if err != nil {
		return err
	}
	switch {
	case !b.verifies():
	case byPID != nil:
		b.res.Verify = verifyProducers(b.cfg.isolation, b.producerExpects(), byPID)
		return b.res.Verify.err()
	default:
		b.res.Verify = verifyCount(b.cfg.isolation, b.expected(), p.Records)
		return b.res.Verify.err()
	}
	return nil
}

// verifies reports whether the consume phase checks what it read: for
// idempotent and transactional producers, on a topic this run created and
// produced into (even if producing failed part way).
func (b *bench) verifies() bool {
	return b.cfg.idempotent && b.createdTopic && b.res.Produce != nil
}

// expected is the sequence numbers the consumer should read: with
// read_committed those of committed transactions, otherwise every record
// handed to the producer (the run fails before the check if any of them
// was not acknowledged).
func (b *bench) expected() []seqRange {
	if b.cfg.isolation == readCommitted || b.res.Txn == nil {
		return b.produced
	}
	return []seqRange{{0, b.sent}}
}

// producerExpects is, per producer client, its producer ids and the count
// of its records the consumer should read (as expected, per client).
func (b *bench) producerExpects() []producerExpect {
	out := make([]producerExpect, len(b.producers))
	for i, r := range b.producers {
		want := r.produced
		if b.cfg.isolation != readCommitted && r.txn != nil {
			want = []seqRange{{0, r.sent}}
		}
		out[i] = producerExpect{pids: r.stats.producerIDs(), expected: countRanges(want)}
	}
	return out
}

type cpuSpans struct{ broker, client *cpuSpan }

func (b *bench) startCPU() cpuSpans {
	s := cpuSpans{client: startCPUSpan(b.client)}
	if b.broker != nil {
		s.broker = startCPUSpan(*b.broker)
	}
	return s
}

// stopCPU fills p's CPU figures; a failed /proc read becomes a note.
func (b *bench) stopCPU(s cpuSpans, p *phase, wall time.Duration) {
	if s.broker != nil {
		if cpu, err := s.broker.Stop(); err != nil {
			b.res.Notes = append(b.res.Notes, "broker cpu: "+err.Error())
		} else {
			p.BrokerCPU = newCPUUsage(cpu, wall, p.Records)
		}
	}
	if !b.cfg.fake {
		if cpu, err := s.client.Stop(); err == nil {
			p.ClientCPU = newCPUUsage(cpu, wall, p.Records)
		}
	}
}

// check applies --max-p99.
func (b *bench) check() {
	if b.cfg.maxP99 <= 0 || b.res.Produce == nil || b.res.Produce.Latency == nil {
		return
	}
	ok := b.res.Produce.Latency.P99Ms < ms(b.cfg.maxP99)
	b.res.MaxP99Ms, b.res.P99OK = ms(b.cfg.maxP99), &ok
}

// deleteTopic removes the topic, even after the run failed or timed out;
// failing to is only worth a note.
func (b *bench) deleteTopic(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	resp, err := b.adm.DeleteTopic(ctx, b.cfg.topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		b.res.Notes = append(b.res.Notes, "delete topic: "+err.Error())
	}
}
