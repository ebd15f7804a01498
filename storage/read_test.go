package storage

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sluicedev/sluice/protocol/batch"
	"github.com/sluicedev/sluice/storage/vfs"
)

// readModel is what a test appended: every batch with its offsets, so the
// expected answer of any Read can be computed without the log.
type readModel struct {
	batches [][]byte
	base    []int64
	last    []int64
	segs    []int64 // segment base offsets
}

// segOf is the index into segs of the segment holding the batch at base.
func (m *readModel) segOf(base int64) int {
	i := 0
	for i+1 < len(m.segs) && m.segs[i+1] <= base {
		i++
	}
	return i
}

// read is Read's contract spelled out over the model: the batch holding
// offset (or the first after it, in the segment that holds offset or the
// next one), then more from the same segment while they stay within
// max(maxBytes, 1) bytes, none with a last offset at or past maxOffset.
func (m *readModel) read(offset int64, maxBytes int32, maxOffset int64) []byte {
	limit := max(int64(maxBytes), 1)
	seg := -1
	for i := range m.segs {
		if m.segs[i] <= offset {
			seg = i
		}
	}
	for _, s := range []int{seg, seg + 1} {
		var out []byte
		for i := range m.batches {
			if m.segOf(m.base[i]) != s || m.last[i] < offset {
				continue
			}
			if m.last[i] >= maxOffset || (len(out) > 0 && int64(len(out)+len(m.batches[i])) > limit) {
				break
			}
			out = append(out, m.batches[i]...)
			if int64(len(out)) >= limit {
				break
			}
		}
		if out != nil || m.firstReaching(s, offset) {
			return out
		}
	}
	return nil
}

// firstReaching reports whether segment s has a batch reaching offset.
func (m *readModel) firstReaching(s int, offset int64) bool {
	for i := range m.batches {
		if m.segOf(m.base[i]) == s && m.last[i] >= offset {
			return true
		}
	}
	return false
}

// buildReadLog appends batches of widely varying sizes (tiny, around the
// seek read size, larger than typical fetch limits) over several segments.
func buildReadLog(t *testing.T, fsys vfs.FS, rng *rand.Rand, interval int32) (*Log, *readModel) {
	t.Helper()
	e := newEnv(t, fsys, Config{IndexIntervalBytes: interval, SegmentBytes: 300 << 10})
	l := e.open()
	m := &readModel{}
	for i := range 120 {
		size := []int{10, 300, 5000, 15000, 17000, 40000}[rng.IntN(6)]
		b := mkBatch(t, spec{records: 1 + rng.IntN(4), valueSize: size, fill: byte(i)})
		res := mustAppend(t, l, b, leader)
		m.batches = append(m.batches, b) // Append stamped the offsets into b
		m.base = append(m.base, res.BaseOffset)
		m.last = append(m.last, res.LastOffset)
	}
	m.segs = l.Segments()
	if len(m.segs) < 3 {
		t.Fatalf("want several segments, got %d", len(m.segs))
	}
	return l, m
}

func TestLogReadIntoMatchesModel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		os       bool
		interval int32
	}{
		{"mem dense index", false, 100},
		{"mem default index", false, 4096},
		{"os sparse index", true, 64 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var fsys vfs.FS
			if tc.os {
				fsys = vfs.OS()
			}
			rng := rand.New(rand.NewPCG(1, uint64(tc.interval)))
			l, m := buildReadLog(t, fsys, rng, tc.interval)
			leo := l.LogEndOffset()
			var buf []byte
			for range 2000 {
				offset := rng.Int64N(leo + 1)
				maxBytes := []int32{0, 1, 100, 16 << 10, 50000, 1 << 20, rng.Int32N(120000)}[rng.IntN(7)]
				maxOffset := int64(math.MaxInt64)
				if rng.IntN(3) == 0 {
					maxOffset = offset + rng.Int64N(leo-offset+2)
				}
				want := m.read(offset, maxBytes, maxOffset)
				got, err := l.Read(offset, maxBytes, maxOffset)
				if err != nil {
					t.Fatalf("Read(%d, %d, %d): %v", offset, maxBytes, maxOffset, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("Read(%d, %d, %d): %d bytes, want %d", offset, maxBytes, maxOffset, len(got), len(want))
				}
				got, buf, err = l.ReadInto(buf, offset, maxBytes, maxOffset)
				if err != nil {
					t.Fatalf("ReadInto(%d, %d, %d): %v", offset, maxBytes, maxOffset, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("ReadInto(%d, %d, %d): %d bytes, want %d", offset, maxBytes, maxOffset, len(got), len(want))
				}
				var sp Span
				sp, buf, err = l.ReadSpan(offset, maxBytes, maxOffset, buf)
				if err != nil {
					t.Fatalf("ReadSpan(%d, %d, %d): %v", offset, maxBytes, maxOffset, err)
				}
				if got := spanBytes(t, sp); !bytes.Equal(got, want) || sp.Records != countRecords(t, want) {
					t.Fatalf("ReadSpan(%d, %d, %d): %d bytes and %d records, want %d and %d",
						offset, maxBytes, maxOffset, len(got), sp.Records, len(want), countRecords(t, want))
				}
				sp.Release()
			}
		})
	}
}

func TestLogReadIntoReusesBuffer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Config{})
	l := e.open()
	for i := range 10 {
		mustAppend(t, l, mkBatch(t, spec{records: 3, valueSize: 1000, fill: byte(i)}), leader)
	}
	buf := make([]byte, 0, 1<<20)
	data, used, err := l.ReadInto(buf, 0, 64<<10, math.MaxInt64)
	if err != nil || len(data) == 0 {
		t.Fatalf("ReadInto: %d bytes, %v", len(data), err)
	}
	if &used[:1][0] != &buf[:1][0] {
		t.Fatal("a large enough buffer was not used")
	}
	small := make([]byte, 0, 10)
	data2, used2, err := l.ReadInto(small, 0, 64<<10, math.MaxInt64)
	if err != nil || !bytes.Equal(data, data2) {
		t.Fatalf("ReadInto with a small buffer: %v, equal %v", err, bytes.Equal(data, data2))
	}
	if cap(used2) < len(data2) {
		t.Fatalf("returned buffer of %d bytes cannot hold the %d bytes read", cap(used2), len(data2))
	}
}

func TestLogReadDamagedIndexScans(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Config{IndexIntervalBytes: 100, SegmentBytes: 20 << 10})
	l := e.open()
	var want [][]byte
	for i := range 40 {
		b := mkBatch(t, spec{records: 2, valueSize: 700, fill: byte(i)})
		mustAppend(t, l, b, leader)
		want = append(want, b)
	}
	segs := l.Segments()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Point every entry of the first (closed) segment's index one batch
	// off: the positions stay plausible, the offsets no longer match.
	rewriteFile(t, e.fs, segPath(e, segs[0], indexSuffix), func(old []byte) []byte {
		out := bytes.Clone(old)
		for i := 0; i+8 <= len(out); i += 8 {
			rel := binary.BigEndian.Uint32(out[i:])
			binary.BigEndian.PutUint32(out[i:], rel+2)
		}
		return out
	})
	l = e.open()
	got := readAll(t, l)
	if len(got) != len(want) {
		t.Fatalf("read %d batches, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("batch %d differs", i)
		}
	}
	for off := int64(0); off < l.LogEndOffset(); off++ {
		blob, err := l.Read(off, 1, math.MaxInt64)
		if err != nil {
			t.Fatal(err)
		}
		h, err := batch.ParseHeader(blob)
		if err != nil || h.BaseOffset > off || h.LastOffset() < off {
			t.Fatalf("Read(%d) returned the batch at %d (%v)", off, h.BaseOffset, err)
		}
	}
}

// spanBytes reads what a span names.
func spanBytes(t *testing.T, sp Span) []byte {
	t.Helper()
	if sp.Len == 0 {
		return nil
	}
	out := make([]byte, sp.Len)
	if _, err := sp.File.ReadAt(out, sp.Pos); err != nil {
		t.Fatalf("reading span: %v", err)
	}
	return out
}

// countRecords sums the record counts of the batches in blob.
func countRecords(t *testing.T, blob []byte) int64 {
	t.Helper()
	var n int64
	for len(blob) > 0 {
		b, rest, err := batch.Next(blob)
		if err != nil {
			t.Fatal(err)
		}
		h, err := batch.ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		n += int64(h.NumRecords)
		blob = rest
	}
	return n
}

func TestLogReadSpanOutlivesSegment(t *testing.T) {
	t.Parallel()
	e := newEnv(t, vfs.OS(), Config{})
	l := e.open()
	for i := range 5 {
		mustAppend(t, l, mkBatch(t, spec{records: 2, valueSize: 3000, fill: byte(i)}), leader)
	}
	want, err := l.Read(0, 1<<20, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	sp, _, err := l.ReadSpan(0, 1<<20, math.MaxInt64, nil)
	if err != nil || !sp.Intact() {
		t.Fatalf("ReadSpan: %v, intact %v", err, sp.Intact())
	}
	defer sp.Release()
	// Every segment goes, files included; the span keeps its file open.
	if err := l.TruncateFullyAndStartAt(l.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
	if sp.Intact() {
		t.Fatal("a span survived a truncation as intact")
	}
	if got := spanBytes(t, sp); !bytes.Equal(got, want) {
		t.Fatal("the span's bytes changed after its segment was deleted")
	}
}
