package broker

// TEMPORARY STUB (engineer C, issue 10): groupSettings and shareEnabled are
// engineer F's (broker/group_config.go, broker/features.go, see
// docs/share-groups-contract.md). This file only lets the share-group
// membership work build on its own branch with the fields it reads; the
// integrator deletes it when F's files land.

import "time"

// groupSettings is the subset of F's groupSettings that the share-group
// membership reads.
type groupSettings struct {
	ShareHeartbeatInterval, ShareSessionTimeout time.Duration
}

// groupSettings resolves group's configs over the broker defaults. Stub:
// the broker settings only, no per-group configs.
func (b *Broker) groupSettings(group string) groupSettings {
	_ = group
	return groupSettings{
		ShareHeartbeatInterval: b.settings.brokerMillis("group.share.heartbeat.interval.ms", 5000),
		ShareSessionTimeout:    b.settings.brokerMillis("group.share.session.timeout.ms", 45000),
	}
}

// shareEnabled reports whether the finalized share.version is >= 1. Stub:
// always.
func (b *Broker) shareEnabled() bool { return true }
