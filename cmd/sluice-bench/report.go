package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// result is everything one benchmark run reports; --json prints it as is,
// and --compare reads a file of them back.
type result struct {
	Label  string `json:"label,omitempty"`
	Target string `json:"target,omitempty"`

	Brokers       string            `json:"brokers"`
	Fake          bool              `json:"fake,omitempty"`
	Topic         string            `json:"topic"`
	TopicConfigs  map[string]string `json:"topic_configs,omitempty"`
	Partitions    int32             `json:"partitions"`
	RecordSize    int               `json:"record_size"`
	Acks          string            `json:"acks"`
	Rate          float64           `json:"rate,omitempty"`
	Linger        string            `json:"linger"`
	MaxInflight   int               `json:"max_inflight"`
	Idempotent    bool              `json:"idempotent,omitempty"`
	OnePerRequest bool              `json:"one_per_request,omitempty"`
	Mode          string            `json:"mode"`
	TxnRecords    int               `json:"txn_records,omitempty"`
	TxnAbortEvery int               `json:"txn_abort_every,omitempty"`
	Isolation     string            `json:"isolation,omitempty"`
	// Producers is --producers of a produce phase with more than one
	// producer client (the flood's count is in Flood).
	Producers int `json:"producers,omitempty"`

	Produce *phase      `json:"produce,omitempty"`
	Consume *phase      `json:"consume,omitempty"`
	Flood   *floodStats `json:"flood,omitempty"`
	Txn     *txnStats   `json:"txn,omitempty"`
	// Group is what --mode share or group measured of the group.
	Group *groupStats `json:"group,omitempty"`

	// E2E is the produce-to-consume latency of --mode e2e: from just before
	// the record was handed to the client to the poll that returned it.
	E2E        *latency `json:"e2e_latency,omitempty"`
	E2ERecords int64    `json:"e2e_records,omitempty"`

	// Verify is the consume phase's check of what it read (see verification).
	Verify *verification `json:"verify,omitempty"`

	// RatioTo and MinRatio are --ratio-to and --min-ratio, for --compare.
	RatioTo  string  `json:"ratio_to,omitempty"`
	MinRatio float64 `json:"min_ratio,omitempty"`

	// CPUScope says whose CPU the broker_cpu figures are: "broker pid N",
	// "this process (broker and client)" or empty when not measured.
	CPUScope string `json:"cpu_scope,omitempty"`

	// MaxP99Ms and P99OK report the --max-p99 check when it was asked for.
	MaxP99Ms float64 `json:"max_p99_ms,omitempty"`
	P99OK    *bool   `json:"p99_ok,omitempty"`

	Notes []string `json:"notes,omitempty"`
	Error string   `json:"error,omitempty"`
}

// phase is the outcome of producing or consuming.
type phase struct {
	Records    int64   `json:"records"`
	Bytes      int64   `json:"bytes"`
	Seconds    float64 `json:"seconds"`
	RecordsPS  float64 `json:"records_per_sec"`
	MBPS       float64 `json:"mb_per_sec"`
	Errors     int64   `json:"errors,omitempty"`
	FirstError string  `json:"first_error,omitempty"`

	// BrokerCPU is nil when not measured; ClientCPU is this process's and is
	// nil with --fake, where it is part of BrokerCPU.
	BrokerCPU *cpuUsage `json:"broker_cpu,omitempty"`
	ClientCPU *cpuUsage `json:"client_cpu,omitempty"`

	// Produce only. Requests, batches and the in-flight maximum come from
	// kgo's hooks; the maximum is per broker connection.
	TargetRate      float64  `json:"target_rate,omitempty"`
	Latency         *latency `json:"latency,omitempty"`
	Requests        int64    `json:"requests,omitempty"`
	Batches         int64    `json:"batches,omitempty"`
	MaxBatchRecords int64    `json:"max_batch_records,omitempty"`
	MaxInflightSeen int64    `json:"max_inflight_seen,omitempty"`
	RecordsPerReq   float64  `json:"records_per_request,omitempty"`
}

// latency holds produce latency percentiles in milliseconds.
type latency struct {
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
	MeanMs float64 `json:"mean_ms"`
}

// cpuUsage is CPU time spent during a phase.
type cpuUsage struct {
	Seconds         float64 `json:"seconds"`
	MicrosPerRecord float64 `json:"us_per_record"`
	Cores           float64 `json:"cores"` // CPU seconds per wall second
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func latencyOf(h *histogram) *latency {
	if h.Count() == 0 {
		return nil
	}
	return &latency{
		P50Ms: ms(h.Quantile(0.50)), P99Ms: ms(h.Quantile(0.99)), P999Ms: ms(h.Quantile(0.999)),
		MaxMs: ms(h.Max()), MeanMs: ms(h.Mean()),
	}
}

func newCPUUsage(cpu, wall time.Duration, records int64) *cpuUsage {
	u := &cpuUsage{Seconds: cpu.Seconds()}
	if records > 0 {
		u.MicrosPerRecord = float64(cpu) / float64(time.Microsecond) / float64(records)
	}
	if wall > 0 {
		u.Cores = cpu.Seconds() / wall.Seconds()
	}
	return u
}

// fillRates derives the per-second figures from the raw counts.
func (p *phase) fillRates(elapsed time.Duration) {
	p.Seconds = elapsed.Seconds()
	if p.Seconds > 0 {
		p.RecordsPS = float64(p.Records) / p.Seconds
		p.MBPS = float64(p.Bytes) / 1e6 / p.Seconds
	}
	if p.Requests > 0 {
		p.RecordsPerReq = float64(p.Records) / float64(p.Requests)
	}
}

// writeJSON prints r as one line.
func writeJSON(w io.Writer, r *result) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// summary is a one-line digest of r, for progress output.
func summary(r *result) string {
	var b strings.Builder
	if r.Target != "" || r.Label != "" {
		fmt.Fprintf(&b, "%-9s %-28s ", r.Target, r.Label)
	}
	if p := r.Produce; p != nil {
		fmt.Fprintf(&b, "produce %9.0f rec/s %7.1f MB/s", p.RecordsPS, p.MBPS)
		if p.Latency != nil && r.Rate > 0 {
			fmt.Fprintf(&b, " p99 %.2f ms", p.Latency.P99Ms)
		}
		if p.BrokerCPU != nil {
			fmt.Fprintf(&b, " cpu %.2f us/rec", p.BrokerCPU.MicrosPerRecord)
		}
	}
	if t := r.Txn; t != nil {
		fmt.Fprintf(&b, " %.0f txn/s", t.TxnPS)
	}
	if c := r.Consume; c != nil {
		fmt.Fprintf(&b, "  consume %9.0f rec/s %7.1f MB/s", c.RecordsPS, c.MBPS)
	}
	if l := r.E2E; l != nil {
		fmt.Fprintf(&b, "  e2e p50 %.2f ms p99 %.2f ms", l.P50Ms, l.P99Ms)
	}
	if f := r.Flood; f != nil {
		b.WriteString("  " + f.summary())
	}
	if g := r.Group; g != nil {
		b.WriteString("  " + g.summary())
	}
	if v := r.Verify; v != nil {
		b.WriteString("  " + v.summary())
	}
	if r.Error != "" {
		fmt.Fprintf(&b, "  ERROR: %s", r.Error)
	}
	return b.String()
}

// writeText prints r for a person.
func writeText(w io.Writer, r *result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "brokers %s  topic %s  partitions %d  record %d B  acks %s  linger %s  max-inflight %d",
		r.Brokers, r.Topic, r.Partitions, r.RecordSize, r.Acks, r.Linger, r.MaxInflight)
	if r.OnePerRequest {
		b.WriteString("  one-per-request")
	}
	if r.Producers > 1 {
		fmt.Fprintf(&b, "  producers %d", r.Producers)
	}
	if len(r.TopicConfigs) > 0 {
		fmt.Fprintf(&b, "  topic-config %v", r.TopicConfigs)
	}
	b.WriteString("\n")
	if p := r.Produce; p != nil {
		writePhaseText(&b, "produce", p)
		if l := p.Latency; l != nil {
			fmt.Fprintf(&b, "  latency   p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms  mean %.3f ms\n",
				l.P50Ms, l.P99Ms, l.P999Ms, l.MaxMs, l.MeanMs)
		}
		fmt.Fprintf(&b, "  requests  %d (%.2f records/request), batches %d (largest %d records), max in flight seen %d\n",
			p.Requests, p.RecordsPerReq, p.Batches, p.MaxBatchRecords, p.MaxInflightSeen)
		if p.TargetRate > 0 {
			fmt.Fprintf(&b, "  rate      target %.0f rec/s, achieved %.0f rec/s\n", p.TargetRate, p.RecordsPS)
		}
	}
	if t := r.Txn; t != nil {
		writeTxnText(&b, t)
	}
	if c := r.Consume; c != nil {
		writePhaseText(&b, "consume", c)
	}
	if l := r.E2E; l != nil {
		fmt.Fprintf(&b, "e2e       %d records (%s)  p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms  mean %.3f ms\n",
			r.E2ERecords, r.Isolation, l.P50Ms, l.P99Ms, l.P999Ms, l.MaxMs, l.MeanMs)
	}
	if f := r.Flood; f != nil {
		fmt.Fprintf(&b, "flood     %s\n", f.summary())
	}
	if g := r.Group; g != nil {
		fmt.Fprintf(&b, "group     %s, %d polls\n", g.summary(), g.Polls)
	}
	if v := r.Verify; v != nil {
		fmt.Fprintf(&b, "check: %s\n", v.summary())
	}
	if r.CPUScope != "" {
		fmt.Fprintf(&b, "cpu: %s\n", r.CPUScope)
	}
	if r.P99OK != nil {
		verdict := "PASS"
		if !*r.P99OK {
			verdict = "FAIL"
		}
		fmt.Fprintf(&b, "check: produce p99 < %.3f ms: %s\n", r.MaxP99Ms, verdict)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	if r.Error != "" {
		fmt.Fprintf(&b, "error: %s\n", r.Error)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeTxnText(b *strings.Builder, t *txnStats) {
	fmt.Fprintf(b, "  txns      %d committed (%d records each, %.1f/s), %d aborted (%d records)\n",
		t.Committed, t.RecordsPerTxn, t.TxnPS, t.Aborted, t.AbortedRecords)
	if l := t.Flush; l != nil {
		fmt.Fprintf(b, "  flush     p50 %.3f ms  p99 %.3f ms  max %.3f ms\n", l.P50Ms, l.P99Ms, l.MaxMs)
	}
	if l := t.EndTxn; l != nil {
		fmt.Fprintf(b, "  end txn   p50 %.3f ms  p99 %.3f ms  max %.3f ms\n", l.P50Ms, l.P99Ms, l.MaxMs)
	}
}

func writePhaseText(b *strings.Builder, name string, p *phase) {
	fmt.Fprintf(b, "%-9s %d records in %.3f s: %.0f records/s, %.2f MB/s\n", name, p.Records, p.Seconds, p.RecordsPS, p.MBPS)
	if p.Errors > 0 {
		fmt.Fprintf(b, "  errors    %d (first: %s)\n", p.Errors, p.FirstError)
	}
	if u := p.BrokerCPU; u != nil {
		fmt.Fprintf(b, "  broker cpu %.2f s, %.3f us/record, %.2f cores\n", u.Seconds, u.MicrosPerRecord, u.Cores)
	}
	if u := p.ClientCPU; u != nil {
		fmt.Fprintf(b, "  client cpu %.2f s, %.3f us/record, %.2f cores\n", u.Seconds, u.MicrosPerRecord, u.Cores)
	}
}
