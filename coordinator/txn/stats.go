package txn

import "time"

// counters are the cumulative statistics behind Stats; guarded by
// Coordinator.mu.
type counters struct {
	committed, aborted, timedOut, fenced uint64
}

// Stats is a snapshot of the coordinator's counters for metrics.
type Stats struct {
	// Ongoing is the number of transactions in Ongoing, PrepareCommit or
	// PrepareAbort; OldestOngoing the age of the oldest of them.
	Ongoing       int
	OldestOngoing time.Duration
	// Committed, Aborted and TimedOut count transactions completed since
	// New; TimedOut ones are also counted in Aborted once their abort
	// completes. TimedOut counts the aborts started for a timeout.
	Committed, Aborted, TimedOut uint64
	// Fenced counts producers fenced by a newer epoch: by InitProducerId
	// from a new producer instance (with or without an ongoing
	// transaction to abort). Timeouts count in TimedOut instead.
	Fenced uint64
	// TransactionalIDs is the number of ids the loaded partitions hold.
	TransactionalIDs int
}

// Stats returns the current counters.
func (c *Coordinator) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Stats{
		Committed: c.mu.stats.committed,
		Aborted:   c.mu.stats.aborted,
		TimedOut:  c.mu.stats.timedOut,
		Fenced:    c.mu.stats.fenced,
	}
	now := c.nowMs()
	oldest := int64(-1)
	for _, ps := range c.mu.parts {
		if ps == nil || !ps.loaded {
			continue
		}
		s.TransactionalIDs += ps.durable
		s.Ongoing += len(ps.active)
		for t := range ps.active {
			if t.m.startMs >= 0 && (oldest < 0 || t.m.startMs < oldest) {
				oldest = t.m.startMs
			}
		}
	}
	if oldest >= 0 && now > oldest {
		s.OldestOngoing = time.Duration(now-oldest) * time.Millisecond
	}
	return s
}
