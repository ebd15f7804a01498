package storage

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/protocol"
	"github.com/sluicedev/sluice/protocol/batch"
	"github.com/sluicedev/sluice/storage/vfs"
)

// txnKVBatch builds a transactional batch of producer pid (epoch 0).
func txnKVBatch(t testing.TB, pid int64, seq int32, ts int64, kvs ...kv) []byte {
	t.Helper()
	recs := make([]kmsg.Record, len(kvs))
	for i, r := range kvs {
		recs[i] = kmsg.Record{OffsetDelta: int32(i), Key: []byte(r.key), Value: []byte(r.val)}
		if r.tomb {
			recs[i].Value = nil
		}
	}
	opts := protocol.DefaultBatchOptions()
	opts.FirstTimestamp, opts.MaxTimestamp = ts, ts
	opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence, opts.Transactional = pid, 0, seq, true
	b, err := protocol.BuildBatch(testFilter.Codecs, protocol.CodecNone, 0, recs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// txnCompactLog drives a compacted log with transactions: plain records,
// transactional ones and markers, remembering what was written.
type txnCompactLog struct {
	t   testing.TB
	e   *env
	l   *Log
	seq map[int64]int32
}

func (c *txnCompactLog) plain(kvs ...kv) AppendResult {
	c.t.Helper()
	return mustAppend(c.t, c.l, kvBatch(c.t, kvOpts{ts: c.e.clock.Now().UnixMilli()}, kvs...), leader)
}

func (c *txnCompactLog) txn(pid int64, kvs ...kv) AppendResult {
	c.t.Helper()
	res := mustAppend(c.t, c.l, txnKVBatch(c.t, pid, c.seq[pid], c.e.clock.Now().UnixMilli(), kvs...), leader)
	c.seq[pid] += int32(len(kvs))
	return res
}

func (c *txnCompactLog) end(pid int64, commit bool) AppendResult {
	c.t.Helper()
	return mustAppend(c.t, c.l, protocol.MarkerBatch(pid, 0, commit, 0, c.e.clock.Now().UnixMilli()), leader)
}

// compact rolls, forgets idle producers (so their newest batches are not
// kept for idempotence) unless keepProducers, and runs a pass.
func (c *txnCompactLog) compact(keepProducers bool) CompactResult {
	c.t.Helper()
	rollNow(c.t, c.e, c.l)
	c.l.SetHighWatermark(c.l.LogEndOffset())
	if !keepProducers {
		c.l.ExpireProducers(c.e.clock.Now().Add(1000 * time.Hour))
	}
	res, err := c.l.Compact(c.e.clock.Now())
	if err != nil {
		c.t.Fatal(err)
	}
	return res
}

// deleteRetention is the delete.retention.ms of these tests: ten passes'
// worth of rollNow.
const deleteRetention = 10 * 70_000

func newTxnCompactLog(t testing.TB, fsys vfs.FS) *txnCompactLog {
	e := compactEnv(t, fsys, Config{SegmentBytes: 100_000, SegmentMs: 60_000, DeleteRetentionMs: deleteRetention})
	return &txnCompactLog{t: t, e: e, l: e.open(), seq: map[int64]int32{}}
}

// markerState describes the control batches left in a log.
type markerState struct {
	off     int64
	horizon int64 // -1 when not stamped
}

func markersOf(t testing.TB, l *Log) []markerState {
	t.Helper()
	var out []markerState
	for _, b := range readBatchesWithGaps(t, l) {
		h, _ := batch.ParseHeader(b)
		if !h.Control() {
			continue
		}
		m := markerState{off: h.BaseOffset, horizon: -1}
		if ms, ok := h.DeleteHorizon(); ok {
			m.horizon = ms
		}
		out = append(out, m)
	}
	return out
}

// readBatchesWithGaps returns every batch from the log start on, allowing
// the offset gaps compaction leaves.
func readBatchesWithGaps(t testing.TB, l *Log) [][]byte {
	t.Helper()
	var out [][]byte
	for off := l.LogStartOffset(); off < l.LogEndOffset(); {
		blob, err := l.Read(off, 1<<20, math.MaxInt64)
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		if len(blob) == 0 {
			break
		}
		for len(blob) > 0 {
			b, rest, err := batch.Next(blob)
			if err != nil {
				t.Fatal(err)
			}
			h, err := batch.Check(b)
			if err != nil {
				t.Fatalf("invalid batch: %v", err)
			}
			out = append(out, b)
			off, blob = h.NextOffset(), rest
		}
	}
	return out
}

func recordOffsets(got []rec) []int64 {
	var offs []int64
	for _, r := range got {
		offs = append(offs, r.off)
	}
	return offs
}

func TestCompactRemovesAbortedTransactions(t *testing.T) {
	t.Parallel()
	c := newTxnCompactLog(t, nil)
	c.plain(kv{key: "k1", val: "a"})                                       // 0
	c.txn(1, kv{key: "k1", val: "aborted"}, kv{key: "k2", val: "aborted"}) // 1-2
	c.txn(2, kv{key: "k3", val: "x"})                                      // 3
	c.plain(kv{key: "k2", val: "b"})                                       // 4
	c.end(1, false)                                                        // 5 abort
	c.end(2, true)                                                         // 6 commit
	c.plain(kv{key: "k4", val: "c"})                                       // 7
	if got := c.l.AbortedTransactions(0, math.MaxInt64); len(got) != 1 {
		t.Fatalf("aborted before compaction: %+v", got)
	}
	res := c.compact(false)
	got := readRecords(t, c.l)
	// The aborted records go, and did not supersede k1's committed value
	// at 0; committed and plain records stay, with both markers.
	if want := []int64{0, 3, 4, 5, 6, 7}; !slices.Equal(recordOffsets(got), want) {
		t.Fatalf("records left at %v, want %v (%+v)", recordOffsets(got), want, got)
	}
	if res.RecordsRemoved != 2 {
		t.Fatalf("RecordsRemoved %d", res.RecordsRemoved)
	}
	// The abort's transaction has no records left: its marker is stamped
	// with a delete horizon, and its index entry goes (nothing to skip).
	horizon := c.e.clock.Now().UnixMilli() + deleteRetention
	if ms := markersOf(t, c.l); !slices.Equal(ms, []markerState{{5, horizon}, {6, -1}}) {
		t.Fatalf("markers %+v", ms)
	}
	if got := c.l.AbortedTransactions(0, math.MaxInt64); len(got) != 0 {
		t.Fatalf("aborted after compaction: %+v", got)
	}
	// The cleaned index is what a restart finds.
	if err := c.l.Close(); err != nil {
		t.Fatal(err)
	}
	c.l = c.e.open()
	if got := c.l.AbortedTransactions(0, math.MaxInt64); len(got) != 0 {
		t.Fatalf("aborted after reopen: %+v", got)
	}
	if got2 := readRecords(t, c.l); !slices.Equal(got2, got) {
		t.Fatal("records changed across reopen")
	}
}

// TestCompactMarkersTwoPhase follows a commit and an abort marker through
// passes: kept while their transactions have records, stamped once they
// are alone, dropped only after delete.retention.ms.
func TestCompactMarkersTwoPhase(t *testing.T) {
	t.Parallel()
	c := newTxnCompactLog(t, nil)
	c.txn(1, kv{key: "a", val: "1"}) // 0
	c.end(1, true)                   // 1 commit, its record still the latest of "a"
	c.txn(2, kv{key: "b", val: "1"}) // 2
	c.end(2, false)                  // 3 abort
	c.plain(kv{key: "c", val: "1"})  // 4
	c.compact(false)
	t0 := c.e.clock.Now().UnixMilli()
	if ms := markersOf(t, c.l); !slices.Equal(ms, []markerState{{1, -1}, {3, t0 + deleteRetention}}) {
		t.Fatalf("after pass 1: %+v", ms)
	}
	// "a" is superseded: the committed transaction has nothing left.
	c.plain(kv{key: "a", val: "2"}) // 5
	c.compact(false)
	t1 := c.e.clock.Now().UnixMilli()
	if ms := markersOf(t, c.l); !slices.Equal(ms, []markerState{{1, t1 + deleteRetention}, {3, t0 + deleteRetention}}) {
		t.Fatalf("after pass 2: %+v", ms)
	}
	// Past the abort's horizon but not the commit's.
	c.e.clock.Advance(time.Duration(t0+deleteRetention+1-c.e.clock.Now().UnixMilli()) * time.Millisecond)
	if _, err := c.l.Compact(c.e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if ms := markersOf(t, c.l); !slices.Equal(ms, []markerState{{1, t1 + deleteRetention}}) {
		t.Fatalf("after the abort's horizon: %+v", ms)
	}
	c.e.clock.Advance(time.Duration(t1+deleteRetention+1-c.e.clock.Now().UnixMilli()) * time.Millisecond)
	if _, err := c.l.Compact(c.e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if ms := markersOf(t, c.l); len(ms) != 0 {
		t.Fatalf("after both horizons: %+v", ms)
	}
	if want := []int64{4, 5}; !slices.Equal(recordOffsets(readRecords(t, c.l)), want) {
		t.Fatalf("records %v", recordOffsets(readRecords(t, c.l)))
	}
}

// TestCompactKeepsLiveProducersAbortedBatch: the newest batch of a live
// producer stays for its sequence state even when its transaction was
// aborted, and so do the abort marker and the index entry that let
// read_committed consumers skip it.
func TestCompactKeepsLiveProducersAbortedBatch(t *testing.T) {
	t.Parallel()
	c := newTxnCompactLog(t, nil)
	c.txn(1, kv{key: "a", val: "old"})    // 0
	c.txn(1, kv{key: "a", val: "newest"}) // 1
	c.end(1, false)                       // 2
	c.plain(kv{key: "z", val: "1"})       // 3
	want := c.l.AbortedTransactions(0, math.MaxInt64)
	c.compact(true)
	if offs := recordOffsets(readRecords(t, c.l)); !slices.Equal(offs, []int64{1, 2, 3}) {
		t.Fatalf("records left at %v", offs)
	}
	if ms := markersOf(t, c.l); !slices.Equal(ms, []markerState{{2, -1}}) {
		t.Fatalf("markers %+v", ms)
	}
	if got := c.l.AbortedTransactions(0, math.MaxInt64); !slices.Equal(got, want) {
		t.Fatalf("aborted %+v, want %+v", got, want)
	}
}

// TestCompactStopsAtLastStableOffset: segments holding an ongoing
// transaction, or ones after it, are not cleaned, whatever the HW.
func TestCompactStopsAtLastStableOffset(t *testing.T) {
	t.Parallel()
	c := newTxnCompactLog(t, nil)
	c.plain(kv{key: "a", val: "1"}) // 0
	c.plain(kv{key: "a", val: "2"}) // 1
	rollNow(t, c.e, c.l)
	c.txn(1, kv{key: "b", val: "open"}) // 2
	c.plain(kv{key: "a", val: "3"})     // 3
	rollNow(t, c.e, c.l)
	c.plain(kv{key: "a", val: "4"}) // 4
	c.l.SetHighWatermark(c.l.LogEndOffset())
	if lso := c.l.LastStableOffset(); lso != 2 {
		t.Fatalf("LSO %d", lso)
	}
	res := c.compact(true)
	if res.FirstDirtyOffset > 2 {
		t.Fatalf("cleaned up to %d, past the LSO 2", res.FirstDirtyOffset)
	}
	// Only the first segment was cleaned, against keys up to offset 2: "a"
	// at 0 goes (superseded at 1), the rest stays.
	if offs := recordOffsets(readRecords(t, c.l)); !slices.Equal(offs, []int64{1, 2, 3, 4, 5}) && !slices.Equal(offs, []int64{1, 2, 3, 4}) {
		t.Fatalf("records left at %v", offs)
	}
	c.end(1, true)
	res = c.compact(true)
	if offs := recordOffsets(readRecords(t, c.l)); !slices.Contains(offs, 2) || slices.Contains(offs, 1) || slices.Contains(offs, 3) {
		t.Fatalf("after the commit, records left at %v (res %+v)", offs, res)
	}
}

// txnCompactCrashSetup is compactCrashSetup with transactions: committed
// and aborted transactions of three producers interleaved with plain
// updates over the same keys.
func txnCompactCrashSetup(t *testing.T, fsys vfs.FS) (*env, *Log) {
	t.Helper()
	e := compactEnv(t, fsys, Config{SegmentBytes: 700, IndexIntervalBytes: 100, SegmentMs: 60_000, DeleteRetentionMs: 1})
	c := &txnCompactLog{t: t, e: e, l: e.open(), seq: map[int64]int32{}}
	rng := rand.New(rand.NewPCG(7, 7))
	open := map[int64]bool{}
	for i := range 60 {
		key := kv{key: string(rune('a' + rng.IntN(6))), val: string(rune('0' + i%10))}
		pid := 1 + rng.Int64N(3)
		switch r := rng.IntN(10); {
		case r < 4:
			c.plain(key)
		case r < 7:
			c.txn(pid, key)
			open[pid] = true
		default:
			if open[pid] {
				c.end(pid, rng.IntN(2) == 0)
				open[pid] = false
			}
		}
	}
	for pid := int64(1); pid <= 3; pid++ {
		if open[pid] {
			c.end(pid, false)
		}
	}
	rollNow(t, e, c.l)
	c.plain(kv{key: "a", val: "active"})
	c.l.SetHighWatermark(c.l.LogEndOffset())
	c.l.ExpireProducers(e.clock.Now().Add(1000 * time.Hour))
	if err := c.l.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(c.l.AbortedTransactions(0, math.MaxInt64)) == 0 {
		t.Fatal("setup aborted nothing")
	}
	return e, c.l
}

func TestCompactTxnCrashAtEveryStepRecovers(t *testing.T) {
	t.Parallel()
	runCompactCrashSteps(t, txnCompactCrashSetup)
}
