package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// FrameChunk is the most ReadFrame allocates ahead of the bytes that have
// actually arrived. A peer that announces a huge frame and then stalls or
// disconnects costs at most this much memory beyond what it really sent.
const FrameChunk = 64 << 10

var (
	// ErrFrameTooLarge is returned by ReadFrame when the announced frame
	// size exceeds the caller's maximum (Kafka's socket.request.max.bytes).
	// The connection must be closed: the rest of the frame is unread.
	ErrFrameTooLarge = errors.New("protocol: frame larger than the maximum")
	// ErrInvalidFrame is returned by ReadFrame when the announced frame
	// size is negative, which no Kafka peer ever sends.
	ErrInvalidFrame = errors.New("protocol: negative frame size")
)

// ReadFrame reads one size-prefixed Kafka frame from r and returns its body
// (the bytes after the 4-byte big-endian size).
//
// The body is read into buf when cap(buf) is large enough; otherwise buf's
// capacity is reused as a start and the slice grows only as bytes arrive, in
// steps of at most FrameChunk beyond what has been received (or doubling what
// has been received, whichever is larger, so that honest large frames are
// read in O(size) copies). An announced size is never trusted for an up-front
// allocation.
//
// The returned slice aliases buf (or its replacement): anything decoded from
// it that keeps []byte fields (kmsg does, for records and opaque metadata)
// must be done with before buf is passed to ReadFrame again.
//
// Errors: io.EOF when r ends cleanly before a frame starts;
// io.ErrUnexpectedEOF when it ends inside a frame; ErrInvalidFrame or
// ErrFrameTooLarge (wrapped with the announced size) for a bad size; or the
// reader's own error.
func ReadFrame(r io.Reader, maxSize int32, buf []byte) ([]byte, error) {
	body, err := readFrame(r, maxSize, buf)
	if err != nil {
		return nil, err
	}
	return body, nil
}

// readFrame is ReadFrame, except that it also returns the buffer it had
// grown when it fails, so that tests can check the allocation bound on
// truncated input.
func readFrame(r io.Reader, maxSize int32, buf []byte) ([]byte, error) {
	var sizeBuf [4]byte
	if _, err := io.ReadFull(r, sizeBuf[:]); err != nil {
		return nil, err // io.EOF only when nothing of the frame was read
	}
	size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
	switch {
	case size < 0:
		return nil, fmt.Errorf("%w: %d", ErrInvalidFrame, size)
	case size > maxSize:
		return nil, fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, size, maxSize)
	}
	n := int(size)
	if cap(buf) >= n {
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return buf, unexpected(err)
		}
		return buf, nil
	}
	buf = buf[:0]
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = growFrame(buf, n)
		}
		got, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+got]
		if err != nil {
			return buf, unexpected(err)
		}
	}
	return buf, nil
}

// growFrame returns a copy of buf with room for more bytes of a frame of
// total size n: the new capacity exceeds the bytes already received by at
// most max(FrameChunk, len(buf)) and never exceeds n.
func growFrame(buf []byte, n int) []byte {
	step := max(FrameChunk, len(buf))
	c := min(n, len(buf)+step)
	grown := make([]byte, len(buf), c)
	copy(grown, buf)
	return grown
}

// unexpected maps an EOF inside a frame to io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
