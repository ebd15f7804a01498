package share

import "math"

// acquire walks batches from the fetch offset on. Offsets no batch covers
// between the fetch offset and the last batch are absent from the log
// (compacted away) and are archived; control and aborted batches are
// archived; every other Available record whose backoff ended is acquired,
// or archived when it already has the delivery limit's deliveries.
func (p *Partition) acquire(n int64, member string, batches []LogBatch, maxRecords int) []AcquiredRange {
	pos, ok := p.fetchOffset(n)
	if !ok {
		return nil
	}
	a := acquisition{p: p, n: n, member: member, deadline: n + int64(p.cfg.LockDuration)}
	for _, b := range batches {
		if b.LastOffset < b.FirstOffset || b.LastOffset < pos {
			continue // malformed, or wholly below what we read
		}
		if b.FirstOffset > pos && !a.gap(pos, b.FirstOffset-1) {
			break
		}
		pos = max(pos, b.FirstOffset)
		if !a.batch(pos, b.LastOffset, b.Control || b.Aborted) {
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
	changed  bool
	out      []AcquiredRange
}

// room reports whether one more offset fits in the window.
func (a *acquisition) room() bool {
	p := a.p
	if len(p.recs) < p.cfg.MaxRecordLocks {
		return true
	}
	return p.advance() && len(p.recs) < p.cfg.MaxRecordLocks
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
		if !a.room() {
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
func (a *acquisition) batch(lo, hi int64, skip bool) bool {
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
		if !a.room() {
			return false
		}
		p.recs = append(p.recs, rec{state: Available})
		a.take(&p.recs[len(p.recs)-1], o)
	}
	return true
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
