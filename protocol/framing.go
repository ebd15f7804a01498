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
// batches are written apart from the rest of the frame: from memory with
// writev, or from a segment file with sendfile, without being copied into
// the frame.
//
// external is called for every partition, in encoding order, with its
// topic and partition indexes in resp; when it reports ok, that
// partition's record batches (n bytes) are left out of the frame and its
// RecordBatches field is not used (external must not look at resp, which
// is being rewritten while it runs). AppendFetchResponse appends the frame
// without them to dst and, for each partition left out, in encoding order,
// the position in the appended frame where its n bytes belong to cuts.
// Writing the frame's bytes up to cuts[0], the first partition's batches,
// the bytes from cuts[0] to cuts[1], and so on, then the rest of the frame,
// produces exactly what AppendResponse would have with the batches in
// place; the frame's size field and the batches' length prefixes already
// count them. resp is left as it was given.
//
// Everything is still encoded by kmsg: each external partition's records
// are swapped for a random 16-byte marker while kmsg encodes the response,
// and each marker is then found (in encoding order, and checked to follow
// the length prefix kmsg writes for 16 bytes) and replaced by the length
// prefix for n bytes. ok is false, with dst and cuts as given, if a marker
// is not where it must be; the caller then encodes the response whole.
func AppendFetchResponse(dst []byte, corr int32, resp *kmsg.FetchResponse, external func(topic, partition int) (n int, ok bool), cuts []int) ([]byte, []int, bool) {
	var marker [16]byte
	binary.LittleEndian.PutUint64(marker[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(marker[8:], rand.Uint64())
	var sizes [16]int // small responses need no allocation
	var stackRecs [16][]byte
	lengths, records := sizes[:0], stackRecs[:0]
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			n, ok := external(i, j)
			if !ok {
				continue
			}
			p := &resp.Topics[i].Partitions[j]
			records = append(records, p.RecordBatches)
			lengths = append(lengths, n)
			p.RecordBatches = marker[:]
		}
	}
	start := len(dst)
	out := AppendResponse(dst, corr, resp)
	restoreRecords(resp, records, marker[:])
	if len(lengths) == 0 {
		return out, cuts, true
	}
	first := len(cuts)
	cuts, ok := spliceMarkers(out[start:], marker[:], lengths, resp.IsFlexible(), cuts)
	if !ok {
		return dst, cuts[:first], false
	}
	end := cuts[len(cuts)-1] // spliceMarkers appends the compacted length last
	return out[:start+end], cuts[:len(cuts)-1], true
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
// length prefix before it, is replaced by the length prefix for the
// corresponding entry of lengths, and the frame's size field is set to the
// size of the frame with that many bytes put back at each place. It
// appends to cuts the position in the compacted frame where each entry's
// bytes go, then the compacted length; ok is false, with frame untouched,
// when a marker is missing or not preceded by the expected prefix.
func spliceMarkers(frame, marker []byte, lengths []int, flexible bool, cuts []int) ([]int, bool) {
	var want []byte
	if flexible {
		want = kbin.AppendUvarint(nil, 1+uint32(len(marker)))
	} else {
		want = kbin.AppendInt32(nil, int32(len(marker)))
	}
	// Find every marker before moving anything, so a failure leaves frame
	// intact.
	first := len(cuts)
	from := 0
	for range lengths {
		i := bytes.Index(frame[from:], marker)
		if i < 0 {
			return cuts[:first], false
		}
		i += from
		if i-len(want) < from || !bytes.Equal(frame[i-len(want):i], want) {
			return cuts[:first], false
		}
		cuts = append(cuts, i) // the marker's position, for now
		from = i + len(marker)
	}
	w, r := 0, 0 // write and read positions; w <= r throughout
	size := int64(len(frame)) - 4
	for k, n := range lengths {
		at := cuts[first+k]
		w += copy(frame[w:], frame[r:at-len(want)])
		var prefix [5]byte
		var p []byte
		if flexible {
			p = kbin.AppendUvarint(prefix[:0], 1+uint32(n))
		} else {
			p = kbin.AppendInt32(prefix[:0], int32(n))
		}
		w += copy(frame[w:], p)
		cuts[first+k] = w
		r = at + len(marker)
		size += int64(len(p)+n) - int64(len(want)+len(marker))
	}
	w += copy(frame[w:], frame[r:])
	binary.BigEndian.PutUint32(frame, uint32(size))
	return append(cuts, w), true
}
