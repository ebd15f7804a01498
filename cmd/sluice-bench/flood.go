package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// floodStats is what --mode flood measured besides the flood's own produce
// phase: the broker's resident memory and the end-to-end latency of a
// probe, a producer at a fixed rate and a consumer on their own
// connections and topic, as a well-behaved application beside the flood
// would see it. Run with --producers 0 it is the same probe on an idle
// broker.
type floodStats struct {
	Producers    int      `json:"producers"`
	ProbeRate    float64  `json:"probe_rate"`
	ProbeRecords int64    `json:"probe_records"`
	Probe        *latency `json:"probe_latency,omitempty"`
	RSSStartMB   float64  `json:"rss_start_mb,omitempty"`
	RSSPeakMB    float64  `json:"rss_peak_mb,omitempty"`
}

// floodBufferedBytes bounds what each flood producer buffers, so that 64
// of them do not hold gigabytes in this process.
const floodBufferedBytes = 8 << 20

// flood runs --mode flood: --producers clients produce to the topic as
// fast as the broker takes records for --duration while the probe runs on
// the topic's -probe companion, and the broker's RSS is sampled.
func (b *bench) flood(ctx context.Context) error {
	c := b.cfg
	probeTopic := c.topic + "-probe"
	if err := b.createProbeTopic(ctx, probeTopic); err != nil {
		return err
	}
	if c.deleteTopic {
		defer b.deleteNamed(ctx, probeTopic)
	}
	fs := &floodStats{Producers: c.producers, ProbeRate: c.probeRate}
	b.res.Flood = fs
	runCtx, cancel := context.WithTimeout(ctx, c.duration)
	defer cancel()

	var wg sync.WaitGroup
	var rss rssPeak
	if pid := b.rssPID(); pid > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); rss.sample(runCtx, pid) }()
	}
	hist := newHistogram()
	probeErr := make(chan error, 2)
	probeCons, err := kgo.NewClient(kgo.SeedBrokers(b.seeds...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{probeTopic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return fmt.Errorf("probe consumer: %w", err)
	}
	defer probeCons.Close()
	wg.Add(2)
	go func() { defer wg.Done(); probeErr <- consumeProbe(runCtx, probeCons, hist) }()
	go func() { defer wg.Done(); probeErr <- b.produceProbe(runCtx, probeTopic) }()

	stats := newProducerStats()
	spans := b.startCPU()
	start := time.Now()
	for range c.producers {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.seeds...), kgo.MaxBufferedBytes(floodBufferedBytes)},
			producerOpts(c, stats)...)...)
		if err != nil {
			cancel()
			wg.Wait()
			return fmt.Errorf("flood producer: %w", err)
		}
		defer cl.Close()
		wg.Add(1)
		go func() { defer wg.Done(); floodLoop(runCtx, cl, c, stats) }()
	}
	wg.Wait()
	end := time.Now()
	p := stats.phase(start, end)
	p.Latency = nil // the flood's own latency is queueing in the client; the probe's is the figure
	if p.Errors > 0 {
		b.res.Notes = append(b.res.Notes, fmt.Sprintf("%d flood records failed, first: %s", p.Errors, p.FirstError))
	}
	b.stopCPU(spans, p, end.Sub(start))
	b.res.Produce = p
	fs.ProbeRecords = int64(hist.Count())
	fs.Probe = latencyOf(hist)
	fs.RSSStartMB, fs.RSSPeakMB = float64(rss.start)/(1<<20), float64(rss.peak)/(1<<20)
	close(probeErr)
	for err := range probeErr {
		if err != nil {
			return err
		}
	}
	if fs.ProbeRecords == 0 {
		return errors.New("sluice-bench: the probe consumer got no records")
	}
	return nil
}

// floodLoop produces records to the topic until ctx ends. Records still
// buffered then fail with the context's error and are not counted.
func floodLoop(ctx context.Context, cl *kgo.Client, c *config, s *producerStats) {
	value := makeValue(c.recordSize)
	for ctx.Err() == nil {
		cl.Produce(ctx, &kgo.Record{Topic: c.topic, Value: value}, func(r *kgo.Record, err error) {
			if err != nil && ctx.Err() != nil {
				return
			}
			s.finish(r, err, time.Now())
		})
	}
}

// produceProbe produces one record every 1/--probe-rate to topic, each
// holding the time it was handed to the client.
func (b *bench) produceProbe(ctx context.Context, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.seeds...), kgo.ProducerLinger(0), kgo.DisableIdempotentWrite(),
		kgo.RequiredAcks(kgo.LeaderAck()), kgo.DefaultProduceTopic(topic))
	if err != nil {
		return fmt.Errorf("probe producer: %w", err)
	}
	defer cl.Close()
	pace := newPacer(b.cfg.probeRate)
	defer pace.stop()
	var failed atomic.Pointer[error]
	start := time.Now()
	for sent := int64(0); ctx.Err() == nil; {
		if pace.wait(ctx, start, time.Now(), sent) {
			continue
		}
		v := binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixNano()))
		cl.Produce(ctx, &kgo.Record{Value: v}, func(_ *kgo.Record, err error) {
			if err != nil && ctx.Err() == nil {
				failed.CompareAndSwap(nil, &err)
			}
		})
		sent++
	}
	if err := failed.Load(); err != nil {
		return fmt.Errorf("probe produce: %w", *err)
	}
	return nil
}

// consumeProbe records, for every probe record, the time from its
// production to its arrival here.
func consumeProbe(ctx context.Context, cl *kgo.Client, hist *histogram) error {
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err := fs.Err0(); err != nil {
			return fmt.Errorf("probe consume: %w", err)
		}
		now := time.Now()
		fs.EachRecord(func(r *kgo.Record) {
			if len(r.Value) == 8 {
				hist.Record(now.Sub(time.Unix(0, int64(binary.BigEndian.Uint64(r.Value)))))
			}
		})
	}
}

// createProbeTopic creates the probe's one-partition topic.
func (b *bench) createProbeTopic(ctx context.Context, topic string) error {
	resp, err := b.adm.CreateTopic(ctx, 1, b.cfg.replication, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("create probe topic %q: %w", topic, err)
	}
	return nil
}

// deleteNamed deletes topic, as deleteTopic does the benchmark's own.
func (b *bench) deleteNamed(ctx context.Context, topic string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	resp, err := b.adm.DeleteTopic(ctx, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		b.res.Notes = append(b.res.Notes, "delete topic: "+err.Error())
	}
}

// rssPID is the process whose RSS is sampled: --broker-pid, or this one
// with --fake; 0 when neither.
func (b *bench) rssPID() int {
	if b.cfg.fake {
		return os.Getpid()
	}
	return b.cfg.brokerPID
}

// rssPeak samples a process's resident set size.
type rssPeak struct{ start, peak int64 }

// sample reads pid's VmRSS every 20ms until ctx ends.
func (r *rssPeak) sample(ctx context.Context, pid int) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if v, err := readRSS(pid); err == nil {
			if r.start == 0 {
				r.start = v
			}
			r.peak = max(r.peak, v)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// readRSS returns VmRSS of pid from /proc/PID/status, in bytes.
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	return parseRSS(string(b))
}

// parseRSS finds the VmRSS line of a /proc/PID/status text.
func parseRSS(status string) (int64, error) {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmRSS line")
}

// summary is the flood figures on one line.
func (f *floodStats) summary() string {
	s := fmt.Sprintf("%d producers, probe %d records at %.0f/s", f.Producers, f.ProbeRecords, f.ProbeRate)
	if l := f.Probe; l != nil {
		s += fmt.Sprintf(" p50 %.2f ms p99 %.2f ms max %.2f ms", l.P50Ms, l.P99Ms, l.MaxMs)
	}
	if f.RSSPeakMB > 0 {
		s += fmt.Sprintf(", broker rss %.0f -> peak %.0f MiB", f.RSSStartMB, f.RSSPeakMB)
	}
	return s
}

// flood writes the rows of --mode flood cells: the flood's throughput, the
// broker's peak RSS and the probe's end-to-end latency.
func (t *table) flood(pairs []*pair) {
	if !anyFlood(pairs) {
		return
	}
	s, r := t.s, t.r
	t.row("")
	t.row("FLOOD (probe end-to-end ms)", s+" rec/s", r+" rec/s", s+" rss MiB", r+" rss MiB",
		s+" probe p50", s+" probe p99", r+" probe p50", r+" probe p99")
	for _, p := range pairs {
		if !p.has(func(x *result) bool { return x.Flood != nil }) {
			continue
		}
		t.row(p.label, floodNum(p.sub, floodRecPS), floodNum(p.ref, floodRecPS),
			floodNum(p.sub, floodRSS), floodNum(p.ref, floodRSS),
			floodNum(p.sub, probeP50), floodNum(p.sub, probeP99), floodNum(p.ref, probeP50), floodNum(p.ref, probeP99))
	}
}

func anyFlood(pairs []*pair) bool {
	for _, p := range pairs {
		if p.has(func(x *result) bool { return x.Flood != nil }) {
			return true
		}
	}
	return false
}

// floodNum formats one figure of a flood result, "-" when missing.
func floodNum(x *result, f func(*result) (float64, string, bool)) string {
	if x == nil || x.Flood == nil {
		return "-"
	}
	v, format, ok := f(x)
	if !ok {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

func floodRecPS(x *result) (float64, string, bool) {
	if x.Produce == nil {
		return 0, "", false
	}
	return x.Produce.RecordsPS, "%.0f", true
}

func floodRSS(x *result) (float64, string, bool) {
	return x.Flood.RSSPeakMB, "%.0f", x.Flood.RSSPeakMB > 0
}

func probeP50(x *result) (float64, string, bool) {
	if x.Flood.Probe == nil {
		return 0, "", false
	}
	return x.Flood.Probe.P50Ms, "%.2f", true
}

func probeP99(x *result) (float64, string, bool) {
	if x.Flood.Probe == nil {
		return 0, "", false
	}
	return x.Flood.Probe.P99Ms, "%.2f", true
}
