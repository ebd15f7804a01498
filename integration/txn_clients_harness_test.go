package integration

// Shared pieces of the transaction tests that run other clients' programs
// (txn_clients_test.go, txn_kafkajs_test.go): where the broker comes from, a
// client process whose stdout is JSON lines, a step language for
// transactional producers that the Go side also evaluates to know exactly
// what each isolation level must return, and waits for transactions to
// settle.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// txnClientSettings keep group joins and transaction coordinator loads
// short for tests: no initial rebalance delay, fewer internal partitions.
var txnClientSettings = map[string]string{
	"group.initial.rebalance.delay.ms":     "0",
	"group.min.session.timeout.ms":         "1000",
	"offsets.topic.num.partitions":         "8",
	"transaction.state.log.num.partitions": "8",
}

// txnEnv is the broker a transaction client test talks to.
//
// By default it is a Sluice broker of the test's own. With
// SLUICE_TXN_REFERENCE=host:port the tests use that running broker instead
// (franz-go's kfake from `sluice-bench --serve-fake`, or Apache Kafka), so a
// mistake in a client program can be told apart from one in Sluice; names
// then get a unique suffix because tests share the broker.
type txnEnv struct {
	addr   string
	suffix string
}

func newTxnEnv(t *testing.T) *txnEnv {
	t.Helper()
	if ref := os.Getenv("SLUICE_TXN_REFERENCE"); ref != "" {
		return &txnEnv{addr: ref, suffix: fmt.Sprintf("-%d", time.Now().UnixNano())}
	}
	return &txnEnv{addr: startBroker(t, txnClientSettings).addr()}
}

// name returns s made unique on a shared reference broker.
func (e *txnEnv) name(s string) string { return s + e.suffix }

// clientProc is a client program run by a test. Its stdout lines are
// collected as they arrive and its stderr is kept for failure messages; it
// is killed at cleanup if still running.
type clientProc struct {
	desc   string
	cmd    *exec.Cmd
	lines  lineCollector
	stderr lockedBuffer
	exited chan struct{} // closed once the process exited and stdout is drained
	err    error         // cmd.Wait's result, set before exited is closed
}

func startClient(t *testing.T, stdin, name string, args ...string) *clientProc {
	t.Helper()
	c := &clientProc{desc: name + " " + strings.Join(args, " "), exited: make(chan struct{})}
	c.cmd = exec.Command(name, args...)
	c.cmd.Stdin = strings.NewReader(stdin)
	c.cmd.Stderr = &c.stderr
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", c.desc, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			c.lines.add(sc.Text())
		}
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(c.kill)
	return c
}

// kill sends SIGKILL unless the process already exited, and waits for it.
func (c *clientProc) kill() {
	select {
	case <-c.exited:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.exited
}

// wait waits for the process to exit successfully and returns its stdout
// lines; a failure, or still running after timeout, fails the test.
func (c *clientProc) wait(t *testing.T, timeout time.Duration) []string {
	t.Helper()
	select {
	case <-c.exited:
	case <-time.After(timeout):
		c.kill()
		t.Fatalf("%s still running after %v\nstdout:\n%s\nstderr:\n%s", c.desc, timeout,
			strings.Join(c.lines.snapshot(), "\n"), c.stderr.String())
	}
	if c.err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", c.desc, c.err,
			strings.Join(c.lines.snapshot(), "\n"), c.stderr.String())
	}
	return c.lines.snapshot()
}

// runClient runs a client program to completion and returns its stdout lines.
func runClient(t *testing.T, timeout time.Duration, stdin, name string, args ...string) []string {
	t.Helper()
	return startClient(t, stdin, name, args...).wait(t, timeout)
}

// decodeLines parses each line as a JSON object of type T.
func decodeLines[T any](t *testing.T, lines []string) []T {
	t.Helper()
	out := make([]T, 0, len(lines))
	for _, l := range lines {
		var v T
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("client printed %q, not a JSON object: %v", l, err)
		}
		out = append(out, v)
	}
	return out
}

// txnRecord is one record a client produced or consumed.
type txnRecord struct {
	P int32  `json:"p"`
	O int64  `json:"o,omitempty"` // set by consumers
	K string `json:"k"`
	V string `json:"v"`
}

// txnStep is one step of the language the client programs' "steps" mode
// runs: op begin, produce, commit or abort for the producer Txn (one
// transactional id per name), and for kafkajs "offsets" (sendOffsets).
// A produce step is acknowledged before the next step starts, so the order
// of the steps is the order of the records in each partition.
type txnStep struct {
	Op      string      `json:"op"`
	Txn     string      `json:"txn"`
	Topic   string      `json:"topic,omitempty"`
	Records []txnRecord `json:"records,omitempty"`
	Group   string      `json:"group,omitempty"`
	Offsets []txnOffset `json:"offsets,omitempty"`
}

type txnOffset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

// txnScript builds a step list for one topic with unique record values.
type txnScript struct {
	topic string
	steps []txnStep
	n     int
}

func (s *txnScript) op(txn, op string) { s.steps = append(s.steps, txnStep{Op: op, Txn: txn}) }

// produce adds one produce step with a record for each partition listed
// (a partition may repeat). Values are TXN-N, unique in the script.
func (s *txnScript) produce(txn string, partitions ...int32) {
	st := txnStep{Op: "produce", Txn: txn, Topic: s.topic}
	for _, p := range partitions {
		st.Records = append(st.Records, txnRecord{P: p, K: fmt.Sprintf("key-%d", s.n%5), V: fmt.Sprintf("%s-%d", txn, s.n)})
		s.n++
	}
	s.steps = append(s.steps, st)
}

// end adds a committed transaction of txn with a record of value "end" in
// each of partitions 0..n-1: consumers that read while the script runs
// stop once they have it from every partition.
func (s *txnScript) end(txn string, n int32) {
	s.op(txn, "begin")
	st := txnStep{Op: "produce", Txn: txn, Topic: s.topic}
	for p := range n {
		st.Records = append(st.Records, txnRecord{P: p, K: "end", V: "end"})
	}
	s.steps = append(s.steps, st)
	s.op(txn, "commit")
}

func (s *txnScript) sendOffsets(txn, group string, offsets ...txnOffset) {
	s.steps = append(s.steps, txnStep{Op: "offsets", Txn: txn, Group: group, Offsets: offsets})
}

func (s *txnScript) json(t *testing.T) string {
	t.Helper()
	b, err := json.Marshal(s.steps)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// expect evaluates the script: per partition of its topic, the values in
// log order of every record (what read_uncommitted returns once nothing is
// open) and of the records of committed transactions (read_committed), and
// the group offsets that committed transactions sent. Records of a
// transaction still open at the end are in all only.
func (s *txnScript) expect() (all, committed map[int32][]string, offsets map[string]map[int32]int64) {
	type rec struct {
		r    txnRecord
		inst int
	}
	var log []rec
	open := map[string]int{} // txn name -> instance of its open transaction
	sent := map[int][]txnOffset{}
	outcome := map[int]bool{}
	inst := 0
	offsets = map[string]map[int32]int64{}
	for _, st := range s.steps {
		switch st.Op {
		case "begin":
			inst++
			open[st.Txn] = inst
		case "produce":
			for _, r := range st.Records {
				log = append(log, rec{r, open[st.Txn]})
			}
		case "offsets":
			sent[open[st.Txn]] = append(sent[open[st.Txn]], st.Offsets...)
		case "commit", "abort":
			outcome[open[st.Txn]] = st.Op == "commit"
			if st.Op == "commit" {
				for _, o := range sent[open[st.Txn]] {
					if offsets[o.Topic] == nil {
						offsets[o.Topic] = map[int32]int64{}
					}
					offsets[o.Topic][o.Partition] = o.Offset
				}
			}
			delete(open, st.Txn)
		}
	}
	all, committed = map[int32][]string{}, map[int32][]string{}
	for _, r := range log {
		all[r.r.P] = append(all[r.r.P], r.r.V)
		if outcome[r.inst] {
			committed[r.r.P] = append(committed[r.r.P], r.r.V)
		}
	}
	return all, committed, offsets
}

// byPartition groups consumed records into values per partition in the
// order consumed, checking that offsets only grow within a partition.
func byPartition(t *testing.T, recs []txnRecord) map[int32][]string {
	t.Helper()
	got := map[int32][]string{}
	last := map[int32]int64{}
	for _, r := range recs {
		if o, ok := last[r.P]; ok && r.O <= o {
			t.Fatalf("partition %d: offset %d consumed after %d", r.P, r.O, o)
		}
		last[r.P] = r.O
		got[r.P] = append(got[r.P], r.V)
	}
	return got
}

// requireSameLogs fails unless got has exactly want's values per partition,
// in want's order.
func requireSameLogs(t *testing.T, what string, got, want map[int32][]string) {
	t.Helper()
	var diffs []string
	parts := slices.Sorted(maps.Keys(want))
	for p := range got {
		if _, ok := want[p]; !ok {
			parts = append(parts, p)
		}
	}
	for _, p := range parts {
		g, w := got[p], want[p]
		if slices.Equal(g, w) {
			continue
		}
		i := 0
		for i < len(g) && i < len(w) && g[i] == w[i] {
			i++
		}
		from := max(i-2, 0)
		diffs = append(diffs, fmt.Sprintf("partition %d: %d records, want %d; first difference at #%d:\n  got  ...%v\n  want ...%v",
			p, len(g), len(w), i, g[from:min(i+5, len(g))], w[from:min(i+5, len(w))]))
	}
	if len(diffs) > 0 {
		t.Fatalf("%s differs:\n%s", what, strings.Join(diffs, "\n"))
	}
}

// listOffsets returns the high watermarks (end) and last stable offsets
// (stable) of every partition of topic.
func listOffsets(ctx context.Context, adm *kadm.Client, topic string) (end, stable map[int32]int64, err error) {
	end, stable = map[int32]int64{}, map[int32]int64{}
	for _, list := range []struct {
		fn  func(context.Context, ...string) (kadm.ListedOffsets, error)
		dst map[int32]int64
	}{{adm.ListEndOffsets, end}, {adm.ListCommittedOffsets, stable}} {
		lo, err := list.fn(ctx, topic)
		if err != nil {
			return nil, nil, err
		}
		if err := lo.Error(); err != nil {
			return nil, nil, err
		}
		lo.Each(func(o kadm.ListedOffset) { list.dst[o.Partition] = o.Offset })
	}
	return end, stable, nil
}

// waitTxnsSettled waits until no transaction is open or has markers still
// to be written in any partition of topics: the last stable offset equals
// the high watermark everywhere. After it, a consumer reading to the end of
// each partition sees everything it will ever see of what was produced.
func waitTxnsSettled(t *testing.T, addr string, topics ...string) {
	t.Helper()
	adm := admin(t, addr)
	waitFor(t, 30*time.Second, func() error {
		for _, topic := range topics {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			end, stable, err := listOffsets(ctx, adm, topic)
			cancel()
			if err != nil {
				return err
			}
			if len(end) == 0 {
				return fmt.Errorf("%s: no partitions listed", topic)
			}
			if !maps.Equal(end, stable) {
				return fmt.Errorf("%s: last stable offsets %v, high watermarks %v", topic, stable, end)
			}
		}
		return nil
	})
}

// groupOffsets returns group's committed offsets for topic, waiting for
// pending transactional offsets to resolve (KIP-447 require_stable).
func groupOffsets(adm *kadm.Client, group, topic string) (map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := adm.FetchOffsetsForTopics(kadm.RequireStable(ctx), group, topic)
	if err != nil {
		return nil, err
	}
	if err := resp.Error(); err != nil {
		return nil, err
	}
	got := map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.At >= 0 {
			got[o.Partition] = o.At
		}
	})
	return got, nil
}

// waitGroupOffsets waits until group's committed offsets for topic are
// exactly want.
func waitGroupOffsets(t *testing.T, addr, group, topic string, want map[int32]int64) {
	t.Helper()
	adm := admin(t, addr)
	waitFor(t, 30*time.Second, func() error {
		got, err := groupOffsets(adm, group, topic)
		if err != nil {
			return err
		}
		if !maps.Equal(got, want) {
			return fmt.Errorf("group %s offsets of %s are %v, want %v", group, topic, got, want)
		}
		return nil
	})
}
