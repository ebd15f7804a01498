package storage

import (
	"fmt"
	"sort"

	"github.com/sluicedev/sluice/protocol/batch"
)

// segView is what a reader needs of a segment, captured under Log.mu so
// the read itself runs without it. The reader holds a reference on seg.
type segView struct {
	seg  *segment
	base int64
	end  int64 // bytes of the file that belong to complete batches
	off  indexView
	tim  indexView
}

func (s *segment) viewLocked() segView {
	s.acquire()
	return segView{seg: s, base: s.base, end: s.size, off: s.offIdx.view(), tim: s.timeIdx.view()}
}

// segIndexLocked returns the index of the segment holding offset: the last
// one whose base is <= offset (0 if none).
func (l *Log) segIndexLocked(offset int64) int {
	i := sort.Search(len(l.mu.segs), func(i int) bool { return l.mu.segs[i].base > offset })
	return max(i-1, 0)
}

// Read returns whole batches starting with the one that contains offset:
// at least one batch even if it is larger than maxBytes, then more while
// the total stays within maxBytes, never a batch whose last offset is at or
// past maxOffset (an exclusive bound such as the high watermark), and never
// past the end of the segment holding offset (as Kafka does). Reading at
// the log end offset, or at or past maxOffset, returns no bytes. Offsets
// outside [LogStartOffset, LogEndOffset] give ErrOffsetOutOfRange. The
// returned slice is the caller's. Read does not wait for fsyncs.
func (l *Log) Read(offset int64, maxBytes int32, maxOffset int64) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		gen := l.truncGen.Load()
		out, err := l.readOnce(offset, maxBytes, maxOffset)
		// A truncation while we read may have changed the bytes; retry.
		if l.truncGen.Load() == gen || attempt == 3 {
			return out, err
		}
	}
}

func (l *Log) readOnce(offset int64, maxBytes int32, maxOffset int64) ([]byte, error) {
	l.mu.Lock()
	if l.mu.closed {
		l.mu.Unlock()
		return nil, ErrClosed
	}
	if offset < l.mu.lso || offset > l.mu.leo {
		lso, leo := l.mu.lso, l.mu.leo
		l.mu.Unlock()
		return nil, fmt.Errorf("%w: %d not in [%d, %d]", ErrOffsetOutOfRange, offset, lso, leo)
	}
	if offset == l.mu.leo || offset >= maxOffset {
		l.mu.Unlock()
		return nil, nil
	}
	interval := int64(l.mu.cfg.IndexIntervalBytes)
	i := l.segIndexLocked(offset)
	var views [2]segView
	views[0] = l.mu.segs[i].viewLocked()
	n := 1
	if i+1 < len(l.mu.segs) {
		views[1] = l.mu.segs[i+1].viewLocked()
		n++
	}
	l.mu.Unlock()
	defer func() {
		for _, v := range views[:n] {
			v.seg.release()
		}
	}()
	for _, v := range views[:n] {
		out, found, err := l.readSegment(v, offset, maxBytes, maxOffset, interval)
		if err != nil || found {
			return out, err
		}
	}
	return nil, nil
}

// readSegment reads from one segment; found is false when no batch in it
// reaches offset.
func (l *Log) readSegment(v segView, offset int64, maxBytes int32, maxOffset, interval int64) ([]byte, bool, error) {
	pos, lastRel, err := v.off.lookupOffset(offset - v.base)
	if err != nil {
		return nil, false, err
	}
	limit := max(int64(maxBytes), 1)
	chunk := int(max(min(v.end-pos, limit+2*interval+batch.HeaderSize), 1))
	sc := newScanner(v.seg.log, pos, v.end, false, chunk)
	start, stop := int64(-1), int64(-1)
	checked := lastRel < 0
	for sc.next() {
		h := &sc.h
		if !checked {
			checked = true
			if h.LastOffset() != v.base+lastRel {
				// The index does not point at the batch it names; it is
				// damaged. Fall back to scanning the whole segment.
				l.logger.Warn("storage: offset index entry does not match the log; scanning", "path", v.seg.offIdx.path)
				sc = newScanner(v.seg.log, 0, v.end, false, chunk)
				continue
			}
		}
		if start < 0 {
			if h.LastOffset() < offset {
				continue
			}
			if h.LastOffset() >= maxOffset {
				return nil, true, nil
			}
			start, stop = sc.pos, sc.next0
			continue
		}
		if h.LastOffset() >= maxOffset || sc.next0-start > limit {
			break
		}
		stop = sc.next0
	}
	if start < 0 {
		if sc.err != nil {
			return nil, false, &CorruptionError{Path: v.seg.logPath, Offset: sc.stop, Err: sc.err}
		}
		return nil, false, nil
	}
	if b, ok := sc.bytes(start, stop); ok {
		return b[:len(b):len(b)], true, nil
	}
	out := make([]byte, stop-start)
	if _, err := v.seg.log.ReadAt(out, start); err != nil {
		return nil, false, fmt.Errorf("read %s: %w", v.seg.logPath, err)
	}
	return out, true, nil
}

// OffsetForTimestamp finds the first batch, at or after the log start
// offset, whose MaxTimestamp is >= ts, using the segments' largest
// timestamps and time indexes (ListOffsets by timestamp). It returns that
// batch's base offset (raised to the log start offset) and MaxTimestamp;
// the broker refines to the exact record by decoding the batch. ok is false
// when no batch qualifies.
func (l *Log) OffsetForTimestamp(ts int64) (offset, timestamp int64, ok bool, err error) {
	l.mu.Lock()
	if l.mu.closed {
		l.mu.Unlock()
		return -1, -1, false, ErrClosed
	}
	lso := l.mu.lso
	var views []segView
	for _, s := range l.mu.segs {
		if len(views) > 0 || s.maxTs >= ts {
			views = append(views, s.viewLocked())
		}
	}
	l.mu.Unlock()
	defer func() {
		for _, v := range views {
			v.seg.release()
		}
	}()
	for _, v := range views {
		var pos int64
		if rel, found, err := v.tim.lookupTime(ts); err != nil {
			return -1, -1, false, err
		} else if found {
			if pos, _, err = v.off.lookupOffset(rel); err != nil {
				return -1, -1, false, err
			}
		}
		sc := newScanner(v.seg.log, pos, v.end, false, 0)
		for sc.next() {
			if sc.h.MaxTimestamp >= ts && sc.h.LastOffset() >= lso {
				return max(sc.h.BaseOffset, lso), sc.h.MaxTimestamp, true, nil
			}
		}
		if sc.err != nil {
			return -1, -1, false, &CorruptionError{Path: v.seg.logPath, Offset: sc.stop, Err: sc.err}
		}
	}
	return -1, -1, false, nil
}

// MaxTimestamp returns the largest batch MaxTimestamp in the log and the
// last offset of the first batch that has it (Kafka's shallow
// offsetOfMaxTimestamp), or (-1, -1) when no batch has a timestamp.
func (l *Log) MaxTimestamp() (ts, offset int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ts, offset = -1, -1
	for _, s := range l.mu.segs {
		if s.maxTs > ts {
			ts, offset = s.maxTs, s.maxTsOffset
		}
	}
	return ts, offset
}
