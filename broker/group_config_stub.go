package broker

// TEMPORARY STUB (engineer D, share-d): engineer F's group configs
// (broker/group_config.go) are not on this branch yet. These stand-ins
// return the broker defaults; the integrator deletes this file when F's
// implementation merges.

import (
	"fmt"
	"math"
	"strconv"
	"strings"
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

// shareResetDuration is the duration of a "by_duration:<ISO-8601>"
// share.auto.offset.reset, false for latest and earliest.
func shareResetDuration(v string) (time.Duration, bool) {
	rest, ok := strings.CutPrefix(v, "by_duration:")
	if !ok {
		return 0, false
	}
	d, err := parseISODuration(rest)
	return d, err == nil
}

// parseISODuration parses an ISO-8601 duration of days, hours, minutes and
// seconds (PnDTnHnMn.nS), the form Kafka's by_duration takes.
func parseISODuration(s string) (time.Duration, error) {
	bad := fmt.Errorf("broker: invalid ISO-8601 duration %q", s)
	if len(s) < 2 || (s[0] != 'P' && s[0] != 'p') {
		return 0, bad
	}
	var d float64
	inTime := false
	num := ""
	for _, c := range strings.ToUpper(s[1:]) {
		switch {
		case c >= '0' && c <= '9' || c == '.':
			num += string(c)
			continue
		case c == 'T':
			if inTime || num != "" {
				return 0, bad
			}
			inTime = true
			continue
		}
		if num == "" {
			return 0, bad
		}
		n, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return 0, bad
		}
		num = ""
		switch {
		case c == 'D' && !inTime:
			d += n * 24 * 3600
		case c == 'H' && inTime:
			d += n * 3600
		case c == 'M' && inTime:
			d += n * 60
		case c == 'S' && inTime:
			d += n
		default:
			return 0, bad
		}
	}
	if num != "" || d*float64(time.Second) > math.MaxInt64 {
		return 0, bad
	}
	return time.Duration(d * float64(time.Second)), nil
}
