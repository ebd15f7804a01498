package storage

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/sluicedev/sluice/storage/vfs"
)

// Sync blocks until every offset through upTo (inclusive; clamped to the
// last offset in the log) is durable. It is a group commit: one caller at
// a time runs a flush round that fsyncs everything appended so far, and
// callers that arrive meanwhile wait for the round after it, so N
// concurrent callers cost about two fsyncs, not N. If any fsync fails the
// log is fenced and this and every later Sync returns ErrFenced: success is
// never reported for data whose fsync failed. ctx only bounds the wait; a
// round already running completes regardless.
func (l *Log) Sync(ctx context.Context, upTo int64) error {
	for {
		if l.fenced.Load() {
			return l.fencedErr()
		}
		if leo := l.leo.Load(); upTo >= leo {
			upTo = leo - 1
		}
		if upTo < l.syncedTo.Load() {
			return nil
		}
		if l.closed.Load() {
			return ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		l.gc.Lock()
		if l.gc.running {
			done := l.gc.done
			l.gc.Unlock()
			select {
			case <-done:
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		l.gc.running = true
		l.gc.Unlock()

		l.flushMu.Lock()
		err := l.flushRoundLocked()
		l.flushMu.Unlock()

		l.gc.Lock()
		l.gc.running = false
		close(l.gc.done)
		l.gc.done = make(chan struct{})
		l.gc.Unlock()
		if err != nil && !errors.Is(err, ErrClosed) {
			return err
		}
		// On ErrClosed, Close's own flush may have covered upTo; the
		// checks at the top decide.
	}
}

// Flush makes everything appended so far durable (Sync through the log end
// offset).
func (l *Log) Flush() error { return l.Sync(context.Background(), math.MaxInt64) }

// flushIfDue flushes when flush.ms has passed since the last flush and
// there is unsynced data; the Store's maintenance loop calls it.
func (l *Log) flushIfDue(now time.Time) error {
	l.mu.Lock()
	due := l.mu.cfg.FlushMs != math.MaxInt64 && now.Sub(l.mu.lastFlush).Milliseconds() >= l.mu.cfg.FlushMs
	l.mu.Unlock()
	if !due || l.leo.Load() <= l.syncedTo.Load() {
		return nil
	}
	return l.Flush()
}

func (l *Log) fencedErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Errorf("%w: %w", ErrFenced, l.mu.fenceErr)
}

// flushRoundLocked runs one flush round; flushMu must be held. Under
// Log.mu it captures the log end offset and the files with unsynced writes
// (taking references so retention cannot close them), then without Log.mu
// it writes a changed epoch checkpoint, fsyncs the files and, if a
// directory entry changed, the directory, and finally moves the recovery
// point when a segment boundary was crossed, after writing a durable
// producer snapshot at the new point. Only then does syncedTo advance. Any
// failure fences the log.
func (l *Log) flushRoundLocked() error { return l.flushRound(false) }

// flushRound is flushRoundLocked; force moves the recovery point even
// within the active segment.
func (l *Log) flushRound(force bool) error {
	l.mu.Lock()
	if err := l.writableLocked(); err != nil {
		l.mu.Unlock()
		return err
	}
	target := l.mu.leo
	var files []vfs.File
	var held []*segment
	for _, s := range l.mu.segs {
		if !s.dirty && !s.idxDirty && !s.txn.dirty {
			continue
		}
		s.acquire()
		held = append(held, s)
		if s.dirty {
			files = append(files, s.log)
		}
		if s.idxDirty {
			files = append(files, s.offIdx.f, s.timeIdx.f)
		}
		if s.txn.dirty && s.txn.f != nil {
			files = append(files, s.txn.f)
		}
		s.dirty, s.idxDirty, s.txn.dirty = false, false, false
	}
	dirDirty := l.mu.dirDirty
	l.mu.dirDirty = false
	writeEpochs := l.mu.epochsDirty
	var epochRows [][2]int64
	if writeEpochs {
		epochRows, l.mu.epochsDirty = l.mu.epochs.rows(), false
	}
	active := l.mu.segs[len(l.mu.segs)-1]
	advanceRP := force || l.mu.recoveryPt < active.base
	var snapshot []byte
	if advanceRP {
		// The producer state as of the new recovery point, written durably
		// before the point moves: recovery replays from it.
		snapshot = l.mu.producers.encode(target, l.txns.unreplicated())
		l.mu.durableSnap = target
		defer func() {
			l.mu.Lock()
			l.mu.durableSnap = -1
			l.mu.Unlock()
		}()
	}
	l.mu.unflushed = 0
	l.mu.lastFlush = l.clock()
	l.mu.Unlock()
	defer func() {
		for _, s := range held {
			s.release()
		}
	}()

	if writeEpochs {
		if err := writeCheckpoint(l.fs, l.dir, epochCheckpoint, epochRows, 2); err != nil {
			return l.fence(err)
		}
	}
	start := time.Now()
	for _, f := range files {
		if err := f.Sync(); err != nil {
			return l.fence(fmt.Errorf("fsync: %w", err))
		}
	}
	if l.onSync != nil && len(files) > 0 {
		l.onSync(time.Since(start))
	}

	if dirDirty {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return l.fence(fmt.Errorf("fsync dir: %w", err))
		}
	}
	if advanceRP {
		if err := writeFileAtomic(l.fs, l.dir, segmentName(target, snapshotSuffix), snapshot); err != nil {
			return l.fence(err)
		}
		if err := writeOffsetCheckpoint(l.fs, l.dir, recoveryCheckpoint, target); err != nil {
			return l.fence(err)
		}
		l.mu.Lock()
		l.mu.recoveryPt = target
		l.addSnapshotLocked(target)
		l.mu.Unlock()
	}
	l.syncedTo.Store(target)
	return nil
}
