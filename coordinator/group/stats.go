package group

// counters are the cumulative statistics behind Stats; guarded by
// Coordinator.mu.
type counters struct {
	rebalances map[RebalanceReason]uint64
	commits    uint64
	expired    uint64
}

// GroupStateKey labels a group count by protocol ("classic" or "consumer",
// as ListGroups v5 names group types) and state (as DescribeGroups and
// ConsumerGroupDescribe name states).
type GroupStateKey struct {
	Type, State string
}

// Stats is a point-in-time snapshot for the broker's Prometheus metrics.
// Counters are cumulative since New; gauges describe the loaded partitions.
type Stats struct {
	// Groups counts loaded groups by type and state (gauge).
	Groups map[GroupStateKey]int
	// Members counts members of loaded groups, every type (gauge).
	Members int
	// ShareMembers counts the members of loaded share groups (gauge).
	ShareMembers int
	// Rebalances counts completed classic rebalances and KIP-848 group
	// epoch bumps by reason (counter).
	Rebalances map[RebalanceReason]uint64
	// OffsetCommits counts partition offsets durably committed, by
	// OffsetCommit or by the COMMIT marker of a TxnOffsetCommit
	// (counter).
	OffsetCommits uint64
	// OffsetsExpired counts offsets removed by retention (counter).
	OffsetsExpired uint64
	// CommittedOffsets is the number of stored offsets (gauge).
	CommittedOffsets int
	// PendingTxnOffsets is the number of transactional offsets waiting
	// for their transaction's marker (gauge). One that stays high points
	// at transactions whose markers do not arrive.
	PendingTxnOffsets int
	// LoadedPartitions is how many __consumer_offsets partitions are
	// served here (gauge).
	LoadedPartitions int
}

// Stats returns a snapshot of the coordinator's statistics.
func (c *Coordinator) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Stats{
		Groups:         make(map[GroupStateKey]int),
		Rebalances:     make(map[RebalanceReason]uint64, len(c.mu.stats.rebalances)),
		OffsetCommits:  c.mu.stats.commits,
		OffsetsExpired: c.mu.stats.expired,
	}
	for r, n := range c.mu.stats.rebalances {
		s.Rebalances[r] = n
	}
	for _, st := range c.mu.parts {
		if st == partitionLoaded {
			s.LoadedPartitions++
		}
	}
	for _, g := range c.mu.groups {
		s.Groups[GroupStateKey{Type: g.kind.String(), State: g.stateName()}]++
		s.CommittedOffsets += len(g.offsets)
		s.PendingTxnOffsets += g.txn.count()
		switch g.kind {
		case kindConsumer:
			s.Members += len(g.cg.members)
		case kindShare:
			s.Members += len(g.sg.members)
			s.ShareMembers += len(g.sg.members)
		default:
			s.Members += len(g.members)
		}
	}
	return s
}

// CommittedOffsets calls fn for every committed offset of every loaded
// group, in no particular order; the broker computes lag (log end offset
// minus committed) from it. fn runs after the coordinator lock is released,
// over a snapshot, so it may call back into the Coordinator.
func (c *Coordinator) CommittedOffsets(fn func(group, topic string, partition int32, offset int64)) {
	type entry struct {
		group string
		tp    topicPartition
		off   int64
	}
	c.mu.Lock()
	var all []entry
	for _, g := range c.mu.groups {
		for tp, o := range g.offsets {
			all = append(all, entry{group: g.id, tp: tp, off: o.offset})
		}
	}
	c.mu.Unlock()
	for _, e := range all {
		fn(e.group, e.tp.topic, e.tp.partition, e.off)
	}
}
