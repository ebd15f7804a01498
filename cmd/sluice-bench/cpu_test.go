package main

import (
	"errors"
	"os"
	"testing"
)

func TestCPUParseStat(t *testing.T) {
	t.Parallel()
	// Fields after the command name: state ppid pgrp session tty tpgid flags
	// minflt cminflt majflt cmajflt utime stime ...
	tail := " S 1 2 3 4 5 6 7 8 9 10 1234 567 11 12 20 0 1 0 100 200 300"
	tests := []struct {
		name    string
		stat    string
		want    uint64
		wantErr bool
	}{
		{"plain", "4242 (sluice)" + tail, 1801, false},
		{"spaces and parens in name", "4242 (a) b (c) d)" + tail, 1801, false},
		{"no name", "4242 sluice" + tail, 0, true},
		{"truncated", "4242 (sluice) S 1 2 3", 0, true},
		{"non-numeric utime", "4242 (sluice) S 1 2 3 4 5 6 7 8 9 10 x 567 11", 0, true},
		{"empty", "", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseStatCPU([]byte(tt.stat))
			if tt.wantErr {
				if !errors.Is(err, errStatFormat) {
					t.Fatalf("got %d, %v; want errStatFormat", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestCPUReadSelf(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc on this system")
	}
	span := startCPUSpan(newCPUReader(0))
	if d, err := span.Stop(); err != nil || d < 0 {
		t.Fatalf("self cpu span: %s, %v", d, err)
	}
	if _, err := newCPUReader(os.Getpid()).Read(); err != nil {
		t.Fatalf("read own pid: %v", err)
	}
	if _, err := newCPUReader(1 << 30).Read(); err == nil {
		t.Fatal("reading a pid that cannot exist succeeded")
	}
}
