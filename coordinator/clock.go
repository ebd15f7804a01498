package coordinator

import (
	"sync"
	"time"
)

// Clock is a coordinator's only source of time. Session timeouts,
// rebalance deadlines, transaction timeouts and expiry are all measured with
// it, so tests drive a FakeClock instead of sleeping.
//
// AfterFunc must run f later on some goroutine (time.AfterFunc does), or from
// a call that advances a fake clock; it must never call f before returning,
// because coordinators arm timers while holding their locks.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f once, d after now, unless the returned timer is
	// stopped first.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a scheduled callback of a Clock.
type Timer interface {
	// Stop prevents the callback from running and reports whether it did.
	// A callback that already started is not waited for; coordinators
	// tolerate late callbacks.
	Stop() bool
}

// SystemClock returns the wall clock (time.Now and time.AfterFunc), what
// coordinators use when their Config leaves the clock nil.
func SystemClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// FakeClock is a manual Clock for tests: time moves only in Advance, which
// runs the timers that come due in order of their deadlines (ties in the
// order they were armed), each on the caller's goroutine.
type FakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	seq    int
}

type fakeTimer struct {
	c       *FakeClock
	at      time.Time
	seq     int
	f       func()
	stopped bool
}

// NewFakeClock returns a FakeClock reading start.
func NewFakeClock(start time.Time) *FakeClock { return &FakeClock{now: start} }

// Now returns the fake time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc arms f to run once Advance passes now+d.
func (c *FakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &fakeTimer{c: c, at: c.now.Add(d), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

// Advance moves time forward by d, running every timer that comes due,
// including those armed by the callbacks it runs. A callback sees Now at its
// own deadline.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		next := c.nextDueLocked(target)
		if next == nil {
			c.now = target
			c.mu.Unlock()
			return
		}
		next.stopped = true
		if next.at.After(c.now) {
			c.now = next.at
		}
		c.mu.Unlock()
		next.f()
	}
}

// nextDueLocked drops stopped timers and returns the earliest one due by
// target, or nil.
func (c *FakeClock) nextDueLocked(target time.Time) *fakeTimer {
	var next *fakeTimer
	live := c.timers[:0]
	for _, t := range c.timers {
		if t.stopped {
			continue
		}
		live = append(live, t)
		if !t.at.After(target) && (next == nil || t.at.Before(next.at) || (t.at.Equal(next.at) && t.seq < next.seq)) {
			next = t
		}
	}
	c.timers = live
	return next
}

// Pending is the number of armed timers that have not run or been stopped.
func (c *FakeClock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.stopped {
			n++
		}
	}
	return n
}
