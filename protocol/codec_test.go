package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

var allCodecs = []int8{CodecNone, CodecGzip, CodecSnappy, CodecLZ4, CodecZstd}

func codecName(c int8) string {
	return [...]string{"none", "gzip", "snappy", "lz4", "zstd"}[c]
}

// testInputs covers empty input, small input, compressible input larger
// than every codec's block size, and incompressible input.
func testInputs() map[string][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 300<<10)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	return map[string][]byte{
		"empty":        {},
		"small":        []byte("hello, sluice"),
		"compressible": bytes.Repeat([]byte("kafka record value "), 20_000),
		"random":       random,
	}
}

func TestCodecRoundTrip(t *testing.T) {
	t.Parallel()
	for _, codecs := range []*Codecs{NewCodecs(), nil} {
		for _, codec := range allCodecs {
			for name, in := range testInputs() {
				t.Run(fmt.Sprintf("%s/%s/pooled=%v", codecName(codec), name, codecs != nil), func(t *testing.T) {
					t.Parallel()
					prefix := []byte("prefix")
					comp, err := codecs.Compress(codec, bytes.Clone(prefix), in)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.HasPrefix(comp, prefix) {
						t.Fatal("Compress did not append to dst")
					}
					out, err := codecs.Decompress(codec, comp[len(prefix):], len(in))
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(out, in) {
						t.Fatalf("round trip: %d bytes, want %d", len(out), len(in))
					}
				})
			}
		}
	}
}

// TestCodecConcurrent shares one Codecs between goroutines (run with -race).
func TestCodecConcurrent(t *testing.T) {
	t.Parallel()
	c := NewCodecs()
	in := bytes.Repeat([]byte("concurrent "), 5000)
	var wg sync.WaitGroup
	errs := make(chan error, 4*len(allCodecs))
	for g := range 4 {
		for _, codec := range allCodecs {
			wg.Go(func() {
				for range 10 {
					comp, err := c.Compress(codec, nil, in)
					if err == nil {
						var out []byte
						out, err = c.Decompress(codec, comp, len(in))
						if err == nil && !bytes.Equal(out, in) {
							err = fmt.Errorf("goroutine %d %s: mismatch", g, codecName(codec))
						}
					}
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestCodecSnappyFormats checks both snappy framings are read, and that
// what we write is xerial framed as the Java client writes it.
func TestCodecSnappyFormats(t *testing.T) {
	t.Parallel()
	in := bytes.Repeat([]byte("snappy "), 20_000) // several 32 KiB xerial blocks
	c := NewCodecs()
	ours, err := c.Compress(CodecSnappy, nil, in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(ours, []byte(xerialHeader)) {
		t.Fatalf("snappy output is not xerial framed: %x", ours[:16])
	}
	concatenated := append(bytes.Clone(ours), ours...)
	tests := []struct {
		name string
		src  []byte
		want []byte
	}{
		{"xerial", ours, in},
		{"raw block", s2.EncodeSnappy(nil, in), in},
		{"concatenated xerial streams", concatenated, append(bytes.Clone(in), in...)},
		{"xerial header only", []byte(xerialHeader), []byte{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := c.Decompress(CodecSnappy, tt.src, len(tt.want))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, tt.want) {
				t.Fatalf("got %d bytes, want %d", len(out), len(tt.want))
			}
		})
	}
}

func TestCodecCorruptInput(t *testing.T) {
	t.Parallel()
	c := NewCodecs()
	in := bytes.Repeat([]byte("corrupt me "), 1000)
	for _, codec := range allCodecs[1:] {
		comp, err := c.Compress(codec, nil, in)
		if err != nil {
			t.Fatal(err)
		}
		cases := map[string][]byte{
			"truncated": comp[:len(comp)/2],
			"garbage":   []byte("this is not compressed data at all"),
		}
		for name, src := range cases {
			t.Run(codecName(codec)+"/"+name, func(t *testing.T) {
				t.Parallel()
				if _, err := c.Decompress(codec, src, 1<<20); !errors.Is(err, ErrCorruptCompression) {
					t.Fatalf("err = %v, want ErrCorruptCompression", err)
				}
			})
		}
	}
	if _, err := c.Decompress(5, nil, 10); !errors.Is(err, ErrUnknownCodec) {
		t.Fatalf("codec 5: %v", err)
	}
	if _, err := c.Compress(7, nil, nil); !errors.Is(err, ErrUnknownCodec) {
		t.Fatalf("codec 7: %v", err)
	}
}

// TestCodecDecompressionBomb feeds each codec a small input that expands
// to 256 MiB and checks that decompression stops at the limit without
// allocating anywhere near the expanded size.
func TestCodecDecompressionBomb(t *testing.T) {
	const limit = 1 << 20
	// 4 MiB compressed and concatenated 64 times: every codec accepts
	// concatenated streams (gzip members, xerial streams, LZ4 and zstd
	// frames), and compressing 256 MiB would be slow under -race.
	const repeat = 64
	zeros := make([]byte, 4<<20)
	c := NewCodecs()
	type bomb struct {
		name  string
		codec int8
		src   []byte
	}
	bombs := []bomb{{"none", CodecNone, zeros[:limit+1]}}
	for _, codec := range allCodecs[1:] {
		comp, err := c.Compress(codec, nil, zeros)
		if err != nil {
			t.Fatal(err)
		}
		bombs = append(bombs, bomb{codecName(codec), codec, bytes.Repeat(comp, repeat)})
	}
	streamEnc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	// Our zstd frames declare their content size and are refused up
	// front; a streamed frame must be cut off while decoding.
	bombs = append(bombs, bomb{"zstd stream", CodecZstd, bytes.Repeat(zstdStream(t, streamEnc, zeros), repeat)})
	for _, b := range bombs {
		t.Run(b.name, func(t *testing.T) {
			var err error
			allocated := allocatedDuring(func() {
				_, err = c.Decompress(b.codec, b.src, limit)
			})
			if !errors.Is(err, ErrDecompressedTooLarge) {
				t.Fatalf("err = %v, want ErrDecompressedTooLarge", err)
			}
			// zstd may allocate its window (up to zstdMinWindow) up front.
			if allocated > 2*zstdMinWindow+4*limit {
				t.Fatalf("allocated %d bytes to refuse %d compressed bytes with limit %d", allocated, len(b.src), limit)
			}
			t.Logf("%d compressed bytes refused after allocating %d bytes", len(b.src), allocated)
		})
	}
	// A raw snappy block that claims 4 GiB in a 5-byte header.
	t.Run("snappy length header", func(t *testing.T) {
		src := []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0}
		if _, err := c.Decompress(CodecSnappy, src, limit); !errors.Is(err, ErrDecompressedTooLarge) {
			t.Fatalf("err = %v", err)
		}
	})
	// zstd frames declaring a window (or single-segment content size) the
	// limit does not allow are refused before the decoder allocates it.
	for _, tt := range []struct {
		name   string
		opts   []zstd.EOption
		stream bool // streamed frames declare a window, not a content size
		limit  int
		refuse bool
	}{
		{"window 16MiB, limit 1MiB", []zstd.EOption{zstd.WithWindowSize(16 << 20)}, true, limit, true},
		{"window 16MiB, limit 16MiB", []zstd.EOption{zstd.WithWindowSize(16 << 20)}, true, 16 << 20, false},
		{"window 8MiB, limit 2MiB", []zstd.EOption{zstd.WithWindowSize(8 << 20)}, true, 2 << 20, false},
		{"window 512MiB, limit 1GiB", []zstd.EOption{zstd.WithWindowSize(512 << 20)}, true, 1 << 30, true},
		{"content 2MiB, limit 1MiB", []zstd.EOption{zstd.WithSingleSegment(true)}, false, limit, true},
	} {
		t.Run("zstd "+tt.name, func(t *testing.T) {
			enc, err := zstd.NewWriter(nil, append(tt.opts, zstd.WithEncoderConcurrency(1))...)
			if err != nil {
				t.Fatal(err)
			}
			src := enc.EncodeAll(zeros[:2<<20], nil)
			if tt.stream {
				src = zstdStream(t, enc, zeros[:2<<20])
			}
			var out []byte
			allocated := allocatedDuring(func() { out, err = c.Decompress(CodecZstd, src, tt.limit) })
			switch {
			case tt.refuse && !errors.Is(err, ErrDecompressedTooLarge):
				t.Fatalf("err = %v, want ErrDecompressedTooLarge", err)
			case tt.refuse && allocated > 64<<10:
				t.Fatalf("allocated %d bytes before refusing", allocated)
			case !tt.refuse && (err != nil || len(out) != 2<<20):
				t.Fatalf("err = %v, %d bytes", err, len(out))
			}
		})
	}
	t.Run("zero limit", func(t *testing.T) {
		if _, err := c.Decompress(CodecNone, []byte{1}, 0); !errors.Is(err, ErrDecompressedTooLarge) {
			t.Fatalf("err = %v", err)
		}
		if out, err := c.Decompress(CodecNone, nil, -5); err != nil || len(out) != 0 {
			t.Fatalf("empty input: %v", err)
		}
	})
}

// zstdStream compresses in with enc as a stream of unknown size.
func zstdStream(t *testing.T, enc *zstd.Encoder, in []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc.Reset(&buf)
	if _, err := enc.Write(in); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// allocatedDuring returns the bytes the process allocated while fn ran.
// Callers must not run in parallel with other tests.
func allocatedDuring(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
