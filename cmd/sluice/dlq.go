package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sluicedev/sluice/dlq"
)

// Exit codes of the dlq subcommands.
const (
	exitOK    = 0
	exitError = 1 // the cluster could not be reached, a request failed
	exitUsage = 2 // bad flags or arguments
)

const dlqUsage = `usage: sluice dlq inspect|redrive [flags] <dlq-topic>

  inspect   count a share group's dead-letter records by reason, source topic
            and age, and list them with their headers
  redrive   move the selected records back to their source topic-partitions,
            each exactly once even if interrupted and run again with the
            same selection (runs with other filters are independent)

Run "sluice dlq inspect -h" or "sluice dlq redrive -h" for the flags.
`

// usageError is a mistake on the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// runDLQ runs "sluice dlq ..." and returns the process exit code.
func runDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := dlqCommand(ctx, args, stdout, stderr)
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "sluice dlq:", err)
		return exitUsage
	default:
		fmt.Fprintln(stderr, "sluice dlq:", err)
		return exitError
	}
}

// dlqFlags are the flags both subcommands share.
type dlqFlags struct {
	brokers   string
	format    string
	sel       dlq.Selection
	reason    string
	timeout   time.Duration
	verbosity string
}

func (f *dlqFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.brokers, "brokers", "127.0.0.1:9092", "comma-separated seed brokers host:port")
	fs.StringVar(&f.format, "format", "table", "output: table or json")
	fs.StringVar(&f.sel.SourceTopic, "source-topic", "", "only records dead-lettered from this topic")
	fs.StringVar(&f.reason, "reason", "", "only records of this reason: rejected, delivery_limit or unknown")
	fs.StringVar(&f.sel.Group, "group", "", "only records of this share group")
	fs.Int64Var(&f.sel.FromOffset, "from-offset", 0, "only dead-letter offsets at or above this (every partition)")
	fs.Int64Var(&f.sel.UntilOffset, "until-offset", 0, "only dead-letter offsets below this (0: no bound)")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Minute, "give up after this long")
	fs.StringVar(&f.verbosity, "log-level", "warn", "debug, info, warn or error (to stderr)")
}

func (f *dlqFlags) parse(fs *flag.FlagSet, args []string, stderr io.Writer) (string, dlq.Config, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", dlq.Config{}, err
		}
		return "", dlq.Config{}, &usageError{err.Error()}
	}
	if fs.NArg() != 1 {
		return "", dlq.Config{}, &usageError{"want exactly one dead-letter topic after the flags"}
	}
	if f.format != "table" && f.format != "json" {
		return "", dlq.Config{}, &usageError{fmt.Sprintf("--format %q: want table or json", f.format)}
	}
	f.sel.Reason = dlq.Reason(f.reason)
	if err := f.sel.Validate(); err != nil {
		return "", dlq.Config{}, &usageError{err.Error()}
	}
	logger, err := newLogger(stderr, f.verbosity, "text")
	if err != nil {
		return "", dlq.Config{}, &usageError{err.Error()}
	}
	var brokers []string
	for _, b := range strings.Split(f.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	if len(brokers) == 0 {
		return "", dlq.Config{}, &usageError{"--brokers is empty"}
	}
	return fs.Arg(0), dlq.Config{Brokers: brokers, Logger: logger}, nil
}

func dlqCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, dlqUsage)
		if len(args) == 0 {
			return &usageError{"no subcommand"}
		}
		return nil
	}
	var f dlqFlags
	fs := flag.NewFlagSet("sluice dlq "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.register(fs)
	switch args[0] {
	case "inspect":
		limit := fs.Int("limit", dlq.DefaultListLimit, fmt.Sprintf("records to list (at most %d; -1 for none)", dlq.MaxListLimit))
		topic, cfg, err := f.parse(fs, args[1:], stderr)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, f.timeout)
		defer cancel()
		s, err := dlq.Inspect(ctx, cfg, topic, dlq.InspectOptions{Selection: f.sel, Limit: *limit})
		if err != nil {
			return err
		}
		return writeSummary(stdout, f.format, s)
	case "redrive":
		fs.IntVar(&f.sel.Max, "max", 0, "move at most this many records in this run (0: all)")
		topic, cfg, err := f.parse(fs, args[1:], stderr)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, f.timeout)
		defer cancel()
		var progress func([]dlq.Record)
		if f.format == "table" {
			progress = func(moved []dlq.Record) { fmt.Fprintf(stderr, "moved %d records\n", len(moved)) }
		}
		res, err := dlq.Redrive(ctx, cfg, topic, dlq.RedriveOptions{Selection: f.sel, OnCommitted: progress})
		if werr := writeRedrive(stdout, f.format, res); werr != nil && err == nil {
			err = werr
		}
		return err
	default:
		fmt.Fprint(stderr, dlqUsage)
		return &usageError{fmt.Sprintf("unknown subcommand %q", args[0])}
	}
}

func writeSummary(w io.Writer, format string, s dlq.Summary) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "topic\t%s\n", s.Topic)
	fmt.Fprintf(tw, "records\t%d\t(unroutable %d, pointers without a copy %d)\n", s.Total, s.Unroutable, s.WithoutCopy)
	if s.Total > 0 {
		fmt.Fprintf(tw, "oldest\t%s\n", s.Oldest.UTC().Format(time.RFC3339))
		fmt.Fprintf(tw, "newest\t%s\n", s.Newest.UTC().Format(time.RFC3339))
	}
	writeCounts(tw, "by reason", stringKeys(s.ByReason))
	writeCounts(tw, "by source topic", s.BySourceTopic)
	writeCounts(tw, "by age", s.ByAge)
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(s.Records) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tOFFSET\tTIMESTAMP\tSOURCE\tGROUP\tDELIVERIES\tREASON\tKEY\tVALUE\tOTHER HEADERS")
	for _, r := range s.Records {
		src := fmt.Sprintf("%s/%d/%d", r.SourceTopic, r.SourcePartition, r.SourceOffset)
		if r.Problem != "" {
			src = "(" + r.Problem + ")"
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", r.Partition, r.Offset,
			r.Timestamp.UTC().Format(time.RFC3339), src, r.Group, r.DeliveryCount, r.Reason,
			preview(r.Key, r.KeyBytes), preview(r.Value, r.ValueBytes), otherHeaders(r.Headers))
	}
	if s.Truncated {
		fmt.Fprintf(tw, "...\t(%d more; raise --limit)\n", s.Total-len(s.Records))
	}
	return tw.Flush()
}

func writeRedrive(w io.Writer, format string, r dlq.RedriveResult) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	state := "reached the end"
	if !r.Done {
		state = "stopped before the end (--max, an error or the timeout); run again to continue"
	}
	_, err := fmt.Fprintf(w, "redrive %s: moved %d, skipped %d (not selected), unmovable %d; %s\n",
		r.ID, r.Moved, r.Skipped, r.Unmovable, state)
	return err
}

func writeCounts(w io.Writer, title string, m map[string]int) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "%s\t%s\t%d\n", title, k, m[k])
		title = ""
	}
}

func stringKeys(m map[dlq.Reason]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[string(k)] = v
	}
	return out
}

// preview shows up to 24 bytes of b (n bytes long), quoted.
func preview(b []byte, n int) string {
	if b == nil {
		return "-"
	}
	if len(b) > 24 {
		return fmt.Sprintf("%q...(%d B)", b[:24], n)
	}
	return fmt.Sprintf("%q", b)
}

func otherHeaders(hs []dlq.Header) string {
	var parts []string
	for _, h := range hs {
		if !strings.HasPrefix(h.Key, dlq.HeaderPrefix) {
			parts = append(parts, h.Key+"="+h.Value)
		}
	}
	return strings.Join(parts, ",")
}
