package storage

import (
	"bytes"
	"context"
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/sluicedev/sluice/protocol/batch"
	"github.com/sluicedev/sluice/storage/vfs"
)

func TestLogAppendAssignsOffsets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Config{})
	l := e.open()
	var want int64
	for i := range 10 {
		b := mkBatch(t, spec{records: i + 1, fill: byte(i)})
		res := mustAppend(t, l, b, AppendOptions{AssignOffsets: true, LeaderEpoch: 3})
		if res.BaseOffset != want || res.LastOffset != want+int64(i) || res.LogAppendTime != -1 || res.Duplicate {
			t.Fatalf("append %d: %+v", i, res)
		}
		want += int64(i + 1)
	}
	if l.LogEndOffset() != want || l.LogStartOffset() != 0 {
		t.Fatalf("LEO %d LSO %d", l.LogEndOffset(), l.LogStartOffset())
	}
	got := readAll(t, l)
	if len(got) != 10 {
		t.Fatalf("read %d batches", len(got))
	}
	for i, b := range got {
		h, _ := batch.ParseHeader(b)
		if h.PartitionLeaderEpoch != 3 || h.NumRecords != int32(i+1) {
			t.Fatalf("batch %d header %+v", i, h)
		}
	}
}

func TestLogAppendRejectsBadInput(t *testing.T) {
	t.Parallel()
	l := newEnv(t, nil, Config{}).open()
	good := mkBatch(t, spec{})
	cases := map[string][]byte{
		"short":    good[:20],
		"trailing": append(slices.Clone(good), 1),
		"two":      append(slices.Clone(good), good...),
	}
	for name, b := range cases {
		if _, err := l.Append(b, leader); !errors.Is(err, ErrInvalidBatch) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Follower appends must start at the log end offset.
	b := mkBatch(t, spec{})
	batch.SetBaseOffset(b, 5)
	if _, err := l.Append(b, AppendOptions{}); !errors.Is(err, ErrOffsetMismatch) {
		t.Fatalf("follower gap: %v", err)
	}
	batch.SetBaseOffset(b, 0)
	if res := mustAppend(t, l, b, AppendOptions{}); res.BaseOffset != 0 {
		t.Fatalf("follower append %+v", res)
	}
}

func TestLogAppendLogAppendTime(t *testing.T) {
	t.Parallel()
	l := newEnv(t, nil, Config{}).open()
	res := mustAppend(t, l, mkBatch(t, spec{ts: 5, records: 2}), AppendOptions{AssignOffsets: true, LogAppendTime: 99})
	if res.LogAppendTime != 99 {
		t.Fatalf("%+v", res)
	}
	got := readAll(t, l)
	h, err := batch.Check(got[0])
	if err != nil || !h.LogAppendTime() || h.MaxTimestamp != 99 {
		t.Fatalf("stored %+v %v", h, err)
	}
}

func TestLogReadLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Config{IndexIntervalBytes: 100})
	l := e.open()
	var sizes []int
	for i := range 20 {
		b := mkBatch(t, spec{records: 2, valueSize: 50, fill: byte(i)})
		sizes = append(sizes, len(b))
		mustAppend(t, l, b, leader)
	}
	count := func(blob []byte) (n int, first, next int64) {
		first = -1
		for len(blob) > 0 {
			b, rest, err := batch.Next(blob)
			if err != nil {
				t.Fatal(err)
			}
			h, _ := batch.ParseHeader(b)
			if first < 0 {
				first = h.BaseOffset
			}
			next = h.NextOffset()
			n++
			blob = rest
		}
		return n, first, next
	}
	cases := []struct {
		name      string
		offset    int64
		maxBytes  int32
		maxOffset int64
		wantN     int
		wantFirst int64
	}{
		{"from start, room for 3", 0, int32(3*sizes[0] + 10), math.MaxInt64, 3, 0},
		{"mid batch offset returns containing batch", 7, int32(sizes[0]), math.MaxInt64, 1, 6},
		{"at least one batch", 10, 1, math.MaxInt64, 1, 10},
		{"zero maxBytes", 10, 0, math.MaxInt64, 1, 10},
		{"maxOffset cuts", 0, 1 << 20, 6, 3, 0},
		{"maxOffset inside first batch", 4, 1 << 20, 5, 0, -1},
		{"maxOffset at offset", 4, 1 << 20, 4, 0, -1},
		{"everything", 0, 1 << 20, math.MaxInt64, 20, 0},
		{"last batch", 39, 1 << 20, math.MaxInt64, 1, 38},
		{"at end", 40, 1 << 20, math.MaxInt64, 0, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			blob, err := l.Read(tc.offset, tc.maxBytes, tc.maxOffset)
			if err != nil {
				t.Fatal(err)
			}
			n, first, _ := count(blob)
			if n != tc.wantN || first != tc.wantFirst {
				t.Fatalf("got %d batches from %d, want %d from %d", n, first, tc.wantN, tc.wantFirst)
			}
		})
	}
	for _, off := range []int64{-1, 41} {
		if _, err := l.Read(off, 100, math.MaxInt64); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Errorf("Read(%d): %v", off, err)
		}
	}
}

func TestLogRollBySize(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Config{SegmentBytes: 1000, IndexIntervalBytes: 200})
	l := e.open()
	var all [][]byte
	for i := range 50 {
		b := mkBatch(t, spec{valueSize: 100, fill: byte(i)})
		mustAppend(t, l, b, leader)
		all = append(all, slices.Clone(b))
	}
	segs := l.Segments()
	if len(segs) < 5 {
		t.Fatalf("only %d segments", len(segs))
	}
	for _, base := range segs {
		if sz := fileSize(t, e.fs, segPath(e, base, logSuffix)); sz > 1000 {
			t.Fatalf("segment %d is %d bytes", base, sz)
		}
	}
	got := readAll(t, l)
	if len(got) != 50 {
		t.Fatalf("read %d", len(got))
	}
	for i := range got {
		if !bytes.Equal(got[i], all[i]) {
			t.Fatalf("batch %d differs", i)
		}
	}
	// Every offset resolves to the batch holding it, across segments.
	for off := int64(0); off < 50; off++ {
		blob, err := l.Read(off, 1, math.MaxInt64)
		if err != nil {
			t.Fatal(err)
		}
		h, _ := batch.ParseHeader(blob)
		if h.BaseOffset != off {
			t.Fatalf("Read(%d) started at %d", off, h.BaseOffset)
		}
	}
}

func TestLogRollBySegmentMs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Config{SegmentMs: 1000})
	l := e.open()
	now := e.clock.Now().UnixMilli()
	mustAppend(t, l, mkBatch(t, spec{ts: now}), leader)
	if err := l.MaybeRoll(e.clock.Now()); err != nil || len(l.Segments()) != 1 {
		t.Fatalf("early roll: %v %v", err, l.Segments())
	}
	e.clock.Advance(1001 * time.Millisecond)
	if err := l.MaybeRoll(e.clock.Now()); err != nil || len(l.Segments()) != 2 {
		t.Fatalf("MaybeRoll: %v %v", err, l.Segments())
	}
	// Append-time check too.
	mustAppend(t, l, mkBatch(t, spec{ts: e.clock.Now().UnixMilli()}), leader)
	e.clock.Advance(1001 * time.Millisecond)
	mustAppend(t, l, mkBatch(t, spec{ts: e.clock.Now().UnixMilli()}), leader)
	if segs := l.Segments(); !slices.Equal(segs, []int64{0, 1, 2}) {
		t.Fatalf("segments %v", segs)
	}
}

func TestLogReopenKeepsState(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"mem", "os"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var fsys vfs.FS = vfs.NewMem()
			if name == "os" {
				fsys = vfs.OS()
			}
			e := newEnv(t, fsys, Config{SegmentBytes: 2000, IndexIntervalBytes: 300})
			l := e.open()
			for i := range 40 {
				mustAppend(t, l, mkBatch(t, spec{valueSize: 90, ts: int64(1000 + i), pid: 7, seq: int32(i), fill: byte(i)}),
					AppendOptions{AssignOffsets: true, LeaderEpoch: int32(i / 10)})
			}
			if _, err := l.DeleteRecordsBefore(3); err != nil {
				t.Fatal(err)
			}
			type state struct {
				lso, leo int64
				segs     []int64
				data     [][]byte
				epoch    int32
				maxTs    int64
			}
			capture := func(l *Log) state {
				ts, _ := l.MaxTimestamp()
				return state{l.LogStartOffset(), l.LogEndOffset(), l.Segments(), readAll(t, l), l.LatestEpoch(), ts}
			}
			want := capture(l)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			for round := range 2 {
				l2 := e.open()
				if !l2.Recovery().Clean {
					t.Fatalf("round %d: clean shutdown not detected: %+v", round, l2.Recovery())
				}
				got := capture(l2)
				if got.lso != want.lso || got.leo != want.leo || !slices.Equal(got.segs, want.segs) ||
					got.epoch != want.epoch || got.maxTs != want.maxTs || len(got.data) != len(want.data) {
					t.Fatalf("round %d: got %+v\nwant %+v", round, got, want)
				}
				for i := range got.data {
					if !bytes.Equal(got.data[i], want.data[i]) {
						t.Fatalf("round %d: batch %d differs", round, i)
					}
				}
				// Producer state survived: the next sequence is 40.
				if _, err := l2.Append(mkBatch(t, spec{pid: 7, seq: 41}), leader); !errors.Is(err, ErrOutOfOrderSequence) {
					t.Fatalf("round %d: producer state lost: %v", round, err)
				}
				if err := l2.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestLogChangedNotifies(t *testing.T) {
	t.Parallel()
	l := newEnv(t, nil, Config{}).open()
	ch := l.Changed()
	select {
	case <-ch:
		t.Fatal("closed before any change")
	default:
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ch
	}()
	mustAppend(t, l, mkBatch(t, spec{}), leader)
	<-done
	ch2 := l.Changed()
	if ch2 == ch {
		t.Fatal("channel not replaced")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	<-ch2
	<-l.Changed()
	if _, err := l.Append(mkBatch(t, spec{}), leader); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if _, err := l.Read(0, 10, 10); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestLogNeedsSyncByFlushMessages(t *testing.T) {
	t.Parallel()
	l := newEnv(t, nil, Config{FlushMessages: 5}).open()
	var needs []bool
	for range 4 {
		res := mustAppend(t, l, mkBatch(t, spec{records: 2}), leader)
		needs = append(needs, res.NeedsSync)
		if res.NeedsSync {
			if err := l.Sync(context.Background(), res.LastOffset); err != nil {
				t.Fatal(err)
			}
			if l.SyncedOffset() <= res.LastOffset {
				t.Fatalf("synced %d, last %d", l.SyncedOffset(), res.LastOffset)
			}
		}
	}
	if !slices.Equal(needs, []bool{false, false, true, false}) {
		t.Fatalf("NeedsSync sequence %v", needs)
	}
}

// Watch delivers one token per change burst to each registered channel,
// none after Unwatch, and one at once on a closed log.
func TestLogWatchNotifies(t *testing.T) {
	t.Parallel()
	l := newEnv(t, nil, Config{}).open()
	a, b := make(chan struct{}, 1), make(chan struct{}, 1)
	l.Watch(a)
	l.Watch(b)
	mustAppend(t, l, mkBatch(t, spec{}), leader)
	mustAppend(t, l, mkBatch(t, spec{}), leader) // a second change while a token waits must not block
	for _, c := range []chan struct{}{a, b} {
		select {
		case <-c:
		default:
			t.Fatal("no token after an append")
		}
	}
	l.Unwatch(b)
	mustAppend(t, l, mkBatch(t, spec{}), leader)
	select {
	case <-b:
		t.Fatal("token after Unwatch")
	default:
	}
	<-a
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	<-a // the close
	late := make(chan struct{}, 1)
	l.Watch(late)
	select {
	case <-late:
	default:
		t.Fatal("Watch on a closed log sent no token")
	}
}
