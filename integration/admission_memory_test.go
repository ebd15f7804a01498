package integration

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// vmRSS is the resident set of process pid in bytes, from
// /proc/<pid>/status.
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// floodResult is what a producer flood measured.
type floodResult struct {
	baseline, peak int64 // broker RSS before and at most during the flood
	produced       int64 // records acknowledged
	consumed       int64 // records the consumer got during the flood
	longestPoll    time.Duration
	peakBudget     float64 // sluice_request_memory_bytes at most
}

// produceFlood runs producers clients, each producing uncompressed
// records of recordBytes as fast as the broker takes them, against the
// broker process p for d, while a consumer on its own connection reads
// the topic; it samples the broker's RSS throughout.
func produceFlood(t *testing.T, p *proc, producers, recordBytes int, d time.Duration) floodResult {
	t.Helper()
	const topic = "flood"
	createTopic(t, p.addr, topic, 8, nil)
	pid := p.cmd.Process.Pid
	var res floodResult
	var err error
	if res.baseline, err = vmRSS(pid); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	var produced, consumed atomic.Int64
	errs := make(chan error, producers+1)
	value := make([]byte, recordBytes)
	for i := range value {
		value[i] = byte(i * 7)
	}
	for range producers {
		cl := client(t, p.addr, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.NoCompression()),
			kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedBytes(4<<20), kgo.RequestTimeoutOverhead(time.Minute))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
					switch {
					case err == nil:
						produced.Add(1)
					case ctx.Err() == nil:
						errs <- fmt.Errorf("produce: %w", err)
					}
				})
			}
		}()
	}
	consumer := client(t, p.addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))
	wg.Add(1)
	go func() {
		defer wg.Done()
		for last := time.Now(); ctx.Err() == nil; {
			fs := consumer.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			if err := fs.Err0(); err != nil {
				errs <- fmt.Errorf("consume: %w", err)
				return
			}
			res.longestPoll = max(res.longestPoll, time.Since(last))
			last = time.Now()
			consumed.Add(int64(fs.NumRecords()))
		}
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		<-tick.C
		rss, err := vmRSS(pid)
		if err != nil {
			t.Fatal(err)
		}
		res.peak = max(res.peak, rss)
		res.peakBudget = max(res.peakBudget, scrape(t, p.httpAddr, "sluice_request_memory_bytes"))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	res.produced, res.consumed = produced.Load(), consumed.Load()
	return res
}

// TestAdmissionMemoryBoundedUnderProducerFlood floods a broker process
// with 32 franz-go producers pushing 1 MiB batches as fast as they can,
// against a queued.max.request.bytes of 8 MiB. The broker's RSS must stay
// within the budget plus a fixed overhead, and a consumer on another
// connection must keep being served.
//
// The growth allowed: Go frees a dropped request buffer only at its next
// collection, and with GOGC=100 the heap may reach twice its live size
// (the baseline's heap, the embedded etcd's included, plus the budget)
// before one runs, so the growth can reach the baseline plus twice the
// budget; each connection adds a 64 KiB read and a 64 KiB write buffer
// (34 connections, about 4 MiB), and 20 MiB covers the runtime returning
// freed pages lazily and the logs' and replicas' own allocations.
// Measured on a 2-core machine: 56 MiB of growth from a 32 MiB baseline;
// the same flood with queued.max.request.bytes=-1 grew it by 307 MiB.
func TestAdmissionMemoryBoundedUnderProducerFlood(t *testing.T) {
	t.Parallel()
	const budget = 8 << 20
	p := startProc(t, "--set", "queued.max.request.bytes="+strconv.Itoa(budget), "--log-level", "info")
	res := produceFlood(t, p, 32, 64<<10, 15*time.Second)
	t.Logf("rss baseline %d MiB, peak %d MiB; request memory peak %.1f MiB; %d records produced, %d consumed, longest poll %v",
		res.baseline>>20, res.peak>>20, res.peakBudget/(1<<20), res.produced, res.consumed, res.longestPoll)
	allowed := res.baseline + 2*budget + 24<<20
	if grown := res.peak - res.baseline; grown > allowed {
		t.Errorf("broker RSS grew %d MiB under the flood, want at most %d MiB (the baseline, twice the budget of %d MiB, 24 MiB)",
			grown>>20, allowed>>20, budget>>20)
	}
	if res.peakBudget > budget+4<<20 { // fetch data is counted when read, possibly over the budget by one response
		t.Errorf("sluice_request_memory_bytes peaked at %.0f, budget %d", res.peakBudget, budget)
	}
	if res.produced == 0 || res.consumed == 0 {
		t.Errorf("%d records produced, %d consumed during the flood", res.produced, res.consumed)
	}
	if res.longestPoll > 10*time.Second {
		t.Errorf("the consumer waited %v for a fetch during the flood", res.longestPoll)
	}
}
