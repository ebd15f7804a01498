package txn

// Loading and unloading __transaction_state partitions as leadership of
// them arrives and leaves (Kafka's TransactionCoordinator.onElection and
// onResignation).

import (
	"fmt"
	"maps"
	"slices"
)

// LoadToken names one BeginLoad of a partition; a load that finishes after
// leadership moved on carries a stale token and is discarded.
type LoadToken struct {
	partition int32
	gen       uint64
}

// Partition is the __transaction_state partition the token loads.
func (t LoadToken) Partition() int32 { return t.partition }

// BeginLoad marks partition as loading: requests for its ids get
// COORDINATOR_LOAD_IN_PROGRESS until LoadFrom finishes. coordinatorEpoch is
// the partition's leader epoch; the markers this coordinator writes carry
// it. A previous load of the partition is dropped first, and BeginLoad
// waits for the write and marker writes it had in flight to return, so
// that no write of the old load lands in the log after the new load starts
// reading it.
func (c *Coordinator) BeginLoad(partition, coordinatorEpoch int32) LoadToken {
	c.mu.Lock()
	if c.mu.closed || !c.validPartition(partition) {
		c.mu.Unlock()
		return LoadToken{partition: partition}
	}
	old := c.mu.parts[partition]
	if old != nil {
		c.dropPartitionLocked(old)
	}
	c.mu.gen++
	ps := newPartState(c.ctx, partition, c.mu.gen, coordinatorEpoch)
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
	if c.mu.closed || !c.validPartition(token.partition) || token.gen == 0 {
		return nil
	}
	ps := c.mu.parts[token.partition]
	if ps == nil || ps.gen != token.gen || ps.loaded {
		return nil
	}
	return ps
}

// LoadFrom replays src into the transactions of token's partition and
// starts serving them: transactions found in PrepareCommit or PrepareAbort
// get their markers written again, ongoing ones past their timeout are
// aborted. It returns ErrLoadSuperseded when the partition was unloaded or
// loaded again meanwhile; another error leaves it loading, for the caller
// to retry.
func (c *Coordinator) LoadFrom(token LoadToken, src RecordSource) error {
	p := token.partition
	if !c.validPartition(p) {
		return fmt.Errorf("load __transaction_state partition %d: outside transaction.state.log.num.partitions", p)
	}
	metas, n, skipped, err := c.replay(p, src)
	if err != nil {
		return fmt.Errorf("load __transaction_state partition %d after %d records: %w", p, n, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ps := c.loadingLocked(token)
	if ps == nil {
		return ErrLoadSuperseded
	}
	for id, m := range metas {
		t := &txn{id: id, issued: m.epoch >= 0}
		ps.txns[id] = t
		ps.setMetaLocked(t, m)
	}
	ps.loaded = true
	c.startWriterLocked(ps)
	prepared := 0
	for _, id := range slices.Sorted(maps.Keys(ps.txns)) {
		if t := ps.txns[id]; isPrepare(t.m.state) {
			prepared++
			t.pending = pendingComplete
			c.startCompletionLocked(ps, t)
		}
	}
	aborted := c.abortTimedOutLocked(ps, c.nowMs())
	c.log.Info("loaded __transaction_state partition", "partition", p, "coordinator_epoch", ps.coordinatorEpoch,
		"records", n, "skipped", skipped, "transactional_ids", len(metas),
		"completing", prepared, "timed_out", aborted)
	return nil
}

// replay folds src into the last state of each transactional id of
// partition. It touches no coordinator state, so it runs without the lock.
func (c *Coordinator) replay(partition int32, src RecordSource) (map[string]meta, int, int, error) {
	out := make(map[string]meta)
	n, skipped := 0, 0
	err := src(func(r Record) bool {
		n++
		id, ok, err := decodeKey(r.Key)
		if err == nil && ok && PartitionFor(id, c.cfg.NumPartitions) != partition {
			err = errMalformed
		}
		if err != nil || !ok {
			skipped++
			return true
		}
		if r.Value == nil {
			delete(out, id)
			return true
		}
		m, dead, err := decodeValue(r.Value)
		switch {
		case err != nil:
			skipped++
		case dead:
			delete(out, id)
		default:
			out[id] = m
		}
		return true
	})
	return out, n, skipped, err
}

// Unload stops serving partition: its transactions are dropped from memory
// (their state stays in the log), the write and marker writes in flight
// are cancelled and waited for, and requests waiting for a write get
// NOT_COORDINATOR.
func (c *Coordinator) Unload(partition int32) {
	c.mu.Lock()
	if c.mu.closed || !c.validPartition(partition) || c.mu.parts[partition] == nil {
		c.mu.Unlock()
		return
	}
	ps := c.mu.parts[partition]
	c.dropPartitionLocked(ps)
	c.mu.parts[partition] = nil
	c.mu.Unlock()
	ps.goroutines.Wait()
}
