package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
)

// errCompareFailed means a compared cell failed or missed its p99 target.
var errCompareFailed = errors.New("sluice-bench: comparison has failures")

// maxResultLine bounds one JSON result line in a --compare file.
const maxResultLine = 1 << 20

// pair is one benchmark cell as run against the subject and the reference.
// A cell run more than once against a broker is represented in the tables
// by its median run (see medianRun); subRuns and refRuns hold every run,
// whose failures are all reported.
type pair struct {
	label            string
	sub, ref         *result
	subRuns, refRuns []*result
}

// readResults parses a file of --json results, one per line; blank lines
// and lines starting with '#' are skipped.
func readResults(r io.Reader) ([]*result, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxResultLine)
	var out []*result
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		res := &result{}
		if err := json.Unmarshal([]byte(text), res); err != nil {
			return nil, fmt.Errorf("results line %d: %w", line, err)
		}
		out = append(out, res)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	return out, nil
}

// pairResults groups results by label in order of first appearance. A cell
// with several results for the same target (bench/run.sh repeats the
// transaction cells, interleaved with their baseline, so that load from
// other processes drifting over the run does not decide a ratio) is
// represented by its median run.
func pairResults(results []*result, subject, reference string) []*pair {
	var pairs []*pair
	byLabel := make(map[string]*pair)
	for _, r := range results {
		p, ok := byLabel[r.Label]
		if !ok {
			p = &pair{label: r.Label}
			byLabel[r.Label] = p
			pairs = append(pairs, p)
		}
		switch r.Target {
		case subject:
			p.subRuns = append(p.subRuns, r)
		case reference:
			p.refRuns = append(p.refRuns, r)
		}
	}
	for _, p := range pairs {
		p.sub, p.ref = medianRun(p.subRuns), medianRun(p.refRuns)
	}
	return pairs
}

// medianRun picks the run with the median produce records/s, the lower
// middle one of an even count; nil for none. A failed run counts as the
// slowest, so it is the median only when at least half the runs failed.
func medianRun(rs []*result) *result {
	if len(rs) == 0 {
		return nil
	}
	sorted := slices.Clone(rs)
	slices.SortStableFunc(sorted, func(a, b *result) int { return cmp.Compare(runSpeed(a), runSpeed(b)) })
	return sorted[(len(sorted)-1)/2]
}

// runSpeed orders runs for medianRun: produce records/s, -1 for a failed run.
func runSpeed(r *result) float64 {
	if r.Error != "" || r.Produce == nil {
		return -1
	}
	return r.Produce.RecordsPS
}

// compareFile prints the comparison tables for the results in path.
func compareFile(path, subject, reference string, w io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	defer f.Close()
	results, err := readResults(f)
	if err != nil {
		return err
	}
	return writeComparison(w, pairResults(results, subject, reference), subject, reference)
}

// writeComparison prints the tables (produce throughput, consume
// throughput, produce latency, and when such cells ran: transactions,
// end-to-end latency, flood, ratios to baseline cells) with
// subject/reference ratios, then the failures and notes. It returns
// errCompareFailed if any cell failed or missed a check.
func writeComparison(w io.Writer, pairs []*pair, subject, reference string) error {
	t := &table{s: short(subject), r: short(reference), width: len(latencyTitle)}
	for _, p := range pairs {
		t.width = max(t.width, len(p.label))
	}
	t.tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	t.throughput("PRODUCE THROUGHPUT", pairs, produceOf)
	t.throughput("CONSUME THROUGHPUT", pairs, consumeOf)
	t.latency(pairs)
	t.transactions(pairs)
	t.e2e(pairs)
	t.flood(pairs)
	t.groups(pairs)
	t.baselines(pairs)
	if err := t.tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	fmt.Fprintf(w, "\nratio = %s / %s. Throughput: higher is better. CPU per record and latency: lower is better.\n", subject, reference)
	fmt.Fprintln(w, "CPU is the broker process's utime+stime from /proc/PID/stat (10 ms ticks) over the phase.")
	if anyPair(pairs, func(x *result) bool { return x.RatioTo != "" }) {
		fmt.Fprintln(w, "Ratio to baseline cell = the cell's figure / the baseline cell's, both against the same broker.")
	}
	if anyPair(pairs, isGroup) {
		fmt.Fprintln(w, "Group consumption: records/s from the first record polled to the last acknowledgement confirmed (the join left out);")
		fmt.Fprintln(w, "ack = from the poll that returned a record to the broker confirming its acknowledgement (share: FlushAcks; classic: commit), ms.")
	}
	if anyPair(pairs, func(x *result) bool { return x.Txn != nil }) {
		fmt.Fprintln(w, "Transactional cells count committed records only; flush and end are the Flush and EndTransaction waits per transaction, in ms.")
	}
	return writeFailures(w, pairs, subject)
}

const latencyTitle = "PRODUCE LATENCY (ms)"

// table lays out the comparison: right-aligned columns behind a left-aligned
// cell label padded to width.
type table struct {
	tw    *tabwriter.Writer
	s, r  string // column-header names of subject and reference
	width int
}

func (t *table) row(label string, cells ...string) {
	fmt.Fprintf(t.tw, "%-*s\t%s\t\n", t.width, label, strings.Join(cells, "\t"))
}

// throughput writes the rows of unpaced cells that have the chosen phase.
func (t *table) throughput(title string, pairs []*pair, which func(*result) *phase) {
	s, r := t.s, t.r
	t.row(title, s+" rec/s", r+" rec/s", "ratio", s+" MB/s", r+" MB/s", s+" cpu us/rec", r+" cpu us/rec", "ratio")
	for _, p := range pairs {
		if !p.has(func(x *result) bool { return which(x) != nil && x.Rate == 0 && x.Flood == nil }) {
			continue
		}
		sp, rp := pick(p.sub, which), pick(p.ref, which)
		t.row(p.label,
			num(sp, recPS, "%.0f"), num(rp, recPS, "%.0f"), ratio(sp, rp, recPS),
			num(sp, mbPS, "%.1f"), num(rp, mbPS, "%.1f"),
			num(sp, cpuPerRec, "%.2f"), num(rp, cpuPerRec, "%.2f"), ratio(sp, rp, cpuPerRec))
	}
	t.row("")
}

// latency writes the rows of paced (--rate) produce cells.
func (t *table) latency(pairs []*pair) {
	s, r := t.s, t.r
	t.row(latencyTitle, s+" p50", s+" p99", s+" p99.9", r+" p50", r+" p99", r+" p99.9", "p99 ratio", "rec/req", "check")
	for _, p := range pairs {
		if !p.has(func(x *result) bool { return x.Produce != nil && x.Rate > 0 && !isE2E(x) }) {
			continue
		}
		sp, rp := pick(p.sub, produceOf), pick(p.ref, produceOf)
		t.row(p.label,
			num(sp, p50, "%.2f"), num(sp, p99, "%.2f"), num(sp, p999, "%.2f"),
			num(rp, p50, "%.2f"), num(rp, p99, "%.2f"), num(rp, p999, "%.2f"),
			ratio(sp, rp, p99), num(sp, recPerReq, "%.2f"), p.check())
	}
}

// writeFailures lists failed cells and notes; it returns errCompareFailed
// when any cell failed or missed its check (--max-p99, the consumed-records
// check, or the subject's --min-ratio).
func writeFailures(w io.Writer, pairs []*pair, subject string) error {
	failed := 0
	for _, p := range pairs {
		for _, x := range slices.Concat(p.subRuns, p.refRuns) {
			if x.Error != "" {
				failed++
				fmt.Fprintf(w, "FAILED %s %s: %s\n", x.Target, p.label, x.Error)
			} else if x.P99OK != nil && !*x.P99OK {
				failed++
				fmt.Fprintf(w, "FAILED %s %s: p99 not below %.2f ms\n", x.Target, p.label, x.MaxP99Ms)
			}
			for _, n := range x.Notes {
				fmt.Fprintf(w, "note: %s %s: %s\n", x.Target, p.label, n)
			}
		}
		if p.sub == nil {
			fmt.Fprintf(w, "missing: no %s result for %s\n", subject, p.label)
		}
	}
	for _, line := range ratioFailures(pairs, subject) {
		failed++
		fmt.Fprintln(w, line)
	}
	if failed > 0 {
		return fmt.Errorf("%w: %d", errCompareFailed, failed)
	}
	return nil
}

func (p *pair) has(pred func(*result) bool) bool {
	return (p.sub != nil && pred(p.sub)) || (p.ref != nil && pred(p.ref))
}

// pick returns one phase of x, or nil when x is missing.
func pick(x *result, which func(*result) *phase) *phase {
	if x == nil {
		return nil
	}
	return which(x)
}

// check renders the subject's --max-p99 verdict.
func (p *pair) check() string {
	switch {
	case p.sub == nil || p.sub.P99OK == nil:
		return "-"
	case *p.sub.P99OK:
		return fmt.Sprintf("PASS <%gms", p.sub.MaxP99Ms)
	default:
		return fmt.Sprintf("FAIL <%gms", p.sub.MaxP99Ms)
	}
}

func produceOf(x *result) *phase { return x.Produce }
func consumeOf(x *result) *phase { return x.Consume }

// Metric extractors: each returns the value and whether it is known.
func recPS(p *phase) (float64, bool) { return p.RecordsPS, p.Records > 0 }
func mbPS(p *phase) (float64, bool)  { return p.MBPS, p.Records > 0 }
func recPerReq(p *phase) (float64, bool) {
	return p.RecordsPerReq, p.Requests > 0
}

func cpuPerRec(p *phase) (float64, bool) {
	if p.BrokerCPU == nil || p.Records == 0 {
		return 0, false
	}
	return p.BrokerCPU.MicrosPerRecord, true
}

func p50(p *phase) (float64, bool) {
	return latencyField(p, func(l *latency) float64 { return l.P50Ms })
}
func p99(p *phase) (float64, bool) {
	return latencyField(p, func(l *latency) float64 { return l.P99Ms })
}
func p999(p *phase) (float64, bool) {
	return latencyField(p, func(l *latency) float64 { return l.P999Ms })
}

func latencyField(p *phase, f func(*latency) float64) (float64, bool) {
	if p.Latency == nil {
		return 0, false
	}
	return f(p.Latency), true
}

// num formats one metric, or "-" when it is unknown.
func num(p *phase, m func(*phase) (float64, bool), format string) string {
	if p == nil {
		return "-"
	}
	v, ok := m(p)
	if !ok {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

// ratio formats subject/reference for one metric of a phase or a whole
// result, or "-".
func ratio[T any](sub, ref *T, m func(*T) (float64, bool)) string {
	if sub == nil || ref == nil {
		return "-"
	}
	a, okA := m(sub)
	b, okB := m(ref)
	if !okA || !okB || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

// short abbreviates a target name for column headers.
func short(name string) string {
	if len(name) > 6 {
		return name[:3]
	}
	return name
}
