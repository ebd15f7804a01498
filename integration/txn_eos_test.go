package integration

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Transactional workloads with a recorded history, run against a cluster
// under faults by the transaction cluster tests and the soak: a producer
// running transactions back to back (txnLoop), an idempotent producer
// filling an input topic (eosInput) and a consume-transform-produce stage
// of GroupTransactSession members between two topics (eosStage).

// txnOutcome is what a transactional producer was told about one of its
// transactions.
type txnOutcome int

const (
	// txnAborted: never asked to commit (aborted, or failed before its
	// commit was sent): none of its records may be read.
	txnAborted txnOutcome = iota
	// txnCommitted: EndTransaction(commit) returned nil: every record is
	// read exactly once.
	txnCommitted
	// txnUnknown: the commit was sent and failed: all of its records or
	// none.
	txnUnknown
)

// txnLoop runs transactions back to back with one franz-go transactional
// producer: transaction i writes txnLoopRecords records
// "t<i>-<j>" to partition j mod the partition count, and every fourth is
// aborted on purpose. A transaction whose end fails is retried as the
// client documents (TryAbort), and a client that cannot go on is replaced
// by a new one with the same transactional id, whose InitProducerId
// fences the old one.
type txnLoop struct {
	seeds []string
	topic string
	txnID string
	parts int32

	mu       sync.Mutex
	outcomes []txnOutcome // by transaction number
	counts   [3]int       // by outcome
	errs     map[string]int
	renewals int

	// beforeCommit, when set, is taken and called by the loop after a
	// transaction's records are acknowledged and before its commit is
	// sent, with the transaction's number.
	beforeCommit atomic.Pointer[func(int)]

	cancel context.CancelFunc
	done   chan struct{}
}

// txnLoopRecords is the size of each transaction of a txnLoop.
const txnLoopRecords = 6

func startTxnLoop(seeds []string, topic, txnID string, parts int32) *txnLoop {
	ctx, cancel := context.WithCancel(context.Background())
	l := &txnLoop{seeds: seeds, topic: topic, txnID: txnID, parts: parts, errs: map[string]int{},
		cancel: cancel, done: make(chan struct{})}
	go l.run(ctx)
	return l
}

func (l *txnLoop) client() *kgo.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers(l.seeds...), kgo.TransactionalID(l.txnID),
		kgo.DefaultProduceTopic(l.topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.TransactionTimeout(10*time.Second), kgo.RecordDeliveryTimeout(20*time.Second),
		kgo.MetadataMinAge(500*time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }))
	if err != nil {
		panic(err) // only invalid options fail NewClient
	}
	return cl
}

func (l *txnLoop) run(ctx context.Context) {
	defer close(l.done)
	cl := l.client()
	defer func() { cl.Close() }()
	for i := 0; ctx.Err() == nil; i++ {
		if !l.one(cl, i) {
			cl.Close()
			cl = l.client()
			l.mu.Lock()
			l.renewals++
			l.mu.Unlock()
		}
	}
}

// one runs transaction i and reports whether the client can go on.
func (l *txnLoop) one(cl *kgo.Client, i int) bool {
	l.set(i, txnAborted)
	if err := cl.BeginTransaction(); err != nil {
		l.err("begin", err)
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	recs := make([]*kgo.Record, txnLoopRecords)
	for j := range recs {
		recs[j] = &kgo.Record{Partition: int32(j) % l.parts, Value: fmt.Appendf(nil, "t%d-%d", i, j)}
	}
	commit := i%4 != 3
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		l.err("produce", err)
		commit = false
	}
	if !commit {
		if err := cl.AbortBufferedRecords(ctx); err != nil {
			l.err("abort buffered", err)
			return false
		}
		if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
			l.err("abort", err)
			return false
		}
		return true
	}
	if f := l.beforeCommit.Swap(nil); f != nil {
		(*f)(i)
	}
	l.set(i, txnUnknown)
	err := cl.EndTransaction(ctx, kgo.TryCommit)
	switch {
	case err == nil:
		l.set(i, txnCommitted)
		return true
	case errors.Is(err, kerr.OperationNotAttempted):
		l.set(i, txnAborted) // the commit was never sent
	}
	l.err("commit", err)
	if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		l.err("abort after a failed commit", err)
		return false
	}
	return true
}

func (l *txnLoop) set(i int, o txnOutcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i == len(l.outcomes) {
		l.outcomes = append(l.outcomes, o)
	} else {
		l.counts[l.outcomes[i]]--
		l.outcomes[i] = o
	}
	l.counts[o]++
}

func (l *txnLoop) err(what string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs[what+": "+err.Error()]++
}

// committed is how many transactions committed so far.
func (l *txnLoop) committed() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[txnCommitted]
}

// stop lets the transaction under way finish and stops the loop.
func (l *txnLoop) stop(t testing.TB) {
	l.cancel()
	select {
	case <-l.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("transaction loop %s did not stop within 2 minutes", l.txnID)
	}
}

func (l *txnLoop) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("%d transactions: %d committed, %d aborted, %d with an unknown outcome; %d client renewals",
		len(l.outcomes), l.counts[txnCommitted], l.counts[txnAborted], l.counts[txnUnknown], l.renewals)
}

// logErrors logs the most frequent errors the loop met.
func (l *txnLoop) logErrors(t testing.TB) {
	l.mu.Lock()
	defer l.mu.Unlock()
	logTop(t, "transaction loop "+l.txnID, l.errs)
}

func logTop(t testing.TB, who string, counts map[string]int) {
	msgs := make([]string, 0, len(counts))
	for m := range counts {
		msgs = append(msgs, m)
	}
	sort.Slice(msgs, func(i, j int) bool { return counts[msgs[i]] > counts[msgs[j]] })
	for i, m := range msgs {
		if i == 8 {
			t.Logf("  %s: ... %d more kinds of error", who, len(msgs)-i)
			break
		}
		t.Logf("  %s: x%d %s", who, counts[m], m)
	}
}

// check verifies what a read_committed consumer read (by partition)
// against the outcomes: no record twice; every committed transaction
// whole; no record of an aborted one; an unknown one whole or absent; and
// in every partition the transactions in the order they ran.
func (l *txnLoop) check(t testing.TB, read map[int32][]*kgo.Record) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := map[int]map[int]string{} // transaction -> record -> where
	var problems []string
	report := func(format string, args ...any) {
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	for p, recs := range read {
		last := -1
		for _, r := range recs {
			var i, j int
			if _, err := fmt.Sscanf(string(r.Value), "t%d-%d", &i, &j); err != nil || i >= len(l.outcomes) || j >= txnLoopRecords {
				report("partition %d offset %d: record %q was never produced", p, r.Offset, r.Value)
				continue
			}
			where := fmt.Sprintf("%d@%d", p, r.Offset)
			if seen[i] == nil {
				seen[i] = map[int]string{}
			}
			if w, dup := seen[i][j]; dup {
				report("record %q read twice: at %s and %s", r.Value, w, where)
			}
			seen[i][j] = where
			if l.outcomes[i] == txnAborted {
				report("record %q of aborted transaction %d read at %s", r.Value, i, where)
			}
			if i < last {
				report("partition %d offset %d: transaction %d after transaction %d", p, r.Offset, i, last)
			}
			last = i
		}
	}
	var unknownIn, unknownOut int
	for i, o := range l.outcomes {
		n := len(seen[i])
		if o == txnUnknown && n == txnLoopRecords {
			unknownIn++
		} else if o == txnUnknown && n == 0 {
			unknownOut++
		}
		switch {
		case o == txnCommitted && n != txnLoopRecords:
			report("committed transaction %d: %d of its %d records read", i, n, txnLoopRecords)
		case o == txnUnknown && n != 0 && n != txnLoopRecords:
			report("transaction %d (outcome unknown to the client): %d of its %d records read, want all or none", i, n, txnLoopRecords)
		}
	}
	t.Logf("transaction loop %s: of %d transactions whose commit failed, %d committed and %d did not",
		l.txnID, l.counts[txnUnknown], unknownIn, unknownOut)
	for _, p := range problems {
		t.Error(p)
	}
}

// eosInput fills an input topic with an idempotent acks=all producer:
// values "in-<sequence>", sequence n to partition n mod the partition
// count, so each partition's sequences rise with the offset.
type eosInput struct {
	mu     sync.Mutex
	acked  map[string]bool
	failed int
	sent   int
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}
}

func startEOSInput(seeds []string, topic string, parts int32, perSecond int) *eosInput {
	ctx, cancel := context.WithCancel(context.Background())
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(30*time.Second), kgo.MetadataMinAge(500*time.Millisecond),
		kgo.MaxBufferedRecords(2000))
	if err != nil {
		panic(err) // only invalid options fail NewClient
	}
	in := &eosInput{acked: map[string]bool{}, cl: cl, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(in.done)
		tick := time.NewTicker(time.Second / time.Duration(perSecond))
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			r := &kgo.Record{Partition: int32(n) % parts, Value: fmt.Appendf(nil, "in-%d", n)}
			in.mu.Lock()
			in.sent++
			in.mu.Unlock()
			cl.Produce(context.Background(), r, func(r *kgo.Record, err error) {
				in.mu.Lock()
				defer in.mu.Unlock()
				if err != nil {
					in.failed++
					return
				}
				in.acked[string(r.Value)] = true
			})
		}
	}()
	return in
}

// stop ends the load and waits (bounded) until every record is
// acknowledged or failed.
func (in *eosInput) stop(t testing.TB) {
	in.cancel()
	<-in.done
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := in.cl.Flush(ctx); err != nil {
		t.Errorf("input producer: records neither acknowledged nor failed 90 s after the load stopped: %v", err)
	}
	in.cl.Close()
}

func (in *eosInput) counts() (sent, acked, failed int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.sent, len(in.acked), in.failed
}

// eosStage is a consume-transform-produce stage: members GroupTransactSession
// clients in one group consume the input topic read_committed and, in one
// transaction with the consumed offsets, produce for every input record
// one output record to the same partition, keyed by the input value, with
// value "out:<input value>". A member whose End fails (which franz-go
// documents as not retryable) closes its session and starts a new one with
// the same transactional id.
type eosStage struct {
	seeds             []string
	in, out, group    string
	mu                sync.Mutex
	commits, aborts   int
	processed         int // input records in committed transactions
	restarts          int
	errs              map[string]int
	cancel            context.CancelFunc
	wg                sync.WaitGroup
	transactionalBase string
}

func startEOSStage(seeds []string, in, out, group string, members int) *eosStage {
	ctx, cancel := context.WithCancel(context.Background())
	s := &eosStage{seeds: seeds, in: in, out: out, group: group, errs: map[string]int{}, cancel: cancel,
		transactionalBase: group + "-member-"}
	for m := range members {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.member(ctx, m)
		}()
	}
	return s
}

func (s *eosStage) member(ctx context.Context, m int) {
	for ctx.Err() == nil {
		sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(s.seeds...),
			kgo.TransactionalID(s.transactionalBase+strconv.Itoa(m)),
			kgo.ConsumerGroup(s.group), kgo.ConsumeTopics(s.in),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.RequireStableFetchOffsets(),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.DefaultProduceTopic(s.out), kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.TransactionTimeout(10*time.Second), kgo.RecordDeliveryTimeout(20*time.Second),
			kgo.SessionTimeout(10*time.Second), kgo.RebalanceTimeout(20*time.Second),
			kgo.FetchMaxWait(500*time.Millisecond), kgo.MetadataMinAge(500*time.Millisecond),
			kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }))
		if err != nil {
			s.err("new session", err)
			return
		}
		err = s.session(ctx, sess)
		if err != nil {
			s.err("end", err)
		}
		sess.Close()
		if ctx.Err() == nil {
			s.mu.Lock()
			s.restarts++
			s.mu.Unlock()
		}
	}
}

// session runs transactions on sess until ctx ends or End fails.
func (s *eosStage) session(ctx context.Context, sess *kgo.GroupTransactSession) error {
	for {
		fs := sess.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		fs.EachError(func(_ string, _ int32, err error) { s.err("fetch", err) })
		var recs []*kgo.Record
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Value) != sentinelValue {
				recs = append(recs, r)
			}
		})
		if fs.NumRecords() == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		// The transaction finishes even when the stage is stopping.
		tctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		e := kgo.AbortingFirstErrPromise(sess.Client())
		for _, r := range recs {
			sess.Produce(tctx, &kgo.Record{Partition: r.Partition, Key: r.Value, Value: append([]byte("out:"), r.Value...)}, e.Promise())
		}
		perr := e.Err()
		if perr != nil {
			s.err("produce", perr)
		}
		committed, err := sess.End(tctx, kgo.TransactionEndTry(perr == nil))
		cancel()
		if err != nil {
			return err
		}
		s.mu.Lock()
		if committed {
			s.commits++
			s.processed += len(recs)
		} else {
			s.aborts++
		}
		s.mu.Unlock()
	}
}

func (s *eosStage) err(what string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs[what+": "+err.Error()]++
}

// stop ends the stage after the transactions under way.
func (s *eosStage) stop(t testing.TB) {
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("stage %s did not stop within 2 minutes", s.group)
	}
}

func (s *eosStage) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("stage %s: %d transactions committed (%d input records), %d aborted, %d session restarts",
		s.group, s.commits, s.processed, s.aborts, s.restarts)
}

func (s *eosStage) logErrors(t testing.TB) {
	s.mu.Lock()
	defer s.mu.Unlock()
	logTop(t, "stage "+s.group, s.errs)
}

// eosSeq is the sequence number of an input value "in-<n>".
func eosSeq(v string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimPrefix(v, "in-"))
	return n, err == nil && strings.HasPrefix(v, "in-")
}

// checkEOS verifies a stage's output against its input, both read
// read_committed to their sentinels: every input record has exactly one
// output record, in the input's partition, with the transformed value; no
// output record lacks an input record; in every output partition the
// inputs appear in their input order; and every acknowledged input record
// is in the input.
func checkEOS(t testing.TB, input, output map[int32][]*kgo.Record, acked map[string]bool) {
	t.Helper()
	var problems []string
	report := func(format string, args ...any) {
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	inPart := map[string]int32{}
	for p, recs := range input {
		for _, r := range recs {
			v := string(r.Value)
			if _, dup := inPart[v]; dup {
				report("input %q twice (idempotent producer)", v)
			}
			inPart[v] = p
		}
	}
	for v := range acked {
		if _, ok := inPart[v]; !ok {
			report("acknowledged input %q is not in the input topic", v)
		}
	}
	outs := map[string][]string{}
	for p, recs := range output {
		last := -1
		for _, r := range recs {
			k := string(r.Key)
			where := fmt.Sprintf("%d@%d", p, r.Offset)
			outs[k] = append(outs[k], where)
			ip, ok := inPart[k]
			switch {
			case !ok:
				report("output at %s for input %q, which is not in the input", where, k)
			case ip != p:
				report("output at %s for input %q of partition %d", where, k, ip)
			case string(r.Value) != "out:"+k:
				report("output at %s for input %q has value %q", where, k, r.Value)
			}
			if n, ok := eosSeq(k); ok {
				if n <= last {
					report("output partition %d offset %d: input %d after input %d", p, r.Offset, n, last)
				}
				last = n
			}
		}
	}
	missing, dups := 0, 0
	for v := range inPart {
		switch n := len(outs[v]); {
		case n == 0:
			missing++
			report("input %q has no output", v)
		case n > 1:
			dups++
			report("input %q has %d outputs: %v", v, n, outs[v])
		}
	}
	t.Logf("exactly-once check: %d input records, %d output records; %d inputs without output, %d with more than one",
		len(inPart), countRecords(output), missing, dups)
	for _, p := range problems {
		t.Error(p)
	}
}

func countRecords(m map[int32][]*kgo.Record) int {
	n := 0
	for _, rs := range m {
		n += len(rs)
	}
	return n
}

// waitCaughtUp waits until the stage's group has committed, for every
// partition of its input, the offset ends gives.
func (s *eosStage) waitCaughtUp(t testing.TB, adm *kadm.Client, ends map[int32]int64, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		offs, err := adm.FetchOffsets(ctx, s.group)
		if err != nil {
			return err
		}
		for p, end := range ends {
			o, ok := offs.Lookup(s.in, p)
			if !ok || o.At != end {
				return fmt.Errorf("%s: group %s committed %d of partition %d, want %d (%s)", s.in, s.group, o.At, p, end, s.summary())
			}
		}
		return nil
	})
}

// txnWorkload is a cluster's transactional workload with its checks: a
// txnLoop on <name> and an exactly-once chain <name>-in -> <name>-out
// (eosInput at 100 records/s, an eosStage of two members in group
// <name>-etl), all topics with replication factor 3 and
// min.insync.replicas=2.
type txnWorkload struct {
	t              *testing.T
	c              *cluster
	adm            *kadm.Client
	topic, in, out string
	parts          int32
	loop           *txnLoop
	input          *eosInput
	stage          *eosStage
	start          time.Time
}

func startTxnWorkload(t *testing.T, c *cluster, name string, parts int32) *txnWorkload {
	t.Helper()
	w := &txnWorkload{t: t, c: c, adm: c.admin(), topic: name, in: name + "-in", out: name + "-out", parts: parts}
	two := "2"
	for _, tp := range []string{w.topic, w.in, w.out} {
		c.createTopic(tp, parts, 3, map[string]*string{"min.insync.replicas": &two})
	}
	w.loop = startTxnLoop(c.addrs(), w.topic, name+"-producer", parts)
	w.input = startEOSInput(c.addrs(), w.in, parts, 100)
	w.stage = startEOSStage(c.addrs(), w.in, w.out, name+"-etl", 2)
	w.start = time.Now()
	t.Cleanup(func() {
		logTxnDiagnostics(t, w.adm, []string{w.topic, w.out}, w.loop.txnID, w.stage.transactionalBase+"0", w.stage.transactionalBase+"1")
	})
	return w
}

func (w *txnWorkload) stamp() string { return fmt.Sprintf("[%6.2fs]", time.Since(w.start).Seconds()) }

func (w *txnWorkload) summary() string { return w.loop.summary() + "; " + w.stage.summary() }

// progress waits until the transaction loop has committed n more
// transactions.
func (w *txnWorkload) progress(n int, while string) {
	w.t.Helper()
	base := w.loop.committed()
	waitFor(w.t, time.Minute, func() error {
		if got := w.loop.committed() - base; got < n {
			return fmt.Errorf("%d of %d transactions committed %s; %s", got, n, while, w.loop.summary())
		}
		return nil
	})
}

// waitISRs waits for a full ISR on the workload's topics and the
// coordinators' topics.
func (w *txnWorkload) waitISRs(timeout time.Duration) {
	w.t.Helper()
	for _, tp := range []string{w.topic, w.in, w.out, "__transaction_state", "__consumer_offsets"} {
		w.c.waitISR(tp, 3, timeout)
	}
}

// finish stops the load, lets the stage consume the whole input, and
// checks: the transaction loop's history against a read_committed read
// (and that read_uncommitted holds aborted records, so their absence is
// the broker's doing), and the exactly-once chain.
func (w *txnWorkload) finish() {
	t := w.t
	t.Helper()
	w.loop.stop(t)
	w.input.stop(t)
	t.Logf("%s load stopped; %s", w.stamp(), w.summary())
	sentinels := w.c.client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	writeSentinels(t, sentinels, w.topic, w.parts)
	writeSentinels(t, sentinels, w.in, w.parts)
	w.stage.waitCaughtUp(t, w.adm, stableOffsets(t, w.adm, w.in, time.Minute), 3*time.Minute)
	w.stage.stop(t)
	writeSentinels(t, sentinels, w.out, w.parts)
	t.Logf("%s stage caught up and stopped; %s", w.stamp(), w.stage.summary())

	stableOffsets(t, w.adm, w.topic, time.Minute)
	read := readToSentinels(t, w.c.addrs(), w.topic, w.parts, kgo.ReadCommitted(), 2*time.Minute)
	w.loop.check(t, read)
	if d := describeTxn(t, w.adm, w.loop.txnID); d.State != "CompleteCommit" && d.State != "CompleteAbort" {
		t.Errorf("transactional id %s after the load: %s, want a completed transaction", w.loop.txnID, txnState(d))
	}
	all := readToSentinels(t, w.c.addrs(), w.topic, w.parts, kgo.ReadUncommitted(), 2*time.Minute)
	if n, m := countRecords(all), countRecords(read); n <= m {
		t.Errorf("read_uncommitted read %d records, read_committed %d: no aborted record in the log", n, m)
	} else {
		t.Logf("transaction loop topic: read_committed %d records, read_uncommitted %d", m, n)
	}
	w.input.mu.Lock()
	acked := maps.Clone(w.input.acked)
	w.input.mu.Unlock()
	checkEOS(t, readToSentinels(t, w.c.addrs(), w.in, w.parts, kgo.ReadCommitted(), 2*time.Minute),
		readToSentinels(t, w.c.addrs(), w.out, w.parts, kgo.ReadCommitted(), 2*time.Minute), acked)
	sent, ackedN, failed := w.input.counts()
	t.Logf("input producer: %d sent, %d acknowledged, %d failed", sent, ackedN, failed)
	t.Logf("%s %s", w.stamp(), w.summary())
	w.loop.logErrors(t)
	w.stage.logErrors(t)
}
