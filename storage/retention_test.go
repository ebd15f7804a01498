package storage

import (
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/sluicedev/sluice/protocol/batch"
)

// segmentedLog builds a log of 30 two-record batches in ~6 segments, with
// batch i timestamped base+i*1000.
func segmentedLog(t *testing.T, cfg Config) (*env, *Log, int64) {
	t.Helper()
	cfg.SegmentBytes, cfg.IndexIntervalBytes = 700, 100
	e := newEnv(t, nil, cfg)
	l := e.open()
	base := e.clock.Now().UnixMilli() - 100_000
	for i := range 30 {
		mustAppend(t, l, mkBatch(t, spec{records: 2, valueSize: 60, ts: base + int64(i)*1000, fill: byte(i)}), leader)
	}
	return e, l, base
}

func TestLogRetentionBytes(t *testing.T) {
	t.Parallel()
	e, l, _ := segmentedLog(t, Config{RetentionBytes: 1500})
	segs := l.Segments()
	n, err := l.EnforceRetention(e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	after := l.Segments()
	if n == 0 || !slices.Equal(after, segs[n:]) {
		t.Fatalf("deleted %d: %v -> %v", n, segs, after)
	}
	if l.Size() > 1500+700 || l.Size() < 1500-700 {
		t.Fatalf("size %d after retention", l.Size())
	}
	if l.LogStartOffset() != after[0] {
		t.Fatalf("LSO %d, first segment %d", l.LogStartOffset(), after[0])
	}
	if _, err := l.Read(0, 100, math.MaxInt64); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read of deleted offset: %v", err)
	}
	if _, err := e.fs.Stat(segPath(e, segs[0], logSuffix)); err == nil {
		t.Fatal("deleted segment file still exists")
	}
	readAll(t, l)
	// Persisted: a reopen (even without Close) keeps the new start.
	l2 := e.open()
	if l2.LogStartOffset() != after[0] {
		t.Fatalf("LSO after reopen %d", l2.LogStartOffset())
	}
}

func TestLogRetentionMs(t *testing.T) {
	t.Parallel()
	e, l, base := segmentedLog(t, Config{RetentionMs: 85_000})
	segs := l.Segments()
	// Now is base+100s: exactly the segments whose newest batch is older
	// than base+15s go. Batch b has offsets 2b, 2b+1 and MaxTimestamp base+1000b+1.
	n, err := l.EnforceRetention(e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 || !slices.Equal(l.Segments(), segs[n:]) {
		t.Fatalf("deleted %d: %v -> %v", n, segs, l.Segments())
	}
	newestTs := func(i int) int64 { return base + (append(segs, l.LogEndOffset())[i+1]-2)/2*1000 + 1 }
	cutoff := e.clock.Now().UnixMilli() - 85_000
	if newestTs(n-1) >= cutoff || newestTs(n) < cutoff {
		t.Fatalf("deleted through segment %d (newest %d), kept one with newest %d; cutoff %d",
			n-1, newestTs(n-1)-base, newestTs(n)-base, cutoff-base)
	}
	// Nothing is deleted while everything is recent, and never the active segment.
	e.clock.Advance(time.Hour)
	if _, err := l.EnforceRetention(e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if segs := l.Segments(); len(segs) != 1 || l.LogEndOffset() != 60 {
		t.Fatalf("after everything expired: %v LEO %d", segs, l.LogEndOffset())
	}
	mustAppend(t, l, mkBatch(t, spec{}), leader)
}

func TestLogDeleteRecordsBefore(t *testing.T) {
	t.Parallel()
	e, l, _ := segmentedLog(t, Config{})
	segs := l.Segments()
	cut := segs[2] + 3
	lso, err := l.DeleteRecordsBefore(cut)
	if err != nil || lso != cut {
		t.Fatalf("DeleteRecordsBefore: %d %v", lso, err)
	}
	if got := l.Segments(); !slices.Equal(got, segs[2:]) {
		t.Fatalf("segments %v, want %v", got, segs[2:])
	}
	// Reading at the new start returns the batch containing it.
	blob, err := l.Read(cut, 1, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := batch.ParseHeader(blob); h.BaseOffset > cut || h.LastOffset() < cut {
		t.Fatalf("batch [%d, %d] does not hold %d", h.BaseOffset, h.LastOffset(), cut)
	}
	if _, err := l.Read(cut-1, 1, math.MaxInt64); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below start: %v", err)
	}
	if lso, _ := l.DeleteRecordsBefore(cut - 5); lso != cut {
		t.Fatalf("lower offset moved the start back to %d", lso)
	}
	if _, err := l.DeleteRecordsBefore(l.LogEndOffset() + 1); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("beyond end: %v", err)
	}
	l2 := e.open()
	if l2.LogStartOffset() != cut {
		t.Fatalf("LSO after reopen %d", l2.LogStartOffset())
	}
	// Deleting everything keeps the active segment and an empty readable range.
	if _, err := l2.DeleteRecordsBefore(l2.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
	if blob, err := l2.Read(l2.LogEndOffset(), 100, math.MaxInt64); err != nil || len(blob) != 0 {
		t.Fatalf("read at end: %d %v", len(blob), err)
	}
}

func TestLogOffsetForTimestamp(t *testing.T) {
	t.Parallel()
	_, l, base := segmentedLog(t, Config{})
	cases := []struct {
		ts      int64
		wantOff int64
		wantTs  int64
		wantOK  bool
	}{
		{0, 0, base + 1, true},
		{base, 0, base + 1, true},
		{base + 1, 0, base + 1, true},
		{base + 2, 2, base + 1001, true},
		{base + 10_500, 22, base + 11_001, true},
		{base + 29_001, 58, base + 29_001, true},
		{base + 29_002, -1, -1, false},
	}
	for _, tc := range cases {
		off, ts, ok, err := l.OffsetForTimestamp(tc.ts)
		if err != nil || off != tc.wantOff || ts != tc.wantTs || ok != tc.wantOK {
			t.Errorf("OffsetForTimestamp(%d) = %d, %d, %v, %v; want %d, %d, %v", tc.ts-base, off, ts-base, ok, err, tc.wantOff, tc.wantTs-base, tc.wantOK)
		}
	}
	if ts, off := l.MaxTimestamp(); ts != base+29_001 || off != 59 {
		t.Errorf("MaxTimestamp = %d, %d", ts-base, off)
	}
	if _, err := l.DeleteRecordsBefore(25); err != nil {
		t.Fatal(err)
	}
	if off, _, ok, _ := l.OffsetForTimestamp(0); !ok || off != 25 {
		t.Errorf("after DeleteRecords: %d %v", off, ok)
	}
}
