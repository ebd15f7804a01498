package storage

import (
	"math"
	"slices"
	"testing"

	"github.com/sluicedev/sluice/protocol/batch"
)

func TestEpochCacheEndOffsetFor(t *testing.T) {
	t.Parallel()
	var c epochCache
	for _, e := range []epochEntry{{1, 0}, {3, 10}, {4, 25}, {7, 40}} {
		c.assign(e.Epoch, e.StartOffset)
	}
	const leo = 55
	cases := []struct {
		req       int32
		wantEpoch int32
		wantEnd   int64
	}{
		{-1, -1, -1},
		{0, -1, -1}, // below the earliest
		{1, 1, 10},
		{2, 1, 10}, // largest epoch <= 2 is 1; next higher starts at 10
		{3, 3, 25},
		{5, 4, 40},
		{6, 4, 40},
		{7, 7, leo}, // latest
		{8, -1, -1}, // newer than anything known
	}
	for _, tc := range cases {
		if ep, end := c.endOffsetFor(tc.req, leo); ep != tc.wantEpoch || end != tc.wantEnd {
			t.Errorf("endOffsetFor(%d) = (%d, %d), want (%d, %d)", tc.req, ep, end, tc.wantEpoch, tc.wantEnd)
		}
	}
	var empty epochCache
	if ep, end := empty.endOffsetFor(0, 5); ep != -1 || end != -1 {
		t.Errorf("empty cache: (%d, %d)", ep, end)
	}
}

func TestEpochCacheMutations(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		do   func(c *epochCache)
		want []epochEntry
	}{
		{"latest epoch later offset is a no-op", func(c *epochCache) { c.assign(5, 25) }, []epochEntry{{1, 0}, {3, 10}, {5, 20}}},
		{"older epoch drops newer ones", func(c *epochCache) { c.assign(3, 15) }, []epochEntry{{1, 0}, {3, 15}}},
		{"new epoch appends", func(c *epochCache) { c.assign(6, 30) }, []epochEntry{{1, 0}, {3, 10}, {5, 20}, {6, 30}}},
		{"conflicting epoch replaces the tail", func(c *epochCache) { c.assign(4, 12) }, []epochEntry{{1, 0}, {3, 10}, {4, 12}}},
		{"negative epoch ignored", func(c *epochCache) { c.assign(-1, 50) }, []epochEntry{{1, 0}, {3, 10}, {5, 20}}},
		{"truncate from end", func(c *epochCache) { c.truncateFromEnd(10) }, []epochEntry{{1, 0}}},
		{"truncate from end keeps earlier", func(c *epochCache) { c.truncateFromEnd(21) }, []epochEntry{{1, 0}, {3, 10}, {5, 20}}},
		{"truncate from start moves covering epoch", func(c *epochCache) { c.truncateFromStart(12) }, []epochEntry{{3, 12}, {5, 20}}},
		{"truncate from start at boundary", func(c *epochCache) { c.truncateFromStart(20) }, []epochEntry{{5, 20}}},
		{"truncate from start below first", func(c *epochCache) { c.truncateFromStart(0) }, []epochEntry{{1, 0}, {3, 10}, {5, 20}}},
	}
	for _, tc := range cases {
		var c epochCache
		c.assign(1, 0)
		c.assign(3, 10)
		c.assign(5, 20)
		tc.do(&c)
		if !slices.Equal(c.entries, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, c.entries, tc.want)
		}
		if rt, ok := epochCacheFromRows(c.rows()); !ok || !slices.Equal(rt.entries, c.entries) {
			t.Errorf("%s: checkpoint rows do not round-trip", tc.name)
		}
	}
	if _, ok := epochCacheFromRows([][2]int64{{3, 10}, {2, 20}}); ok {
		t.Error("non-monotonic rows accepted")
	}
}

func TestLogEpochsPersistAndTruncate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Config{SegmentBytes: 700})
	l := e.open()
	epochs := []int32{0, 0, 0, 2, 2, 5, 5, 5, 5, 5}
	for i, ep := range epochs {
		mustAppend(t, l, mkBatch(t, spec{records: 2, valueSize: 40, fill: byte(i)}), AppendOptions{AssignOffsets: true, LeaderEpoch: ep})
	}
	check := func(l *Log, req, wantEp int32, wantEnd int64) {
		t.Helper()
		if ep, end := l.EndOffsetForEpoch(req); ep != wantEp || end != wantEnd {
			t.Fatalf("EndOffsetForEpoch(%d) = (%d, %d), want (%d, %d)", req, ep, end, wantEp, wantEnd)
		}
	}
	check(l, 0, 0, 6)
	check(l, 1, 0, 6)
	check(l, 2, 2, 10)
	check(l, 5, 5, 20)
	// Persisted across a crash (no Close) and a clean restart.
	for range 2 {
		if err := l.Flush(); err != nil {
			t.Fatal(err)
		}
		l = e.open()
		check(l, 1, 0, 6)
		check(l, 5, 5, 20)
	}
	// Follower truncation: the divergent epoch goes away.
	if err := l.TruncateTo(9); err != nil { // inside batch [8, 9]: cut at 8
		t.Fatal(err)
	}
	if l.LogEndOffset() != 8 {
		t.Fatalf("LEO after truncate %d", l.LogEndOffset())
	}
	check(l, 2, 2, 8)
	check(l, 5, -1, -1)
	if l.LatestEpoch() != 2 {
		t.Fatalf("latest %d", l.LatestEpoch())
	}
	// A follower append continues at the new end with the leader's epoch.
	b := mkBatch(t, spec{})
	batch.SetBaseOffset(b, 8)
	batch.SetPartitionLeaderEpoch(b, 6)
	mustAppend(t, l, b, AppendOptions{})
	check(l, 2, 2, 8)
	check(l, 6, 6, 9)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = e.open()
	check(l, 5, 2, 8)
	check(l, 6, 6, 9)
}

func TestLogTruncateTo(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		to      int64
		wantLEO int64
		wantLSO int64
	}{
		{"no-op at end", 40, 40, 4},
		{"batch boundary in last segment", 38, 38, 4},
		{"across segments", 11, 10, 4},
		{"to log start", 4, 4, 4},
		{"below log start empties", 2, 2, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil, Config{SegmentBytes: 600, IndexIntervalBytes: 100})
			l := e.open()
			var stored [][]byte
			for i := range 20 {
				b := mkBatch(t, spec{records: 2, valueSize: 50, pid: 3, seq: int32(2 * i), fill: byte(i)})
				mustAppend(t, l, b, leader)
				stored = append(stored, slices.Clone(b))
			}
			if _, err := l.DeleteRecordsBefore(4); err != nil {
				t.Fatal(err)
			}
			ch := l.Changed()
			if err := l.TruncateTo(tc.to); err != nil {
				t.Fatal(err)
			}
			if tc.to < 40 {
				<-ch
			}
			check := func(l *Log) {
				t.Helper()
				if l.LogEndOffset() != tc.wantLEO || l.LogStartOffset() != tc.wantLSO {
					t.Fatalf("LEO %d LSO %d, want %d %d", l.LogEndOffset(), l.LogStartOffset(), tc.wantLEO, tc.wantLSO)
				}
				got := readAll(t, l)
				for i, b := range got {
					h, _ := batch.ParseHeader(b)
					if !slices.Equal(b, stored[h.BaseOffset/2]) {
						t.Fatalf("batch %d at %d differs", i, h.BaseOffset)
					}
				}
				if _, err := l.Read(tc.wantLEO+1, 100, math.MaxInt64); err == nil {
					t.Fatal("read past the truncated end succeeded")
				}
			}
			check(l)
			// The truncation is durable: reopen without Close.
			l2 := e.open()
			check(l2)
			// Producer state was rolled back with the data.
			wantSeq := int32(tc.wantLEO)
			if tc.to < tc.wantLSO || tc.wantLEO == tc.wantLSO {
				return // state below the log start is dropped; any sequence goes
			}
			mustAppend(t, l2, mkBatch(t, spec{pid: 3, seq: wantSeq}), leader)
		})
	}
}
