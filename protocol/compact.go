package protocol

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DefaultCompactionMaxSize is the decompressed-size bound RecordFilter uses
// when MaxSize is zero: a stored batch is at most max.message.bytes
// compressed, and 64 MiB of records covers any sane compression ratio.
const DefaultCompactionMaxSize = 64 << 20

// RecordFilter gives log compaction (storage's cleaner) record-level access
// to stored batches: storage only understands batch headers, so the broker
// hands it this type, whose method set matches storage.RecordFilter.
// Batches may already have been thinned by earlier passes (offset-delta
// gaps), so they are decoded with DecodeCompactedRecords. The zero value
// works (no codec caching, DefaultCompactionMaxSize); it is safe for
// concurrent use when Codecs is.
type RecordFilter struct {
	// Codecs caches compressors; nil builds them per call.
	Codecs *Codecs
	// MaxSize bounds a batch's records section after decompression;
	// zero means DefaultCompactionMaxSize. A larger batch fails with
	// ErrDecompressedTooLarge and the cleaner leaves the log alone.
	MaxSize int
}

func (f RecordFilter) maxSize() int {
	if f.MaxSize > 0 {
		return f.MaxSize
	}
	return DefaultCompactionMaxSize
}

// Records calls fn for every record of one whole v2 batch, in offset order,
// with its absolute offset, its key (nil for a null key; it aliases the
// batch or a decompression buffer and must not be kept), whether it is a
// tombstone (null value) and its timestamp (the batch's MaxTimestamp for
// LogAppendTime batches, as Kafka's DefaultRecord reports it). It fails,
// before calling fn, if the batch does not validate.
func (f RecordFilter) Records(batchBytes []byte, fn func(offset int64, key []byte, tombstone bool, timestamp int64)) error {
	rb, recs, err := DecodeCompactedRecords(batchBytes, f.Codecs, f.maxSize())
	if err != nil {
		return err
	}
	appendTime := rb.Attributes&attrLogAppendTime != 0
	for i := range recs {
		r := &recs[i]
		ts := rb.MaxTimestamp
		if !appendTime {
			ts = rb.FirstTimestamp + timestampDelta(r)
		}
		fn(rb.FirstOffset+int64(r.OffsetDelta), r.Key, r.Value == nil, ts)
	}
	return nil
}

// Rewrite returns a new batch holding only the records whose offset keep
// accepts, or nil when it accepts none. Everything that identifies the
// batch survives, as in Kafka's MemoryRecords.filterTo: base offset and
// LastOffsetDelta (so the batch still spans its original offsets and the
// producer's last sequence is unchanged), partition leader epoch, producer
// id, epoch and base sequence, the attributes (codec, timestamp type,
// transactional and control bits), FirstTimestamp and MaxTimestamp. Kept
// records keep their offset and timestamp deltas, and the records are
// compressed again with the batch's own codec. The result has a valid
// CRC-32C and never aliases batchBytes.
func (f RecordFilter) Rewrite(batchBytes []byte, keep func(offset int64) bool) ([]byte, error) {
	rb, recs, err := DecodeCompactedRecords(batchBytes, f.Codecs, f.maxSize())
	if err != nil {
		return nil, err
	}
	kept := make([]kmsg.Record, 0, len(recs))
	for _, r := range recs {
		if keep(rb.FirstOffset + int64(r.OffsetDelta)) {
			kept = append(kept, r)
		}
	}
	switch len(kept) {
	case 0:
		return nil, nil
	case len(recs):
		return slices.Clone(batchBytes), nil
	}
	opts := BatchOptions{
		ProducerID:           rb.ProducerID,
		ProducerEpoch:        rb.ProducerEpoch,
		BaseSequence:         rb.FirstSequence,
		Transactional:        rb.Attributes&attrTransactional != 0,
		Control:              rb.Attributes&attrControl != 0,
		LogAppendTime:        rb.Attributes&attrLogAppendTime != 0,
		PartitionLeaderEpoch: rb.PartitionLeaderEpoch,
		FirstTimestamp:       rb.FirstTimestamp,
		MaxTimestamp:         rb.MaxTimestamp,
		LastOffsetDelta:      rb.LastOffsetDelta,
	}
	out, err := BuildBatch(f.Codecs, int8(rb.Attributes&attrCodecMask), rb.FirstOffset, kept, opts)
	if err != nil {
		return nil, fmt.Errorf("rebuild batch at offset %d: %w", rb.FirstOffset, err)
	}
	// BuildBatch derives MaxTimestamp from the kept records; the original
	// stays, so the segment's time index and retention.ms see the same
	// timestamps as before compaction.
	if got := int64(binary.BigEndian.Uint64(out[batchMaxTimestampPos:])); got != rb.MaxTimestamp {
		binary.BigEndian.PutUint64(out[batchMaxTimestampPos:], uint64(rb.MaxTimestamp))
		binary.BigEndian.PutUint32(out[batchCRCOffset:], crc32.Checksum(out[batchCRCStart:], castagnoli))
	}
	return out, nil
}

// batchMaxTimestampPos is the byte position of MaxTimestamp in a v2 batch.
const batchMaxTimestampPos = 35

// timestampDelta returns a record's timestamp delta as kmsg decoded it.
func timestampDelta(r *kmsg.Record) int64 {
	if r.TimestampDelta64 != 0 {
		return r.TimestampDelta64
	}
	return int64(r.TimestampDelta)
}
