package storage

import (
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/sluicedev/sluice/protocol/batch"
	"github.com/sluicedev/sluice/storage/vfs"
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
	out, _, err := l.ReadInto(nil, offset, maxBytes, maxOffset)
	return out, err
}

// ReadInto is Read through a caller-supplied buffer, for callers that
// recycle read buffers (Fetch). The batches are read into buf's array when
// cap(buf) covers them (the larger of maxBytes and the first batch);
// otherwise a larger buffer is allocated. It returns the batches and
// the whole buffer they alias (buf, or the one allocated), so the caller can
// reuse that buffer once it is done with the batches; buf's previous
// contents are overwritten either way. A read_committed fetch passes the
// last stable offset as maxOffset and asks AbortedTransactions(offset,
// end) with end = batch.EndOffset(data), the equivalent of
// Span.NextOffset for this inline path.
func (l *Log) ReadInto(buf []byte, offset int64, maxBytes int32, maxOffset int64) (data, used []byte, err error) {
	for attempt := 0; ; attempt++ {
		gen := l.truncGen.Load()
		data, buf, err = l.readOnce(buf, offset, maxBytes, maxOffset)
		// A truncation while we read may have changed the bytes; retry.
		if l.truncGen.Load() == gen || attempt == 3 {
			return data, buf, err
		}
	}
}

func (l *Log) readOnce(buf []byte, offset int64, maxBytes int32, maxOffset int64) ([]byte, []byte, error) {
	views, n, err := l.viewsFor(offset, maxOffset)
	if err != nil || n == 0 {
		return nil, buf, err
	}
	defer func() {
		for _, v := range views[:n] {
			v.seg.release()
		}
	}()
	for _, v := range views[:n] {
		out, found, err := l.readSegment(v, &buf, offset, maxBytes, maxOffset)
		if err != nil || found {
			return out, buf, err
		}
	}
	return nil, buf, nil
}

// seekChunk is the read size used while looking for the first batch to
// return: only batch headers are needed there, and the batch before the
// one wanted (which the index may point at) can be large.
const seekChunk = 16 << 10

// readSegment reads from one segment through *buf (which it may replace
// with a larger buffer); found is false when no batch in it reaches offset.
//
// It reads in two steps so that each returned byte is read from the file
// once: batch headers from the indexed position, in small reads, up to the
// first batch reaching offset; then, in one read, everything from that
// batch on that may be returned.
func (l *Log) readSegment(v segView, buf *[]byte, offset int64, maxBytes int32, maxOffset int64) ([]byte, bool, error) {
	pos, lastRel, err := v.off.lookupOffset(offset - v.base)
	if err != nil {
		return nil, false, err
	}
	sc := newScanner(v.seg.log, pos, v.end, false, seekChunk)
	sc.buf = (*buf)[:0]
	defer func() { *buf = sc.buf[:cap(sc.buf)] }()
	if !l.seekBatch(&sc, v, offset, lastRel) {
		if sc.err != nil {
			return nil, false, &CorruptionError{Path: v.seg.logPath, Offset: sc.stop, Err: sc.err}
		}
		return nil, false, nil
	}
	if sc.h.LastOffset() >= maxOffset {
		return nil, true, nil
	}
	limit := max(int64(maxBytes), 1)
	start, stop := sc.pos, sc.next0
	// Every batch that can be returned lies below start+limit, except
	// the first, which may be larger (KIP-74).
	want := min(v.end-start, max(limit, stop-start))
	if _, held := sc.bytes(start, start+want); !held {
		if err := loadWindow(sc, start, want); err != nil {
			return nil, false, fmt.Errorf("read %s: %w", v.seg.logPath, err)
		}
	}
	// A batch is at least HeaderSize bytes: stop before one that cannot
	// fit, so that no header beyond the window is read.
	for stop-start+batch.HeaderSize <= limit && sc.next() {
		if sc.h.LastOffset() >= maxOffset || sc.next0-start > limit {
			break
		}
		stop = sc.next0
	}
	b, ok := sc.bytes(start, stop) // within the window loaded above
	if !ok {
		// Only if the file changed under us; read the span again.
		if err := loadWindow(sc, start, stop-start); err != nil {
			return nil, false, fmt.Errorf("read %s: %w", v.seg.logPath, err)
		}
		b = sc.buf
	}
	return b[:len(b):len(b)], true, nil
}

// seekBatch advances *sc to the first batch whose last offset is at or
// past offset and reports whether there is one. lastRel is the relative
// last offset the index promised at sc's start position (-1: none); when
// the batch there does not match it, the index is damaged and the whole
// segment is scanned instead.
func (l *Log) seekBatch(sc **scanner, v segView, offset, lastRel int64) bool {
	checked := lastRel < 0
	for (*sc).next() {
		h := &(*sc).h
		if !checked {
			checked = true
			if h.LastOffset() != v.base+lastRel {
				l.logger.Warn("storage: offset index entry does not match the log; scanning", "path", v.seg.offIdx.path)
				scanned := (*sc).buf
				*sc = newScanner(v.seg.log, 0, v.end, false, seekChunk)
				(*sc).buf = scanned[:0]
				continue
			}
		}
		if h.LastOffset() >= offset {
			return true
		}
	}
	return false
}

// loadWindow makes sc's buffer hold exactly file bytes [pos, pos+n),
// reusing its capacity when it suffices.
func loadWindow(sc *scanner, pos, n int64) error {
	if int64(cap(sc.buf)) < n {
		sc.buf = make([]byte, n)
	}
	sc.buf = sc.buf[:n]
	got, err := sc.f.ReadAt(sc.buf, pos)
	sc.buf, sc.bufAt = sc.buf[:got], pos
	if int64(got) < n {
		if err == nil || errors.Is(err, io.EOF) {
			err = batch.ErrShort // the file shrank under us
		}
		return err
	}
	return nil
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

// Span is a run of whole batches in one segment file: where Read's answer
// lies, rather than its bytes, for callers that send it from the file
// (sendfile). The segment's files stay open until Release, even if
// retention or compaction removes the segment meanwhile, so the bytes a
// Span names do not change unless the log is truncated; Intact reports
// whether it was.
type Span struct {
	// File is the segment file; read it with ReadAt.
	File vfs.File
	// Pos and Len are the byte range of the batches in File.
	Pos, Len int64
	// Records is the sum of the batches' record counts.
	Records int64
	// NextOffset is the offset after the span's last batch: the upper
	// bound to pass to AbortedTransactions for a read_committed fetch.
	NextOffset int64

	seg *segment
	log *Log
	gen uint64
}

// Release unpins the segment. It is safe to call on the zero Span, and
// only once per Span.
func (s *Span) Release() {
	if s.seg != nil {
		s.seg.release()
		s.seg = nil
	}
}

// Intact reports whether the log has not been truncated since the span was
// found, so that its bytes are still the batches it was found to hold.
func (s *Span) Intact() bool { return s.log == nil || s.log.truncGen.Load() == s.gen }

// ReadSpan finds the batches Read(offset, maxBytes, maxOffset) would
// return without reading them: it reads batch headers only (and, for small
// batches, the small windows they lie in), through scratch, which it
// returns (possibly grown) for reuse. An empty answer is a zero Span. The
// caller must Release a non-empty Span.
func (l *Log) ReadSpan(offset int64, maxBytes int32, maxOffset int64, scratch []byte) (Span, []byte, error) {
	for attempt := 0; ; attempt++ {
		gen := l.truncGen.Load()
		sp, err := l.spanOnce(offset, maxBytes, maxOffset, &scratch)
		if l.truncGen.Load() == gen || attempt == 3 {
			sp.gen = gen
			return sp, scratch, err
		}
		sp.Release()
	}
}

func (l *Log) spanOnce(offset int64, maxBytes int32, maxOffset int64, scratch *[]byte) (Span, error) {
	views, n, err := l.viewsFor(offset, maxOffset)
	if err != nil || n == 0 {
		return Span{}, err
	}
	defer func() {
		for _, v := range views[:n] {
			v.seg.release()
		}
	}()
	for _, v := range views[:n] {
		sp, found, err := l.spanSegment(v, scratch, offset, maxBytes, maxOffset)
		if err != nil || found {
			return sp, err
		}
	}
	return Span{}, nil
}

// viewsFor checks offset as Read does and returns views of the segment
// holding it and the next one (n is 0 when there is nothing to read). The
// caller releases the views.
func (l *Log) viewsFor(offset, maxOffset int64) ([2]segView, int, error) {
	var views [2]segView
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return views, 0, ErrClosed
	}
	if offset < l.mu.lso || offset > l.mu.leo {
		return views, 0, fmt.Errorf("%w: %d not in [%d, %d]", ErrOffsetOutOfRange, offset, l.mu.lso, l.mu.leo)
	}
	if offset == l.mu.leo || offset >= maxOffset {
		return views, 0, nil
	}
	i := l.segIndexLocked(offset)
	views[0] = l.mu.segs[i].viewLocked()
	n := 1
	if i+1 < len(l.mu.segs) {
		views[1] = l.mu.segs[i+1].viewLocked()
		n++
	}
	return views, n, nil
}

// spanSegment is readSegment walking headers only.
func (l *Log) spanSegment(v segView, scratch *[]byte, offset int64, maxBytes int32, maxOffset int64) (Span, bool, error) {
	pos, lastRel, err := v.off.lookupOffset(offset - v.base)
	if err != nil {
		return Span{}, false, err
	}
	sc := newScanner(v.seg.log, pos, v.end, false, seekChunk)
	sc.buf = (*scratch)[:0]
	defer func() { *scratch = sc.buf[:cap(sc.buf)] }()
	if !l.seekBatch(&sc, v, offset, lastRel) {
		if sc.err != nil {
			return Span{}, false, &CorruptionError{Path: v.seg.logPath, Offset: sc.stop, Err: sc.err}
		}
		return Span{}, false, nil
	}
	if sc.h.LastOffset() >= maxOffset {
		return Span{}, true, nil
	}
	limit := max(int64(maxBytes), 1)
	start, stop, records, next := sc.pos, sc.next0, int64(sc.h.NumRecords), sc.h.NextOffset()
	for stop-start+batch.HeaderSize <= limit && sc.next() {
		if sc.h.LastOffset() >= maxOffset || sc.next0-start > limit {
			break
		}
		stop, records, next = sc.next0, records+int64(sc.h.NumRecords), sc.h.NextOffset()
	}
	v.seg.acquire() // the span's own reference; the view's is released by the caller
	return Span{File: v.seg.log, Pos: start, Len: stop - start, Records: records, NextOffset: next, seg: v.seg, log: l}, true, nil
}
