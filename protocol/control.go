package protocol

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

// MarkerBatch is the control batch that ends a transaction in one partition,
// as Kafka's transaction coordinator has partition leaders write it
// (WriteTxnMarkers, KIP-98): producer id and epoch, no sequence, the
// transactional and control attributes, and one record whose key is a
// ControlRecordKey (version 0, type COMMIT or ABORT) and whose value is an
// EndTxnMarker carrying the coordinator epoch. Control batches are never
// compressed. The base offset is 0; the leader assigns it on append.
func MarkerBatch(producerID int64, producerEpoch int16, commit bool, coordinatorEpoch int32, timestamp int64) []byte {
	typ := kmsg.ControlRecordKeyTypeAbort
	if commit {
		typ = kmsg.ControlRecordKeyTypeCommit
	}
	key := (&kmsg.ControlRecordKey{Version: 0, Type: typ}).AppendTo(nil)
	value := (&kmsg.EndTxnMarker{Version: 0, CoordinatorEpoch: coordinatorEpoch}).AppendTo(nil)
	opts := BatchOptions{
		ProducerID:           producerID,
		ProducerEpoch:        producerEpoch,
		BaseSequence:         -1,
		Transactional:        true,
		Control:              true,
		PartitionLeaderEpoch: -1,
		FirstTimestamp:       timestamp,
		MaxTimestamp:         timestamp,
	}
	// BuildBatch fails only for an unknown codec or more than 2^31 records.
	b, err := BuildBatch(nil, CodecNone, 0, []kmsg.Record{{Key: key, Value: value}}, opts)
	if err != nil {
		panic("protocol: building a marker batch: " + err.Error())
	}
	return b
}
