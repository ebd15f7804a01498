package sharestate

// In-memory state: one partState per __share_group_state partition loaded
// (or loading) here, holding one entry per share-partition key; and the
// merge of a write's batches over the stored ones.

import (
	"cmp"
	"context"
	"slices"
	"sync"

	"github.com/sluicedev/sluice/coordinator/share"
)

// partState is one load of a __share_group_state partition. Guarded by
// Coordinator.mu, except the fields set at creation.
type partState struct {
	partition int32
	gen       uint64
	ctx       context.Context
	cancel    context.CancelFunc

	loaded  bool
	entries map[share.Key]*entry

	// queue holds operations waiting for the partition's writer.
	queue []*op
	wake  chan struct{}
	// goroutines counts the writer; dropping the load cancels ctx and
	// waits for it. Add is only called under Coordinator.mu while the load
	// is current.
	goroutines sync.WaitGroup
}

func newPartState(parent context.Context, partition int32, gen uint64) *partState {
	ps := &partState{partition: partition, gen: gen, entries: map[share.Key]*entry{}, wake: make(chan struct{}, 1)}
	ps.ctx, ps.cancel = context.WithCancel(parent)
	return ps
}

// entry is the durable state of one share-partition, plus what its next
// record needs: the snapshot epoch its updates name, how many updates
// followed the snapshot, and delta, everything changed since the snapshot
// (each update record carries the whole delta, so a compacted log that kept
// only the latest snapshot and the latest update still rebuilds the state).
type entry struct {
	st        share.State
	snapEpoch uint16
	updates   int
	delta     delta
	// base is the snapshot while a load replays the partition's log.
	base share.State
}

// delta is the change since a snapshot, as an update record stores it.
type delta struct {
	leaderEpoch int32
	startOffset int64 // -1: unchanged
	batches     []share.StateBatch
	deadLetter  *share.DeadLetterCursor
}

func (e *entry) clone() *entry {
	n := *e
	n.st.Batches = slices.Clone(e.st.Batches)
	n.delta.batches = slices.Clone(e.delta.batches)
	return &n
}

// normalize sorts batches by first offset and resolves overlaps: where two
// sent batches overlap, the one starting later wins from its first offset
// (an honest leader never sends overlaps). O(n log n).
func normalize(in []share.StateBatch) []share.StateBatch {
	if len(in) == 0 {
		return nil
	}
	bs := slices.Clone(in)
	slices.SortStableFunc(bs, func(a, b share.StateBatch) int { return cmp.Compare(a.FirstOffset, b.FirstOffset) })
	out := bs[:0]
	for _, b := range bs {
		if n := len(out); n > 0 && out[n-1].LastOffset >= b.FirstOffset {
			if out[n-1].FirstOffset == b.FirstOffset {
				out = out[:n-1]
			} else {
				out[n-1].LastOffset = b.FirstOffset - 1
			}
		}
		out = append(out, b)
	}
	return out
}

// merge returns old with every offset covered by upd replaced by upd's
// batch, then everything below start dropped (start < 0: no pruning), and
// adjacent equal runs joined. old and upd must be normalized. O(len(old) +
// len(upd)).
func merge(old, upd []share.StateBatch, start int64) []share.StateBatch {
	out := make([]share.StateBatch, 0, len(old)+len(upd))
	j := 0
	for _, o := range old {
		// Emit the new batches ending before o, then the parts of o no
		// new batch covers.
		for j < len(upd) && upd[j].LastOffset < o.FirstOffset {
			out = appendJoin(out, upd[j])
			j++
		}
		cur := o
		for k := j; k < len(upd) && upd[k].FirstOffset <= cur.LastOffset; k++ {
			u := upd[k]
			if u.FirstOffset > cur.FirstOffset {
				piece := cur
				piece.LastOffset = u.FirstOffset - 1
				out = appendJoin(out, piece)
			}
			out = appendJoin(out, u)
			j = k + 1
			if u.LastOffset >= cur.LastOffset {
				cur.FirstOffset = cur.LastOffset + 1
				break
			}
			cur.FirstOffset = u.LastOffset + 1
		}
		if cur.FirstOffset <= cur.LastOffset {
			out = appendJoin(out, cur)
		}
	}
	for ; j < len(upd); j++ {
		out = appendJoin(out, upd[j])
	}
	return prune(out, start)
}

// appendJoin appends b, joining it to the last batch when they are
// adjacent and equal, and cutting the part of b the last batch already
// covers (a new batch emitted before the rest of an old one).
func appendJoin(out []share.StateBatch, b share.StateBatch) []share.StateBatch {
	if n := len(out); n > 0 {
		last := &out[n-1]
		if b.FirstOffset <= last.LastOffset {
			if b.LastOffset <= last.LastOffset {
				return out
			}
			b.FirstOffset = last.LastOffset + 1
		}
		if last.LastOffset+1 == b.FirstOffset && sameRun(*last, b) {
			last.LastOffset = b.LastOffset
			return out
		}
	}
	return append(out, b)
}

func sameRun(a, b share.StateBatch) bool {
	return a.State == b.State && a.DeliveryCount == b.DeliveryCount && a.NotBefore.Equal(b.NotBefore)
}

// prune drops the offsets below start (start < 0: none), in place.
func prune(bs []share.StateBatch, start int64) []share.StateBatch {
	if start < 0 {
		return bs
	}
	i := 0
	for i < len(bs) && bs[i].LastOffset < start {
		i++
	}
	bs = bs[i:]
	if len(bs) > 0 && bs[0].FirstOffset < start {
		bs[0].FirstOffset = start
	}
	return bs
}

// deliveryComplete counts the offsets at or above the start offset that
// are done (Acknowledged or Archived): KIP-1226's DeliveryCompleteCount.
func deliveryComplete(st share.State) int64 {
	var n int64
	for _, b := range st.Batches {
		if b.State == share.Acknowledged || b.State == share.Archived {
			n += b.LastOffset - b.FirstOffset + 1
		}
	}
	return n
}
