package share

import "math"

// acquire walks batches from the fetch offset on: control and aborted
// batches are archived; every other Available record whose backoff ended
// is acquired, or archived when it already had the delivery limit's
// deliveries.
//
// Offsets no batch covers are absent from the log (compacted away) and are
// archived where that is certain: between two batches of the read, and
// before the first batch from readOffset on (readOffset < 0: unknown, then
// only from the window end on; a read started at or below the window end,
// even a stale one, so nothing past the end and before its first batch
// exists). Inside the window a stale read (made before another Acquire or
// a release moved the fetch offset) says nothing about offsets before its
// first batch, so only a known readOffset archives those.
func (p *Partition) acquire(n int64, member string, readOffset int64, batches []LogBatch, maxRecords int) []AcquiredRange {
	pos, ok := p.fetchOffset(n)
	if !ok {
		return nil
	}
	a := acquisition{p: p, n: n, member: member, deadline: n + int64(p.cfg.LockDuration), live: -1}
	gapFrom := p.end() // the first offset a gap before the next batch may start at
	if readOffset >= 0 {
		gapFrom = min(readOffset, gapFrom)
	}
	for _, b := range batches {
		if b.LastOffset < b.FirstOffset {
			continue // malformed
		}
		if b.FirstOffset > gapFrom {
			if !a.gap(max(gapFrom, pos), b.FirstOffset-1) {
				break
			}
		}
		gapFrom = max(gapFrom, b.LastOffset+1)
		if b.LastOffset < pos {
			continue // wholly below the fetch offset: nothing to acquire
		}
		pos = max(pos, b.FirstOffset)
		if !a.batch(pos, b.LastOffset, b.LastOffset-b.FirstOffset+1, b.Control || b.Aborted) {
			break
		}
		pos = b.LastOffset + 1
		if maxRecords > 0 && a.acquired >= maxRecords {
			break
		}
	}
	if a.changed {
		p.version++
	}
	p.advance()
	return a.out
}

type acquisition struct {
	p        *Partition
	n        int64
	member   string
	deadline int64
	acquired int
	// live counts the window's records not yet done, once room needed it
	// (-1 before).
	live int
	// throttle, once a record failed often enough to be throttled, is how
	// many records this acquisition may take.
	throttle int64
	changed  bool
	out      []AcquiredRange
}

// room reports whether one more offset fits in the window: live says the
// offset will be a record not yet done (see Partition.canGrow).
func (a *acquisition) room(live bool) bool {
	p := a.p
	if len(p.recs) < p.cfg.MaxRecordLocks {
		return true
	}
	if len(p.recs) >= p.maxSpan() && !(p.advance() && len(p.recs) < p.maxSpan()) {
		return false
	}
	if !live {
		return true
	}
	if a.live < 0 {
		a.live = p.countLive()
	}
	return a.live < p.cfg.MaxRecordLocks
}

// gap archives [lo, hi], offsets missing from the log. It reports false
// when the window bound stopped it.
func (a *acquisition) gap(lo, hi int64) bool {
	p := a.p
	for o := max(lo, p.start); o <= hi && o < p.end(); o++ {
		if r := &p.recs[o-p.start]; r.state == Available {
			*r = rec{state: Archived, count: r.count}
			a.changed = true
		}
	}
	return a.archiveNew(max(lo, p.end()), hi)
}

// archiveNew archives the offsets [lo, hi] past the window end; lo is the
// window end (or below it).
func (a *acquisition) archiveNew(lo, hi int64) bool {
	p := a.p
	for o := max(lo, p.end()); o <= hi; o++ {
		if !a.room(false) {
			return false
		}
		if len(p.recs) == 0 {
			// Nothing in flight: the window moves past them at once,
			// however many they are.
			p.start = hi + 1
			a.changed = true
			return true
		}
		p.recs = append(p.recs, rec{state: Archived})
		a.changed = true
	}
	return true
}

// batch processes the offsets [lo, hi] of one log batch. It reports false
// when the window bound stopped it.
func (a *acquisition) batch(lo, hi, size int64, skip bool) bool {
	p := a.p
	for o := max(lo, p.start); o <= hi && o < p.end(); o++ {
		r := &p.recs[o-p.start]
		if !r.ready(a.n) {
			continue
		}
		switch {
		case skip:
			*r = rec{state: Archived, count: r.count}
			a.changed = true
		case r.count >= p.cfg.DeliveryLimit:
			p.toLimit(r, false)
			a.changed = true
		case r.count > 0:
			if !a.redeliver(r, o, size) {
				return false
			}
		default:
			a.take(r, o)
		}
	}
	if skip {
		return a.archiveNew(max(lo, p.end()), hi)
	}
	if lo > p.end() && !a.archiveNew(p.end(), lo-1) {
		return false // not reached: the caller archived the gap before lo
	}
	for o := max(lo, p.end()); o <= hi; o++ {
		if !a.room(true) {
			return false
		}
		p.recs = append(p.recs, rec{state: Available})
		a.take(&p.recs[len(p.recs)-1], o)
		if a.live >= 0 {
			a.live++
		}
	}
	return true
}

// throttleFrom is the delivery count from which Kafka (4.2, KAFKA-17541)
// delivers a record in ever smaller groups: half the limit, rounded up, at
// least 2.
func throttleFrom(limit int16) int16 { return max(2, (limit+1)/2) }

// redeliver acquires r, delivered r.count times already, unless Kafka's
// isolation of failing records stops the acquisition before it: a record
// on its last attempt (limit above 2) goes alone, and from throttleFrom on
// a record goes only in a group of at most size>>(count-throttleFrom+1)
// (at least 1) that starts with it. It reports whether acquisition may go
// on after r.
func (a *acquisition) redeliver(r *rec, o, size int64) bool {
	limit := a.p.cfg.DeliveryLimit
	if limit > 2 && r.count == limit-1 {
		if a.acquired == 0 {
			a.take(r, o)
		}
		return false
	}
	if t := throttleFrom(limit); r.count >= t && a.throttle == 0 {
		if a.acquired > 0 {
			return false
		}
		a.throttle = max(1, size>>uint(r.count-t+1))
	}
	a.take(r, o)
	return a.throttle == 0 || int64(a.acquired) < a.throttle
}

// take acquires r, at offset o, for the member.
func (a *acquisition) take(r *rec, o int64) {
	if r.count < math.MaxInt16 {
		r.count++
	}
	r.state, r.member, r.at, r.since, r.rejected = Acquired, a.member, a.deadline, 0, false
	a.acquired++
	a.changed = true
	if k := len(a.out); k > 0 && a.out[k-1].LastOffset == o-1 && a.out[k-1].DeliveryCount == r.count {
		a.out[k-1].LastOffset = o
		return
	}
	a.out = append(a.out, AcquiredRange{FirstOffset: o, LastOffset: o, DeliveryCount: r.count})
}
