package main

import (
	"fmt"
)

// transactions writes the rows of --txn-records cells: transactions/s,
// Flush and EndTransaction latency (the two waits every transaction has)
// and the consumed-records check of each broker.
func (t *table) transactions(pairs []*pair) {
	if !anyPair(pairs, func(x *result) bool { return x.Txn != nil }) {
		return
	}
	s, r := t.s, t.r
	t.row("")
	t.row("TRANSACTIONS", s+" txn/s", r+" txn/s", "ratio", s+" flush p50", r+" flush p50",
		s+" end p50", s+" end p99", r+" end p50", r+" end p99", s+" verify", r+" verify")
	for _, p := range pairs {
		if !p.has(func(x *result) bool { return x.Txn != nil }) {
			continue
		}
		t.row(p.label, txnNum(p.sub, txnPS, "%.0f"), txnNum(p.ref, txnPS, "%.0f"), txnRatio(p.sub, p.ref),
			txnNum(p.sub, flushP50, "%.2f"), txnNum(p.ref, flushP50, "%.2f"),
			txnNum(p.sub, endP50, "%.2f"), txnNum(p.sub, endP99, "%.2f"),
			txnNum(p.ref, endP50, "%.2f"), txnNum(p.ref, endP99, "%.2f"), verdict(p.sub), verdict(p.ref))
	}
}

// e2e writes the rows of --mode e2e cells: end-to-end latency of each
// broker, the p99 ratio, the subject's achieved rate and the checks.
func (t *table) e2e(pairs []*pair) {
	if !anyPair(pairs, isE2E) {
		return
	}
	s, r := t.s, t.r
	t.row("")
	t.row("END-TO-END LATENCY (ms)", s+" p50", s+" p99", s+" p99.9", r+" p50", r+" p99", r+" p99.9", "p99 ratio", s+" rec/s", s+" verify", r+" verify")
	for _, p := range pairs {
		if !p.has(isE2E) {
			continue
		}
		t.row(p.label, e2eNum(p.sub, e2eP50), e2eNum(p.sub, e2eP99), e2eNum(p.sub, e2eP999),
			e2eNum(p.ref, e2eP50), e2eNum(p.ref, e2eP99), e2eNum(p.ref, e2eP999), ratio(p.sub, p.ref, e2eP99),
			num(pick(p.sub, produceOf), recPS, "%.0f"), verdict(p.sub), verdict(p.ref))
	}
}

// baselines writes, for every cell with --ratio-to, its figures divided by
// those of its baseline cell against the same broker (median runs), the
// subject's --min-ratio verdict, and how many runs of the cell and of the
// baseline the subject had.
func (t *table) baselines(pairs []*pair) {
	byLabel := labelIndex(pairs)
	if !anyPair(pairs, func(x *result) bool { return x.RatioTo != "" }) {
		return
	}
	t.row("")
	t.row("RATIO TO BASELINE CELL", "figure", "baseline (same broker, same run)", t.s, t.r, "check", "runs")
	for _, p := range pairs {
		x := p.sub
		if x == nil {
			x = p.ref
		}
		if x == nil || x.RatioTo == "" {
			continue
		}
		base := byLabel[x.RatioTo]
		baseRuns := 0
		if base != nil {
			baseRuns = len(base.subRuns)
		}
		for _, f := range baselineFigures(x) {
			t.row(p.label, f.name, x.RatioTo, baselineRatio(p.sub, base, subSide, f), baselineRatio(p.ref, base, refSide, f),
				minRatioCheck(p, base, f), fmt.Sprintf("%d/%d", len(p.subRuns), baseRuns))
		}
	}
}

// baselineFigure is one figure a cell is compared with its baseline on.
type baselineFigure struct {
	name  string
	value func(*result) (float64, bool)
	// checked: --min-ratio applies to this figure.
	checked bool
}

// baselineFigures are produce records/s for throughput cells, end-to-end
// p50 and p99 for --mode e2e cells.
func baselineFigures(x *result) []baselineFigure {
	if x.Mode == modeE2E {
		return []baselineFigure{
			{name: "e2e p50", value: e2eP50},
			{name: "e2e p99", value: e2eP99},
		}
	}
	return []baselineFigure{{name: "rec/s", checked: true, value: func(r *result) (float64, bool) {
		if r.Produce == nil {
			return 0, false
		}
		return recPS(r.Produce)
	}}}
}

// Sides of a pair, to find the baseline's result for the same broker.
func subSide(p *pair) *result { return p.sub }
func refSide(p *pair) *result { return p.ref }

// ratioTo divides x's figure by that of the baseline pair's result on the
// same side; ok is false when either is missing or the baseline's is zero.
func ratioTo(x *result, base *pair, side func(*pair) *result, f baselineFigure) (float64, bool) {
	if x == nil || base == nil || side(base) == nil || x.Error != "" || side(base).Error != "" {
		return 0, false
	}
	a, okA := f.value(x)
	b, okB := f.value(side(base))
	if !okA || !okB || b == 0 {
		return 0, false
	}
	return a / b, true
}

func baselineRatio(x *result, base *pair, side func(*pair) *result, f baselineFigure) string {
	v, ok := ratioTo(x, base, side, f)
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.2fx", v)
}

// minRatioOK applies the subject's --min-ratio to figure f; checked is
// false when the cell has no bound on f.
func minRatioOK(p *pair, base *pair, f baselineFigure) (ok, checked bool, v float64) {
	if p.sub == nil || p.sub.MinRatio <= 0 || !f.checked {
		return false, false, 0
	}
	v, known := ratioTo(p.sub, base, subSide, f)
	return known && v >= p.sub.MinRatio, true, v
}

func minRatioCheck(p *pair, base *pair, f baselineFigure) string {
	ok, checked, _ := minRatioOK(p, base, f)
	switch {
	case !checked:
		return "-"
	case ok:
		return fmt.Sprintf("PASS >=%gx", p.sub.MinRatio)
	default:
		return fmt.Sprintf("FAIL >=%gx", p.sub.MinRatio)
	}
}

// ratioFailures returns a line for every subject cell whose --min-ratio
// check failed; a cell that failed outright is reported as such instead.
func ratioFailures(pairs []*pair, subject string) []string {
	byLabel := labelIndex(pairs)
	var out []string
	for _, p := range pairs {
		if p.sub == nil || p.sub.Error != "" {
			continue
		}
		for _, f := range baselineFigures(p.sub) {
			ok, checked, v := minRatioOK(p, byLabel[p.sub.RatioTo], f)
			if !checked || ok {
				continue
			}
			got := "unknown (baseline missing or failed)"
			if v > 0 {
				got = fmt.Sprintf("%.2fx", v)
			}
			out = append(out, fmt.Sprintf("FAILED %s %s: %s of %q is %s, want >= %gx",
				subject, p.label, f.name, p.sub.RatioTo, got, p.sub.MinRatio))
		}
	}
	return out
}

func labelIndex(pairs []*pair) map[string]*pair {
	m := make(map[string]*pair, len(pairs))
	for _, p := range pairs {
		m[p.label] = p
	}
	return m
}

func anyPair(pairs []*pair, pred func(*result) bool) bool {
	for _, p := range pairs {
		if p.has(pred) {
			return true
		}
	}
	return false
}

func isE2E(x *result) bool { return x.Mode == modeE2E }

// verdict renders a result's consumed-records check.
func verdict(x *result) string {
	switch {
	case x == nil || x.Verify == nil:
		return "-"
	case x.Verify.OK:
		return "PASS"
	default:
		return "FAIL"
	}
}

func txnPS(t *txnStats) (float64, bool) { return t.TxnPS, t.Committed > 0 }
func flushP50(t *txnStats) (float64, bool) {
	if t.Flush == nil {
		return 0, false
	}
	return t.Flush.P50Ms, true
}
func endP50(t *txnStats) (float64, bool) {
	if t.EndTxn == nil {
		return 0, false
	}
	return t.EndTxn.P50Ms, true
}
func endP99(t *txnStats) (float64, bool) {
	if t.EndTxn == nil {
		return 0, false
	}
	return t.EndTxn.P99Ms, true
}

func txnNum(x *result, m func(*txnStats) (float64, bool), format string) string {
	if x == nil || x.Txn == nil {
		return "-"
	}
	v, ok := m(x.Txn)
	if !ok {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

func txnRatio(sub, ref *result) string {
	if sub == nil || ref == nil || sub.Txn == nil || ref.Txn == nil {
		return "-"
	}
	a, okA := txnPS(sub.Txn)
	b, okB := txnPS(ref.Txn)
	if !okA || !okB || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func e2eP50(x *result) (float64, bool) {
	if x.E2E == nil {
		return 0, false
	}
	return x.E2E.P50Ms, true
}
func e2eP99(x *result) (float64, bool) {
	if x.E2E == nil {
		return 0, false
	}
	return x.E2E.P99Ms, true
}
func e2eP999(x *result) (float64, bool) {
	if x.E2E == nil {
		return 0, false
	}
	return x.E2E.P999Ms, true
}

func e2eNum(x *result, m func(*result) (float64, bool)) string {
	if x == nil {
		return "-"
	}
	v, ok := m(x)
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}

// groups writes the rows of --mode share and group cells: records/s of
// each broker and their ratio, acknowledgement latency, how many members
// got records, and the by-key checks.
func (t *table) groups(pairs []*pair) {
	if !anyPair(pairs, isGroup) {
		return
	}
	s, r := t.s, t.r
	t.row("")
	t.row("GROUP CONSUMPTION", s+" rec/s", r+" rec/s", "ratio", s+" ack p50", s+" ack p99", r+" ack p50", r+" ack p99",
		s+" members", r+" members", s+" verify", r+" verify")
	for _, p := range pairs {
		if !p.has(isGroup) {
			continue
		}
		sp, rp := pick(p.sub, consumeOf), pick(p.ref, consumeOf)
		t.row(p.label, num(sp, recPS, "%.0f"), num(rp, recPS, "%.0f"), ratio(sp, rp, recPS),
			groupNum(p.sub, ackP50), groupNum(p.sub, ackP99), groupNum(p.ref, ackP50), groupNum(p.ref, ackP99),
			groupMembers(p.sub), groupMembers(p.ref), verdict(p.sub), verdict(p.ref))
	}
}

func isGroup(x *result) bool { return x.Group != nil }

func ackP50(g *groupStats) (float64, bool) {
	if g.Ack == nil {
		return 0, false
	}
	return g.Ack.P50Ms, true
}

func ackP99(g *groupStats) (float64, bool) {
	if g.Ack == nil {
		return 0, false
	}
	return g.Ack.P99Ms, true
}

func groupNum(x *result, m func(*groupStats) (float64, bool)) string {
	if x == nil || x.Group == nil {
		return "-"
	}
	v, ok := m(x.Group)
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}

// groupMembers renders "members that got records/members".
func groupMembers(x *result) string {
	if x == nil || x.Group == nil {
		return "-"
	}
	return fmt.Sprintf("%d/%d", x.Group.MembersWithRecords, x.Group.Members)
}
