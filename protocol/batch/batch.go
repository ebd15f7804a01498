package batch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// HeaderSize is the size of the fixed v2 batch header; the records follow it.
const HeaderSize = 61

// lengthEnd is where the bytes counted by Length begin: BaseOffset (8) plus
// Length itself (4).
const lengthEnd = 12

// minLength is the smallest valid Length: a header with zero records.
const minLength = HeaderSize - lengthEnd

// Byte positions of the header fields; see the table in doc.go.
const (
	posBaseOffset      = 0
	posLength          = 8
	posLeaderEpoch     = 12
	posMagic           = 16
	posCRC             = 17
	posAttributes      = 21
	posLastOffsetDelta = 23
	posFirstTimestamp  = 27
	posMaxTimestamp    = 35
	posProducerID      = 43
	posProducerEpoch   = 51
	posBaseSequence    = 53
	posNumRecords      = 57
)

// Attribute bits.
const (
	attrCodecMask     = 0x07
	attrLogAppendTime = 0x08
	attrTransactional = 0x10
	attrControl       = 0x20
)

// Magic is the only record-batch format version this package understands.
const Magic = 2

// NoSequence is the BaseSequence of a batch that carries no producer
// sequence (RecordBatch.NO_SEQUENCE in Kafka).
const NoSequence = -1

var (
	// ErrShort is returned when fewer bytes are present than the header or
	// the Length field require. At the end of a segment file or a fetch
	// response this means the tail is torn (a partial write or a truncated
	// response), not that the data is corrupt.
	ErrShort = errors.New("batch: short batch")
	// ErrCorrupt is returned when the stored CRC-32C does not match the bytes
	// from Attributes to the end of the batch: the batch was damaged after
	// the producer wrote it.
	ErrCorrupt = errors.New("batch: crc mismatch")
	// ErrMagic is returned for batches whose magic byte is not 2 (the v0/v1
	// message sets that Kafka 0.11 replaced); this package cannot read them.
	ErrMagic = errors.New("batch: unsupported magic")
	// ErrInvalid is returned when the header is self-inconsistent: Length too
	// small or not matching the buffer, or negative LastOffsetDelta or
	// NumRecords. A producer or disk sending these is broken.
	ErrInvalid = errors.New("batch: invalid batch")
)

// castagnoli is the CRC-32C table used by v2 batches. crc32.MakeTable
// returns a shared, hardware-accelerated table for this polynomial, so this
// is an immutable value, not mutable package state.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Codec is the compression codec stored in the low three attribute bits.
type Codec int8

// Compression codecs, numbered as on the wire.
const (
	None Codec = iota
	Gzip
	Snappy
	LZ4
	Zstd
)

// String names the codec as Kafka's compression.type config does.
func (c Codec) String() string {
	switch c {
	case None:
		return "none"
	case Gzip:
		return "gzip"
	case Snappy:
		return "snappy"
	case LZ4:
		return "lz4"
	case Zstd:
		return "zstd"
	default:
		return fmt.Sprintf("codec(%d)", int8(c))
	}
}

// Header is the decoded fixed part of a v2 record batch. It is a plain
// value: changing it does not change the bytes it was parsed from.
type Header struct {
	BaseOffset           int64
	Length               int32 // bytes after the Length field
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	FirstTimestamp       int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	NumRecords           int32
}

// ParseHeader decodes the first HeaderSize bytes of b. It checks nothing
// beyond the length of b (ErrShort); use Check to validate a whole batch.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, ErrShort
	}
	be := binary.BigEndian
	return Header{
		BaseOffset:           int64(be.Uint64(b[posBaseOffset:])),
		Length:               int32(be.Uint32(b[posLength:])),
		PartitionLeaderEpoch: int32(be.Uint32(b[posLeaderEpoch:])),
		Magic:                int8(b[posMagic]),
		CRC:                  be.Uint32(b[posCRC:]),
		Attributes:           int16(be.Uint16(b[posAttributes:])),
		LastOffsetDelta:      int32(be.Uint32(b[posLastOffsetDelta:])),
		FirstTimestamp:       int64(be.Uint64(b[posFirstTimestamp:])),
		MaxTimestamp:         int64(be.Uint64(b[posMaxTimestamp:])),
		ProducerID:           int64(be.Uint64(b[posProducerID:])),
		ProducerEpoch:        int16(be.Uint16(b[posProducerEpoch:])),
		BaseSequence:         int32(be.Uint32(b[posBaseSequence:])),
		NumRecords:           int32(be.Uint32(b[posNumRecords:])),
	}, nil
}

// Size is the total number of bytes of the batch, 12 + Length. It is
// meaningless (possibly negative) for a header that failed Check.
func (h Header) Size() int { return lengthEnd + int(h.Length) }

// LastOffset is the offset of the last record the batch was created with.
// Compaction may remove records but keeps LastOffsetDelta, so this stays
// the batch's upper bound.
func (h Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// NextOffset is the offset that follows the batch: LastOffset + 1.
func (h Header) NextOffset() int64 { return h.LastOffset() + 1 }

// Codec is the compression codec of the records.
func (h Header) Codec() Codec { return Codec(h.Attributes & attrCodecMask) }

// LogAppendTime reports whether the timestamp type is LogAppendTime, in
// which case MaxTimestamp is the broker's append time for every record.
func (h Header) LogAppendTime() bool { return h.Attributes&attrLogAppendTime != 0 }

// Transactional reports whether the batch belongs to a transaction (KIP-98).
func (h Header) Transactional() bool { return h.Attributes&attrTransactional != 0 }

// Control reports whether the batch holds a control record (a transaction
// commit or abort marker) rather than user data.
func (h Header) Control() bool { return h.Attributes&attrControl != 0 }

// LastSequence is the producer sequence of the last record, BaseSequence +
// LastOffsetDelta wrapping past math.MaxInt32 to 0 as Kafka's
// DefaultRecordBatch.incrementSequence does. It is NoSequence when the batch
// has no sequence.
func (h Header) LastSequence() int32 {
	if h.BaseSequence == NoSequence {
		return NoSequence
	}
	return IncrementSequence(h.BaseSequence, h.LastOffsetDelta)
}

// IncrementSequence adds inc (>= 0) to the producer sequence seq, wrapping
// from math.MaxInt32 to 0 as idempotent producers do.
func IncrementSequence(seq, inc int32) int32 {
	if seq > math.MaxInt32-inc {
		return inc - (math.MaxInt32 - seq) - 1
	}
	return seq + inc
}

// Check validates that b is exactly one well-formed v2 batch and returns its
// header. Errors, in the order they are checked: ErrShort (b shorter than
// the header or than Length says), ErrInvalid (Length below the header size
// or b longer than the batch), ErrMagic, ErrCorrupt (CRC), ErrInvalid
// (negative LastOffsetDelta or NumRecords). Errors are wrapped with detail;
// test them with errors.Is.
func Check(b []byte) (Header, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, err
	}
	if h.Length < minLength {
		return h, fmt.Errorf("%w: length %d below header size", ErrInvalid, h.Length)
	}
	switch size := h.Size(); {
	case len(b) < size:
		return h, fmt.Errorf("%w: have %d of %d bytes", ErrShort, len(b), size)
	case len(b) > size:
		return h, fmt.Errorf("%w: %d trailing bytes after the batch", ErrInvalid, len(b)-size)
	}
	if h.Magic != Magic {
		return h, fmt.Errorf("%w: %d", ErrMagic, h.Magic)
	}
	if got := crc32.Checksum(b[posAttributes:], castagnoli); got != h.CRC {
		return h, fmt.Errorf("%w: stored %08x, computed %08x", ErrCorrupt, h.CRC, got)
	}
	if h.LastOffsetDelta < 0 || h.NumRecords < 0 {
		return h, fmt.Errorf("%w: last offset delta %d, records %d", ErrInvalid, h.LastOffsetDelta, h.NumRecords)
	}
	return h, nil
}

// SetBaseOffset writes off into the BaseOffset field. The field is outside
// the CRC, so the batch stays valid. It does nothing if b is shorter than
// the header.
func SetBaseOffset(b []byte, off int64) {
	if len(b) < HeaderSize {
		return
	}
	binary.BigEndian.PutUint64(b[posBaseOffset:], uint64(off))
}

// SetPartitionLeaderEpoch writes e into the PartitionLeaderEpoch field,
// which the leader stamps on append (KIP-101). The field is outside the CRC.
// It does nothing if b is shorter than the header.
func SetPartitionLeaderEpoch(b []byte, e int32) {
	if len(b) < HeaderSize {
		return
	}
	binary.BigEndian.PutUint32(b[posLeaderEpoch:], uint32(e))
}

// SetLogAppendTime marks the batch as using LogAppendTime (attribute bit 3),
// sets MaxTimestamp to ts and recomputes the CRC over the rest of b, as
// Kafka's DefaultRecordBatch.setMaxTimestamp does. FirstTimestamp is left
// alone: consumers of a LogAppendTime batch use MaxTimestamp for every
// record. b must hold exactly one batch; it does nothing if b is shorter
// than the header.
func SetLogAppendTime(b []byte, ts int64) {
	if len(b) < HeaderSize {
		return
	}
	be := binary.BigEndian
	attrs := be.Uint16(b[posAttributes:]) | attrLogAppendTime
	be.PutUint16(b[posAttributes:], attrs)
	be.PutUint64(b[posMaxTimestamp:], uint64(ts))
	be.PutUint32(b[posCRC:], crc32.Checksum(b[posAttributes:], castagnoli))
}

// Next splits the first batch off b using only its Length field; it does
// not check the CRC or magic (call Check on the result for that). It
// returns ErrShort when b holds less than a whole batch (a torn tail;
// this includes an empty b) and ErrInvalid when Length is below the header
// size, which would otherwise let a caller loop forever. Callers iterate
// while len(rest) > 0.
func Next(b []byte) (batch, rest []byte, err error) {
	if len(b) < lengthEnd {
		return nil, b, ErrShort
	}
	length := int32(binary.BigEndian.Uint32(b[posLength:]))
	if length < minLength {
		return nil, b, fmt.Errorf("%w: length %d below header size", ErrInvalid, length)
	}
	size := lengthEnd + int(length)
	if len(b) < size {
		return nil, b, ErrShort
	}
	return b[:size:size], b[size:], nil
}
