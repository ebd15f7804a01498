package batch

import (
	"bytes"
	"errors"
	"hash/crc32"
	"math"
	"testing"
)

func TestBatchHeaderMatchesKmsg(t *testing.T) {
	t.Parallel()
	cases := []testBatch{
		{},
		{baseOffset: 42, epoch: 7, records: 5, valueSize: 100, firstTs: 1_700_000_000_000},
		{producerID: 9, prodEpoch: 3, baseSeq: 11, records: 3, attrs: attrTransactional},
		{attrs: int16(Zstd) | attrLogAppendTime | attrControl, records: 1},
	}
	for _, tc := range cases {
		b := kmsgBatch(t, tc)
		h, err := Check(b)
		if err != nil {
			t.Fatalf("Check(%+v): %v", tc, err)
		}
		rb := kmsgDecode(t, b)
		want := Header{
			BaseOffset: rb.FirstOffset, Length: rb.Length, PartitionLeaderEpoch: rb.PartitionLeaderEpoch,
			Magic: rb.Magic, CRC: uint32(rb.CRC), Attributes: rb.Attributes, LastOffsetDelta: rb.LastOffsetDelta,
			FirstTimestamp: rb.FirstTimestamp, MaxTimestamp: rb.MaxTimestamp, ProducerID: rb.ProducerID,
			ProducerEpoch: rb.ProducerEpoch, BaseSequence: rb.FirstSequence, NumRecords: rb.NumRecords,
		}
		if h != want {
			t.Fatalf("header mismatch\n got %+v\nwant %+v", h, want)
		}
		if h.Size() != len(b) {
			t.Fatalf("Size %d, len %d", h.Size(), len(b))
		}
		if h.LastOffset() != tc.baseOffset+int64(h.LastOffsetDelta) || h.NextOffset() != h.LastOffset()+1 {
			t.Fatalf("offsets: last %d next %d", h.LastOffset(), h.NextOffset())
		}
		if h.Codec() != Codec(tc.attrs&7) || h.Transactional() != (tc.attrs&attrTransactional != 0) ||
			h.Control() != (tc.attrs&attrControl != 0) || h.LogAppendTime() != (tc.attrs&attrLogAppendTime != 0) {
			t.Fatalf("attribute accessors wrong for %x", tc.attrs)
		}
	}
}

func TestBatchCheckRejects(t *testing.T) {
	t.Parallel()
	good := kmsgBatch(t, testBatch{records: 3, valueSize: 10})
	mutate := func(f func(b []byte) []byte) []byte {
		return f(bytes.Clone(good))
	}
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"header only", good[:HeaderSize-1], ErrShort},
		{"truncated", good[:len(good)-1], ErrShort},
		{"trailing", append(bytes.Clone(good), 0), ErrInvalid},
		{"tiny length", mutate(func(b []byte) []byte { b[posLength+3] = 10; b[posLength+2] = 0; return b }), ErrInvalid},
		{"magic 1", mutate(func(b []byte) []byte { b[posMagic] = 1; return b }), ErrMagic},
		{"flipped record byte", mutate(func(b []byte) []byte { b[len(b)-1] ^= 0x40; return b }), ErrCorrupt},
		{"flipped attribute", mutate(func(b []byte) []byte { b[posAttributes+1] ^= 1; return b }), ErrCorrupt},
		{"negative delta", fixCRC(mutate(func(b []byte) []byte { b[posLastOffsetDelta] = 0xff; return b })), ErrInvalid},
		{"negative records", fixCRC(mutate(func(b []byte) []byte { b[posNumRecords] = 0x80; return b })), ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Check(tc.b); !errors.Is(err, tc.want) {
				t.Fatalf("Check: got %v, want %v", err, tc.want)
			}
		})
	}
}

// fixCRC recomputes the CRC so only the field under test is wrong.
func fixCRC(b []byte) []byte {
	c := crc32.Checksum(b[posAttributes:], crc32.MakeTable(crc32.Castagnoli))
	b[posCRC], b[posCRC+1], b[posCRC+2], b[posCRC+3] = byte(c>>24), byte(c>>16), byte(c>>8), byte(c)
	return b
}

func TestBatchSetFieldsOutsideCRC(t *testing.T) {
	t.Parallel()
	b := kmsgBatch(t, testBatch{records: 4})
	SetBaseOffset(b, 1<<40)
	SetPartitionLeaderEpoch(b, 12)
	h, err := Check(b)
	if err != nil {
		t.Fatalf("Check after patch: %v", err)
	}
	if h.BaseOffset != 1<<40 || h.PartitionLeaderEpoch != 12 {
		t.Fatalf("patched header %+v", h)
	}
	rb := kmsgDecode(t, b)
	if rb.FirstOffset != 1<<40 || rb.PartitionLeaderEpoch != 12 {
		t.Fatalf("kmsg sees %d/%d", rb.FirstOffset, rb.PartitionLeaderEpoch)
	}
	// Short buffers are ignored rather than panicking.
	SetBaseOffset(b[:10], 1)
	SetPartitionLeaderEpoch(b[:10], 1)
	SetLogAppendTime(b[:10], 1)
}

func TestBatchSetLogAppendTime(t *testing.T) {
	t.Parallel()
	b := kmsgBatch(t, testBatch{records: 2, firstTs: 1000, attrs: int16(LZ4)})
	SetLogAppendTime(b, 5555)
	h, err := Check(b)
	if err != nil {
		t.Fatalf("Check after SetLogAppendTime: %v", err)
	}
	if !h.LogAppendTime() || h.MaxTimestamp != 5555 || h.FirstTimestamp != 1000 || h.Codec() != LZ4 {
		t.Fatalf("header %+v", h)
	}
	// Cross-check against a batch that kmsg built with the same fields.
	rb := kmsgDecode(t, b)
	rb.CRC = 0
	raw := rb.AppendTo(nil)
	want := crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli))
	if h.CRC != want {
		t.Fatalf("crc %08x, kmsg-derived %08x", h.CRC, want)
	}
}

func TestBatchNextSplits(t *testing.T) {
	t.Parallel()
	var blob []byte
	var sizes []int
	for i := range 5 {
		b := kmsgBatch(t, testBatch{baseOffset: int64(i * 10), records: i + 1, valueSize: i * 7})
		sizes = append(sizes, len(b))
		blob = append(blob, b...)
	}
	rest := blob
	for i := 0; len(rest) > 0; i++ {
		var b []byte
		var err error
		b, rest, err = Next(rest)
		if err != nil {
			t.Fatalf("Next %d: %v", i, err)
		}
		if len(b) != sizes[i] {
			t.Fatalf("batch %d: %d bytes, want %d", i, len(b), sizes[i])
		}
		if _, err := Check(b); err != nil {
			t.Fatalf("Check %d: %v", i, err)
		}
	}
	if _, _, err := Next(blob[:len(blob)-3]); err != nil {
		t.Fatalf("first batch of torn blob: %v", err)
	}
	torn := blob[len(blob)-sizes[4] : len(blob)-3]
	if _, r, err := Next(torn); !errors.Is(err, ErrShort) || len(r) != len(torn) {
		t.Fatalf("torn: %v, rest %d", err, len(r))
	}
	zero := make([]byte, 64)
	if _, _, err := Next(zero); !errors.Is(err, ErrInvalid) {
		t.Fatalf("zeroed: %v", err)
	}
}

func TestBatchLastSequenceWraps(t *testing.T) {
	t.Parallel()
	cases := []struct {
		base, delta, want int32
	}{
		{0, 0, 0},
		{5, 4, 9},
		{math.MaxInt32, 0, math.MaxInt32},
		{math.MaxInt32, 1, 0},
		{math.MaxInt32 - 2, 5, 2},
		{NoSequence, 3, NoSequence},
	}
	for _, tc := range cases {
		h := Header{BaseSequence: tc.base, LastOffsetDelta: tc.delta}
		if got := h.LastSequence(); got != tc.want {
			t.Errorf("LastSequence(%d+%d) = %d, want %d", tc.base, tc.delta, got, tc.want)
		}
	}
}

func TestBatchCodecString(t *testing.T) {
	t.Parallel()
	for c, want := range map[Codec]string{None: "none", Gzip: "gzip", Snappy: "snappy", LZ4: "lz4", Zstd: "zstd", 7: "codec(7)"} {
		if c.String() != want {
			t.Errorf("%d: %q", c, c.String())
		}
	}
}

func FuzzCheck(f *testing.F) {
	f.Add(kmsgBatch(f, testBatch{}))
	f.Add(kmsgBatch(f, testBatch{records: 3, valueSize: 20, producerID: 4, baseSeq: math.MaxInt32 - 1}))
	f.Add(make([]byte, HeaderSize))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, rest, err := Next(b); err == nil && len(rest) >= len(b) {
			t.Fatalf("Next consumed nothing")
		}
		h, err := Check(b)
		if err != nil {
			return
		}
		if h.Size() != len(b) {
			t.Fatalf("Check ok but Size %d != len %d", h.Size(), len(b))
		}
		c := bytes.Clone(b)
		SetBaseOffset(c, h.BaseOffset+12345)
		SetPartitionLeaderEpoch(c, 99)
		if _, err := Check(c); err != nil {
			t.Fatalf("SetBaseOffset broke the batch: %v", err)
		}
		SetLogAppendTime(c, 777)
		if h2, err := Check(c); err != nil || !h2.LogAppendTime() || h2.MaxTimestamp != 777 {
			t.Fatalf("SetLogAppendTime: %v %+v", err, h2)
		}
	})
}
