package storage

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/protocol"
	"github.com/sluicedev/sluice/protocol/batch"
	"github.com/sluicedev/sluice/storage/vfs"
)

// The storage tests use the real protocol.RecordFilter: test files may
// import protocol (internal/lint checks only non-test imports).
var testFilter = protocol.RecordFilter{Codecs: protocol.NewCodecs()}

// kv is one test record; tomb makes a null value, nilKey a null key.
type kv struct {
	key, val     string
	tomb, nilKey bool
}

// kvOpts are the batch-level settings of kvBatch.
type kvOpts struct {
	codec      int8
	ts         int64
	pid        int64 // 0: none
	seq        int32
	control    bool
	appendTime bool
}

// kvBatch builds a batch with protocol.BuildBatch.
func kvBatch(t testing.TB, o kvOpts, kvs ...kv) []byte {
	t.Helper()
	recs := make([]kmsg.Record, len(kvs))
	for i, r := range kvs {
		recs[i] = kmsg.Record{OffsetDelta: int32(i), TimestampDelta64: int64(i)}
		if !r.nilKey {
			recs[i].Key = []byte(r.key)
		}
		if !r.tomb {
			recs[i].Value = []byte(r.val)
		}
	}
	opts := protocol.DefaultBatchOptions()
	opts.FirstTimestamp, opts.MaxTimestamp = o.ts, o.ts+int64(len(kvs))
	opts.Control, opts.LogAppendTime = o.control, o.appendTime
	if o.pid != 0 {
		opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence = o.pid, 0, o.seq
	}
	b, err := protocol.BuildBatch(testFilter.Codecs, o.codec, 0, recs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rec is a record as read back from a log.
type rec struct {
	off              int64
	key, val         string
	tomb, nilKey     bool
	control          bool
	batchBase, batch int64 // base and last offset of its batch
}

// readRecords reads every batch from the log start to the end, checking
// CRCs and that offsets only increase (gaps are allowed), and decodes the
// records.
func readRecords(t testing.TB, l *Log) []rec {
	t.Helper()
	var out []rec
	off, end, next := l.LogStartOffset(), l.LogEndOffset(), int64(-1)
	for off < end {
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
				t.Fatalf("Next: %v", err)
			}
			h, err := batch.Check(b)
			if err != nil {
				t.Fatalf("stored batch invalid: %v", err)
			}
			if h.BaseOffset < next {
				t.Fatalf("batch at %d overlaps the previous one ending at %d", h.BaseOffset, next)
			}
			_, recs, err := protocol.DecodeCompactedRecords(b, testFilter.Codecs, 1<<24)
			if err != nil {
				t.Fatalf("decode batch at %d: %v", h.BaseOffset, err)
			}
			for _, r := range recs {
				out = append(out, rec{off: h.BaseOffset + int64(r.OffsetDelta), key: string(r.Key), val: string(r.Value),
					tomb: r.Value == nil, nilKey: r.Key == nil, control: h.Control(), batchBase: h.BaseOffset, batch: h.LastOffset()})
			}
			next, off, blob = h.NextOffset(), h.NextOffset(), rest
		}
	}
	return out
}

// kvModel remembers every record appended, by offset.
type kvModel struct {
	recs   map[int64]kv
	latest map[string]int64 // key -> offset of its newest record
}

func newKVModel() *kvModel { return &kvModel{recs: map[int64]kv{}, latest: map[string]int64{}} }

func (m *kvModel) append(t testing.TB, l *Log, o kvOpts, kvs ...kv) AppendResult {
	t.Helper()
	res := mustAppend(t, l, kvBatch(t, o, kvs...), leader)
	for i, r := range kvs {
		off := res.BaseOffset + int64(i)
		if r.nilKey {
			r.key = ""
		}
		if r.tomb {
			r.val = ""
		}
		m.recs[off] = r
		if !r.nilKey && !o.control {
			m.latest[r.key] = off
		}
	}
	return res
}

// check verifies that every record read is one that was written at that
// offset and that the newest record of every key is present, except
// tombstones when dropTombs is set.
func (m *kvModel) check(t testing.TB, got []rec, dropTombs bool) {
	t.Helper()
	seen := map[int64]bool{}
	for _, r := range got {
		w, ok := m.recs[r.off]
		if !ok || w.key != r.key || w.val != r.val || w.tomb != r.tomb || w.nilKey != r.nilKey {
			t.Fatalf("record at %d is %+v, written %+v (%v)", r.off, r, w, ok)
		}
		seen[r.off] = true
	}
	for k, off := range m.latest {
		if !seen[off] && !(dropTombs && m.recs[off].tomb) {
			t.Fatalf("latest record of key %q at %d is gone", k, off)
		}
	}
}

// compactEnv is newEnv for a compacted topic with the real filter.
func compactEnv(t testing.TB, fsys vfs.FS, cfg Config) *env {
	t.Helper()
	if cfg.CleanupPolicy == 0 {
		cfg.CleanupPolicy = CleanupCompact
	}
	e := newEnv(t, fsys, cfg)
	e.opts.Filter = testFilter
	return e
}

// fillKeys appends n batches of 1-3 records over nkeys keys, with random
// codecs, some tombstones and some null keys, timestamps at the clock.
func fillKeys(t testing.TB, e *env, l *Log, m *kvModel, rng *rand.Rand, n, nkeys int) {
	t.Helper()
	codecs := []int8{protocol.CodecNone, protocol.CodecGzip, protocol.CodecSnappy, protocol.CodecLZ4, protocol.CodecZstd}
	for i := range n {
		var kvs []kv
		for j := range 1 + rng.IntN(3) {
			r := kv{key: fmt.Sprintf("k%03d", rng.IntN(nkeys)), val: fmt.Sprintf("v%d-%d-%s", i, j, string(make([]byte, rng.IntN(40))))}
			switch x := rng.IntN(20); {
			case x == 0:
				r.tomb = true
			case x == 1:
				r.nilKey = true
			}
			kvs = append(kvs, r)
		}
		m.append(t, l, kvOpts{codec: codecs[rng.IntN(len(codecs))], ts: e.clock.Now().UnixMilli()}, kvs...)
	}
}

// rollNow closes the active segment: it advances the clock past
// segment.ms and rolls.
func rollNow(t testing.TB, e *env, l *Log) {
	t.Helper()
	e.clock.Advance(time.Duration(l.Config().SegmentMs)*time.Millisecond + 10*time.Second)
	if err := l.MaybeRoll(e.clock.Now()); err != nil {
		t.Fatal(err)
	}
}

func TestCompactKeepsLatestValuePerKey(t *testing.T) {
	t.Parallel()
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 7))
			e := compactEnv(t, nil, Config{SegmentBytes: 1500, IndexIntervalBytes: 200, SegmentMs: 60_000})
			l := e.open()
			m := newKVModel()
			fillKeys(t, e, l, m, rng, 300, 25)
			rollNow(t, e, l)
			m.append(t, l, kvOpts{ts: e.clock.Now().UnixMilli()}, kv{key: "k000", val: "in-active"}, kv{key: "k000", val: "twice"})
			before := readRecords(t, l)
			lso, leo, size := l.LogStartOffset(), l.LogEndOffset(), l.Size()
			segs := l.Segments()
			activeBase := segs[len(segs)-1]
			res, err := l.Compact(e.clock.Now())
			if err != nil {
				t.Fatal(err)
			}
			if res.FirstDirtyOffset != activeBase || res.RecordsRemoved == 0 || res.BytesAfter >= res.BytesBefore {
				t.Fatalf("result %+v, active segment at %d", res, activeBase)
			}
			if l.LogStartOffset() != lso || l.LogEndOffset() != leo || l.Size() >= size {
				t.Fatalf("after: [%d, %d) %d bytes; before [%d, %d) %d bytes", l.LogStartOffset(), l.LogEndOffset(), l.Size(), lso, leo, size)
			}
			after := readRecords(t, l)
			m.check(t, after, false)
			assertCompacted(t, after, activeBase)
			// The active segment is byte for byte untouched.
			var activeBefore, activeAfter []rec
			for _, r := range before {
				if r.off >= activeBase {
					activeBefore = append(activeBefore, r)
				}
			}
			for _, r := range after {
				if r.off >= activeBase {
					activeAfter = append(activeAfter, r)
				}
			}
			if !slices.Equal(activeBefore, activeAfter) || len(activeAfter) != 2 {
				t.Fatalf("active segment changed: %v -> %v", activeBefore, activeAfter)
			}
			// A second pass merges the now small segments.
			if _, err := l.Compact(e.clock.Now()); err != nil {
				t.Fatal(err)
			}
			if got := l.Segments(); len(got) >= len(segs) || got[len(got)-1] != activeBase {
				t.Fatalf("segments %v after two passes, %v before", got, segs)
			}
			m.check(t, readRecords(t, l), false)
			// Reopen: recovery accepts the gaps compaction left, with or
			// without a clean shutdown.
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			rewriteFile(t, e.fs, filepath.Join(e.dir, recoveryCheckpoint), func([]byte) []byte { return nil })
			l2 := e.open()
			if l2.LogEndOffset() != leo || l2.Recovery().TruncatedBytes != 0 {
				t.Fatalf("reopened: LEO %d (want %d), recovery %+v", l2.LogEndOffset(), leo, l2.Recovery())
			}
			got := readRecords(t, l2)
			m.check(t, got, false)
			assertCompacted(t, got, activeBase)
		})
	}
}

// assertCompacted checks that below end every key appears at most once.
func assertCompacted(t testing.TB, got []rec, end int64) {
	t.Helper()
	keys := map[string]int64{}
	for _, r := range got {
		if r.off >= end || r.nilKey || r.control {
			continue
		}
		if prev, dup := keys[r.key]; dup {
			t.Fatalf("key %q at %d and %d below %d", r.key, prev, r.off, end)
		}
		keys[r.key] = r.off
	}
}

func TestCompactTombstonesExpireAfterDeleteRetention(t *testing.T) {
	t.Parallel()
	e := compactEnv(t, nil, Config{SegmentBytes: 400, SegmentMs: 60_000, DeleteRetentionMs: time.Hour.Milliseconds()})
	l := e.open()
	m := newKVModel()
	ts := e.clock.Now().UnixMilli()
	for i := range 10 {
		m.append(t, l, kvOpts{ts: ts}, kv{key: "gone", val: fmt.Sprint("v", i)}, kv{key: "kept", val: fmt.Sprint("v", i)})
	}
	m.append(t, l, kvOpts{ts: ts}, kv{key: "gone", tomb: true})
	m.append(t, l, kvOpts{ts: ts}, kv{key: "nil", nilKey: true, val: "x"}, kv{key: "nil", nilKey: true, tomb: true})
	rollNow(t, e, l)
	tombs := func() (n int) {
		for _, r := range readRecords(t, l) {
			if r.tomb && !r.nilKey {
				n++
			}
		}
		return n
	}
	if _, err := l.Compact(e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	got := readRecords(t, l)
	m.check(t, got, false)
	if n := tombs(); n != 1 || len(got) != 4 {
		t.Fatalf("after the first pass: %d tombstones, records %+v", n, got)
	}
	// Within delete.retention.ms of the first pass the tombstone stays,
	// even when another pass runs.
	e.clock.Advance(40 * time.Minute)
	if _, err := l.Compact(e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if n := tombs(); n != 1 {
		t.Fatalf("tombstone dropped %v after the pass that first compacted it", 40*time.Minute)
	}
	e.clock.Advance(21 * time.Minute)
	if _, err := l.Compact(e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	got = readRecords(t, l)
	m.check(t, got, true)
	if n := tombs(); n != 0 {
		t.Fatalf("tombstone kept past delete.retention.ms: %+v", got)
	}
	// Records with a null key are always kept, tombstone or not.
	nils := 0
	for _, r := range got {
		if r.nilKey {
			nils++
		}
	}
	if nils != 2 {
		t.Fatalf("%d null-key records left, want 2: %+v", nils, got)
	}
}

func TestCompactRespectsMinCompactionLag(t *testing.T) {
	t.Parallel()
	e := compactEnv(t, nil, Config{SegmentBytes: 300, SegmentMs: 3 * time.Hour.Milliseconds(), MinCompactionLagMs: time.Hour.Milliseconds()})
	l := e.open()
	m := newKVModel()
	old := e.clock.Now().Add(-2 * time.Hour).UnixMilli()
	for i := range 8 {
		m.append(t, l, kvOpts{ts: old}, kv{key: "a", val: fmt.Sprint("old", i)})
	}
	recent := l.LogEndOffset()
	for i := range 8 {
		m.append(t, l, kvOpts{ts: e.clock.Now().UnixMilli()}, kv{key: "a", val: fmt.Sprint("new", i)})
	}
	segs := l.Segments()
	res, err := l.Compact(e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	// Only segments whose newest record is older than the lag were
	// cleaned; the first segment holding recent records and everything
	// after it are untouched.
	firstRecent := segs[sort.Search(len(segs), func(i int) bool { return segs[i] > recent })-1]
	if res.FirstDirtyOffset != firstRecent {
		t.Fatalf("cleaned up to %d, want %d (segments %v)", res.FirstDirtyOffset, firstRecent, segs)
	}
	got := readRecords(t, l)
	m.check(t, got, false)
	for off := firstRecent; off < l.LogEndOffset(); off++ {
		if !slices.ContainsFunc(got, func(r rec) bool { return r.off == off }) {
			t.Fatalf("record %d inside the min.compaction.lag window was removed", off)
		}
	}
	if firstRecent == recent && (got[0].off != recent-1 || got[0].val != "old7") {
		t.Fatalf("the cleaned range should keep only old7: first record %+v", got[0])
	}
	e.clock.Advance(2 * time.Hour)
	rollNow(t, e, l)
	if _, err := l.Compact(e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	got = readRecords(t, l)
	m.check(t, got, false)
	if len(got) != 1 || got[0].val != "new7" {
		t.Fatalf("after the lag passed: %+v", got)
	}
}

func TestCompactStoreMaintainTriggers(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := openTestStore(t, vfs.NewMem(), StoreOptions{Clock: clock.Now, Filter: testFilter})
	cfg := Config{CleanupPolicy: CleanupCompact, SegmentBytes: 300, MaxCompactionLagMs: time.Hour.Milliseconds()}
	l, err := s.Log("lagged", 0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := s.Log("plain", 0, Config{SegmentBytes: 300})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		for _, lg := range []*Log{l, plain} {
			mustAppend(t, lg, kvBatch(t, kvOpts{ts: clock.Now().UnixMilli()}, kv{key: fmt.Sprint("k", i), val: "first"}), leader)
		}
	}
	if err := l.MaybeRoll(clock.Now().Add(2 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	s.Maintain(clock.Now()) // everything is dirty: ratio 1
	if res := l.cleaner.ck.firstDirty; res != l.LogEndOffset() {
		t.Fatalf("first pass cleaned up to %d, LEO %d", res, l.LogEndOffset())
	}
	// A few updates: a small dirty share, below min.cleanable.dirty.ratio.
	clock.Advance(time.Minute)
	for i := range 4 {
		mustAppend(t, l, kvBatch(t, kvOpts{ts: clock.Now().UnixMilli()}, kv{key: "k0", val: fmt.Sprint("update", i)}), leader)
	}
	if err := l.MaybeRoll(clock.Now().Add(2 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if ratio, due := l.cleanability(clock.Now()); due || ratio <= 0 || ratio >= 0.5 {
		t.Fatalf("ratio %v, due %v", ratio, due)
	}
	n := len(readRecords(t, l))
	s.Maintain(clock.Now())
	if got := len(readRecords(t, l)); got != n {
		t.Fatalf("compacted below min.cleanable.dirty.ratio and max.compaction.lag.ms: %d -> %d records", n, got)
	}
	// Past max.compaction.lag.ms the log is compacted despite the ratio.
	clock.Advance(time.Hour + time.Second)
	s.Maintain(clock.Now())
	got := readRecords(t, l)
	assertCompacted(t, got, l.LogEndOffset())
	if len(got) != 30 {
		t.Fatalf("after max.compaction.lag.ms: %d records", len(got))
	}
	if got := len(readRecords(t, plain)); got != 30 {
		t.Fatalf("a delete-policy log was compacted: %d records", got)
	}
	// max.compaction.lag.ms also caps segment.ms for the active segment.
	mustAppend(t, l, kvBatch(t, kvOpts{ts: clock.Now().UnixMilli()}, kv{key: "k1", val: "x"}), leader)
	clock.Advance(time.Hour + time.Second)
	s.Maintain(clock.Now())
	if segs := l.Segments(); segs[len(segs)-1] != l.LogEndOffset() {
		t.Fatalf("active segment not rolled after max.compaction.lag.ms: %v, LEO %d", segs, l.LogEndOffset())
	}
	// The dirty ratio alone triggers too.
	l.SetConfig(Config{CleanupPolicy: CleanupCompact, SegmentBytes: 300, MinCleanableDirtyRatio: 0.1})
	for i := range 20 {
		mustAppend(t, l, kvBatch(t, kvOpts{ts: clock.Now().UnixMilli()}, kv{key: "k2", val: fmt.Sprint("again", i)}), leader)
	}
	s.Maintain(clock.Now())
	got = readRecords(t, l)
	active := l.Segments()[len(l.Segments())-1]
	assertCompacted(t, got, active)
	if len(got) >= 50 {
		t.Fatalf("dirty ratio did not trigger compaction: %d records", len(got))
	}
}

func TestCompactWithRetention(t *testing.T) {
	t.Parallel()
	for _, policy := range []CleanupPolicy{CleanupCompact, CleanupCompact | CleanupDelete} {
		t.Run(policy.String(), func(t *testing.T) {
			t.Parallel()
			e := compactEnv(t, nil, Config{CleanupPolicy: policy, SegmentBytes: 300, SegmentMs: 60_000,
				RetentionMs: time.Hour.Milliseconds(), RetentionBytes: -1})
			l := e.open()
			m := newKVModel()
			now := e.clock.Now()
			for i := range 20 {
				ts := now.Add(-3 * time.Hour).UnixMilli()
				if i >= 10 {
					ts = now.UnixMilli()
				}
				m.append(t, l, kvOpts{ts: ts}, kv{key: fmt.Sprint("k", i%4), val: fmt.Sprint(i)})
			}
			rollNow(t, e, l)
			n, err := l.EnforceRetention(e.clock.Now())
			if err != nil {
				t.Fatal(err)
			}
			if policy&CleanupDelete == 0 {
				if n != 0 || l.LogStartOffset() != 0 {
					t.Fatalf("compact-only topic lost %d segments to retention.ms", n)
				}
			} else if n == 0 || l.LogStartOffset() == 0 {
				t.Fatal("compact,delete topic kept segments past retention.ms")
			}
			if _, err := l.Compact(e.clock.Now()); err != nil {
				t.Fatal(err)
			}
			got := readRecords(t, l)
			assertCompacted(t, got, l.LogEndOffset())
			if len(got) != 4 {
				t.Fatalf("%d records left, want one per key: %+v", len(got), got)
			}
			for _, r := range got {
				if r.off < 16 {
					t.Fatalf("stale record %+v survived", r)
				}
			}
		})
	}
}

func TestCompactKeepsControlAndProducerState(t *testing.T) {
	t.Parallel()
	e := compactEnv(t, nil, Config{SegmentBytes: 100_000, SegmentMs: 60_000})
	l := e.open()
	m := newKVModel()
	ts := e.clock.Now().UnixMilli()
	m.append(t, l, kvOpts{ts: ts, pid: 7, seq: 0}, kv{key: "a", val: "p7-0"})
	last7 := m.append(t, l, kvOpts{ts: ts, pid: 7, seq: 1}, kv{key: "a", val: "p7-1"}, kv{key: "b", val: "p7-1"})
	m.append(t, l, kvOpts{ts: ts, control: true}, kv{key: "\x00\x00\x00\x01", val: "\x00\x00\x00\x00\x00\x00"})
	m.append(t, l, kvOpts{ts: ts, pid: 8, seq: 0}, kv{key: "a", val: "p8"}, kv{key: "b", val: "p8"})
	m.append(t, l, kvOpts{ts: ts, pid: 8, seq: 2}, kv{key: "c", val: "p8"})
	rollNow(t, e, l)
	if _, err := l.Compact(e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	got := readRecords(t, l)
	m.check(t, got, false)
	var bases []int64
	for _, r := range got {
		if len(bases) == 0 || bases[len(bases)-1] != r.batchBase {
			bases = append(bases, r.batchBase)
		}
	}
	// Producer 7's first batch goes; its last one stays whole although
	// both its records are superseded; the control batch stays.
	if want := []int64{last7.BaseOffset, 3, 4, 6}; !slices.Equal(bases, want) {
		t.Fatalf("batches left at %v, want %v: %+v", bases, want, got)
	}
	// Producer 8's partly superseded batch keeps its offsets and sequence.
	blob, err := l.Read(4, 1<<20, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := batch.ParseHeader(blob)
	if h.BaseOffset != 4 || h.LastOffsetDelta != 1 || h.NumRecords != 2 || h.ProducerID != 8 || h.BaseSequence != 0 {
		t.Fatalf("producer 8 batch header %+v", h)
	}
	// Idempotence survives a restart: a retry of producer 7's last batch
	// is still a duplicate.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := e.open()
	res := mustAppend(t, l2, kvBatch(t, kvOpts{ts: ts, pid: 7, seq: 1}, kv{key: "a", val: "p7-1"}, kv{key: "b", val: "p7-1"}), leader)
	if !res.Duplicate || res.BaseOffset != last7.BaseOffset {
		t.Fatalf("retry after compaction: %+v", res)
	}
}

func TestCompactRecoveryToleratesGapsWithoutCheckpoints(t *testing.T) {
	t.Parallel()
	e := compactEnv(t, nil, Config{SegmentBytes: 250, SegmentMs: 60_000})
	l := e.open()
	m := newKVModel()
	// Every segment ends with records superseded later, so compaction
	// leaves gaps at segment ends.
	for i := range 30 {
		m.append(t, l, kvOpts{ts: e.clock.Now().UnixMilli()}, kv{key: fmt.Sprint("k", i%3), val: fmt.Sprint(i)})
	}
	rollNow(t, e, l)
	if _, err := l.Compact(e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	leo := l.LogEndOffset()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// A lost epoch checkpoint makes recovery rescan every segment.
	if err := e.fs.Remove(filepath.Join(e.dir, epochCheckpoint)); err != nil {
		t.Fatal(err)
	}
	l2 := e.open()
	if l2.LogEndOffset() != leo || l2.Recovery().DeletedSegments != 0 || l2.Recovery().TruncatedBytes != 0 {
		t.Fatalf("recovery after compaction: LEO %d want %d, %+v", l2.LogEndOffset(), leo, l2.Recovery())
	}
	m.check(t, readRecords(t, l2), false)
}

func TestCompactTruncationLowersCheckpoint(t *testing.T) {
	t.Parallel()
	e := compactEnv(t, nil, Config{SegmentBytes: 250, SegmentMs: 60_000})
	l := e.open()
	m := newKVModel()
	for i := range 30 {
		m.append(t, l, kvOpts{ts: e.clock.Now().UnixMilli()}, kv{key: fmt.Sprint("k", i%3), val: fmt.Sprint(i)})
	}
	rollNow(t, e, l)
	res, err := l.Compact(e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.TruncateTo(res.FirstDirtyOffset - 5); err != nil {
		t.Fatal(err)
	}
	rows, err := readCheckpoint(e.fs, e.dir, cleanerCheckpointFile, 2)
	if err != nil {
		t.Fatal(err)
	}
	if rows[0][0] > l.LogEndOffset() || rows[0][1] > l.LogEndOffset() {
		t.Fatalf("cleaner checkpoint %v above the truncated end %d", rows, l.LogEndOffset())
	}
	for i := range 10 {
		mustAppend(t, l, kvBatch(t, kvOpts{ts: e.clock.Now().UnixMilli()}, kv{key: "k0", val: fmt.Sprint("after", i)}), leader)
	}
	rollNow(t, e, l)
	if _, err := l.Compact(e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	got := readRecords(t, l)
	assertCompacted(t, got, l.LogEndOffset())
	if last := got[len(got)-1]; last.key != "k0" || last.val != "after9" {
		t.Fatalf("last record %+v", last)
	}
}

func TestCompactDisabledWithoutFilterOrPolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Config{CleanupPolicy: CleanupCompact})
	if _, err := e.open().Compact(e.clock.Now()); err != ErrCompactionDisabled {
		t.Fatalf("without a filter: %v", err)
	}
	e2 := compactEnv(t, nil, Config{CleanupPolicy: CleanupDelete, SegmentBytes: 200, SegmentMs: 60_000})
	l := e2.open()
	for i := range 10 {
		mustAppend(t, l, kvBatch(t, kvOpts{}, kv{key: "k", val: fmt.Sprint(i)}), leader)
	}
	rollNow(t, e2, l)
	if res, err := l.Compact(e2.clock.Now()); err != nil || res.Segments != 0 || len(readRecords(t, l)) != 10 {
		t.Fatalf("delete-policy log compacted: %+v, %v", res, err)
	}
}

func TestCompactCleanupPolicyParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want CleanupPolicy
		ok   bool
	}{
		{"delete", CleanupDelete, true},
		{"compact", CleanupCompact, true},
		{"compact,delete", CleanupCompact | CleanupDelete, true},
		{"delete, compact", CleanupCompact | CleanupDelete, true},
		{"", 0, false},
		{"compact,shred", 0, false},
	} {
		got, err := ParseCleanupPolicy(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseCleanupPolicy(%q) = %v, %v", tc.in, got, err)
		}
		if tc.ok {
			if again, _ := ParseCleanupPolicy(got.String()); again != got {
				t.Errorf("%v does not round-trip through String", got)
			}
		}
	}
	if c := (Config{}).normalized(); c.CleanupPolicy != CleanupDelete || c.DeleteRetentionMs != defaultDeleteRetentionMs ||
		c.MinCleanableDirtyRatio != 0.5 || c.MaxCompactionLagMs != math.MaxInt64 {
		t.Errorf("defaults: %+v", c)
	}
	if c := (Config{DeleteRetentionMs: -1, MinCleanableDirtyRatio: -1}).normalized(); c.normalized() != c {
		t.Errorf("normalized is not idempotent: %+v", c)
	}
}

func TestCompactCheckpointPasses(t *testing.T) {
	t.Parallel()
	var ck cleanerCheckpoint
	ck.addPass(100, 1000, 0)
	ck.addPass(200, 2000, 0)
	ck.addPass(200, 2500, 0) // nothing new: the older time stays
	ck.addPass(300, 3000, 0)
	for _, tc := range []struct{ cutoff, want int64 }{{999, 0}, {1000, 100}, {2999, 200}, {5000, 300}} {
		if got := ck.horizon(tc.cutoff); got != tc.want {
			t.Errorf("horizon(%d) = %d, want %d", tc.cutoff, got, tc.want)
		}
	}
	ck.addPass(400, 4000, 2500) // rows at or before 2500 collapse into the newest of them
	if want := []cleanPass{{200, 2000}, {300, 3000}, {400, 4000}}; !slices.Equal(ck.passes, want) {
		t.Errorf("passes %v, want %v", ck.passes, want)
	}
	ck.firstDirty, ck.compactedTo = 400, 400
	if !ck.truncate(250) || ck.firstDirty != 250 || !slices.Equal(ck.passes, []cleanPass{{200, 2000}, {250, 3000}}) {
		t.Errorf("after truncate: %+v", ck)
	}
	back, ok := cleanerCheckpointFromRows(ck.rows())
	if !ok || back.firstDirty != ck.firstDirty || back.compactedTo != ck.compactedTo || !slices.Equal(back.passes, ck.passes) {
		t.Errorf("rows round trip: %+v -> %+v", ck, back)
	}
	for range 2 * maxCleanerPasses {
		ck.addPass(ck.passes[len(ck.passes)-1].end+1, 10_000, 0)
	}
	if len(ck.passes) > maxCleanerPasses {
		t.Errorf("%d passes kept", len(ck.passes))
	}
}
