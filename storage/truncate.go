package storage

import (
	"fmt"
)

// TruncateTo removes everything at or after offset, for a follower whose
// log diverged from the leader's (KIP-101). Truncation happens at a batch
// boundary: if offset falls inside a batch, that whole batch goes and the
// log end offset becomes its base offset. When that would leave the log
// end below the log start offset (offset is below it, or inside a batch
// that starts below it), the log is emptied and restarted at offset as by
// TruncateFullyAndStartAt. The cut is fsynced before TruncateTo returns, so
// removed data cannot reappear after a crash. A high watermark above the
// new log end offset is lowered to it, in memory and, if the checkpoint
// held more, durably.
func (l *Log) TruncateTo(offset int64) error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return err
	}
	if offset >= l.mu.leo {
		return nil
	}
	if offset < 0 {
		return fmt.Errorf("%w: truncate to %d", ErrOffsetOutOfRange, offset)
	}
	l.truncGen.Add(1)
	i := l.segIndexLocked(offset)
	cut, newLEO, err := l.cutPosition(l.mu.segs[i], offset)
	if err != nil {
		return l.fenceLocked(err)
	}
	if offset < l.mu.lso || newLEO < l.mu.lso {
		return l.truncateFullyLocked(offset)
	}
	if err := l.truncateSegmentsLocked(i, cut); err != nil {
		return l.fenceLocked(err)
	}
	return l.afterTruncateLocked()
}

// TruncateFullyAndStartAt deletes every segment and restarts the log,
// empty, at offset, which becomes both log start and log end offset; the
// epoch cache and producer state are cleared and a known high watermark
// becomes offset (Kafka's UnifiedLog.truncateFullyAndStartAt). A follower
// uses it when the leader's log starts beyond its own end.
func (l *Log) TruncateFullyAndStartAt(offset int64) error {
	if offset < 0 {
		return fmt.Errorf("%w: start at %d", ErrOffsetOutOfRange, offset)
	}
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return err
	}
	l.truncGen.Add(1)
	return l.truncateFullyLocked(offset)
}

func (l *Log) truncateFullyLocked(offset int64) error {
	if err := l.replaceAllSegmentsLocked(offset); err != nil {
		return l.fenceLocked(err)
	}
	l.mu.epochs = epochCache{}
	l.mu.epochsDirty = true
	// The new start must be durable before anything is appended at it.
	if err := writeOffsetCheckpoint(l.fs, l.dir, logStartCheckpoint, offset); err != nil {
		return l.fenceLocked(err)
	}
	if err := writeCheckpoint(l.fs, l.dir, epochCheckpoint, nil, 2); err != nil {
		return l.fenceLocked(err)
	}
	l.mu.epochsDirty = false
	l.mu.dirDirty = false // writeCheckpoint synced the directory
	return l.afterTruncateLocked()
}

// afterTruncateLocked brings derived state in line with a shorter log.
func (l *Log) afterTruncateLocked() error {
	if l.syncedTo.Load() > l.mu.leo {
		l.syncedTo.Store(l.mu.leo)
	}
	// Lowered in memory (and raised to a new log start); a checkpoint
	// above the new end is rewritten at once, since after a crash it would
	// cover whatever is appended at those offsets next.
	l.clampHighWatermarkLocked()
	if err := l.rewriteHighWatermarkLocked(); err != nil {
		return l.fenceLocked(err)
	}
	if err := l.truncateCleanerLocked(); err != nil {
		return l.fenceLocked(err)
	}
	if l.mu.epochs.truncateFromEnd(l.mu.leo) {
		l.mu.epochsDirty = true
	}
	if err := l.loadProducersLocked(false); err != nil {
		return l.fenceLocked(err)
	}
	if l.mu.recoveryPt > l.mu.leo {
		// Lower the recovery point durably, or a crash could leave
		// unscanned segments that were rewritten after this call; with a
		// durable snapshot at it, as every recovery point has one.
		if err := l.writeSnapshotLocked(true); err != nil {
			return l.fenceLocked(err)
		}
		if err := writeOffsetCheckpoint(l.fs, l.dir, recoveryCheckpoint, l.mu.leo); err != nil {
			return l.fenceLocked(err)
		}
		l.mu.recoveryPt = l.mu.leo
	}
	l.notifyLocked()
	return nil
}

// truncateSegmentsLocked cuts segment i at byte cut and deletes the later
// segments, durably.
func (l *Log) truncateSegmentsLocked(i int, cut int64) error {
	s, later := l.mu.segs[i], l.mu.segs[i+1:]
	if err := s.log.Truncate(cut); err != nil {
		return fmt.Errorf("truncate %s: %w", s.logPath, err)
	}
	if err := s.log.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", s.logPath, err)
	}
	for _, d := range later {
		if err := d.removeFiles(l.fs); err != nil {
			return err
		}
		d.release()
	}
	l.mu.segs = l.mu.segs[:i+1]
	if len(later) > 0 {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return fmt.Errorf("fsync dir: %w", err)
		}
	}
	if err := l.rebuildActive(s, cut); err != nil {
		return err
	}
	// Aborted transactions whose markers were cut go with them (Kafka's
	// TransactionIndex.truncateTo), durably like the cut itself.
	if err := s.txn.truncateTo(l.fs, s.next); err != nil {
		return err
	}
	if s.txn.dirty && s.txn.f != nil {
		if err := s.txn.f.Sync(); err != nil {
			return fmt.Errorf("fsync %s: %w", s.txn.path, err)
		}
		s.txn.dirty = false
	}
	if err := s.txn.makeResident(); err != nil {
		return err
	}
	l.recountAbortedLocked()
	l.mu.leo = s.next
	l.leo.Store(s.next)
	return nil
}

// cutPosition finds the byte position of the first batch in s whose last
// offset is >= offset, and the log end offset a cut there leaves.
func (l *Log) cutPosition(s *segment, offset int64) (cut, leo int64, err error) {
	pos, _, err := s.offIdx.view().lookupOffset(offset - s.base)
	if err != nil {
		pos = 0
	}
	sc := newScanner(s.log, pos, s.size, false, 0)
	for sc.next() {
		if sc.h.LastOffset() >= offset {
			return sc.pos, sc.h.BaseOffset, nil
		}
	}
	if sc.err != nil {
		return 0, 0, &CorruptionError{Path: s.logPath, Offset: sc.stop, Err: sc.err}
	}
	return s.size, s.next, nil
}

// rebuildActive recomputes a segment's state and resident indexes from its
// first size bytes, making it the active segment.
func (l *Log) rebuildActive(s *segment, size int64) error {
	s.resetState()
	interval := int64(l.mu.cfg.IndexIntervalBytes)
	nowMs := l.clock().UnixMilli()
	sc := newScanner(s.log, 0, size, false, 0)
	for sc.next() {
		h := sc.h
		s.trackBatch(&h, sc.pos, interval, nowMs)
	}
	if sc.err != nil {
		return &CorruptionError{Path: s.logPath, Offset: sc.stop, Err: sc.err}
	}
	for _, ix := range []*index{&s.offIdx, &s.timeIdx} {
		if err := ix.rewrite(); err != nil {
			return err
		}
	}
	s.idxDirty = true
	return nil
}
