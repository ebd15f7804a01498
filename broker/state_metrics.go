package broker

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// stateCollector reports consumer-group and controller series at scrape time from the
// coordinator's snapshot, so nothing is counted on the request path. Lag is
// computed here (log end offset minus committed offset) for partitions this
// broker hosts, which spares users a separate lag exporter.
type stateCollector struct {
	b            *Broker
	groups       *prometheus.Desc
	members      *prometheus.Desc
	shareMembers *prometheus.Desc
	rebalances   *prometheus.Desc
	commits      *prometheus.Desc
	expired      *prometheus.Desc
	committed    *prometheus.Desc
	lag          *prometheus.Desc
	controller   *prometheus.Desc
}

func newStateCollector(b *Broker) *stateCollector {
	return &stateCollector{
		b: b,
		groups: prometheus.NewDesc("sluice_groups", "Consumer groups coordinated here, by type and state.",
			[]string{"type", "state"}, nil),
		members:      prometheus.NewDesc("sluice_group_members", "Members of the groups coordinated here.", nil, nil),
		shareMembers: prometheus.NewDesc("sluice_share_group_members", "Members of the share groups coordinated here (sluice_groups{type=\"share\"} counts the groups).", nil, nil),
		rebalances: prometheus.NewDesc("sluice_group_rebalances_total", "Completed rebalances (classic) and group epoch bumps (KIP-848), by reason.",
			[]string{"reason"}, nil),
		commits: prometheus.NewDesc("sluice_group_offset_commits_total", "Partition offsets durably committed.", nil, nil),
		expired: prometheus.NewDesc("sluice_group_offsets_expired_total", "Committed offsets removed by offsets.retention.minutes.", nil, nil),
		committed: prometheus.NewDesc("sluice_group_committed_offset", "Committed offset, by group, topic and partition.",
			[]string{"group", "topic", "partition"}, nil),
		controller: prometheus.NewDesc("sluice_controller", "1 while this broker is the elected controller.", nil, nil),
		lag: prometheus.NewDesc("sluice_group_lag", "Records between a group's committed offset and the partition's high watermark, for partitions hosted here.",
			[]string{"group", "topic", "partition"}, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.groups, c.members, c.shareMembers, c.rebalances, c.commits, c.expired, c.committed, c.lag, c.controller} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	isCtl := 0.0
	if c.b.isController.Load() {
		isCtl = 1
	}
	ch <- prometheus.MustNewConstMetric(c.controller, prometheus.GaugeValue, isCtl)
	coord := c.b.coord
	if coord == nil {
		return
	}
	st := coord.Stats()
	for k, n := range st.Groups {
		ch <- prometheus.MustNewConstMetric(c.groups, prometheus.GaugeValue, float64(n), k.Type, k.State)
	}
	ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(st.Members))
	ch <- prometheus.MustNewConstMetric(c.shareMembers, prometheus.GaugeValue, float64(st.ShareMembers))
	for reason, n := range st.Rebalances {
		ch <- prometheus.MustNewConstMetric(c.rebalances, prometheus.CounterValue, float64(n), string(reason))
	}
	ch <- prometheus.MustNewConstMetric(c.commits, prometheus.CounterValue, float64(st.OffsetCommits))
	ch <- prometheus.MustNewConstMetric(c.expired, prometheus.CounterValue, float64(st.OffsetsExpired))
	coord.CommittedOffsets(func(group, topic string, partition int32, offset int64) {
		p := strconv.Itoa(int(partition))
		ch <- prometheus.MustNewConstMetric(c.committed, prometheus.GaugeValue, float64(offset), group, topic, p)
		ts := c.b.topics.get(topic)
		if ts == nil {
			return
		}
		if part := ts.partition(partition); part != nil {
			lag := part.rep.hw.Load() - offset
			if lag < 0 {
				lag = 0
			}
			ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(lag), group, topic, p)
		}
	})
}
