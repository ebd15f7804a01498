package storage

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/sluicedev/sluice/storage/vfs"
)

// Index entry sizes (Kafka's OffsetIndex and TimeIndex).
const (
	offsetEntrySize = 8  // relative offset int32 + position int32
	timeEntrySize   = 12 // timestamp int64 + relative offset int32
)

// index is one sparse index file. While its segment is active the entries
// are resident in mem and only written to the file at roll or close
// (recovery rebuilds the active segment's index from the log anyway); a
// closed segment's index is read from the file, so memory stays bounded by
// the active segments.
type index struct {
	f         vfs.File
	path      string
	entrySize int
	resident  bool
	mem       []byte // every entry, when resident
	written   int    // bytes of mem already in the file
	n         int    // number of entries
}

// view is an immutable snapshot of an index that readers use without
// holding Log.mu. Entries are only ever appended to mem or rewritten after
// truncation, which bumps Log.truncGen so readers retry.
type indexView struct {
	mem       []byte
	f         vfs.File
	n         int
	entrySize int
}

func (ix *index) view() indexView {
	if ix.resident {
		return indexView{mem: ix.mem[:ix.n*ix.entrySize], n: ix.n, entrySize: ix.entrySize}
	}
	return indexView{f: ix.f, n: ix.n, entrySize: ix.entrySize}
}

// entry copies entry i into buf (len entrySize).
func (v indexView) entry(i int, buf []byte) error {
	if v.mem != nil {
		copy(buf, v.mem[i*v.entrySize:])
		return nil
	}
	if _, err := v.f.ReadAt(buf, int64(i*v.entrySize)); err != nil {
		return fmt.Errorf("read index entry %d: %w", i, err)
	}
	return nil
}

// search returns the largest i whose entry satisfies below (entries are
// sorted so below is true for a prefix), or -1, with that entry in buf.
func (v indexView) search(buf []byte, below func(e []byte) bool) (int, error) {
	lo, hi := 0, v.n // invariant: entries < lo satisfy below, entries >= hi do not
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if err := v.entry(mid, buf); err != nil {
			return -1, err
		}
		if below(buf) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == 0 {
		return -1, nil
	}
	return lo - 1, v.entry(lo-1, buf)
}

// lookupOffset returns the position of the last indexed batch whose last
// offset is <= rel, and that batch's relative last offset, or (0, -1) when
// the scan must start at the beginning of the segment.
func (v indexView) lookupOffset(rel int64) (pos int64, lastRel int64, err error) {
	var buf [offsetEntrySize]byte
	i, err := v.search(buf[:], func(e []byte) bool { return int64(int32(binary.BigEndian.Uint32(e))) <= rel })
	if err != nil || i < 0 {
		return 0, -1, err
	}
	return int64(int32(binary.BigEndian.Uint32(buf[4:]))), int64(int32(binary.BigEndian.Uint32(buf[:]))), nil
}

// lookupTime returns the relative offset of the last time-index entry whose
// timestamp is below ts: every batch up to that offset has a smaller
// timestamp, so a search for ts may start there. ok is false when it must
// start at the beginning of the segment.
func (v indexView) lookupTime(ts int64) (rel int64, ok bool, err error) {
	var buf [timeEntrySize]byte
	i, err := v.search(buf[:], func(e []byte) bool { return int64(binary.BigEndian.Uint64(e)) < ts })
	if err != nil || i < 0 {
		return 0, false, err
	}
	return int64(int32(binary.BigEndian.Uint32(buf[8:]))), true, nil
}

// last returns the final entry, if any.
func (ix *index) last(buf []byte) (bool, error) {
	if ix.n == 0 {
		return false, nil
	}
	return true, ix.view().entry(ix.n-1, buf)
}

func (ix *index) appendOffset(rel int64, pos int64) {
	ix.mem = binary.BigEndian.AppendUint32(ix.mem, uint32(int32(rel)))
	ix.mem = binary.BigEndian.AppendUint32(ix.mem, uint32(int32(pos)))
	ix.n++
}

func (ix *index) appendTime(ts int64, rel int64) {
	ix.mem = binary.BigEndian.AppendUint64(ix.mem, uint64(ts))
	ix.mem = binary.BigEndian.AppendUint32(ix.mem, uint32(int32(rel)))
	ix.n++
}

// flush writes the resident entries not yet in the file.
func (ix *index) flush() error {
	if !ix.resident || ix.written == len(ix.mem) {
		return nil
	}
	if _, err := ix.f.Write(ix.mem[ix.written:]); err != nil {
		return fmt.Errorf("write %s: %w", ix.path, err)
	}
	ix.written = len(ix.mem)
	return nil
}

// rewrite replaces the file contents with the resident entries.
func (ix *index) rewrite() error {
	if err := ix.f.Truncate(0); err != nil {
		return fmt.Errorf("truncate %s: %w", ix.path, err)
	}
	ix.written = 0
	return ix.flush()
}

// reset makes the index resident and empty, as for a fresh active segment.
// It starts a new array: readers may still hold views of the old one.
func (ix *index) reset() {
	ix.resident, ix.mem, ix.written, ix.n = true, nil, 0, 0
}

// evict drops the resident copy after flush; lookups then read the file.
func (ix *index) evict() {
	ix.resident, ix.mem, ix.written = false, nil, 0
}

// sane checks a file-backed index cheaply, as Kafka's sanityCheck does: a
// whole number of entries, and first and last entries within the segment
// (relative offsets in [0, MaxInt32], positions below logSize) and in
// order. It is not proof the index is right; readers also validate every
// position they get from it.
func (ix *index) sane(logSize int64) bool {
	st, err := ix.f.Stat()
	if err != nil || st.Size()%int64(ix.entrySize) != 0 || st.Size()/int64(ix.entrySize) > math.MaxInt32 {
		return false
	}
	ix.n = int(st.Size() / int64(ix.entrySize))
	if ix.n == 0 {
		return true
	}
	first := make([]byte, ix.entrySize)
	last := make([]byte, ix.entrySize)
	v := ix.view()
	if v.entry(0, first) != nil || v.entry(ix.n-1, last) != nil {
		return false
	}
	be := binary.BigEndian
	if ix.entrySize == offsetEntrySize {
		r0, p0 := int32(be.Uint32(first)), int32(be.Uint32(first[4:]))
		r1, p1 := int32(be.Uint32(last)), int32(be.Uint32(last[4:]))
		return r0 >= 0 && p0 >= 0 && r1 >= r0 && p1 >= p0 && int64(p1) < logSize
	}
	t0, r0 := int64(be.Uint64(first)), int32(be.Uint32(first[8:]))
	t1, r1 := int64(be.Uint64(last)), int32(be.Uint32(last[8:]))
	return r0 >= 0 && r1 >= r0 && t1 >= t0
}
