package sharestate

// The write path. Every change goes through its partition's writer: one
// goroutine per loaded partition that takes the queued operations,
// decides each against the durable state (folding earlier operations of
// the same batch), persists their records as one batch (group commit), and
// only then applies the new states to memory. So Persist calls for a
// partition never overlap, memory changes only after the log did, and no
// lock is held while writing.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicedev/sluice/coordinator/share"
)

// maxBatchBytes bounds one Persist batch, below the 1 MiB
// max.message.bytes of an internal topic; a larger record is written alone.
const maxBatchBytes = 512 << 10

type opKind uint8

const (
	opWrite      opKind = iota // WriteShareGroupState
	opInitialize               // InitializeShareGroupState
	opDelete                   // DeleteShareGroupState
	opLeader                   // a Read with a newer leader epoch records it
)

// op is one share-partition change waiting for, or in, the writer.
type op struct {
	kind        opKind
	key         share.Key
	stateEpoch  int32
	leaderEpoch int32
	startOffset int64
	batches     []share.StateBatch // normalized
	deadLetter  *share.DeadLetterCursor

	// Set by the writer.
	recs []Record
	next *entry // nil: the key is deleted (or unchanged for a no-op)
	done chan struct{}
	code int16
}

func (o *op) size() int {
	n := 64 + len(o.key.Group)
	for _, r := range o.recs {
		n += len(r.Key) + len(r.Value)
	}
	return n
}

// enqueue queues o on the writer of its key's partition, or returns the
// code of a partition this coordinator cannot serve now.
func (c *Coordinator) enqueue(o *op) int16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps, code := c.servableLocked(o.key)
	if code != 0 {
		return code
	}
	o.done = make(chan struct{})
	ps.queue = append(ps.queue, o)
	select {
	case ps.wake <- struct{}{}:
	default:
	}
	return 0
}

// await waits for the outcome of an enqueued o. A caller whose context
// ends first gets COORDINATOR_NOT_AVAILABLE; the write goes on.
func (c *Coordinator) await(ctx context.Context, o *op) int16 {
	select {
	case <-o.done:
		return o.code
	case <-ctx.Done():
		return kerr.CoordinatorNotAvailable.Code
	}
}

func (c *Coordinator) startWriterLocked(ps *partState) {
	ps.goroutines.Add(1)
	go func() {
		defer ps.goroutines.Done()
		c.runWriter(ps)
	}()
}

func (c *Coordinator) runWriter(ps *partState) {
	for {
		select {
		case <-ps.ctx.Done():
			c.mu.Lock()
			failAll(ps.queue, kerr.NotCoordinator.Code)
			ps.queue = nil
			c.mu.Unlock()
			return
		case <-ps.wake:
		}
		for c.writeBatch(ps) {
		}
	}
}

func failAll(ops []*op, code int16) {
	for _, o := range ops {
		o.code = code
		close(o.done)
	}
}

// writeBatch decides, persists and applies the queued operations of ps,
// up to maxBatchBytes of records. It reports whether it took any.
func (c *Coordinator) writeBatch(ps *partState) bool {
	c.mu.Lock()
	if ps.ctx.Err() != nil || len(ps.queue) == 0 {
		c.mu.Unlock()
		return false
	}
	// view holds the states as the ops taken so far leave them.
	view := map[share.Key]*entry{}
	var taken, refused []*op
	var recs []Record
	bytes := 0
	for len(ps.queue) > 0 {
		o := ps.queue[0]
		cur, seen := view[o.key]
		if !seen {
			cur = ps.entries[o.key]
		}
		o.recs, o.next, o.code = c.decide(o, cur)
		if len(taken) > 0 && bytes+o.size() > maxBatchBytes {
			break
		}
		ps.queue = ps.queue[1:]
		if o.code != 0 || len(o.recs) == 0 {
			refused = append(refused, o)
			continue
		}
		bytes += o.size()
		view[o.key] = o.next
		taken = append(taken, o)
		recs = append(recs, o.recs...)
	}
	if len(ps.queue) == 0 {
		ps.queue = nil
	}
	c.mu.Unlock()
	for _, o := range refused {
		close(o.done)
	}
	if len(taken) == 0 {
		return true
	}

	err := c.cfg.Persister.Persist(ps.ctx, ps.partition, recs)

	c.mu.Lock()
	defer c.mu.Unlock()
	current := !c.mu.closed && c.mu.parts[ps.partition] == ps
	for _, o := range taken {
		switch {
		case !current:
			o.code = kerr.NotCoordinator.Code
		case err != nil:
			o.code = persistErrorCode(err)
		case o.next == nil:
			delete(ps.entries, o.key)
		default:
			ps.entries[o.key] = o.next
		}
		close(o.done)
	}
	if err != nil && current && !errors.Is(err, context.Canceled) {
		c.log.Warn("writing share state failed", "partition", ps.partition, "records", len(recs), "err", err)
	}
	return true
}

// decide validates o against cur (nil: no state) and returns the records
// to write and the state after them, or the error code.
func (c *Coordinator) decide(o *op, cur *entry) ([]Record, *entry, int16) {
	switch o.kind {
	case opDelete:
		if cur == nil {
			return nil, nil, 0
		}
		return []Record{{Key: recordKey(typeSnapshot, o.key)}, {Key: recordKey(typeUpdate, o.key)}}, nil, 0
	case opInitialize:
		if cur != nil && o.stateEpoch <= cur.st.StateEpoch {
			return nil, nil, kerr.FencedStateEpoch.Code
		}
		st := share.State{StateEpoch: o.stateEpoch, LeaderEpoch: -1, StartOffset: o.startOffset}
		if cur != nil {
			st.LeaderEpoch = cur.st.LeaderEpoch
			st.DeadLetter = cur.st.DeadLetter
		}
		return c.snapshot(o.key, cur, st)
	case opLeader:
		if cur == nil || o.leaderEpoch <= cur.st.LeaderEpoch {
			return nil, nil, 0 // nothing to record
		}
		st := cur.st
		st.LeaderEpoch = o.leaderEpoch
		d := cur.delta
		d.leaderEpoch = o.leaderEpoch
		return c.update(o.key, cur, st, d)
	}
	return c.decideWrite(o, cur)
}

func (c *Coordinator) decideWrite(o *op, cur *entry) ([]Record, *entry, int16) {
	if cur != nil {
		if o.stateEpoch < cur.st.StateEpoch {
			return nil, nil, kerr.FencedStateEpoch.Code
		}
		if o.leaderEpoch >= 0 && o.leaderEpoch < cur.st.LeaderEpoch {
			return nil, nil, kerr.FencedLeaderEpoch.Code
		}
	}
	if cur == nil || o.stateEpoch > cur.st.StateEpoch {
		// A new share-partition, or one whose state epoch moved on:
		// the write is the whole state.
		st := share.State{StateEpoch: o.stateEpoch, LeaderEpoch: o.leaderEpoch, StartOffset: o.startOffset}
		if st.StartOffset < 0 && cur != nil {
			st.StartOffset = cur.st.StartOffset
		}
		if cur != nil && st.LeaderEpoch < 0 {
			st.LeaderEpoch = cur.st.LeaderEpoch
		}
		st.Batches = prune(o.batches, st.StartOffset)
		if o.deadLetter != nil {
			st.DeadLetter = *o.deadLetter
		} else if cur != nil {
			st.DeadLetter = cur.st.DeadLetter
		}
		return c.snapshot(o.key, cur, st)
	}
	st := cur.st
	if o.leaderEpoch >= 0 {
		st.LeaderEpoch = o.leaderEpoch
	}
	// The start offset only moves forward within a state epoch (a lower
	// one is ignored), so a replay of the snapshot and the latest delta
	// prunes exactly what the updates pruned.
	start := max(o.startOffset, -1)
	if start < st.StartOffset {
		start = -1
	}
	if start >= 0 {
		st.StartOffset = start
	}
	st.Batches = merge(cur.st.Batches, o.batches, st.StartOffset)
	if len(st.Batches) > c.cfg.MaxBatches {
		return nil, nil, kerr.InvalidRequest.Code
	}
	if o.deadLetter != nil {
		st.DeadLetter = *o.deadLetter
	}
	d := cur.delta
	d.leaderEpoch = st.LeaderEpoch
	if start >= 0 {
		d.startOffset = start
	}
	d.batches = merge(d.batches, o.batches, d.startOffset)
	if o.deadLetter != nil {
		dl := *o.deadLetter
		d.deadLetter = &dl
	}
	// A delta as large as the state itself is better written whole.
	if cur.updates+1 >= c.cfg.SnapshotEvery || len(d.batches) >= max(len(st.Batches), 16) {
		return c.snapshot(o.key, cur, st)
	}
	return c.update(o.key, cur, st, d)
}

// snapshot writes st whole under the next snapshot epoch.
func (c *Coordinator) snapshot(k share.Key, cur *entry, st share.State) ([]Record, *entry, int16) {
	if len(st.Batches) > c.cfg.MaxBatches {
		return nil, nil, kerr.InvalidRequest.Code
	}
	e := &entry{st: st, delta: delta{leaderEpoch: st.LeaderEpoch, startOffset: -1}}
	if cur != nil {
		e.snapEpoch = cur.snapEpoch + 1
	}
	return []Record{{Key: recordKey(typeSnapshot, k), Value: snapshotValue(e.snapEpoch, st)}}, e, 0
}

// update writes the delta d since cur's snapshot; st is the state after it.
func (c *Coordinator) update(k share.Key, cur *entry, st share.State, d delta) ([]Record, *entry, int16) {
	e := &entry{st: st, snapEpoch: cur.snapEpoch, updates: cur.updates + 1, delta: d}
	return []Record{{Key: recordKey(typeUpdate, k), Value: updateValue(e.snapEpoch, d)}}, e, 0
}
