package sharestate

// Loading and unloading __share_group_state partitions as leadership of
// them arrives and leaves (Kafka's ShareCoordinatorService.onElection and
// onResignation).

import (
	"fmt"

	"github.com/sluicedev/sluice/coordinator/share"
)

// LoadToken names one BeginLoad of a partition; a load that finishes after
// leadership moved on carries a stale token and is discarded.
type LoadToken struct {
	partition int32
	gen       uint64
}

// Partition is the __share_group_state partition the token loads.
func (t LoadToken) Partition() int32 { return t.partition }

// BeginLoad marks partition as loading: requests for its keys get
// COORDINATOR_LOAD_IN_PROGRESS until LoadFrom finishes. A previous load of
// the partition is dropped first, and BeginLoad waits for the write it had
// in flight, so no write of the old load lands after the new load reads.
func (c *Coordinator) BeginLoad(partition int32) LoadToken {
	c.mu.Lock()
	if c.mu.closed || !c.validPartition(partition) {
		c.mu.Unlock()
		return LoadToken{partition: partition}
	}
	old := c.mu.parts[partition]
	if old != nil {
		old.cancel()
	}
	c.mu.gen++
	ps := newPartState(c.ctx, partition, c.mu.gen)
	c.mu.parts[partition] = ps
	c.mu.Unlock()
	if old != nil {
		old.goroutines.Wait()
	}
	return LoadToken{partition: partition, gen: ps.gen}
}

// Loading reports whether token's load is still wanted.
func (c *Coordinator) Loading(token LoadToken) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.loadingLocked(token) != nil
}

func (c *Coordinator) loadingLocked(token LoadToken) *partState {
	if c.mu.closed || !c.validPartition(token.partition) {
		return nil
	}
	ps := c.mu.parts[token.partition]
	if ps == nil || ps.gen != token.gen || ps.loaded {
		return nil
	}
	return ps
}

// LoadFrom replays src into token's partition and starts serving it. It
// returns ErrLoadSuperseded when the partition was unloaded or loaded
// again meanwhile; another error leaves it loading, for the caller to
// retry.
func (c *Coordinator) LoadFrom(token LoadToken, src RecordSource) error {
	p := token.partition
	if !c.validPartition(p) {
		return fmt.Errorf("load __share_group_state partition %d: outside share.coordinator.state.topic.num.partitions", p)
	}
	start := c.clock.Now()
	entries, n, skipped, err := c.replay(p, src)
	if err != nil {
		return fmt.Errorf("load __share_group_state partition %d after %d records: %w", p, n, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ps := c.loadingLocked(token)
	if ps == nil {
		return ErrLoadSuperseded
	}
	ps.entries = entries
	ps.loaded = true
	c.startWriterLocked(ps)
	c.log.Info("loaded __share_group_state partition", "partition", p, "records", n,
		"skipped", skipped, "share_partitions", len(entries), "took", c.clock.Now().Sub(start))
	return nil
}

// replay folds src into the state of each share-partition of partition:
// a snapshot replaces the state, an update naming the current snapshot
// epoch applies its delta to the snapshot (each update holds everything
// since the snapshot), a tombstone deletes. Records of other types,
// values that do not parse, keys of another partition and updates of
// another snapshot epoch are skipped and counted.
func (c *Coordinator) replay(partition int32, src RecordSource) (map[share.Key]*entry, int, int, error) {
	snaps := map[share.Key]*entry{}
	n, skipped := 0, 0
	err := src(func(r Record) bool {
		n++
		typ, k, ok, err := decodeKey(r.Key)
		if err == nil && ok && PartitionFor(k, c.cfg.NumPartitions) != partition {
			err = errMalformed
		}
		if err != nil || !ok {
			skipped++
			return true
		}
		if r.Value == nil {
			delete(snaps, k)
			return true
		}
		v, err := decodeValue(typ, r.Value, c.cfg.MaxBatches)
		if err != nil {
			skipped++
			return true
		}
		if typ == typeSnapshot {
			st := share.State{StateEpoch: v.stateEpoch, LeaderEpoch: v.leaderEpoch, StartOffset: v.startOffset,
				Batches: prune(normalize(v.batches), v.startOffset)}
			if v.deadLetter != nil {
				st.DeadLetter = *v.deadLetter
			}
			snaps[k] = &entry{st: st, snapEpoch: v.snapEpoch, delta: delta{leaderEpoch: v.leaderEpoch, startOffset: -1}, base: st}
			return true
		}
		e := snaps[k]
		if e == nil || e.snapEpoch != v.snapEpoch {
			skipped++
			return true
		}
		e.updates++
		e.delta = delta{leaderEpoch: v.leaderEpoch, startOffset: v.startOffset, batches: normalize(v.batches), deadLetter: v.deadLetter}
		return true
	})
	for _, e := range snaps {
		e.applyDelta()
	}
	return snaps, n, skipped, err
}

// applyDelta makes e.st the snapshot base with its latest delta applied.
func (e *entry) applyDelta() {
	st := e.base
	d := e.delta
	st.LeaderEpoch = d.leaderEpoch
	if d.startOffset >= 0 {
		st.StartOffset = d.startOffset
	}
	st.Batches = merge(e.base.Batches, d.batches, st.StartOffset)
	if d.deadLetter != nil {
		st.DeadLetter = *d.deadLetter
	}
	e.st = st
	e.base = share.State{}
}

// Unload stops serving partition: its state is dropped from memory (it
// stays in the log), the write in flight is cancelled and waited for, and
// callers waiting for it get NOT_COORDINATOR.
func (c *Coordinator) Unload(partition int32) {
	c.mu.Lock()
	if c.mu.closed || !c.validPartition(partition) || c.mu.parts[partition] == nil {
		c.mu.Unlock()
		return
	}
	ps := c.mu.parts[partition]
	ps.cancel()
	c.mu.parts[partition] = nil
	c.mu.Unlock()
	ps.goroutines.Wait()
}
