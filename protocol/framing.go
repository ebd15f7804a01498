package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
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

// AppendFetchResponse is AppendResponse for a Fetch response whose record
// batches are written without being copied into the frame: the record
// batches of every partition holding at least spliceMin (> 0) bytes are
// left out of the encoding and returned as pieces of their own.
//
// It appends the encoded frame, minus those record batches, to dst and
// returns it together with pieces: slices of that returned buffer
// alternating with the record-batch slices, which written in order (with
// writev, net.Buffers) form exactly the frame AppendResponse would have
// produced. Without any partition at or above spliceMin, the only piece is
// the whole frame. The pieces are appended to the pieces argument, so
// callers can reuse one slice. resp is left as it was given.
//
// Everything is still encoded by kmsg: each spliced partition's records are
// swapped for a random 16-byte marker while kmsg encodes the response, and
// each marker is then found (in encoding order, and checked to follow the
// length prefix kmsg writes for 16 bytes) and replaced by the real length
// prefix. If a marker is not where it must be, the response is encoded
// whole, as by AppendResponse.
func AppendFetchResponse(dst []byte, corr int32, resp *kmsg.FetchResponse, spliceMin int, pieces [][]byte) ([]byte, [][]byte) {
	spliceMin = max(spliceMin, 1)
	var marker [16]byte
	binary.LittleEndian.PutUint64(marker[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(marker[8:], rand.Uint64())
	var stack [16][]byte
	records := stack[:0]
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			p := &resp.Topics[i].Partitions[j]
			if len(p.RecordBatches) >= spliceMin {
				records = append(records, p.RecordBatches)
				p.RecordBatches = marker[:]
			}
		}
	}
	start := len(dst)
	dst = AppendResponse(dst, corr, resp)
	if len(records) == 0 {
		return dst, append(pieces, dst[start:])
	}
	restoreRecords(resp, records, marker[:])
	cuts, ok := spliceMarkers(dst[start:], marker[:], records, resp.IsFlexible())
	if !ok {
		dst = AppendResponse(dst[:start], corr, resp)
		return dst, append(pieces, dst[start:])
	}
	// cuts[k] is where records[k] goes in the compacted frame, whose
	// length is the last element of cuts.
	frame := dst[start : start+cuts[len(records)]]
	prev := 0
	for k, rec := range records {
		pieces = append(pieces, frame[prev:cuts[k]], rec)
		prev = cuts[k]
	}
	return dst[:start+len(frame)], append(pieces, frame[prev:])
}

// restoreRecords puts back the record batches that AppendFetchResponse
// swapped for marker, in the order it took them out.
func restoreRecords(resp *kmsg.FetchResponse, records [][]byte, marker []byte) {
	k := 0
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			p := &resp.Topics[i].Partitions[j]
			if len(p.RecordBatches) == len(marker) && &p.RecordBatches[0] == &marker[0] {
				p.RecordBatches = records[k]
				k++
			}
		}
	}
}

// spliceMarkers rewrites frame in place: each marker, with the 16-byte
// length prefix before it, is replaced by the prefix of the real records
// length, and the frame's size field is set to the size of the frame with
// the records put back. It returns the position in the compacted frame
// where each record batch goes, followed by the compacted length, or false
// when a marker is missing or not preceded by the expected prefix.
func spliceMarkers(frame, marker []byte, records [][]byte, flexible bool) ([]int, bool) {
	var want []byte
	if flexible {
		want = kbin.AppendUvarint(nil, 1+uint32(len(marker)))
	} else {
		want = kbin.AppendInt32(nil, int32(len(marker)))
	}
	// Find every marker before moving anything, so a failure leaves frame
	// intact for the fallback.
	at := make([]int, len(records))
	from := 0
	for k := range records {
		i := bytes.Index(frame[from:], marker)
		if i < 0 {
			return nil, false
		}
		i += from
		if i-len(want) < from || !bytes.Equal(frame[i-len(want):i], want) {
			return nil, false
		}
		at[k] = i
		from = i + len(marker)
	}
	cuts := make([]int, 0, len(records)+1)
	w, r := 0, 0 // write and read positions; w <= r throughout
	size := int64(len(frame)) - 4
	for k, rec := range records {
		prefixAt := at[k] - len(want)
		w += copy(frame[w:], frame[r:prefixAt])
		var prefix [5]byte
		var p []byte
		if flexible {
			p = kbin.AppendUvarint(prefix[:0], 1+uint32(len(rec)))
		} else {
			p = kbin.AppendInt32(prefix[:0], int32(len(rec)))
		}
		w += copy(frame[w:], p)
		cuts = append(cuts, w)
		r = at[k] + len(marker)
		size += int64(len(p)+len(rec)) - int64(len(want)+len(marker))
	}
	w += copy(frame[w:], frame[r:])
	binary.BigEndian.PutUint32(frame, uint32(size))
	return append(cuts, w), true
}
