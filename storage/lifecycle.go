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
// rejects a torn file and recovery falls back to an older one); at Close
// and when a truncation lowers the recovery point it is written atomically
// and durably.
func (l *Log) writeSnapshotLocked(durable bool) error {
	off := l.mu.leo
	data := l.mu.producers.encode(off, l.txns.unreplicated())
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
	l.addSnapshotLocked(off)
	return nil
}

// addSnapshotLocked records a snapshot file written at off.
func (l *Log) addSnapshotLocked(off int64) {
	if !slices.Contains(l.mu.snapshots, off) {
		l.mu.snapshots = append(l.mu.snapshots, off)
		slices.Sort(l.mu.snapshots)
	}
	l.pruneSnapshotsLocked()
}

// pruneSnapshotsLocked keeps the newest snapshotsKept snapshots and the
// newest one at or below the recovery point (written durably by the flush
// round that moved the recovery point there): recovery replays from that
// one to rebuild the aborted-transaction index entries at or above the
// recovery point.
func (l *Log) pruneSnapshotsLocked() {
	anchor := int64(-1)
	for _, off := range l.mu.snapshots {
		if off <= l.mu.recoveryPt {
			anchor = off
		}
	}
	n := len(l.mu.snapshots)
	kept := l.mu.snapshots[:0]
	for i, off := range l.mu.snapshots {
		if i >= n-snapshotsKept || off == anchor {
			kept = append(kept, off)
		} else {
			l.removeSnapshotLocked(off)
		}
	}
	l.mu.snapshots = kept
}

func (l *Log) removeSnapshotLocked(off int64) {
	_ = l.fs.Remove(filepath.Join(l.dir, segmentName(off, snapshotSuffix))) // stale; harmless if left
	l.mu.dirDirty = true
}
