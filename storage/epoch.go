package storage

// epochEntry records that leader epoch Epoch wrote its first batch at
// StartOffset.
type epochEntry struct {
	Epoch       int32
	StartOffset int64
}

// epochCache is the leader-epoch cache of KIP-101/279 (Kafka's
// LeaderEpochFileCache): entries strictly increasing in both epoch and start
// offset. It is a plain value with no locking or I/O; Log guards and
// persists it.
type epochCache struct {
	entries []epochEntry
}

// latest returns the newest epoch, or -1 when the cache is empty.
func (c *epochCache) latest() int32 {
	if len(c.entries) == 0 {
		return -1
	}
	return c.entries[len(c.entries)-1].Epoch
}

// assign records that epoch starts at start. Like Kafka, a newer epoch or
// an earlier start removes every entry it conflicts with (epoch >= epoch or
// start >= start), so the cache stays monotonic even when a follower's log
// was truncated. It reports whether the cache changed.
func (c *epochCache) assign(epoch int32, start int64) bool {
	if epoch < 0 {
		return false
	}
	if n := len(c.entries); n > 0 {
		last := c.entries[n-1]
		if last.Epoch == epoch && last.StartOffset <= start {
			return false
		}
	}
	kept := c.entries[:0]
	for _, e := range c.entries {
		if e.Epoch < epoch && e.StartOffset < start {
			kept = append(kept, e)
		}
	}
	c.entries = append(kept, epochEntry{Epoch: epoch, StartOffset: start})
	return true
}

// truncateFromEnd removes entries starting at or after end (the log was
// truncated to end).
func (c *epochCache) truncateFromEnd(end int64) bool {
	n := len(c.entries)
	for n > 0 && c.entries[n-1].StartOffset >= end {
		n--
	}
	changed := n != len(c.entries)
	c.entries = c.entries[:n]
	return changed
}

// truncateFromStart drops entries wholly below start and moves the start of
// the epoch that covers start up to start, as Kafka does when the log start
// offset advances.
func (c *epochCache) truncateFromStart(start int64) bool {
	i := 0
	for i < len(c.entries) && c.entries[i].StartOffset <= start {
		i++
	}
	if i == 0 {
		return false
	}
	covering := c.entries[i-1]
	if i == 1 && covering.StartOffset == start {
		return false
	}
	covering.StartOffset = start
	rest := c.entries[i:]
	c.entries = append(append(make([]epochEntry, 0, len(rest)+1), covering), rest...)
	return true
}

// endOffsetFor answers OffsetForLeaderEpoch (KIP-101, KIP-279): the largest
// epoch <= requested and the start offset of the next higher epoch, or leo
// when requested is the latest epoch. It returns (-1, -1), Kafka's
// UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET, when requested is undefined,
// newer than every cached epoch, or older than the earliest one (so a
// follower falls back to truncating to its high watermark).
func (c *epochCache) endOffsetFor(requested int32, leo int64) (int32, int64) {
	n := len(c.entries)
	if requested < 0 || n == 0 || requested < c.entries[0].Epoch || requested > c.entries[n-1].Epoch {
		return -1, -1
	}
	if requested == c.entries[n-1].Epoch {
		return requested, leo
	}
	// First entry with an epoch above requested; one exists because
	// requested is below the latest epoch.
	i := 0
	for c.entries[i].Epoch <= requested {
		i++
	}
	return c.entries[i-1].Epoch, c.entries[i].StartOffset
}

// rows converts the cache for writeCheckpoint.
func (c *epochCache) rows() [][2]int64 {
	out := make([][2]int64, len(c.entries))
	for i, e := range c.entries {
		out[i] = [2]int64{int64(e.Epoch), e.StartOffset}
	}
	return out
}

// epochCacheFromRows rebuilds a cache from a checkpoint, rejecting rows
// that are not strictly increasing.
func epochCacheFromRows(rows [][2]int64) (epochCache, bool) {
	var c epochCache
	for _, r := range rows {
		if r[0] < 0 || r[0] > 1<<31-1 || r[1] < 0 {
			return epochCache{}, false
		}
		e := epochEntry{Epoch: int32(r[0]), StartOffset: r[1]}
		if n := len(c.entries); n > 0 {
			last := c.entries[n-1]
			if e.Epoch <= last.Epoch || e.StartOffset < last.StartOffset {
				return epochCache{}, false
			}
		}
		c.entries = append(c.entries, e)
	}
	return c, true
}
