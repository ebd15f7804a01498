package protocol

import (
	"math"
	"testing"

	"github.com/sluicedev/sluice/protocol/batch"
)

// TestMarkerBatchParses checks that storage's kmsg-free parser reads every
// marker MarkerBatch builds, and that the batch passes the checks storage
// applies to appended batches.
func TestMarkerBatchParses(t *testing.T) {
	t.Parallel()
	for _, commit := range []bool{false, true} {
		for _, epoch := range []int32{-1, 0, 7, math.MaxInt32} {
			b := MarkerBatch(42, 3, commit, epoch, 1_700_000_000_000)
			h, err := batch.Check(b)
			if err != nil {
				t.Fatalf("MarkerBatch(commit=%v, epoch=%d) invalid: %v", commit, epoch, err)
			}
			if !h.Control() || !h.Transactional() || h.ProducerID != 42 || h.ProducerEpoch != 3 {
				t.Fatalf("header %+v", h)
			}
			gotCommit, gotEpoch, err := batch.ParseMarker(b)
			if err != nil || gotCommit != commit || gotEpoch != epoch {
				t.Fatalf("ParseMarker(commit=%v, epoch=%d) = %v %d %v", commit, epoch, gotCommit, gotEpoch, err)
			}
			hb, err := batch.SetDeleteHorizon(b, 1_800_000_000_000)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := DecodeRecords(hb, NewCodecs(), 1<<20); err != nil {
				t.Fatalf("kmsg-side decode of a marker with a delete horizon: %v", err)
			}
		}
	}
}
