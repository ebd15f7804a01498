package protocol

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Compression levels of KIP-390, with Kafka's defaults and ranges.
const (
	GzipLevelDefault = -1 // java.util.zip.Deflater's default, level 6
	GzipLevelMin     = 1
	GzipLevelMax     = 9
	LZ4LevelDefault  = 9
	LZ4LevelMin      = 1
	LZ4LevelMax      = 17
	ZstdLevelDefault = 3
	ZstdLevelMin     = -131072
	ZstdLevelMax     = 22
)

// levelKey names one cached compressor configuration.
type levelKey struct {
	codec int8
	level int
}

// levelPool returns the pool of compressors for codec at level, creating it
// on first use. A broker uses a handful of levels, so the map stays small.
func (c *Codecs) levelPool(k levelKey) *sync.Pool {
	if c == nil {
		return new(sync.Pool)
	}
	p, _ := c.levels.LoadOrStore(k, new(sync.Pool))
	return p.(*sync.Pool)
}

// CompressLevel is Compress at a KIP-390 level: gzip 1-9 or -1, lz4 1-17
// (levels above 9 compress as 9, the strongest the LZ4 library offers),
// zstd -131072..22 (mapped onto the encoder's four speeds). Snappy and
// CodecNone have no levels. Out-of-range levels are clamped.
func (c *Codecs) CompressLevel(codec int8, level int, dst, src []byte) ([]byte, error) {
	switch codec {
	case CodecGzip:
		if level != GzipLevelDefault {
			level = min(max(level, GzipLevelMin), GzipLevelMax)
		}
		return c.compressGzipLevel(dst, src, level)
	case CodecLZ4:
		return c.compressLZ4Level(dst, src, min(max(level, LZ4LevelMin), LZ4LevelMax))
	case CodecZstd:
		return c.compressZstdLevel(dst, src, min(max(level, ZstdLevelMin), ZstdLevelMax))
	default:
		return c.Compress(codec, dst, src)
	}
}

func (c *Codecs) compressGzipLevel(dst, src []byte, level int) ([]byte, error) {
	p := c.levelPool(levelKey{CodecGzip, level})
	out := &appendWriter{b: dst}
	w, _ := p.Get().(*gzip.Writer)
	if w == nil {
		var err error
		if w, err = gzip.NewWriterLevel(out, level); err != nil {
			return dst, fmt.Errorf("protocol: gzip: %w", err)
		}
	} else {
		w.Reset(out)
	}
	_, err := w.Write(src)
	if err == nil {
		err = w.Close()
	}
	w.Reset(nil)
	p.Put(w)
	if err != nil {
		return dst, fmt.Errorf("protocol: gzip: %w", err)
	}
	return out.b, nil
}

func (c *Codecs) compressLZ4Level(dst, src []byte, level int) ([]byte, error) {
	p := c.levelPool(levelKey{CodecLZ4, level})
	out := &appendWriter{b: dst}
	w, _ := p.Get().(*lz4.Writer)
	if w == nil {
		w = lz4.NewWriter(out)
		lv := lz4.CompressionLevel(lz4.Level1 << (min(level, 9) - 1))
		if err := w.Apply(lz4.BlockSizeOption(lz4.Block64Kb), lz4.CompressionLevelOption(lv)); err != nil {
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
	p.Put(w)
	if err != nil {
		return dst, fmt.Errorf("protocol: lz4: %w", err)
	}
	return out.b, nil
}

func (c *Codecs) compressZstdLevel(dst, src []byte, level int) ([]byte, error) {
	p := c.levelPool(levelKey{CodecZstd, level})
	e, _ := p.Get().(*zstd.Encoder)
	if e == nil {
		var err error
		e, err = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true),
			zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)))
		if err != nil {
			return dst, fmt.Errorf("protocol: zstd: %w", err)
		}
	}
	dst = e.EncodeAll(src, dst)
	p.Put(e)
	return dst, nil
}

// Recompress returns a copy of the v2 batch b with its records compressed
// with codec at level instead of the producer's codec, as Kafka's
// LogValidator rebuilds a batch when the topic's compression.type differs:
// the records themselves, offsets, timestamps, producer id, epoch and
// sequence, the transactional bit and the timestamp type are kept; only the
// codec bits, Length, the records section and the CRC change. maxSize
// bounds the decompressed records (see Decompress). b should have passed
// Validate.
func Recompress(c *Codecs, b []byte, codec int8, level int, maxSize int) ([]byte, error) {
	rb, err := checkBatch(b, true)
	if err != nil {
		return nil, err
	}
	if codec < CodecNone || codec > CodecZstd {
		return nil, fmt.Errorf("%w: %d", ErrUnknownCodec, codec)
	}
	raw, err := c.Decompress(int8(rb.Attributes&attrCodecMask), rb.Records, maxSize)
	if err != nil {
		return nil, err
	}
	out := make([]byte, batchHeaderSize, batchHeaderSize+len(raw)/2+64)
	copy(out, b[:batchHeaderSize])
	if out, err = c.CompressLevel(codec, level, out, raw); err != nil {
		return nil, err
	}
	if int64(len(out)) > math.MaxInt32 {
		return nil, fmt.Errorf("%w: %d bytes after recompression", ErrInvalidBatch, len(out))
	}
	be := binary.BigEndian
	be.PutUint32(out[8:], uint32(len(out)-batchLengthEnd))
	attrs := be.Uint16(out[batchCRCStart:])&^attrCodecMask | uint16(codec)
	be.PutUint16(out[batchCRCStart:], attrs)
	be.PutUint32(out[batchCRCOffset:], crc32.Checksum(out[batchCRCStart:], castagnoli))
	return out, nil
}
