package storage

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/sluicedev/sluice/protocol/batch"
	"github.com/sluicedev/sluice/storage/vfs"
)

// cleanedSuffix and swapSuffix are appended to a segment file's name while
// the cleaner builds its replacement and once the replacement is complete
// (Kafka's ".cleaned" and ".swap").
const (
	cleanedSuffix = ".cleaned"
	swapSuffix    = ".swap"
)

// cleanerWriteBuffer is how many bytes of cleaned batches are collected
// before a write system call.
const cleanerWriteBuffer = 1 << 20

// offsetMap maps a key to the offset of its latest record in the dirty
// range. Keys are stored as two independently seeded 64-bit hashes, so a
// collision (which would drop a record of another key) is as unlikely as
// with Kafka's 16-byte MD5 digests. The seeds are per pass, so nothing
// depends on the hash being stable across processes.
type offsetMap struct {
	s1, s2 maphash.Seed
	m      map[[2]uint64]int64
	max    int
}

func newOffsetMap(maxKeys int) *offsetMap {
	return &offsetMap{s1: maphash.MakeSeed(), s2: maphash.MakeSeed(), m: map[[2]uint64]int64{}, max: maxKeys}
}

func (m *offsetMap) hash(key []byte) [2]uint64 {
	return [2]uint64{maphash.Bytes(m.s1, key), maphash.Bytes(m.s2, key)}
}

// mapDirty records the latest offset of every key from firstDirty on, and
// returns the offset it covered up to (exclusive): the end of the last
// eligible segment, or earlier, at a batch boundary, when the map is full.
//
// Records of aborted transactions are not mapped: they are about to be
// removed and must not supersede older records of their keys.
func (l *Log) mapDirty(p *cleanPlan, om *offsetMap) (int64, error) {
	end := p.firstDirty
	txns := newCleanTxns(p.aborted, p.firstDirty)
	for i := p.dirty; i < len(p.views); i++ {
		v := p.views[i]
		pos := int64(0)
		if i == p.dirty {
			if at, _, err := v.off.lookupOffset(p.firstDirty - v.base); err == nil {
				pos = at
			}
		}
		sc := newScanner(v.seg.log, pos, v.end, true, 0)
		for sc.next() {
			if l.cleaner.stop.Load() {
				return 0, ErrClosed
			}
			h := sc.h
			if h.LastOffset() < p.firstDirty {
				continue
			}
			if h.Control() {
				if commit, _, err := batch.ParseMarker(sc.raw); err == nil && h.ProducerID >= 0 {
					txns.endTxn(&h, commit)
				}
			} else if txns.abortedData(&h) == nil {
				if len(om.m) > 0 && len(om.m)+int(h.NumRecords) > om.max {
					return end, nil
				}
				err := l.cleaner.filter.Records(sc.raw, func(off int64, key []byte, _ bool, _ int64) {
					if key != nil && off >= p.firstDirty {
						om.m[om.hash(key)] = off
					}
				})
				if err != nil {
					return 0, &CorruptionError{Path: v.seg.logPath, Offset: sc.pos, Err: err}
				}
			}
			end = h.NextOffset()
		}
		if sc.err != nil {
			return 0, &CorruptionError{Path: v.seg.logPath, Offset: sc.stop, Err: sc.err}
		}
		end = p.segEnd(i)
	}
	return end, nil
}

// cleanOutput is one segment the pass produces, replacing victims (the
// original segments covering [base, end)).
type cleanOutput struct {
	base, end int64
	victims   []*segment
	// seg is the cleaned segment, its files named "<name>.cleaned" until
	// the swap; nil when the output is the single victim unchanged.
	seg  *segment
	buf  []byte // batches not yet written to seg
	same bool   // byte-identical to its single victim so far
	// txns are the aborted transactions whose markers stay in the output
	// with records of theirs: its aborted-transaction index.
	txns  []AbortedTxn
	first int // index in the plan's views of the first victim, to compare indexes
}

// changed reports whether the output replaces its victims.
func (o *cleanOutput) changed() bool { return o.seg != nil }

// cleaner is the state of the rewrite step of one pass.
type cleaner struct {
	l        *Log
	p        *cleanPlan
	om       *offsetMap
	end      int64 // offsets at or above it were not mapped
	interval int64
	kept     []int64 // scratch: offsets kept in the current batch
	res      CompactResult
	outs     []*cleanOutput
	txns     *cleanTxns
}

// groupViews splits views[:n] into runs whose total size fits
// segment.bytes and whose offsets fit the indexes' int32 relative offsets
// (Kafka's groupSegmentsBySize, on the original sizes).
func (c *cleaner) groupViews(n int) [][2]int {
	var groups [][2]int
	for i := 0; i < n; {
		j, size := i+1, c.p.views[i].end
		for j < n && size+c.p.views[j].end <= c.p.cfg.SegmentBytes && c.p.segEnd(j)-1-c.p.views[i].base <= math.MaxInt32 {
			size += c.p.views[j].end
			j++
		}
		groups = append(groups, [2]int{i, j})
		i = j
	}
	return groups
}

// rewrite cleans every view whose base is below c.end into outputs. A
// group that comes out empty is merged into the following output (or the
// previous one at the end), so every output segment but possibly a lone
// first one holds data and a reader never meets two empty segments in a
// row. Unchanged single segments are left alone (but fsynced, so every
// segment below the pass's end is durable).
func (c *cleaner) rewrite() error {
	n := 0
	for n < len(c.p.views) && c.p.views[n].base < c.end {
		n++
	}
	if n == 0 {
		return nil
	}
	c.res.Segments = n
	pending := c.p.views[0].base // first offset not yet covered by an output
	var victims []*segment       // segments of empty groups waiting for an output
	for _, g := range c.groupViews(n) {
		first := c.p.views[g[0]].base
		gEnd := c.p.segEnd(g[1] - 1)
		if pending < first && gEnd-1-pending > math.MaxInt32 {
			// Merging the empty run forward would overflow relative
			// offsets; give it an empty segment of its own instead.
			if err := c.emptyOutput(pending, first, victims); err != nil {
				return err
			}
			pending, victims = first, nil
		}
		out := &cleanOutput{base: pending, end: gEnd, same: pending == first && g[1]-g[0] == 1, first: g[0]}
		c.outs = append(c.outs, out)
		for i := g[0]; i < g[1]; i++ {
			victims = append(victims, c.p.views[i].seg)
			changed, err := c.cleanSegment(out, c.p.views[i])
			if err != nil {
				return err
			}
			out.same = out.same && !changed
		}
		if out.seg == nil {
			// Everything in the group was removed: merge forward.
			c.outs = c.outs[:len(c.outs)-1]
			continue
		}
		if err := c.finishOutput(out); err != nil {
			return err
		}
		out.victims, victims, pending = victims, nil, gEnd
	}
	if len(victims) > 0 {
		if len(c.outs) == 0 {
			if err := c.emptyOutput(pending, c.p.segEnd(n-1), victims); err != nil {
				return err
			}
		} else {
			last := c.outs[len(c.outs)-1]
			last.end, last.same = c.p.segEnd(n-1), false
			last.victims = append(last.victims, victims...)
		}
	}
	for _, out := range c.outs {
		if out.same {
			old, err := c.p.txnOf[out.first].all()
			if err != nil {
				return &CorruptionError{Path: c.p.views[out.first].seg.txn.path, Err: err}
			}
			out.same = slices.Equal(old, out.txns)
		}
		if out.same {
			if err := c.keepUnchanged(out); err != nil {
				return err
			}
		}
	}
	c.res.OutputSegments = len(c.outs)
	return nil
}

// errCleanerInternal marks a broken invariant of the cleaner; the pass is
// abandoned and nothing on disk changes.
var errCleanerInternal = errors.New("storage: cleaner invariant broken")

// keepUnchanged drops an output identical to its single victim and
// fsyncs the victim instead.
func (c *cleaner) keepUnchanged(out *cleanOutput) error {
	if err := discardCleaned(c.l.fs, out.seg); err != nil {
		return err
	}
	out.seg = nil
	if err := out.victims[0].log.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", out.victims[0].logPath, err)
	}
	return nil
}

// emptyOutput adds an output with no batches covering [base, end).
func (c *cleaner) emptyOutput(base, end int64, victims []*segment) error {
	out := &cleanOutput{base: base, end: end, victims: victims}
	c.outs = append(c.outs, out)
	if err := c.openOutput(out); err != nil {
		return err
	}
	return c.finishOutput(out)
}

// cleanSegment copies the records of v that survive into out. It reports
// whether anything was dropped or rewritten.
func (c *cleaner) cleanSegment(out *cleanOutput, v segView) (bool, error) {
	changed := false
	sc := newScanner(v.seg.log, 0, v.end, true, 0)
	for sc.next() {
		if c.l.cleaner.stop.Load() {
			return false, ErrClosed
		}
		h := sc.h
		b, err := c.cleanBatch(out, sc.raw, &h)
		if err != nil {
			return false, &CorruptionError{Path: v.seg.logPath, Offset: sc.pos, Err: err}
		}
		c.res.BytesBefore += int64(len(sc.raw))
		if b == nil {
			changed = true
			continue
		}
		if &b[0] != &sc.raw[0] {
			changed = true
		}
		if err := c.emit(out, b); err != nil {
			return false, err
		}
	}
	if sc.err != nil {
		return false, &CorruptionError{Path: v.seg.logPath, Offset: sc.stop, Err: sc.err}
	}
	return changed, nil
}

// cleanBatch returns what remains of one batch: raw itself when every
// record stays, nil when none does, else a rewritten batch. A live
// producer's newest batch is never dropped whole; a batch of an aborted
// transaction goes whole; control batches are decided by cleanMarker.
func (c *cleaner) cleanBatch(out *cleanOutput, raw []byte, h *batch.Header) ([]byte, error) {
	if h.Control() {
		return c.cleanMarker(out, raw, h), nil
	}
	if o := c.txns.abortedData(h); o != nil {
		if last, ok := c.p.lastOfProducer[h.ProducerID]; ok && last == h.LastOffset() {
			o.kept = true // keeps the producer's sequence state, so also its marker and index entry
			return raw, nil
		}
		c.res.RecordsRemoved += int64(h.NumRecords)
		return nil, nil
	}
	b, err := c.cleanRecords(raw, h)
	if err == nil && b != nil && h.Transactional() {
		c.txns.keptData(h.ProducerID)
	}
	return b, err
}

// cleanRecords applies the key rules to the records of a data batch.
func (c *cleaner) cleanRecords(raw []byte, h *batch.Header) ([]byte, error) {
	c.kept = c.kept[:0]
	n := 0
	err := c.l.cleaner.filter.Records(raw, func(off int64, key []byte, tomb bool, _ int64) {
		n++
		if c.retain(off, key, tomb) {
			c.kept = append(c.kept, off)
		}
	})
	if err != nil {
		return nil, err
	}
	c.res.RecordsRemoved += int64(n - len(c.kept))
	switch {
	case len(c.kept) == n:
		return raw, nil
	case len(c.kept) == 0:
		if last, ok := c.p.lastOfProducer[h.ProducerID]; ok && h.ProducerID >= 0 && last == h.LastOffset() {
			c.res.RecordsRemoved -= int64(n)
			return raw, nil // keeps the producer's sequence state (Kafka keeps an empty batch)
		}
		return nil, nil
	}
	kept := c.kept
	nb, err := c.l.cleaner.filter.Rewrite(raw, func(off int64) bool {
		_, found := slices.BinarySearch(kept, off)
		return found
	})
	if err != nil {
		return nil, err
	}
	if nb == nil {
		return nil, fmt.Errorf("%w: rewrite dropped every record", errCleanerInternal)
	}
	nh, err := batch.Check(nb)
	if err != nil {
		return nil, fmt.Errorf("rewritten batch: %w", err)
	}
	if nh.BaseOffset != h.BaseOffset || nh.LastOffset() > h.LastOffset() || nh.LastOffset() < kept[len(kept)-1] ||
		nh.NumRecords != int32(len(kept)) {
		return nil, fmt.Errorf("%w: rewrite of [%d, %d] gave [%d, %d] with %d records, want %d",
			errCleanerInternal, h.BaseOffset, h.LastOffset(), nh.BaseOffset, nh.LastOffset(), nh.NumRecords, len(kept))
	}
	return nb, nil
}

// retain is the compaction rule for one record (Kafka's
// Cleaner.shouldRetainRecord): a record with a null key stays; otherwise
// it stays if no later record of its key was mapped, and a tombstone
// additionally only while it is above the delete horizon.
func (c *cleaner) retain(off int64, key []byte, tombstone bool) bool {
	if key == nil {
		return true
	}
	if latest, ok := c.om.m[c.om.hash(key)]; ok && off < latest {
		return false
	}
	return !tombstone || off >= c.p.horizon
}

// openOutput creates out's cleaned files.
func (c *cleaner) openOutput(out *cleanOutput) error {
	seg, err := createCleaned(c.l.fs, c.l.dir, out.base)
	if err != nil {
		return err
	}
	out.seg = seg
	return nil
}

// emit appends one batch to out, creating its files on first use.
func (c *cleaner) emit(out *cleanOutput, b []byte) error {
	if out.seg == nil {
		if err := c.openOutput(out); err != nil {
			return err
		}
	}
	h, err := batch.ParseHeader(b)
	if err != nil {
		return err
	}
	s := out.seg
	s.trackBatch(&h, s.size, c.interval, c.p.nowMs)
	out.buf = append(out.buf, b...)
	if len(out.buf) >= cleanerWriteBuffer {
		return flushOutput(out)
	}
	return nil
}

func flushOutput(out *cleanOutput) error {
	if len(out.buf) == 0 {
		return nil
	}
	if _, err := out.seg.log.Write(out.buf); err != nil {
		return fmt.Errorf("write %s: %w", out.seg.logPath, err)
	}
	out.buf = out.buf[:0]
	return nil
}

// finishOutput writes out's remaining bytes and indexes and fsyncs its
// files. An output that never received a batch gets no files unless it is
// an empty output created on purpose.
func (c *cleaner) finishOutput(out *cleanOutput) error {
	s := out.seg
	if s == nil {
		return nil
	}
	if err := flushOutput(out); err != nil {
		return err
	}
	out.buf = nil
	s.next = out.end
	s.maybeAppendTime()
	for _, ix := range []*index{&s.offIdx, &s.timeIdx} {
		if err := ix.flush(); err != nil {
			return err
		}
		ix.evict()
	}
	if _, err := s.txn.rewrite(c.l.fs, out.txns); err != nil {
		return err
	}
	s.txn.evict()
	s.txn.dirty = false // synced just below
	for _, f := range []vfs.File{s.log, s.offIdx.f, s.timeIdx.f, s.txn.f} {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("fsync cleaned segment %d: %w", s.base, err)
		}
	}
	c.res.BytesAfter += s.size
	return nil
}

// createCleaned creates the three ".cleaned" files of a segment at base,
// truncating leftovers. The segment's paths name the cleaned files until
// the swap renames them.
func createCleaned(fsys vfs.FS, dir string, base int64) (*segment, error) {
	s := &segment{base: base, next: base, maxTs: -1, maxTsOffset: -1, rollTs: -1}
	s.logPath = filepath.Join(dir, segmentName(base, logSuffix)+cleanedSuffix)
	s.offIdx = index{path: filepath.Join(dir, segmentName(base, indexSuffix)+cleanedSuffix), entrySize: offsetEntrySize}
	s.timeIdx = index{path: filepath.Join(dir, segmentName(base, timeIndexSuffix)+cleanedSuffix), entrySize: timeEntrySize}
	// The aborted-transaction index always gets a file, even empty, so that
	// recovery can tell which index a half-finished swap left in place.
	s.txn = txnIndex{path: filepath.Join(dir, segmentName(base, txnIndexSuffix)+cleanedSuffix)}
	s.txn.clear()
	flag := os.O_RDWR | os.O_APPEND | os.O_CREATE | os.O_TRUNC
	var err error
	if s.log, err = fsys.OpenFile(s.logPath, flag, 0o644); err != nil {
		return nil, fmt.Errorf("create %s: %w", s.logPath, err)
	}
	for _, ix := range []*index{&s.offIdx, &s.timeIdx} {
		if ix.f, err = fsys.OpenFile(ix.path, flag, 0o644); err != nil {
			_ = discardCleaned(fsys, s)
			return nil, fmt.Errorf("create %s: %w", ix.path, err)
		}
	}
	if s.txn.f, err = fsys.OpenFile(s.txn.path, flag, 0o644); err != nil {
		_ = discardCleaned(fsys, s)
		return nil, fmt.Errorf("create %s: %w", s.txn.path, err)
	}
	s.offIdx.reset()
	s.timeIdx.reset()
	s.refs.Store(1)
	return s, nil
}

// discardCleaned closes and removes a cleaned segment that will not be
// swapped in.
func discardCleaned(fsys vfs.FS, s *segment) error {
	return errors.Join(s.closeFiles(), s.removeFiles(fsys))
}
