package storage

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/sluicedev/sluice/storage/vfs"
)

// txnHist is one batch of the log as the test appended it.
type txnHist struct {
	base, last int64
	pid        int64
	kind       byte // 'p' plain, 't' transactional, 'c' commit, 'a' abort
}

// txnModel is what a log's transaction state must be after the batches of
// a history: replayed from scratch, the simplest possible way.
type txnModel struct {
	ongoing map[int64]int64 // producer -> first offset
	aborted []AbortedTxn    // in marker order
	// completed lists decided transactions (first, marker) in marker
	// order, from the first batch replayed.
	completed []completedTxn
}

func replayModel(hist []txnHist, upTo int64) txnModel {
	m := txnModel{ongoing: map[int64]int64{}}
	for _, h := range hist {
		if h.last >= upTo {
			break
		}
		switch h.kind {
		case 't':
			if _, ok := m.ongoing[h.pid]; !ok {
				m.ongoing[h.pid] = h.base
			}
		case 'c', 'a':
			first, ok := m.ongoing[h.pid]
			if !ok {
				continue
			}
			delete(m.ongoing, h.pid)
			m.completed = append(m.completed, completedTxn{first: first, last: h.base})
			if h.kind == 'a' {
				lso := h.base + 1
				for _, f := range m.ongoing {
					lso = min(lso, f)
				}
				m.aborted = append(m.aborted, AbortedTxn{ProducerID: h.pid, FirstOffset: first, LastOffset: h.base, LastStableOffset: lso})
			}
		}
	}
	return m
}

// lso is the model's last stable offset. Completed transactions count
// only when their marker is at or after sessionStart: the test sets the HW
// to the log end after every rebuild of the log's state, so older ones are
// replicated.
func (m txnModel) lso(hw, leo, start, sessionStart int64) int64 {
	bound := leo
	if hw >= 0 {
		bound = hw
	}
	for _, f := range m.ongoing {
		bound = min(bound, f)
	}
	if hw >= 0 {
		for _, c := range m.completed {
			if c.last >= sessionStart && c.last >= hw {
				bound = min(bound, c.first)
			}
		}
	}
	return max(bound, start)
}

func (m txnModel) abortedFrom(from int64) []AbortedTxn {
	var out []AbortedTxn
	for _, a := range m.aborted {
		if a.LastOffset >= from {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b AbortedTxn) int { return int(a.FirstOffset - b.FirstOffset) })
	return out
}

// checkTxnState compares a log's ongoing transactions and aborted index
// with the model.
func checkTxnState(t *testing.T, l *Log, m txnModel, trace []string) {
	t.Helper()
	ongoing := map[int64]int64{}
	for _, p := range l.Producers() {
		if p.TxnStartOffset >= 0 {
			ongoing[p.ProducerID] = p.TxnStartOffset
		}
	}
	if !maps.Equal(ongoing, m.ongoing) {
		t.Fatalf("ongoing transactions %v, model %v\n%s\n%s", ongoing, m.ongoing, describeTxns(l), strings.Join(trace, "\n"))
	}
	start := l.LogStartOffset()
	got, err := l.AppendAbortedTransactions(nil, start, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	if want := m.abortedFrom(start); !slices.Equal(got, want) {
		t.Fatalf("aborted transactions from %d:\n got %+v\nwant %+v\n%s\n%s", start, got, want, describeTxns(l), strings.Join(trace, "\n"))
	}
}

// TestTxnCrashRandomOps appends random interleavings of plain batches,
// transactional batches and markers of a few producers, with syncs, rolls,
// high watermark moves, retention, DeleteRecords and truncations, and
// checks the ongoing transactions, the aborted-transaction index and the
// last stable offset against a replayed model after every step, then
// crashes (keeping a random part of the unsynced state, so tails are torn)
// and checks that recovery rebuilt the same state for the surviving
// prefix, twice.
func TestTxnCrashRandomOps(t *testing.T) {
	t.Parallel()
	seeds := 120
	if testing.Short() {
		seeds = 20
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			runTxnCrashScenario(t, uint64(seed))
		})
	}
}

func runTxnCrashScenario(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x7a7))
	mem := vfs.NewCrashableMem()
	cfg := Config{SegmentBytes: int64(250 + rng.IntN(600)), IndexIntervalBytes: int32(50 + rng.IntN(200))}
	if rng.IntN(2) == 0 {
		cfg.RetentionBytes, cfg.RetentionMs = int64(800+rng.IntN(1500)), -1
	}
	e := newEnv(t, mem, cfg)
	l := e.open()
	r := newTxnRunner(t, l)
	useHW := rng.IntN(2) == 0
	var hist []txnHist
	var trace []string
	session := int64(0)
	// Replication never truncates below the high watermark, and deletion
	// stays below it; without a HW, floor plays its part: the log end when
	// retention or DeleteRecords last moved the log start.
	floor := int64(0)
	resetSession := func() {
		session = l.LogEndOffset()
		if useHW {
			l.SetHighWatermark(session)
		}
	}
	resetSession()
	// Make the first segment's directory entry durable: a crash that loses
	// the whole first segment leaves a log that is not a prefix of the
	// history, which recovery cannot tell from one that never had it.
	res, err := r.step(plain(1))
	if err != nil {
		t.Fatal(err)
	}
	hist = append(hist, txnHist{base: res.BaseOffset, last: res.LastOffset, kind: 'p'})
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	for range 60 + rng.IntN(120) {
		pid := 1 + rng.Int64N(3)
		var s txnStep
		var kind byte
		switch op := rng.IntN(100); {
		case op < 25:
			s, kind = plain(1+rng.IntN(3)), 'p'
		case op < 60:
			s, kind = txnData(pid, 1+rng.IntN(3)), 't'
		case op < 72:
			s, kind = commitOf(pid), 'c'
		case op < 84:
			s, kind = abortOf(pid), 'a'
		case op < 88:
			if err := l.Sync(context.Background(), l.LogEndOffset()); err != nil {
				t.Fatal(err)
			}
			trace = append(trace, "sync")
			continue
		case op < 91:
			if useHW {
				hw := l.HighWatermark() + rng.Int64N(l.LogEndOffset()-l.HighWatermark()+1)
				l.SetHighWatermark(hw)
				trace = append(trace, fmt.Sprintf("hw %d", hw))
			}
			continue
		case op < 94:
			lso, before := l.LastStableOffset(), l.LogStartOffset()
			if _, err := l.EnforceRetention(e.clock.Now()); err != nil {
				t.Fatal(err)
			}
			if start := l.LogStartOffset(); start > max(lso, before) {
				t.Fatalf("retention moved the log start to %d past the LSO %d", start, lso)
			} else if start > before {
				floor = l.LogEndOffset()
			}
			trace = append(trace, fmt.Sprintf("retention start=%d", l.LogStartOffset()))
			continue
		case op < 96:
			to := l.LogStartOffset() + rng.Int64N(l.LogEndOffset()-l.LogStartOffset()+1)
			lso := l.LastStableOffset()
			_, err := l.DeleteRecordsBefore(to)
			if (to > lso) != errors.Is(err, ErrBeyondStableOffset) || (err != nil && !errors.Is(err, ErrBeyondStableOffset)) {
				t.Fatalf("DeleteRecordsBefore(%d) with LSO %d: %v", to, lso, err)
			}
			if err == nil {
				floor = l.LogEndOffset()
			}
			trace = append(trace, fmt.Sprintf("delete-records %d lso=%d err=%v", to, lso, err))
			continue
		default:
			low := max(l.LogStartOffset(), floor, l.HighWatermark())
			var cuts []int64
			for _, h := range hist {
				if h.base >= low {
					cuts = append(cuts, h.base)
				}
			}
			if len(cuts) == 0 {
				continue
			}
			cut := cuts[rng.IntN(len(cuts))]
			if err := l.TruncateTo(cut); err != nil {
				t.Fatal(err)
			}
			for len(hist) > 0 && hist[len(hist)-1].base >= cut {
				hist = hist[:len(hist)-1]
			}
			trace = append(trace, fmt.Sprintf("truncate %d", cut))
			for _, p := range l.Producers() {
				r.seq[p.ProducerID] = p.LastSequence + 1 // the cut batches' sequences are free again
			}
			resetSession()
			checkTxnState(t, l, replayModel(hist, math.MaxInt64), trace)
			continue
		}
		for _, p := range l.Producers() {
			r.seq[p.ProducerID] = p.LastSequence + 1 // e.g. after a marker recreated an evicted producer
		}
		res, err := r.step(s)
		if err != nil {
			// A non-transactional batch cannot join an open transaction;
			// nothing else may fail.
			t.Fatalf("append %+v: %v\n%s", s, err, strings.Join(trace, "\n"))
		}
		hist = append(hist, txnHist{base: res.BaseOffset, last: res.LastOffset, pid: s.pid, kind: kind})
		trace = append(trace, fmt.Sprintf("%c pid=%d [%d,%d]", kind, s.pid, res.BaseOffset, res.LastOffset))
		m := replayModel(hist, math.MaxInt64)
		if want, got := m.lso(l.HighWatermark(), l.LogEndOffset(), l.LogStartOffset(), session), l.LastStableOffset(); got != want {
			t.Fatalf("LSO %d, model %d\n%s\n%s", got, want, describeTxns(l), strings.Join(trace, "\n"))
		}
		checkTxnState(t, l, m, trace)
	}
	crashed := mem.CrashCloneRandom(rng)
	for round := range 2 {
		e2 := &env{t: t, fs: crashed, dir: e.dir, clock: e.clock, cfg: cfg}
		l2, err := Open(e2.dir, e2.options())
		if err != nil {
			t.Fatalf("reopen %d: %v", round, err)
		}
		leo := l2.LogEndOffset()
		m := replayModel(hist, leo)
		if l2.Size() == 0 && len(l2.Producers()) == 0 {
			// Nothing survived at or above the persisted log start:
			// recovery may have started the log empty there, without
			// producer state (an empty segment left after retention
			// keeps the snapshot's state instead).
			m = replayModel(nil, leo)
		}
		trace = append(trace, fmt.Sprintf("crash: recovered to %d (round %d)", leo, round))
		checkTxnState(t, l2, m, trace)
		l2.SetHighWatermark(leo)
		if want, got := m.lso(leo, leo, l2.LogStartOffset(), leo), l2.LastStableOffset(); got != want {
			t.Fatalf("after recovery LSO %d, model %d\n%s\n%s", got, want, describeTxns(l2), strings.Join(trace, "\n"))
		}
		if err := l2.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
