package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"os"
	"slices"
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

// FuzzTxnIndexRecovery replaces the aborted-transaction index of a closed
// segment (below the recovery point) of a small transactional log with
// arbitrary bytes. Properties: Open never fails or panics; every index file
// it leaves is whole entries that validate; AbortedTransactions answers
// well-formed entries (markers in order inside their segments, sorted by
// first offset); reopening gives the same answer; and the original bytes
// give the original entries.
func FuzzTxnIndexRecovery(f *testing.F) {
	mem, e, want, path := fuzzTxnLog(f)
	orig, err := readFile(mem, path, 1<<20)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(orig)
	f.Add(orig[:len(orig)-3])
	f.Add(append(bytes.Clone(orig), make([]byte, abortedTxnSize)...))
	flipped := bytes.Clone(orig)
	flipped[abortedTxnSize+12] ^= 0x40
	f.Add(flipped)
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 3*abortedTxnSize))
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := mem.CrashClone()
		w, err := fsys.OpenFile(path, os.O_RDWR|os.O_TRUNC|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := errors.Join(w.Sync(), w.Close()); err != nil {
			t.Fatal(err)
		}
		opts := e.options()
		opts.FS, opts.Logger = fsys, nil
		var first []AbortedTxn
		for round := range 2 {
			l, err := Open(e.dir, opts)
			if err != nil {
				t.Fatalf("round %d: Open: %v", round, err)
			}
			got, err := l.AppendAbortedTransactions(nil, 0, math.MaxInt64)
			if err != nil {
				t.Fatal(err)
			}
			checkAbortedWellFormed(t, l, got)
			if round == 0 {
				first = got
			} else if !slices.Equal(got, first) {
				t.Fatalf("reopen changed the entries:\n%+v\n%+v", first, got)
			}
			if bytes.Equal(data, orig) && !slices.Equal(got, want) {
				t.Fatalf("original index gave %+v, want %+v", got, want)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// fuzzTxnLog builds a closed log with aborted transactions in several
// segments and returns the .txnindex path of its first segment with any.
func fuzzTxnLog(f *testing.F) (*vfs.MemFS, *env, []AbortedTxn, string) {
	mem := vfs.NewCrashableMem()
	e := newEnv(f, mem, Config{SegmentBytes: 400})
	l := e.open()
	r := newTxnRunner(f, l)
	for i := range 8 {
		r.run([]txnStep{txnData(1, 1), txnData(2, 2), plain(1), abortOf(1)})
		if i%2 == 0 {
			r.run([]txnStep{abortOf(2)})
		} else {
			r.run([]txnStep{commitOf(2)})
		}
	}
	want := l.AbortedTransactions(0, math.MaxInt64)
	segs := l.Segments()
	if err := l.Close(); err != nil {
		f.Fatal(err)
	}
	for _, base := range segs {
		path := segPath(e, base, txnIndexSuffix)
		if st, err := mem.Stat(path); err == nil && st.Size() >= 2*abortedTxnSize {
			return mem, e, want, path
		}
	}
	f.Fatal("no segment with two aborted transactions")
	return nil, nil, nil, ""
}

// checkAbortedWellFormed checks AbortedTransactions' answer and the index
// files behind it.
func checkAbortedWellFormed(t *testing.T, l *Log, got []AbortedTxn) {
	t.Helper()
	for i, a := range got {
		if a.FirstOffset > a.LastOffset || a.LastOffset >= l.LogEndOffset() || a.ProducerID < 0 ||
			(i > 0 && got[i-1].FirstOffset > a.FirstOffset) {
			t.Fatalf("malformed answer at %d: %+v", i, got)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.mu.segs {
		if s.txn.f == nil {
			continue
		}
		st, err := s.txn.f.Stat()
		if err != nil || st.Size() != int64(s.txn.n)*abortedTxnSize {
			t.Fatalf("%s: %d entries in %v bytes (%v)", s.txn.path, s.txn.n, st, err)
		}
		var check txnIndex
		check.path, check.f = s.txn.path, s.txn.f
		if err := check.load(l.fs, s.base, s.next); err != nil {
			t.Fatalf("index left invalid: %v", err)
		}
	}
}

// FuzzProducerSnapshot decodes arbitrary bytes as a producer snapshot, as
// given and with the checksum fixed up (so the body parser is reached).
// Properties: no panic; a snapshot that decodes re-encodes (as version 2)
// to bytes that decode to the same state.
func FuzzProducerSnapshot(f *testing.F) {
	p := newProducerState()
	for i := range 4 {
		p.update(mkHeader(int64(i), int16(i), int32(i*3)), marker{})
	}
	p.m[2].TxnFirst, p.m[3].CoordEpoch = 17, 4
	v2 := p.encode(99, []completedTxn{{first: 5, last: 12}})
	f.Add(v2)
	f.Add(encodeSnapshotV1(p, 99))
	f.Add(v2[:len(v2)-9])
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeProducerSnapshot(b)
		if len(b) < 4 {
			return
		}
		b = bytes.Clone(b)
		binary.BigEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], crcTable))
		d, err := decodeProducerSnapshot(b)
		if err != nil {
			return
		}
		again, err := decodeProducerSnapshot(d.state.encode(d.offset, d.unrepl))
		if err != nil || again.offset != d.offset || !slices.Equal(again.unrepl, d.unrepl) || len(again.state.m) != len(d.state.m) {
			t.Fatalf("re-encoding: %v", err)
		}
		for id, e := range d.state.m {
			if *again.state.m[id] != *e {
				t.Fatalf("producer %d: %+v then %+v", id, *e, *again.state.m[id])
			}
		}
	})
}
