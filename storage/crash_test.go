package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/sluicedev/sluice/protocol/batch"
	"github.com/sluicedev/sluice/storage/vfs"
)

// crashModel is what the test knows the log must contain.
type crashModel struct {
	batches map[int64][]byte // by base offset, latest write wins
	durable int64            // every offset below was acknowledged as synced
	minLSO  int64            // the log start offset can never go below this
	// maxHW bounds the high watermark recovery may report: the largest
	// value set, lowered by every truncation to the new log end; -1 if
	// none was set.
	maxHW int64
}

// TestLogCrashRandomOps runs random operation sequences on a crashable FS,
// crashes, and checks that recovery keeps every synced offset, keeps
// offsets contiguous, returns only bytes that were written, and is
// idempotent.
func TestLogCrashRandomOps(t *testing.T) {
	t.Parallel()
	seeds := 150
	if testing.Short() {
		seeds = 20
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			runCrashScenario(t, uint64(seed))
		})
	}
}

func runCrashScenario(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	mem := vfs.NewCrashableMem()
	cfg := Config{SegmentBytes: int64(300 + rng.IntN(900)), IndexIntervalBytes: int32(50 + rng.IntN(300)), SegmentMs: 10_000}
	if rng.IntN(2) == 0 {
		cfg.RetentionBytes = int64(1500 + rng.IntN(3000))
	}
	e := newEnv(t, mem, cfg)
	l := e.open()
	m := crashModel{batches: map[int64][]byte{}, maxHW: -1}
	var trace []string
	ops := 40 + rng.IntN(120)
	useHW := rng.IntN(2) == 0 // else the log never learns a high watermark
	for range ops {
		if useHW && rng.IntN(5) == 0 {
			trace = append(trace, setRandomHW(t, l, rng, &m))
		}
		switch r := rng.IntN(100); {
		case r < 55:
			// Some batches carry producer ids; using the log end offset as
			// the sequence keeps most of them in order.
			var pid int64
			if rng.IntN(2) == 0 {
				pid = 1 + rng.Int64N(3)
			}
			b := mkBatch(t, spec{records: 1 + rng.IntN(4), valueSize: rng.IntN(200), pid: pid,
				seq: int32(l.LogEndOffset()), fill: byte(rng.Uint32()), ts: e.clock.Now().UnixMilli()})
			res, err := l.Append(b, leader)
			if err != nil {
				// A producer whose sequence space jumped is rejected; fine.
				trace = append(trace, fmt.Sprintf("append rejected: %v", err))
				continue
			}
			if !res.Duplicate {
				m.batches[res.BaseOffset] = slices.Clone(b)
			}
			trace = append(trace, fmt.Sprintf("append [%d,%d]", res.BaseOffset, res.LastOffset))
		case r < 68:
			upTo := l.LogEndOffset() - 1 - int64(rng.IntN(3))
			if err := l.Sync(context.Background(), upTo); err != nil {
				t.Fatalf("sync: %v", err)
			}
			m.durable = max(m.durable, min(upTo+1, l.LogEndOffset()))
			trace = append(trace, fmt.Sprintf("sync %d", upTo))
		case r < 74:
			e.clock.Advance(11 * time.Second)
			if err := l.MaybeRoll(e.clock.Now()); err != nil {
				t.Fatal(err)
			}
			trace = append(trace, "roll")
		case r < 80:
			lso, hw := l.LogStartOffset(), l.HighWatermark()
			if _, err := l.EnforceRetention(e.clock.Now()); err != nil {
				t.Fatal(err)
			}
			if hw >= 0 && l.LogStartOffset() > max(lso, hw) {
				t.Fatalf("retention moved the log start from %d to %d, past the high watermark %d", lso, l.LogStartOffset(), hw)
			}
			m.minLSO = l.LogStartOffset()
			trace = append(trace, fmt.Sprintf("retention lso=%d", m.minLSO))
		case r < 85:
			to := l.LogStartOffset() + rng.Int64N(l.LogEndOffset()-l.LogStartOffset()+1)
			stable, start := l.LastStableOffset(), l.LogStartOffset()
			lso, err := l.DeleteRecordsBefore(to)
			if to > stable {
				// Beyond the LSO (so beyond a known HW): refused, nothing moves.
				if !errors.Is(err, ErrBeyondStableOffset) || l.LogStartOffset() != start {
					t.Fatalf("delete-records %d past LSO %d: %v, log start %d", to, stable, err, l.LogStartOffset())
				}
				trace = append(trace, fmt.Sprintf("delete-records %d refused (LSO %d)", to, stable))
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			m.minLSO = lso
			trace = append(trace, fmt.Sprintf("delete-records %d", to))
		case r < 90:
			to := l.LogStartOffset() + rng.Int64N(l.LogEndOffset()-l.LogStartOffset()+1)
			if err := l.TruncateTo(to); err != nil {
				t.Fatal(err)
			}
			m.durable = min(m.durable, l.LogEndOffset())
			m.maxHW = min(m.maxHW, l.LogEndOffset())
			for off := range m.batches {
				if off >= l.LogEndOffset() {
					delete(m.batches, off)
				}
			}
			trace = append(trace, fmt.Sprintf("truncate %d -> leo %d", to, l.LogEndOffset()))
		case r < 95:
			if err := l.Flush(); err != nil {
				t.Fatal(err)
			}
			m.durable = l.LogEndOffset()
			trace = append(trace, "flush")
		default:
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			m.durable = l.LogEndOffset()
			l = e.open()
			trace = append(trace, "reopen")
		}
	}
	var crashed *vfs.MemFS
	if rng.IntN(2) == 0 {
		crashed = mem.CrashClone()
	} else {
		crashed = mem.CrashCloneRandom(rng)
	}
	e.fs = crashed
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s\nops:\n%v\nfs:\n%s", fmt.Sprintf(format, args...), trace, crashed)
	}
	l1 := e.open()
	got := checkRecovered(t, l1, m, fail)

	// Crash again straight after recovery: the same log must come back.
	again := crashed.CrashClone()
	e.fs = again
	l2 := e.open()
	if l2.LogStartOffset() != l1.LogStartOffset() || l2.LogEndOffset() != l1.LogEndOffset() {
		fail("second recovery: [%d, %d) vs [%d, %d)", l2.LogStartOffset(), l2.LogEndOffset(), l1.LogStartOffset(), l1.LogEndOffset())
	}
	if l2.HighWatermark() != l1.HighWatermark() {
		fail("second recovery: high watermark %d vs %d", l2.HighWatermark(), l1.HighWatermark())
	}
	got2 := readAll(t, l2)
	if len(got2) != len(got) {
		fail("second recovery: %d batches vs %d", len(got2), len(got))
	}
	for i := range got {
		if !bytes.Equal(got[i], got2[i]) {
			fail("second recovery: batch %d differs", i)
		}
	}
	// The recovered log takes appends.
	mustAppend(t, l2, mkBatch(t, spec{}), leader)
}

// setRandomHW sets a high watermark in [log start, log end] and sometimes
// checkpoints it at once, as Store maintenance would.
func setRandomHW(t *testing.T, l *Log, rng *rand.Rand, m *crashModel) string {
	t.Helper()
	lso, leo := l.LogStartOffset(), l.LogEndOffset()
	hw := lso + rng.Int64N(leo-lso+1)
	l.SetHighWatermark(hw)
	m.maxHW = max(m.maxHW, hw)
	if rng.IntN(2) == 0 {
		return fmt.Sprintf("set hw %d", hw)
	}
	if err := l.checkpointHighWatermark(); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("set hw %d, checkpoint", hw)
}

func checkRecovered(t *testing.T, l *Log, m crashModel, fail func(string, ...any)) [][]byte {
	t.Helper()
	// The high watermark may be unknown (never written); otherwise it lies
	// in the recovered log and above no value set since a truncation
	// below it, unless the log start passed them all.
	if hw := l.HighWatermark(); hw >= 0 {
		if m.maxHW < 0 {
			fail("high watermark %d was never set", hw)
		}
		if hw < l.LogStartOffset() || hw > l.LogEndOffset() || hw > max(m.maxHW, l.LogStartOffset()) {
			fail("high watermark %d outside [%d, %d] or above every value set (max %d)",
				hw, l.LogStartOffset(), l.LogEndOffset(), m.maxHW)
		}
	}
	if l.LogStartOffset() < m.minLSO {
		fail("log start offset went back: %d < %d", l.LogStartOffset(), m.minLSO)
	}
	if l.LogEndOffset() < m.durable {
		fail("synced data lost: LEO %d < durable %d", l.LogEndOffset(), m.durable)
	}
	got := readAll(t, l) // also checks CRCs and contiguity
	next := l.LogStartOffset()
	for i, b := range got {
		h, _ := batch.ParseHeader(b)
		want, ok := m.batches[h.BaseOffset]
		if !ok || !bytes.Equal(b, want) {
			fail("batch %d at offset %d was never written like this", i, h.BaseOffset)
		}
		if i == 0 && (h.BaseOffset > next || h.LastOffset() < next) {
			fail("first batch [%d, %d] does not hold the log start %d", h.BaseOffset, h.LastOffset(), next)
		}
		next = h.NextOffset()
	}
	if len(got) > 0 && next != l.LogEndOffset() {
		fail("batches end at %d, LEO %d", next, l.LogEndOffset())
	}
	return got
}
