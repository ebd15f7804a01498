package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Record batch v2 layout constants (see doc.go for the table).
const (
	batchHeaderSize = 61 // BaseOffset through NumRecords
	batchLengthEnd  = 12 // BaseOffset (8) + Length (4): Length counts what follows
	batchCRCOffset  = 17 // CRC field; it covers Attributes (offset 21) to the end
	batchCRCStart   = 21
	batchLengthMin  = batchHeaderSize - batchLengthEnd // 49: Length of a batch with no records
	// minRecordSize is the smallest possible encoded record: one byte each
	// for length, attributes, timestamp delta, offset delta, key length,
	// value length and header count.
	minRecordSize = 7
)

// Attribute bits of a v2 record batch.
const (
	attrCodecMask     = 0x07
	attrLogAppendTime = 0x08
	attrTransactional = 0x10
	attrControl       = 0x20
)

var (
	// ErrInvalidBatch is returned for a record batch whose framing is
	// wrong: too short, Length disagreeing with the bytes given, magic other
	// than 2, inconsistent NumRecords / LastOffsetDelta. Kafka answers
	// INVALID_RECORD or CORRUPT_MESSAGE for these.
	ErrInvalidBatch = errors.New("protocol: invalid record batch")
	// ErrBatchCRC is returned when a batch's CRC-32C does not match its
	// contents (Kafka: CORRUPT_MESSAGE).
	ErrBatchCRC = errors.New("protocol: record batch crc mismatch")
	// ErrInvalidRecord is returned when a record inside a batch does not
	// decode, its length disagrees with its fields, its offset delta is
	// out of sequence, or bytes remain after the last record (Kafka:
	// INVALID_RECORD).
	ErrInvalidRecord = errors.New("protocol: invalid record")
)

// castagnoli is the CRC-32C table used by record batch v2. crc32.MakeTable
// caches the Castagnoli table itself, so this holds no state of ours.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// DecodeRecords validates one whole v2 record batch (exactly one, as
// protocol/batch.Next splits them) and decodes its records, decompressing
// them with c (nil: no caching). maxSize bounds the records section after
// decompression, uncompressed batches included; exceeding it fails with
// ErrDecompressedTooLarge.
//
// This is the produce-path check Kafka's LogValidator applies: Length
// matches len(batchBytes), magic is 2, the CRC-32C over Attributes..end
// matches, the codec is known, NumRecords >= 1 and LastOffsetDelta ==
// NumRecords-1, every record's length matches its fields, record i has
// OffsetDelta i, and nothing follows the last record. Varints must be
// minimally encoded (every client writes them so), since record lengths are
// checked against the canonical encoding.
//
// The records' Key, Value and header values alias batchBytes (uncompressed)
// or the decompressed buffer.
func DecodeRecords(batchBytes []byte, c *Codecs, maxSize int) (kmsg.RecordBatch, []kmsg.Record, error) {
	return decodeRecords(batchBytes, c, maxSize, true)
}

// DecodeCompactedRecords is DecodeRecords for batches that log compaction
// may have thinned: offset deltas need only increase within
// [0, LastOffsetDelta], and a batch may hold no records at all (Kafka keeps
// such empty batches to preserve producer state).
func DecodeCompactedRecords(batchBytes []byte, c *Codecs, maxSize int) (kmsg.RecordBatch, []kmsg.Record, error) {
	return decodeRecords(batchBytes, c, maxSize, false)
}

func decodeRecords(b []byte, c *Codecs, maxSize int, strict bool) (kmsg.RecordBatch, []kmsg.Record, error) {
	rb, err := checkBatch(b, strict)
	if err != nil {
		return rb, nil, err
	}
	raw, err := c.Decompress(int8(rb.Attributes&attrCodecMask), rb.Records, maxSize)
	if err != nil {
		return rb, nil, fmt.Errorf("%w: %w", ErrInvalidBatch, err)
	}
	recs, err := decodeRecordList(raw, rb, strict)
	return rb, recs, err
}

// checkBatch parses and validates the batch header of b.
func checkBatch(b []byte, strict bool) (kmsg.RecordBatch, error) {
	var rb kmsg.RecordBatch
	if len(b) < batchHeaderSize {
		return rb, fmt.Errorf("%w: %d bytes, need at least %d", ErrInvalidBatch, len(b), batchHeaderSize)
	}
	if err := rb.ReadFrom(b); err != nil {
		return rb, fmt.Errorf("%w: %w", ErrInvalidBatch, err)
	}
	switch {
	case int64(rb.Length)+batchLengthEnd != int64(len(b)):
		return rb, fmt.Errorf("%w: length field %d for %d bytes", ErrInvalidBatch, rb.Length, len(b))
	case rb.Magic != 2:
		return rb, fmt.Errorf("%w: magic %d", ErrInvalidBatch, rb.Magic)
	case crc32.Checksum(b[batchCRCStart:], castagnoli) != uint32(rb.CRC):
		return rb, ErrBatchCRC
	case rb.Attributes&attrCodecMask > int16(CodecZstd):
		return rb, fmt.Errorf("%w: %w: %d", ErrInvalidBatch, ErrUnknownCodec, rb.Attributes&attrCodecMask)
	case rb.NumRecords < 0 || rb.LastOffsetDelta < 0:
		return rb, fmt.Errorf("%w: %d records, last offset delta %d", ErrInvalidBatch, rb.NumRecords, rb.LastOffsetDelta)
	case strict && (rb.NumRecords == 0 || rb.LastOffsetDelta != rb.NumRecords-1):
		return rb, fmt.Errorf("%w: %d records but last offset delta %d", ErrInvalidBatch, rb.NumRecords, rb.LastOffsetDelta)
	case !strict && rb.NumRecords > 0 && rb.LastOffsetDelta < rb.NumRecords-1:
		return rb, fmt.Errorf("%w: %d records but last offset delta %d", ErrInvalidBatch, rb.NumRecords, rb.LastOffsetDelta)
	}
	return rb, nil
}

// decodeRecordList decodes rb.NumRecords records from raw, the
// uncompressed records section.
func decodeRecordList(raw []byte, rb kmsg.RecordBatch, strict bool) ([]kmsg.Record, error) {
	n := int(rb.NumRecords)
	// The count comes from the wire: never allocate more records than the
	// bytes could possibly hold.
	if n > len(raw)/minRecordSize {
		return nil, fmt.Errorf("%w: %d records cannot fit in %d bytes", ErrInvalidRecord, n, len(raw))
	}
	recs := make([]kmsg.Record, n)
	prev := int32(-1)
	for i := range recs {
		size, err := decodeRecord(raw, &recs[i])
		if err != nil {
			return nil, fmt.Errorf("%w: record %d: %w", ErrInvalidRecord, i, err)
		}
		raw = raw[size:]
		d := recs[i].OffsetDelta
		switch {
		case strict && d != int32(i):
			return nil, fmt.Errorf("%w: record %d has offset delta %d", ErrInvalidRecord, i, d)
		case d <= prev || d > rb.LastOffsetDelta:
			return nil, fmt.Errorf("%w: record %d has offset delta %d after %d (last %d)",
				ErrInvalidRecord, i, d, prev, rb.LastOffsetDelta)
		}
		prev = d
	}
	if len(raw) > 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last record", ErrInvalidRecord, len(raw))
	}
	return recs, nil
}

// decodeRecord decodes the record at the start of raw into r and returns
// how many bytes it took.
func decodeRecord(raw []byte, r *kmsg.Record) (int, error) {
	length, lenSize := kbin.Varint(raw)
	if lenSize <= 0 || length < 0 || int64(length) > int64(len(raw)-lenSize) {
		return 0, fmt.Errorf("length %d with %d bytes left", length, len(raw)-lenSize)
	}
	size := lenSize + int(length)
	if err := r.ReadFrom(raw[:size]); err != nil {
		return 0, err
	}
	// kmsg ignores bytes left over inside the record; Kafka does not.
	if got := recordBodySize(r); got != int(length) {
		return 0, fmt.Errorf("length %d but fields take %d bytes", length, got)
	}
	return size, nil
}

// recordBodySize returns the canonical encoded size of r after its Length
// field.
func recordBodySize(r *kmsg.Record) int {
	ts := r.TimestampDelta64
	if ts == 0 {
		ts = int64(r.TimestampDelta) // as kmsg.Record.AppendTo does
	}
	n := 1 + kbin.VarlongLen(ts) + kbin.VarintLen(r.OffsetDelta) +
		varintBytesSize(r.Key) + varintBytesSize(r.Value) + kbin.VarintLen(int32(len(r.Headers)))
	for _, h := range r.Headers {
		n += kbin.VarintLen(int32(len(h.Key))) + len(h.Key) + varintBytesSize(h.Value)
	}
	return n
}

// varintBytesSize is the encoded size of varint-length-prefixed bytes,
// where nil encodes as length -1.
func varintBytesSize(b []byte) int {
	if b == nil {
		return kbin.VarintLen(-1)
	}
	return kbin.VarintLen(int32(len(b))) + len(b)
}

// BatchOptions are the batch-level fields BuildBatch writes. Start from
// DefaultBatchOptions: the zero value names producer 0, not "no producer".
type BatchOptions struct {
	// ProducerID is the idempotent producer's id, -1 for none.
	ProducerID int64
	// ProducerEpoch is the producer's epoch, -1 for none.
	ProducerEpoch int16
	// BaseSequence is the sequence number of the first record, -1 for none.
	BaseSequence int32
	// Transactional sets attributes bit 4: the batch is part of a
	// transaction.
	Transactional bool
	// Control sets attributes bit 5: the records are transaction markers.
	Control bool
	// LogAppendTime sets attributes bit 3; MaxTimestamp must then hold the
	// broker's append time.
	LogAppendTime bool
	// PartitionLeaderEpoch is the leader epoch stamped by the broker, -1
	// from producers.
	PartitionLeaderEpoch int32
	// FirstTimestamp is the base the records' TimestampDelta is relative
	// to (milliseconds since the epoch).
	FirstTimestamp int64
	// MaxTimestamp is used when LogAppendTime is set or there are no
	// records; otherwise it is FirstTimestamp plus the largest record
	// timestamp delta.
	MaxTimestamp int64
	// LastOffsetDelta is raised to the last record's OffsetDelta if lower.
	// Compaction sets it to keep the original batch's offset range.
	LastOffsetDelta int32
}

// DefaultBatchOptions returns options for a plain, non-idempotent batch as
// a producer writes it: no producer id, epoch or sequence, leader epoch -1.
func DefaultBatchOptions() BatchOptions {
	return BatchOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, PartitionLeaderEpoch: -1}
}

// BuildBatch encodes records as one v2 record batch at baseOffset,
// compressed with codec, with a valid CRC-32C. It is meant for compaction,
// control batches and tests; it is not on the produce path.
//
// Records keep their OffsetDelta and TimestampDelta (which must increase,
// respectively be relative to opts.FirstTimestamp); their Length field is
// ignored and computed. The result decodes with DecodeRecords when offset
// deltas are 0..n-1 and with DecodeCompactedRecords otherwise.
func BuildBatch(c *Codecs, codec int8, baseOffset int64, records []kmsg.Record, opts BatchOptions) ([]byte, error) {
	if codec < CodecNone || codec > CodecZstd {
		return nil, fmt.Errorf("%w: %d", ErrUnknownCodec, codec)
	}
	if len(records) > math.MaxInt32 {
		return nil, fmt.Errorf("%w: %d records", ErrInvalidBatch, len(records))
	}
	raw, maxDelta, lastDelta, err := appendRecords(nil, records)
	if err != nil {
		return nil, err
	}
	compressed := raw
	if codec != CodecNone {
		if compressed, err = c.Compress(codec, nil, raw); err != nil {
			return nil, err
		}
	}
	if int64(len(compressed)) > math.MaxInt32-batchLengthMin {
		return nil, fmt.Errorf("%w: %d bytes of records", ErrInvalidBatch, len(compressed))
	}
	rb := kmsg.RecordBatch{
		FirstOffset:          baseOffset,
		Length:               int32(batchLengthMin + len(compressed)),
		PartitionLeaderEpoch: opts.PartitionLeaderEpoch,
		Magic:                2,
		Attributes:           opts.attributes(codec),
		LastOffsetDelta:      max(opts.LastOffsetDelta, lastDelta),
		FirstTimestamp:       opts.FirstTimestamp,
		MaxTimestamp:         opts.MaxTimestamp,
		ProducerID:           opts.ProducerID,
		ProducerEpoch:        opts.ProducerEpoch,
		FirstSequence:        opts.BaseSequence,
		NumRecords:           int32(len(records)),
		Records:              compressed,
	}
	if len(records) > 0 && !opts.LogAppendTime {
		rb.MaxTimestamp = opts.FirstTimestamp + maxDelta
	}
	out := rb.AppendTo(make([]byte, 0, batchHeaderSize+len(compressed)))
	binary.BigEndian.PutUint32(out[batchCRCOffset:], crc32.Checksum(out[batchCRCStart:], castagnoli))
	return out, nil
}

// attributes returns the batch attributes for opts and codec.
func (o BatchOptions) attributes(codec int8) int16 {
	a := int16(codec)
	if o.LogAppendTime {
		a |= attrLogAppendTime
	}
	if o.Transactional {
		a |= attrTransactional
	}
	if o.Control {
		a |= attrControl
	}
	return a
}

// appendRecords encodes records to dst, computing each Length, and returns
// the largest timestamp delta and the last offset delta.
func appendRecords(dst []byte, records []kmsg.Record) (out []byte, maxTS int64, last int32, err error) {
	last = -1
	for i := range records {
		r := records[i] // a copy: Length is ours to set
		if r.OffsetDelta <= last {
			return nil, 0, 0, fmt.Errorf("%w: record %d has offset delta %d after %d", ErrInvalidRecord, i, r.OffsetDelta, last)
		}
		last = r.OffsetDelta
		ts := r.TimestampDelta64
		if ts == 0 {
			ts = int64(r.TimestampDelta)
		}
		if i == 0 || ts > maxTS {
			maxTS = ts
		}
		r.Length = int32(recordBodySize(&r))
		dst = r.AppendTo(dst)
	}
	return dst, maxTS, max(last, 0), nil
}
