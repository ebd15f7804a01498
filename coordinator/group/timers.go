package group

// Timers. Each group has at most one armed clock timer, set for the earliest
// of its deadlines (session expiries, the join-phase and sync deadlines, the
// KIP-848 revocation deadlines). When it fires the group handles every
// deadline that has passed and re-arms. Handling is idempotent and keyed on
// deadlines stored in the group, so a late or duplicate callback (a Stop that
// lost the race) does no harm.

import (
	"time"
)

// rearmLocked points g's timer at its earliest deadline.
func (c *Coordinator) rearmLocked(g *group) {
	next := g.classicDeadline()
	if g.cg != nil {
		next = earliest(next, g.cg.deadline())
	}
	if g.sg != nil {
		next = earliest(next, g.sg.deadline())
	}
	if c.mu.closed || c.mu.groups[g.id] != g {
		next = time.Time{}
	}
	if g.timer != nil && next.Equal(g.timerAt) {
		return
	}
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
	g.timerAt = next
	if next.IsZero() {
		return
	}
	g.timerSeq++
	seq := g.timerSeq
	d := max(next.Sub(c.clock.Now()), 0)
	g.timer = c.afterFunc(d, func() { c.onGroupTimer(g, seq) })
}

func (c *Coordinator) onGroupTimer(g *group, seq uint64) {
	c.mu.Lock()
	if !c.currentLocked(g) || g.timerSeq != seq {
		c.mu.Unlock()
		return
	}
	g.timer, g.timerAt = nil, time.Time{}
	now := c.clock.Now()
	switch g.kind {
	case kindConsumer:
		c.tickConsumerLocked(g, now)
	case kindShare:
		c.tickShareLocked(g, now)
	default:
		c.tickClassicLocked(g, now)
	}
	c.rearmLocked(g)
	dirty := g.dirty
	c.mu.Unlock()
	if dirty {
		if err := c.flush(c.ctx, g); err != nil {
			c.log.Warn("writing group metadata failed", "group", g.id, "err", err)
		}
	}
}

// stopTimerLocked disarms g's timer for good (group dropped).
func stopTimerLocked(g *group) {
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
	g.timerAt = time.Time{}
	g.timerSeq++
}
