package sharestate

// Conversions between share.State and the kmsg forms of Read- and
// WriteShareGroupState, including Sluice's tagged fields, used by the
// coordinator's handlers and by partition leaders (the broker).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/coordinator/share"
)

// tagValue returns the value of tag key in t.
func tagValue(t *kmsg.Tags, key uint32) (val []byte, ok bool) {
	t.Each(func(k uint32, v []byte) {
		if k == key {
			val, ok = v, true
		}
	})
	return val, ok
}

// WritePartition is the WriteShareGroupState partition that stores st as
// partition's state: every batch with its NotBefore tag, the dead-letter
// producer in the partition's tag (when set), and KIP-1226's delivery
// complete count.
func WritePartition(partition int32, st share.State) kmsg.WriteShareGroupStateRequestTopicPartition {
	p := kmsg.NewWriteShareGroupStateRequestTopicPartition()
	p.Partition = partition
	p.StateEpoch = st.StateEpoch
	p.LeaderEpoch = st.LeaderEpoch
	p.StartOffset = st.StartOffset
	p.DeliveryCompleteCount = int32(min(deliveryComplete(st), 1<<31-1))
	p.StateBatches = make([]kmsg.WriteShareGroupStateRequestTopicPartitionStateBatch, len(st.Batches))
	for i, b := range st.Batches {
		wb := &p.StateBatches[i]
		wb.FirstOffset, wb.LastOffset = b.FirstOffset, b.LastOffset
		wb.DeliveryState, wb.DeliveryCount = int8(b.State), b.DeliveryCount
		if !b.NotBefore.IsZero() {
			wb.UnknownTags.Set(TagNotBefore, EncodeNotBefore(b.NotBefore))
		}
	}
	if st.DeadLetter != (share.DeadLetterCursor{}) {
		p.UnknownTags.Set(TagDeadLetter, EncodeDeadLetter(st.DeadLetter))
	}
	return p
}

// writeBatches extracts and checks the batches and dead-letter producer of
// a write; a non-zero code is INVALID_REQUEST.
func writeBatches(p *kmsg.WriteShareGroupStateRequestTopicPartition, maxBatches int) ([]share.StateBatch, *share.DeadLetterCursor, int16) {
	if len(p.StateBatches) > maxBatches {
		return nil, nil, kerr.InvalidRequest.Code
	}
	bs := make([]share.StateBatch, len(p.StateBatches))
	for i := range p.StateBatches {
		wb := &p.StateBatches[i]
		b := share.StateBatch{FirstOffset: wb.FirstOffset, LastOffset: wb.LastOffset,
			State: share.RecordState(wb.DeliveryState), DeliveryCount: wb.DeliveryCount}
		if v, ok := tagValue(&wb.UnknownTags, TagNotBefore); ok {
			t, ok := DecodeNotBefore(v)
			if !ok {
				return nil, nil, kerr.InvalidRequest.Code
			}
			b.NotBefore = t
		}
		if !validBatch(b) {
			return nil, nil, kerr.InvalidRequest.Code
		}
		bs[i] = b
	}
	var dl *share.DeadLetterCursor
	if v, ok := tagValue(&p.UnknownTags, TagDeadLetter); ok {
		c, ok := DecodeDeadLetter(v)
		if !ok {
			return nil, nil, kerr.InvalidRequest.Code
		}
		dl = &c
	}
	return normalize(bs), dl, 0
}

// readPartition fills a ReadShareGroupState answer from st.
func readPartition(rp *kmsg.ReadShareGroupStateResponseTopicPartition, st share.State) {
	rp.StateEpoch = st.StateEpoch
	rp.StartOffset = st.StartOffset
	rp.StateBatches = make([]kmsg.ReadShareGroupStateResponseTopicPartitionStateBatch, len(st.Batches))
	for i, b := range st.Batches {
		rb := &rp.StateBatches[i]
		rb.FirstOffset, rb.LastOffset = b.FirstOffset, b.LastOffset
		rb.DeliveryState, rb.DeliveryCount = int8(b.State), b.DeliveryCount
		if !b.NotBefore.IsZero() {
			rb.UnknownTags.Set(TagNotBefore, EncodeNotBefore(b.NotBefore))
		}
	}
	if st.DeadLetter != (share.DeadLetterCursor{}) {
		rp.UnknownTags.Set(TagDeadLetter, EncodeDeadLetter(st.DeadLetter))
	}
}

// StateFromRead is the state a ReadShareGroupState answer without an error
// holds (LeaderEpoch is not part of the answer; it is left -1). found is
// false when the share-partition has no state (start offset -1 and no
// batches, Kafka's answer for an uninitialized share-partition). ok is
// false when the answer is malformed: bad batches or tag values.
func StateFromRead(rp *kmsg.ReadShareGroupStateResponseTopicPartition) (st share.State, found, ok bool) {
	st = share.State{StateEpoch: rp.StateEpoch, LeaderEpoch: -1, StartOffset: rp.StartOffset}
	if rp.StartOffset < 0 && len(rp.StateBatches) == 0 {
		return st, false, true
	}
	st.Batches = make([]share.StateBatch, len(rp.StateBatches))
	for i := range rp.StateBatches {
		rb := &rp.StateBatches[i]
		b := share.StateBatch{FirstOffset: rb.FirstOffset, LastOffset: rb.LastOffset,
			State: share.RecordState(rb.DeliveryState), DeliveryCount: rb.DeliveryCount}
		if v, has := tagValue(&rb.UnknownTags, TagNotBefore); has {
			t, good := DecodeNotBefore(v)
			if !good {
				return st, false, false
			}
			b.NotBefore = t
		}
		if !validBatch(b) {
			return st, false, false
		}
		st.Batches[i] = b
	}
	st.Batches = normalize(st.Batches)
	if v, has := tagValue(&rp.UnknownTags, TagDeadLetter); has {
		c, good := DecodeDeadLetter(v)
		if !good {
			return st, false, false
		}
		st.DeadLetter = c
	}
	return st, true, true
}
