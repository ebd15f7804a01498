package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/sluicedev/sluice/protocol/batch"
	"github.com/sluicedev/sluice/storage/vfs"
)

// scanChunk is how much a scanner reads at once.
const scanChunk = 256 << 10

// scanner walks the batches of a segment file from a start position to end
// (exclusive), reading in large chunks. With verify it checks every batch
// with batch.Check (CRC included); without, it only checks the header
// shape, which is enough to navigate a file already known good.
//
//	s := newScanner(f, 0, size, true, 0)
//	for s.next() { use(s.h, s.pos) }
//	if s.err != nil { /* torn or corrupt at s.stop */ }
type scanner struct {
	f      vfs.File
	end    int64
	verify bool
	chunk  int

	buf   []byte
	bufAt int64 // file position of buf[0]

	next0 int64 // position of the next batch
	// Valid after next returns true.
	pos int64        // position of the current batch
	h   batch.Header // its header
	raw []byte       // its bytes (whole batch when verify, else the header)
	// Set when next returns false before end: the reason, and where.
	err  error
	stop int64
}

func newScanner(f vfs.File, start, end int64, verify bool, chunk int) *scanner {
	if chunk <= 0 {
		chunk = scanChunk
	}
	return &scanner{f: f, end: end, verify: verify, chunk: chunk, next0: start, bufAt: start}
}

// window returns file bytes [pos, pos+n), reading a new chunk if needed.
func (s *scanner) window(pos int64, n int) ([]byte, error) {
	if pos >= s.bufAt && pos+int64(n) <= s.bufAt+int64(len(s.buf)) {
		off := pos - s.bufAt
		return s.buf[off : off+int64(n)], nil
	}
	want := int64(max(n, s.chunk))
	want = min(want, s.end-pos)
	if cap(s.buf) < int(want) {
		s.buf = make([]byte, want)
	}
	s.buf = s.buf[:want]
	got, err := s.f.ReadAt(s.buf, pos)
	s.buf, s.bufAt = s.buf[:got], pos
	if got < n {
		if err == nil || errors.Is(err, io.EOF) {
			err = batch.ErrShort // the file shrank under us
		}
		return nil, err
	}
	return s.buf[:n], nil
}

// next advances to the next batch. It returns false at end (err nil) or at
// the first batch that is torn or invalid (err set, stop = its position).
func (s *scanner) next() bool {
	pos := s.next0
	if pos >= s.end {
		return false
	}
	fail := func(err error) bool {
		s.err, s.stop = err, pos
		return false
	}
	if s.end-pos < 12 {
		return fail(batch.ErrShort)
	}
	w, err := s.window(pos, 12)
	if err != nil {
		return fail(err)
	}
	length := int32(binary.BigEndian.Uint32(w[8:]))
	if length < batch.HeaderSize-12 {
		return fail(fmt.Errorf("%w: length %d", batch.ErrInvalid, length))
	}
	size := 12 + int64(length)
	if size > s.end-pos {
		return fail(fmt.Errorf("%w: batch of %d bytes, %d left", batch.ErrShort, size, s.end-pos))
	}
	n := batch.HeaderSize
	if s.verify {
		n = int(size)
	}
	raw, err := s.window(pos, n)
	if err != nil {
		return fail(err)
	}
	var h batch.Header
	if s.verify {
		h, err = batch.Check(raw)
	} else {
		h, err = batch.ParseHeader(raw)
		if err == nil && (h.Magic != batch.Magic || h.LastOffsetDelta < 0) {
			err = fmt.Errorf("%w: magic %d, last offset delta %d", batch.ErrInvalid, h.Magic, h.LastOffsetDelta)
		}
	}
	if err != nil {
		return fail(err)
	}
	s.pos, s.h, s.raw, s.next0 = pos, h, raw, pos+size
	return true
}

// whole returns the current batch's bytes, reading past its header when
// the scanner does not verify (and so only read the header). They are
// valid until the next call.
func (s *scanner) whole() ([]byte, error) {
	if len(s.raw) == s.h.Size() {
		return s.raw, nil
	}
	return s.window(s.pos, s.h.Size())
}

// bytes returns file bytes [from, to) when the scanner's buffer still holds
// them, so a reader can return them without a second read.
func (s *scanner) bytes(from, to int64) ([]byte, bool) {
	if from >= s.bufAt && to <= s.bufAt+int64(len(s.buf)) {
		return s.buf[from-s.bufAt : to-s.bufAt], true
	}
	return nil, false
}
