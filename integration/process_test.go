package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestProcessKill9KeepsAcknowledgedRecords runs the real binary, produces
// with acks=all from an idempotent producer, kills the broker with SIGKILL
// mid-stream, restarts it on the same data directory and checks that every
// acknowledged record is there, once, in order.
func TestProcessKill9KeepsAcknowledgedRecords(t *testing.T) {
	t.Parallel()
	p := startProc(t)
	createTopic(t, p.addr, "durable", 1, nil)

	cl := client(t, p.addr, kgo.DefaultProduceTopic("durable"), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(3*time.Second), kgo.ProducerLinger(time.Millisecond))
	var mu sync.Mutex
	acked := map[int]bool{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			i := i
			cl.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("%08d", i))}, func(_ *kgo.Record, err error) {
				if err == nil {
					mu.Lock()
					acked[i] = true
					mu.Unlock()
				}
			})
			if i%100 == 99 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	waitFor(t, 20*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(acked) < 2000 {
			return fmt.Errorf("%d acknowledged", len(acked))
		}
		return nil
	})
	p.kill()
	cancel()
	wg.Wait()
	cl.Close()
	mu.Lock()
	nAcked := len(acked)
	mu.Unlock()

	p.restart()
	// The listener accepts before Run logs its start line.
	waitFor(t, 10*time.Second, func() error {
		if !strings.Contains(p.output(), "broker started") {
			return fmt.Errorf("restarted broker did not log its start:\n%s", p.output())
		}
		return nil
	})
	recs := consumeAtLeast(t, p.addr, "durable", nAcked)
	seen := map[int]bool{}
	prev := -1
	for i, r := range recs {
		if r.Offset != int64(i) {
			t.Fatalf("record %d has offset %d", i, r.Offset)
		}
		var v int
		fmt.Sscanf(string(r.Value), "%d", &v)
		if seen[v] {
			t.Fatalf("value %d stored twice", v)
		}
		if v <= prev {
			t.Fatalf("value %d after %d: out of order", v, prev)
		}
		seen[v], prev = true, v
	}
	for v := range acked {
		if !seen[v] {
			t.Fatalf("acknowledged record %d lost after kill -9 (%d acked, %d read back)", v, nAcked, len(recs))
		}
	}
}

// consumeAtLeast reads the whole topic (at least n records) from the start.
func consumeAtLeast(t testing.TB, addr, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := client(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(300*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	end := endOffset(t, cl, topic)
	var out []*kgo.Record
	for int64(len(out)) < end {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", len(out), end)
		}
		out = append(out, fs.Records()...)
	}
	if len(out) < n {
		t.Fatalf("log holds %d records, but %d were acknowledged", len(out), n)
	}
	return out
}

// TestProcessSIGTERMExitsCleanly checks the graceful shutdown path: exit 0.
func TestProcessSIGTERMExitsCleanly(t *testing.T) {
	t.Parallel()
	p := startProc(t)
	createTopic(t, p.addr, "bye", 1, nil)
	if err := p.stop(20 * time.Second); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, p.output())
	}
}

// TestProcessStartupErrors checks that a taken port fails start-up with one
// clear line and a non-zero exit.
func TestProcessStartupErrors(t *testing.T) {
	t.Parallel()
	p := startProc(t)
	dir := t.TempDir()
	out, err := runBinary(t, "--data-dir", dir, "--listen", p.addr, "--http-listen", "",
		"--embedded-etcd-client-addr", freeAddr(t), "--embedded-etcd-peer-addr", freeAddr(t))
	if err == nil {
		t.Fatalf("second broker on a taken port started:\n%s", out)
	}
	if !strings.Contains(out, "sluice:") || !strings.Contains(out, "address already in use") {
		t.Fatalf("unclear start-up error:\n%s", out)
	}
	out, err = runBinary(t, "--data-dir", t.TempDir(), "--listen", freeAddr(t), "--http-listen", "",
		"--etcd", "127.0.0.1:1")
	if err == nil || !strings.Contains(out, "etcd") {
		t.Fatalf("unreachable etcd: err %v\n%s", err, out)
	}
	out, err = runBinary(t, "--data-dir", t.TempDir(), "--set", "no.such.setting=1")
	if err == nil || !strings.Contains(out, "no.such.setting") {
		t.Fatalf("unknown setting: err %v\n%s", err, out)
	}
}

// TestProcessGroupOffsetsSurviveKill9 commits offsets through a consumer
// group, kills the broker with SIGKILL, restarts it, and checks that the
// group re-forms and resumes from every committed offset.
func TestProcessGroupOffsetsSurviveKill9(t *testing.T) {
	t.Parallel()
	p := startProc(t, "--set", "group.initial.rebalance.delay.ms=0", "--set", "offsets.topic.num.partitions=4",
		"--set", "group.min.session.timeout.ms=1000")
	createTopic(t, p.addr, "grp-durable", 3, nil)
	produceN(t, p.addr, "grp-durable", 0, 300)
	m := startMember(t, p.addr, "g-durable", "grp-durable")
	waitAllConsumed(t, 300, m)
	m.leave()

	adm := kadm.NewClient(client(t, p.addr))
	before, err := adm.FetchOffsets(context.Background(), "g-durable")
	if err != nil {
		t.Fatal(err)
	}
	p.kill()
	p.restart()

	adm = kadm.NewClient(client(t, p.addr))
	var after kadm.OffsetResponses
	waitFor(t, 20*time.Second, func() error {
		var err error
		after, err = adm.FetchOffsets(context.Background(), "g-durable")
		if err != nil {
			return err
		}
		return after.Error()
	})
	sum := int64(0)
	before.Each(func(o kadm.OffsetResponse) {
		a, ok := after.Lookup(o.Topic, o.Partition)
		if !ok || a.At != o.At {
			t.Errorf("%s[%d]: committed %d before the crash, %d after", o.Topic, o.Partition, o.At, a.At)
		}
		sum += o.At
	})
	if sum != 300 {
		t.Fatalf("committed offsets sum to %d, want 300", sum)
	}
	produceN(t, p.addr, "grp-durable", 300, 30)
	m2 := startMember(t, p.addr, "g-durable", "grp-durable")
	waitFor(t, 30*time.Second, func() error {
		if n := len(union(m2)); n != 30 {
			return fmt.Errorf("resumed member read %d distinct values, want the 30 new ones", n)
		}
		return nil
	})
}
