package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// produceAcked produces n records "<p>-<seq>" with acks=all to topic and
// returns what was acknowledged, failing the test on any error.
func (c *cluster) produceAcked(topic string, n int, opts ...kgo.Opt) *acked {
	c.t.Helper()
	cl := c.client(append([]kgo.Opt{kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner())}, opts...)...)
	defer cl.Close()
	a := newAcked()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("x-%d", i))}, func(r *kgo.Record, err error) {
			defer wg.Done()
			a.add(r, err)
		})
	}
	wg.Wait()
	if len(a.errs) > 0 {
		c.t.Fatalf("produce: %d errors, first %v", len(a.errs), a.errs[0])
	}
	return a
}

// checkOnDisk asserts that a stopped broker's copy of topic holds every
// acknowledged record at its offset.
func checkOnDisk(t testing.TB, p *proc, topic string, a *acked) {
	t.Helper()
	for part, want := range a.byPart {
		got := replicaRecords(t, p.dataDir, topic, part)
		for v, off := range want {
			if !slices.Contains(got, fmt.Sprintf("%d:%s", off, v)) {
				t.Errorf("%s: partition %d lacks acknowledged %q at offset %d", p.dataDir, part, v, off)
			}
		}
	}
}

// TestFaultSIGTERMWithoutEtcd kills etcd under a running three-broker
// cluster and then sends SIGTERM to every broker: each must exit within
// controlled.shutdown.timeout.ms plus a small bound, whatever etcd does,
// with its partition logs flushed (every acknowledged record on disk).
func TestFaultSIGTERMWithoutEtcd(t *testing.T) {
	t.Parallel()
	const shutdownTimeout = 3 * time.Second
	const bound = 6 * time.Second
	c := startCluster(t, 3, "--set", fmt.Sprintf("controlled.shutdown.timeout.ms=%d", shutdownTimeout.Milliseconds()))
	const topic = "sigterm"
	c.createTopic(topic, 3, 3, nil)
	a := c.produceAcked(topic, 300)
	c.server.Kill()
	start := time.Now()
	errs := make(chan error, len(c.procs))
	for _, id := range c.ids() {
		p := c.procs[id]
		go func() {
			err := p.stop(shutdownTimeout + bound + 10*time.Second)
			took := time.Since(start)
			switch {
			case err != nil && took > shutdownTimeout+bound:
				errs <- fmt.Errorf("broker %d: %v after %v", id, err, took.Round(time.Millisecond))
			case took > shutdownTimeout+bound:
				errs <- fmt.Errorf("broker %d exited after %v, want within %v", id, took.Round(time.Millisecond), shutdownTimeout+bound)
			default:
				t.Logf("broker %d exited %v after SIGTERM without etcd (exit: %v)", id, took.Round(time.Millisecond), err)
				errs <- nil
			}
		}()
	}
	for range c.procs {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for _, id := range c.ids() {
		if out := c.procs[id].output(); !strings.Contains(out, "broker stopped") {
			t.Errorf("broker %d did not log its last line", id)
		}
	}
	for _, id := range c.ids() {
		checkOnDisk(t, c.procs[id], topic, a)
	}
}
