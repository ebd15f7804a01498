package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// validateWindow is the size of the buffer a Validator streams decompressed
// records through. Records larger than it are walked without being held.
const validateWindow = 32 << 10

var (
	// ErrInvalidTimestamp is wrapped by a RecordValidationError whose
	// records carry timestamps outside the topic's allowed range (Kafka:
	// INVALID_TIMESTAMP).
	ErrInvalidTimestamp = errors.New("protocol: invalid record timestamp")
	// errShortStream means the records section ended inside a record:
	// Kafka's "Incorrect declared batch size, premature EOF reached".
	errShortStream = errors.New("premature end of the records")
)

// ValidateOptions are the topic's rules a batch is checked against. They
// are resolved by the caller once per topic change; Validate does no
// parsing of settings.
type ValidateOptions struct {
	// MaxDecompressed bounds the records section after decompression.
	// Validation stops with ErrDecompressedTooLarge as soon as it is
	// crossed, so a compression bomb costs at most this much CPU and a
	// fixed window of memory.
	MaxDecompressed int
	// RequireKeys refuses records without a key (a compacted topic,
	// Kafka's LogValidator.validateKey).
	RequireKeys bool
	// CheckTimestamps checks every record's CreateTime against Now,
	// BeforeMaxMs and AfterMaxMs (message.timestamp.before/after.max.ms).
	CheckTimestamps         bool
	Now                     int64
	BeforeMaxMs, AfterMaxMs int64
	// LogAppendTime is set when the topic stamps LogAppendTime: a producer
	// batch that claims LogAppendTime itself is refused per record, as
	// Kafka's LogValidator.validateTimestamp does.
	LogAppendTime bool
}

// RecordError is one record refused inside an otherwise well-formed batch
// (KIP-467, ProduceResponse v8+ RecordErrors). Index counts from 0 within
// the batch.
type RecordError struct {
	Index   int32
	Message string
}

// RecordValidationError is returned when the batch is well formed but some
// of its records break the topic's rules (Kafka's RecordValidationException).
// It unwraps to ErrInvalidRecord, or ErrInvalidTimestamp when any record's
// timestamp is out of range, which Kafka then reports for the whole batch.
type RecordValidationError struct {
	Records []RecordError
	kind    error
}

func (e *RecordValidationError) Error() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "One or more records have been rejected due to %d record errors in total, and only showing the first three errors at most: [", len(e.Records))
	for i, r := range e.Records[:min(len(e.Records), 3)] {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "RecordError(batchIndex=%d, message='%s')", r.Index, r.Message)
	}
	b.WriteString("]")
	return b.String()
}

// Unwrap returns ErrInvalidRecord or ErrInvalidTimestamp.
func (e *RecordValidationError) Unwrap() error { return e.kind }

// BatchStats summarises a validated batch.
type BatchStats struct {
	// Uncompressed is the size of the records section after decompression.
	Uncompressed int
}

// Validator walks every record of a produce batch as Kafka's LogValidator
// and DefaultRecord.readFrom do, without decoding records into values: it
// checks each record's length varint against the bytes that follow, the
// attribute, timestamp and offset deltas, key and value lengths, the header
// count and every header key and value length, that offset deltas run
// 0..NumRecords-1 and that nothing follows the last record. Compressed
// batches are decompressed as a stream through a fixed window, bounded by
// ValidateOptions.MaxDecompressed; the whole decompressed batch is never
// held.
//
// A Validator holds a reusable window buffer and is not safe for
// concurrent use: give each connection (or goroutine) its own. Decoders are
// borrowed from the shared Codecs for the duration of one call. The zero
// value is ready to use; Validate allocates nothing per record and, for an
// uncompressed batch once the window exists, nothing at all.
type Validator struct {
	Codecs  *Codecs
	window  []byte
	src     bytes.Reader
	only    onlyReader
	snappy  snappyStream
	s       recordStream
	zstdBig bool
}

// Validate checks one whole v2 batch (exactly one, as produce requests
// carry) against opts. Errors, by what Kafka answers:
//   - ErrBatchCRC: CORRUPT_MESSAGE.
//   - ErrInvalidBatch, ErrInvalidRecord: INVALID_RECORD (ErrInvalidBatch
//     wraps ErrUnknownCodec for codec bits 5-7).
//   - ErrCorruptCompression: the compressed stream does not decode.
//   - ErrDecompressedTooLarge: more than opts.MaxDecompressed bytes.
//   - *RecordValidationError: per-record errors (keys, timestamps).
func (v *Validator) Validate(b []byte, opts ValidateOptions) (BatchStats, error) {
	rb, err := checkBatch(b, true)
	if err != nil {
		return BatchStats{}, err
	}
	codec := int8(rb.Attributes & attrCodecMask)
	err = v.open(codec, rb.Records, opts.MaxDecompressed)
	defer v.close()
	if err != nil {
		return BatchStats{}, err
	}
	var errs []RecordError
	tsKind := false
	s := &v.s
	first, lat := rb.FirstTimestamp, rb.Attributes&attrLogAppendTime != 0
	for i := int32(0); i < rb.NumRecords; i++ {
		r, err := s.record(i)
		if err != nil {
			return BatchStats{}, v.wrap(err, i)
		}
		ts := first + r.tsDelta
		if lat {
			ts = rb.MaxTimestamp // what Kafka's record.timestamp() reports
		}
		switch {
		case opts.RequireKeys && !r.hasKey:
			errs = append(errs, RecordError{Index: i, Message: "Compacted topic cannot accept message without key"})
		case opts.CheckTimestamps && badTimestamp(ts, opts):
			errs = append(errs, RecordError{Index: i, Message: "Timestamp is out of the range allowed by message.timestamp.before.max.ms and message.timestamp.after.max.ms"})
			tsKind = true
		case opts.LogAppendTime && lat:
			errs = append(errs, RecordError{Index: i, Message: "Producer should not set timestamp type to LogAppendTime"})
			tsKind = true
		}
	}
	if more, err := s.more(); err != nil {
		return BatchStats{}, v.wrap(err, rb.NumRecords)
	} else if more {
		return BatchStats{}, fmt.Errorf("%w: bytes remain after record %d of %d", ErrInvalidRecord, rb.NumRecords-1, rb.NumRecords)
	}
	stats := BatchStats{Uncompressed: int(s.total)}
	if len(errs) > 0 {
		kind := ErrInvalidRecord
		if tsKind {
			kind = ErrInvalidTimestamp
		}
		return stats, &RecordValidationError{Records: errs, kind: kind}
	}
	return stats, nil
}

func badTimestamp(ts int64, o ValidateOptions) bool {
	if ts == -1 { // RecordBatch.NO_TIMESTAMP
		return false
	}
	diff := o.Now - ts
	return diff > o.BeforeMaxMs || -diff > o.AfterMaxMs
}

// wrap classifies a streaming error for record i.
func (v *Validator) wrap(err error, i int32) error {
	switch {
	case errors.Is(err, ErrDecompressedTooLarge), errors.Is(err, ErrCorruptCompression):
		return err
	case errors.Is(err, errShortStream):
		return fmt.Errorf("%w: record %d: %w", ErrInvalidRecord, i, err)
	case errors.Is(err, ErrInvalidRecord):
		return fmt.Errorf("record %d: %w", i, err)
	default: // a decoder's own error mid-stream
		return fmt.Errorf("%w: %w", ErrCorruptCompression, err)
	}
}

// open points the record stream at the records section, through a
// decompressor for compressed batches.
func (v *Validator) open(codec int8, records []byte, maxSize int) error {
	maxSize = max(maxSize, 0)
	v.s = recordStream{limit: int64(maxSize)}
	if codec == CodecNone {
		if len(records) > maxSize {
			return fmt.Errorf("%w: %d > %d", ErrDecompressedTooLarge, len(records), maxSize)
		}
		v.s.buf, v.s.end = records, len(records)
		return nil
	}
	if v.window == nil {
		v.window = make([]byte, validateWindow)
	}
	v.s.buf = v.window
	v.src.Reset(records)
	c := v.Codecs
	switch codec {
	case CodecGzip:
		r, _ := c.get(poolGzipR).(*gzip.Reader)
		if r == nil {
			r = new(gzip.Reader)
		}
		if err := r.Reset(&v.src); err != nil {
			c.put(poolGzipR, r)
			return wrapCodecErr("gzip", err)
		}
		v.s.src = r
	case CodecSnappy:
		if err := v.snappy.reset(records, maxSize); err != nil {
			return err
		}
		v.s.src = &v.snappy
	case CodecLZ4:
		r, _ := c.get(poolLZ4R).(*lz4.Reader)
		if r == nil {
			r = lz4.NewReader(nil)
		}
		r.Reset(&v.src)
		v.s.src = r
	case CodecZstd:
		v.only.r = &v.src
		d, big, err := c.zstdDecoder(&v.only, records, maxSize)
		if err != nil {
			return err
		}
		v.s.src, v.zstdBig = d, big
	default:
		return fmt.Errorf("%w: %w: %d", ErrInvalidBatch, ErrUnknownCodec, codec)
	}
	return nil
}

// close returns borrowed decoders and drops references to the batch.
func (v *Validator) close() {
	c := v.Codecs
	switch r := v.s.src.(type) {
	case *gzip.Reader:
		c.put(poolGzipR, r)
	case *lz4.Reader:
		r.Reset(nil)
		c.put(poolLZ4R, r)
	case *zstd.Decoder:
		if err := r.Reset(nil); err == nil && !v.zstdBig {
			c.put(poolZstdD, r)
		}
	}
	v.src.Reset(nil)
	v.only.r = nil
	v.snappy.reset(nil, 0) //nolint:errcheck // empty input cannot fail
	v.s = recordStream{}
}

// zstdDecoder returns a cached decoder reset to read src, held to the
// window the frame header may use after checking it against maxSize (the
// rules of decompressZstd). big reports a window beyond zstdMinWindow: such
// a decoder must not go back to the cache.
func (c *Codecs) zstdDecoder(src io.Reader, head []byte, maxSize int) (d *zstd.Decoder, big bool, err error) {
	window := uint64(min(max(maxSize, zstdMinWindow), zstdMaxWindow))
	var fh zstd.Header
	if err := fh.Decode(head); err != nil {
		return nil, false, wrapCodecErr("zstd", err)
	}
	if fh.HasFCS && fh.FrameContentSize > uint64(maxSize) {
		return nil, false, fmt.Errorf("%w: zstd frame holds %d bytes", ErrDecompressedTooLarge, fh.FrameContentSize)
	}
	need := fh.WindowSize
	if fh.SingleSegment {
		need = fh.FrameContentSize
	}
	if need > window {
		return nil, false, fmt.Errorf("%w: zstd frame needs a %d byte window", ErrDecompressedTooLarge, need)
	}
	d, _ = c.get(poolZstdD).(*zstd.Decoder)
	if d == nil {
		d, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, false, fmt.Errorf("protocol: zstd: %w", err)
		}
	}
	err = d.ResetWithOptions(src, zstd.WithDecoderMaxWindow(max(window, zstd.MinWindowSize)), zstd.WithDecoderMaxMemory(window))
	if err != nil {
		c.put(poolZstdD, d)
		return nil, false, wrapCodecErr("zstd", err)
	}
	return d, need > zstdMinWindow, nil
}

// walkedRecord is what a Validator learns about one record.
type walkedRecord struct {
	tsDelta int64
	hasKey  bool
}

// recordStream reads the records section either straight from the batch
// (src nil: buf is the section) or from a decompressor through buf.
type recordStream struct {
	src      io.Reader
	buf      []byte
	pos, end int
	total    int64 // bytes consumed from the section so far
	limit    int64
	eof      bool
}

// fill makes at least one byte available, reporting false at the end of
// the section.
func (s *recordStream) fill() (bool, error) {
	if s.pos < s.end {
		return true, nil
	}
	if s.src == nil || s.eof {
		return false, nil
	}
	for {
		n, err := s.src.Read(s.buf)
		s.pos, s.end = 0, n
		if n > 0 {
			if s.total+int64(s.end) > s.limit {
				return false, fmt.Errorf("%w: more than %d bytes", ErrDecompressedTooLarge, s.limit)
			}
			if errors.Is(err, io.EOF) {
				s.eof = true
			}
			return true, nil
		}
		if errors.Is(err, io.EOF) {
			s.eof = true
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
}

// more reports whether any byte follows.
func (s *recordStream) more() (bool, error) { return s.fill() }

func (s *recordStream) readByte() (byte, error) {
	ok, err := s.fill()
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, errShortStream
	}
	c := s.buf[s.pos]
	s.pos++
	s.total++
	return c, nil
}

// varlong reads a zigzag varint of at most maxBytes bytes (5 for Kafka's
// varint, 10 for its varlong).
func (s *recordStream) varlong(maxBytes int) (int64, error) {
	if s.end-s.pos >= maxBytes {
		v, n := binary.Varint(s.buf[s.pos:s.end])
		if n > 0 && n <= maxBytes {
			s.pos += n
			s.total += int64(n)
			return v, nil
		}
		return 0, fmt.Errorf("%w: varint longer than %d bytes", ErrInvalidRecord, maxBytes)
	}
	var ux uint64
	for i := 0; i < maxBytes; i++ {
		c, err := s.readByte()
		if err != nil {
			return 0, err
		}
		ux |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			x := int64(ux >> 1)
			if ux&1 != 0 {
				x = ^x
			}
			return x, nil
		}
	}
	return 0, fmt.Errorf("%w: varint longer than %d bytes", ErrInvalidRecord, maxBytes)
}

func (s *recordStream) varint() (int32, error) {
	v, err := s.varlong(5)
	if err != nil {
		return 0, err
	}
	if v < math.MinInt32 || v > math.MaxInt32 {
		return 0, fmt.Errorf("%w: varint %d out of range", ErrInvalidRecord, v)
	}
	return int32(v), nil
}

// skip consumes n bytes without keeping them.
func (s *recordStream) skip(n int64) error {
	for n > 0 {
		ok, err := s.fill()
		if err != nil {
			return err
		}
		if !ok {
			return errShortStream
		}
		k := min(n, int64(s.end-s.pos))
		s.pos += int(k)
		s.total += k
		n -= k
	}
	return nil
}

// bytesField reads a varint length and skips that many bytes; a negative
// length is null. Lengths below -1 are refused: Kafka reads them as null,
// but no client writes them and other consumers may not.
func (s *recordStream) bytesField(what string, end int64) (bool, error) {
	n, err := s.varint()
	if err != nil {
		return false, err
	}
	switch {
	case n == -1:
		return false, nil
	case n < -1:
		return false, fmt.Errorf("%w: %s length %d", ErrInvalidRecord, what, n)
	case int64(n) > end-s.total:
		return false, fmt.Errorf("%w: %s of %d bytes overruns the record", ErrInvalidRecord, what, n)
	}
	return true, s.skip(int64(n))
}

// record walks record i and checks its fields against its length.
func (s *recordStream) record(i int32) (walkedRecord, error) {
	var r walkedRecord
	length, err := s.varint()
	if err != nil {
		return r, err
	}
	if length < minRecordSize-1 {
		return r, fmt.Errorf("%w: record length %d", ErrInvalidRecord, length)
	}
	if s.src == nil && int64(length) > int64(s.end-s.pos) {
		return r, fmt.Errorf("%w: record length %d with %d bytes left", ErrInvalidRecord, length, s.end-s.pos)
	}
	end := s.total + int64(length)
	if _, err := s.readByte(); err != nil { // attributes: unused in v2
		return r, err
	}
	if r.tsDelta, err = s.varlong(10); err != nil {
		return r, err
	}
	delta, err := s.varint()
	if err != nil {
		return r, err
	}
	if delta != i {
		return r, fmt.Errorf("%w: offset delta %d, want %d", ErrInvalidRecord, delta, i)
	}
	if r.hasKey, err = s.bytesField("key", end); err != nil {
		return r, err
	}
	if _, err = s.bytesField("value", end); err != nil {
		return r, err
	}
	headers, err := s.varint()
	if err != nil {
		return r, err
	}
	if headers < 0 || int64(headers) > (end-s.total)/2 {
		return r, fmt.Errorf("%w: invalid number of record headers %d", ErrInvalidRecord, headers)
	}
	for h := int32(0); h < headers; h++ {
		if ok, err := s.bytesField("header key", end); err != nil {
			return r, err
		} else if !ok {
			return r, fmt.Errorf("%w: null header key", ErrInvalidRecord)
		}
		if _, err := s.bytesField("header value", end); err != nil {
			return r, err
		}
	}
	if s.total != end {
		return r, fmt.Errorf("%w: record length %d but fields take %d bytes", ErrInvalidRecord, length, int64(length)-(end-s.total))
	}
	return r, nil
}

// snappyStream decodes xerial-framed or raw snappy block by block into a
// buffer that grows to the largest block, never beyond the caller's limit.
type snappyStream struct {
	src   []byte
	raw   bool // a single raw snappy block
	buf   []byte
	out   []byte // decoded bytes not yet read
	limit int
	total int
}

func (z *snappyStream) reset(src []byte, limit int) error {
	*z = snappyStream{src: src, buf: z.buf[:0], limit: limit}
	if len(src) > 0 && !bytes.HasPrefix(src, []byte(xerialMagic)) {
		z.raw = true
	}
	return nil
}

func (z *snappyStream) Read(p []byte) (int, error) {
	for len(z.out) == 0 {
		blk, err := z.nextBlock()
		if err != nil {
			return 0, err
		}
		n, err := snappy.DecodedLen(blk)
		if err != nil {
			return 0, wrapCodecErr("snappy", err)
		}
		if z.total += n; z.total > z.limit {
			return 0, fmt.Errorf("%w: more than %d bytes", ErrDecompressedTooLarge, z.limit)
		}
		if cap(z.buf) < n {
			z.buf = make([]byte, n)
		}
		out, err := snappy.DecodeStrict(z.buf[:n], blk)
		if err != nil {
			return 0, wrapCodecErr("snappy", err)
		}
		z.out = out
	}
	n := copy(p, z.out)
	z.out = z.out[n:]
	return n, nil
}

// nextBlock returns the next raw snappy block, or io.EOF.
func (z *snappyStream) nextBlock() ([]byte, error) {
	if z.raw {
		if z.src == nil {
			return nil, io.EOF
		}
		blk := z.src
		z.src = nil
		return blk, nil
	}
	for len(z.src) > 0 && bytes.HasPrefix(z.src, []byte(xerialMagic)) {
		if len(z.src) < len(xerialHeader) {
			return nil, fmt.Errorf("%w: snappy: short xerial header", ErrCorruptCompression)
		}
		z.src = z.src[len(xerialHeader):]
	}
	if len(z.src) == 0 {
		return nil, io.EOF
	}
	if len(z.src) < 4 {
		return nil, fmt.Errorf("%w: snappy: torn xerial block length", ErrCorruptCompression)
	}
	size := binary.BigEndian.Uint32(z.src)
	if uint64(size) > uint64(len(z.src)-4) {
		return nil, fmt.Errorf("%w: snappy: xerial block of %d bytes exceeds input", ErrCorruptCompression, size)
	}
	blk := z.src[4 : 4+size]
	z.src = z.src[4+size:]
	return blk, nil
}
