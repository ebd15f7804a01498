package storage

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math"
	"slices"
	"testing"

	"github.com/sluicedev/sluice/storage/vfs"
)

// encodeSnapshotV1 writes state the way Sluice did before transactions
// ("SPS1"), to check that such files still load.
func encodeSnapshotV1(p producerState, offset int64) []byte {
	ids := make([]int64, 0, len(p.m))
	for id := range p.m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	be := binary.BigEndian
	b := append([]byte(nil), snapshotMagicV1...)
	b = be.AppendUint64(b, uint64(offset))
	b = be.AppendUint32(b, uint32(len(ids)))
	for _, id := range ids {
		e := p.m[id]
		b = be.AppendUint64(b, uint64(id))
		b = be.AppendUint16(b, uint16(e.Epoch))
		b = be.AppendUint64(b, uint64(e.LastTs))
		b = append(b, byte(e.N))
		for _, m := range e.Recent[:e.N] {
			b = be.AppendUint32(b, uint32(m.FirstSeq))
			b = be.AppendUint32(b, uint32(m.LastSeq))
			b = be.AppendUint64(b, uint64(m.BaseOffset))
			b = be.AppendUint64(b, uint64(m.LastOffset))
		}
	}
	return be.AppendUint32(b, crc32.Checksum(b, crcTable))
}

func TestTxnSnapshotV1StillLoads(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Config{})
	l := e.open()
	r := newTxnRunner(t, l)
	r.run([]txnStep{idemData(4, 3), idemData(5, 1), idemData(4, 2)})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Replace the snapshot Close wrote (v2) with the same state in v1.
	snap := segPath(e, 6, snapshotSuffix)
	b, err := readFile(e.fs, snap, 1<<20)
	if err != nil || string(b[:4]) != snapshotMagicV2 {
		t.Fatalf("Close wrote %q, %v", b[:4], err)
	}
	d, err := decodeProducerSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	v1 := encodeSnapshotV1(d.state, 6)
	rewriteFile(t, e.fs, snap, func([]byte) []byte { return v1 })
	back, err := decodeProducerSnapshot(v1)
	if err != nil || len(back.state.m) != 2 || back.state.m[4].TxnFirst != -1 || back.state.m[4].CoordEpoch != -1 || back.unrepl != nil {
		t.Fatalf("v1 decode: %+v %v", back, err)
	}
	l = e.open()
	// The producer state came from the v1 file: a retry is a duplicate.
	res, err := l.Append(mkBatch(t, spec{pid: 4, seq: 3, records: 2}), leader)
	if err != nil || !res.Duplicate {
		t.Fatalf("retry after loading a v1 snapshot: %+v %v", res, err)
	}
	// New state is written as v2 again, with transactions.
	r = newTxnRunner(t, l)
	r.seq[4] = 5
	r.run([]txnStep{txnData(4, 1)})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	b, err = readFile(e.fs, segPath(e, 7, snapshotSuffix), 1<<20)
	if err != nil || string(b[:4]) != snapshotMagicV2 {
		t.Fatalf("after reopen Close wrote %q, %v", b[:4], err)
	}
	l = e.open()
	if ps := l.Producers(); len(ps) != 2 || ps[0].TxnStartOffset != 6 {
		t.Fatalf("ongoing transaction lost: %+v", ps)
	}
}

func TestTxnSnapshotCodec(t *testing.T) {
	t.Parallel()
	p := newProducerState()
	p.update(mkHeader(1, 2, 0), marker{})
	e := p.m[1]
	e.TxnFirst, e.CoordEpoch = 40, 7
	unrepl := []completedTxn{{first: 3, last: 9}, {first: 12, last: 30}}
	b := p.encode(50, unrepl)
	d, err := decodeProducerSnapshot(b)
	if err != nil || d.offset != 50 || *d.state.m[1] != *e || !slices.Equal(d.unrepl, unrepl) {
		t.Fatalf("round trip: %+v %v", d, err)
	}
	if !bytes.Equal(d.state.encode(50, d.unrepl), b) {
		t.Fatal("re-encoding differs")
	}
	for i := range b {
		if _, err := decodeProducerSnapshot(b[:i]); err == nil {
			t.Fatalf("truncated to %d accepted", i)
		}
	}
}

// TestTxnRecoveryKeepsUnreplicated checks that a completed transaction
// whose marker is not yet below the high watermark still holds the LSO
// after a restart, whether the state comes from the Close snapshot or from
// a replay after a crash.
func TestTxnRecoveryKeepsUnreplicated(t *testing.T) {
	t.Parallel()
	for _, clean := range []bool{true, false} {
		mem := vfs.NewCrashableMem()
		e := newEnv(t, mem, Config{})
		l := e.open()
		r := newTxnRunner(t, l)
		r.run([]txnStep{setHW(0), plain(1), txnData(1, 2), setHW(3), commitOf(1), plain(1), setHW(3).lso(1)})
		if err := l.checkpointHighWatermark(); err != nil {
			t.Fatal(err)
		}
		if err := l.Flush(); err != nil {
			t.Fatal(err)
		}
		fsys := vfs.FS(mem)
		if clean {
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		} else {
			fsys = mem.CrashClone()
		}
		l2, err := Open(e.dir, Options{FS: fsys, Clock: e.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		if hw, lso := l2.HighWatermark(), l2.LastStableOffset(); hw != 3 || lso != 1 {
			t.Fatalf("clean=%v: after reopen HW %d LSO %d, want 3 and 1 (marker at 3 not replicated)", clean, hw, lso)
		}
		l2.SetHighWatermark(4)
		if lso := l2.LastStableOffset(); lso != 4 {
			t.Fatalf("clean=%v: LSO %d once the HW passed the marker", clean, lso)
		}
		_ = l2.Close()
	}
}

// abortedLog builds a closed log whose aborted transactions spread over
// several segments and returns its FS (everything synced) and entries.
func abortedLog(t *testing.T) (*vfs.MemFS, *env, []AbortedTxn, []int64) {
	t.Helper()
	mem := vfs.NewCrashableMem()
	e := newEnv(t, mem, Config{SegmentBytes: 500})
	l := e.open()
	r := newTxnRunner(t, l)
	for i := range 12 {
		pid := int64(1 + i%3)
		r.run([]txnStep{txnData(pid, 1), plain(1), txnData(pid%3+1, 1)})
		if i%2 == 0 {
			r.run([]txnStep{abortOf(pid)})
		} else {
			r.run([]txnStep{commitOf(pid)})
		}
	}
	want := l.AbortedTransactions(0, math.MaxInt64)
	segs := l.Segments()
	if len(want) < 6 || len(segs) < 4 {
		t.Fatalf("setup: %d aborted, segments %v", len(want), segs)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return mem, e, want, segs
}

func TestTxnIndexDamageRebuilt(t *testing.T) {
	t.Parallel()
	entry := func(a AbortedTxn) []byte { return encodeAbortedTxn(nil, a) }
	cases := []struct {
		name   string
		damage func(b []byte) []byte
	}{
		{"torn mid-entry", func(b []byte) []byte { return b[:len(b)-5] }},
		{"zero-filled tail", func(b []byte) []byte { return append(b, make([]byte, 2*abortedTxnSize+3)...) }},
		{"entry beyond the segment", func(b []byte) []byte {
			return append(b, entry(AbortedTxn{ProducerID: 1, FirstOffset: 1, LastOffset: 1 << 40, LastStableOffset: 1})...)
		}},
		{"bad version", func(b []byte) []byte { b[0] = 1; return b }},
		{"first after last", func(b []byte) []byte {
			binary.BigEndian.PutUint64(b[10:], 1<<50)
			return b
		}},
		{"out of order", func(b []byte) []byte { return append(b[abortedTxnSize:], b[:abortedTxnSize]...) }},
		{"garbage appended", func(b []byte) []byte { return append(b, bytes.Repeat([]byte{0xa5}, 40)...) }},
		{"emptied", func([]byte) []byte { return []byte{0xff} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mem, e, want, segs := abortedLog(t)
			// Damage the index of the second segment that has entries
			// (a closed one, below the recovery point) and of the last.
			var damaged []string
			for _, base := range segs {
				path := segPath(e, base, txnIndexSuffix)
				if _, err := mem.Stat(path); err != nil {
					continue
				}
				damaged = append(damaged, path)
			}
			if len(damaged) < 3 {
				t.Fatalf("only %d segments have aborted transactions", len(damaged))
			}
			for _, path := range []string{damaged[1], damaged[len(damaged)-1]} {
				rewriteFile(t, mem, path, func(b []byte) []byte {
					if len(b) < 2*abortedTxnSize {
						b = append(b, b...) // out of order needs two entries
					}
					return tc.damage(b)
				})
			}
			for round := range 2 {
				l, err := Open(e.dir, e.options())
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				if got := l.AbortedTransactions(0, math.MaxInt64); !slices.Equal(got, want) {
					t.Fatalf("round %d: aborted\n got %+v\nwant %+v", round, got, want)
				}
				for _, path := range damaged {
					if size := fileSize(t, mem, path); size%abortedTxnSize != 0 {
						t.Fatalf("round %d: %s left with %d bytes", round, path, size)
					}
				}
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestTxnIndexRebuiltWithoutSnapshots removes every producer snapshot and
// damages an index below the recovery point: recovery replays the whole
// log to rebuild it.
func TestTxnIndexRebuiltWithoutSnapshots(t *testing.T) {
	t.Parallel()
	mem, e, want, segs := abortedLog(t)
	ents, err := mem.ReadDir(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		if _, ok := parseSegmentName(ent.Name(), snapshotSuffix); ok {
			if err := mem.Remove(e.dir + "/" + ent.Name()); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, base := range segs {
		path := segPath(e, base, txnIndexSuffix)
		if _, err := mem.Stat(path); err == nil {
			rewriteFile(t, mem, path, func(b []byte) []byte { b[0] = 9; return b })
			break
		}
	}
	l := e.open()
	if got := l.AbortedTransactions(0, math.MaxInt64); !slices.Equal(got, want) {
		t.Fatalf("aborted\n got %+v\nwant %+v", got, want)
	}
}

// TestTxnRecoveryTornTail crashes after a synced transaction and an
// unsynced one: the synced abort survives with its index entry, the
// unsynced batches and their entry are gone, and the transaction whose
// marker was lost is ongoing again.
func TestTxnRecoveryTornTail(t *testing.T) {
	t.Parallel()
	mem := vfs.NewCrashableMem()
	e := newEnv(t, mem, Config{SegmentBytes: 300})
	l := e.open()
	r := newTxnRunner(t, l)
	r.run([]txnStep{txnData(1, 2), txnData(2, 1), plain(1), abortOf(1), txnData(3, 1)})
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	synced := l.LogEndOffset()
	wantAborted := l.AbortedTransactions(0, math.MaxInt64)
	r.run([]txnStep{abortOf(2), txnData(1, 1), commitOf(3), abortOf(1)})
	if len(l.AbortedTransactions(0, math.MaxInt64)) != 3 {
		t.Fatal("setup")
	}
	l2, err := Open(e.dir, Options{FS: mem.CrashClone(), Clock: e.clock.Now, Config: e.cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if l2.LogEndOffset() != synced {
		t.Fatalf("recovered to %d, synced %d", l2.LogEndOffset(), synced)
	}
	if got := l2.AbortedTransactions(0, math.MaxInt64); !slices.Equal(got, wantAborted) {
		t.Fatalf("aborted %+v, want %+v", got, wantAborted)
	}
	ongoing := map[int64]int64{}
	for _, p := range l2.Producers() {
		ongoing[p.ProducerID] = p.TxnStartOffset
	}
	if ongoing[2] != 2 || ongoing[3] != 5 || ongoing[1] != -1 {
		t.Fatalf("ongoing after recovery %v", ongoing)
	}
	if lso := l2.LastStableOffset(); lso != 2 {
		t.Fatalf("LSO %d", lso)
	}
}
