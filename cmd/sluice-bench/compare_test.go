package main

import (
	"bytes"
	"errors"
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
