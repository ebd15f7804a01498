package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzParseRequest checks that no frame panics the request decoder, and
// that whatever decodes re-encodes stably: encode(parse(frame)) parses
// again to the same encoding, and the header reads the same through
// ParseHeader. The corpus is seeded with every kmsg request type at every
// version, empty and populated.
func FuzzParseRequest(f *testing.F) {
	for _, s := range allSeedRequests(f) {
		f.Add(s.frame)
	}
	f.Add([]byte{})
	f.Add([]byte{0, 18, 0x7f, 0xff, 0, 0, 0, 1, 0xff, 0xff, 0})
	f.Fuzz(func(t *testing.T, frame []byte) {
		h, req, err := ParseRequest(frame)
		h2, body, herr := ParseHeader(frame)
		if h != h2 {
			t.Fatalf("ParseRequest header %+v, ParseHeader %+v", h, h2)
		}
		if err != nil {
			if req != nil {
				t.Fatal("request returned with an error")
			}
			if herr == nil && !errors.Is(err, ErrUnsupportedVersion) && !errors.Is(err, ErrMalformedRequest) {
				t.Fatalf("header parsed but request failed with %v", err)
			}
			return
		}
		if herr != nil {
			t.Fatalf("request parsed but header failed: %v", herr)
		}
		enc := req.AppendTo(nil)
		again, err := ParseBody(h, enc)
		if err != nil {
			t.Fatalf("%s v%d: re-encoding does not parse: %v\nbody %x\nenc  %x", kmsg.NameForKey(h.Key), h.Version, err, body, enc)
		}
		if enc2 := again.AppendTo(nil); !bytes.Equal(enc, enc2) {
			t.Fatalf("%s v%d: unstable encoding\nfirst  %x\nsecond %x", kmsg.NameForKey(h.Key), h.Version, enc, enc2)
		}
	})
}

// FuzzDecodeRecords checks that no batch panics the record decoder, that
// decompression respects its limit, and that a decoded batch rebuilt with
// BuildBatch decodes to the same records and header fields.
func FuzzDecodeRecords(f *testing.F) {
	c := NewCodecs()
	opts := BatchOptions{ProducerID: 9, ProducerEpoch: 1, BaseSequence: 5, PartitionLeaderEpoch: 2, FirstTimestamp: 1000}
	for _, codec := range allCodecs {
		for _, n := range []int{1, 4} {
			b, err := BuildBatch(c, codec, 100, testRecords(n), opts)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b, false)
		}
	}
	gapped := testRecords(2)
	gapped[1].OffsetDelta = 5
	b, err := BuildBatch(c, CodecNone, 0, gapped, opts)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b, true)
	// The fuzzer rarely fixes a CRC up by itself: when a mutated batch fails
	// only its CRC, retry with the CRC recomputed so that the decoders
	// behind it are exercised too.
	const maxSize = 1 << 20
	f.Fuzz(func(t *testing.T, b []byte, compacted bool) {
		decode := DecodeRecords
		if compacted {
			decode = DecodeCompactedRecords
		}
		rb, recs, err := decode(b, c, maxSize)
		if errors.Is(err, ErrBatchCRC) {
			b = recrc(bytes.Clone(b))
			rb, recs, err = decode(b, c, maxSize)
		}
		if err != nil {
			if recs != nil {
				t.Fatal("records returned with an error")
			}
			return
		}
		if len(recs) != int(rb.NumRecords) {
			t.Fatalf("%d records, header says %d", len(recs), rb.NumRecords)
		}
		codec := int8(rb.Attributes & attrCodecMask)
		opts := BatchOptions{
			ProducerID: rb.ProducerID, ProducerEpoch: rb.ProducerEpoch, BaseSequence: rb.FirstSequence,
			Transactional: rb.Attributes&attrTransactional != 0, Control: rb.Attributes&attrControl != 0,
			LogAppendTime: true, PartitionLeaderEpoch: rb.PartitionLeaderEpoch,
			FirstTimestamp: rb.FirstTimestamp, MaxTimestamp: rb.MaxTimestamp, LastOffsetDelta: rb.LastOffsetDelta,
		}
		rebuilt, err := BuildBatch(c, codec, rb.FirstOffset, recs, opts)
		if err != nil {
			t.Fatalf("rebuild: %v", err)
		}
		// Attributes bits other than codec, timestamp type, transactional
		// and control are not ours to rebuild; copy them over.
		binary.BigEndian.PutUint16(rebuilt[21:], uint16(rb.Attributes|attrLogAppendTime))
		rebuilt = recrc(rebuilt)
		rb2, recs2, err := decode(rebuilt, c, maxSize)
		if err != nil {
			t.Fatalf("rebuilt batch does not decode: %v", err)
		}
		sameRecords(t, recs2, recs)
		if rb2.FirstOffset != rb.FirstOffset || rb2.LastOffsetDelta != rb.LastOffsetDelta ||
			rb2.MaxTimestamp != rb.MaxTimestamp || rb2.ProducerID != rb.ProducerID || rb2.NumRecords != rb.NumRecords {
			t.Fatalf("rebuilt header %+v, want %+v", rb2, rb)
		}
	})
}

// TestRequestDecodeAmplification checks MaxDecodeAmplification: hostile array counts are limited by
// kmsg to what the rest of the frame could hold at the element's minimum
// wire size, so decoding allocates at most a fixed multiple of the frame.
// Each array count that a populated seed encodes as 1 is replaced with the
// largest count kmsg would accept for elements of k bytes, and the frame is
// padded so that the count passes.
func TestRequestDecodeAmplification(t *testing.T) {
	const pad = 2 << 10
	limit := uint64(MaxDecodeAmplification)
	if raceEnabled {
		limit *= 2
	}
	worst := 0.0
	for _, s := range allSeedRequests(t) {
		if !s.filled {
			continue
		}
		for i := range len(s.frame) - 1 {
			for _, k := range []int{1, 2, 3, 4, 6, 8, 12, 16} {
				mutated := inflateCount(s.frame, i, k, pad)
				if mutated == nil {
					break
				}
				allocated := allocatedDuring(func() { _, _, _ = ParseRequest(mutated) })
				ratio := float64(allocated) / float64(len(mutated))
				worst = max(worst, ratio)
				if allocated > limit*uint64(len(mutated))+4096 {
					t.Fatalf("%s v%d: count at %d for %d-byte elements: %d bytes allocated for a %d-byte frame",
						kmsg.NameForKey(s.key), s.version, i, k, allocated, len(mutated))
				}
			}
		}
	}
	t.Logf("worst amplification %.1fx", worst)
}

// inflateCount returns frame with the array count 1 at offset i (int32 or
// compact uvarint) raised to what pad more bytes of k-byte elements would
// hold, followed by the padding; nil when there is no count 1 at i.
func inflateCount(frame []byte, i, k, pad int) []byte {
	var out []byte
	switch {
	case i+4 <= len(frame) && bytes.Equal(frame[i:i+4], []byte{0, 0, 0, 1}):
		out = binary.BigEndian.AppendUint32(bytes.Clone(frame[:i]), uint32((len(frame)-i-4+pad)/k))
		out = append(out, frame[i+4:]...)
	case frame[i] == 2: // compact count 1
		out = binary.AppendUvarint(bytes.Clone(frame[:i]), uint64((len(frame)-i-3+pad)/k+1))
		out = append(out, frame[i+1:]...)
	default:
		return nil
	}
	return append(out, make([]byte, pad)...)
}

// FuzzDecompress checks every codec against arbitrary input: no panic,
// output never beyond the limit, and whatever decodes survives a
// compress/decompress round trip.
func FuzzDecompress(f *testing.F) {
	c := NewCodecs()
	for _, codec := range allCodecs {
		for _, in := range [][]byte{{}, []byte("abc"), bytes.Repeat([]byte("xyz"), 5000)} {
			comp, err := c.Compress(codec, nil, in)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(codec, comp, 1<<16)
		}
	}
	f.Add(CodecSnappy, []byte(xerialHeader+"\x00\x00\x00\x05\xff\xff\xff\xff\x0f"), 100)
	f.Fuzz(func(t *testing.T, codec int8, src []byte, maxSize int) {
		maxSize = min(max(maxSize, -1), 1<<20)
		out, err := c.Decompress(codec, src, maxSize)
		if err != nil {
			if out != nil {
				t.Fatal("output returned with an error")
			}
			return
		}
		if len(out) > max(maxSize, 0) {
			t.Fatalf("%d bytes out with limit %d", len(out), maxSize)
		}
		comp, err := c.Compress(codec, nil, out)
		if err != nil {
			t.Fatal(err)
		}
		back, err := c.Decompress(codec, comp, len(out))
		if err != nil || !bytes.Equal(back, out) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
