package storage

import (
	"fmt"
	"slices"
	"time"
)

// EnforceRetention deletes whole closed segments, oldest first, that are
// wholly below the log start offset, older than retention.ms (judged by
// the segment's largest batch timestamp, or its file time when no batch
// has one), or beyond retention.bytes; the last two only when
// cleanup.policy includes delete. The active segment is never deleted,
// nor, when the high watermark is known, a segment holding any offset at
// or above the last stable offset (Kafka's UnifiedLog.deleteOldSegments
// stops at the high watermark; the LSO is at or below it): records not
// yet committed, or of transactions not yet decided and replicated, are
// kept whatever their age or the log's size. Without a known high
// watermark the first offset of the earliest ongoing transaction bounds it
// instead. The log start offset moves to the new first segment and is
// persisted before files are removed. It returns how many segments it
// deleted.
func (l *Log) EnforceRetention(now time.Time) (int, error) {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.Lock()
	if err := l.writableLocked(); err != nil {
		l.mu.Unlock()
		return 0, err
	}
	segs, cfg, bound := l.mu.segs, l.mu.cfg, l.stableBoundLocked()
	// deletable: segment n is closed and ends at or below the LSO.
	deletable := func(n int) bool { return n < len(segs)-1 && segs[n+1].base <= bound }
	n := 0
	for n < len(segs)-1 && segs[n+1].base <= l.mu.lso {
		n++
	}
	deletes := cfg.CleanupPolicy&CleanupDelete != 0 // compact-only topics keep everything
	if deletes && cfg.RetentionMs >= 0 {
		for deletable(n) && now.UnixMilli()-l.largestTs(segs[n]) > cfg.RetentionMs {
			n++
		}
	}
	if deletes && cfg.RetentionBytes >= 0 {
		var total int64
		for _, s := range segs[n:] {
			total += s.size
		}
		for diff := total - cfg.RetentionBytes; deletable(n) && diff-segs[n].size >= 0; n++ {
			diff -= segs[n].size
		}
	}
	if n == 0 {
		l.mu.Unlock()
		return 0, nil
	}
	victims := slices.Clone(segs[:n])
	l.mu.segs = slices.Clone(segs[n:])
	l.mu.dirDirty = true
	l.recountAbortedLocked()
	moved := l.advanceStartLocked(l.mu.segs[0].base)
	lso := l.mu.lso
	l.mu.Unlock()
	return n, l.dropSegments(victims, moved, lso)
}

// largestTs is the retention.ms timestamp of a segment (Kafka's
// LogSegment.largestTimestamp).
func (l *Log) largestTs(s *segment) int64 {
	if s.maxTs >= 0 {
		return s.maxTs
	}
	if st, err := s.log.Stat(); err == nil {
		return st.ModTime().UnixMilli()
	}
	return l.clock().UnixMilli()
}

// advanceStartLocked raises the log start offset to off if that is higher
// and trims the epoch cache, producer state, completed transactions and
// high watermark to match. Ongoing transactions are kept even if they
// began below off (Kafka's onLogStartOffsetIncremented).
func (l *Log) advanceStartLocked(off int64) bool {
	if off <= l.mu.lso {
		return false
	}
	l.setLogStartLocked(off)
	l.clampHighWatermarkLocked()
	if l.mu.epochs.truncateFromStart(off) {
		l.mu.epochsDirty = true
	}
	l.mu.producers.evictBelow(off)
	l.txns.dropUnreplicated(off)
	l.notifyLocked()
	return true
}

// setLogStartLocked sets the log start offset and its lock-free mirror.
func (l *Log) setLogStartLocked(off int64) {
	l.mu.lso = off
	l.logStart.Store(off)
}

// dropSegments persists a moved log start offset, then removes the
// victims' files. flushMu is held, Log.mu is not. The directory change is
// made durable by the next flush round; a segment that reappears after a
// crash lies below the persisted start offset and is deleted again.
//
// When the recovery point lags behind the new first segment, a flush round
// first moves it (with the durable producer snapshot every such move
// writes) to the log end: recovery rebuilds producer and transaction state
// from a snapshot at or below the recovery point, and one below the first
// segment would miss the batches deleted here. This costs one flush per
// retention pass that deletes segments while nothing else flushed.
func (l *Log) dropSegments(victims []*segment, moved bool, lso int64) error {
	l.mu.Lock()
	behind := len(victims) > 0 && l.mu.recoveryPt < l.mu.segs[0].base
	l.mu.Unlock()
	if behind {
		if err := l.flushRound(true); err != nil {
			return err
		}
	}
	if moved {
		if err := writeOffsetCheckpoint(l.fs, l.dir, logStartCheckpoint, lso); err != nil {
			return l.fence(err)
		}
	}
	var firstErr error
	for _, s := range victims {
		if err := s.removeFiles(l.fs); err != nil && firstErr == nil {
			firstErr = err
		}
		s.release()
	}
	if firstErr != nil {
		l.logger.Warn("storage: removing deleted segment files failed", "err", firstErr)
	}
	return nil
}

// DeleteRecordsBefore advances the log start offset to offset (the
// DeleteRecords API), persists it, and deletes closed segments wholly
// below it. It returns the resulting log start offset; an offset at or
// below the current one changes nothing. An offset above the last stable
// offset (so also above a known high watermark) fails with
// ErrBeyondStableOffset and changes nothing; one outside [0,
// LogEndOffset] with ErrOffsetOutOfRange. A follower following its
// leader's log start uses AdvanceLogStartOffset instead.
func (l *Log) DeleteRecordsBefore(offset int64) (int64, error) {
	return l.moveStart(offset, true)
}

// AdvanceLogStartOffset is DeleteRecordsBefore for a follower adopting its
// leader's log start offset (Kafka's LeaderOffsetIncremented): the leader
// already bounded it by its own last stable offset, and the follower's
// high watermark and transactions may lag behind the leader's, so only
// offset <= LogEndOffset is required. Transactions of this log that began
// below the new start stay ongoing until their markers arrive.
func (l *Log) AdvanceLogStartOffset(offset int64) (int64, error) {
	return l.moveStart(offset, false)
}

func (l *Log) moveStart(offset int64, stable bool) (int64, error) {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.Lock()
	if err := l.writableLocked(); err != nil {
		l.mu.Unlock()
		return 0, err
	}
	if offset < 0 || offset > l.mu.leo {
		leo := l.mu.leo
		l.mu.Unlock()
		return 0, fmt.Errorf("%w: delete before %d, log end offset %d", ErrOffsetOutOfRange, offset, leo)
	}
	if lso := l.lastStableLocked(); stable && offset > lso {
		l.mu.Unlock()
		return 0, fmt.Errorf("%w: delete before %d, last stable offset %d", ErrBeyondStableOffset, offset, lso)
	}
	if !l.advanceStartLocked(offset) {
		lso := l.mu.lso
		l.mu.Unlock()
		return lso, nil
	}
	segs := l.mu.segs
	n := 0
	for n < len(segs)-1 && segs[n+1].base <= offset {
		n++
	}
	victims := slices.Clone(segs[:n])
	l.mu.segs = slices.Clone(segs[n:])
	l.mu.dirDirty = l.mu.dirDirty || n > 0
	l.recountAbortedLocked()
	l.mu.Unlock()
	return offset, l.dropSegments(victims, true, offset)
}

// MaybeRoll rolls the active segment when it is non-empty and older than
// segment.ms, so idle partitions still age out under retention.ms.
func (l *Log) MaybeRoll(now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return err
	}
	s := l.mu.segs[len(l.mu.segs)-1]
	ms := l.mu.cfg.rollMs()
	if s.size == 0 || ms <= 0 || now.UnixMilli()-s.rollTs <= ms {
		return nil
	}
	if err := l.rollLocked(); err != nil {
		return l.fenceLocked(err)
	}
	return nil
}
