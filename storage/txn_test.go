package storage

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicedev/sluice/protocol"
)

// txnStep is one operation of a transaction scenario. Exactly one kind:
// plain (records without a producer), txn (a transactional batch of pid),
// idem (a non-transactional idempotent batch of pid), commit or abort (a
// marker for pid), or hw (SetHighWatermark).
type txnStep struct {
	plain, txn, idem, commit, abort bool
	pid                             int64
	records                         int
	hw                              int64
	setHW                           bool
	coord                           int32
	epoch                           int16
	wantErr                         error
	follower                        bool // append as a follower (no validation)
	// Checks after the step (skipped when -2).
	wantLSO int64
}

func plain(n int) txnStep              { return txnStep{plain: true, records: n, wantLSO: -2} }
func txnData(pid int64, n int) txnStep { return txnStep{txn: true, pid: pid, records: n, wantLSO: -2} }
func idemData(pid int64, n int) txnStep {
	return txnStep{idem: true, pid: pid, records: n, wantLSO: -2}
}
func commitOf(pid int64) txnStep         { return txnStep{commit: true, pid: pid, wantLSO: -2} }
func abortOf(pid int64) txnStep          { return txnStep{abort: true, pid: pid, wantLSO: -2} }
func setHW(hw int64) txnStep             { return txnStep{setHW: true, hw: hw, wantLSO: -2} }
func (s txnStep) lso(want int64) txnStep { s.wantLSO = want; return s }
func (s txnStep) err(want error) txnStep { s.wantErr = want; return s }
func (s txnStep) coordEpoch(e int32) txnStep {
	s.coord = e
	return s
}
func (s txnStep) producerEpoch(e int16) txnStep {
	s.epoch = e
	return s
}
func (s txnStep) asFollower() txnStep { s.follower = true; return s }

// txnRunner appends the batches of txnStep scenarios, keeping per-producer
// sequence numbers so the idempotence checks pass.
type txnRunner struct {
	t    testing.TB
	l    *Log
	seq  map[int64]int32
	ts   int64
	opts AppendOptions
}

func newTxnRunner(t testing.TB, l *Log) *txnRunner {
	return &txnRunner{t: t, l: l, seq: map[int64]int32{}, ts: 1_700_000_000_000, opts: leader}
}

// batchFor builds the batch of a step (nil for hw steps).
func (r *txnRunner) batchFor(s txnStep) []byte {
	n := max(s.records, 1)
	switch {
	case s.plain:
		return mkBatch(r.t, spec{records: n, ts: r.ts})
	case s.txn, s.idem:
		return mkBatch(r.t, spec{records: n, pid: s.pid, epoch: s.epoch, seq: r.seq[s.pid], txn: s.txn, ts: r.ts})
	case s.commit, s.abort:
		return protocol.MarkerBatch(s.pid, s.epoch, s.commit, s.coord, r.ts)
	}
	return nil
}

// step runs one step and returns the append result (zero for hw steps).
func (r *txnRunner) step(s txnStep) (AppendResult, error) {
	r.t.Helper()
	if s.setHW {
		r.l.SetHighWatermark(s.hw)
		return AppendResult{}, nil
	}
	b := r.batchFor(s)
	o := r.opts
	if s.follower {
		o = AppendOptions{}
		b = withBase(b, r.l.LogEndOffset())
	}
	res, err := r.l.Append(b, o)
	if err == nil && (s.txn || s.idem) {
		r.seq[s.pid] += int32(max(s.records, 1))
	}
	return res, err
}

func (r *txnRunner) run(steps []txnStep) {
	r.t.Helper()
	for i, s := range steps {
		_, err := r.step(s)
		if !errors.Is(err, s.wantErr) || (err == nil) != (s.wantErr == nil) {
			r.t.Fatalf("step %d %+v: err %v, want %v", i, s, err, s.wantErr)
		}
		if s.wantLSO != -2 {
			if got := r.l.LastStableOffset(); got != s.wantLSO {
				r.t.Fatalf("step %d %+v: LastStableOffset %d, want %d", i, s, got, s.wantLSO)
			}
		}
	}
}

// withBase returns a copy of b with its base offset set, for follower
// appends.
func withBase(b []byte, base int64) []byte {
	b = slices.Clone(b)
	for i := range 8 {
		b[i] = byte(base >> (56 - 8*i))
	}
	return b
}

func TestTxnLastStableOffset(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		steps []txnStep
	}{
		{"no transactions follows the HW, or the LEO without one", []txnStep{
			plain(3).lso(3), setHW(1).lso(1), plain(2).lso(1), setHW(5).lso(5),
		}},
		{"ongoing transaction holds the LSO at its first offset", []txnStep{
			plain(2).lso(2), txnData(1, 3).lso(2), plain(1).lso(2), txnData(1, 1).lso(2),
		}},
		{"commit without HW releases at once", []txnStep{
			txnData(1, 2).lso(0), plain(1).lso(0), commitOf(1).lso(4),
		}},
		{"unreplicated marker holds the LSO until the HW passes it", []txnStep{
			setHW(0), txnData(1, 2).lso(0), setHW(2).lso(0), commitOf(1).lso(0),
			setHW(2).lso(0), setHW(3).lso(3), plain(1), setHW(4).lso(4),
		}},
		{"interleaved producers: the earliest open one bounds", []txnStep{
			setHW(0), plain(1), txnData(1, 1), txnData(2, 1), txnData(1, 1), setHW(4).lso(1),
			commitOf(1), setHW(5).lso(2), abortOf(2), setHW(5).lso(2), setHW(6).lso(6),
		}},
		{"a later-completed earlier transaction keeps bounding", []txnStep{
			setHW(0), txnData(1, 1), txnData(2, 1), commitOf(2), commitOf(1),
			setHW(2).lso(0), setHW(3).lso(0), setHW(4).lso(4),
		}},
		{"abort then new transaction of the same producer", []txnStep{
			txnData(1, 2).lso(0), abortOf(1).lso(3), txnData(1, 1).lso(3), plain(1).lso(3), commitOf(1).lso(6),
		}},
		{"marker without a transaction changes nothing", []txnStep{
			plain(2), commitOf(9).lso(3), abortOf(9).lso(4),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := newEnv(t, nil, Config{}).open()
			newTxnRunner(t, l).run(tc.steps)
		})
	}
}

func TestTxnAbortedIndex(t *testing.T) {
	t.Parallel()
	l := newEnv(t, nil, Config{SegmentBytes: 400}).open()
	r := newTxnRunner(t, l)
	// offsets: 0 t1 | 1 t2 | 2 plain | 3 t1 | 4 abort1 | 5 t3 | 6 commit2 |
	// 7 t2 | 8 abort3 | 9 plain | 10 abort2 | 11 t1 | 12 abort1
	r.run([]txnStep{txnData(1, 1), txnData(2, 1), plain(1), txnData(1, 1), abortOf(1), txnData(3, 1),
		commitOf(2), txnData(2, 1), abortOf(3), plain(1), abortOf(2), txnData(1, 1), abortOf(1)})
	if len(l.Segments()) < 3 {
		t.Fatalf("want entries spread over segments, have %v", l.Segments())
	}
	a1 := AbortedTxn{ProducerID: 1, FirstOffset: 0, LastOffset: 4, LastStableOffset: 1}
	a3 := AbortedTxn{ProducerID: 3, FirstOffset: 5, LastOffset: 8, LastStableOffset: 7}
	a2 := AbortedTxn{ProducerID: 2, FirstOffset: 7, LastOffset: 10, LastStableOffset: 11}
	a1b := AbortedTxn{ProducerID: 1, FirstOffset: 11, LastOffset: 12, LastStableOffset: 13}
	cases := []struct {
		from, to int64
		want     []AbortedTxn
	}{
		{0, 13, []AbortedTxn{a1, a3, a2, a1b}},
		{0, 1, []AbortedTxn{a1}},
		{4, 5, []AbortedTxn{a1}},
		{5, 7, []AbortedTxn{a3}},
		{5, 8, []AbortedTxn{a3, a2}},
		{9, 11, []AbortedTxn{a2}},
		{11, 13, []AbortedTxn{a1b}},
		{13, 20, nil},
		{6, 6, nil},
	}
	check := func(l *Log) {
		t.Helper()
		for _, c := range cases {
			got := l.AbortedTransactions(c.from, c.to)
			if !slices.Equal(got, c.want) {
				t.Fatalf("AbortedTransactions(%d, %d) = %+v, want %+v", c.from, c.to, got, c.want)
			}
		}
		buf := make([]AbortedTxn, 1, 8)
		got, err := l.AppendAbortedTransactions(buf, 0, 13)
		if err != nil || len(got) != 5 || got[1] != a1 {
			t.Fatalf("AppendAbortedTransactions: %+v %v", got, err)
		}
	}
	check(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, fs: l.fs, dir: l.dir, clock: newFakeClock(), cfg: Config{SegmentBytes: 400}}
	check(e.open())
}

// Not parallel: testing.AllocsPerRun refuses to run in parallel tests.
func TestTxnAbortedTransactionsEmptyLog(t *testing.T) {
	l := newEnv(t, nil, Config{}).open()
	r := newTxnRunner(t, l)
	r.run([]txnStep{plain(3), txnData(1, 1), commitOf(1)})
	if got := l.AbortedTransactions(0, 100); got != nil {
		t.Fatalf("no aborts, got %+v", got)
	}
	allocs := testing.AllocsPerRun(100, func() { _ = l.AbortedTransactions(0, 100) })
	if allocs != 0 {
		t.Fatalf("AbortedTransactions on a log without aborts allocates %v times", allocs)
	}
}

func TestTxnFencing(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		steps []txnStep
	}{
		{"marker from an older producer epoch", []txnStep{
			txnData(1, 1).producerEpoch(3), commitOf(1).producerEpoch(2).err(ErrInvalidProducerEpoch).lso(0),
		}},
		{"marker with a newer producer epoch (KIP-890 bump) ends the transaction", []txnStep{
			txnData(1, 1).producerEpoch(3), commitOf(1).producerEpoch(4).lso(2),
		}},
		{"older coordinator epoch is fenced", []txnStep{
			txnData(1, 1), commitOf(1).coordEpoch(5).lso(2), txnData(1, 1),
			abortOf(1).coordEpoch(4).err(ErrCoordinatorFenced).lso(2), abortOf(1).coordEpoch(5).lso(4),
		}},
		{"newer coordinator epoch is accepted", []txnStep{
			txnData(1, 1), commitOf(1).coordEpoch(5), txnData(1, 1), abortOf(1).coordEpoch(9).lso(4),
		}},
		{"follower appends are not fenced", []txnStep{
			txnData(1, 1), commitOf(1).coordEpoch(5), txnData(1, 1).asFollower(),
			abortOf(1).coordEpoch(1).asFollower().lso(4),
		}},
		{"non-transactional batch during a transaction", []txnStep{
			txnData(1, 2), idemData(1, 1).err(ErrInvalidTxnState).lso(0), commitOf(1), idemData(1, 1).lso(4),
		}},
		{"data batch from an older epoch", []txnStep{
			txnData(1, 1).producerEpoch(2), txnData(1, 1).producerEpoch(1).err(ErrInvalidProducerEpoch),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := newEnv(t, nil, Config{}).open()
			newTxnRunner(t, l).run(tc.steps)
		})
	}
}

func TestTxnVerificationGuard(t *testing.T) {
	t.Parallel()
	l := newEnv(t, nil, Config{}).open()
	r := newTxnRunner(t, l)
	verified := func(g VerificationGuard) AppendOptions {
		return AppendOptions{AssignOffsets: true, RequireVerification: true, Verification: g}
	}
	appendTxn := func(o AppendOptions) error {
		r.opts = o
		_, err := r.step(txnData(1, 1))
		return err
	}
	// Without a guard, or with a wrong one, the first batch is refused.
	if err := appendTxn(verified(0)); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("no guard: %v", err)
	}
	g, needed := beginVerification(t, l, 1)
	if !needed || g == 0 {
		t.Fatalf("BeginVerification = %d %v", g, needed)
	}
	if g2, _ := beginVerification(t, l, 1); g2 != g {
		t.Fatalf("outstanding guard not shared: %d then %d", g, g2)
	}
	if other, _ := beginVerification(t, l, 2); other == g {
		t.Fatal("two producers got the same guard")
	}
	if err := appendTxn(verified(g + 1)); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("wrong guard: %v", err)
	}
	// A marker voids the guard (the coordinator ended the transaction the
	// verification belonged to).
	if _, err := r.step(abortOf(1)); err != nil {
		t.Fatal(err)
	}
	if err := appendTxn(verified(g)); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("guard survived a marker: %v", err)
	}
	g, _ = beginVerification(t, l, 1)
	if err := appendTxn(verified(g)); err != nil {
		t.Fatalf("verified first batch: %v", err)
	}
	// Ongoing: no verification needed; later batches need no guard.
	if g2, needed := beginVerification(t, l, 1); needed || g2 != 0 {
		t.Fatalf("ongoing transaction still asks for verification: %d %v", g2, needed)
	}
	if err := appendTxn(verified(0)); err != nil {
		t.Fatalf("batch in an ongoing transaction: %v", err)
	}
	// The guard was used up: after the transaction ends it does not work
	// again.
	r.opts = leader
	if _, err := r.step(commitOf(1)); err != nil {
		t.Fatal(err)
	}
	if err := appendTxn(verified(g)); !errors.Is(err, ErrInvalidTxnState) {
		t.Fatalf("used guard accepted again: %v", err)
	}
	// Without RequireVerification nothing is checked.
	if err := appendTxn(leader); err != nil {
		t.Fatal(err)
	}
}

// TestTxnVerificationNextEpoch: under transaction version 2 a batch of the
// next epoch before the previous transaction's marker is told to retry, and
// verified normally once the marker is in.
func TestTxnVerificationNextEpoch(t *testing.T) {
	t.Parallel()
	l := newEnv(t, nil, Config{}).open()
	r := newTxnRunner(t, l)
	r.run([]txnStep{txnData(1, 1).producerEpoch(1)})
	next := func() []byte { return mkBatch(t, spec{records: 1, pid: 1, epoch: 2, seq: 0, txn: true, ts: r.ts}) }
	if _, err := l.Append(next(), leader); !errors.Is(err, ErrTxnCompleting) {
		t.Fatalf("next epoch's batch during the transaction: %v", err)
	}
	if _, _, err := l.BeginVerification(1, 2); !errors.Is(err, ErrTxnCompleting) {
		t.Fatalf("BeginVerification at the next epoch during a transaction: %v", err)
	}
	if _, needed, err := l.BeginVerification(1, 1); err != nil || needed {
		t.Fatalf("BeginVerification at the transaction's epoch: needed %v, %v", needed, err)
	}
	r.run([]txnStep{commitOf(1).producerEpoch(2).lso(2)})
	g, needed, err := l.BeginVerification(1, 2)
	if err != nil || !needed || g == 0 {
		t.Fatalf("BeginVerification after the marker: %d %v %v", g, needed, err)
	}
	res, err := l.Append(next(), AppendOptions{AssignOffsets: true, RequireVerification: true, Verification: g})
	if err != nil || res.BaseOffset != 2 {
		t.Fatalf("next transaction's first batch after the marker: %+v %v", res, err)
	}
	if lso := l.LastStableOffset(); lso != 2 {
		t.Fatalf("LSO %d, want 2 (the new transaction's first offset)", lso)
	}
}

func TestTxnGuardsExpire(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Config{ProducerIDExpirationMs: 1000})
	l := e.open()
	g, _ := beginVerification(t, l, 7)
	l.ExpireProducers(e.clock.Now().Add(2 * time.Second))
	if g2, _ := beginVerification(t, l, 7); g2 == g {
		t.Fatal("expired guard still outstanding")
	}
}

func TestTxnProducersAndExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Config{ProducerIDExpirationMs: 1000})
	l := e.open()
	r := newTxnRunner(t, l)
	r.ts = e.clock.Now().UnixMilli()
	r.run([]txnStep{idemData(5, 2), txnData(6, 1), txnData(7, 1), commitOf(7).coordEpoch(3)})
	got := l.Producers()
	want := []ProducerInfo{
		{ProducerID: 5, LastSequence: 1, LastTimestamp: r.ts + 1, CoordinatorEpoch: -1, TxnStartOffset: -1},
		{ProducerID: 6, LastSequence: 0, LastTimestamp: r.ts, CoordinatorEpoch: -1, TxnStartOffset: 2},
		{ProducerID: 7, LastSequence: 0, LastTimestamp: r.ts, CoordinatorEpoch: 3, TxnStartOffset: -1},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Producers:\n got %+v\nwant %+v", got, want)
	}
	// Every producer is idle past the expiration, but 6's transaction is
	// ongoing: it stays, and so does the LSO it holds.
	if n := l.ExpireProducers(e.clock.Now().Add(time.Hour)); n != 2 {
		t.Fatalf("expired %d producers, want 2", n)
	}
	if got := l.Producers(); len(got) != 1 || got[0].ProducerID != 6 || got[0].TxnStartOffset != 2 {
		t.Fatalf("after expiry: %+v", got)
	}
	if lso := l.LastStableOffset(); lso != 2 {
		t.Fatalf("LSO %d after expiry", lso)
	}
}

// TestTxnLogStartPassesOngoing covers a follower whose leader's log start
// moved past a transaction it still has open: the transaction stays (its
// marker must index it), and the LSO never drops below the log start.
func TestTxnLogStartPassesOngoing(t *testing.T) {
	t.Parallel()
	l := newEnv(t, nil, Config{SegmentBytes: 300}).open()
	r := newTxnRunner(t, l)
	r.run([]txnStep{plain(1), txnData(1, 1), plain(3), txnData(1, 1), plain(3), setHW(9).lso(1)})
	if _, err := l.DeleteRecordsBefore(5); !errors.Is(err, ErrBeyondStableOffset) {
		t.Fatalf("DeleteRecordsBefore past the LSO: %v", err)
	}
	if start, err := l.AdvanceLogStartOffset(5); err != nil || start != 5 {
		t.Fatalf("AdvanceLogStartOffset: %d %v", start, err)
	}
	if lso := l.LastStableOffset(); lso != 5 {
		t.Fatalf("LSO %d, want the log start 5", lso)
	}
	if n := l.ExpireProducers(time.UnixMilli(math.MaxInt64 / 2)); n != 0 {
		t.Fatalf("expired %d producers", n)
	}
	r.run([]txnStep{abortOf(1), setHW(10).lso(10)})
	want := []AbortedTxn{{ProducerID: 1, FirstOffset: 1, LastOffset: 9, LastStableOffset: 10}}
	if got := l.AbortedTransactions(5, 10); !slices.Equal(got, want) {
		t.Fatalf("aborted %+v, want %+v", got, want)
	}
}

// Not parallel: testing.AllocsPerRun refuses to run in parallel tests.
func TestTxnLastStableOffsetDoesNotAllocate(t *testing.T) {
	l := newEnv(t, nil, Config{}).open()
	r := newTxnRunner(t, l)
	r.run([]txnStep{setHW(0), txnData(1, 1), txnData(2, 1), commitOf(1)})
	for _, hw := range []int64{1, 2, 3} {
		l.SetHighWatermark(hw)
		if allocs := testing.AllocsPerRun(100, func() { _ = l.LastStableOffset() }); allocs != 0 {
			t.Fatalf("LastStableOffset allocates %v times", allocs)
		}
	}
}

func TestTxnMarkerParsing(t *testing.T) {
	t.Parallel()
	l := newEnv(t, nil, Config{}).open()
	r := newTxnRunner(t, l)
	r.run([]txnStep{txnData(1, 1)})
	// A damaged marker is refused on the leader path ...
	bad := protocol.MarkerBatch(1, 0, true, 0, 0)
	bad = bad[:len(bad)-3]
	bad[11] -= 3 // Length
	if _, err := l.Append(bad, leader); !errors.Is(err, ErrInvalidBatch) {
		t.Fatalf("damaged marker: %v", err)
	}
	// ... and a control batch of an unknown type is appended but ends
	// nothing.
	unknown := mkBatch(t, spec{pid: 1, seq: -1, control: true})
	unknown = withControlType(t, unknown, 7)
	if _, err := l.Append(unknown, leader); err != nil {
		t.Fatalf("unknown control type: %v", err)
	}
	if lso := l.LastStableOffset(); lso != 0 {
		t.Fatalf("an unknown control record ended the transaction: LSO %d", lso)
	}
	if ps := l.Producers(); len(ps) != 1 || ps[0].TxnStartOffset != 0 {
		t.Fatalf("producers %+v", ps)
	}
}

// withControlType rewrites the control record key type of a one-record
// marker built by mkBatch and fixes the CRC.
func withControlType(t testing.TB, b []byte, typ int16) []byte {
	t.Helper()
	b = slices.Clone(b)
	// Record: length, attrs, ts delta, offset delta (one byte each for
	// small values), key length, key (version int16, type int16).
	at := 61 + 1 + 1 + 1 + 1 + 1 + 2
	b[at], b[at+1] = byte(typ>>8), byte(typ)
	fixCRC(b)
	return b
}

func TestTxnDeleteRecordsAndRetentionStopAtLSO(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Config{SegmentBytes: 200, RetentionBytes: 1, RetentionMs: -1})
	l := e.open()
	r := newTxnRunner(t, l)
	r.run([]txnStep{plain(1), plain(1), txnData(1, 1), plain(1), plain(1), plain(1), plain(1), setHW(7).lso(2)})
	if n := len(l.Segments()); n < 4 {
		t.Fatalf("want several segments, have %d", n)
	}
	if _, err := l.EnforceRetention(e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if start := l.LogStartOffset(); start > 2 {
		t.Fatalf("retention moved the log start to %d, past the LSO 2", start)
	}
	if _, err := l.DeleteRecordsBefore(3); !errors.Is(err, ErrBeyondStableOffset) {
		t.Fatalf("DeleteRecordsBefore(3) with LSO 2: %v", err)
	}
	if start, err := l.DeleteRecordsBefore(2); err != nil || start != 2 {
		t.Fatalf("DeleteRecordsBefore(LSO): %d %v", start, err)
	}
	r.run([]txnStep{commitOf(1), setHW(8).lso(8)})
	if _, err := l.EnforceRetention(e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if start := l.LogStartOffset(); start <= 2 {
		t.Fatalf("retention stuck at %d after the commit", start)
	}
}

func TestTxnTruncate(t *testing.T) {
	t.Parallel()
	l := newEnv(t, nil, Config{SegmentBytes: 300}).open()
	r := newTxnRunner(t, l)
	// 0 t1 | 1 t2 | 2 abort1 | 3 plain | 4 abort2 | 5 t1 | 6 plain | 7 abort1
	r.run([]txnStep{txnData(1, 1), txnData(2, 1), abortOf(1), plain(1), abortOf(2), txnData(1, 1), plain(1), abortOf(1)})
	all := l.AbortedTransactions(0, 100)
	if len(all) != 3 {
		t.Fatalf("aborted %+v", all)
	}
	cases := []struct {
		cut          int64
		wantAborted  int
		wantLSO      int64
		wantOngoing1 int64
		wantOngoing2 int64
	}{
		{7, 2, 5, 5, -1},
		{5, 2, 5, -1, -1},
		{4, 1, 1, -1, 1},
		{2, 0, 0, 0, 1},
	}
	for _, c := range cases {
		if err := l.TruncateTo(c.cut); err != nil {
			t.Fatal(err)
		}
		if got := l.AbortedTransactions(0, 100); !slices.Equal(got, all[:c.wantAborted]) {
			t.Fatalf("cut %d: aborted %+v", c.cut, got)
		}
		if lso := l.LastStableOffset(); lso != c.wantLSO {
			t.Fatalf("cut %d: LSO %d, want %d", c.cut, lso, c.wantLSO)
		}
		ongoing := map[int64]int64{1: -1, 2: -1}
		for _, p := range l.Producers() {
			ongoing[p.ProducerID] = p.TxnStartOffset
		}
		if ongoing[1] != c.wantOngoing1 || ongoing[2] != c.wantOngoing2 {
			t.Fatalf("cut %d: ongoing %v", c.cut, ongoing)
		}
	}
}

// describeTxns renders the transaction state for failure messages.
func describeTxns(l *Log) string {
	return fmt.Sprintf("LSO %d HW %d LEO %d start %d producers %+v aborted %+v", l.LastStableOffset(),
		l.HighWatermark(), l.LogEndOffset(), l.LogStartOffset(), l.Producers(), l.AbortedTransactions(0, math.MaxInt64))
}

// beginVerification calls BeginVerification at epoch 0, the epoch of the
// test batches, failing on an error.
func beginVerification(t *testing.T, l *Log, pid int64) (VerificationGuard, bool) {
	t.Helper()
	g, needed, err := l.BeginVerification(pid, 0)
	if err != nil {
		t.Fatalf("BeginVerification(%d): %v", pid, err)
	}
	return g, needed
}

// TestTxnConcurrentReaders runs LastStableOffset and AbortedTransactions
// readers against an appender of transactions, a HW updater and
// truncations. Under -race this checks the lock-free paths; always, that
// the LSO stays within [log start, log end] and that a transaction known
// to be open (its first batch appended, its marker not yet) bounds it.
func TestTxnConcurrentReaders(t *testing.T) {
	t.Parallel()
	l := newEnv(t, nil, Config{SegmentBytes: 2000}).open()
	r := newTxnRunner(t, l)
	var open atomic.Int64 // first offset of producer 1's open transaction, -1 none
	open.Store(-1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				before := open.Load()
				lso := l.LastStableOffset()
				start, leo := l.LogStartOffset(), l.LogEndOffset()
				if lso < 0 || lso > max(leo, start) {
					t.Errorf("LSO %d outside [.., %d]", lso, leo)
				}
				if before >= 0 && open.Load() == before && lso > before {
					t.Errorf("LSO %d passed the open transaction at %d", lso, before)
				}
				got, err := l.AppendAbortedTransactions(nil, 0, math.MaxInt64)
				if err != nil {
					t.Error(err)
				}
				for i := 1; i < len(got); i++ {
					if got[i-1].FirstOffset > got[i].FirstOffset {
						t.Errorf("unsorted %+v", got)
					}
				}
			}
		})
	}
	for i := range 300 {
		res, err := r.step(txnData(1, 1))
		if err != nil {
			t.Fatal(err)
		}
		if open.Load() < 0 {
			open.Store(res.BaseOffset)
		}
		r.run([]txnStep{txnData(2, 1), plain(1), abortOf(2)})
		if i%3 == 0 {
			open.Store(-1)
			r.run([]txnStep{commitOf(1)})
		}
		if i%7 == 0 {
			l.SetHighWatermark(l.LogEndOffset() - 1)
		}
		if i%50 == 49 {
			open.Store(-1)
			r.run([]txnStep{abortOf(1)})
			if err := l.TruncateTo(l.LogEndOffset() - 2); err != nil {
				t.Fatal(err)
			}
			for _, p := range l.Producers() {
				r.seq[p.ProducerID] = p.LastSequence + 1
			}
			if ps := l.Producers(); len(ps) > 0 && ps[0].TxnStartOffset >= 0 {
				open.Store(ps[0].TxnStartOffset)
			}
		}
	}
	close(done)
	wg.Wait()
}
