package storage

import (
	"errors"
	"io/fs"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicedev/sluice/storage/vfs"
)

// appendN appends n one-record batches.
func appendN(t testing.TB, l *Log, n int) {
	t.Helper()
	for i := range n {
		mustAppend(t, l, mkBatch(t, spec{fill: byte(i)}), leader)
	}
}

// hwFile reads the high-watermark checkpoint, -1 when there is none.
func hwFile(t testing.TB, e *env) int64 {
	t.Helper()
	hw, err := readOffsetCheckpoint(e.fs, e.dir, hwCheckpoint)
	if errors.Is(err, fs.ErrNotExist) {
		return -1
	}
	if err != nil {
		t.Fatalf("read %s: %v", hwCheckpoint, err)
	}
	return hw
}

func checkpointHW(t testing.TB, l *Log) {
	t.Helper()
	if err := l.checkpointHighWatermark(); err != nil {
		t.Fatalf("checkpointHighWatermark: %v", err)
	}
}

func TestLogHighWatermarkSetClamps(t *testing.T) {
	t.Parallel()
	// Log [3, 10): ten batches, records before 3 deleted.
	cases := []struct {
		name string
		set  []int64 // applied in order
		want int64
	}{
		{"unknown until set", nil, -1},
		{"inside", []int64{6}, 6},
		{"at log start", []int64{3}, 3},
		{"below log start", []int64{1}, 3},
		{"negative", []int64{-7}, 3},
		{"at log end", []int64{10}, 10},
		{"beyond log end", []int64{1 << 40}, 10},
		{"moves backwards", []int64{9, 4}, 4},
		{"max int64", []int64{math.MaxInt64}, 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil, Config{})
			l := e.open()
			appendN(t, l, 10)
			if _, err := l.DeleteRecordsBefore(3); err != nil {
				t.Fatal(err)
			}
			for _, hw := range tc.set {
				l.SetHighWatermark(hw)
			}
			if got := l.HighWatermark(); got != tc.want {
				t.Fatalf("HighWatermark = %d, want %d", got, tc.want)
			}
			// Appends do not move it: a value clamped to the old end stays.
			appendN(t, l, 5)
			if got := l.HighWatermark(); got != tc.want {
				t.Fatalf("after appends HighWatermark = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestLogHighWatermarkFollowsLogStart(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		hw     int64
		moveTo func(t *testing.T, l *Log) // raises the log start offset
		want   int64
	}{
		{"AdvanceLogStartOffset above", 4, func(t *testing.T, l *Log) {
			if _, err := l.DeleteRecordsBefore(7); !errors.Is(err, ErrBeyondStableOffset) {
				t.Fatalf("DeleteRecordsBefore past the HW: %v", err)
			}
			if _, err := l.AdvanceLogStartOffset(7); err != nil {
				t.Fatal(err)
			}
		}, 7},
		{"DeleteRecordsBefore below", 8, func(t *testing.T, l *Log) {
			if _, err := l.DeleteRecordsBefore(7); err != nil {
				t.Fatal(err)
			}
		}, 8},
		{"TruncateFullyAndStartAt beyond", 4, func(t *testing.T, l *Log) {
			if err := l.TruncateFullyAndStartAt(50); err != nil {
				t.Fatal(err)
			}
		}, 50},
		{"TruncateFullyAndStartAt before", 8, func(t *testing.T, l *Log) {
			if err := l.TruncateFullyAndStartAt(2); err != nil {
				t.Fatal(err)
			}
		}, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil, Config{})
			l := e.open()
			appendN(t, l, 10)
			l.SetHighWatermark(tc.hw)
			checkpointHW(t, l)
			tc.moveTo(t, l)
			if got := l.HighWatermark(); got != tc.want {
				t.Fatalf("HighWatermark = %d, want %d (log [%d, %d))", got, tc.want, l.LogStartOffset(), l.LogEndOffset())
			}
			checkpointHW(t, l)
			if got := hwFile(t, e); got != tc.want {
				t.Fatalf("checkpoint holds %d, want %d", got, tc.want)
			}
		})
	}
}

func TestLogHighWatermarkPersisted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Config{})
	l := e.open()
	appendN(t, l, 10)
	if got := l.HighWatermark(); got != -1 {
		t.Fatalf("new log: HighWatermark = %d", got)
	}
	// Nothing known, nothing written.
	checkpointHW(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := hwFile(t, e); got != -1 {
		t.Fatalf("checkpoint written without a high watermark: %d", got)
	}
	l = e.open()
	if got := l.HighWatermark(); got != -1 {
		t.Fatalf("reopened without a checkpoint: HighWatermark = %d", got)
	}
	l.SetHighWatermark(7)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := hwFile(t, e); got != 7 {
		t.Fatalf("Close wrote %d, want 7", got)
	}
	l = e.open()
	if got := l.HighWatermark(); got != 7 {
		t.Fatalf("reopened: HighWatermark = %d, want 7", got)
	}
	// Unchanged values are not rewritten: remove the file and see that
	// neither a checkpoint pass nor Close brings it back.
	l.SetHighWatermark(8)
	l.SetHighWatermark(7)
	if err := e.fs.Remove(filepath.Join(e.dir, hwCheckpoint)); err != nil {
		t.Fatal(err)
	}
	checkpointHW(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := hwFile(t, e); got != -1 {
		t.Fatalf("unchanged high watermark rewritten: %d", got)
	}
}

func TestLogHighWatermarkStoreMaintain(t *testing.T) {
	t.Parallel()
	mem := vfs.NewMem()
	s := openTestStore(t, mem, StoreOptions{})
	l, err := s.Log("topic", 0, Config{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, fs: mem, dir: l.Dir()}
	appendN(t, l, 10)
	for _, hw := range []int64{3, 9, 5} {
		l.SetHighWatermark(hw)
		if got := hwFile(t, e); got == hw {
			t.Fatalf("SetHighWatermark(%d) wrote the checkpoint itself", hw)
		}
		s.Maintain(time.Now())
		if got := hwFile(t, e); got != hw {
			t.Fatalf("after Maintain the checkpoint holds %d, want %d", got, hw)
		}
	}
	l.SetHighWatermark(10)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openTestStore(t, mem, StoreOptions{})
	l2, err := s2.Log("topic", 0, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got := l2.HighWatermark(); got != 10 {
		t.Fatalf("after Store reopen HighWatermark = %d, want 10", got)
	}
}

func TestLogHighWatermarkCrash(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// run works on a crashable log and returns the high watermark the
		// crash must leave.
		run func(t *testing.T, e *env, l *Log) int64
	}{
		{"never checkpointed", func(t *testing.T, e *env, l *Log) int64 {
			appendN(t, l, 10)
			if err := l.Flush(); err != nil {
				t.Fatal(err)
			}
			l.SetHighWatermark(6)
			return -1
		}},
		{"older value after a later set", func(t *testing.T, e *env, l *Log) int64 {
			appendN(t, l, 10)
			if err := l.Flush(); err != nil {
				t.Fatal(err)
			}
			l.SetHighWatermark(5)
			checkpointHW(t, l)
			l.SetHighWatermark(8)
			appendN(t, l, 3)
			l.SetHighWatermark(13)
			return 5
		}},
		{"checkpoint above the durable data", func(t *testing.T, e *env, l *Log) int64 {
			appendN(t, l, 5)
			if err := l.Flush(); err != nil {
				t.Fatal(err)
			}
			appendN(t, l, 5) // page cache only: lost in the crash
			l.SetHighWatermark(10)
			checkpointHW(t, l)
			return 5
		}},
		{"truncated and refilled", func(t *testing.T, e *env, l *Log) int64 {
			appendN(t, l, 10)
			l.SetHighWatermark(10)
			checkpointHW(t, l)
			if err := l.TruncateTo(4); err != nil {
				t.Fatal(err)
			}
			// A new leader's records at 4..9, durable; the checkpoint must
			// not cover them.
			appendN(t, l, 6)
			if err := l.Flush(); err != nil {
				t.Fatal(err)
			}
			return 4
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mem := vfs.NewCrashableMem()
			e := newEnv(t, mem, Config{SegmentBytes: 300})
			want := tc.run(t, e, e.open())
			crashed := mem.CrashClone()
			e.fs = crashed
			l := e.open()
			if got := l.HighWatermark(); got != want {
				t.Fatalf("after crash HighWatermark = %d, want %d (log [%d, %d))", got, want, l.LogStartOffset(), l.LogEndOffset())
			}
			if hw := l.HighWatermark(); hw > l.LogEndOffset() || hwFile(t, e) > l.LogEndOffset() {
				t.Fatalf("high watermark %d (file %d) above the recovered log end %d", hw, hwFile(t, e), l.LogEndOffset())
			}
			// Recovery's own repair is durable: crashing again at once
			// gives the same value.
			e.fs = crashed.CrashClone()
			if got := e.open().HighWatermark(); got != want {
				t.Fatalf("after a second crash HighWatermark = %d, want %d", got, want)
			}
		})
	}
}

func TestLogHighWatermarkRecoveryClamps(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		hw   func(stored int64) int64 // from the offset count before the damage
		// want is the expected HW from the log end after recovery.
		want func(hw, leo int64) int64
	}{
		{"torn tail below the HW", func(n int64) int64 { return n }, func(_, leo int64) int64 { return leo }},
		{"torn tail above the HW", func(n int64) int64 { return 10 }, func(hw, _ int64) int64 { return hw }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil, Config{SegmentBytes: 1200, IndexIntervalBytes: 150})
			stored := fillLog(t, e, 30)
			l := e.open()
			hw := tc.hw(l.LogEndOffset())
			l.SetHighWatermark(hw)
			segs := l.Segments()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			last := segPath(e, segs[len(segs)-1], logSuffix)
			rewriteFile(t, e.fs, last, func(b []byte) []byte { return b[:len(b)-10] })
			l = e.open()
			if l.Recovery().TruncatedBytes == 0 || l.LogEndOffset() != 2*int64(len(stored)-1) {
				t.Fatalf("recovery %+v, LEO %d", l.Recovery(), l.LogEndOffset())
			}
			want := tc.want(hw, l.LogEndOffset())
			if got := l.HighWatermark(); got != want {
				t.Fatalf("HighWatermark = %d, want %d", got, want)
			}
			if got := hwFile(t, e); got > l.LogEndOffset() {
				t.Fatalf("checkpoint still holds %d above the recovered end %d", got, l.LogEndOffset())
			}
		})
	}
}

func TestLogHighWatermarkUnreadableCheckpoint(t *testing.T) {
	t.Parallel()
	valid := func(off int64) func(t *testing.T, e *env) {
		return func(t *testing.T, e *env) {
			if err := writeCheckpoint(e.fs, e.dir, hwCheckpoint, [][2]int64{{off}}, 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	raw := func(data string) func(t *testing.T, e *env) {
		return func(t *testing.T, e *env) {
			if err := writeFileAtomic(e.fs, e.dir, hwCheckpoint, []byte(data)); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name  string
		write func(t *testing.T, e *env)
	}{
		{"empty", raw("")},
		{"garbage", raw("not a checkpoint\n")},
		{"bad checksum", func(t *testing.T, e *env) {
			valid(5)(t, e)
			rewriteFile(t, e.fs, filepath.Join(e.dir, hwCheckpoint), func(b []byte) []byte {
				return []byte(strings.Replace(string(b), "\n5\n", "\n6\n", 1))
			})
		}},
		{"negative offset", valid(-3)},
		{"wrong header", raw(checkpointText(t, "other", 5))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil, Config{})
			l := e.open()
			appendN(t, l, 10)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			tc.write(t, e)
			l = e.open()
			if got := l.HighWatermark(); got != -1 {
				t.Fatalf("HighWatermark = %d from an unreadable checkpoint", got)
			}
			l.SetHighWatermark(4)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if got := hwFile(t, e); got != 4 {
				t.Fatalf("checkpoint not replaced: %d", got)
			}
		})
	}
}

// checkpointText is what writeCheckpoint would write for one offset.
func checkpointText(t *testing.T, name string, off int64) string {
	t.Helper()
	mem := vfs.NewMem()
	if err := mem.MkdirAll("/x", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeOffsetCheckpoint(mem, "/x", name, off); err != nil {
		t.Fatal(err)
	}
	b, err := readFile(mem, "/x/"+name, 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLogHighWatermarkTruncate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		hw, to   int64
		want     int64
		fileWant int64 // the checkpoint after the truncation, before any later write
	}{
		{"below the HW", 8, 5, 5, 5},
		{"inside a batch below the HW", 8, 4, 3, 3}, // the whole batch [3, 4] goes
		{"above the HW", 3, 6, 3, 3},
		{"at the HW", 7, 7, 7, 7},
		{"unknown HW", -1, 5, -1, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil, Config{SegmentBytes: 300})
			l := e.open()
			// Batches [0], [1,2], [3,4], [5,6], [7,8], [9].
			for _, n := range []int{1, 2, 2, 2, 2, 1} {
				mustAppend(t, l, mkBatch(t, spec{records: n}), leader)
			}
			if tc.hw >= 0 {
				l.SetHighWatermark(tc.hw)
				checkpointHW(t, l)
			}
			if err := l.TruncateTo(tc.to); err != nil {
				t.Fatal(err)
			}
			if got := l.HighWatermark(); got != tc.want {
				t.Fatalf("HighWatermark = %d, want %d (LEO %d)", got, tc.want, l.LogEndOffset())
			}
			if got := hwFile(t, e); got != tc.fileWant {
				t.Fatalf("checkpoint holds %d, want %d", got, tc.fileWant)
			}
			// Refilling the log does not bring the old value back.
			appendN(t, l, 10)
			if got := l.HighWatermark(); got != tc.want {
				t.Fatalf("after refilling HighWatermark = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestLogHighWatermarkStaleLogEnd replays the interleaving the concurrent
// test can only hit by chance: SetHighWatermark loads the log end, a
// truncation lowers it and clamps, and only then is the value stored.
func TestLogHighWatermarkStaleLogEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Config{})
	l := e.open()
	appendN(t, l, 10)
	l.SetHighWatermark(6)
	stale := l.LogEndOffset()
	if err := l.TruncateTo(4); err != nil {
		t.Fatal(err)
	}
	l.setHighWatermark(stale, stale)
	appendN(t, l, 10)
	if got := l.HighWatermark(); got != 4 {
		t.Fatalf("HighWatermark = %d after a store with a stale log end, want 4", got)
	}
}

// TestLogHighWatermarkConcurrentTruncate races lock-free SetHighWatermark
// calls against truncations: the stored value must never stay above the
// log end, or later appends would bring it back.
func TestLogHighWatermarkConcurrentTruncate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Config{SegmentBytes: 400})
	l := e.open()
	for range 30 {
		appendN(t, l, 8)
		var wg sync.WaitGroup
		wg.Go(func() {
			for range 50 {
				l.SetHighWatermark(math.MaxInt64)
			}
		})
		if err := l.TruncateTo(l.LogEndOffset() - 4); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if hw, leo := l.hw.Load(), l.LogEndOffset(); hw > leo {
			t.Fatalf("stored high watermark %d above the log end %d", hw, leo)
		}
	}
}

func TestLogRetentionHighWatermarkBound(t *testing.T) {
	t.Parallel()
	rules := []struct {
		name string
		cfg  Config
	}{
		{"time", Config{RetentionMs: 75_000}},
		{"size", Config{RetentionBytes: 1500}},
		{"time and size", Config{RetentionMs: 90_000, RetentionBytes: 2000}},
	}
	// hws picks the HW from the segment bases and log end; -1 leaves it
	// unknown.
	hws := []struct {
		name string
		hw   func(segs []int64, leo int64) int64
	}{
		{"unknown", func([]int64, int64) int64 { return -1 }},
		{"zero", func([]int64, int64) int64 { return 0 }},
		{"end of first segment", func(s []int64, _ int64) int64 { return s[1] }},
		{"just below end of second", func(s []int64, _ int64) int64 { return s[2] - 1 }},
		{"inside fourth segment", func(s []int64, _ int64) int64 { return s[3] + 1 }},
		{"log end", func(_ []int64, leo int64) int64 { return leo }},
	}
	for _, rule := range rules {
		// Unbounded reference: what retention deletes without a HW.
		refEnv, ref, _ := segmentedLog(t, rule.cfg)
		full, err := ref.EnforceRetention(refEnv.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		if full < 2 {
			t.Fatalf("%s: reference deletes only %d segments", rule.name, full)
		}
		for _, h := range hws {
			t.Run(rule.name+"/"+h.name, func(t *testing.T) {
				t.Parallel()
				e, l, _ := segmentedLog(t, rule.cfg)
				segs := l.Segments()
				hw := h.hw(segs, l.LogEndOffset())
				if hw >= 0 {
					l.SetHighWatermark(hw)
				}
				// Segment i may go only if segs[i+1] <= hw.
				want := full
				if hw >= 0 {
					want = min(full, segsBelow(segs, hw))
				}
				n, err := l.EnforceRetention(e.clock.Now())
				if err != nil {
					t.Fatal(err)
				}
				if n != want || !slices.Equal(l.Segments(), segs[n:]) {
					t.Fatalf("deleted %d segments, want %d (segments %v, hw %d)", n, want, segs, hw)
				}
				if hw >= 0 && l.LogStartOffset() > hw {
					t.Fatalf("log start %d above the high watermark %d", l.LogStartOffset(), hw)
				}
				// Once the HW passes them, they go.
				l.SetHighWatermark(l.LogEndOffset())
				more, err := l.EnforceRetention(e.clock.Now())
				if err != nil {
					t.Fatal(err)
				}
				if n+more != full {
					t.Fatalf("after the HW reached the end: %d deleted in all, want %d", n+more, full)
				}
				readAll(t, l)
			})
		}
	}
}

// segsBelow counts the segments wholly below hw: those whose successor's
// base is at or below it.
func segsBelow(segs []int64, hw int64) int {
	n := 0
	for n < len(segs)-1 && segs[n+1] <= hw {
		n++
	}
	return n
}

func TestCompactHighWatermarkBound(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// setup sets the HW (and may run earlier passes) and returns the
		// offset from which no record may change, or -1 for none.
		setup func(t *testing.T, e *env, l *Log, m *kvModel) int64
	}{
		{"unknown", func(*testing.T, *env, *Log, *kvModel) int64 { return -1 }},
		{"zero", func(_ *testing.T, _ *env, l *Log, _ *kvModel) int64 {
			l.SetHighWatermark(0)
			return 0
		}},
		{"segment boundary", func(_ *testing.T, _ *env, l *Log, _ *kvModel) int64 {
			hw := l.Segments()[3]
			l.SetHighWatermark(hw)
			return hw
		}},
		{"inside a segment", func(_ *testing.T, _ *env, l *Log, _ *kvModel) int64 {
			segs := l.Segments()
			l.SetHighWatermark(segs[3] + 1)
			return segs[3]
		}},
		{"dropped below an earlier pass", func(t *testing.T, e *env, l *Log, m *kvModel) int64 {
			l.SetHighWatermark(l.LogEndOffset())
			if _, err := l.Compact(e.clock.Now()); err != nil {
				t.Fatal(err)
			}
			// New values for every key: without the bound the next pass
			// would drop the older ones above the lowered HW.
			for i := range 12 {
				m.append(t, l, kvOpts{ts: e.clock.Now().UnixMilli()}, kv{key: kvKey(i), val: "newer"})
			}
			rollNow(t, e, l)
			// Inside the first compacted segment, below the first dirty
			// offset.
			hw := l.Segments()[0] + 1
			l.SetHighWatermark(hw)
			return l.Segments()[0]
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := compactEnv(t, nil, Config{SegmentBytes: 250, SegmentMs: 60_000})
			l := e.open()
			m := newKVModel()
			for i := range 30 {
				m.append(t, l, kvOpts{ts: e.clock.Now().UnixMilli()}, kv{key: kvKey(i), val: "v"})
			}
			rollNow(t, e, l)
			protect := tc.setup(t, e, l, m)
			if hw := l.HighWatermark(); hw >= 0 {
				l.mu.Lock()
				r := l.cleanRangeLocked(e.clock.Now().UnixMilli())
				end := l.mu.segs[r.u].base
				l.mu.Unlock()
				if r.u > r.s0 && end > hw {
					t.Fatalf("cleanable range ends at %d, above the high watermark %d", end, hw)
				}
			}
			before := readRecords(t, l)
			res, err := l.Compact(e.clock.Now())
			if err != nil {
				t.Fatal(err)
			}
			after := readRecords(t, l)
			m.check(t, after, false)
			if protect < 0 {
				if res.RecordsRemoved == 0 {
					t.Fatalf("unbounded pass removed nothing: %+v", res)
				}
				return
			}
			above := func(rs []rec) []rec {
				var out []rec
				for _, r := range rs {
					if r.off >= protect {
						out = append(out, r)
					}
				}
				return out
			}
			if !slices.Equal(above(before), above(after)) {
				t.Fatalf("records at or above %d changed:\nbefore %v\nafter  %v", protect, above(before), above(after))
			}
			assertCompacted(t, after, protect)
			// With the HW at the end everything closed is compacted.
			l.SetHighWatermark(l.LogEndOffset())
			if _, err := l.Compact(e.clock.Now()); err != nil {
				t.Fatal(err)
			}
			segs := l.Segments()
			assertCompacted(t, readRecords(t, l), segs[len(segs)-1])
		})
	}
}

// kvKey spreads records over four keys.
func kvKey(i int) string { return string(rune('a' + i%4)) }

// TestCompactHighWatermarkDropsDuringPass lowers the HW between planning
// a pass and committing it: the pass must be dropped.
func TestCompactHighWatermarkDropsDuringPass(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		atPlan, to int64 // -1: unknown at plan time
	}{
		{"becomes known", -1, 0},
		{"drops to zero", math.MaxInt64, 0},
		{"drops into the range", math.MaxInt64, 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := compactEnv(t, nil, Config{SegmentBytes: 250, SegmentMs: 60_000})
			l := e.open()
			m := newKVModel()
			for i := range 30 {
				m.append(t, l, kvOpts{ts: e.clock.Now().UnixMilli()}, kv{key: kvKey(i), val: "v"})
			}
			rollNow(t, e, l)
			if tc.atPlan >= 0 {
				l.SetHighWatermark(tc.atPlan)
			}
			before := readRecords(t, l)
			l.cleaner.run.Lock()
			p, err := l.plan(e.clock.Now(), true)
			if err != nil || p == nil {
				l.cleaner.run.Unlock()
				t.Fatalf("plan: %v, %v", p, err)
			}
			l.SetHighWatermark(tc.to)
			res, err := l.runPlan(p)
			p.release()
			l.cleaner.run.Unlock()
			if err != nil || res.Segments != 0 {
				t.Fatalf("pass committed across the high watermark: %+v, %v", res, err)
			}
			if after := readRecords(t, l); !slices.Equal(before, after) {
				t.Fatal("records changed")
			}
			ents, err := e.fs.ReadDir(e.dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, de := range ents {
				if strings.HasSuffix(de.Name(), cleanedSuffix) || strings.HasSuffix(de.Name(), swapSuffix) {
					t.Fatalf("left %s behind", de.Name())
				}
			}
		})
	}
}
