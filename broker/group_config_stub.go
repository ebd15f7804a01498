package broker

// TEMPORARY STUB (engineer D, share-d): engineer F's group configs
// (broker/group_config.go) are not on this branch yet. These stand-ins
// return the broker defaults; the integrator deletes this file when F's
// implementation merges.

import (
	"time"

	"github.com/sluicedev/sluice/coordinator/share"
)

// groupSettings is a group's configs resolved over the broker defaults
// (contract of broker/group_config.go).
type groupSettings struct {
	ShareAutoOffsetReset                              string
	ShareIsolationLevel                               int8
	ShareRecordLockDuration                           time.Duration
	ShareDeliveryCountLimit                           int16
	SharePartitionMaxRecordLocks                      int
	ShareHeartbeatInterval, ShareSessionTimeout       time.Duration
	ConsumerHeartbeatInterval, ConsumerSessionTimeout time.Duration
	DLQTopic                                          string
	DLQCopyRecord                                     bool
	ShareBackoff                                      share.Backoff
}

// groupSettings resolves group's configs: the broker defaults only.
func (b *Broker) groupSettings(group string) groupSettings {
	_ = group
	return groupSettings{
		ShareAutoOffsetReset:         "latest",
		ShareRecordLockDuration:      b.settings.brokerMillis("group.share.record.lock.duration.ms", 30000),
		ShareDeliveryCountLimit:      int16(b.settings.brokerInt64("group.share.delivery.count.limit", 5)),
		SharePartitionMaxRecordLocks: int(b.settings.brokerInt64("group.share.partition.max.record.locks", 2000)),
		ShareHeartbeatInterval:       b.settings.brokerMillis("group.share.heartbeat.interval.ms", 5000),
		ShareSessionTimeout:          b.settings.brokerMillis("group.share.session.timeout.ms", 45000),
	}
}

// shareEnabled reports whether share groups are on: always, in the stub.
func (b *Broker) shareEnabled() bool { return true }
