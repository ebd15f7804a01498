package integration

// Transactions through librdkafka: confluent-kafka from Python (the program
// in testdata/txnclients/confluent_txn.py) and kcat. See
// txn_clients_harness_test.go for the broker, the step language and the
// waits these tests share.

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	// python3 is Debian's interpreter, the one that sees python3-confluent-kafka.
	python3          = "/usr/bin/python3"
	confluentTxnProg = "testdata/txnclients/confluent_txn.py"
	clientTimeout    = 90 * time.Second
)

func requireConfluentKafka(t *testing.T) {
	t.Helper()
	if err := exec.Command(python3, "-c", "import confluent_kafka").Run(); err != nil {
		requireTool(t, "confluent-kafka (python3-confluent-kafka)")
	}
}

// confluentConsume reads every partition of topic to its end with a
// librdkafka consumer at isolation level (read_committed or
// read_uncommitted) and returns the values per partition in offset order.
func confluentConsume(t *testing.T, addr, topic, level string) map[int32][]string {
	t.Helper()
	lines := runClient(t, clientTimeout, "", python3, confluentTxnProg, "consume", addr, topic, level)
	return byPartition(t, decodeLines[txnRecord](t, lines))
}

// TestTxnConfluentCommitAbort runs transactions of two confluent-kafka
// producers: committed and aborted ones, an abort after producing to every
// partition, and an aborted transaction interleaved with a committed one in
// the same partitions. A read_committed consumer must return exactly the
// committed records, in order, each once, both when it reads while the
// transactions run and afterwards; a read_uncommitted one every record.
func TestTxnConfluentCommitAbort(t *testing.T) {
	t.Parallel()
	requireConfluentKafka(t)
	env := newTxnEnv(t)
	topic := env.name("cf-txn")
	createTopic(t, env.addr, topic, 3, nil)

	s := &txnScript{topic: topic}
	s.op("a", "begin")
	s.produce("a", 0, 0, 0, 0)
	s.op("a", "commit")
	s.op("a", "begin") // aborted after producing to every partition
	s.produce("a", 0, 1, 2, 0, 1, 2, 0, 1, 2)
	s.op("a", "abort")
	s.op("b", "begin") // b's aborted records around a's committed ones
	s.produce("b", 1, 1, 1)
	s.op("a", "begin")
	s.produce("a", 1, 1, 2, 2)
	s.produce("b", 0, 0, 2)
	s.produce("a", 1, 0)
	s.op("a", "commit")
	s.produce("b", 1)
	s.op("b", "abort")
	s.op("b", "begin") // a producer that aborted goes on committing
	s.produce("b", 0, 1, 2, 2)
	s.op("b", "commit")
	s.op("a", "begin")
	s.produce("a", 2, 2, 2)
	s.op("a", "commit")
	s.end("b", 3)

	// A read_committed consumer that reads while the transactions run sees
	// the last stable offset move and aborted transactions end in fetches
	// that cover part of a transaction.
	live := startClient(t, "", python3, confluentTxnProg, "consume", env.addr, topic, "read_committed", "end")
	lines := runClient(t, clientTimeout, s.json(t), python3, confluentTxnProg, "steps", env.addr, env.name("cf-txn"))
	if len(lines) != len(s.steps) {
		t.Fatalf("client confirmed %d of %d steps:\n%s", len(lines), len(s.steps), strings.Join(lines, "\n"))
	}
	all, committed, _ := s.expect()
	requireSameLogs(t, "read_committed during the transactions",
		byPartition(t, decodeLines[txnRecord](t, live.wait(t, clientTimeout))), committed)
	waitTxnsSettled(t, env.addr, topic)
	requireSameLogs(t, "read_committed", confluentConsume(t, env.addr, topic, "read_committed"), committed)
	requireSameLogs(t, "read_uncommitted", confluentConsume(t, env.addr, topic, "read_uncommitted"), all)
}

// processorEvent is a line the confluent processor prints.
type processorEvent struct {
	Event   string          `json:"event"`
	Batch   int             `json:"batch"`
	Records int             `json:"records"`
	Offsets map[int32]int64 `json:"offsets"`
	// What a zombie tried, in order, and what it got: "ok" or an error name.
	Outcomes [][2]string `json:"outcomes"`
}

// TestTxnConfluentSendOffsetsLoop runs a confluent-kafka
// consume-transform-produce processor (read_committed consumer, auto commit
// off, send_offsets_to_transaction, a commit per batch). Every third batch
// is aborted and processed again after seeking back to the group's
// committed offsets. The first processor is SIGKILLed inside a transaction
// whose records and offsets were sent; a second one with the same
// transactional.id and group.instance.id finishes the input. Then the
// output holds every input record exactly once, in input order per
// partition (read_committed); read_uncommitted also returns exactly the
// records of the aborted and killed transactions; and the group's
// committed offsets are the input's end offsets.
func TestTxnConfluentSendOffsetsLoop(t *testing.T) {
	t.Parallel()
	runProcessors(t, "cf", false)
}

// TestTxnConfluentZombieFenced is TestTxnConfluentSendOffsetsLoop with the
// first processor stalled instead of killed: it wakes up after its
// replacement has processed everything and tries to produce and commit
// with its old producer epoch (and, if an error is only abortable, to abort
// and try again). No produce or commit may succeed, the producer must end
// fenced for good (librdkafka's fatal _FENCED), its record must not reach
// the log (read_uncommitted has exactly the records of the input and of the
// aborted transactions), and the output is still exactly once.
func TestTxnConfluentZombieFenced(t *testing.T) {
	t.Parallel()
	runProcessors(t, "zb", true)
}

// runProcessors runs the processor scenario of
// TestTxnConfluentSendOffsetsLoop (or, with zombie, of
// TestTxnConfluentZombieFenced) with names starting with prefix.
func runProcessors(t *testing.T, prefix string, zombie bool) {
	requireConfluentKafka(t)
	env := newTxnEnv(t)
	in, out := env.name(prefix+"-in"), env.name(prefix+"-out")
	group, txnID := env.name(prefix+"-etl"), env.name(prefix+"-etl-tx")
	createTopic(t, env.addr, in, 3, nil)
	createTopic(t, env.addr, out, 3, nil)

	const n = 240
	inputs := map[int32][]string{}
	cl := client(t, env.addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var recs []*kgo.Record
	for i := range n {
		p := int32(i % 3)
		v := fmt.Sprintf("in-%d", i)
		recs = append(recs, &kgo.Record{Topic: in, Partition: p, Key: []byte(fmt.Sprintf("k%d", i%7)), Value: []byte(v)})
		inputs[p] = append(inputs[p], "out:"+v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	process := func(hangAt int) *clientProc {
		return startClient(t, "", python3, confluentTxnProg, "process", env.addr, in, out, group, txnID,
			"20", "3", strconv.Itoa(hangAt))
	}
	// The first processor commits batches 0, 1 and 3, aborts 2, and hangs
	// in batch 4 after flushing its records and sending its offsets.
	first := process(4)
	var hung processorEvent
	waitFor(t, clientTimeout, func() error {
		select {
		case <-first.exited:
			return fmt.Errorf("processor exited (%v) before hanging: %s", first.err, first.stderr.String())
		default:
		}
		for _, ev := range decodeLines[processorEvent](t, first.lines.snapshot()) {
			if ev.Event == "hang" {
				hung = ev
				return nil
			}
		}
		return fmt.Errorf("processor has not reached batch 4: %v", first.lines.snapshot())
	})
	if !zombie {
		first.kill()
	}
	second := decodeLines[processorEvent](t, process(-1).wait(t, clientTimeout))
	if zombie {
		if err := first.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		first.wait(t, clientTimeout)
	}
	events := append(decodeLines[processorEvent](t, first.lines.snapshot()), second...)

	aborted, committedBatches := hung.Records, 0
	for _, ev := range events {
		switch ev.Event {
		case "abort":
			aborted += ev.Records
		case "commit":
			committedBatches++
		}
	}
	if last := second[len(second)-1]; last.Event != "done" {
		t.Fatalf("second processor did not finish: last event %+v", last)
	}
	if aborted <= hung.Records || committedBatches == 0 {
		t.Fatalf("want committed and deliberately aborted batches besides the hung one: %+v", events)
	}
	if zombie {
		z := events[len(events)-len(second)-1]
		if z.Event != "zombie" || len(z.Outcomes) == 0 {
			t.Fatalf("fenced processor did not report: %+v", z)
		}
		for _, o := range z.Outcomes {
			if (o[0] == "produce" || o[0] == "commit") && o[1] == "ok" {
				t.Fatalf("fenced processor: %s succeeded: %v", o[0], z.Outcomes)
			}
		}
		// librdkafka names the fatal error of a fenced producer _FENCED.
		if last := z.Outcomes[len(z.Outcomes)-1]; last[1] != "_FENCED" {
			t.Fatalf("fenced processor was not fenced for good: %v", z.Outcomes)
		}
	}

	end := map[int32]int64{}
	for p, vs := range inputs {
		end[p] = int64(len(vs))
	}
	waitGroupOffsets(t, env.addr, group, in, end)
	waitTxnsSettled(t, env.addr, out)
	requireSameLogs(t, "read_committed output", confluentConsume(t, env.addr, out, "read_committed"), inputs)
	total := 0
	for _, vs := range confluentConsume(t, env.addr, out, "read_uncommitted") {
		total += len(vs)
	}
	if total != n+aborted {
		t.Fatalf("read_uncommitted output has %d records, want %d input + %d of aborted transactions", total, n, aborted)
	}
}

// kcatConsume reads topic to the end of every partition with kcat; extra
// are more kcat arguments (the isolation level).
func kcatConsume(t *testing.T, kcat, addr, topic string, extra ...string) map[int32][]string {
	t.Helper()
	args := append([]string{"-b", addr, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%p %o %s\n"}, extra...)
	lines := runClient(t, clientTimeout, "", kcat, args...)
	var recs []txnRecord
	for _, l := range lines {
		var r txnRecord
		if _, err := fmt.Sscanf(l, "%d %d %s", &r.P, &r.O, &r.V); err != nil {
			t.Fatalf("kcat printed %q: %v", l, err)
		}
		recs = append(recs, r)
	}
	return byPartition(t, recs)
}

// TestTxnKcatReadCommitted checks that kcat (librdkafka) with
// isolation.level=read_committed returns exactly the committed records:
// franz-go producers commit, abort and interleave transactions, then leave
// one open. read_committed stops at the open transaction (the last stable
// offset), read_uncommitted returns everything, and once the open
// transaction commits read_committed returns it too.
func TestTxnKcatReadCommitted(t *testing.T) {
	t.Parallel()
	kcat := requireTool(t, "kcat")
	env := newTxnEnv(t)
	topic := env.name("kcat-txn")
	createTopic(t, env.addr, topic, 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	producers := map[string]*kgo.Client{}
	for _, name := range []string{"a", "b"} {
		producers[name] = client(t, env.addr, kgo.TransactionalID(env.name("kcat-txn-"+name)),
			kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	// kcat cannot produce transactionally: franz-go runs the script.
	s := &txnScript{topic: topic}
	ran := 0
	runScript := func() {
		t.Helper()
		for _, st := range s.steps[ran:] {
			cl := producers[st.Txn]
			var err error
			switch st.Op {
			case "begin":
				err = cl.BeginTransaction()
			case "produce":
				var recs []*kgo.Record
				for _, r := range st.Records {
					recs = append(recs, &kgo.Record{Topic: topic, Partition: r.P, Key: []byte(r.K), Value: []byte(r.V)})
				}
				err = cl.ProduceSync(ctx, recs...).FirstErr()
			case "commit", "abort":
				err = cl.EndTransaction(ctx, kgo.TransactionEndTry(st.Op == "commit"))
			}
			if err != nil {
				t.Fatalf("%s %s: %v", st.Txn, st.Op, err)
			}
		}
		ran = len(s.steps)
	}

	s.op("a", "begin")
	s.produce("a", 0, 1, 0, 1)
	s.op("a", "commit")
	s.op("b", "begin")
	s.produce("b", 0, 1, 1)
	s.op("a", "begin")
	s.produce("a", 0, 1)
	s.op("b", "abort")
	s.produce("a", 1)
	s.op("a", "commit")
	s.op("b", "begin")
	s.produce("b", 0, 1)
	s.op("b", "commit")
	runScript()
	waitTxnsSettled(t, env.addr, topic)

	s.op("a", "begin") // left open while kcat reads
	s.produce("a", 0, 1, 1)
	runScript()
	all, committed, _ := s.expect()
	adm := admin(t, env.addr)
	waitFor(t, 10*time.Second, func() error {
		hw, lso, err := listOffsets(ctx, adm, topic)
		if err != nil {
			return err
		}
		if hw[0] != lso[0]+1 || hw[1] != lso[1]+2 {
			return fmt.Errorf("with 1 and 2 open records, high watermarks %v and last stable offsets %v", hw, lso)
		}
		return nil
	})
	requireSameLogs(t, "kcat read_committed with an open transaction",
		kcatConsume(t, kcat, env.addr, topic, "-X", "isolation.level=read_committed"), committed)
	// librdkafka's default is read_committed.
	requireSameLogs(t, "kcat read_uncommitted with an open transaction",
		kcatConsume(t, kcat, env.addr, topic, "-X", "isolation.level=read_uncommitted"), all)

	s.op("a", "commit")
	runScript()
	waitTxnsSettled(t, env.addr, topic)
	_, committed, _ = s.expect()
	requireSameLogs(t, "kcat read_committed after the open transaction commits",
		kcatConsume(t, kcat, env.addr, topic, "-X", "isolation.level=read_committed"), committed)
}

// TestTxnKcatBackToBackTransactions has a franz-go producer alternate
// aborted and committed transactions, each writing one record to each of
// 16 partitions and begun as soon as the previous EndTxn returns. With
// transaction version 2 (franz-go's produce v12 and EndTxn v5) every EndTxn
// bumps the producer epoch and answers before the markers are written, so
// the next transaction's first record can reach a partition while the
// previous one's marker is still pending there. The leader must then have
// the coordinator add the partition, which answers CONCURRENT_TRANSACTIONS
// until the marker is written (KIP-890), instead of appending the record
// to the previous transaction. Every produce and EndTxn must succeed, kcat
// read_committed must return exactly the committed records and
// read_uncommitted all of them, in order.
func TestTxnKcatBackToBackTransactions(t *testing.T) {
	t.Parallel()
	kcat := requireTool(t, "kcat")
	env := newTxnEnv(t)
	topic := env.name("kcat-b2b")
	const parts = 16
	createTopic(t, env.addr, topic, parts, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := client(t, env.addr, kgo.TransactionalID(env.name("kcat-b2b")), kgo.RecordPartitioner(kgo.ManualPartitioner()))

	all, committed := map[int32][]string{}, map[int32][]string{}
	for i := range 20 {
		commit := i%2 == 1
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		var recs []*kgo.Record
		for p := range int32(parts) {
			v := fmt.Sprintf("aborted-%d", i)
			if commit {
				v = fmt.Sprintf("committed-%d", i)
			}
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)})
			all[p] = append(all[p], v)
			if commit {
				committed[p] = append(committed[p], v)
			}
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("transaction %d: produce: %v", i, err)
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("transaction %d: end (commit %v): %v", i, commit, err)
		}
	}
	waitTxnsSettled(t, env.addr, topic)
	requireSameLogs(t, "kcat read_committed",
		kcatConsume(t, kcat, env.addr, topic, "-X", "isolation.level=read_committed"), committed)
	requireSameLogs(t, "kcat read_uncommitted",
		kcatConsume(t, kcat, env.addr, topic, "-X", "isolation.level=read_uncommitted"), all)
}
