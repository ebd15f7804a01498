package storage

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicedev/sluice/protocol"
	"github.com/sluicedev/sluice/protocol/batch"
	"github.com/sluicedev/sluice/storage/vfs"
)

// compactCrashSetup builds the same flushed log on fsys every time: many
// small segments of updates over a few keys, a tombstone, and an active
// segment.
func compactCrashSetup(t *testing.T, fsys vfs.FS) (*env, *Log) {
	t.Helper()
	e := compactEnv(t, fsys, Config{SegmentBytes: 600, IndexIntervalBytes: 100, SegmentMs: 60_000})
	l := e.open()
	m := newKVModel()
	fillKeys(t, e, l, m, rand.New(rand.NewPCG(42, 42)), 80, 8)
	m.append(t, l, kvOpts{ts: e.clock.Now().UnixMilli()}, kv{key: "k001", tomb: true})
	rollNow(t, e, l)
	m.append(t, l, kvOpts{ts: e.clock.Now().UnixMilli()}, kv{key: "k002", val: "active"})
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	return e, l
}

// TestCompactCrashAtEveryStepRecovers fails each file operation of a
// compaction pass in turn (the Nth create, write, fsync, rename, directory
// fsync or remove), then simulates power loss and reopens. The log must
// come back either exactly as before the pass or exactly as after a
// successful one, recover the same way twice, and compact normally
// afterwards.
func TestCompactCrashAtEveryStepRecovers(t *testing.T) {
	t.Parallel()
	runCompactCrashSteps(t, compactCrashSetup)
}

// compactState is what a compaction pass must leave all or nothing of:
// the records and the aborted-transaction index.
type compactState struct {
	recs    []rec
	aborted []AbortedTxn
}

func readCompactState(t testing.TB, l *Log) compactState {
	t.Helper()
	aborted, err := l.AppendAbortedTransactions(nil, 0, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	return compactState{recs: readRecords(t, l), aborted: aborted}
}

func (s compactState) equal(o compactState) bool {
	return slices.Equal(s.recs, o.recs) && slices.Equal(s.aborted, o.aborted)
}

// runCompactCrashSteps fails each kind of file operation of a pass over
// the log setup builds, at every position in turn (see
// compactCrashOnce).
func runCompactCrashSteps(t *testing.T, setup func(*testing.T, vfs.FS) (*env, *Log)) {
	t.Helper()
	_, ref := setup(t, vfs.NewMem())
	before := readCompactState(t, ref)
	if _, err := ref.Compact(ref.clock()); err != nil {
		t.Fatal(err)
	}
	after := readCompactState(t, ref)
	if len(after.recs) >= len(before.recs) {
		t.Fatalf("reference pass removed nothing: %d records", len(after.recs))
	}
	for _, op := range []vfs.Op{vfs.OpCreate, vfs.OpWrite, vfs.OpSync, vfs.OpRename, vfs.OpSyncDir, vfs.OpRemove} {
		t.Run(fmt.Sprint("op", op), func(t *testing.T) {
			t.Parallel()
			for nth := 1; nth < 500; nth++ {
				if !compactCrashOnce(t, setup, op, nth, before, after) {
					if nth == 1 && op != vfs.OpRemove {
						t.Fatalf("a pass never uses op %d", op)
					}
					return
				}
			}
			t.Fatal("pass did not finish within 500 operations")
		})
	}
}

// compactCrashOnce runs one failure point and reports whether the
// failure was hit (false: the pass completed without reaching it).
func compactCrashOnce(t *testing.T, setup func(*testing.T, vfs.FS) (*env, *Log), op vfs.Op, nth int, before, after compactState) bool {
	t.Helper()
	mem := vfs.NewCrashableMem()
	efs := vfs.NewErrorFS(mem)
	e, l := setup(t, efs)
	start := efs.Count(op)
	efs.FailNth(op, nth, nil)
	_, cerr := l.Compact(e.clock.Now())
	hit := efs.Count(op)-start >= nth
	if hit && cerr == nil && op != vfs.OpRemove {
		// Only removals of stale files may fail without failing the pass.
		t.Fatalf("op %d #%d failed but Compact succeeded", op, nth)
	}
	either := func(what string, got compactState) {
		t.Helper()
		if !got.equal(before) && !got.equal(after) {
			t.Fatalf("op %d #%d (%v): %s is neither the old nor the compacted log:\n%+v", op, nth, cerr, what, got)
		}
	}
	either("the live log", readCompactState(t, l))
	crashes := []*vfs.MemFS{mem.CrashClone()}
	if !logSwapRenamePending(t, mem, e.dir) {
		crashes = append(crashes, mem.CrashCloneRandom(rand.New(rand.NewPCG(uint64(nth), uint64(op)))))
	}
	for i, crashed := range crashes {
		e2 := *e
		e2.fs = crashed
		l2 := e2.open()
		got := readCompactState(t, l2)
		either(fmt.Sprintf("crash %d", i), got)
		// Recovery is idempotent.
		e3 := *e
		e3.fs = crashed.CrashClone()
		if again := readCompactState(t, e3.open()); !again.equal(got) {
			t.Fatalf("op %d #%d: second recovery differs", op, nth)
		}
		// And the recovered log compacts to the same records.
		if _, err := l2.Compact(e.clock.Now()); err != nil {
			t.Fatalf("op %d #%d: compaction after recovery: %v", op, nth, err)
		}
		if got := readCompactState(t, l2); !got.equal(after) {
			t.Fatalf("op %d #%d: recovered log compacted to\n%+v\nwant\n%+v", op, nth, got, after)
		}
	}
	return hit
}

// TestCompactFailedPassLeavesLogUsable checks that an I/O error before the
// swap (here while writing the cleaned files) abandons the pass without
// fencing the log or leaving files behind.
func TestCompactFailedPassLeavesLogUsable(t *testing.T) {
	t.Parallel()
	mem := vfs.NewMem()
	efs := vfs.NewErrorFS(mem)
	e, l := compactCrashSetup(t, efs)
	before := readRecords(t, l)
	efs.FailNth(vfs.OpWrite, 2, nil)
	if _, err := l.Compact(e.clock.Now()); !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("Compact: %v", err)
	}
	ents, err := mem.ReadDir(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range ents {
		if n := en.Name(); strings.HasSuffix(n, cleanedSuffix) || strings.HasSuffix(n, swapSuffix) {
			t.Fatalf("left behind %s", n)
		}
	}
	if !slices.Equal(readRecords(t, l), before) {
		t.Fatal("a failed pass changed the log")
	}
	mustAppend(t, l, kvBatch(t, kvOpts{}, kv{key: "x", val: "y"}), leader)
	if _, err := l.Compact(e.clock.Now()); err != nil {
		t.Fatalf("retry: %v", err)
	}
}

// TestCompactConcurrentReadsSeeConsistentData reads at random offsets
// while another goroutine appends, rolls, compacts and applies retention.
// Under -race this checks the locking; the assertions check that every
// read returns whole valid batches holding records exactly as written at
// their offsets, never torn or mixed data.
func TestCompactConcurrentReadsSeeConsistentData(t *testing.T) {
	t.Parallel()
	e := compactEnv(t, nil, Config{CleanupPolicy: CleanupCompact | CleanupDelete, SegmentBytes: 900,
		IndexIntervalBytes: 100, SegmentMs: 60_000, RetentionBytes: 30_000})
	l := e.open()
	var mu sync.Mutex
	written := map[int64]kv{}
	rng := rand.New(rand.NewPCG(9, 9))
	appendOne := func(i int) {
		var kvs []kv
		for j := range 1 + rng.IntN(3) {
			kvs = append(kvs, kv{key: fmt.Sprint("k", rng.IntN(15)), val: fmt.Sprint(i, "-", j)})
		}
		base := l.LogEndOffset() // the only appender
		mu.Lock()
		for j, r := range kvs {
			written[base+int64(j)] = r
		}
		mu.Unlock()
		if res := mustAppend(t, l, kvBatch(t, kvOpts{ts: e.clock.Now().UnixMilli()}, kvs...), leader); res.BaseOffset != base {
			t.Errorf("appended at %d, expected %d", res.BaseOffset, base)
		}
	}
	for i := range 100 {
		appendOne(i)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		defer stop.Store(true)
		for round := range 30 {
			for i := range 15 {
				appendOne(1000*round + i)
			}
			e.clock.Advance(61 * time.Second)
			if err := l.MaybeRoll(e.clock.Now()); err != nil {
				t.Error(err)
				return
			}
			if _, err := l.Compact(e.clock.Now()); err != nil {
				t.Error(err)
				return
			}
			if _, err := l.EnforceRetention(e.clock.Now()); err != nil {
				t.Error(err)
				return
			}
		}
	})
	var reads atomic.Int64
	for r := range 3 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 1))
			for !stop.Load() {
				lso, leo := l.LogStartOffset(), l.LogEndOffset()
				if leo <= lso {
					continue
				}
				off := lso + rng.Int64N(leo-lso)
				blob, err := l.Read(off, int32(200+rng.IntN(3000)), math.MaxInt64)
				if errors.Is(err, ErrOffsetOutOfRange) {
					continue
				}
				if err != nil {
					t.Errorf("Read(%d): %v", off, err)
					return
				}
				if !checkCompactedBlob(t, blob, off, &mu, written) {
					return
				}
				reads.Add(1)
			}
		})
	}
	wg.Wait()
	if reads.Load() == 0 {
		t.Fatal("no read completed")
	}
	got := readRecords(t, l)
	assertCompacted(t, got, l.Segments()[len(l.Segments())-1])
}

// logSwapRenamePending reports whether a "<base>.log.swap" or
// "<base>.txnindex.swap" file was renamed over its segment's file without
// the directory being fsynced since. Like Kafka (and the checkpoint files
// here), the swap relies on rename(2) replacing the target atomically, so
// a power loss leaves either the old or the new file under the name.
// CrashCloneRandom keeps or drops the two directory entries a rename
// touches independently, which can lose both; such a state cannot arise
// on a POSIX file system and is not tested.
func logSwapRenamePending(t *testing.T, mem *vfs.MemFS, dir string) bool {
	t.Helper()
	list := func(fsys vfs.FS) map[string]bool {
		ents, err := fsys.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, e := range ents {
			names[e.Name()] = true
		}
		return names
	}
	live, synced := list(mem), list(mem.CrashClone())
	for name := range synced {
		if (strings.HasSuffix(name, logSuffix+swapSuffix) || strings.HasSuffix(name, txnIndexSuffix+swapSuffix)) && !live[name] {
			return true
		}
	}
	return false
}

// checkCompactedBlob verifies one Read result against what was written.
func checkCompactedBlob(t *testing.T, blob []byte, off int64, mu *sync.Mutex, written map[int64]kv) bool {
	t.Helper()
	next := int64(-1)
	for len(blob) > 0 {
		b, rest, err := batch.Next(blob)
		if err != nil {
			t.Errorf("torn read at %d: %v", off, err)
			return false
		}
		h, err := batch.Check(b)
		if err != nil {
			t.Errorf("invalid batch read at %d: %v", off, err)
			return false
		}
		if next < 0 && h.LastOffset() < off || h.BaseOffset < next {
			t.Errorf("read at %d: batch [%d, %d] after %d", off, h.BaseOffset, h.LastOffset(), next)
			return false
		}
		_, recs, err := protocol.DecodeCompactedRecords(b, testFilter.Codecs, 1<<24)
		if err != nil {
			t.Errorf("decode at %d: %v", h.BaseOffset, err)
			return false
		}
		mu.Lock()
		for _, r := range recs {
			o := h.BaseOffset + int64(r.OffsetDelta)
			if w := written[o]; w.key != string(r.Key) || w.val != string(r.Value) {
				mu.Unlock()
				t.Errorf("record at %d is %q=%q, written %q=%q", o, r.Key, r.Value, w.key, w.val)
				return false
			}
		}
		mu.Unlock()
		next, blob = h.NextOffset(), rest
	}
	return true
}

// blockingFilter wraps a RecordFilter and blocks its first Records call
// until release is closed, announcing it on entered.
type blockingFilter struct {
	RecordFilter
	once             sync.Once
	entered, release chan struct{}
}

func (f *blockingFilter) Records(b []byte, fn func(int64, []byte, bool, int64)) error {
	f.once.Do(func() {
		close(f.entered)
		<-f.release
	})
	return f.RecordFilter.Records(b, fn)
}

// TestCompactCloseStopsRunningPass closes a log while a pass is running:
// Close waits for the pass, which gives up and removes its files.
func TestCompactCloseStopsRunningPass(t *testing.T) {
	t.Parallel()
	mem := vfs.NewMem()
	e := compactEnv(t, mem, Config{SegmentBytes: 600, SegmentMs: 60_000})
	f := &blockingFilter{RecordFilter: testFilter, entered: make(chan struct{}), release: make(chan struct{})}
	e.opts.Filter = f
	l := e.open()
	fillKeys(t, e, l, newKVModel(), rand.New(rand.NewPCG(1, 1)), 60, 5)
	rollNow(t, e, l)
	var wg sync.WaitGroup
	var compactErr, closeErr error
	wg.Go(func() { _, compactErr = l.Compact(e.clock.Now()) })
	<-f.entered
	wg.Go(func() { closeErr = l.Close() })
	waitFor(t, 5*time.Second, func() error {
		if !l.cleaner.stop.Load() {
			return errNotYet
		}
		return nil
	})
	close(f.release)
	wg.Wait()
	if !errors.Is(compactErr, ErrClosed) || closeErr != nil {
		t.Fatalf("Compact: %v, Close: %v", compactErr, closeErr)
	}
	if _, err := l.Compact(e.clock.Now()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Compact after Close: %v", err)
	}
	ents, err := mem.ReadDir(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range ents {
		if strings.HasSuffix(en.Name(), cleanedSuffix) || strings.HasSuffix(en.Name(), swapSuffix) {
			t.Fatalf("left behind %s", en.Name())
		}
	}
}
