package group

// TxnOffsetCommit: v0-5 (KIP-98, KIP-447 member fencing, KIP-890).
//
// SKELETON: the contract the broker is written against.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TxnOffsetCommit writes offsets as part of the producer's transaction: they
// are pending (OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT
// for their partitions) until CompleteTxn applies the transaction's marker.
func (c *Coordinator) TxnOffsetCommit(ctx context.Context, req *kmsg.TxnOffsetCommitRequest) *kmsg.TxnOffsetCommitResponse {
	return req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
}

// CompleteTxn ends producerID's transaction in partition: write appends the
// COMMIT or ABORT marker (durably, as an acks=all produce), and once it
// returned nil the producer's pending offsets in the partition are committed
// or dropped. write runs under the partition's write lock, so markers and
// the coordinator's own writes reach the log in the order memory applies
// them. It works whether or not the partition is loaded here (the marker is
// written either way; a later load replays it) and returns write's error.
func (c *Coordinator) CompleteTxn(ctx context.Context, partition int32, producerID int64, commit bool, write func(context.Context) error) error {
	return write(ctx)
}
