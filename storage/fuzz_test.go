package storage

import (
	"bytes"
	"math"
	"os"
	"testing"

	"github.com/sluicedev/sluice/protocol/batch"
	"github.com/sluicedev/sluice/storage/vfs"
)

// FuzzSegmentRecovery treats arbitrary bytes as the only segment file of a
// log. Properties: Open never panics or fails, the recovered file is a
// prefix of the input, every batch in it is valid, and reopening gives the
// same bytes and batches.
func FuzzSegmentRecovery(f *testing.F) {
	var blob []byte
	for i := range 4 {
		b := mkBatch(f, spec{records: i + 1, valueSize: 10 * i, pid: int64(i), seq: int32(i)})
		batch.SetBaseOffset(b, int64(len(blob)/50))
		blob = append(blob, b...)
	}
	f.Add(blob)
	f.Add(blob[:len(blob)-7])
	f.Add(append(bytes.Clone(blob), make([]byte, 64)...))
	flipped := bytes.Clone(blob)
	flipped[len(flipped)/2] ^= 0x20
	f.Add(flipped)
	f.Add([]byte{})
	f.Add(make([]byte, 61))
	f.Fuzz(func(t *testing.T, data []byte) {
		mem := vfs.NewMem()
		dir := "/d/fuzz-0"
		if err := mem.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		path := dir + "/" + segmentName(0, logSuffix)
		w, err := mem.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		w.Close()

		opts := Options{FS: mem, Config: Config{IndexIntervalBytes: 64}}
		l, err := Open(dir, opts)
		if err != nil {
			t.Fatalf("Open on garbage: %v", err)
		}
		size := l.Size()
		if size > int64(len(data)) {
			t.Fatalf("recovered %d bytes from %d", size, len(data))
		}
		kept, err := readFile(mem, path, math.MaxInt32)
		if err != nil || !bytes.Equal(kept, data[:size]) {
			t.Fatalf("recovered file is not a prefix of the input (%v)", err)
		}
		first := fuzzReadAll(t, l)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l2, err := Open(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer l2.Close()
		if l2.Size() != size || l2.LogEndOffset() != l.LogEndOffset() {
			t.Fatalf("reopen: size %d vs %d, LEO %d vs %d", l2.Size(), size, l2.LogEndOffset(), l.LogEndOffset())
		}
		second := fuzzReadAll(t, l2)
		if len(first) != len(second) {
			t.Fatalf("reopen: %d batches vs %d", len(second), len(first))
		}
		for i := range first {
			if !bytes.Equal(first[i], second[i]) {
				t.Fatalf("reopen: batch %d differs", i)
			}
		}
	})
}

// fuzzReadAll reads every batch, allowing offset gaps between batches
// (recovery accepts them, as compaction would create them).
func fuzzReadAll(t *testing.T, l *Log) [][]byte {
	t.Helper()
	var out [][]byte
	off := l.LogStartOffset()
	for off < l.LogEndOffset() {
		blob, err := l.Read(off, 1<<20, math.MaxInt64)
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		if len(blob) == 0 {
			t.Fatalf("Read(%d) empty before end %d", off, l.LogEndOffset())
		}
		for len(blob) > 0 {
			b, rest, err := batch.Next(blob)
			if err != nil {
				t.Fatal(err)
			}
			h, err := batch.Check(b)
			if err != nil {
				t.Fatalf("recovered an invalid batch: %v", err)
			}
			if h.NextOffset() <= off {
				t.Fatalf("offsets went backwards at %d", h.BaseOffset)
			}
			out = append(out, b)
			off = h.NextOffset()
			blob = rest
		}
	}
	return out
}
