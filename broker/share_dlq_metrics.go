package broker

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicedev/sluice/coordinator/share"
)

// dlqMetrics are the dead-letter series: records written by reason, records
// archived without a write by cause, failed writes, and redrives (records
// moved back by the admin endpoint).
type dlqMetrics struct {
	writes   *prometheus.CounterVec
	unusable *prometheus.CounterVec
	failures *prometheus.CounterVec
	redrives *prometheus.CounterVec
}

func newDLQMetrics(reg prometheus.Registerer) *dlqMetrics {
	m := &dlqMetrics{
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_share_dlq_records_written_total",
			Help: "Records this broker wrote to share groups' dead-letter topics (KIP-1191), by reason: rejected (a consumer rejected it) or delivery_limit."},
			[]string{"reason"}),
		unusable: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_share_dlq_records_unwritten_total",
			Help: "Dead letters archived without a write, by cause: not_configured, invalid_name, missing, not_enabled, source_gone, gave_up (transient failures past the retry limit)."},
			[]string{"cause"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_share_dlq_write_failures_total",
			Help: "Failed dead-letter write attempts (retried with backoff), by Kafka error or other."},
			[]string{"error"}),
		redrives: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_share_dlq_redriven_total",
			Help: "Records the admin redrive endpoint moved from a dead-letter topic back to their source topic, by result (moved, unmovable)."},
			[]string{"result"}),
	}
	reg.MustRegister(m.writes, m.unusable, m.failures, m.redrives)
	return m
}

// wrote counts written dead letters by reason.
func (m *dlqMetrics) wrote(letters []share.DeadLetter) {
	var rejected, limit int
	for _, l := range letters {
		if l.Rejected {
			rejected++
		} else {
			limit++
		}
	}
	if rejected > 0 {
		m.writes.WithLabelValues("rejected").Add(float64(rejected))
	}
	if limit > 0 {
		m.writes.WithLabelValues("delivery_limit").Add(float64(limit))
	}
}
