package group

import "time"

// Clock is the coordinator's only source of time. Session timeouts,
// rebalance deadlines and offset retention are all measured with it, so tests
// drive a fake clock instead of sleeping.
//
// AfterFunc must run f later on some goroutine (time.AfterFunc does), or from
// a call that advances a fake clock; it must never call f before returning,
// because the coordinator arms timers while holding its lock.
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
	// A callback that already started is not waited for; the coordinator
	// tolerates late callbacks (see doc.go, "Timers").
	Stop() bool
}

// SystemClock returns the wall clock (time.Now and time.AfterFunc). It is what
// New uses when Config.Clock is nil.
func SystemClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
