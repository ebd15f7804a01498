package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/sluicedev/sluice/protocol/batch"
	"github.com/sluicedev/sluice/storage/vfs"
)

// File name suffixes of a segment, as in Kafka.
const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
)

// segmentName is the 20-digit zero-padded base offset Kafka uses, so names
// sort in offset order.
func segmentName(base int64, suffix string) string {
	return fmt.Sprintf("%020d%s", base, suffix)
}

// parseSegmentName returns the base offset encoded in a file name with the
// given suffix.
func parseSegmentName(name, suffix string) (int64, bool) {
	stem, ok := strings.CutSuffix(name, suffix)
	if !ok || len(stem) != 20 {
		return 0, false
	}
	v, err := strconv.ParseInt(stem, 10, 64)
	return v, err == nil && v >= 0
}

// segment is one .log file with its two indexes. Fields below refs are
// guarded by Log.mu; the files themselves are safe for concurrent ReadAt.
type segment struct {
	base    int64
	logPath string
	log     vfs.File
	offIdx  index
	timeIdx index
	txn     txnIndex // aborted transactions whose markers are in this segment
	// refs counts holders: the Log's segment list holds one, and every
	// reader or flush round in flight holds one. The files close when it
	// reaches zero, so a segment deleted by retention stays readable by
	// readers that already found it.
	refs atomic.Int32

	size        int64 // bytes in the .log file
	next        int64 // offset after the last batch (base when empty)
	maxTs       int64 // largest MaxTimestamp, -1 when none
	maxTsOffset int64 // last offset of the batch holding maxTs
	rollTs      int64 // segment.ms basis: first batch's timestamp, -1 when empty
	sinceIndex  int64 // bytes appended since the last offset index entry
	dirty       bool  // .log has writes not yet fsynced
	idxDirty    bool  // index files have writes not yet fsynced
	// recoveryCut is set when Open truncated this segment's data: before
	// the crash it held more (possibly past the recovery point).
	recoveryCut bool
}

// openSegmentFiles opens (creating with create) the three files of a
// segment. Indexes start file-backed; callers make them resident.
func openSegmentFiles(fsys vfs.FS, dir string, base int64, create bool) (*segment, error) {
	flag := os.O_RDWR | os.O_APPEND
	if create {
		flag |= os.O_CREATE | os.O_TRUNC
	}
	s := &segment{base: base, next: base, maxTs: -1, maxTsOffset: -1, rollTs: -1}
	s.logPath = filepath.Join(dir, segmentName(base, logSuffix))
	var err error
	if s.log, err = fsys.OpenFile(s.logPath, flag, 0o644); err != nil {
		return nil, fmt.Errorf("open segment %s: %w", s.logPath, err)
	}
	// Index files are always created if missing: recovery rebuilds them.
	idxFlag := os.O_RDWR | os.O_APPEND | os.O_CREATE
	if create {
		idxFlag |= os.O_TRUNC
	}
	s.offIdx = index{path: filepath.Join(dir, segmentName(base, indexSuffix)), entrySize: offsetEntrySize}
	s.timeIdx = index{path: filepath.Join(dir, segmentName(base, timeIndexSuffix)), entrySize: timeEntrySize}
	for _, ix := range []*index{&s.offIdx, &s.timeIdx} {
		if ix.f, err = fsys.OpenFile(ix.path, idxFlag, 0o644); err != nil {
			s.closeFiles()
			return nil, fmt.Errorf("open index %s: %w", ix.path, err)
		}
	}
	s.txn = txnIndex{path: filepath.Join(dir, segmentName(base, txnIndexSuffix))}
	s.txn.clear()
	if create {
		// A new segment has no aborted transactions; a file left by an
		// earlier segment at this base must not be taken for its index.
		if err := fsys.Remove(s.txn.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.closeFiles()
			return nil, fmt.Errorf("remove stale %s: %w", s.txn.path, err)
		}
	}
	s.refs.Store(1)
	return s, nil
}

func (s *segment) closeFiles() error {
	var errs []error
	for _, f := range []vfs.File{s.log, s.offIdx.f, s.timeIdx.f, s.txn.f} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	return errors.Join(errs...)
}

// acquire takes a reference; callers hold Log.mu, which keeps the list's
// reference alive while they do.
func (s *segment) acquire() { s.refs.Add(1) }

// release drops a reference and closes the files on the last one.
func (s *segment) release() {
	if s.refs.Add(-1) == 0 {
		_ = s.closeFiles() // read-only by now; nothing to lose
	}
}

// removeFiles unlinks the segment's files; open handles keep working.
func (s *segment) removeFiles(fsys vfs.FS) error {
	var errs []error
	for _, p := range []string{s.logPath, s.offIdx.path, s.timeIdx.path, s.txn.path} {
		if err := fsys.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// resetActive makes a new, empty segment's indexes resident, as for the
// active segment.
func (s *segment) resetActive() {
	s.offIdx.reset()
	s.timeIdx.reset()
	s.txn.resident, s.txn.mem = true, nil
}

// resetState clears what trackBatch accumulates, before a rebuild.
func (s *segment) resetState() {
	s.size, s.next, s.maxTs, s.maxTsOffset, s.rollTs, s.sinceIndex = 0, s.base, -1, -1, -1, 0
	s.offIdx.reset()
	s.timeIdx.reset()
}

// trackBatch updates sizes, timestamps and the resident indexes for a
// batch written at pos. It follows Kafka's LogSegment.append: the max
// timestamp is updated first, then an offset index entry (last offset,
// position) and a time index entry (max timestamp so far) are added once
// more than interval bytes were written since the previous entry.
func (s *segment) trackBatch(h *batch.Header, pos int64, interval int64, nowMs int64) {
	if s.rollTs < 0 {
		s.rollTs = h.MaxTimestamp
		if s.rollTs < 0 {
			s.rollTs = nowMs
		}
	}
	if h.MaxTimestamp > s.maxTs {
		s.maxTs, s.maxTsOffset = h.MaxTimestamp, h.LastOffset()
	}
	if s.sinceIndex > interval {
		s.offIdx.appendOffset(h.LastOffset()-s.base, pos)
		s.maybeAppendTime()
		s.sinceIndex = 0
	}
	size := int64(h.Size())
	s.size = pos + size
	s.sinceIndex += size
	s.next = h.NextOffset()
}

// maybeAppendTime adds a time index entry if the max timestamp grew since
// the last entry.
func (s *segment) maybeAppendTime() {
	if s.maxTs < 0 {
		return
	}
	var buf [timeEntrySize]byte
	if ok, _ := s.timeIdx.last(buf[:]); ok && int64(binary.BigEndian.Uint64(buf[:])) >= s.maxTs {
		return
	}
	s.timeIdx.appendTime(s.maxTs, s.maxTsOffset-s.base)
}

// deactivate turns the active segment into a closed one at roll: a final
// time index entry, both indexes written to their files (fsynced by the
// next flush round) and dropped from memory.
func (s *segment) deactivate() error {
	s.maybeAppendTime()
	for _, ix := range []*index{&s.offIdx, &s.timeIdx} {
		if err := ix.flush(); err != nil {
			return err
		}
		ix.evict()
	}
	s.txn.evict()
	s.idxDirty = true
	return nil
}

// fitsRelative reports whether off can be stored as an int32 offset
// relative to the segment base.
func (s *segment) fitsRelative(off int64) bool { return off-s.base <= math.MaxInt32 }
