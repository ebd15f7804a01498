package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// TestBenchFloodMeasuresProbeAndRSS runs --mode flood against the
// in-process fake: the flood produces, the probe's records are timed, the
// RSS is sampled, and the comparison table has a flood section.
func TestBenchFloodMeasuresProbeAndRSS(t *testing.T) {
	t.Parallel()
	for _, producers := range []string{"0", "3"} {
		c, err := parseFlags([]string{"--fake", "--mode", "flood", "--producers", producers, "--probe-rate", "500",
			"--duration", "1500ms", "--record-size", "512", "--delete-topic", "--target", "sluice", "--label", "flood"}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		res, err := runBench(context.Background(), c, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("%s producers: runBench: %v (result %+v)", producers, err, res)
		}
		f, p := res.Flood, res.Produce
		if f == nil || p == nil {
			t.Fatalf("%s producers: flood %v produce %v", producers, f, p)
		}
		if f.ProbeRecords < 100 || f.Probe == nil || f.Probe.P99Ms <= 0 || f.RSSPeakMB <= 0 || f.RSSPeakMB < f.RSSStartMB {
			t.Errorf("%s producers: flood figures %+v probe %+v", producers, f, f.Probe)
		}
		if (producers == "0") != (p.Records == 0) {
			t.Errorf("%s producers: %d flood records", producers, p.Records)
		}
		var out bytes.Buffer
		ref := *res
		ref.Target = "reference"
		if err := writeComparison(&out, pairResults([]*result{res, &ref}, "sluice", "reference"), "sluice", "reference"); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "FLOOD") {
			t.Errorf("no flood section in the comparison:\n%s", out.String())
		}
	}
}

func TestBenchFloodFlagsAndRSSParse(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--fake", "--mode", "flood", "--records", "10"},
		{"--fake", "--mode", "flood", "--duration", "1s", "--rate", "10"},
		{"--fake", "--mode", "flood", "--duration", "1s", "--producers", "-1"},
		{"--fake", "--mode", "flood", "--duration", "1s", "--probe-rate", "0"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	got, err := parseRSS("Name:\tsluice\nVmPeak:\t  9 kB\nVmRSS:\t   123456 kB\nRssAnon:\t1 kB\n")
	if err != nil || got != 123456<<10 {
		t.Errorf("parseRSS: %d, %v", got, err)
	}
	if _, err := parseRSS("Name:\tx\n"); err == nil {
		t.Error("a status without VmRSS parsed")
	}
}
