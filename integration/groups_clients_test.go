package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// lineCollector gathers a child process's output lines.
type lineCollector struct {
	mu    sync.Mutex
	lines []string
}

func (l *lineCollector) add(s string) {
	l.mu.Lock()
	l.lines = append(l.lines, s)
	l.mu.Unlock()
}

func (l *lineCollector) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// startCollecting runs cmd and collects its stdout lines until it exits or
// the test ends.
func startCollecting(t *testing.T, cmd *exec.Cmd) *lineCollector {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if os.Getenv("SLUICE_TEST_LOG") != "" {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lc := &lineCollector{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lc.add(sc.Text())
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		_ = cmd.Wait()
	})
	return lc
}

func TestKcatBalancedConsumersSplitPartitions(t *testing.T) {
	t.Parallel()
	kcat := requireTool(t, "kcat")
	ib := startBroker(t, groupSettings)
	createTopic(t, ib.addr(), "kcat-group", 4, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := func() *lineCollector {
		return startCollecting(t, exec.CommandContext(ctx, kcat, "-b", ib.addr(), "-G", "kcat-g", "-o", "beginning",
			"-u", "-f", "%p %s\n", "-X", "session.timeout.ms=6000", "kcat-group"))
	}
	a, b := start(), start()
	// Produce only once both members hold partitions, so no partition moves
	// (and is re-read from an older commit) while the records flow.
	waitGroupStable(t, ib.addr(), "kcat-g", 2)
	produceN(t, ib.addr(), "kcat-group", 0, 200)
	waitFor(t, 45*time.Second, func() error {
		seen := map[string]bool{}
		parts := []map[string]bool{{}, {}}
		for i, lc := range []*lineCollector{a, b} {
			for _, l := range lc.snapshot() {
				p, v, _ := strings.Cut(l, " ")
				seen[v] = true
				parts[i][p] = true
			}
		}
		if len(seen) != 200 {
			return fmt.Errorf("consumed %d of 200 distinct values", len(seen))
		}
		if len(parts[0]) == 0 || len(parts[1]) == 0 {
			return fmt.Errorf("one kcat member got no partitions: %v / %v", parts[0], parts[1])
		}
		for p := range parts[0] {
			if parts[1][p] {
				return fmt.Errorf("partition %s consumed by both members", p)
			}
		}
		return nil
	})
}

const kafkaPythonGroupScript = `
import sys
from kafka import KafkaConsumer
bootstrap, topic, group = sys.argv[1], sys.argv[2], sys.argv[3]
c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset='earliest',
                  session_timeout_ms=6000, heartbeat_interval_ms=500, consumer_timeout_ms=20000)
for m in c:
    print(m.partition, m.value.decode(), flush=True)
`

func TestKafkaPythonGroupTwoMembers(t *testing.T) {
	t.Parallel()
	python := "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import kafka").Run(); err != nil {
		requireTool(t, "kafka-python (python3-kafka)")
	}
	ib := startBroker(t, groupSettings)
	createTopic(t, ib.addr(), "py-group", 4, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := func() *lineCollector {
		return startCollecting(t, exec.CommandContext(ctx, python, "-c", kafkaPythonGroupScript, ib.addr(), "py-group", "py-g"))
	}
	a, b := start(), start()
	waitGroupStable(t, ib.addr(), "py-g", 2)
	// Debian's kafka-python lacks the snappy library franz-go compresses with by default.
	produceN(t, ib.addr(), "py-group", 0, 200, kgo.ProducerBatchCompression(kgo.NoCompression()))
	waitSplitConsumed(t, 200, a, b)
}

const confluentScript = `
import sys
from confluent_kafka import Consumer
bootstrap, topic, group = sys.argv[1], sys.argv[2], sys.argv[3]
c = Consumer({'bootstrap.servers': bootstrap, 'group.id': group, 'auto.offset.reset': 'earliest',
              'partition.assignment.strategy': 'cooperative-sticky', 'session.timeout.ms': 6000})
c.subscribe([topic])
while True:
    m = c.poll(0.5)
    if m is None or m.error():
        continue
    print(m.partition(), m.value().decode(), flush=True)
`

func TestConfluentKafkaCooperativeSticky(t *testing.T) {
	t.Parallel()
	python := "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import confluent_kafka").Run(); err != nil {
		requireTool(t, "confluent-kafka (python3-confluent-kafka)")
	}
	ib := startBroker(t, groupSettings)
	createTopic(t, ib.addr(), "ck-group", 4, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := func() *lineCollector {
		return startCollecting(t, exec.CommandContext(ctx, python, "-c", confluentScript, ib.addr(), "ck-group", "ck-g"))
	}
	a := start()
	waitGroupStable(t, ib.addr(), "ck-g", 1)
	b := start()
	waitGroupStable(t, ib.addr(), "ck-g", 2)
	produceN(t, ib.addr(), "ck-group", 0, 200)
	waitSplitConsumed(t, 200, a, b)
}

// waitGroupStable waits until group is Stable with n members that all have
// partitions assigned.
func waitGroupStable(t *testing.T, addr, group string, n int) {
	t.Helper()
	adm := kadm.NewClient(client(t, addr))
	waitFor(t, 45*time.Second, func() error {
		gs, err := adm.DescribeGroups(context.Background(), group)
		if err != nil {
			return err
		}
		g := gs[group]
		if g.Err != nil {
			return g.Err
		}
		if g.State != "Stable" || len(g.Members) != n {
			return fmt.Errorf("group %s is %s with %d members, want Stable with %d", group, g.State, len(g.Members), n)
		}
		for _, m := range g.Members {
			if a, ok := m.Assigned.AsConsumer(); !ok || len(a.Topics) == 0 {
				return fmt.Errorf("member %s has no partitions yet", m.MemberID)
			}
		}
		return nil
	})
}

// waitSplitConsumed waits until the members printing "partition value"
// lines have together consumed values 0..n-1 and each of them has consumed
// from at least one partition.
func waitSplitConsumed(t *testing.T, n int, members ...*lineCollector) {
	t.Helper()
	waitFor(t, 45*time.Second, func() error {
		seen := map[string]bool{}
		for i, lc := range members {
			parts := map[string]bool{}
			for _, l := range lc.snapshot() {
				p, v, _ := strings.Cut(l, " ")
				seen[v] = true
				parts[p] = true
			}
			if len(parts) == 0 {
				return fmt.Errorf("member %d consumed from no partition", i)
			}
		}
		if len(seen) != n {
			return fmt.Errorf("consumed %d of %d distinct values", len(seen), n)
		}
		return nil
	})
}
