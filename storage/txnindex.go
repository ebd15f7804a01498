package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"

	"github.com/sluicedev/sluice/storage/vfs"
)

// txnIndexSuffix names a segment's aborted-transaction index (Kafka's
// TransactionIndex).
const txnIndexSuffix = ".txnindex"

// abortedTxnSize is one .txnindex entry (Kafka's AbortedTxn): int16
// version 0, int64 producer id, first offset, last offset, last stable
// offset, big endian.
const (
	abortedTxnSize    = 34
	abortedTxnVersion = 0
)

// maxResidentTxns bounds the entries an active segment keeps in memory;
// past it they are read from the file like a closed segment's.
const maxResidentTxns = 1 << 15

// errTxnIndex marks a .txnindex file that fails validation; recovery
// rebuilds it from the log and never returns this error. errTxnIndexTorn
// (which wraps it) marks one whose damage is only a torn tail: a partial
// last entry or zero bytes after the valid entries, as a crash during an
// unsynced append leaves.
var (
	errTxnIndex     = errors.New("storage: bad transaction index")
	errTxnIndexTorn = fmt.Errorf("%w: torn tail", errTxnIndex)
)

func encodeAbortedTxn(b []byte, a AbortedTxn) []byte {
	be := binary.BigEndian
	b = be.AppendUint16(b, abortedTxnVersion)
	b = be.AppendUint64(b, uint64(a.ProducerID))
	b = be.AppendUint64(b, uint64(a.FirstOffset))
	b = be.AppendUint64(b, uint64(a.LastOffset))
	return be.AppendUint64(b, uint64(a.LastStableOffset))
}

// decodeAbortedTxn reads one entry; b holds at least abortedTxnSize bytes.
func decodeAbortedTxn(b []byte) (AbortedTxn, uint16) {
	be := binary.BigEndian
	return AbortedTxn{
		ProducerID:       int64(be.Uint64(b[2:])),
		FirstOffset:      int64(be.Uint64(b[10:])),
		LastOffset:       int64(be.Uint64(b[18:])),
		LastStableOffset: int64(be.Uint64(b[26:])),
	}, be.Uint16(b)
}

// validAbortedTxn reports whether a may follow prev (the previous entry of the
// same file, or a zero value with LastOffset below base) in a segment
// covering [base, next): the rules Kafka's TransactionIndex.sanityCheck
// and append enforce, plus bounds every entry the log writes satisfies.
func validAbortedTxn(a, prev AbortedTxn, version uint16, base, next int64) bool {
	return version == abortedTxnVersion && a.ProducerID >= 0 && a.FirstOffset >= 0 &&
		a.FirstOffset <= a.LastOffset && a.LastOffset >= base && a.LastOffset < next &&
		a.LastOffset > prev.LastOffset && a.LastStableOffset >= 0 && a.LastStableOffset <= a.LastOffset+1
}

// txnIndex is one segment's aborted-transaction index: entries in marker
// (LastOffset) order. The file exists only once the segment has had an
// entry. The active segment's entries are also kept in memory (up to
// maxResidentTxns), like its offset index; readers of closed segments use
// ReadAt. The summary fields let AbortedTransactions skip segments without
// reading them. Fields are guarded by Log.mu.
type txnIndex struct {
	path     string
	f        vfs.File // nil while the segment has no file
	n        int
	resident bool
	mem      []byte // every entry, when resident
	minFirst int64  // smallest FirstOffset, math.MaxInt64 when n == 0
	last     AbortedTxn
	dirty    bool // the file has writes not yet fsynced
}

func (x *txnIndex) clear() {
	x.n, x.mem, x.minFirst, x.last = 0, nil, math.MaxInt64, AbortedTxn{}
}

// txnIndexView is an immutable snapshot of a txnIndex for readers that do
// not hold Log.mu; like indexView, entries are only appended or cut by a
// truncation, which bumps Log.truncGen so readers retry.
type txnIndexView struct {
	mem      []byte
	f        vfs.File
	n        int
	minFirst int64
	last     AbortedTxn
}

func (x *txnIndex) view() txnIndexView {
	v := txnIndexView{f: x.f, n: x.n, minFirst: x.minFirst, last: x.last}
	if x.resident {
		v.mem = x.mem[:x.n*abortedTxnSize]
	}
	return v
}

// entry reads entry i into buf (len abortedTxnSize).
func (v txnIndexView) entry(i int, buf []byte) (AbortedTxn, error) {
	if v.mem != nil {
		a, _ := decodeAbortedTxn(v.mem[i*abortedTxnSize:])
		return a, nil
	}
	if _, err := v.f.ReadAt(buf, int64(i)*abortedTxnSize); err != nil {
		return AbortedTxn{}, fmt.Errorf("read transaction index entry %d: %w", i, err)
	}
	a, _ := decodeAbortedTxn(buf)
	return a, nil
}

// firstAtOrAfter returns the index of the first entry with LastOffset >=
// off (n if none), by binary search.
func (v txnIndexView) firstAtOrAfter(off int64) (int, error) {
	var buf []byte
	if v.mem == nil {
		buf = make([]byte, abortedTxnSize) // ReadAt's argument escapes
	}
	lo, hi := 0, v.n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		a, err := v.entry(mid, buf)
		if err != nil {
			return 0, err
		}
		if a.LastOffset < off {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// collect appends the entries with LastOffset >= from and FirstOffset <
// to. done reports that an entry's LastStableOffset reached to: no later
// entry, here or in a later segment, can start below to (Kafka's
// TransactionIndex.collectAbortedTxns).
func (v txnIndexView) collect(dst []AbortedTxn, from, to int64) ([]AbortedTxn, bool, error) {
	i, err := v.firstAtOrAfter(from)
	if err != nil {
		return dst, false, err
	}
	var chunk []byte
	if v.mem == nil && i < v.n {
		chunk = make([]byte, min(v.n-i, 64)*abortedTxnSize)
	}
	for i < v.n {
		k := min(v.n-i, 64)
		var raw []byte
		if v.mem != nil {
			raw = v.mem[i*abortedTxnSize : (i+k)*abortedTxnSize]
		} else {
			raw = chunk[:k*abortedTxnSize]
			if _, err := v.f.ReadAt(raw, int64(i)*abortedTxnSize); err != nil {
				return dst, false, fmt.Errorf("read transaction index: %w", err)
			}
		}
		for j := range k {
			a, _ := decodeAbortedTxn(raw[j*abortedTxnSize:])
			if a.FirstOffset < to {
				dst = append(dst, a)
			}
			if a.LastStableOffset >= to {
				return dst, true, nil
			}
		}
		i += k
	}
	return dst, false, nil
}

// all returns every entry.
func (v txnIndexView) all() ([]AbortedTxn, error) {
	out, _, err := v.collect(make([]AbortedTxn, 0, v.n), math.MinInt64, math.MaxInt64)
	return out, err
}

// append adds an entry, creating the file on first use (the caller marks
// the directory dirty when created is set). The write reaches the page
// cache; the next flush round fsyncs it.
func (x *txnIndex) append(fsys vfs.FS, a AbortedTxn) (created bool, err error) {
	if x.f == nil {
		if x.f, err = fsys.OpenFile(x.path, os.O_RDWR|os.O_CREATE|os.O_APPEND|os.O_TRUNC, 0o644); err != nil {
			return false, fmt.Errorf("create %s: %w", x.path, err)
		}
		created = true
	}
	var buf [abortedTxnSize]byte
	b := encodeAbortedTxn(buf[:0], a)
	if _, err := x.f.Write(b); err != nil {
		return created, fmt.Errorf("write %s: %w", x.path, err)
	}
	if x.resident {
		if x.n < maxResidentTxns {
			x.mem = append(x.mem, b...)
		} else {
			x.resident, x.mem = false, nil
		}
	}
	x.n++
	x.minFirst = min(x.minFirst, a.FirstOffset)
	x.last = a
	x.dirty = true
	return created, nil
}

// makeResident loads the entries into memory for an active segment.
func (x *txnIndex) makeResident() error {
	x.resident, x.mem = true, nil
	if x.n == 0 {
		return nil
	}
	if x.n > maxResidentTxns {
		x.resident = false
		return nil
	}
	mem := make([]byte, x.n*abortedTxnSize)
	if _, err := x.f.ReadAt(mem, 0); err != nil {
		x.resident = false
		return fmt.Errorf("read %s: %w", x.path, err)
	}
	x.mem = mem
	return nil
}

// evict drops the resident copy when the segment is closed.
func (x *txnIndex) evict() { x.resident, x.mem = false, nil }

// rewrite replaces the file's contents with entries (removing nothing but
// bytes: an existing file is kept, possibly empty) and recomputes the
// summary. A segment without entries and without a file stays without one.
func (x *txnIndex) rewrite(fsys vfs.FS, entries []AbortedTxn) (created bool, err error) {
	resident := x.resident
	x.clear()
	x.resident = resident
	if x.f == nil && len(entries) == 0 {
		return false, nil
	}
	if x.f == nil {
		if x.f, err = fsys.OpenFile(x.path, os.O_RDWR|os.O_CREATE|os.O_APPEND|os.O_TRUNC, 0o644); err != nil {
			return false, fmt.Errorf("create %s: %w", x.path, err)
		}
		created = true
	} else if err := x.f.Truncate(0); err != nil {
		return false, fmt.Errorf("truncate %s: %w", x.path, err)
	}
	buf := make([]byte, 0, len(entries)*abortedTxnSize)
	for _, a := range entries {
		buf = encodeAbortedTxn(buf, a)
		x.minFirst = min(x.minFirst, a.FirstOffset)
		x.last = a
	}
	x.n = len(entries)
	if _, err := x.f.Write(buf); err != nil {
		return created, fmt.Errorf("write %s: %w", x.path, err)
	}
	if x.resident {
		x.mem = buf
		if x.n > maxResidentTxns {
			x.resident, x.mem = false, nil
		}
	}
	x.dirty = true
	return created, nil
}

// truncateTo drops the entries whose marker is at or after off (Kafka's
// TransactionIndex.truncateTo); the file keeps the rest.
func (x *txnIndex) truncateTo(fsys vfs.FS, off int64) error {
	if x.n == 0 || x.last.LastOffset < off {
		return nil
	}
	v := x.view()
	i, err := v.firstAtOrAfter(off)
	if err != nil {
		return err
	}
	v.n = i
	kept, err := v.all()
	if err != nil {
		return err
	}
	_, err = x.rewrite(fsys, kept)
	return err
}

// load opens and validates an existing .txnindex of the segment [base,
// next). A missing file means no entries. A file that fails validation is
// reported with errTxnIndex and never trusted beyond its valid prefix:
// n and the summary then describe the entries before the first invalid
// one (or before a torn partial entry), and the handle stays open so a
// rebuild can rewrite the file.
func (x *txnIndex) load(fsys vfs.FS, base, next int64) error {
	x.clear()
	if x.f == nil {
		f, err := fsys.OpenFile(x.path, os.O_RDWR|os.O_APPEND, 0o644)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("open %s: %w", x.path, err)
		}
		x.f = f
	}
	st, err := x.f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", x.path, err)
	}
	n := int(min(st.Size()/abortedTxnSize, math.MaxInt32))
	prev := AbortedTxn{LastOffset: base - 1}
	var chunk [256 * abortedTxnSize]byte
	var bad error
	for i := 0; i < n && bad == nil; {
		k := min(n-i, 256)
		raw := chunk[:k*abortedTxnSize]
		if got, err := x.f.ReadAt(raw, int64(i)*abortedTxnSize); got < len(raw) && err != nil && !errors.Is(err, io.EOF) {
			x.clear()
			return fmt.Errorf("read %s: %w", x.path, err)
		} else if got < len(raw) {
			bad = fmt.Errorf("%w: %s shrank while read", errTxnIndex, x.path)
			break
		}
		for j := range k {
			a, version := decodeAbortedTxn(raw[j*abortedTxnSize:])
			if !validAbortedTxn(a, prev, version, base, next) {
				bad = fmt.Errorf("%w: %s entry %d %+v (version %d) invalid for segment [%d, %d)",
					errTxnIndex, x.path, i+j, a, version, base, next)
				break
			}
			x.minFirst = min(x.minFirst, a.FirstOffset)
			x.n++
			prev = a
		}
		i += k
	}
	if x.n > 0 {
		x.last = prev
	}
	if bad == nil && st.Size() == int64(x.n)*abortedTxnSize {
		return nil
	}
	if x.tornTail(int64(x.n)*abortedTxnSize, st.Size(), prev, next) {
		return fmt.Errorf("%w: %s is %d bytes, %d valid entries", errTxnIndexTorn, x.path, st.Size(), x.n)
	}
	if bad == nil {
		bad = fmt.Errorf("%w: %s is %d bytes, %d valid entries", errTxnIndex, x.path, st.Size(), x.n)
	}
	return bad
}

// tornTail reports whether file bytes [from, to), after the valid entries
// (the last one prev), are what a crash during unsynced appends leaves: a
// partial entry, zero bytes, or well-formed entries for markers at or
// beyond the segment's recovered end next (whose batches the crash lost).
func (x *txnIndex) tornTail(from, to int64, prev AbortedTxn, next int64) bool {
	var buf [abortedTxnSize]byte
	for at := from; to-at >= abortedTxnSize; at += abortedTxnSize {
		if got, err := x.f.ReadAt(buf[:], at); got < len(buf) && err != nil {
			return false
		}
		if buf == [abortedTxnSize]byte{} {
			continue
		}
		a, version := decodeAbortedTxn(buf[:])
		if !validAbortedTxn(a, prev, version, math.MinInt64, math.MaxInt64) || a.LastOffset < next {
			return false
		}
		prev = a
	}
	return true
}

// validEnd is the offset up to which a loaded index's entries are known
// complete: after its last valid entry's marker, or its segment's base.
func (x *txnIndex) validEnd(base int64) int64 {
	if x.n == 0 {
		return base
	}
	return x.last.LastOffset + 1
}
