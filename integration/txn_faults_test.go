package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// txnClusterSettings keep the transaction tests' clusters small and their
// timed-out transactions short-lived.
var txnClusterSettings = []string{
	"--set", "transaction.state.log.num.partitions=6",
	"--set", "transaction.abort.timed.out.transaction.cleanup.interval.ms=500",
}

// minISR2 is min.insync.replicas=2 for topics of replication factor 3.
func minISR2() map[string]*string {
	two := "2"
	return map[string]*string{"min.insync.replicas": &two}
}

// txnCoordinator returns the running broker that FindCoordinator names as
// the transaction coordinator of txnID.
func (c *cluster) txnCoordinator(adm *kadm.Client, txnID string) int32 {
	c.t.Helper()
	var id int32
	waitFor(c.t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, ok := adm.FindTxnCoordinators(ctx, txnID)[txnID]
		switch {
		case !ok:
			return fmt.Errorf("no FindCoordinator answer for %s", txnID)
		case r.Err != nil:
			return r.Err
		case c.procs[r.NodeID] == nil || !c.procs[r.NodeID].running():
			return fmt.Errorf("coordinator of %s is broker %d, which is down", txnID, r.NodeID)
		}
		id = r.NodeID
		return nil
	})
	return id
}

// logTxnDiagnostics logs, for a failed test, the partitions' offsets and
// producers and the transactional ids' state.
func logTxnDiagnostics(t testing.TB, adm *kadm.Client, topics []string, txnIDs ...string) {
	if !t.Failed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, topic := range topics {
		hw, _ := adm.ListEndOffsets(ctx, topic)
		lso, _ := adm.ListCommittedOffsets(ctx, topic)
		set := kadm.TopicsSet{}
		hw.Each(func(o kadm.ListedOffset) {
			l, _ := lso.Lookup(topic, o.Partition)
			t.Logf("%s/%d: high watermark %d, last stable offset %d, leader epoch %d", topic, o.Partition, o.Offset, l.Offset, o.LeaderEpoch)
			set.Add(topic, o.Partition)
		})
		ps, err := adm.DescribeProducers(ctx, set)
		if err != nil {
			t.Logf("describe producers of %s: %v", topic, err)
		}
		ps.EachProducer(func(p kadm.DescribedProducer) {
			t.Logf("  %s/%d producer %d epoch %d last sequence %d coordinator epoch %d transaction start %d",
				p.Topic, p.Partition, p.ProducerID, p.ProducerEpoch, p.LastSequence, p.CoordinatorEpoch, p.CurrentTxnStartOffset)
		})
	}
	ds, err := adm.DescribeTransactions(ctx, txnIDs...)
	if err != nil {
		t.Logf("describe transactions: %v", err)
	}
	for _, d := range ds.Sorted() {
		t.Logf("transactional id %s on broker %d: %s", d.TxnID, d.Coordinator, txnState(d))
	}
}

// TestTxnClusterKill9CoordinatorAndLeaders runs, on three broker processes
// (RF 3, min.insync.replicas=2), a transactional producer committing and
// sometimes aborting back to back, and a consume-transform-produce stage of
// two GroupTransactSession members fed by an idempotent producer, while
// kill -9 hits the transaction coordinator of the producer's id, then the
// leader of each partition in turn, then the (new) coordinator twice, most
// of them between a transaction's last record and its commit; each broker
// is restarted once transactions have committed without it. Then a
// read_committed consumer reads everything: every committed transaction
// once and whole, no record of an aborted one, a transaction whose commit
// failed whole or not at all, the transactions in order in every
// partition; and the stage's output holds exactly one record per input
// record.
func TestTxnClusterKill9CoordinatorAndLeaders(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3, txnClusterSettings...)
	const topic, in, out = "txn-kill", "txn-kill-in", "txn-kill-out"
	for _, tp := range []string{topic, in, out} {
		c.createTopic(tp, 3, 3, minISR2())
	}
	adm := c.admin()
	const txnID = "txn-kill-producer"
	t.Cleanup(func() {
		logTxnDiagnostics(t, adm, []string{topic, out}, txnID, "txn-kill-etl-member-0", "txn-kill-etl-member-1")
	})

	loop := startTxnLoop(c.addrs(), topic, txnID, 3)
	input := startEOSInput(c.addrs(), in, 3, 100)
	stage := startEOSStage(c.addrs(), in, out, "txn-kill-etl", 2)
	start := time.Now()
	stamp := func() string { return fmt.Sprintf("[%6.2fs]", time.Since(start).Seconds()) }
	progress := func(n int, while string) {
		t.Helper()
		base := loop.committed()
		waitFor(t, 60*time.Second, func() error {
			if got := loop.committed() - base; got < n {
				return fmt.Errorf("%d of %d transactions committed %s; %s", got, n, while, loop.summary())
			}
			return nil
		})
	}
	leaderOf := func(p int32) func() int32 {
		return func() int32 { return c.waitLeader(topic, p, -1, 30*time.Second).Leader }
	}
	coordinator := func() int32 { return c.txnCoordinator(adm, txnID) }
	// Most kills land between a transaction's last acknowledged record and
	// its commit, so that EndTxn and the markers meet the failover.
	victims := []struct {
		role         string
		find         func() int32
		beforeCommit bool
	}{
		{"transaction coordinator", coordinator, true},
		{"leader of partition 0", leaderOf(0), true},
		{"leader of partition 1", leaderOf(1), false},
		{"leader of partition 2", leaderOf(2), true},
		{"transaction coordinator", coordinator, false},
		{"transaction coordinator", coordinator, true},
	}
	for _, v := range victims {
		progress(3, "before the kill")
		id := v.find()
		if v.beforeCommit {
			fired := make(chan int, 1)
			kill := func(i int) {
				c.procs[id].kill()
				fired <- i
			}
			loop.beforeCommit.Store(&kill)
			select {
			case i := <-fired:
				t.Logf("%s kill -9 broker %d (%s) before transaction %d's commit; %s", stamp(), id, v.role, i, loop.summary())
			case <-time.After(time.Minute):
				t.Fatalf("the transaction loop reached no commit within a minute; %s", loop.summary())
			}
		} else {
			t.Logf("%s kill -9 broker %d (%s); %s", stamp(), id, v.role, loop.summary())
			c.procs[id].kill()
		}
		progress(3, fmt.Sprintf("with broker %d down", id))
		c.procs[id].restart()
		for _, tp := range []string{topic, in, out, "__transaction_state", "__consumer_offsets"} {
			c.waitISR(tp, 3, 60*time.Second)
		}
		t.Logf("%s broker %d back in every ISR; %s; %s", stamp(), id, loop.summary(), stage.summary())
	}
	progress(3, "after the last restart")
	loop.stop(t)
	input.stop(t)
	t.Logf("%s load stopped; %s", stamp(), loop.summary())

	sentinels := c.client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	writeSentinels(t, sentinels, topic, 3)
	writeSentinels(t, sentinels, in, 3)
	stage.waitCaughtUp(t, adm, stableOffsets(t, adm, in, 30*time.Second), 2*time.Minute)
	stage.stop(t)
	writeSentinels(t, sentinels, out, 3)
	t.Logf("%s %s", stamp(), stage.summary())

	read := readToSentinels(t, c.addrs(), topic, 3, kgo.ReadCommitted(), time.Minute)
	loop.check(t, read)
	if d := describeTxn(t, adm, txnID); d.State != "CompleteCommit" && d.State != "CompleteAbort" {
		t.Errorf("transactional id %s after the load: %s, want a completed transaction", txnID, txnState(d))
	}
	// The aborted transactions' records are in the log, so their absence
	// above is the broker's doing.
	all := readToSentinels(t, c.addrs(), topic, 3, kgo.ReadUncommitted(), time.Minute)
	if n, m := countRecords(all), countRecords(read); n <= m {
		t.Errorf("read_uncommitted read %d records, read_committed %d: no aborted record in the log", n, m)
	} else {
		t.Logf("read_committed: %d records; read_uncommitted: %d", m, n)
	}
	input.mu.Lock()
	acked := maps.Clone(input.acked)
	input.mu.Unlock()
	checkEOS(t, readToSentinels(t, c.addrs(), in, 3, kgo.ReadCommitted(), time.Minute),
		readToSentinels(t, c.addrs(), out, 3, kgo.ReadCommitted(), time.Minute), acked)
	sent, ackedN, failed := input.counts()
	t.Logf("input producer: %d sent, %d acknowledged, %d failed", sent, ackedN, failed)
	t.Logf("%s %s", stamp(), loop.summary())
	loop.logErrors(t)
	stage.logErrors(t)
}

// buildTxnProducer builds testdata/txnproducer and returns its path.
func buildTxnProducer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "txnproducer")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/txnproducer").CombinedOutput(); err != nil {
		t.Fatalf("building testdata/txnproducer: %v\n%s", err, out)
	}
	return bin
}

// TestTxnProducerKilledMidTransactionAborted runs a transactional producer
// as a separate process with transaction.timeout.ms=5000: it commits one
// transaction, produces a second and is killed with SIGKILL before ending
// it. While the transaction is open the last stable offset stays at its
// first offset in each partition although a later transaction of another
// producer committed; once its timeout has passed (not before) the
// coordinator aborts it, counts it in sluice_txn_timed_out_total and bumps
// the producer's epoch, the last stable offset reaches the high
// watermark, and a read_committed consumer reads both committed
// transactions and none of the open one, which read_uncommitted shows was
// written.
func TestTxnProducerKilledMidTransactionAborted(t *testing.T) {
	t.Parallel()
	bin := buildTxnProducer(t)
	c := startCluster(t, 3, txnClusterSettings...)
	const topic, txnID = "txn-killed", "txn-killed-producer"
	c.createTopic(topic, 2, 3, minISR2())
	adm := c.admin()
	t.Cleanup(func() { logTxnDiagnostics(t, adm, []string{topic}, txnID) })

	cmd := exec.Command(bin, "-brokers", strings.Join(c.addrs(), ","), "-topic", topic, "-txn-id", txnID,
		"-timeout", "5s", "-partitions", "2", "-records", "6")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	open := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "OPEN" {
				open <- true
				return
			}
		}
		open <- false
	}()
	select {
	case ok := <-open:
		if !ok {
			<-exited
			t.Fatalf("txnproducer ended before its transaction was open: %v\n%s", exitErr, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("txnproducer did not open its transaction within 60 s\n%s", stderr.String())
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited

	d := describeTxn(t, adm, txnID)
	if d.State != "Ongoing" || d.TimeoutMillis != 5000 || len(d.Topics[topic]) != 2 {
		t.Fatalf("killed producer's transaction: %s, want Ongoing, timeout 5000, both partitions", txnState(d))
	}
	starts := txnStartOffsets(t, adm, topic, 2, d.ProducerID)
	// Another producer commits after the open transaction.
	other := c.client(kgo.TransactionalID("txn-killed-other"), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	commitValues(t, other, map[int32]string{0: "after-0", 1: "after-1"})
	held := offsetsView(t, adm, topic)
	checked := time.Now()
	if deadline := time.UnixMilli(d.StartTimestamp + 5000); checked.After(deadline) {
		t.Fatalf("the open transaction's timeout passed (at %v) before the test could check the held offsets (%v); the machine is too slow for this test", deadline, checked)
	}
	for p, start := range starts {
		want := fmt.Sprintf("%s/%d hw ", topic, p)
		i := strings.Index(held, want)
		var hw, lso int64
		if i < 0 {
			t.Fatalf("no offsets for partition %d in %s", p, held)
		}
		fmt.Sscanf(held[i+len(want):], "%d lso %d", &hw, &lso)
		if lso != start || hw <= lso {
			t.Errorf("partition %d with the killed producer's transaction open from offset %d: %s; want the last stable offset held there, below the high watermark",
				p, start, held)
		}
	}

	coord := c.procs[c.txnCoordinator(adm, txnID)]
	stableOffsets(t, adm, topic, 30*time.Second)
	movedAt := time.Now()
	if earliest := time.UnixMilli(d.StartTimestamp + 5000); movedAt.Before(earliest) {
		t.Errorf("the open transaction was aborted at about %v, before its timeout ended at %v", movedAt, earliest)
	}
	t.Logf("last stable offset reached the high watermark %v after the transaction began (timeout 5 s)",
		movedAt.Sub(time.UnixMilli(d.StartTimestamp)).Round(time.Millisecond))
	if n := coord.metric(t, "sluice_txn_timed_out_total"); n != 1 {
		t.Errorf("coordinator's sluice_txn_timed_out_total = %v, want 1", n)
	}
	if after := describeTxn(t, adm, txnID); after.State != "CompleteAbort" || after.ProducerEpoch <= d.ProducerEpoch {
		t.Errorf("after the timeout: %s, want CompleteAbort with an epoch above %d", txnState(after), d.ProducerEpoch)
	}

	// The id is usable again: a new instance commits.
	revived := c.client(kgo.TransactionalID(txnID), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	commitValues(t, revived, map[int32]string{0: "revived-0", 1: "revived-1"})
	writeSentinels(t, c.client(kgo.RecordPartitioner(kgo.ManualPartitioner())), topic, 2)
	want := []string{"after-0", "after-1", "committed-0", "committed-1", "committed-2", "committed-3", "committed-4", "committed-5", "revived-0", "revived-1"}
	if got := values(readToSentinels(t, c.addrs(), topic, 2, kgo.ReadCommitted(), time.Minute)); !slices.Equal(got, want) {
		t.Errorf("read_committed read %v, want %v", got, want)
	}
	all := values(readToSentinels(t, c.addrs(), topic, 2, kgo.ReadUncommitted(), time.Minute))
	for i := range 6 {
		if !slices.Contains(all, fmt.Sprintf("open-%d", i)) {
			t.Errorf("read_uncommitted lacks open-%d: the killed producer's records were not written (%v)", i, all)
		}
	}
}

// txnStartOffsets returns, per partition of topic, the first offset of
// producer pid's open transaction, as DescribeProducers reports it.
func txnStartOffsets(t *testing.T, adm *kadm.Client, topic string, parts int32, pid int64) map[int32]int64 {
	t.Helper()
	set := kadm.TopicsSet{}
	for p := range parts {
		set.Add(topic, p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ps, err := adm.DescribeProducers(ctx, set)
	if err != nil {
		t.Fatalf("describe producers: %v", err)
	}
	out := map[int32]int64{}
	ps.EachProducer(func(p kadm.DescribedProducer) {
		if p.ProducerID == pid && p.CurrentTxnStartOffset >= 0 {
			out[p.Partition] = p.CurrentTxnStartOffset
		}
	})
	if int32(len(out)) != parts {
		t.Fatalf("producer %d has an open transaction in %d of %d partitions: %v", pid, len(out), parts, out)
	}
	return out
}

// commitValues commits one transaction of cl writing value to each
// partition given.
func commitValues(t *testing.T, cl *kgo.Client, byPart map[int32]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for p, v := range byPart {
		if err := cl.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", v, err)
		}
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

// values lists the records' values, sorted.
func values(m map[int32][]*kgo.Record) []string {
	var out []string
	for _, rs := range m {
		for _, r := range rs {
			out = append(out, string(r.Value))
		}
	}
	slices.Sort(out)
	return out
}

// TestTxnZombieProducerFenced gives two producers one transactional id on
// three broker processes: the second's InitProducerId fences the first
// and aborts its open transaction. The first (the zombie) then fails to
// produce and to commit through franz-go, and its raw Produce (v9 and
// v12), AddPartitionsToTxn and EndTxn requests with the old epoch get
// INVALID_PRODUCER_EPOCH or PRODUCER_FENCED and write nothing; a
// read_committed consumer reads the second producer's transaction and
// nothing of the zombie's, whose first records read_uncommitted shows.
func TestTxnZombieProducerFenced(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3, txnClusterSettings...)
	const topic, txnID = "txn-zombie", "txn-zombie-id"
	c.createTopic(topic, 2, 3, minISR2())
	adm := c.admin()
	t.Cleanup(func() { logTxnDiagnostics(t, adm, []string{topic}, txnID) })
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	opts := []kgo.Opt{kgo.TransactionalID(txnID), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner())}

	zombie := c.client(opts...)
	if err := zombie.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for p := range int32(2) {
		if err := zombie.ProduceSync(ctx, &kgo.Record{Partition: p, Value: fmt.Appendf(nil, "zombie-before-%d", p)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	old := describeTxn(t, adm, txnID)
	if old.State != "Ongoing" {
		t.Fatalf("zombie's transaction: %s, want Ongoing", txnState(old))
	}

	successor := c.client(opts...)
	commitValues(t, successor, map[int32]string{0: "successor-0", 1: "successor-1"})
	now := describeTxn(t, adm, txnID)
	if now.ProducerID != old.ProducerID || now.ProducerEpoch <= old.ProducerEpoch {
		t.Fatalf("after the successor: %s; the zombie had producer %d epoch %d", txnState(now), old.ProducerID, old.ProducerEpoch)
	}
	fenced := func(err error) bool {
		return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch)
	}

	hwBefore := offsetsView(t, adm, topic)
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	err := zombie.ProduceSync(pctx, &kgo.Record{Partition: 0, Value: []byte("zombie-after-0")}).FirstErr()
	pcancel()
	if !fenced(err) {
		t.Errorf("zombie's produce after the fence: %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", err)
	}
	if err := zombie.EndTransaction(ctx, kgo.TryCommit); err == nil {
		t.Errorf("zombie's commit after the fence succeeded")
	}

	// The zombie's own requests, with its old epoch, as raw requests.
	leaders := c.waitISR(topic, 3, 30*time.Second)
	for _, v := range []int16{9, 12} {
		for p := range int32(2) {
			req := txnProduceRequest(v, txnID, topic, p, txnBatch(old.ProducerID, old.ProducerEpoch, 1, fmt.Sprintf("zombie-raw-v%d-%d", v, p)))
			got := roundTrip(t, c.procs[leaders[p].Leader].addr, req).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
			if got != kerr.InvalidProducerEpoch.Code && got != kerr.ProducerFenced.Code {
				t.Errorf("zombie's produce v%d to partition %d: %s, want INVALID_PRODUCER_EPOCH or PRODUCER_FENCED", v, p, errName(got))
			}
		}
	}
	coord := c.procs[c.txnCoordinator(adm, txnID)].addr
	add := roundTrip(t, coord, addPartitionsV3(txnID, old.ProducerID, old.ProducerEpoch, map[string][]int32{topic: {0, 1}})).(*kmsg.AddPartitionsToTxnResponse)
	for k, code := range addPartitionsCodes(add) {
		if code != kerr.ProducerFenced.Code {
			t.Errorf("zombie's AddPartitionsToTxn v3 %s: %s, want PRODUCER_FENCED", k, errName(code))
		}
	}
	for _, v := range []int16{3, 5} {
		end := kmsg.NewPtrEndTxnRequest()
		end.Version = v
		end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = txnID, old.ProducerID, old.ProducerEpoch, true
		if got := roundTrip(t, coord, end).(*kmsg.EndTxnResponse).ErrorCode; got != kerr.ProducerFenced.Code {
			t.Errorf("zombie's EndTxn v%d: %s, want PRODUCER_FENCED", v, errName(got))
		}
	}
	if after := offsetsView(t, adm, topic); after != hwBefore {
		t.Errorf("the fenced zombie's writes moved the offsets:\nbefore %s\nafter  %s", hwBefore, after)
	}
	if d := describeTxn(t, adm, txnID); txnState(d) != txnState(now) {
		t.Errorf("the fenced zombie changed its transactional id: %s, was %s", txnState(d), txnState(now))
	}

	writeSentinels(t, c.client(kgo.RecordPartitioner(kgo.ManualPartitioner())), topic, 2)
	if got, want := values(readToSentinels(t, c.addrs(), topic, 2, kgo.ReadCommitted(), time.Minute)), []string{"successor-0", "successor-1"}; !slices.Equal(got, want) {
		t.Errorf("read_committed read %v, want %v", got, want)
	}
	all := values(readToSentinels(t, c.addrs(), topic, 2, kgo.ReadUncommitted(), time.Minute))
	if !slices.Contains(all, "zombie-before-0") || !slices.Contains(all, "zombie-before-1") {
		t.Errorf("read_uncommitted read %v: the zombie's first records were never written", all)
	}
	for _, v := range all {
		if strings.HasPrefix(v, "zombie-after") || strings.HasPrefix(v, "zombie-raw") {
			t.Errorf("the log holds %q, written after the fence", v)
		}
	}
}

// TestTxnClusterConcurrentPartitionAddsNotRefused runs transactions whose
// records go to three partitions led by three brokers at once, as any
// client batching a transaction does, on a healthy cluster with a
// franz-go producer's default settings. Under transaction version 2 each
// partition leader adds its partition with AddPartitionsToTxn v5, so the
// coordinator sees the three adds of one transactional id concurrently and
// answers all but the first CONCURRENT_TRANSACTIONS while the first is
// written. Kafka's partition leaders retry that answer themselves
// (add.partitions.to.txn.retry.backoff.ms 20, up to
// add.partitions.to.txn.retry.backoff.max.ms 100) before answering the
// producer; a leader that passes it on as NOT_ENOUGH_REPLICAS makes the
// client refresh its metadata and retry (franz-go: after up to
// metadata.max.age's 5 s), several seconds per transaction. No produce
// may be refused, and no transaction's produce may take seconds.
func TestTxnClusterConcurrentPartitionAddsNotRefused(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3, txnClusterSettings...)
	const topic = "txn-concurrent-adds"
	c.createTopic(topic, 3, 3, minISR2())
	leaders := map[int32]bool{}
	for _, pv := range c.waitISR(topic, 3, 30*time.Second) {
		leaders[pv.Leader] = true
	}
	if len(leaders) != 3 {
		t.Fatalf("the partitions' leaders are %v, want three brokers", leaders)
	}
	prod := c.client(kgo.TransactionalID("txn-concurrent-adds-p"), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sum := func(series string) float64 {
		n := 0.0
		for _, id := range c.ids() {
			n += max(0, c.procs[id].metric(t, series))
		}
		return n
	}
	refused := func() float64 { return sum(`sluice_request_errors_total{api="Produce",error="NOT_ENOUGH_REPLICAS"}`) }
	concurrent := func() float64 { return sum(`sluice_txn_verifications_total{result="CONCURRENT_TRANSACTIONS"}`) }
	// The first transaction of a franz-go client runs at transaction
	// version 1 (it learns of version 2 from its first EndTxn); the ones
	// after it at version 2.
	for i := range 4 {
		if err := prod.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		recs := make([]*kgo.Record, 6)
		for j := range recs {
			recs[j] = &kgo.Record{Partition: int32(j % 3), Value: fmt.Appendf(nil, "t%d-%d", i, j)}
		}
		before, beforeConcurrent, start := refused(), concurrent(), time.Now()
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("transaction %d: produce: %v", i, err)
		}
		took := time.Since(start)
		if err := prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatalf("transaction %d: commit: %v", i, err)
		}
		if n := refused() - before; n > 0 || took > 3*time.Second {
			t.Errorf("transaction %d: its produce to three partitions took %v; the leaders refused %v produce requests with NOT_ENOUGH_REPLICAS "+
				"and had %v partition additions answered CONCURRENT_TRANSACTIONS by the coordinator",
				i, took.Round(time.Millisecond), n, concurrent()-beforeConcurrent)
		}
	}
	writeSentinels(t, c.client(kgo.RecordPartitioner(kgo.ManualPartitioner())), topic, 3)
	if n := len(values(readToSentinels(t, c.addrs(), topic, 3, kgo.ReadCommitted(), time.Minute))); n != 24 {
		t.Errorf("read_committed read %d records, want the 24 committed", n)
	}
}
