package broker

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
)

// txnMetrics are the transaction series counted on the request path; the
// coordinator's and the partitions' state is reported at scrape time by
// txnCollector.
type txnMetrics struct {
	markers       *prometheus.CounterVec
	loadSeconds   prometheus.Histogram
	verifications *prometheus.CounterVec
}

func newTxnMetrics(reg prometheus.Registerer) *txnMetrics {
	m := &txnMetrics{
		markers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_txn_markers_written_total",
			Help: "Transaction markers this broker appended as a partition leader, by type (commit, abort) and result (ok, or the Kafka error name)."},
			[]string{"type", "result"}),
		loadSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sluice_txn_coordinator_load_seconds",
			Help:    "Time to replay a __transaction_state partition when this broker became its leader.",
			Buckets: prometheus.ExponentialBuckets(0.001, 3, 10)}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_txn_verifications_total",
			Help: "Checks with the transaction coordinator before a partition's first transactional batch or offset commit (KIP-890), by result."},
			[]string{"result"}),
	}
	reg.MustRegister(m.markers, m.loadSeconds, m.verifications)
	return m
}

// markerWritten counts one marker append's outcome.
func (m *txnMetrics) markerWritten(commit bool, code int16) {
	typ := "abort"
	if commit {
		typ = "commit"
	}
	m.markers.WithLabelValues(typ, resultLabel(code)).Inc()
}

// resultLabel names an outcome by its Kafka error, a bounded set.
func resultLabel(code int16) string {
	if code == 0 {
		return "ok"
	}
	if e := kerr.ErrorForCode(code); e != nil {
		if ke, ok := e.(*kerr.Error); ok {
			return ke.Message
		}
	}
	return "UNKNOWN"
}

// txnCollector reports the transaction coordinator's state and, for every
// partition led here, its last stable offset and how far it trails the
// high watermark.
type txnCollector struct {
	b                                   *Broker
	ongoing, oldest, ids                *prometheus.Desc
	committed, aborted, timedOut, fence *prometheus.Desc
	lso, gap                            *prometheus.Desc
}

func newTxnCollector(b *Broker) *txnCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &txnCollector{
		b:         b,
		ongoing:   d("sluice_txn_ongoing", "Transactions coordinated here that are ongoing or completing."),
		oldest:    d("sluice_txn_oldest_ongoing_seconds", "Age of the oldest transaction coordinated here that is ongoing or completing."),
		ids:       d("sluice_txn_transactional_ids", "Transactional ids held by the __transaction_state partitions loaded here."),
		committed: d("sluice_txn_committed_total", "Transactions committed by this coordinator."),
		aborted:   d("sluice_txn_aborted_total", "Transactions aborted by this coordinator, timed-out ones included."),
		timedOut:  d("sluice_txn_timed_out_total", "Transactions this coordinator aborted because they passed their timeout."),
		fence:     d("sluice_txn_producers_fenced_total", "Producers fenced by a newer epoch of their transactional id."),
		lso: d("sluice_partition_last_stable_offset", "Last stable offset of partitions led here: what read_committed consumers can read up to.",
			"topic", "partition"),
		gap: d("sluice_partition_unstable_records", "High watermark minus last stable offset of partitions led here (records read_committed consumers cannot see yet).",
			"topic", "partition"),
	}
}

func (c *txnCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.ongoing, c.oldest, c.ids, c.committed, c.aborted, c.timedOut, c.fence, c.lso, c.gap} {
		ch <- d
	}
}

func (c *txnCollector) Collect(ch chan<- prometheus.Metric) {
	if t := c.b.txn; t != nil {
		st := t.Stats()
		gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
		counter := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
		}
		gauge(c.ongoing, float64(st.Ongoing))
		gauge(c.oldest, st.OldestOngoing.Seconds())
		gauge(c.ids, float64(st.TransactionalIDs))
		counter(c.committed, st.Committed)
		counter(c.aborted, st.Aborted)
		counter(c.timedOut, st.TimedOut)
		counter(c.fence, st.Fenced)
	}
	if c.b.topics == nil {
		return
	}
	for _, ts := range c.b.topics.all() {
		for _, p := range ts.partitions() {
			if p == nil || !p.rep.leading.Load() {
				continue
			}
			hw := p.rep.hw.Load()
			lso := min(p.log.LastStableOffset(), hw)
			part := strconv.Itoa(int(p.index))
			ch <- prometheus.MustNewConstMetric(c.lso, prometheus.GaugeValue, float64(lso), ts.meta().Name, part)
			ch <- prometheus.MustNewConstMetric(c.gap, prometheus.GaugeValue, float64(hw-lso), ts.meta().Name, part)
		}
	}
}
