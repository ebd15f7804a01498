package storage

import (
	"errors"
	"io/fs"
	"math"
)

// SetHighWatermark records the partition's high watermark as the
// replication layer computed it. The value is clamped to [LogStartOffset,
// LogEndOffset] and may move backwards (a follower's HW drops after a
// truncation or under a new leader). It does no I/O and takes no lock, so
// it may be called after every append: the value is persisted by the
// Store's maintenance pass (once per StoreOptions.Interval, when it
// changed) and by Close. Retention and compaction never touch offsets at
// or above it.
func (l *Log) SetHighWatermark(hw int64) { l.setHighWatermark(hw, l.leo.Load()) }

// setHighWatermark is SetHighWatermark with the log end offset it loaded,
// which a concurrent truncation may already have lowered.
func (l *Log) setHighWatermark(hw, leo int64) {
	hw = min(max(hw, 0), leo)
	if l.hw.Swap(hw) != hw {
		l.hwDirty.Store(true)
	}
	// A truncation that lowered the log end after leo was loaded either
	// saw the store above and lowered it, or is seen by this second load
	// (both sides store, then load).
	if leo := l.leo.Load(); hw > leo {
		l.lowerHighWatermark(leo)
	}
}

// HighWatermark is the last value given to SetHighWatermark, clamped to
// the log's current [LogStartOffset, LogEndOffset]. After Open it is the
// value read from the high-watermark checkpoint, clamped to the recovered
// log, until SetHighWatermark is called. It is -1 when unknown: no
// readable checkpoint and no SetHighWatermark call since Open.
func (l *Log) HighWatermark() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.highWatermarkLocked()
}

// highWatermarkLocked is the HW clamped to the log, or -1.
func (l *Log) highWatermarkLocked() int64 {
	hw := l.hw.Load()
	if hw < 0 {
		return -1
	}
	return min(max(hw, l.mu.lso), l.mu.leo)
}

// hwBoundLocked is the offset retention and compaction must stay below:
// the HW when known, otherwise no bound (a Log used without replication).
func (l *Log) hwBoundLocked() int64 {
	if hw := l.highWatermarkLocked(); hw >= 0 {
		return hw
	}
	return math.MaxInt64
}

// lowerHighWatermark lowers the stored HW to to if it is above it.
func (l *Log) lowerHighWatermark(to int64) {
	for {
		hw := l.hw.Load()
		if hw <= to {
			return
		}
		if l.hw.CompareAndSwap(hw, to) {
			l.hwDirty.Store(true)
			return
		}
	}
}

// clampHighWatermarkLocked moves a known HW into [lso, leo] after either
// moved, as Kafka's UnifiedLog.updateLogStartOffset and
// updateLogEndOffset do. mu is held.
func (l *Log) clampHighWatermarkLocked() {
	for {
		hw := l.hw.Load()
		c := min(max(hw, l.mu.lso), l.mu.leo)
		if hw < 0 || c == hw {
			return
		}
		if l.hw.CompareAndSwap(hw, c) {
			l.hwDirty.Store(true)
			return
		}
	}
}

// readHighWatermarkCheckpoint returns the persisted HW, or -1 when there
// is none or it is unreadable (logged; the replication layer relearns the
// HW from the leader, so a lost one only delays consumers).
func (l *Log) readHighWatermarkCheckpoint() int64 {
	hw, err := readOffsetCheckpoint(l.fs, l.dir, hwCheckpoint)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			l.logger.Warn("storage: ignoring unreadable high watermark checkpoint", "err", err)
		}
		return -1
	}
	return hw
}

// loadHighWatermarkLocked installs the HW read at Open, clamped to the
// recovered log. A checkpoint above the recovered end is rewritten at
// once: left alone, it would cover whatever is appended at those offsets
// next. flushMu is held and the log is not shared yet.
func (l *Log) loadHighWatermarkLocked(persisted int64) error {
	l.hw.Store(persisted)
	l.mu.hwWritten = persisted
	l.clampHighWatermarkLocked()
	if persisted > l.mu.leo {
		return l.rewriteHighWatermarkLocked()
	}
	return nil
}

// rewriteHighWatermarkLocked durably replaces a checkpoint that is above
// the log end offset after a truncation or recovery cut the log below it.
// flushMu and mu are held.
func (l *Log) rewriteHighWatermarkLocked() error {
	hw := l.highWatermarkLocked()
	if hw < 0 || l.mu.hwWritten <= l.mu.leo {
		return nil
	}
	if err := writeOffsetCheckpoint(l.fs, l.dir, hwCheckpoint, hw); err != nil {
		return err
	}
	l.mu.hwWritten = hw
	return nil
}

// checkpointHighWatermark persists the HW if it changed since the last
// write (Kafka's replica.high.watermark.checkpoint.interval.ms task); the
// Store's maintenance pass calls it. Nothing is locked when nothing
// changed.
func (l *Log) checkpointHighWatermark() error {
	if !l.hwDirty.Load() {
		return nil
	}
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	return l.checkpointHighWatermarkLocked()
}

// checkpointHighWatermarkLocked writes the clamped HW when it differs from
// the last one written. flushMu is held, so neither truncation nor a
// moving log start can change the log below the value while it is
// written; the value is never above the log end offset. A failed write
// fences the log.
func (l *Log) checkpointHighWatermarkLocked() error {
	if !l.hwDirty.Swap(false) {
		return nil
	}
	l.mu.Lock()
	if err := l.writableLocked(); err != nil {
		l.mu.Unlock()
		return err
	}
	hw := l.highWatermarkLocked()
	same := hw == l.mu.hwWritten
	l.mu.Unlock()
	if hw < 0 || same {
		return nil
	}
	if err := writeOffsetCheckpoint(l.fs, l.dir, hwCheckpoint, hw); err != nil {
		l.hwDirty.Store(true)
		return l.fence(err)
	}
	l.mu.Lock()
	l.mu.hwWritten = hw
	l.mu.Unlock()
	return nil
}
