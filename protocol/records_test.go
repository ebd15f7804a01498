package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// testRecords returns n records with offset deltas 0..n-1 covering null and
// empty keys and values and headers.
func testRecords(n int) []kmsg.Record {
	recs := make([]kmsg.Record, n)
	for i := range recs {
		r := kmsg.NewRecord()
		r.OffsetDelta = int32(i)
		r.TimestampDelta64 = int64(i * 3)
		switch i % 4 {
		case 0:
			r.Key, r.Value = nil, []byte(fmt.Sprintf("value-%d", i))
		case 1:
			r.Key, r.Value = []byte(fmt.Sprintf("key-%d", i)), nil
		case 2:
			r.Key, r.Value = []byte{}, []byte{}
		case 3:
			r.Key, r.Value = []byte("k"), bytes.Repeat([]byte{byte(i)}, 1000)
			r.Headers = []kmsg.Header{{Key: "h1", Value: []byte("v1")}, {Key: "", Value: nil}}
		}
		recs[i] = r
	}
	return recs
}

// sameRecords compares the fields a producer sets.
func sameRecords(t *testing.T, got, want []kmsg.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.OffsetDelta != w.OffsetDelta || g.TimestampDelta64 != w.TimestampDelta64 ||
			!bytes.Equal(g.Key, w.Key) || (g.Key == nil) != (w.Key == nil) ||
			!bytes.Equal(g.Value, w.Value) || (g.Value == nil) != (w.Value == nil) ||
			len(g.Headers) != len(w.Headers) {
			t.Fatalf("record %d: got %+v, want %+v", i, g, w)
		}
		for j := range g.Headers {
			if g.Headers[j].Key != w.Headers[j].Key || !bytes.Equal(g.Headers[j].Value, w.Headers[j].Value) ||
				(g.Headers[j].Value == nil) != (w.Headers[j].Value == nil) {
				t.Fatalf("record %d header %d: got %+v, want %+v", i, j, g.Headers[j], w.Headers[j])
			}
		}
	}
}

// recrc recomputes the CRC of a batch whose bytes a test patched.
func recrc(b []byte) []byte {
	binary.BigEndian.PutUint32(b[batchCRCOffset:], crc32.Checksum(b[batchCRCStart:], castagnoli))
	return b
}

// rawBatch assembles an uncompressed batch around hand-made record bytes.
func rawBatch(numRecords, lastDelta int32, records []byte) []byte {
	rb := kmsg.RecordBatch{
		Length: int32(batchLengthMin + len(records)), PartitionLeaderEpoch: -1, Magic: 2,
		LastOffsetDelta: lastDelta, ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1,
		NumRecords: numRecords, Records: records,
	}
	return recrc(rb.AppendTo(nil))
}

func TestRecordsBuildDecode(t *testing.T) {
	t.Parallel()
	c := NewCodecs()
	opts := BatchOptions{
		ProducerID: 42, ProducerEpoch: 3, BaseSequence: 100, Transactional: true,
		PartitionLeaderEpoch: 7, FirstTimestamp: 1_700_000_000_000,
	}
	for _, codec := range allCodecs {
		for _, n := range []int{1, 10, 300} {
			t.Run(fmt.Sprintf("%s/%d", codecName(codec), n), func(t *testing.T) {
				t.Parallel()
				recs := testRecords(n)
				b, err := BuildBatch(c, codec, 1000, recs, opts)
				if err != nil {
					t.Fatal(err)
				}
				if crc := crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)); crc != binary.BigEndian.Uint32(b[17:]) {
					t.Fatal("crc mismatch")
				}
				rb, got, err := DecodeRecords(b, c, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				sameRecords(t, got, recs)
				want := kmsg.RecordBatch{
					FirstOffset: 1000, Length: int32(len(b) - 12), PartitionLeaderEpoch: 7, Magic: 2,
					CRC: rb.CRC, Attributes: int16(codec) | attrTransactional, LastOffsetDelta: int32(n - 1),
					FirstTimestamp: opts.FirstTimestamp, MaxTimestamp: opts.FirstTimestamp + int64((n-1)*3),
					ProducerID: 42, ProducerEpoch: 3, FirstSequence: 100, NumRecords: int32(n), Records: rb.Records,
				}
				if fmt.Sprint(rb) != fmt.Sprint(want) {
					t.Fatalf("batch header\n got %+v\nwant %+v", rb, want)
				}
			})
		}
	}
}

func TestRecordsBuildOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		opts     BatchOptions
		recs     []kmsg.Record
		wantAttr int16
		wantMax  int64
		wantLast int32
	}{
		{"default", DefaultBatchOptions(), testRecords(2), 0, 3, 1},
		{"log append time", BatchOptions{LogAppendTime: true, FirstTimestamp: 5, MaxTimestamp: 99}, testRecords(2), attrLogAppendTime, 99, 1},
		{"control", BatchOptions{Control: true, Transactional: true}, testRecords(1), attrControl | attrTransactional, 0, 0},
		{"empty keeps last offset delta", BatchOptions{LastOffsetDelta: 9, MaxTimestamp: 77}, nil, 0, 77, 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := BuildBatch(nil, CodecNone, 0, tt.recs, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			rb, _, err := DecodeCompactedRecords(b, nil, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if rb.Attributes != tt.wantAttr || rb.MaxTimestamp != tt.wantMax || rb.LastOffsetDelta != tt.wantLast {
				t.Fatalf("attributes %#x max ts %d last delta %d", rb.Attributes, rb.MaxTimestamp, rb.LastOffsetDelta)
			}
		})
	}
	if _, err := BuildBatch(nil, 5, 0, nil, DefaultBatchOptions()); !errors.Is(err, ErrUnknownCodec) {
		t.Fatalf("codec 5: %v", err)
	}
	bad := testRecords(2)
	bad[1].OffsetDelta = 0
	if _, err := BuildBatch(nil, CodecNone, 0, bad, DefaultBatchOptions()); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("repeated offset delta: %v", err)
	}
}

func TestRecordsCompacted(t *testing.T) {
	t.Parallel()
	recs := testRecords(3)
	recs[1].OffsetDelta, recs[2].OffsetDelta = 4, 7
	opts := DefaultBatchOptions()
	opts.LastOffsetDelta = 9
	for _, codec := range allCodecs {
		b, err := BuildBatch(nil, codec, 50, recs, opts)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := DecodeRecords(b, nil, 1<<20); !errors.Is(err, ErrInvalidBatch) {
			t.Fatalf("%s: strict decode of a compacted batch: %v", codecName(codec), err)
		}
		rb, got, err := DecodeCompactedRecords(b, nil, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		sameRecords(t, got, recs)
		if rb.LastOffsetDelta != 9 {
			t.Fatalf("last offset delta %d", rb.LastOffsetDelta)
		}
	}
	empty, err := BuildBatch(nil, CodecNone, 50, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, got, err := DecodeCompactedRecords(empty, nil, 1<<20); err != nil || len(got) != 0 {
		t.Fatalf("empty compacted batch: %v", err)
	}
	if _, _, err := DecodeRecords(empty, nil, 1<<20); !errors.Is(err, ErrInvalidBatch) {
		t.Fatalf("empty batch on the produce path: %v", err)
	}
}

func TestRecordsDecodeErrors(t *testing.T) {
	t.Parallel()
	good, err := BuildBatch(nil, CodecNone, 0, testRecords(3), DefaultBatchOptions())
	if err != nil {
		t.Fatal(err)
	}
	zstdBatch, err := BuildBatch(nil, CodecZstd, 0, testRecords(300), DefaultBatchOptions())
	if err != nil {
		t.Fatal(err)
	}
	patch := func(b []byte, off int, v ...byte) []byte {
		b = bytes.Clone(b)
		copy(b[off:], v)
		return b
	}
	one := kmsg.Record{Value: []byte("v")}
	one.Length = int32(recordBodySize(&one))
	oneRec := one.AppendTo(nil)
	// A record whose Length claims one byte more than its fields use.
	long := one
	long.Length++
	junkInRecord := append(long.AppendTo(nil), 0)
	// Offset delta 1 for the first record.
	skipped := one
	skipped.OffsetDelta = 1
	skippedRec := skipped.AppendTo(nil)

	tests := []struct {
		name    string
		b       []byte
		maxSize int
		want    error
	}{
		{"short", good[:60], 1 << 20, ErrInvalidBatch},
		{"length beyond bytes", good[:len(good)-1], 1 << 20, ErrInvalidBatch},
		{"bytes beyond length", append(bytes.Clone(good), 0), 1 << 20, ErrInvalidBatch},
		{"negative length", patch(good, 8, 0xff, 0xff, 0xff, 0xff), 1 << 20, ErrInvalidBatch},
		{"magic 1", recrc(patch(good, 16, 1)), 1 << 20, ErrInvalidBatch},
		{"crc", patch(good, len(good)-1, good[len(good)-1]^1), 1 << 20, ErrBatchCRC},
		{"codec 6", recrc(patch(good, 21, 0, 6)), 1 << 20, ErrUnknownCodec},
		{"num records high", recrc(patch(good, 57, 0, 0, 0, 4)), 1 << 20, ErrInvalidBatch},
		{"num records huge", recrc(patch(patch(good, 23, 0x7f, 0xff, 0xff, 0xfe), 57, 0x7f, 0xff, 0xff, 0xff)), 1 << 20, ErrInvalidRecord},
		{"zero records", rawBatch(0, -1, nil), 1 << 20, ErrInvalidBatch},
		{"trailing record bytes", rawBatch(1, 0, append(bytes.Clone(oneRec), 0, 0, 0, 0, 0, 0, 0)), 1 << 20, ErrInvalidRecord},
		{"junk inside record", rawBatch(1, 0, junkInRecord), 1 << 20, ErrInvalidRecord},
		{"record length past end", rawBatch(1, 0, append([]byte{0x7e}, oneRec[1:]...)), 1 << 20, ErrInvalidRecord},
		{"offset delta skips", rawBatch(1, 0, skippedRec), 1 << 20, ErrInvalidRecord},
		{"decompressed too large", zstdBatch, 1000, ErrDecompressedTooLarge},
		{"corrupt compressed", recrc(patch(zstdBatch, 70, 0xff, 0xff, 0xff)), 1 << 20, ErrCorruptCompression},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, recs, err := DecodeRecords(tt.b, nil, tt.maxSize)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if recs != nil {
				t.Fatal("records returned with an error")
			}
		})
	}
}
