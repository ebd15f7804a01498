package broker

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicedev/sluice/coordinator/share"
)

// shareMetrics are the share-partition series: events counted as they
// happen, and the loaded share-partitions' windows reported at scrape time
// (only loaded ones, so the label sets stay bounded by what this broker
// leads and serves).
type shareMetrics struct {
	m             *shareManager
	loads         prometheus.Counter
	expiries      prometheus.Counter
	redeliveries  prometheus.Counter
	limitArchives prometheus.Counter
	writeSeconds  prometheus.Histogram

	loaded, inflight, oldest, sessions *prometheus.Desc
}

func newShareMetrics(m *shareManager) *shareMetrics {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &shareMetrics{
		m: m,
		loads: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_share_partition_loads_total",
			Help: "Share-partitions loaded from the share coordinator (first use, or again after a leadership change or a failed state write)."}),
		expiries: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_share_acquisition_lock_expiries_total",
			Help: "Acquired records whose acquisition lock expired before they were acknowledged."}),
		redeliveries: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_share_redeliveries_total",
			Help: "Records acquired with a delivery count above one (delivered again)."}),
		limitArchives: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_share_delivery_limit_archives_total",
			Help: "Records archived (or sent to the dead-letter queue) because they reached share.delivery.count.limit."}),
		writeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sluice_share_state_write_seconds",
			Help:    "Time to write a share-partition's state to the share coordinator.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 3, 10)}),
		loaded: d("sluice_share_partitions_loaded", "Share-partitions (share group on a topic-partition) loaded on this partition leader."),
		inflight: d("sluice_share_inflight_records", "Records in a loaded share-partition's in-flight window, by state.",
			"group", "topic", "partition", "state"),
		oldest: d("sluice_share_oldest_available_seconds", "Age of the oldest Available record of a loaded share-partition: how far behind its consumers are.",
			"group", "topic", "partition"),
		sessions: d("sluice_share_sessions", "Share sessions held on this broker."),
	}
}

// collectors lists what to register.
func (s *shareMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{s.loads, s.expiries, s.redeliveries, s.limitArchives, s.writeSeconds, s}
}

// Describe implements prometheus.Collector.
func (s *shareMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.loaded
	ch <- s.inflight
	ch <- s.oldest
	ch <- s.sessions
}

// Collect implements prometheus.Collector.
func (s *shareMetrics) Collect(ch chan<- prometheus.Metric) {
	entries := s.m.entries()
	ch <- prometheus.MustNewConstMetric(s.loaded, prometheus.GaugeValue, float64(len(entries)))
	ch <- prometheus.MustNewConstMetric(s.sessions, prometheus.GaugeValue, float64(s.m.sessions.len()))
	now := s.m.now()
	for _, e := range entries {
		var st share.Stats
		if s.m.stats(e, &st) != nil {
			continue
		}
		topic := e.part.log.Topic()
		part := strconv.Itoa(int(e.key.Partition))
		for _, v := range []struct {
			state string
			n     int
		}{{"available", st.Available}, {"acquired", st.Acquired}, {"acknowledged", st.Acknowledged},
			{"archiving", st.Archiving}, {"archived", st.Archived}} {
			ch <- prometheus.MustNewConstMetric(s.inflight, prometheus.GaugeValue, float64(v.n), e.key.Group, topic, part, v.state)
		}
		age := 0.0
		if !st.OldestAvailable.IsZero() {
			age = max(0, now.Sub(st.OldestAvailable).Seconds())
		}
		ch <- prometheus.MustNewConstMetric(s.oldest, prometheus.GaugeValue, age, e.key.Group, topic, part)
	}
}

// stats reads e's window without changing its configuration.
func (m *shareManager) stats(e *shareEntry, st *share.Stats) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mu.dropped || e.mu.p == nil {
		return errShareDropped
	}
	*st = e.mu.p.Stats()
	return nil
}
