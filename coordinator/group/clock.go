package group

import "github.com/sluicedev/sluice/coordinator"

// Clock is the coordinator's only source of time (see coordinator.Clock):
// session timeouts, rebalance deadlines and offset retention are measured
// with it.
type Clock = coordinator.Clock

// Timer is a scheduled callback of a Clock.
type Timer = coordinator.Timer

// SystemClock returns the wall clock; it is what New uses when Config.Clock
// is nil.
func SystemClock() Clock { return coordinator.SystemClock() }
