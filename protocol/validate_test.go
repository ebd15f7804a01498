package protocol

import (
	"bytes"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// loose are options that refuse nothing but bombs.
var loose = ValidateOptions{MaxDecompressed: 64 << 20}

// field is one hand-encoded part of a record.
type field []byte

func vi(v int32) field   { return kbin.AppendVarint(nil, v) }
func vl(v int64) field   { return kbin.AppendVarlong(nil, v) }
func raw(s string) field { return field(s) }

// rec encodes a record body from fields and prefixes its length, or
// lengthDelta more than the body's size.
func rec(lengthDelta int32, fields ...field) []byte {
	var body []byte
	for _, f := range fields {
		body = append(body, f...)
	}
	return append(kbin.AppendVarint(nil, int32(len(body))+lengthDelta), body...)
}

// okRec is a well-formed record with offset delta d.
func okRec(d int32) []byte {
	return rec(0, raw("\x00"), vl(0), vi(d), vi(1), raw("k"), vi(2), raw("vv"), vi(1), vi(1), raw("h"), vi(-1))
}

// compressedBatch wraps records (already encoded) in a batch compressed with codec.
func compressedBatch(t *testing.T, codec int8, numRecords, lastDelta int32, records []byte) []byte {
	t.Helper()
	b := rawBatch(numRecords, lastDelta, records)
	if codec == CodecNone {
		return b
	}
	comp, err := NewCodecs().Compress(codec, nil, records)
	if err != nil {
		t.Fatal(err)
	}
	return withRecords(b[:batchHeaderSize], codec, comp)
}

// withRecords rebuilds a batch from header bytes, a codec and a records section.
func withRecords(header []byte, codec int8, records []byte) []byte {
	b := append(append([]byte(nil), header[:batchHeaderSize]...), records...)
	kbin.AppendInt32(b[:8], int32(batchLengthMin+len(records)))
	b[batchCRCStart+1] = b[batchCRCStart+1]&^attrCodecMask | byte(codec)
	return recrc(b)
}

func TestValidateWellFormed(t *testing.T) {
	t.Parallel()
	c := NewCodecs()
	for _, codec := range allCodecs {
		for _, n := range []int{1, 7, 300} {
			b, err := BuildBatch(c, codec, 0, testRecords(n), DefaultBatchOptions())
			if err != nil {
				t.Fatal(err)
			}
			v := Validator{Codecs: c}
			st, err := v.Validate(b, loose)
			if err != nil {
				t.Fatalf("%s/%d: %v", codecName(codec), n, err)
			}
			raw, _ := c.Decompress(codec, b[batchHeaderSize:], 64<<20)
			if st.Uncompressed != len(raw) {
				t.Fatalf("%s/%d: uncompressed %d, want %d", codecName(codec), n, st.Uncompressed, len(raw))
			}
		}
	}
}

func TestValidateCorruption(t *testing.T) {
	t.Parallel()
	two := append(okRec(0), okRec(1)...)
	cases := []struct {
		name      string
		num, last int32
		records   []byte
		want      error
	}{
		{"record length overruns the batch", 1, 0, rec(40, raw("\x00"), vl(0), vi(0), vi(-1), vi(-1), vi(0)), ErrInvalidRecord},
		{"record length shorter than its fields", 1, 0, append(rec(-2, raw("\x00"), vl(0), vi(0), vi(1), raw("k"), vi(-1), vi(0)), 0, 0), ErrInvalidRecord},
		{"record length longer than its fields", 1, 0, rec(1, raw("\x00"), vl(0), vi(0), vi(-1), vi(-1), vi(0), raw("x")), ErrInvalidRecord},
		{"negative record length", 1, 0, append(vi(-3), okRec(0)...), ErrInvalidRecord},
		{"fewer records than NumRecords", 3, 2, two, ErrInvalidRecord},
		{"more records than NumRecords", 1, 0, two, ErrInvalidRecord},
		{"last offset delta disagrees with count", 2, 5, two, ErrInvalidBatch},
		{"zero records", 0, 0, nil, ErrInvalidBatch},
		{"offset delta out of sequence", 2, 1, append(okRec(0), okRec(2)...), ErrInvalidRecord},
		{"first offset delta not zero", 1, 0, okRec(1), ErrInvalidRecord},
		{"null header key", 1, 0, rec(0, raw("\x00"), vl(0), vi(0), vi(-1), vi(-1), vi(1), vi(-1), vi(-1)), ErrInvalidRecord},
		{"negative header count", 1, 0, rec(0, raw("\x00"), vl(0), vi(0), vi(-1), vi(-1), vi(-1)), ErrInvalidRecord},
		{"header count beyond the record", 1, 0, rec(0, raw("\x00"), vl(0), vi(0), vi(-1), vi(-1), vi(1000)), ErrInvalidRecord},
		{"header key overruns", 1, 0, rec(0, raw("\x00"), vl(0), vi(0), vi(-1), vi(-1), vi(1), vi(50), vi(-1)), ErrInvalidRecord},
		{"header value overruns", 1, 0, rec(0, raw("\x00"), vl(0), vi(0), vi(-1), vi(-1), vi(1), vi(1), raw("h"), vi(90)), ErrInvalidRecord},
		{"key length overruns", 1, 0, rec(0, raw("\x00"), vl(0), vi(0), vi(100), vi(-1), vi(0)), ErrInvalidRecord},
		{"value length overruns", 1, 0, rec(0, raw("\x00"), vl(0), vi(0), vi(-1), vi(1<<30), vi(0)), ErrInvalidRecord},
		{"key length below -1", 1, 0, rec(0, raw("\x00"), vl(0), vi(0), vi(-2), vi(-1), vi(0)), ErrInvalidRecord},
		{"overlong offset delta varint", 1, 0, rec(0, raw("\x00"), vl(0), raw("\xff\xff\xff\xff\xff\x01"), vi(-1), vi(-1), vi(0)), ErrInvalidRecord},
		{"overlong timestamp varlong", 1, 0, rec(0, raw("\x00"), raw("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"), vi(0), vi(-1), vi(-1), vi(0)), ErrInvalidRecord},
		{"record torn inside a varint", 1, 0, append(vi(20), 0, 0x80), ErrInvalidRecord},
		{"trailing garbage after the last record", 1, 0, append(okRec(0), 0x01), ErrInvalidRecord},
	}
	for _, codec := range allCodecs {
		for _, tt := range cases {
			t.Run(codecName(codec)+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				b := compressedBatch(t, codec, tt.num, tt.last, tt.records)
				v := Validator{Codecs: NewCodecs()}
				if _, err := v.Validate(b, loose); !errors.Is(err, tt.want) {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
			})
		}
	}
	t.Run("crc", func(t *testing.T) {
		b := rawBatch(1, 0, okRec(0))
		b[len(b)-1] ^= 1
		if _, err := new(Validator).Validate(b, loose); !errors.Is(err, ErrBatchCRC) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("unknown codec", func(t *testing.T) {
		b := withRecords(rawBatch(1, 0, okRec(0)), 5, okRec(0))
		if _, err := new(Validator).Validate(b, loose); !errors.Is(err, ErrUnknownCodec) || !errors.Is(err, ErrInvalidBatch) {
			t.Fatalf("err = %v", err)
		}
	})
	for _, codec := range allCodecs[1:] {
		t.Run("corrupt "+codecName(codec), func(t *testing.T) {
			b := compressedBatch(t, codec, 2, 1, two)
			garbage := bytes.Repeat([]byte{0xa5}, len(b)-batchHeaderSize)
			copy(garbage, b[batchHeaderSize:batchHeaderSize+min(8, len(garbage))]) // keep any magic
			b = withRecords(b, codec, garbage)
			if _, err := new(Validator).Validate(b, loose); !errors.Is(err, ErrCorruptCompression) {
				t.Fatalf("err = %v, want ErrCorruptCompression", err)
			}
		})
	}
}

func TestValidateRecordErrors(t *testing.T) {
	t.Parallel()
	recs := testRecords(8) // records 0 and 4 have no key
	b, err := BuildBatch(nil, CodecLZ4, 0, recs, BatchOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, FirstTimestamp: 1_000_000})
	if err != nil {
		t.Fatal(err)
	}
	v := Validator{}
	_, err = v.Validate(b, ValidateOptions{MaxDecompressed: 1 << 20, RequireKeys: true})
	var rve *RecordValidationError
	if !errors.As(err, &rve) || !errors.Is(err, ErrInvalidRecord) || errors.Is(err, ErrInvalidTimestamp) {
		t.Fatalf("err = %v", err)
	}
	if len(rve.Records) != 2 || rve.Records[0].Index != 0 || rve.Records[1].Index != 4 {
		t.Fatalf("record errors %+v, want indexes 0 and 4", rve.Records)
	}
	// Timestamps: record i is at 1_000_000 + 3i; allow only up to +9 ms.
	_, err = v.Validate(b, ValidateOptions{MaxDecompressed: 1 << 20, CheckTimestamps: true, Now: 1_000_000, BeforeMaxMs: 1 << 40, AfterMaxMs: 9})
	if !errors.As(err, &rve) || !errors.Is(err, ErrInvalidTimestamp) {
		t.Fatalf("err = %v", err)
	}
	if len(rve.Records) != 4 || rve.Records[0].Index != 4 {
		t.Fatalf("record errors %+v, want indexes 4..7", rve.Records)
	}
}

// bombRecord is the start of a record whose value claims size bytes; the
// value's bytes follow in later frames.
func bombRecord(size int32) []byte {
	body := append([]byte{0}, vl(0)...)
	body = append(body, vi(0)...)
	body = append(body, vi(-1)...)
	body = append(body, vi(size)...)
	return append(kbin.AppendVarint(nil, int32(len(body))+size+1), body...)
}

func TestValidateCompressionBomb(t *testing.T) {
	// 1 GiB of zeros as 256 concatenated 4 MiB frames (gzip members, zstd
	// frames): a few hundred KiB on the wire.
	const limit = 64 << 20
	zeros := make([]byte, 4<<20)
	c := NewCodecs()
	for _, codec := range []int8{CodecZstd, CodecGzip, CodecLZ4} {
		t.Run(codecName(codec), func(t *testing.T) {
			head, err := c.Compress(codec, nil, bombRecord(1<<30))
			if err != nil {
				t.Fatal(err)
			}
			var frame []byte
			if codec == CodecGzip {
				var buf bytes.Buffer
				w, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
				w.Write(zeros) //nolint:errcheck // bytes.Buffer
				w.Close()      //nolint:errcheck // bytes.Buffer
				frame = buf.Bytes()
			} else if frame, err = c.Compress(codec, nil, zeros); err != nil {
				t.Fatal(err)
			}
			section := append(head, bytes.Repeat(frame, 256)...)
			b := withRecords(rawBatch(1, 0, okRec(0)), codec, section)
			t.Logf("%d byte batch claims 1 GiB", len(b))
			v := Validator{Codecs: c}
			start := time.Now()
			var verr error
			allocated := allocatedDuring(func() { _, verr = v.Validate(b, ValidateOptions{MaxDecompressed: limit}) })
			if !errors.Is(verr, ErrDecompressedTooLarge) {
				t.Fatalf("err = %v, want ErrDecompressedTooLarge", verr)
			}
			// Decoder state (a zstd window, lz4 blocks) and the window, not the batch.
			if allocated > 24<<20 {
				t.Fatalf("allocated %d bytes refusing a bomb", allocated)
			}
			t.Logf("refused after %v, %d bytes allocated", time.Since(start), allocated)
		})
	}
}

func TestValidateAllocations(t *testing.T) {
	c := NewCodecs()
	for _, codec := range []int8{CodecNone, CodecLZ4, CodecZstd, CodecGzip, CodecSnappy} {
		allocs := func(n int) float64 {
			recs := make([]kmsg.Record, n)
			for i := range recs {
				recs[i] = kmsg.Record{OffsetDelta: int32(i), Key: []byte("key"), Value: bytes.Repeat([]byte{'v'}, 1024),
					Headers: []kmsg.Header{{Key: "h", Value: []byte("v")}}}
			}
			b, err := BuildBatch(c, codec, 0, recs, DefaultBatchOptions())
			if err != nil {
				t.Fatal(err)
			}
			v := Validator{Codecs: c}
			return testing.AllocsPerRun(20, func() {
				if _, err := v.Validate(b, loose); err != nil {
					t.Fatal(err)
				}
			})
		}
		few, many := allocs(4), allocs(400)
		if codec == CodecNone && many != 0 {
			t.Errorf("none: %v allocations per batch, want 0", many)
		}
		// Per-batch decoder setup only: nothing that grows with the records.
		// Under -race sync.Pool drops cached decoders at random, so the
		// compressed counts are only comparable without it.
		if !raceEnabled && many > few+2 {
			t.Errorf("%s: %v allocations for 400 records, %v for 4", codecName(codec), many, few)
		}
	}
}

func FuzzValidate(f *testing.F) {
	c := NewCodecs()
	for _, codec := range allCodecs {
		for _, n := range []int{1, 5} {
			b, err := BuildBatch(c, codec, 0, testRecords(n), DefaultBatchOptions())
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add(rawBatch(1, 0, okRec(0)))
	v := Validator{Codecs: c}
	f.Fuzz(func(t *testing.T, b []byte) {
		// As FuzzDecodeRecords: also try the mutation with its CRC fixed so
		// the record walk is reached.
		for _, in := range [][]byte{b, fixCRC(b)} {
			st, err := v.Validate(in, ValidateOptions{MaxDecompressed: 1 << 20, RequireKeys: true})
			if err == nil && st.Uncompressed > 1<<20 {
				t.Fatalf("accepted %d bytes past the limit", st.Uncompressed)
			}
			_, recs, derr := DecodeRecords(in, c, 1<<20)
			if derr != nil {
				continue
			}
			var rve *RecordValidationError
			switch {
			case err == nil:
			case errors.As(err, &rve):
				for _, e := range rve.Records {
					if recs[e.Index].Key != nil {
						t.Fatalf("record %d has a key but was refused: %v", e.Index, err)
					}
				}
			case !errors.Is(err, ErrInvalidRecord) || !negativeLength.MatchString(err.Error()):
				// kmsg reads lengths below -1 as null and negative header
				// counts as none; Validate refuses both, as Kafka does
				// header counts.
				t.Fatalf("DecodeRecords accepts what Validate refuses: %v", err)
			}
		}
	})
}

var negativeLength = regexp.MustCompile(`(length|headers) -`)

// fixCRC returns a copy of b with a recomputed CRC when b is long enough.
func fixCRC(b []byte) []byte {
	if len(b) < batchHeaderSize {
		return b
	}
	return recrc(append([]byte(nil), b...))
}

func TestRecompressKeepsBatchFields(t *testing.T) {
	t.Parallel()
	c := NewCodecs()
	opts := BatchOptions{ProducerID: 7, ProducerEpoch: 2, BaseSequence: 40, PartitionLeaderEpoch: -1, FirstTimestamp: 5000}
	recs := testRecords(9)
	for _, from := range allCodecs {
		for _, to := range allCodecs {
			for _, level := range []int{-1, 1, 9, 17, 3, 22} {
				b, err := BuildBatch(c, from, 0, recs, opts)
				if err != nil {
					t.Fatal(err)
				}
				out, err := Recompress(c, b, to, level, 1<<20)
				if err != nil {
					t.Fatalf("%s->%s: %v", codecName(from), codecName(to), err)
				}
				if _, err := (&Validator{Codecs: c}).Validate(out, loose); err != nil {
					t.Fatalf("%s->%s level %d: recompressed batch invalid: %v", codecName(from), codecName(to), level, err)
				}
				rb, got, err := DecodeRecords(out, c, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				if rb.Attributes&attrCodecMask != int16(to) || rb.ProducerID != 7 || rb.ProducerEpoch != 2 ||
					rb.FirstSequence != 40 || rb.FirstTimestamp != 5000 || rb.NumRecords != 9 || rb.LastOffsetDelta != 8 {
					t.Fatalf("%s->%s: header %+v", codecName(from), codecName(to), rb)
				}
				sameRecords(t, got, recs)
			}
		}
	}
}
