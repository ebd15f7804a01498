package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, err)
		fmt.Fprintln(os.Stderr, "run sluice-bench -h for the flags")
		os.Exit(2)
	default:
		msg := err.Error()
		if !strings.HasPrefix(msg, "sluice-bench:") {
			msg = "sluice-bench: " + msg
		}
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(1)
	}
}

// run parses args and does what they ask. A benchmark prints its result on
// stdout (JSON with --json) even when it fails, and then returns the error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	switch {
	case c.serveFake != "":
		return serveFake(ctx, c.serveFake, c.fakeReleaseMemory, stderr)
	case c.compare != "":
		return compareFile(c.compare, c.subject, c.reference, stdout)
	case c.freePorts > 0:
		return freePorts(c.freePorts, stdout)
	}
	level := slog.LevelWarn
	if c.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	res, benchErr := runBench(ctx, c, log)
	if c.jsonOut {
		err = writeJSON(stdout, res)
		fmt.Fprintln(stderr, summary(res))
	} else {
		err = writeText(stdout, res)
	}
	if benchErr != nil {
		return benchErr
	}
	if err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return nil
}
