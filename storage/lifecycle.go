package storage

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
)

// snapshotsKept is how many producer-state snapshots stay on disk; the
// older one covers a torn newest one.
const snapshotsKept = 2

// maxSnapshotSize bounds what recovery reads from a snapshot file.
const maxSnapshotSize = 256 << 20

// Close flushes everything, writes the indexes, a producer-state snapshot,
// the high watermark if it changed, and a recovery point equal to the log
// end offset (so the next Open skips the CRC scan), and closes the files.
// Readers still in flight finish first. Close is idempotent; after it
// other methods return ErrClosed. A fenced log is closed without writing
// anything.
func (l *Log) Close() error {
	l.stopCleaner()
	l.flushMu.Lock()
	l.mu.Lock()
	if l.mu.closed {
		l.mu.Unlock()
		l.flushMu.Unlock()
		return nil
	}
	fenced := l.mu.fenceErr != nil
	l.mu.Unlock()
	var err error
	if !fenced {
		err = l.closeDurablyLocked()
	}
	l.shutLocked()
	l.flushMu.Unlock()
	l.detachFromStore()
	return err
}

// closeDurablyLocked is the flushing part of Close; flushMu is held.
func (l *Log) closeDurablyLocked() error {
	if err := l.flushRoundLocked(); err != nil {
		return err
	}
	if err := l.checkpointHighWatermarkLocked(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	active := l.mu.segs[len(l.mu.segs)-1]
	active.maybeAppendTime()
	for _, ix := range []*index{&active.offIdx, &active.timeIdx} {
		if err := ix.flush(); err != nil {
			return l.fenceLocked(err)
		}
		if err := ix.f.Sync(); err != nil {
			return l.fenceLocked(fmt.Errorf("fsync %s: %w", ix.path, err))
		}
	}
	if err := l.writeSnapshotLocked(true); err != nil {
		return l.fenceLocked(err)
	}
	if l.mu.dirDirty {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return l.fenceLocked(err)
		}
		l.mu.dirDirty = false
	}
	// Last: the recovery point at the end marks a clean shutdown.
	if err := writeOffsetCheckpoint(l.fs, l.dir, recoveryCheckpoint, l.mu.leo); err != nil {
		return l.fenceLocked(err)
	}
	l.mu.recoveryPt = l.mu.leo
	return nil
}

// shutLocked marks the log closed, wakes Changed waiters and drops the
// segment list's references; flushMu is held.
func (l *Log) shutLocked() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return
	}
	l.mu.closed = true
	l.closed.Store(true)
	close(l.mu.changed) // left closed: later Changed calls return at once
	l.mu.watched = false
	for c := range l.mu.watchers {
		poke(c)
	}
	l.mu.watchers = nil // later Watch calls get their token at once
	l.releaseSegments()
}

// abandon closes the log without flushing, for deletion.
func (l *Log) abandon() {
	l.stopCleaner()
	l.flushMu.Lock()
	l.shutLocked()
	l.flushMu.Unlock()
}

// Delete closes the log without flushing and removes its directory.
func (l *Log) Delete() error {
	l.abandon()
	l.detachFromStore()
	if err := l.fs.RemoveAll(l.dir); err != nil {
		return fmt.Errorf("remove %s: %w", l.dir, err)
	}
	if err := l.fs.SyncDir(filepath.Dir(l.dir)); err != nil {
		return fmt.Errorf("sync dir %s: %w", filepath.Dir(l.dir), err)
	}
	return nil
}

func (l *Log) detachFromStore() {
	if l.store != nil {
		l.store.forget(l)
	}
}

// writeSnapshotLocked saves producer state as of the log end offset in
// "<offset>.snapshot". At roll it is written without fsync (its checksum
// rejects a torn file and recovery falls back to the older one); at Close
// it is written atomically and durably.
func (l *Log) writeSnapshotLocked(durable bool) error {
	off := l.mu.leo
	data := l.mu.producers.encode(off)
	name := segmentName(off, snapshotSuffix)
	if durable {
		if err := writeFileAtomic(l.fs, l.dir, name, data); err != nil {
			return err
		}
	} else {
		f, err := l.fs.Create(filepath.Join(l.dir, name))
		if err != nil {
			return fmt.Errorf("create snapshot: %w", err)
		}
		_, werr := f.Write(data)
		if err := errors.Join(werr, f.Close()); err != nil {
			return fmt.Errorf("write snapshot: %w", err)
		}
		l.mu.dirDirty = true
	}
	if !slices.Contains(l.mu.snapshots, off) {
		l.mu.snapshots = append(l.mu.snapshots, off)
		slices.Sort(l.mu.snapshots)
	}
	for len(l.mu.snapshots) > snapshotsKept {
		l.removeSnapshotLocked(l.mu.snapshots[0])
		l.mu.snapshots = l.mu.snapshots[1:]
	}
	return nil
}

func (l *Log) removeSnapshotLocked(off int64) {
	_ = l.fs.Remove(filepath.Join(l.dir, segmentName(off, snapshotSuffix))) // stale; harmless if left
	l.mu.dirDirty = true
}

// rebuildProducersLocked restores producer state: the newest valid
// snapshot at or below the log end offset, then every batch header from
// the snapshot's offset to the end. Snapshots past the end or damaged are
// removed.
func (l *Log) rebuildProducersLocked(snapshots []int64) error {
	state, from := producerState{}, int64(-1)
	var kept []int64
	for i := len(snapshots) - 1; i >= 0; i-- {
		off := snapshots[i]
		if off > l.mu.leo {
			l.removeSnapshotLocked(off)
			continue
		}
		if from >= 0 {
			kept = append(kept, off)
			continue
		}
		path := filepath.Join(l.dir, segmentName(off, snapshotSuffix))
		b, err := readFile(l.fs, path, maxSnapshotSize)
		if err == nil {
			var at int64
			if state, at, err = decodeProducerSnapshot(b); err == nil && at != off {
				err = fmt.Errorf("%w: snapshot says offset %d", errCheckpoint, at)
			}
		}
		if err != nil {
			l.logger.Warn("storage: ignoring damaged producer snapshot", "path", path, "err", err)
			l.removeSnapshotLocked(off)
			continue
		}
		from = off
		kept = append(kept, off)
	}
	if from < 0 {
		state, from = newProducerState(), l.mu.segs[0].base
	}
	slices.Sort(kept)
	l.mu.snapshots = kept
	for _, s := range l.mu.segs {
		if s.next <= from && s != l.mu.segs[len(l.mu.segs)-1] {
			continue
		}
		var pos int64
		if from > s.base {
			var err error
			if pos, _, err = s.offIdx.view().lookupOffset(from - s.base); err != nil {
				pos = 0
			}
		}
		sc := newScanner(s.log, pos, s.size, false, 0)
		for sc.next() {
			if sc.h.BaseOffset >= from && sc.h.ProducerID >= 0 {
				state.update(sc.h)
			}
		}
		if sc.err != nil {
			l.logger.Warn("storage: unreadable batch while rebuilding producer state",
				"path", s.logPath, "at_byte", sc.stop, "err", sc.err)
		}
	}
	l.mu.producers = state
	return nil
}
