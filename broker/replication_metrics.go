package broker

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// replicationCollector reports the replication gauges at scrape time, in
// the spirit of Kafka's ReplicaManager and controller metrics:
// UnderReplicatedPartitions, UnderMinIsrPartitionCount and
// OfflinePartitionsCount (the last on the controller only, as in Kafka),
// and the fetcher's lag per followed partition.
type replicationCollector struct {
	b                                              *Broker
	leaders, underReplicated, underMinISR, offline *prometheus.Desc
	lagRecords, lagSeconds                         *prometheus.Desc
}

func newReplicationCollector(b *Broker) *replicationCollector {
	return &replicationCollector{
		b: b,
		leaders: prometheus.NewDesc("sluice_leader_partitions",
			"Partitions led by this broker.", nil, nil),
		underReplicated: prometheus.NewDesc("sluice_under_replicated_partitions",
			"Partitions led here whose ISR is smaller than their replica set.", nil, nil),
		underMinISR: prometheus.NewDesc("sluice_under_min_isr_partitions",
			"Partitions led here whose ISR is below min.insync.replicas (acks=all produces are refused).", nil, nil),
		offline: prometheus.NewDesc("sluice_offline_partitions",
			"Partitions without a live leader; reported by the controller, 0 elsewhere.", nil, nil),
		lagRecords: prometheus.NewDesc("sluice_follower_lag_records",
			"Records between the leader's high watermark and this follower's log end, per followed partition.",
			[]string{"topic", "partition"}, nil),
		lagSeconds: prometheus.NewDesc("sluice_follower_lag_seconds",
			"Time since this follower last caught up with its leader's high watermark, per followed partition.",
			[]string{"topic", "partition"}, nil),
	}
}

func (c *replicationCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.leaders, c.underReplicated, c.underMinISR, c.offline, c.lagRecords, c.lagSeconds} {
		ch <- d
	}
}

func (c *replicationCollector) Collect(ch chan<- prometheus.Metric) {
	b := c.b
	if b.topics == nil {
		return
	}
	var leaders, under, underMin int
	now := time.Now()
	for _, ts := range b.topics.all() {
		for _, p := range ts.partitions() {
			if p == nil {
				continue
			}
			ur, um, ok := p.rep.leaderStatus()
			if ok {
				leaders++
				if ur {
					under++
				}
				if um {
					underMin++
				}
				continue
			}
			if lid := p.rep.leaderID.Load(); lid < 0 || lid == b.cfg.NodeID {
				continue
			}
			part := strconv.Itoa(int(p.index))
			ch <- prometheus.MustNewConstMetric(c.lagRecords, prometheus.GaugeValue, float64(p.rep.lagRecords.Load()), ts.meta().Name, part)
			lag := 0.0
			if t := p.rep.caughtUpNano.Load(); t > 0 {
				lag = now.Sub(time.Unix(0, t)).Seconds()
			}
			ch <- prometheus.MustNewConstMetric(c.lagSeconds, prometheus.GaugeValue, lag, ts.meta().Name, part)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.leaders, prometheus.GaugeValue, float64(leaders))
	ch <- prometheus.MustNewConstMetric(c.underReplicated, prometheus.GaugeValue, float64(under))
	ch <- prometheus.MustNewConstMetric(c.underMinISR, prometheus.GaugeValue, float64(underMin))
	offline := 0
	if b.isController.Load() {
		live := b.liveSet()
		for _, st := range b.pstates.all() {
			if st.Leader < 0 || !live[st.Leader] {
				offline++
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(c.offline, prometheus.GaugeValue, float64(offline))
}
