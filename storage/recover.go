package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
)

// Open opens or creates the log in dir and recovers it: it drops a torn or
// corrupt tail, rebuilds missing or damaged indexes, reloads the
// leader-epoch cache and producer state, and fsyncs whatever it repaired.
// See doc.go for exactly which segments are scanned and what happens to
// damage in a segment other than the last. Recovery() reports the result.
func Open(dir string, opts Options) (*Log, error) {
	l := newLog(dir, opts)
	if err := l.load(); err != nil {
		l.releaseSegments()
		return nil, fmt.Errorf("open log %s: %w", l.dir, err)
	}
	return l, nil
}

// dirListing is what load found in the partition directory.
type dirListing struct {
	logs      []int64
	snapshots []int64
	hasIndex  map[int64]bool // both .index and .timeindex exist
}

func (l *Log) listDir() (dirListing, error) {
	ents, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return dirListing{}, fmt.Errorf("list %s: %w", l.dir, err)
	}
	d := dirListing{hasIndex: map[int64]bool{}}
	idx, tidx, txn := map[int64]bool{}, map[int64]bool{}, map[int64]bool{}
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, tmpSuffix) {
			_ = l.fs.Remove(filepath.Join(l.dir, name)) // an interrupted atomic write
			continue
		}
		if b, ok := parseSegmentName(name, logSuffix); ok {
			d.logs = append(d.logs, b)
		} else if b, ok := parseSegmentName(name, indexSuffix); ok {
			idx[b] = true
		} else if b, ok := parseSegmentName(name, timeIndexSuffix); ok {
			tidx[b] = true
		} else if b, ok := parseSegmentName(name, snapshotSuffix); ok {
			d.snapshots = append(d.snapshots, b)
		} else if b, ok := parseSegmentName(name, txnIndexSuffix); ok {
			txn[b] = true
		}
	}
	slices.Sort(d.logs)
	slices.Sort(d.snapshots)
	for _, b := range d.logs {
		d.hasIndex[b] = idx[b] && tidx[b]
		delete(idx, b)
		delete(tidx, b)
		delete(txn, b)
	}
	for _, orphans := range []map[int64]bool{idx, tidx, txn} {
		for b := range orphans {
			for _, suf := range []string{indexSuffix, timeIndexSuffix, txnIndexSuffix} {
				_ = l.fs.Remove(filepath.Join(l.dir, segmentName(b, suf)))
			}
		}
	}
	return d, nil
}

// ensureDir creates the partition directory if needed and makes its entry
// durable in the parent.
func (l *Log) ensureDir() error {
	if _, err := l.fs.Stat(l.dir); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := l.fs.MkdirAll(l.dir, 0o755); err != nil {
		return err
	}
	return l.fs.SyncDir(filepath.Dir(l.dir))
}

// readStartCheckpoints loads the log start offset, recovery point and
// epoch cache. Unreadable files fall back to safe defaults: offset 0 and,
// for a lost epoch cache, a recovery point of 0 so every segment is
// scanned and the cache rebuilt from batch headers.
func (l *Log) readStartCheckpoints() (lso, rp int64) {
	read := func(name string) int64 {
		v, err := readOffsetCheckpoint(l.fs, l.dir, name)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			l.logger.Warn("storage: ignoring unreadable checkpoint", "file", name, "err", err)
		}
		return v
	}
	lso, rp = read(logStartCheckpoint), read(recoveryCheckpoint)
	rows, err := readCheckpoint(l.fs, l.dir, epochCheckpoint, 2)
	cache, ok := epochCacheFromRows(rows)
	if err != nil || !ok {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			l.logger.Warn("storage: leader-epoch checkpoint unreadable; rebuilding from the log", "err", err)
		}
		cache, rp = epochCache{}, 0
		l.mu.epochsDirty = true
	}
	l.mu.epochs = cache
	return lso, rp
}

// load runs recovery. It is called once, before the Log is shared.
func (l *Log) load() error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	if err := l.ensureDir(); err != nil {
		return fmt.Errorf("create dir: %w", err)
	}
	if err := l.recoverCleaner(); err != nil {
		return err
	}
	listing, err := l.listDir()
	if err != nil {
		return err
	}
	lso, rp := l.readStartCheckpoints()
	hw := l.readHighWatermarkCheckpoint()
	if len(listing.logs) == 0 {
		for _, off := range listing.snapshots {
			l.removeSnapshotLocked(off)
		}
		if err := l.initFresh(lso); err != nil {
			return err
		}
		return l.loadHighWatermarkLocked(hw)
	}
	for _, b := range listing.logs {
		seg, err := openSegmentFiles(l.fs, l.dir, b, false)
		if err != nil {
			return err
		}
		l.mu.segs = append(l.mu.segs, seg)
	}
	// Segments wholly below the log start offset were deleted by retention
	// or DeleteRecords before a crash undid the unsynced unlink; finish
	// the job so they cannot look like gaps.
	for len(l.mu.segs) > 1 && l.mu.segs[1].base <= lso {
		if err := l.mu.segs[0].removeFiles(l.fs); err != nil {
			return err
		}
		l.mu.segs[0].release()
		l.mu.segs = l.mu.segs[1:]
		l.mu.dirDirty = true
	}
	l.setLogStartLocked(max(lso, l.mu.segs[0].base))
	l.mu.recoveryPt = rp
	l.mu.snapshots = listing.snapshots
	if err := l.recoverSegments(rp, listing); err != nil {
		return err
	}
	return l.finishLoad(hw)
}

// initFresh creates the first segment of an empty log at base.
func (l *Log) initFresh(base int64) error {
	seg, err := openSegmentFiles(l.fs, l.dir, base, true)
	if err != nil {
		return err
	}
	seg.resetActive()
	l.mu.segs = []*segment{seg}
	l.mu.leo, l.mu.recoveryPt = base, base
	l.setLogStartLocked(base)
	l.leo.Store(base)
	l.syncedTo.Store(base)
	l.mu.epochsDirty, l.mu.dirDirty = true, true
	return nil
}

// recoverSegments brings every segment to a trusted state. Segments wholly
// below the recovery point are trusted after an index sanity check (and
// scanned if that fails); the segment holding the recovery point, every
// later one and always the last one are scanned with CRC checks.
func (l *Log) recoverSegments(rp int64, listing dirListing) error {
	k := 0
	for i, s := range l.mu.segs {
		if s.base <= rp {
			k = i
		}
	}
	for i := 0; i < len(l.mu.segs); i++ {
		s := l.mu.segs[i]
		if i < k {
			if listing.hasIndex[s.base] && l.trustClosed(s, l.mu.segs[i+1].base) {
				continue
			}
			l.recovery.RebuiltIndexes++
		}
		if i > 0 && i >= k && s.base > l.mu.segs[i-1].next && s.base > l.cleaner.ck.compactedTo {
			// A gap: this segment's file survived a crash but data before
			// it did not. Nothing from here on can be part of the log.
			// (Compaction leaves legitimate gaps below compactedTo, where
			// every segment was fsynced by the cleaner.)
			l.dropFrom(i, "segment starts after a gap")
			break
		}
		if i == k {
			// Epochs are rebuilt from the scanned suffix's batch headers.
			if l.mu.epochs.truncateFromEnd(s.base) {
				l.mu.epochsDirty = true
			}
		}
		if err := l.scanAndRepair(i, i >= k); err != nil {
			return err
		}
	}
	l.mu.leo = l.mu.segs[len(l.mu.segs)-1].next
	l.leo.Store(l.mu.leo)
	l.recovery.Clean = rp == l.mu.leo && l.recovery.TruncatedBytes == 0
	return nil
}

// trustClosed loads a closed segment that needs no scan. It returns false
// when its indexes look damaged, so the caller rebuilds them.
func (l *Log) trustClosed(s *segment, nextBase int64) bool {
	st, err := s.log.Stat()
	if err != nil || !s.offIdx.sane(st.Size()) || !s.timeIdx.sane(st.Size()) {
		return false
	}
	s.size, s.next = st.Size(), nextBase
	var buf [timeEntrySize]byte
	if ok, err := s.timeIdx.last(buf[:]); err != nil {
		return false
	} else if ok {
		s.maxTs = int64(binary.BigEndian.Uint64(buf[:]))
		s.maxTsOffset = s.base + int64(int32(binary.BigEndian.Uint32(buf[8:])))
	}
	return true
}

// scanAndRepair reads segment i batch by batch with CRC checks, rebuilding
// its indexes; withEpochs feeds batch epochs into the epoch cache. At the
// first invalid batch it truncates the segment; if the segment is not the
// last, that is corruption in the middle of the log: with StrictRecovery
// Open fails, otherwise every later segment is deleted (as Kafka's
// LogLoader does) and the damage is logged at error level.
func (l *Log) scanAndRepair(i int, withEpochs bool) error {
	s := l.mu.segs[i]
	l.recovery.ScannedSegments++
	st, err := s.log.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", s.logPath, err)
	}
	s.resetState()
	interval := int64(l.mu.cfg.IndexIntervalBytes)
	nowMs := l.clock().UnixMilli()
	expect := s.base
	if i > 0 {
		expect = max(expect, l.mu.segs[i-1].next)
	}
	sc := newScanner(s.log, 0, st.Size(), true, 0)
	var bad error
	for sc.next() {
		h := sc.h
		if h.BaseOffset < expect || h.NextOffset() <= h.BaseOffset || !s.fitsRelative(h.LastOffset()) {
			bad = fmt.Errorf("batch offsets [%d, %d] out of order (expected >= %d in segment %d)",
				h.BaseOffset, h.LastOffset(), expect, s.base)
			break
		}
		s.trackBatch(&h, sc.pos, interval, nowMs)
		if withEpochs && l.mu.epochs.assign(h.PartitionLeaderEpoch, h.BaseOffset) {
			l.mu.epochsDirty = true
		}
		expect = h.NextOffset()
	}
	if bad == nil {
		bad = sc.err
	}
	last := i == len(l.mu.segs)-1
	if bad != nil {
		cerr := &CorruptionError{Path: s.logPath, Offset: s.size, Err: bad}
		if err := l.truncateDamaged(i, st.Size(), cerr); err != nil {
			return err
		}
		last = true
	}
	s.dirty = true // fsync what recovery read, so it is durable before reuse
	return l.finishScanned(s, last)
}

// truncateDamaged cuts segment i at the corruption and, when it is not the
// last segment, removes every later one.
func (l *Log) truncateDamaged(i int, fileSize int64, cerr *CorruptionError) error {
	s := l.mu.segs[i]
	middle := i < len(l.mu.segs)-1
	if middle {
		if l.strict {
			return cerr
		}
		if l.recovery.Corruption == nil {
			l.recovery.Corruption = cerr
		}
		l.logger.Error("storage: corruption in the middle of the log; truncating the log there", "err", cerr,
			"dropped_bytes", fileSize-s.size)
	} else {
		l.logger.Warn("storage: truncated invalid tail of the log", "path", s.logPath,
			"at_byte", s.size, "dropped_bytes", fileSize-s.size, "reason", cerr.Err)
	}
	if err := s.log.Truncate(s.size); err != nil {
		return fmt.Errorf("truncate %s: %w", s.logPath, err)
	}
	s.recoveryCut = true
	l.recovery.TruncatedBytes += fileSize - s.size
	if middle {
		l.dropFrom(i+1, "follows corruption")
	}
	return nil
}

// dropFrom removes segment i and every later one during recovery.
func (l *Log) dropFrom(i int, why string) {
	later := l.mu.segs[i:]
	var dropped int64
	for _, d := range later {
		if st, err := d.log.Stat(); err == nil {
			dropped += st.Size()
		}
		if err := d.removeFiles(l.fs); err != nil {
			l.logger.Warn("storage: removing dropped segment failed", "path", d.logPath, "err", err)
		}
		d.release()
	}
	l.mu.segs = l.mu.segs[:i]
	l.mu.dirDirty = true
	l.recovery.TruncatedBytes += dropped
	l.recovery.DeletedSegments += len(later)
	l.logger.Warn("storage: dropped segments during recovery", "reason", why,
		"first_base_offset", later[0].base, "segments", len(later), "dropped_bytes", dropped)
}

// finishScanned writes a scanned segment's rebuilt indexes; a closed one
// also gets its final time index entry and drops its resident copy.
func (l *Log) finishScanned(s *segment, active bool) error {
	if !active {
		s.maybeAppendTime()
	}
	for _, ix := range []*index{&s.offIdx, &s.timeIdx} {
		if err := ix.rewrite(); err != nil {
			return err
		}
		if !active {
			ix.evict()
		}
	}
	s.idxDirty = true
	return nil
}

// finishLoad handles a log start offset beyond the recovered end, trims
// the epoch cache, rebuilds producer state, clamps the persisted high
// watermark hw to the recovered log and makes all repairs durable.
func (l *Log) finishLoad(hw int64) error {
	if l.mu.lso > l.mu.leo {
		// Everything the checkpoint says was retained is gone (the
		// tail was lost); start empty at the log start offset.
		l.logger.Warn("storage: log start offset beyond recovered end; starting empty",
			"log_start_offset", l.mu.lso, "log_end_offset", l.mu.leo)
		for _, s := range l.mu.segs {
			l.recovery.TruncatedBytes += s.size
		}
		l.recovery.DeletedSegments += len(l.mu.segs)
		if err := l.replaceAllSegmentsLocked(l.mu.lso); err != nil {
			return err
		}
	}
	if l.mu.epochs.truncateFromEnd(l.mu.leo) {
		l.mu.epochsDirty = true
	}
	if l.mu.epochs.truncateFromStart(l.mu.lso) {
		l.mu.epochsDirty = true
	}
	if err := l.loadProducersLocked(true); err != nil {
		return err
	}
	l.mu.producers.evictBelow(l.mu.lso)
	l.txns.dropUnreplicated(l.mu.lso)
	if l.mu.recoveryPt > l.mu.leo {
		// The checkpoint claims more than survived; force the next flush
		// round (just below) to rewrite it, or a later crash could trust
		// unsynced segments.
		l.mu.recoveryPt = -1
	}
	if err := l.loadHighWatermarkLocked(hw); err != nil {
		return err
	}
	if err := l.flushRoundLocked(); err != nil {
		return err
	}
	if r := l.recovery; r.TruncatedBytes > 0 || r.RebuiltIndexes > 0 {
		l.logger.Info("storage: log recovered", "scanned_segments", r.ScannedSegments,
			"truncated_bytes", r.TruncatedBytes, "deleted_segments", r.DeletedSegments,
			"rebuilt_indexes", r.RebuiltIndexes, "log_end_offset", l.mu.leo)
	}
	return nil
}

// replaceAllSegmentsLocked deletes every segment and starts a new empty
// one at base.
func (l *Log) replaceAllSegmentsLocked(base int64) error {
	for _, s := range l.mu.segs {
		if err := s.removeFiles(l.fs); err != nil {
			return err
		}
		s.release()
	}
	l.mu.segs = nil
	// The old segments must be gone for good before a new one can take
	// offsets they held.
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("fsync dir: %w", err)
	}
	for _, off := range l.mu.snapshots {
		l.removeSnapshotLocked(off)
	}
	l.mu.snapshots = nil
	l.mu.producers = newProducerState()
	l.txns.install(&txnTracker{})
	l.aborted.Store(0)
	seg, err := openSegmentFiles(l.fs, l.dir, base, true)
	if err != nil {
		return err
	}
	seg.resetActive()
	l.mu.segs = []*segment{seg}
	l.mu.leo = base
	l.setLogStartLocked(base)
	l.leo.Store(base)
	l.mu.dirDirty = true
	return nil
}

// releaseSegments drops the list's references (closing files no reader
// holds) after a failed Open or at Close.
func (l *Log) releaseSegments() {
	for _, s := range l.mu.segs {
		s.release()
	}
	l.mu.segs = nil
}
