package storage

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
)

// loadProducersLocked rebuilds producer state and the transaction tracker
// from the newest usable snapshot and the batch headers after it (Kafka's
// UnifiedLog.rebuildProducerState). Snapshots past the log end or damaged
// are removed.
//
// With regen (at Open), it also brings every segment's aborted-transaction
// index to a trusted state, as Kafka's LogSegment.recover does for the
// segments LogLoader recovers: each .txnindex is validated, and the replay
// starts at a snapshot no later than the recovery point and no later than
// any segment whose index failed validation. Entries with markers at or
// after the replay start are regenerated from the batches; earlier ones
// come from the validated files, which the flush round made durable with
// their segments. The rebuilt indexes are written back when they differ
// and fsynced by the caller's flush round. flushMu and mu are held.
func (l *Log) loadProducersLocked(regen bool) error {
	limit := l.mu.leo
	bad := make([]bool, len(l.mu.segs))
	if regen {
		limit = min(limit, max(l.mu.recoveryPt, 0))
		for i, s := range l.mu.segs {
			if err := s.txn.load(l.fs, s.base, s.next); err != nil {
				l.logger.Warn("storage: rebuilding the aborted-transaction index", "path", s.txn.path, "err", err)
				bad[i] = true
				limit = min(limit, s.base)
			}
		}
	}
	snap, from := l.chooseSnapshotLocked(limit)
	tracker := &txnTracker{}
	var ongoing []int64
	for _, e := range snap.state.m {
		if e.TxnFirst >= 0 {
			ongoing = append(ongoing, e.TxnFirst)
		}
	}
	slices.Sort(ongoing)
	for _, f := range ongoing {
		tracker.start(f)
	}
	tracker.restoreUnreplicated(snap.unrepl)
	fresh, err := l.replayLocked(&snap.state, tracker, from, regen)
	if err != nil {
		return err
	}
	if regen {
		if err := l.installTxnIndexesLocked(from, fresh, bad); err != nil {
			return err
		}
	}
	l.mu.producers = snap.state
	l.txns.install(tracker)
	l.recountAbortedLocked()
	return nil
}

// chooseSnapshotLocked returns the newest valid snapshot at or below limit
// and the offset to replay from; without one, an empty state and the
// first segment's base.
func (l *Log) chooseSnapshotLocked(limit int64) (snapshotData, int64) {
	var kept []int64
	found := snapshotData{offset: -1}
	for i := len(l.mu.snapshots) - 1; i >= 0; i-- {
		off := l.mu.snapshots[i]
		if off > l.mu.leo {
			l.removeSnapshotLocked(off)
			continue
		}
		if found.offset >= 0 || off > limit {
			kept = append(kept, off)
			continue
		}
		path := filepath.Join(l.dir, segmentName(off, snapshotSuffix))
		b, err := readFile(l.fs, path, maxSnapshotSize)
		var d snapshotData
		if err == nil {
			if d, err = decodeProducerSnapshot(b); err == nil && d.offset != off {
				err = fmt.Errorf("%w: snapshot says offset %d", errCheckpoint, d.offset)
			}
		}
		if err != nil {
			l.logger.Warn("storage: ignoring damaged producer snapshot", "path", path, "err", err)
			l.removeSnapshotLocked(off)
			continue
		}
		found = d
		kept = append(kept, off)
	}
	slices.Sort(kept)
	l.mu.snapshots = kept
	if found.offset < 0 {
		return snapshotData{state: newProducerState()}, l.mu.segs[0].base
	}
	return found, found.offset
}

// replayLocked feeds every batch header from offset from on into state
// and tracker. With regen it returns, per segment, the aborted
// transactions whose markers it met there.
func (l *Log) replayLocked(state *producerState, tracker *txnTracker, from int64, regen bool) ([][]AbortedTxn, error) {
	var fresh [][]AbortedTxn
	if regen {
		fresh = make([][]AbortedTxn, len(l.mu.segs))
	}
	for i, s := range l.mu.segs {
		if s.next <= from && i != len(l.mu.segs)-1 {
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
			h := sc.h
			if h.BaseOffset < from || h.ProducerID < 0 {
				continue
			}
			var mk marker
			if h.Control() {
				raw, err := sc.whole()
				if err != nil {
					return nil, fmt.Errorf("read %s: %w", s.logPath, err)
				}
				mk, _ = parseMarker(raw, &h) // unreadable markers change nothing, as for followers
			}
			ev := state.update(h, mk)
			switch {
			case ev.started:
				tracker.start(ev.first)
			case ev.ended:
				lso := tracker.end(ev.first, ev.last)
				if ev.aborted && regen {
					fresh[i] = append(fresh[i], AbortedTxn{ProducerID: h.ProducerID, FirstOffset: ev.first, LastOffset: ev.last, LastStableOffset: lso})
				}
			}
		}
		if sc.err != nil {
			l.logger.Warn("storage: unreadable batch while rebuilding producer state",
				"path", s.logPath, "at_byte", sc.stop, "err", sc.err)
		}
	}
	return fresh, nil
}

// installTxnIndexesLocked combines, per segment, the validated entries
// below from with the regenerated ones, and rewrites the files that
// differ. The active segment's index is made resident.
func (l *Log) installTxnIndexesLocked(from int64, fresh [][]AbortedTxn, bad []bool) error {
	for i, s := range l.mu.segs {
		var old []AbortedTxn
		if !bad[i] && s.txn.n > 0 {
			var err error
			if old, err = s.txn.view().all(); err != nil {
				return fmt.Errorf("read %s: %w", s.txn.path, err)
			}
		}
		want := old
		if bad[i] || s.next > from {
			want = make([]AbortedTxn, 0, len(old)+len(fresh[i]))
			for _, a := range old {
				if a.LastOffset < from {
					want = append(want, a)
				}
			}
			want = append(want, fresh[i]...)
		}
		if bad[i] || !slices.Equal(want, old) {
			created, err := s.txn.rewrite(l.fs, want)
			if created {
				l.mu.dirDirty = true
			}
			if err != nil {
				return err
			}
			if !bad[i] {
				l.logger.Warn("storage: rebuilt the aborted-transaction index from the log", "path", s.txn.path,
					"entries_before", len(old), "entries_after", len(want))
			}
		}
	}
	active := l.mu.segs[len(l.mu.segs)-1]
	if err := active.txn.makeResident(); err != nil && !errors.Is(err, errTxnIndex) {
		return err
	}
	return nil
}

// recountAbortedLocked recomputes the total of aborted-transaction
// entries after the segment list changed.
func (l *Log) recountAbortedLocked() {
	var n int64
	for _, s := range l.mu.segs {
		n += int64(s.txn.n)
	}
	l.aborted.Store(n)
}
