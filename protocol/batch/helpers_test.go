package batch

import (
	"hash/crc32"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// testBatch describes a batch for kmsgBatch; zero values give a small,
// non-idempotent, uncompressed batch.
type testBatch struct {
	baseOffset  int64
	epoch       int32
	attrs       int16
	records     int
	valueSize   int
	firstTs     int64
	producerID  int64
	prodEpoch   int16
	baseSeq     int32
	lastOffDiff int32 // added to LastOffsetDelta (compaction leaves gaps)
}

// kmsgBatch builds a v2 batch with kmsg and fills in Length and CRC the way
// a producer does: CRC-32C (Castagnoli) over the bytes from Attributes to
// the end.
func kmsgBatch(t testing.TB, tb testBatch) []byte {
	t.Helper()
	if tb.records == 0 {
		tb.records = 1
	}
	var recs []byte
	for i := range tb.records {
		r := kmsg.Record{
			TimestampDelta64: int64(i),
			OffsetDelta:      int32(i),
			Key:              []byte{byte(i)},
			Value:            make([]byte, tb.valueSize),
		}
		body := r.AppendTo(nil)[1:] // Length 0 encodes as one varint byte
		r.Length = int32(len(body))
		recs = r.AppendTo(recs)
	}
	rb := kmsg.RecordBatch{
		FirstOffset:          tb.baseOffset,
		PartitionLeaderEpoch: tb.epoch,
		Magic:                2,
		Attributes:           tb.attrs,
		LastOffsetDelta:      int32(tb.records-1) + tb.lastOffDiff,
		FirstTimestamp:       tb.firstTs,
		MaxTimestamp:         tb.firstTs + int64(tb.records-1),
		ProducerID:           tb.producerID,
		ProducerEpoch:        tb.prodEpoch,
		FirstSequence:        tb.baseSeq,
		NumRecords:           int32(tb.records),
		Records:              recs,
	}
	if tb.producerID == 0 {
		rb.ProducerID, rb.ProducerEpoch, rb.FirstSequence = -1, -1, -1
	}
	raw := rb.AppendTo(nil)
	rb.Length = int32(len(raw) - 12)
	raw = rb.AppendTo(raw[:0])
	rb.CRC = int32(crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return rb.AppendTo(raw[:0])
}

// kmsgDecode parses b with kmsg, for cross-checking our header view.
func kmsgDecode(t testing.TB, b []byte) kmsg.RecordBatch {
	t.Helper()
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(b); err != nil {
		t.Fatalf("kmsg cannot read batch: %v", err)
	}
	return rb
}
