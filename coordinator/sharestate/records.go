package sharestate

// Encoding of __share_group_state records: Kafka's ShareSnapshot and
// ShareUpdate keys and values (share-coordinator's JSON schemas), with
// Sluice's extensions in tagged fields. See doc.go for the layout.

import (
	"encoding/binary"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"

	"github.com/sluicedev/sluice/coordinator/share"
)

// Record types: the key's leading int16, as Kafka's coordinator records
// number them.
const (
	typeSnapshot int16 = 0
	typeUpdate   int16 = 1
)

// valueVersion is the only version of both values.
const valueVersion int16 = 0

// Sluice's tagged fields. TagNotBefore is on a state batch: the end of its
// redelivery backoff, unix milliseconds as an unsigned varint.
// TagDeadLetter is on a share-partition (the record value, and the
// partition of Read/WriteShareGroupState): the dead-letter producer as
// int64 producer id, int16 epoch, int32 next sequence, big-endian.
const (
	TagNotBefore  uint32 = 0x5100
	TagDeadLetter uint32 = 0x5101
)

// minBatchBytes is the smallest encoded state batch (8+8+1+2 and an empty
// tag count): a decoder allocates no more batches than the bytes can hold.
const minBatchBytes = 20

func recordKey(typ int16, k share.Key) []byte {
	b := make([]byte, 0, 2+2+len(k.Group)+16+4)
	b = kbin.AppendInt16(b, typ)
	b = kbin.AppendString(b, k.Group)
	b = kbin.AppendUuid(b, k.TopicID)
	return kbin.AppendInt32(b, k.Partition)
}

// decodeKey returns the record type and key; ok is false for a type this
// package does not know (skipped by loads).
func decodeKey(raw []byte) (typ int16, k share.Key, ok bool, err error) {
	r := kbin.Reader{Src: raw}
	typ = r.Int16()
	if typ != typeSnapshot && typ != typeUpdate {
		if r.Complete() != nil {
			return 0, k, false, errMalformed
		}
		return typ, k, false, nil
	}
	k.Group = r.String()
	k.TopicID = r.Uuid()
	k.Partition = r.Int32()
	if r.Complete() != nil || len(r.Src) != 0 {
		return 0, share.Key{}, false, errMalformed
	}
	return typ, k, true, nil
}

// snapshotValue encodes the whole state.
func snapshotValue(snapEpoch uint16, st share.State) []byte {
	b := kbin.AppendInt16(nil, valueVersion)
	b = kbin.AppendUint16(b, snapEpoch)
	b = kbin.AppendInt32(b, st.StateEpoch)
	b = kbin.AppendInt32(b, st.LeaderEpoch)
	b = kbin.AppendInt64(b, st.StartOffset)
	b = appendBatches(b, st.Batches)
	return appendDeadLetterTags(b, deadLetterPtr(st.DeadLetter))
}

// updateValue encodes a delta since the snapshot of snapEpoch.
func updateValue(snapEpoch uint16, d delta) []byte {
	b := kbin.AppendInt16(nil, valueVersion)
	b = kbin.AppendUint16(b, snapEpoch)
	b = kbin.AppendInt32(b, d.leaderEpoch)
	b = kbin.AppendInt64(b, d.startOffset)
	b = appendBatches(b, d.batches)
	return appendDeadLetterTags(b, d.deadLetter)
}

func deadLetterPtr(c share.DeadLetterCursor) *share.DeadLetterCursor {
	if c == (share.DeadLetterCursor{}) {
		return nil
	}
	return &c
}

func appendBatches(b []byte, bs []share.StateBatch) []byte {
	b = kbin.AppendCompactArrayLen(b, len(bs))
	for _, sb := range bs {
		b = kbin.AppendInt64(b, sb.FirstOffset)
		b = kbin.AppendInt64(b, sb.LastOffset)
		b = kbin.AppendInt8(b, int8(sb.State))
		b = kbin.AppendInt16(b, sb.DeliveryCount)
		if sb.NotBefore.IsZero() {
			b = kbin.AppendUvarint(b, 0)
			continue
		}
		v := EncodeNotBefore(sb.NotBefore)
		b = kbin.AppendUvarint(b, 1)
		b = kbin.AppendUvarint(b, TagNotBefore)
		b = kbin.AppendUvarint(b, uint32(len(v)))
		b = append(b, v...)
	}
	return b
}

func appendDeadLetterTags(b []byte, c *share.DeadLetterCursor) []byte {
	if c == nil {
		return kbin.AppendUvarint(b, 0)
	}
	v := EncodeDeadLetter(*c)
	b = kbin.AppendUvarint(b, 1)
	b = kbin.AppendUvarint(b, TagDeadLetter)
	b = kbin.AppendUvarint(b, uint32(len(v)))
	return append(b, v...)
}

// EncodeNotBefore is the TagNotBefore value of t.
func EncodeNotBefore(t time.Time) []byte {
	return binary.AppendUvarint(nil, uint64(max(t.UnixMilli(), 0)))
}

// DecodeNotBefore parses a TagNotBefore value.
func DecodeNotBefore(v []byte) (time.Time, bool) {
	ms, n := binary.Uvarint(v)
	if n <= 0 || n != len(v) || ms > 1<<62 {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(ms)), true
}

// EncodeDeadLetter is the TagDeadLetter value of c.
func EncodeDeadLetter(c share.DeadLetterCursor) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 14), uint64(c.ProducerID))
	b = binary.BigEndian.AppendUint16(b, uint16(c.ProducerEpoch))
	return binary.BigEndian.AppendUint32(b, uint32(c.Sequence))
}

// DecodeDeadLetter parses a TagDeadLetter value.
func DecodeDeadLetter(v []byte) (share.DeadLetterCursor, bool) {
	if len(v) != 14 {
		return share.DeadLetterCursor{}, false
	}
	return share.DeadLetterCursor{
		ProducerID:    int64(binary.BigEndian.Uint64(v)),
		ProducerEpoch: int16(binary.BigEndian.Uint16(v[8:])),
		Sequence:      int32(binary.BigEndian.Uint32(v[10:])),
	}, true
}

// value is a decoded snapshot or update value.
type value struct {
	snapEpoch   uint16
	stateEpoch  int32 // snapshots only
	leaderEpoch int32
	startOffset int64
	batches     []share.StateBatch
	deadLetter  *share.DeadLetterCursor
}

// decodeValue parses a value of the record type typ. Batches are checked
// (first <= last, known state) but not sorted; at most maxBatches are
// accepted.
func decodeValue(typ int16, raw []byte, maxBatches int) (value, error) {
	var v value
	r := kbin.Reader{Src: raw}
	if r.Int16() != valueVersion {
		return v, errMalformed
	}
	v.snapEpoch = r.Uint16()
	if typ == typeSnapshot {
		v.stateEpoch = r.Int32()
	}
	v.leaderEpoch = r.Int32()
	v.startOffset = r.Int64()
	n := r.CompactArrayLen()
	if n < 0 || int(n) > maxBatches || int(n) > len(r.Src)/minBatchBytes {
		return v, errMalformed
	}
	if n > 0 {
		v.batches = make([]share.StateBatch, 0, n)
	}
	for range n {
		sb := share.StateBatch{FirstOffset: r.Int64(), LastOffset: r.Int64(), State: share.RecordState(r.Int8()), DeliveryCount: r.Int16()}
		err := readTags(&r, func(tag uint32, val []byte) bool {
			if tag != TagNotBefore {
				return true
			}
			t, ok := DecodeNotBefore(val)
			sb.NotBefore = t
			return ok
		})
		if err != nil || !validBatch(sb) {
			return v, errMalformed
		}
		v.batches = append(v.batches, sb)
	}
	err := readTags(&r, func(tag uint32, val []byte) bool {
		if tag != TagDeadLetter {
			return true
		}
		c, ok := DecodeDeadLetter(val)
		v.deadLetter = &c
		return ok
	})
	if err != nil || r.Complete() != nil || len(r.Src) != 0 {
		return v, errMalformed
	}
	return v, nil
}

// readTags reads a tagged-field section, calling f per field; f returning
// false marks the value malformed.
func readTags(r *kbin.Reader, f func(tag uint32, val []byte) bool) error {
	n := r.Uvarint()
	for range n {
		tag := r.Uvarint()
		size := r.Uvarint()
		if !r.Ok() || int(size) > len(r.Src) {
			return errMalformed
		}
		if !f(tag, r.Span(int(size))) {
			return errMalformed
		}
	}
	return r.Complete()
}

// validBatch reports whether b could be stored: offsets not negative and
// in order, a known state, a delivery count not negative.
func validBatch(b share.StateBatch) bool {
	return b.FirstOffset >= 0 && b.FirstOffset <= b.LastOffset &&
		b.State >= share.Available && b.State <= share.Archived && b.DeliveryCount >= 0
}
