package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func throughputResult(target, label string, recPS, cpuUS float64) *result {
	p := &phase{Records: 1000, RecordsPS: recPS, MBPS: recPS / 1000, BrokerCPU: &cpuUsage{MicrosPerRecord: cpuUS}}
	c := &phase{Records: 1000, RecordsPS: 2 * recPS, MBPS: recPS / 500}
	return &result{Target: target, Label: label, Produce: p, Consume: c}
}

func latencyResult(target, label string, p99ms float64) *result {
	return &result{Target: target, Label: label, Rate: 10000, Produce: &phase{
		Records: 1000, RecordsPS: 10000, Requests: 1000, RecordsPerReq: 1,
		Latency: &latency{P50Ms: p99ms / 10, P99Ms: p99ms, P999Ms: 2 * p99ms},
	}}
}

func withCheck(r *result, limitMs float64) *result {
	ok := r.Produce.Latency.P99Ms < limitMs
	r.MaxP99Ms, r.P99OK = limitMs, &ok
	return r
}

// rowOf returns the fields of the table row starting with label.
func rowOf(t *testing.T, out, label string) []string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), label); ok {
			return strings.Fields(rest)
		}
	}
	t.Fatalf("no row %q in:\n%s", label, out)
	return nil
}

func TestCompareRatios(t *testing.T) {
	t.Parallel()
	results := []*result{
		throughputResult("sluice", "cell-a", 200000, 1.5),
		throughputResult("reference", "cell-a", 100000, 3),
		latencyResult("reference", "lat", 4),
		latencyResult("sluice", "lat", 2),
		withCheck(latencyResult("sluice", "flush", 5), 20),
	}
	var out bytes.Buffer
	if err := writeComparison(&out, pairResults(results, "sluice", "reference"), "sluice", "reference"); err != nil {
		t.Fatalf("writeComparison: %v\n%s", err, out.String())
	}
	s := out.String()
	// Produce table row comes first, then the consume row of the same cell.
	want := []string{"200000", "100000", "2.00x", "200.0", "100.0", "1.50", "3.00", "0.50x"}
	if got := rowOf(t, s, "cell-a"); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("produce row %q, want %q", got, want)
	}
	if got := rowOf(t, s, "lat"); got[6] != "0.50x" || got[8] != "-" {
		t.Errorf("latency row %q: want p99 ratio 0.50x and no check", got)
	}
	if got := rowOf(t, s, "flush"); got[3] != "-" || got[6] != "-" || got[8] != "PASS" {
		t.Errorf("subject-only row %q: want no reference, PASS", got)
	}
	if n := len(regexp.MustCompile(`(?m)^\s*cell-a`).FindAllString(s, -1)); n != 2 {
		t.Errorf("cell-a appears in %d tables, want 2 (produce and consume)", n)
	}
}

func TestCompareFailures(t *testing.T) {
	t.Parallel()
	failed := throughputResult("reference", "cell-b", 1, 1)
	failed.Error = "create topic: boom"
	tests := []struct {
		name    string
		results []*result
		want    string
	}{
		{"missed p99", []*result{withCheck(latencyResult("sluice", "flush", 25), 20)}, "FAILED sluice flush: p99 not below 20.00 ms"},
		{"errored run", []*result{throughputResult("sluice", "cell-b", 1, 1), failed}, "FAILED reference cell-b: create topic: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			err := writeComparison(&out, pairResults(tt.results, "sluice", "reference"), "sluice", "reference")
			if !errors.Is(err, errCompareFailed) {
				t.Fatalf("err = %v, want errCompareFailed", err)
			}
			if !strings.Contains(out.String(), tt.want) {
				t.Errorf("output lacks %q:\n%s", tt.want, out.String())
			}
		})
	}
}

func TestCompareFileRoundTrip(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "results.jsonl")
	var buf bytes.Buffer
	buf.WriteString("# comment\n\n")
	for _, r := range []*result{throughputResult("sluice", "c", 3, 1), throughputResult("reference", "c", 2, 1)} {
		if err := writeJSON(&buf, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := compareFile(path, "sluice", "reference", &out); err != nil {
		t.Fatal(err)
	}
	if got := rowOf(t, out.String(), "c"); got[2] != "1.50x" {
		t.Errorf("row %q, want ratio 1.50x", got)
	}
	if err := os.WriteFile(path, []byte("{not json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := compareFile(path, "sluice", "reference", &out); err == nil {
		t.Error("a malformed results file was accepted")
	}
}

func txnResult(target, label string, recPS float64, baseline string, minRatio float64) *result {
	r := throughputResult(target, label, recPS, 2)
	r.TxnRecords, r.RatioTo, r.MinRatio = 1000, baseline, minRatio
	r.Txn = &txnStats{RecordsPerTxn: 1000, Committed: 1, TxnPS: recPS / 1000, EndTxn: &latency{P50Ms: 1, P99Ms: 3},
		Flush: &latency{P50Ms: 2}}
	r.Verify = &verification{Isolation: readCommitted, Expected: 1000, Consumed: 1000, OK: true}
	return r
}

func e2eResult(target, label string, p99ms float64, baseline string) *result {
	r := latencyResult(target, label, 1)
	r.Mode, r.RatioTo = modeE2E, baseline
	r.E2E, r.E2ERecords = &latency{P50Ms: p99ms / 2, P99Ms: p99ms, P999Ms: 2 * p99ms}, 1000
	return r
}

// TestCompareBaselineRatios checks the ratio-to-baseline rows, the
// --min-ratio verdicts and that a missed bound fails the comparison while
// the reference's ratio is only shown.
func TestCompareBaselineRatios(t *testing.T) {
	t.Parallel()
	const idem, e2eIdem = "idem", "e2e-idem"
	tests := []struct {
		name      string
		subTxnPS  float64
		wantRatio string
		wantCheck string
		wantFail  bool
	}{
		{"meets the bound", 90000, "0.90x", "PASS", false},
		{"misses the bound", 70000, "0.70x", "FAIL", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			results := []*result{
				throughputResult("sluice", idem, 100000, 1), throughputResult("reference", idem, 200000, 1),
				txnResult("sluice", "txn1000", tt.subTxnPS, idem, 0.8), txnResult("reference", "txn1000", 50000, idem, 0.8),
				txnResult("sluice", "txn10", 10000, idem, 0), txnResult("reference", "txn10", 20000, idem, 0),
				e2eResult("sluice", e2eIdem, 4, ""), e2eResult("reference", e2eIdem, 2, ""),
				e2eResult("sluice", "e2e-txn", 12, e2eIdem), e2eResult("reference", "e2e-txn", 3, e2eIdem),
			}
			var out bytes.Buffer
			err := writeComparison(&out, pairResults(results, "sluice", "reference"), "sluice", "reference")
			s := out.String()
			if tt.wantFail != errors.Is(err, errCompareFailed) {
				t.Fatalf("err = %v, want failure %v:\n%s", err, tt.wantFail, s)
			}
			// Rows: label, figure, baseline, subject ratio, reference ratio, check.
			ratios := s[strings.Index(s, "RATIO TO BASELINE CELL"):]
			if got := rowOf(t, ratios, "txn1000 "); strings.Join(got, " ") != "rec/s idem "+tt.wantRatio+" 0.25x "+tt.wantCheck+" >=0.8x 1/1" {
				t.Errorf("txn1000 ratio row %q", got)
			}
			if got := rowOf(t, ratios, "txn10 "); strings.Join(got, " ") != "rec/s idem 0.10x 0.10x - 1/1" {
				t.Errorf("txn10 ratio row %q", got)
			}
			if got := rowOf(t, s[strings.Index(s, "TRANSACTIONS"):], "txn1000 "); got[2] != fmt.Sprintf("%.2fx", tt.subTxnPS/50000) || got[3] != "2.00" || got[10] != "PASS" {
				t.Errorf("txn1000 transactions row %q", got)
			}
			for _, want := range []string{"e2e p50 e2e-idem 3.00x 1.50x - 1/1", "e2e p99 e2e-idem 3.00x 1.50x - 1/1"} {
				if !strings.Contains(strings.Join(strings.Fields(s), " "), "e2e-txn "+want) {
					t.Errorf("no e2e ratio row %q in:\n%s", want, s)
				}
			}
			failLine := `FAILED sluice txn1000: rec/s of "idem" is 0.70x, want >= 0.8x`
			if strings.Contains(s, failLine) != tt.wantFail {
				t.Errorf("failure line %q present %v, want %v:\n%s", failLine, !tt.wantFail, tt.wantFail, s)
			}
			for _, section := range []string{"TRANSACTIONS", "END-TO-END LATENCY (ms)", "RATIO TO BASELINE CELL"} {
				if !strings.Contains(s, section) {
					t.Errorf("no %s section:\n%s", section, s)
				}
			}
		})
	}
}

// TestCompareBaselineMissing fails a --min-ratio cell whose baseline did
// not run, rather than passing it for want of a figure.
func TestCompareBaselineMissing(t *testing.T) {
	t.Parallel()
	results := []*result{txnResult("sluice", "txn1000", 90000, "idem", 0.8)}
	var out bytes.Buffer
	err := writeComparison(&out, pairResults(results, "sluice", "reference"), "sluice", "reference")
	if !errors.Is(err, errCompareFailed) || !strings.Contains(out.String(), "unknown (baseline missing or failed)") {
		t.Fatalf("err %v, output:\n%s", err, out.String())
	}
}

// TestCompareRepeatedRunsMedian repeats a cell and its baseline: ratios use
// the median run of each, and a failed run among them is still reported.
func TestCompareRepeatedRunsMedian(t *testing.T) {
	t.Parallel()
	failed := txnResult("sluice", "txn", 1, "idem", 0.8)
	failed.Error = "verify: consumed 9 records, want 10"
	results := []*result{
		throughputResult("sluice", "idem", 100000, 1), txnResult("sluice", "txn", 90000, "idem", 0.8),
		throughputResult("sluice", "idem", 300000, 1), txnResult("sluice", "txn", 10000, "idem", 0.8),
		throughputResult("sluice", "idem", 200000, 1), failed,
		txnResult("sluice", "txn", 170000, "idem", 0.8),
	}
	pairs := pairResults(results, "sluice", "reference")
	// txn: the failed run counts as the slowest of four, so the lower
	// middle one is 10000.
	if len(pairs) != 2 || pairs[0].sub.Produce.RecordsPS != 200000 || pairs[1].sub.Produce.RecordsPS != 10000 ||
		len(pairs[1].subRuns) != 4 {
		t.Fatalf("medians: idem %v, txn %v over %d runs", pairs[0].sub.Produce.RecordsPS, pairs[1].sub.Produce.RecordsPS, len(pairs[1].subRuns))
	}
	var out bytes.Buffer
	err := writeComparison(&out, pairs, "sluice", "reference")
	s := out.String()
	if got := rowOf(t, s[strings.Index(s, "RATIO TO BASELINE CELL"):], "txn "); strings.Join(got, " ") != "rec/s idem 0.05x - FAIL >=0.8x 4/3" {
		t.Errorf("ratio row %q", got)
	}
	if !errors.Is(err, errCompareFailed) || !strings.Contains(s, "FAILED sluice txn: verify: consumed 9 records") {
		t.Errorf("err %v; the failed run is not reported:\n%s", err, s)
	}
}

// TestCompareGroups prints the group consumption table: consume records/s
// of each broker and their ratio, acknowledgement latency, members that
// got records and the checks; a failed by-key check fails the comparison.
func TestCompareGroups(t *testing.T) {
	t.Parallel()
	group := func(target string, recPS, p50 float64, ok bool) *result {
		return &result{Target: target, Label: "share p=1 x4", Mode: modeShare,
			Produce: &phase{Records: 100, RecordsPS: 1000},
			Consume: &phase{Records: 100, RecordsPS: recPS},
			Group:   &groupStats{Kind: kindShare, Members: 4, MembersWithRecords: 3, Ack: &latency{P50Ms: p50, P99Ms: 2 * p50}},
			Verify:  &verification{OK: ok, BySequence: true}}
	}
	var out bytes.Buffer
	err := writeComparison(&out, pairResults([]*result{group("sluice", 3000, 1.5, true), group("reference", 1500, 0.5, true)},
		"sluice", "reference"), "sluice", "reference")
	if err != nil {
		t.Fatalf("writeComparison: %v\n%s", err, out.String())
	}
	_, section, ok := strings.Cut(out.String(), "GROUP CONSUMPTION")
	if !ok {
		t.Fatalf("no group table in:\n%s", out.String())
	}
	want := []string{"3000", "1500", "2.00x", "1.50", "3.00", "0.50", "1.00", "3/4", "3/4", "PASS", "PASS"}
	if got := rowOf(t, section, "share p=1 x4"); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("group row %q, want %q", got, want)
	}
	out.Reset()
	failed := group("sluice", 3000, 1.5, false)
	failed.Error = failed.Verify.err().Error() // as runBench records it
	err = writeComparison(&out, pairResults([]*result{failed}, "sluice", "reference"), "sluice", "reference")
	if !errors.Is(err, errCompareFailed) || !strings.Contains(out.String(), "FAILED sluice share p=1 x4") {
		t.Errorf("a failed by-key check passed the comparison: %v\n%s", err, out.String())
	}
}
