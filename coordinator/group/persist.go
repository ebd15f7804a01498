package group

// Writing group metadata. A group whose metadata changed is marked dirty;
// flush then snapshots the group's current state into records and writes
// them. Because the snapshot is taken while holding the partition's write
// lock, the log always ends with the newest state, and concurrent changes to
// one group coalesce into one write.

import (
	"context"
	"fmt"
	"slices"
)

// snapshot is what one flush writes, and what to undo if the write fails.
type snapshot struct {
	records []Record
	// classic, consumer and share say what happened to that kind's metadata
	// record: -1 untouched, 0 tombstoned, 1 written.
	classic, consumer, share int8
	dirtyGroup               bool
	dirtyMembers             []string
	memberTombstones         []string
}

// flushNow writes g's state for a request that answers only once it is
// durable (bounded by persistCtx), logging a failure once with the group's
// kind, and returns the code the request then answers (0 when written).
func (c *Coordinator) flushNow(ctx context.Context, g *group, kind string) int16 {
	pctx, cancel := c.persistCtx(ctx)
	defer cancel()
	if err := c.flush(pctx, g); err != nil {
		c.log.Warn("writing "+kind+" group state failed", "group", g.id, "err", err)
		return availabilityErrorCode(err)
	}
	return 0
}

// flush writes g's metadata if it is dirty. A nil error means everything g
// looked like when flush began is durable.
func (c *Coordinator) flush(ctx context.Context, g *group) error {
	pm := &c.persistMu[g.partition]
	pm.Lock()
	defer pm.Unlock()
	c.mu.Lock()
	if !g.dirty {
		c.mu.Unlock()
		return nil
	}
	if !c.currentLocked(g) {
		c.mu.Unlock()
		return ErrNotCoordinator
	}
	snap := c.snapshotLocked(g)
	g.dirty = false
	c.mu.Unlock()
	if len(snap.records) == 0 {
		return nil
	}
	err := c.cfg.Persister.Persist(ctx, g.partition, snap.records)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if c.currentLocked(g) {
			snap.restore(g)
		}
		return fmt.Errorf("coordinator: write metadata of group %q: %w", g.id, err)
	}
	snap.applyFlags(g)
	return nil
}

// snapshotLocked builds the records that bring the log up to date with g.
func (c *Coordinator) snapshotLocked(g *group) snapshot {
	s := snapshot{classic: -1, consumer: -1, share: -1}
	switch g.kind {
	case kindShare:
		snapshotShareLocked(g, &s)
	case kindClassic:
		write := false
		switch g.state {
		case stateEmpty:
			write = g.protocolType != "" || g.persistedClassic
		case stateStable:
			write = true
		case stateCompletingRebalance:
			// Only the leader's assignment makes a generation worth
			// writing; mid-rebalance states are never persisted, so
			// a reload sees the last completed generation.
			write = g.syncPersisting
		}
		if write {
			s.records = append(s.records, Record{Key: groupMetadataKey(g.id), Value: classicValue(g)})
			s.classic = 1
		}
		if g.persistedConsumer {
			s.records = append(s.records, Record{Key: consumerGroupKey(g.id)})
			s.consumer = 0
		}
		for _, id := range g.memberTombstones {
			s.records = append(s.records, Record{Key: consumerMemberKey(g.id, id)})
		}
		s.memberTombstones, g.memberTombstones = g.memberTombstones, nil
	case kindConsumer:
		cg := g.cg
		if cg.dirtyGroup {
			s.records = append(s.records, Record{Key: consumerGroupKey(g.id), Value: consumerGroupValue(cg)})
			s.consumer, s.dirtyGroup, cg.dirtyGroup = 1, true, false
		}
		ids := slices.Sorted(func(yield func(string) bool) {
			for id := range cg.dirtyMembers {
				if !yield(id) {
					return
				}
			}
		})
		for _, id := range ids {
			var v []byte
			if m := cg.members[id]; m != nil {
				v = consumerMemberValue(m)
			}
			s.records = append(s.records, Record{Key: consumerMemberKey(g.id, id), Value: v})
		}
		s.dirtyMembers = ids
		clear(cg.dirtyMembers)
		if g.persistedClassic {
			s.records = append(s.records, Record{Key: groupMetadataKey(g.id)})
			s.classic = 0
		}
	}
	return s
}

// restore marks again as dirty what a failed write did not make durable.
func (s snapshot) restore(g *group) {
	g.dirty = true
	g.memberTombstones = append(g.memberTombstones, s.memberTombstones...)
	if g.kind == kindShare {
		g.sg.dirty = g.sg.dirty || s.dirtyGroup
	} else if g.kind == kindConsumer {
		g.cg.dirtyGroup = g.cg.dirtyGroup || s.dirtyGroup
		for _, id := range s.dirtyMembers {
			g.cg.markMember(id)
		}
	} else {
		for _, id := range s.dirtyMembers {
			g.memberTombstones = append(g.memberTombstones, id)
		}
	}
}

func (s snapshot) applyFlags(g *group) {
	if s.classic >= 0 {
		g.persistedClassic = s.classic == 1
	}
	if s.consumer >= 0 {
		g.persistedConsumer = s.consumer == 1
	}
	if s.share >= 0 {
		g.persistedShare = s.share == 1
	}
}

// tombstonesLocked returns the records that erase g from the log: every
// committed offset, every partition with a pending transactional offset
// (one tombstone per partition; replaying it drops the pending offsets, so
// their COMMIT brings nothing back), and every metadata record of either
// kind.
func tombstonesLocked(g *group) []Record {
	var recs []Record
	for _, tp := range sortedOffsets(g.offsets) {
		recs = append(recs, Record{Key: offsetKey(g.id, tp.topic, tp.partition)})
	}
	for _, tp := range g.txn.partitions() {
		if _, ok := g.offsets[tp]; !ok {
			recs = append(recs, Record{Key: offsetKey(g.id, tp.topic, tp.partition)})
		}
	}
	recs = append(recs, metadataTombstonesLocked(g)...)
	return recs
}

// metadataTombstonesLocked erases g's metadata records (not its offsets).
func metadataTombstonesLocked(g *group) []Record {
	var recs []Record
	if g.persistedClassic || (g.kind == kindClassic && g.protocolType != "") {
		recs = append(recs, Record{Key: groupMetadataKey(g.id)})
	}
	members := slices.Clone(g.memberTombstones)
	if g.cg != nil {
		for id := range g.cg.dirtyMembers {
			members = append(members, id)
		}
		for id := range g.cg.members {
			members = append(members, id)
		}
	}
	slices.Sort(members)
	for _, id := range slices.Compact(members) {
		recs = append(recs, Record{Key: consumerMemberKey(g.id, id)})
	}
	if g.persistedConsumer || g.kind == kindConsumer {
		recs = append(recs, Record{Key: consumerGroupKey(g.id)})
	}
	if g.persistedShare || g.kind == kindShare {
		recs = append(recs, Record{Key: shareGroupKey(g.id)})
	}
	return recs
}
