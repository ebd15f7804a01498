package storage

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/sluicedev/sluice/protocol/batch"
	"github.com/sluicedev/sluice/storage/vfs"
)

// fillLog appends n distinct batches to a log with small segments and
// closes it, returning the batches as stored.
func fillLog(t *testing.T, e *env, n int) [][]byte {
	t.Helper()
	l := e.open()
	for i := range n {
		mustAppend(t, l, mkBatch(t, spec{records: 2, valueSize: 60, ts: int64(1000 + i), fill: byte(i)}),
			AppendOptions{AssignOffsets: true, LeaderEpoch: int32(i / 8)})
	}
	stored := readAll(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return stored
}

func TestLogRecoveryRepairsTail(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// damage changes the last segment file; it returns how many of the
		// stored batches must survive and how many bytes must be dropped.
		damage func(t *testing.T, e *env, last string, stored [][]byte) (keep int, dropped int64)
	}{
		{"torn mid batch", func(t *testing.T, e *env, last string, stored [][]byte) (int, int64) {
			rewriteFile(t, e.fs, last, func(b []byte) []byte { return b[:len(b)-10] })
			return len(stored) - 1, int64(len(stored[len(stored)-1]) - 10)
		}},
		{"torn inside header", func(t *testing.T, e *env, last string, stored [][]byte) (int, int64) {
			n := len(stored[len(stored)-1]) - 5
			rewriteFile(t, e.fs, last, func(b []byte) []byte { return b[:len(b)-n] })
			return len(stored) - 1, 5
		}},
		{"flipped byte in last batch", func(t *testing.T, e *env, last string, stored [][]byte) (int, int64) {
			rewriteFile(t, e.fs, last, func(b []byte) []byte { b[len(b)-3] ^= 0x10; return b })
			return len(stored) - 1, int64(len(stored[len(stored)-1]))
		}},
		{"flipped byte earlier in last segment", func(t *testing.T, e *env, last string, stored [][]byte) (int, int64) {
			sz := len(stored[len(stored)-1])
			var lost int64
			rewriteFile(t, e.fs, last, func(b []byte) []byte {
				lost = int64(len(b) - (len(b) - 2*sz))
				b[len(b)-2*sz+30] ^= 0x01
				return b
			})
			return len(stored) - 2, lost
		}},
		{"zeroed tail", func(t *testing.T, e *env, last string, stored [][]byte) (int, int64) {
			rewriteFile(t, e.fs, last, func(b []byte) []byte { return append(b, make([]byte, 100)...) })
			return len(stored), 100
		}},
		{"garbage length", func(t *testing.T, e *env, last string, stored [][]byte) (int, int64) {
			rewriteFile(t, e.fs, last, func(b []byte) []byte {
				return append(b, 0, 0, 0, 0, 0, 0, 0, 99, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3)
			})
			return len(stored), 15
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil, Config{SegmentBytes: 1200, IndexIntervalBytes: 150})
			stored := fillLog(t, e, 30)
			l := e.open()
			segs := l.Segments()
			l.Close()
			last := segPath(e, segs[len(segs)-1], logSuffix)
			keep, dropped := tc.damage(t, e, last, stored)

			l = e.open()
			rep := l.Recovery()
			if rep.Clean || rep.TruncatedBytes != dropped || rep.Corruption != nil {
				t.Fatalf("report %+v, want %d bytes dropped", rep, dropped)
			}
			got := readAll(t, l)
			if len(got) != keep {
				t.Fatalf("kept %d batches, want %d", len(got), keep)
			}
			for i := range got {
				if !bytes.Equal(got[i], stored[i]) {
					t.Fatalf("batch %d differs", i)
				}
			}
			// Appending after repair continues at the recovered end, and a
			// second recovery finds nothing more to do.
			res := mustAppend(t, l, mkBatch(t, spec{fill: 0xee}), leader)
			h, _ := batch.ParseHeader(got[len(got)-1])
			if res.BaseOffset != h.NextOffset() {
				t.Fatalf("append after repair at %d, want %d", res.BaseOffset, h.NextOffset())
			}
			if err := l.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = e.open()
			if rep := l.Recovery(); rep.TruncatedBytes != 0 || !rep.Clean {
				t.Fatalf("second recovery %+v", rep)
			}
			if n := len(readAll(t, l)); n != keep+1 {
				t.Fatalf("after reopen %d batches", n)
			}
		})
	}
}

func TestLogRecoveryRebuildsIndexes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		damage func(t *testing.T, e *env, base int64)
	}{
		{"missing index", func(t *testing.T, e *env, base int64) {
			if err := e.fs.Remove(segPath(e, base, indexSuffix)); err != nil {
				t.Fatal(err)
			}
		}},
		{"missing timeindex", func(t *testing.T, e *env, base int64) {
			if err := e.fs.Remove(segPath(e, base, timeIndexSuffix)); err != nil {
				t.Fatal(err)
			}
		}},
		{"odd-sized index", func(t *testing.T, e *env, base int64) {
			rewriteFile(t, e.fs, segPath(e, base, indexSuffix), func(b []byte) []byte { return append(b, 1, 2, 3) })
		}},
		{"index pointing past the log", func(t *testing.T, e *env, base int64) {
			rewriteFile(t, e.fs, segPath(e, base, indexSuffix), func(b []byte) []byte {
				return append(b, 0, 0, 0, 50, 0x7f, 0, 0, 0)
			})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil, Config{SegmentBytes: 1200, IndexIntervalBytes: 150})
			stored := fillLog(t, e, 30)
			l := e.open()
			segs := l.Segments()
			l.Close()
			tc.damage(t, e, segs[1])
			l = e.open()
			if rep := l.Recovery(); rep.RebuiltIndexes != 1 || rep.TruncatedBytes != 0 {
				t.Fatalf("report %+v", rep)
			}
			got := readAll(t, l)
			if len(got) != len(stored) {
				t.Fatalf("read %d of %d", len(got), len(stored))
			}
			for off := int64(0); off < l.LogEndOffset(); off++ {
				blob, err := l.Read(off, 1, math.MaxInt64)
				if err != nil {
					t.Fatal(err)
				}
				if h, _ := batch.ParseHeader(blob); off < h.BaseOffset || off > h.LastOffset() {
					t.Fatalf("Read(%d) gave batch [%d, %d]", off, h.BaseOffset, h.LastOffset())
				}
			}
			if sz := fileSize(t, e.fs, segPath(e, segs[1], indexSuffix)); sz%offsetEntrySize != 0 {
				t.Fatalf("index not rewritten: %d bytes", sz)
			}
		})
	}
}

func TestLogReadSurvivesMisleadingIndex(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Config{SegmentBytes: 1200, IndexIntervalBytes: 150})
	stored := fillLog(t, e, 30)
	l := e.open()
	segs := l.Segments()
	l.Close()
	// Entries of the right shape and range but naming the wrong offsets.
	rewriteFile(t, e.fs, segPath(e, segs[0], indexSuffix), func(b []byte) []byte {
		for i := 0; i+8 <= len(b); i += 8 {
			b[i+3] ^= 1
		}
		return b
	})
	l = e.open()
	if got := readAll(t, l); len(got) != len(stored) {
		t.Fatalf("read %d of %d", len(got), len(stored))
	}
	for off := segs[0]; off < segs[1]; off++ {
		blob, err := l.Read(off, 1, math.MaxInt64)
		if err != nil {
			t.Fatal(err)
		}
		if h, _ := batch.ParseHeader(blob); off < h.BaseOffset || off > h.LastOffset() {
			t.Fatalf("Read(%d) gave batch [%d, %d]", off, h.BaseOffset, h.LastOffset())
		}
	}
}

func TestLogRecoveryCorruptMiddleSegment(t *testing.T) {
	t.Parallel()
	for _, strict := range []bool{false, true} {
		name := map[bool]string{false: "truncates", true: "strict fails"}[strict]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil, Config{SegmentBytes: 1200, IndexIntervalBytes: 150})
			stored := fillLog(t, e, 30)
			l := e.open()
			segs := l.Segments()
			l.Close()
			// Simulate a crash before the recovery point was written, so
			// every segment is scanned, and damage the second segment.
			if err := e.fs.Remove(e.dir + "/" + recoveryCheckpoint); err != nil {
				t.Fatal(err)
			}
			seg1 := segPath(e, segs[1], logSuffix)
			rewriteFile(t, e.fs, seg1, func(b []byte) []byte { b[len(stored[0])+40] ^= 0xff; return b })

			e.opts.StrictRecovery = strict
			l, err := Open(e.dir, e.options())
			if strict {
				var ce *CorruptionError
				if !errors.As(err, &ce) || ce.Path != seg1 || ce.Offset != int64(len(stored[0])) {
					t.Fatalf("strict Open: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			rep := l.Recovery()
			if rep.Corruption == nil || rep.Corruption.Path != seg1 || rep.DeletedSegments != len(segs)-2 {
				t.Fatalf("report %+v", rep)
			}
			if !errors.Is(rep.Corruption, batch.ErrCorrupt) {
				t.Fatalf("corruption cause %v", rep.Corruption.Err)
			}
			got := readAll(t, l)
			wantEnd := segs[1] + 2 // one good batch of two records in segment 1
			if l.LogEndOffset() != wantEnd || len(got) != int(wantEnd/2) {
				t.Fatalf("LEO %d, %d batches", l.LogEndOffset(), len(got))
			}
			if !slices.Equal(l.Segments(), segs[:2]) {
				t.Fatalf("segments %v", l.Segments())
			}
		})
	}
}

func TestLogRecoveryIdempotentAfterCrash(t *testing.T) {
	t.Parallel()
	mem := vfs.NewCrashableMem()
	e := newEnv(t, mem, Config{SegmentBytes: 1000})
	l := e.open()
	for i := range 25 {
		mustAppend(t, l, mkBatch(t, spec{valueSize: 80, fill: byte(i)}), leader)
		if i == 14 {
			if err := l.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	crashed := mem.CrashClone()
	e.fs = crashed
	l1 := e.open()
	first := readAll(t, l1)
	if l1.LogEndOffset() < 15 {
		t.Fatalf("synced data lost: LEO %d", l1.LogEndOffset())
	}
	// Crash again right after recovery: the same state must come back.
	e.fs = crashed.CrashClone()
	l2 := e.open()
	second := readAll(t, l2)
	if l2.LogEndOffset() != l1.LogEndOffset() || len(first) != len(second) {
		t.Fatalf("LEO %d vs %d", l1.LogEndOffset(), l2.LogEndOffset())
	}
	for i := range first {
		if !bytes.Equal(first[i], second[i]) {
			t.Fatalf("batch %d differs", i)
		}
	}
	if rep := l2.Recovery(); rep.TruncatedBytes != 0 {
		t.Fatalf("second recovery dropped %d bytes", rep.TruncatedBytes)
	}
}

func TestLogRecoveryLostEpochCheckpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Config{SegmentBytes: 1200})
	fillLog(t, e, 30)
	if err := e.fs.Remove(e.dir + "/" + epochCheckpoint); err != nil {
		t.Fatal(err)
	}
	l := e.open()
	if rep := l.Recovery(); rep.ScannedSegments != len(l.Segments()) {
		t.Fatalf("scanned %d of %d segments", rep.ScannedSegments, len(l.Segments()))
	}
	if ep, end := l.EndOffsetForEpoch(1); ep != 1 || end != 32 {
		t.Fatalf("EndOffsetForEpoch(1) = %d, %d", ep, end)
	}
	if l.LatestEpoch() != 3 {
		t.Fatalf("latest epoch %d", l.LatestEpoch())
	}
}
