package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/snappy/xerial"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Compression codecs, as stored in the low three bits of a record batch's
// attributes. They match protocol/batch's Codec values.
const (
	CodecNone   int8 = 0
	CodecGzip   int8 = 1
	CodecSnappy int8 = 2
	CodecLZ4    int8 = 3
	CodecZstd   int8 = 4
)

// Bounds on the window a zstd frame may make the decoder allocate.
// zstdMinWindow (window log 23) covers every compression level up to 19
// without long-distance matching, whatever the batch size; beyond it the
// window must fit the caller's decompression limit. zstdMaxWindow (window
// log 27) is the reference library's default decoding limit, which is what
// Kafka's zstd-jni enforces.
const (
	zstdMinWindow = 8 << 20
	zstdMaxWindow = 128 << 20
)

// xerialHeader starts every snappy payload written by the Java client's
// snappy-java SnappyOutputStream: magic, stream version 1, minimum
// compatible version 1. Blocks follow as a 4-byte big-endian length and a
// raw snappy block.
const xerialHeader = "\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01"

// xerialMagic is the part of xerialHeader that identifies the framing.
const xerialMagic = "\x82SNAPPY\x00"

var (
	// ErrUnknownCodec is returned for compression codec values above 4
	// (attributes bits 0-2 of 5, 6 or 7), which Kafka rejects.
	ErrUnknownCodec = errors.New("protocol: unknown compression codec")
	// ErrDecompressedTooLarge is returned when decompressing would yield
	// more than the caller's limit: a decompression bomb or a limit set too
	// low. Decompression stops as soon as the limit is crossed.
	ErrDecompressedTooLarge = errors.New("protocol: decompressed size exceeds the limit")
	// ErrCorruptCompression is returned, wrapping the codec's own error,
	// when compressed data does not decode.
	ErrCorruptCompression = errors.New("protocol: corrupt compressed data")
)

// Codecs caches compressors and decompressors for reuse. Zstd and gzip
// state is expensive to build (hundreds of KiB), so a broker keeps one
// Codecs for its lifetime and shares it between connections.
//
// A Codecs is safe for concurrent use and must not be copied after first
// use. The zero value is ready to use; a nil *Codecs is accepted too and
// builds fresh state for every call.
type Codecs struct {
	gzipW sync.Pool // *gzip.Writer
	gzipR sync.Pool // *gzip.Reader
	lz4W  sync.Pool // *lz4.Writer
	lz4R  sync.Pool // *lz4.Reader
	zstdE sync.Pool // *zstd.Encoder
	zstdD sync.Pool // *zstd.Decoder
	// levels holds a *sync.Pool of compressors per levelKey, for
	// CompressLevel (KIP-390 levels).
	levels sync.Map
}

// NewCodecs returns an empty cache of compression state.
func NewCodecs() *Codecs { return new(Codecs) }

// get returns a cached value from p, or nil when c is nil or p is empty.
func (c *Codecs) get(p func(*Codecs) *sync.Pool) any {
	if c == nil {
		return nil
	}
	return p(c).Get()
}

// put caches v in p unless c is nil.
func (c *Codecs) put(p func(*Codecs) *sync.Pool, v any) {
	if c != nil {
		p(c).Put(v)
	}
}

func poolGzipW(c *Codecs) *sync.Pool { return &c.gzipW }
func poolGzipR(c *Codecs) *sync.Pool { return &c.gzipR }
func poolLZ4W(c *Codecs) *sync.Pool  { return &c.lz4W }
func poolLZ4R(c *Codecs) *sync.Pool  { return &c.lz4R }
func poolZstdE(c *Codecs) *sync.Pool { return &c.zstdE }
func poolZstdD(c *Codecs) *sync.Pool { return &c.zstdD }

// appendWriter is an io.Writer appending to a byte slice, so that stream
// compressors can write straight into the caller's dst.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// Compress appends src compressed with codec to dst and returns the
// extended slice. Output is what Kafka's Java client writes: gzip members,
// snappy in xerial framing with 32 KiB blocks, LZ4 frames with 64 KiB
// blocks, and zstd frames (an empty src still yields a valid frame).
func (c *Codecs) Compress(codec int8, dst, src []byte) ([]byte, error) {
	switch codec {
	case CodecNone:
		return append(dst, src...), nil
	case CodecGzip:
		return c.compressGzip(dst, src)
	case CodecSnappy:
		return xerial.Encode(append(dst, xerialHeader...), src), nil
	case CodecLZ4:
		return c.compressLZ4(dst, src)
	case CodecZstd:
		return c.compressZstd(dst, src)
	default:
		return dst, fmt.Errorf("%w: %d", ErrUnknownCodec, codec)
	}
}

func (c *Codecs) compressGzip(dst, src []byte) ([]byte, error) {
	out := &appendWriter{b: dst}
	w, _ := c.get(poolGzipW).(*gzip.Writer)
	if w == nil {
		w = gzip.NewWriter(out)
	} else {
		w.Reset(out)
	}
	_, err := w.Write(src)
	if err == nil {
		err = w.Close()
	}
	w.Reset(nil) // drop the reference to dst before caching
	c.put(poolGzipW, w)
	if err != nil {
		return dst, fmt.Errorf("protocol: gzip: %w", err)
	}
	return out.b, nil
}

func (c *Codecs) compressLZ4(dst, src []byte) ([]byte, error) {
	out := &appendWriter{b: dst}
	w, _ := c.get(poolLZ4W).(*lz4.Writer)
	if w == nil {
		w = lz4.NewWriter(out)
		// Kafka's KafkaLZ4BlockOutputStream uses 64 KiB blocks; the
		// library's 4 MiB default would cost 4 MiB per cached writer.
		if err := w.Apply(lz4.BlockSizeOption(lz4.Block64Kb)); err != nil {
			return dst, fmt.Errorf("protocol: lz4: %w", err)
		}
	} else {
		w.Reset(out)
	}
	_, err := w.Write(src)
	if err == nil {
		err = w.Close()
	}
	w.Reset(nil)
	c.put(poolLZ4W, w)
	if err != nil {
		return dst, fmt.Errorf("protocol: lz4: %w", err)
	}
	return out.b, nil
}

func (c *Codecs) compressZstd(dst, src []byte) ([]byte, error) {
	e, _ := c.get(poolZstdE).(*zstd.Encoder)
	if e == nil {
		var err error
		// One goroutine per EncodeAll call and no background workers, so a
		// cached encoder that the pool drops leaks nothing.
		e, err = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true))
		if err != nil {
			return dst, fmt.Errorf("protocol: zstd: %w", err)
		}
	}
	dst = e.EncodeAll(src, dst)
	c.put(poolZstdE, e)
	return dst, nil
}

// Decompress returns src decompressed with codec, failing with
// ErrDecompressedTooLarge as soon as the output would exceed maxSize bytes
// (a non-positive maxSize allows only empty output). Memory use is bounded
// by maxSize plus codec buffers, whatever src claims about its own size.
//
// Snappy input may be xerial framed (Java client) or a raw snappy block
// (some non-Java clients); blocks are decoded strictly, rejecting the S2
// extensions that Java consumers could not read. Gzip input may hold
// several members. For CodecNone, src itself is returned.
func (c *Codecs) Decompress(codec int8, src []byte, maxSize int) ([]byte, error) {
	maxSize = max(maxSize, 0)
	switch codec {
	case CodecNone:
		if len(src) > maxSize {
			return nil, fmt.Errorf("%w: %d > %d", ErrDecompressedTooLarge, len(src), maxSize)
		}
		return src, nil
	case CodecGzip:
		return c.decompressGzip(src, maxSize)
	case CodecSnappy:
		return decompressSnappy(src, maxSize)
	case CodecLZ4:
		return c.decompressLZ4(src, maxSize)
	case CodecZstd:
		return c.decompressZstd(src, maxSize)
	default:
		return nil, fmt.Errorf("%w: %d", ErrUnknownCodec, codec)
	}
}

func (c *Codecs) decompressGzip(src []byte, maxSize int) ([]byte, error) {
	in := bytes.NewReader(src)
	r, _ := c.get(poolGzipR).(*gzip.Reader)
	if r == nil {
		r = new(gzip.Reader)
	}
	var out []byte
	err := r.Reset(in) // reads the first member's header
	if err == nil {
		out, err = readBounded(r, maxSize, len(src))
	}
	in.Reset(nil) // the cached reader must not pin src
	c.put(poolGzipR, r)
	return out, wrapCodecErr("gzip", err)
}

func (c *Codecs) decompressLZ4(src []byte, maxSize int) ([]byte, error) {
	r, _ := c.get(poolLZ4R).(*lz4.Reader)
	if r == nil {
		r = lz4.NewReader(nil)
	}
	r.Reset(bytes.NewReader(src))
	b, err := readBounded(r, maxSize, len(src))
	r.Reset(nil)
	c.put(poolLZ4R, r)
	return b, wrapCodecErr("lz4", err)
}

// onlyReader hides the Bytes/Len methods of its reader: zstd decodes a
// *bytes.Reader in one shot without our output bound, so it must see a
// plain stream.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func (c *Codecs) decompressZstd(src []byte, maxSize int) ([]byte, error) {
	// The decoder allocates the whole window a frame declares before
	// producing any output, so the declared window (or, for single-segment
	// frames, the declared content size) is checked first. Frames are
	// allowed the larger of maxSize and zstdMinWindow: Kafka's Java producer
	// streams with windows of a few MiB even for tiny batches.
	window := uint64(min(max(maxSize, zstdMinWindow), zstdMaxWindow))
	var fh zstd.Header
	if err := fh.Decode(src); err != nil {
		return nil, wrapCodecErr("zstd", err)
	}
	if fh.HasFCS && fh.FrameContentSize > uint64(maxSize) {
		return nil, fmt.Errorf("%w: zstd frame holds %d bytes", ErrDecompressedTooLarge, fh.FrameContentSize)
	}
	need := fh.WindowSize
	if fh.SingleSegment {
		need = fh.FrameContentSize
	}
	if need > window {
		return nil, fmt.Errorf("%w: zstd frame needs a %d byte window", ErrDecompressedTooLarge, need)
	}
	d, _ := c.get(poolZstdD).(*zstd.Decoder)
	if d == nil {
		var err error
		d, err = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1), // synchronous: no goroutines to leak from the pool
			zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, fmt.Errorf("protocol: zstd: %w", err)
		}
	}
	// Later frames of a concatenation are held to the same window.
	err := d.ResetWithOptions(onlyReader{bytes.NewReader(src)},
		zstd.WithDecoderMaxWindow(max(window, zstd.MinWindowSize)), zstd.WithDecoderMaxMemory(window))
	var out []byte
	if err == nil {
		out, err = readBounded(d, maxSize, len(src))
	}
	// A decoder keeps its largest window; do not let the cache pin big ones.
	if rerr := d.Reset(nil); rerr == nil && need <= zstdMinWindow {
		c.put(poolZstdD, d)
	}
	return out, wrapCodecErr("zstd", err)
}

// wrapCodecErr classifies a decompression error: our own size error passes
// through, anything else is corrupt input.
func wrapCodecErr(codec string, err error) error {
	if err == nil || errors.Is(err, ErrDecompressedTooLarge) {
		return err
	}
	return fmt.Errorf("%w: %s: %w", ErrCorruptCompression, codec, err)
}

// readBounded reads r to EOF, growing its buffer only as output arrives,
// and fails once more than maxSize bytes were produced. hint (the
// compressed size) picks the first allocation.
func readBounded(r io.Reader, maxSize, hint int) ([]byte, error) {
	buf := make([]byte, 0, min(maxSize+1, max(512, 2*hint)))
	for {
		if len(buf) == cap(buf) {
			if len(buf) > maxSize {
				return nil, fmt.Errorf("%w: more than %d bytes", ErrDecompressedTooLarge, maxSize)
			}
			grown := make([]byte, len(buf), min(maxSize+1, 2*cap(buf)))
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			if len(buf) > maxSize {
				return nil, fmt.Errorf("%w: more than %d bytes", ErrDecompressedTooLarge, maxSize)
			}
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// decompressSnappy decodes xerial-framed or raw snappy. Decoded lengths
// are read from the block headers and checked against maxSize before
// anything is allocated, and the output is allocated once.
func decompressSnappy(src []byte, maxSize int) ([]byte, error) {
	if !bytes.HasPrefix(src, []byte(xerialMagic)) {
		n, err := snappy.DecodedLen(src)
		if err != nil {
			return nil, wrapCodecErr("snappy", err)
		}
		if n > maxSize {
			return nil, fmt.Errorf("%w: %d > %d", ErrDecompressedTooLarge, n, maxSize)
		}
		out, err := snappy.DecodeStrict(make([]byte, n), src)
		return out, wrapCodecErr("snappy", err)
	}
	total := 0
	err := eachXerialBlock(src, func(blk []byte) error {
		n, err := snappy.DecodedLen(blk)
		if err != nil {
			return wrapCodecErr("snappy", err)
		}
		if total += n; total > maxSize {
			return fmt.Errorf("%w: more than %d bytes", ErrDecompressedTooLarge, maxSize)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, total)
	err = eachXerialBlock(src, func(blk []byte) error {
		n, _ := snappy.DecodedLen(blk) // validated by the first pass
		dec, err := snappy.DecodeStrict(out[len(out):len(out)+n], blk)
		out = out[:len(out)+len(dec)]
		return wrapCodecErr("snappy", err)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// eachXerialBlock calls fn with every raw snappy block of xerial-framed
// src, in order. A header may reappear between blocks (concatenated
// streams), as snappy-java accepts.
func eachXerialBlock(src []byte, fn func(blk []byte) error) error {
	for len(src) > 0 {
		if bytes.HasPrefix(src, []byte(xerialMagic)) {
			if len(src) < len(xerialHeader) {
				return fmt.Errorf("%w: snappy: short xerial header", ErrCorruptCompression)
			}
			src = src[len(xerialHeader):]
			continue
		}
		if len(src) < 4 {
			return fmt.Errorf("%w: snappy: torn xerial block length", ErrCorruptCompression)
		}
		size := binary.BigEndian.Uint32(src)
		if uint64(size) > uint64(len(src)-4) {
			return fmt.Errorf("%w: snappy: xerial block of %d bytes exceeds input", ErrCorruptCompression, size)
		}
		if err := fn(src[4 : 4+size]); err != nil {
			return err
		}
		src = src[4+size:]
	}
	return nil
}
