package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTicksPerSecond is USER_HZ, the unit of utime and stime in
// /proc/PID/stat. Linux reports 100 on every architecture Go supports,
// whatever the kernel's internal HZ; reading it properly needs
// sysconf(_SC_CLK_TCK) through cgo, which this tool avoids.
const clockTicksPerSecond = 100

// errStatFormat means /proc/PID/stat did not look like the kernel's format.
var errStatFormat = errors.New("sluice-bench: unexpected /proc stat format")

// parseStatCPU returns utime+stime, in clock ticks, from the contents of a
// /proc/PID/stat file. The command name (field 2) is in parentheses and may
// itself hold spaces and parentheses, so fields are counted from the last
// ')'. After it come state (field 3) ... utime (14) and stime (15).
func parseStatCPU(stat []byte) (uint64, error) {
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, fmt.Errorf("%w: no ')' after the command name", errStatFormat)
	}
	fields := bytes.Fields(stat[end+1:])
	const utimeIdx, stimeIdx = 14 - 3, 15 - 3
	if len(fields) <= stimeIdx {
		return 0, fmt.Errorf("%w: %d fields after the command name", errStatFormat, len(fields))
	}
	utime, err := strconv.ParseUint(string(fields[utimeIdx]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: utime: %w", errStatFormat, err)
	}
	stime, err := strconv.ParseUint(string(fields[stimeIdx]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: stime: %w", errStatFormat, err)
	}
	return utime + stime, nil
}

// cpuReader reads the CPU time a process has used so far. A zero pid means
// this process ("self").
type cpuReader struct {
	path string
}

func newCPUReader(pid int) cpuReader {
	if pid == 0 {
		return cpuReader{path: "/proc/self/stat"}
	}
	return cpuReader{path: "/proc/" + strconv.Itoa(pid) + "/stat"}
}

// Read returns user plus system CPU time, at 10 ms resolution.
func (r cpuReader) Read() (time.Duration, error) {
	b, err := os.ReadFile(r.path)
	if err != nil {
		return 0, fmt.Errorf("read cpu time: %w", err)
	}
	ticks, err := parseStatCPU(b)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", r.path, err)
	}
	return time.Duration(ticks) * time.Second / clockTicksPerSecond, nil
}

// cpuSpan measures CPU used between start and stop. A failed read leaves
// err set and the span reporting nothing, rather than failing the benchmark.
type cpuSpan struct {
	r      cpuReader
	before time.Duration
	err    error
}

func startCPUSpan(r cpuReader) *cpuSpan {
	s := &cpuSpan{r: r}
	s.before, s.err = r.Read()
	return s
}

// Stop returns the CPU time used since startCPUSpan.
func (s *cpuSpan) Stop() (time.Duration, error) {
	if s.err != nil {
		return 0, s.err
	}
	after, err := s.r.Read()
	if err != nil {
		return 0, err
	}
	return after - s.before, nil
}
