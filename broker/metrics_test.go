package broker

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// seriesOf counts the series of one of m's metric families.
func seriesOf(t *testing.T, m *metrics, name string) int {
	t.Helper()
	c := map[string]prometheus.Collector{
		"sluice_unsupported_requests_total": m.unsupportedReqs,
		"sluice_requests_total":             m.requests,
		"sluice_request_errors_total":       m.requestErrors,
		"sluice_bytes_in_total":             m.bytesIn,
		"sluice_records_out_total":          m.recordsOut,
		"sluice_replicated_bytes_total":     m.replicatedBytes,
		"sluice_produce_rejected_total":     m.producedRejected,
	}[name]
	if c == nil {
		t.Fatalf("no collector %s", name)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

// TestMetricsClientChosenLabelsBounded: unknown API keys and versions a
// client sends are counted under "unknown", not one series per value.
func TestMetricsClientChosenLabelsBounded(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := newMetrics(reg, &Broker{})
	for i := range 5000 {
		m.unsupported(int16(1000+i), int16(i))
		m.unsupported(0, int16(100+i)) // Produce at absurd versions
	}
	if n := seriesOf(t, m, "sluice_unsupported_requests_total"); n > 2*(maxCachedVersion+2) {
		t.Fatalf("%d unsupported-request series after 10000 distinct key/versions; want them bucketed", n)
	}
	for i := range 5000 {
		m.observeRequest(int16(2000+i), int16(i), 0)
		m.countError(int16(2000+i), 3)
	}
	if n := seriesOf(t, m, "sluice_requests_total"); n > maxCachedVersion+2 {
		t.Fatalf("%d request series for unknown keys", n)
	}
	if n := seriesOf(t, m, "sluice_request_errors_total"); n != 1 {
		t.Fatalf("%d error series for unknown keys, want 1", n)
	}
}

// TestMetricsTopicSeriesForgotten: a deleted topic's series go with it.
func TestMetricsTopicSeriesForgotten(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := newMetrics(reg, &Broker{})
	m.produced("gone", 10, 1)
	m.fetched("gone", 10, 1)
	m.replicated("gone", 10, 1)
	m.producedRejected.WithLabelValues("gone").Inc()
	m.produced("kept", 10, 1)
	m.forgetTopic("gone")
	for _, name := range []string{"sluice_bytes_in_total", "sluice_records_out_total", "sluice_replicated_bytes_total", "sluice_produce_rejected_total"} {
		want := 0
		if name == "sluice_bytes_in_total" || name == "sluice_records_out_total" {
			want = 1 // "kept" (its traffic series are created together)
		}
		if n := seriesOf(t, m, name); n != want {
			t.Errorf("%s: %d series after deleting the topic, want %d", name, n, want)
		}
	}
	m.produced("gone", 1, 1) // recreated if the topic comes back
	if n := seriesOf(t, m, "sluice_bytes_in_total"); n != 2 {
		t.Errorf("recreated topic: %d series, want 2", n)
	}
}
