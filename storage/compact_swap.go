package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
)

// Files of the log cleaner in a partition directory; see doc.go.
const (
	cleanerCheckpointFile = "cleaner-offset-checkpoint"
	cleanerSwapFile       = "cleaner-swap-checkpoint"
)

// maxCleanerPasses bounds the pass history kept in the cleaner checkpoint.
// Merging the two oldest rows only ever delays tombstone removal.
const maxCleanerPasses = 64

// errLogChanged means retention, truncation or a close changed the
// segments a pass was working on, or the high watermark dropped into
// them; the pass is dropped and retried later.
var errLogChanged = errors.New("storage: log changed during compaction")

// cleanerCheckpoint is what the cleaner persists per partition.
type cleanerCheckpoint struct {
	// firstDirty is where the next pass starts mapping keys: everything
	// below it has been compacted against all keys up to it.
	firstDirty int64
	// compactedTo bounds the segments the cleaner rewrote or fsynced:
	// below it a segment may end before the next one starts (trailing
	// batches compacted away), which recovery must not take for a torn
	// tail.
	compactedTo int64
	// passes records, per completed pass, its end offset and time, in
	// increasing end order: a tombstone below end was first compacted no
	// later than timeMs.
	passes []cleanPass
}

type cleanPass struct{ end, timeMs int64 }

func (ck cleanerCheckpoint) clone() cleanerCheckpoint {
	ck.passes = slices.Clone(ck.passes)
	return ck
}

// horizon returns the offset below which tombstones were first compacted
// at or before cutoffMs and may be dropped.
func (ck *cleanerCheckpoint) horizon(cutoffMs int64) int64 {
	var h int64
	for _, p := range ck.passes {
		if p.timeMs <= cutoffMs {
			h = max(h, p.end)
		}
	}
	return h
}

// addPass records a pass that compacted everything below end at nowMs and
// forgets rows made redundant by cutoffMs (every row at or before it but
// the newest one) or by the row limit.
func (ck *cleanerCheckpoint) addPass(end, nowMs, cutoffMs int64) {
	if n := len(ck.passes); n == 0 || ck.passes[n-1].end < end {
		ck.passes = append(ck.passes, cleanPass{end: end, timeMs: nowMs})
	}
	h := ck.horizon(cutoffMs)
	kept := ck.passes[:0]
	for _, p := range ck.passes {
		if p.timeMs > cutoffMs || p.end == h {
			kept = append(kept, p)
		}
	}
	ck.passes = kept
	for len(ck.passes) > maxCleanerPasses {
		ck.passes = ck.passes[1:] // its offsets now count from the next, later pass
	}
}

// truncate lowers every offset above off to off and reports whether
// anything changed.
func (ck *cleanerCheckpoint) truncate(off int64) bool {
	changed := false
	if ck.firstDirty > off {
		ck.firstDirty, changed = off, true
	}
	if ck.compactedTo > off {
		ck.compactedTo, changed = off, true
	}
	kept := ck.passes[:0]
	for _, p := range ck.passes {
		if p.end > off {
			p.end, changed = off, true
		}
		if len(kept) > 0 && kept[len(kept)-1].end >= p.end {
			continue
		}
		kept = append(kept, p)
	}
	ck.passes = kept
	return changed
}

func (ck *cleanerCheckpoint) rows() [][2]int64 {
	rows := [][2]int64{{ck.firstDirty, ck.compactedTo}}
	for _, p := range ck.passes {
		rows = append(rows, [2]int64{p.end, p.timeMs})
	}
	return rows
}

func cleanerCheckpointFromRows(rows [][2]int64) (cleanerCheckpoint, bool) {
	if len(rows) == 0 || rows[0][0] < 0 || rows[0][1] < 0 {
		return cleanerCheckpoint{}, false
	}
	ck := cleanerCheckpoint{firstDirty: rows[0][0], compactedTo: rows[0][1]}
	for _, r := range rows[1:] {
		if r[0] < 0 || (len(ck.passes) > 0 && r[0] <= ck.passes[len(ck.passes)-1].end) {
			return cleanerCheckpoint{}, false
		}
		ck.passes = append(ck.passes, cleanPass{end: r[0], timeMs: r[1]})
	}
	return ck, true
}

func (l *Log) writeCleanerCheckpoint(ck cleanerCheckpoint) error {
	return writeCheckpoint(l.fs, l.dir, cleanerCheckpointFile, ck.rows(), 2)
}

// truncateCleanerLocked lowers the cleaner checkpoint to the log end
// offset after a truncation, durably, so recovery never tolerates a gap
// in segments the cleaner did not write. flushMu and mu are held.
func (l *Log) truncateCleanerLocked() error {
	ck := l.cleaner.ck.clone()
	if !ck.truncate(l.mu.leo) {
		return nil
	}
	if err := l.writeCleanerCheckpoint(ck); err != nil {
		return err
	}
	l.cleaner.ck = ck
	return nil
}

// runPlan maps the dirty range, writes the cleaned segments and swaps them
// in. cleaner.run is held.
func (l *Log) runPlan(p *cleanPlan) (CompactResult, error) {
	if err := p.readAborted(); err != nil {
		return CompactResult{}, err
	}
	om := newOffsetMap(l.cleaner.maxKeys)
	end, err := l.mapDirty(p, om)
	if err != nil {
		return CompactResult{}, err
	}
	c := &cleaner{l: l, p: p, om: om, end: end, interval: int64(p.cfg.IndexIntervalBytes),
		txns: newCleanTxns(p.aborted, p.views[0].base)}
	if err := c.rewrite(); err != nil {
		c.discard()
		return CompactResult{}, err
	}
	c.res.FirstDirtyOffset = end
	committed, err := l.commitClean(c)
	if !committed {
		return CompactResult{}, err
	}
	return c.res, err
}

// discard removes every cleaned file of the pass; nothing was swapped.
func (c *cleaner) discard() {
	for _, o := range c.outs {
		if o.seg != nil {
			if err := discardCleaned(c.l.fs, o.seg); err != nil {
				c.l.logger.Warn("storage: removing abandoned cleaned segment failed", "path", o.seg.logPath, "err", err)
			}
			o.seg = nil
		}
	}
}

// validateLocked checks that the planned segments are still in the log,
// in order and followed by the same segment, and that the rewritten ones
// still end at or below the high watermark (it may have dropped, or become
// known, since the plan), and returns the index of the first. mu is held.
func (l *Log) validateLocked(c *cleaner) (int, error) {
	if err := l.writableLocked(); err != nil {
		return 0, err
	}
	p, segs := c.p, l.mu.segs
	idx := slices.Index(segs, p.views[0].seg)
	if l.truncGen.Load() != p.gen || idx < 0 || idx+len(p.views) >= len(segs) || segs[idx+len(p.views)] != p.next {
		return 0, errLogChanged
	}
	for i, v := range p.views {
		if segs[idx+i] != v.seg {
			return 0, errLogChanged
		}
	}
	if n := c.res.Segments; n > 0 && p.segEnd(n-1) > l.stableBoundLocked() {
		return 0, errLogChanged
	}
	victims := 0
	for _, o := range c.outs {
		victims += len(o.victims)
	}
	if victims != c.res.Segments {
		return 0, fmt.Errorf("%w: %d victims for %d segments", errCleanerInternal, victims, c.res.Segments)
	}
	return idx, nil
}

// commitClean makes a pass's result the log, with flushMu held so no
// retention, truncation, flush round or close runs meanwhile. Appends and
// reads continue: they never touch the closed segments being replaced,
// and readers holding the old segments keep reading their open files.
//
// Crash safety, as Kafka's LogCleaner, with one commit record: the
// cleaned files are complete and fsynced; the cleaner checkpoint (raising
// compactedTo, and durably removing any stale swap manifest) is written;
// the ".cleaned" files are renamed to ".swap" and the directory fsynced;
// then the swap manifest (each output's [base, end)) is written atomically
// and durably: that is the commit. After it the replaced segments' files
// are removed, the index swaps renamed into place and the directory
// fsynced, and last the ".log.swap" files renamed into place and the
// directory fsynced. Recovery rolls a committed pass forward and deletes
// the files of an uncommitted one (recoverCleaner), so a crash leaves
// either every old segment or every new one.
func (l *Log) commitClean(c *cleaner) (bool, error) {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.Lock()
	idx, err := l.validateLocked(c)
	ck := l.cleaner.ck.clone()
	l.mu.Unlock()
	if err != nil {
		c.discard()
		if errors.Is(err, errLogChanged) {
			l.logger.Debug("storage: compaction pass dropped; the log changed meanwhile")
			return false, nil
		}
		return false, err
	}
	var changed []*cleanOutput
	for _, o := range c.outs {
		if o.changed() {
			changed = append(changed, o)
		}
	}
	if len(c.outs) > 0 {
		ck.compactedTo = max(ck.compactedTo, c.outs[len(c.outs)-1].end)
	}
	if len(changed) > 0 {
		if err := l.fs.Remove(filepath.Join(l.dir, cleanerSwapFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			c.discard()
			return false, fmt.Errorf("remove stale swap manifest: %w", err)
		}
		if err := l.writeCleanerCheckpoint(ck); err != nil { // also makes the removal durable
			c.discard()
			return false, err
		}
		if err := l.swapFiles(changed); err != nil {
			for _, o := range changed {
				_ = o.seg.closeFiles() // recovery decides what the files become
			}
			return false, l.fence(fmt.Errorf("compaction swap: %w", err))
		}
	}
	ck.firstDirty = c.end
	ck.addPass(c.end, c.p.nowMs, c.p.nowMs-max(c.p.cfg.DeleteRetentionMs, 0))
	l.mu.Lock()
	segs := l.mu.segs
	out := make([]*segment, 0, len(segs)-c.res.Segments+len(c.outs))
	out = append(out, segs[:idx]...)
	for _, o := range c.outs {
		if o.changed() {
			out = append(out, o.seg)
		} else {
			out = append(out, o.victims[0])
		}
	}
	l.mu.segs = append(out, segs[idx+c.res.Segments:]...)
	l.cleaner.ck = ck
	l.recountAbortedLocked()
	l.mu.Unlock()
	for _, o := range changed {
		for _, v := range o.victims {
			v.release() // the list's reference; open readers keep theirs
		}
	}
	if len(changed) > 0 {
		// Stale once swapped; if the removal is lost, recovery finds no
		// swap files for it, and the next pass removes it before staging.
		_ = l.fs.Remove(filepath.Join(l.dir, cleanerSwapFile))
	}
	if err := l.writeCleanerCheckpoint(ck); err != nil {
		return true, fmt.Errorf("compaction done but its checkpoint was not saved: %w", err)
	}
	return true, nil
}

// finalName strips the cleaned suffix from a path.
func finalName(p string) string { return strings.TrimSuffix(p, cleanedSuffix) }

// swapFiles stages the cleaned files as ".swap", commits with the
// manifest and replaces the originals (see commitClean). Any error leaves
// the directory for recovery to finish or roll back.
func (l *Log) swapFiles(outs []*cleanOutput) error {
	rows := make([][2]int64, len(outs))
	for i, o := range outs {
		s := o.seg
		s.next = o.end
		rows[i] = [2]int64{o.base, o.end}
		for _, p := range []string{s.txn.path, s.timeIdx.path, s.offIdx.path, s.logPath} {
			if err := l.fs.Rename(p, finalName(p)+swapSuffix); err != nil {
				return err
			}
		}
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("fsync dir: %w", err)
	}
	if err := writeCheckpoint(l.fs, l.dir, cleanerSwapFile, rows, 2); err != nil { // the commit point
		return err
	}
	for _, o := range outs {
		for _, v := range o.victims {
			if v.base != o.base {
				if err := v.removeFiles(l.fs); err != nil {
					return err
				}
			}
		}
		for _, p := range []string{o.seg.txn.path, o.seg.timeIdx.path, o.seg.offIdx.path} {
			if err := l.fs.Rename(finalName(p)+swapSuffix, finalName(p)); err != nil {
				return err
			}
		}
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("fsync dir: %w", err)
	}
	for _, o := range outs {
		if err := l.fs.Rename(finalName(o.seg.logPath)+swapSuffix, finalName(o.seg.logPath)); err != nil {
			return err
		}
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("fsync dir: %w", err)
	}
	for _, o := range outs {
		s := o.seg
		s.logPath, s.offIdx.path, s.timeIdx.path = finalName(s.logPath), finalName(s.offIdx.path), finalName(s.timeIdx.path)
		s.txn.path = finalName(s.txn.path)
	}
	return nil
}

// recoverCleaner runs at Open before the segments are listed. If the swap
// manifest of a committed pass exists, every ".log.swap" file it names is
// completed (finishSwap); every other ".swap" and ".cleaned" file belongs
// to a pass that never committed, or is an index swap of a completed one,
// and is deleted. Then the cleaner checkpoint is loaded.
func (l *Log) recoverCleaner() error {
	ents, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("list %s: %w", l.dir, err)
	}
	var names []string
	swaps := map[int64]bool{}
	manifest := false
	for _, e := range ents {
		name := e.Name()
		manifest = manifest || name == cleanerSwapFile
		if b, ok := parseSegmentName(strings.TrimSuffix(name, swapSuffix), logSuffix); ok && strings.HasSuffix(name, swapSuffix) {
			swaps[b] = true
		} else if !strings.HasSuffix(name, swapSuffix) && !strings.HasSuffix(name, cleanedSuffix) {
			names = append(names, name)
		}
	}
	finished := false
	if len(swaps) > 0 {
		ends, err := l.readSwapManifest()
		if err != nil {
			return err
		}
		for _, r := range ends {
			if swaps[r[0]] {
				if err := l.finishSwap(r[0], r[1], names); err != nil {
					return err
				}
				finished = true
			}
		}
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, cleanedSuffix) || strings.HasSuffix(name, swapSuffix) {
			if err := l.fs.Remove(filepath.Join(l.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove %s: %w", name, err)
			}
		}
	}
	if finished {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return fmt.Errorf("fsync dir: %w", err)
		}
	}
	if manifest {
		// Only once the swaps are durable: without the manifest they would
		// be rolled back. A removal lost in a crash is harmless.
		_ = l.fs.Remove(filepath.Join(l.dir, cleanerSwapFile))
	}
	l.loadCleanerCheckpoint()
	return nil
}

// readSwapManifest returns the [base, end) rows of the committed pass, or
// none when no pass committed. A damaged manifest cannot be told from an
// uncommitted one being written, except that the atomic write never
// leaves one; recovery then refuses to guess (rolling back could lose
// data a committed pass already removed from the originals).
func (l *Log) readSwapManifest() ([][2]int64, error) {
	rows, err := readCheckpoint(l.fs, l.dir, cleanerSwapFile, 2)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("compaction swap manifest: %w", err)
	}
	return rows, nil
}

// finishSwap completes the committed swap of the segment at base: the
// original segments in [base, end) go and the swap file takes base's name;
// recovery then rebuilds its offset and time indexes. Its
// aborted-transaction index cannot be rebuilt from the segment alone, so
// it is kept: every output of a pass has a .txnindex swap file, so a
// remaining "<base>.txnindex.swap" is the new index (renamed into place
// here), and without one the file at base's name already is.
func (l *Log) finishSwap(base, end int64, names []string) error {
	swapPath := filepath.Join(l.dir, segmentName(base, logSuffix)+swapSuffix)
	for _, name := range names {
		for _, suf := range []string{logSuffix, indexSuffix, timeIndexSuffix, txnIndexSuffix} {
			b, ok := parseSegmentName(name, suf)
			if ok && (b == base && suf != logSuffix && suf != txnIndexSuffix || b > base && b < end) {
				if err := l.fs.Remove(filepath.Join(l.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("remove replaced %s: %w", name, err)
				}
			}
		}
	}
	txnSwap := filepath.Join(l.dir, segmentName(base, txnIndexSuffix)+swapSuffix)
	if err := l.fs.Rename(txnSwap, filepath.Join(l.dir, segmentName(base, txnIndexSuffix))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("finish compaction swap %s: %w", txnSwap, err)
	}
	if err := l.fs.Rename(swapPath, filepath.Join(l.dir, segmentName(base, logSuffix))); err != nil {
		return fmt.Errorf("finish compaction swap %s: %w", swapPath, err)
	}
	l.logger.Warn("storage: finished an interrupted compaction swap", "base_offset", base, "end_offset", end)
	return nil
}

// loadCleanerCheckpoint reads the cleaner checkpoint; a missing or
// damaged file means nothing was compacted yet.
func (l *Log) loadCleanerCheckpoint() {
	rows, err := readCheckpoint(l.fs, l.dir, cleanerCheckpointFile, 2)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			l.logger.Warn("storage: ignoring unreadable cleaner checkpoint", "err", err)
		}
		return
	}
	ck, ok := cleanerCheckpointFromRows(rows)
	if !ok {
		l.logger.Warn("storage: ignoring invalid cleaner checkpoint")
		return
	}
	l.cleaner.ck = ck
}
