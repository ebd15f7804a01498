package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// errUsage marks a bad command line; main prints it with the usage hint.
var errUsage = errors.New("sluice-bench: usage")

// Modes for --mode.
const (
	modeProduce = "produce"
	modeConsume = "consume"
	modeBoth    = "both"
	modeFlood   = "flood"
	modeE2E     = "e2e"
	modeShare   = "share"
	modeGroup   = "group"
)

// maxMembers bounds --members.
const maxMembers = 1024

// Consumer isolation levels for --isolation.
const (
	readCommitted   = "read_committed"
	readUncommitted = "read_uncommitted"
)

// defaultDuration applies when neither --records nor --duration is given.
const defaultDuration = 10 * time.Second

// config is the parsed command line. Exactly one of the action fields
// (brokers/fake, serveFake, compare, freePorts) selects what the run does.
type config struct {
	// What to do.
	brokers   []string
	fake      bool
	serveFake string
	compare   string
	freePorts int
	// fakeReleaseMemory makes --serve-fake return deleted topics' heap to
	// the operating system (see releaseAfterDeletes).
	fakeReleaseMemory bool

	// Comparison table.
	subject, reference string

	// Workload.
	topic         string
	topicConfigs  map[string]string
	partitions    int32
	replication   int16
	recordSize    int
	acks          string // "1" or "all"
	records       int64
	duration      time.Duration
	rate          float64
	mode          string
	linger        time.Duration
	maxInflight   int
	idempotent    bool
	onePerRequest bool
	compression   string // producer batch codec: none, lz4 or zstd
	txnRecords    int    // records per transaction; 0: not transactional
	txnAbortEvery int    // abort every Nth transaction; 0: commit all
	txnTimeout    time.Duration
	isolation     string // consumer isolation level, readCommitted or readUncommitted
	deleteTopic   bool
	timeout       time.Duration

	// producers is --producers: with --mode flood the flooding producer
	// clients (default 64); with --mode produce or both the concurrent
	// idempotent or transactional producer clients (default 1), each
	// with its own producer id (and transactional id).
	producers int
	// members is --mode share/group's group members; group is the group
	// id (default: the topic's name and the mode).
	members int
	group   string

	// producerIndex is which of --producers a producer client is (0 to
	// producers-1); set on each client's copy of the config by the
	// produce phase, it picks the client's transactional id and its share
	// of --records.
	producerIndex int
	// probeRate is --mode flood's probe records a second.
	probeRate float64

	// Measurement and output.
	brokerPID     int
	jsonOut       bool
	label, target string
	maxP99        time.Duration
	verbose       bool

	// ratioTo names the cell (--label, same --target) whose produce
	// records/s, or with --mode e2e whose end-to-end latency, this cell's is
	// divided by in --compare; minRatio is the least acceptable quotient.
	ratioTo  string
	minRatio float64
}

// kvFlag collects repeated --topic-config name=value pairs.
type kvFlag map[string]string

func (f kvFlag) String() string {
	var parts []string
	for k, v := range f {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

func (f kvFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	k = strings.TrimSpace(k)
	if !ok || k == "" {
		return fmt.Errorf("want name=value, got %q", s)
	}
	f[k] = strings.TrimSpace(v)
	return nil
}

// parseFlags parses args (without the program name). Help output and flag
// errors go to stderr; a help request returns flag.ErrHelp.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	c := config{topicConfigs: kvFlag{}}
	fs := flag.NewFlagSet("sluice-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var brokers string
	var partitions, replication int
	fs.StringVar(&brokers, "brokers", "", "comma-separated seed brokers, host:port")
	fs.BoolVar(&c.fake, "fake", false, "start franz-go's kfake in this process and benchmark it (instead of --brokers)")
	fs.StringVar(&c.serveFake, "serve-fake", "", "only run kfake listening on host:port until SIGINT/SIGTERM")
	fs.BoolVar(&c.fakeReleaseMemory, "fake-release-memory", false, "--serve-fake: return the heap of deleted topics to the OS after each DeleteTopics")
	fs.StringVar(&c.compare, "compare", "", "print a comparison table from a file of --json results (one per line)")
	fs.IntVar(&c.freePorts, "free-ports", 0, "print this many free TCP ports on 127.0.0.1 and exit (for scripts)")
	fs.StringVar(&c.subject, "subject", "sluice", "--compare: the --target name of the broker under test")
	fs.StringVar(&c.reference, "reference", "reference", "--compare: the --target name of the reference broker")

	fs.StringVar(&c.topic, "topic", "", "topic name (default: a fresh sluice-bench-<time> topic)")
	fs.Var(kvFlag(c.topicConfigs), "topic-config", "topic config applied at creation, name=value (repeatable), e.g. flush.messages=1")
	fs.IntVar(&partitions, "partitions", 1, "partitions of a created topic")
	fs.IntVar(&replication, "replication-factor", 1, "replication factor of a created topic")
	fs.IntVar(&c.recordSize, "record-size", 1024, "bytes of value per record (no key, no headers)")
	fs.StringVar(&c.acks, "acks", "1", "1 (leader) or all")
	fs.Int64Var(&c.records, "records", 0, "records to produce (0: bounded by --duration)")
	fs.DurationVar(&c.duration, "duration", 0, "how long to produce (default 10s when --records is not set either)")
	fs.Float64Var(&c.rate, "rate", 0, "records per second to produce at (0: as fast as possible)")
	fs.StringVar(&c.mode, "mode", modeBoth, "produce, consume, both, flood (--producers clients flooding the broker beside a fixed-rate probe), e2e (produce at --rate while a consumer times each record end to end), share (produce keyed records, then consume them with a share group of --members, accepting every record) or group (the same with a classic consumer group, committing every poll)")
	fs.IntVar(&c.producers, "producers", 0, "--mode flood: producer clients, each as fast as the broker takes records (default 64; 0: the probe alone, on an idle broker). --mode produce/both with --idempotent or --txn-records: concurrent producer clients, each with its own producer id and transactional id (default 1)")
	fs.IntVar(&c.members, "members", 1, "--mode share/group: members of the share group or classic consumer group, each its own client")
	fs.StringVar(&c.group, "group", "", "--mode share/group: the group id (default: the topic name, a dash and the mode)")
	fs.Float64Var(&c.probeRate, "probe-rate", 1000, "--mode flood: records per second of the probe producer, timed end to end by the probe consumer")
	fs.DurationVar(&c.linger, "linger", 0, "producer linger per partition")
	fs.IntVar(&c.maxInflight, "max-inflight", 5, "produce requests in flight per broker connection")
	fs.BoolVar(&c.idempotent, "idempotent", false, "use the idempotent producer (acks=all only; in-flight then fixed at 5)")
	fs.BoolVar(&c.onePerRequest, "one-per-request", false, "one record per produce request (per partition), requests still pipelined")
	fs.StringVar(&c.compression, "compression", "none", "producer batch compression: none, lz4 or zstd (the broker validates every record inside)")
	fs.IntVar(&c.txnRecords, "txn-records", 0, "produce in transactions of this many records, committing each (0: no transactions; needs --acks all, implies --idempotent)")
	fs.IntVar(&c.txnAbortEvery, "txn-abort-every", 0, "with --txn-records: abort every Nth transaction instead of committing it (0: commit all)")
	fs.DurationVar(&c.txnTimeout, "txn-timeout", 10*time.Second, "with --txn-records: the producer's transaction timeout, after which the broker aborts a transaction a failed commit left open (so the consumer behind it can finish)")
	fs.StringVar(&c.isolation, "isolation", "", "consumer isolation level, read_committed or read_uncommitted (default: read_committed with --txn-records)")
	fs.BoolVar(&c.deleteTopic, "delete-topic", false, "delete the topic when done")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Minute, "give up on the whole benchmark after this long")

	fs.IntVar(&c.brokerPID, "broker-pid", 0, "pid of the broker process, to report its CPU time per record")
	fs.BoolVar(&c.jsonOut, "json", false, "print the result as one JSON object")
	fs.StringVar(&c.label, "label", "", "name of this benchmark cell, copied into the result")
	fs.StringVar(&c.target, "target", "", "name of the broker being measured, copied into the result")
	fs.DurationVar(&c.maxP99, "max-p99", 0, "fail the run if produce p99 latency is not below this (0: no check)")
	fs.StringVar(&c.ratioTo, "ratio-to", "", "--compare divides this cell's produce records/s (--mode e2e: its end-to-end latency) by that of the cell with this --label on the same --target")
	fs.Float64Var(&c.minRatio, "min-ratio", 0, "with --ratio-to: --compare fails the subject's cell if its records/s ratio is below this (0: no check)")
	fs.BoolVar(&c.verbose, "v", false, "log progress to stderr")

	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	producersSet := false
	fs.Visit(func(f *flag.Flag) { producersSet = producersSet || f.Name == "producers" })
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	for _, b := range strings.Split(brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			c.brokers = append(c.brokers, b)
		}
	}
	c.partitions, c.replication = int32(partitions), int16(replication)
	if c.acks == "-1" {
		c.acks = "all"
	}
	if c.records == 0 && c.duration == 0 {
		c.duration = defaultDuration
	}
	if c.onePerRequest {
		c.linger = 0
	}
	switch {
	case c.isolation != "":
	case c.txnRecords > 0:
		c.isolation = readCommitted
	default:
		c.isolation = readUncommitted
	}
	if err := c.validate(partitions, replication); err != nil {
		return config{}, fmt.Errorf("%w: %w", errUsage, err)
	}
	if err := c.resolveProducers(producersSet); err != nil {
		return config{}, fmt.Errorf("%w: %w", errUsage, err)
	}
	if c.txnRecords > 0 {
		c.idempotent = true // kgo's transactional producer is idempotent
	}
	return c, nil
}

// defaultFloodProducers is --producers for --mode flood when not given.
const defaultFloodProducers = 64

// resolveProducers applies --producers' per-mode default and checks it:
// more than one producer needs --mode produce or both, an idempotent or
// transactional producer (each client's records are then told apart by
// producer id in the consumed-records check) and no --rate.
func (c *config) resolveProducers(set bool) error {
	switch {
	case c.mode == modeFlood && !set:
		c.producers = defaultFloodProducers
		return nil
	case c.mode == modeFlood:
		return nil
	case !set:
		c.producers = 1
		return nil
	}
	switch {
	case c.mode != modeProduce && c.mode != modeBoth:
		return fmt.Errorf("--producers does not apply to --mode %s", c.mode)
	case c.producers < 1:
		return errors.New("--producers must be at least 1 with --mode produce or both")
	case c.producers > 1 && !c.idempotent && c.txnRecords == 0:
		return errors.New("--producers above 1 needs --idempotent or --txn-records (the check tells producers apart by producer id)")
	case c.producers > 1 && c.rate > 0:
		return errors.New("--producers above 1 runs unpaced; drop --rate")
	case c.producers > 1 && c.onePerRequest:
		return errors.New("--producers above 1 does not apply with --one-per-request")
	case c.records > 0 && c.records < int64(c.producers):
		return errors.New("--records must be at least --producers")
	}
	return nil
}

// validate checks the combination of flags; the raw ints are passed so that
// out-of-range values are caught before the narrowing conversions matter.
func (c *config) validate(partitions, replication int) error {
	actions := 0
	for _, set := range []bool{len(c.brokers) > 0 || c.fake, c.serveFake != "", c.compare != "", c.freePorts > 0} {
		if set {
			actions++
		}
	}
	switch {
	case actions == 0:
		return errors.New("need one of --brokers, --fake, --serve-fake, --compare or --free-ports")
	case actions > 1:
		return errors.New("--brokers/--fake, --serve-fake, --compare and --free-ports are mutually exclusive")
	case len(c.brokers) > 0 && c.fake:
		return errors.New("--brokers and --fake are mutually exclusive")
	case c.fake && c.brokerPID != 0:
		return errors.New("--broker-pid cannot be used with --fake: the broker runs in this process")
	}
	return c.validateWorkload(partitions, replication)
}

func (c *config) validateWorkload(partitions, replication int) error {
	switch {
	case partitions < 1 || partitions > 1<<20:
		return fmt.Errorf("--partitions %d out of range", partitions)
	case replication < 1 || replication > 1<<15-1:
		return fmt.Errorf("--replication-factor %d out of range", replication)
	case c.recordSize < 1 || c.recordSize > 64<<20:
		return fmt.Errorf("--record-size %d out of range [1, 64MiB]", c.recordSize)
	case c.acks != "1" && c.acks != "all":
		return fmt.Errorf("--acks %q: want 1 or all", c.acks)
	case c.records < 0 || c.duration < 0 || c.rate < 0 || c.linger < 0 || c.timeout < 0 || c.maxP99 < 0:
		return errors.New("--records, --duration, --rate, --linger, --timeout and --max-p99 cannot be negative")
	case c.mode != modeProduce && c.mode != modeConsume && c.mode != modeBoth && c.mode != modeFlood && c.mode != modeE2E &&
		c.mode != modeShare && c.mode != modeGroup:
		return fmt.Errorf("--mode %q: want produce, consume, both, flood, e2e, share or group", c.mode)
	case c.members < 1 || c.members > maxMembers:
		return fmt.Errorf("--members %d out of range [1, %d]", c.members, maxMembers)
	case (c.members > 1 || c.group != "") && c.mode != modeShare && c.mode != modeGroup:
		return errors.New("--members and --group apply to --mode share and group only")
	case c.mode == modeFlood && (c.duration <= 0 || c.records > 0 || c.rate > 0):
		return errors.New("--mode flood runs for --duration; --records and --rate do not apply")
	case c.producers < 0 || c.producers > 4096 || c.probeRate <= 0:
		return errors.New("--producers must be in [0, 4096] and --probe-rate positive")
	case c.compression != "none" && c.compression != "lz4" && c.compression != "zstd":
		return fmt.Errorf("--compression %q: want none, lz4 or zstd", c.compression)
	case c.mode == modeConsume && c.topic == "":
		return errors.New("--mode consume needs --topic")
	case c.maxInflight < 1:
		return fmt.Errorf("--max-inflight %d: need at least 1", c.maxInflight)
	case c.idempotent && c.acks != "all":
		return errors.New("--idempotent needs --acks all")
	case c.idempotent && c.maxInflight != 5:
		return errors.New("--idempotent fixes in-flight requests at 5; drop --max-inflight")
	case c.brokerPID < 0:
		return fmt.Errorf("--broker-pid %d out of range", c.brokerPID)
	}
	return c.validateTxn()
}

// validateTxn checks the transaction, isolation, end-to-end and ratio flags.
func (c *config) validateTxn() error {
	switch {
	case c.txnRecords < 0 || c.txnAbortEvery < 0:
		return errors.New("--txn-records and --txn-abort-every cannot be negative")
	case c.txnTimeout < time.Millisecond || c.txnTimeout > time.Duration(1<<31-1)*time.Millisecond:
		return fmt.Errorf("--txn-timeout %s out of range", c.txnTimeout)
	case c.txnRecords > 0 && c.acks != "all":
		return errors.New("--txn-records needs --acks all")
	case c.txnRecords > 0 && c.maxInflight != 5:
		return errors.New("--txn-records fixes in-flight requests at 5, as --idempotent does; drop --max-inflight")
	case c.txnRecords > 0 && (c.mode == modeConsume || c.mode == modeFlood || c.mode == modeShare || c.mode == modeGroup):
		return fmt.Errorf("--txn-records does not apply to --mode %s", c.mode)
	case c.txnAbortEvery > 0 && c.txnRecords == 0:
		return errors.New("--txn-abort-every needs --txn-records")
	case c.isolation != readCommitted && c.isolation != readUncommitted:
		return fmt.Errorf("--isolation %q: want %s or %s", c.isolation, readCommitted, readUncommitted)
	case c.mode == modeE2E && c.rate <= 0:
		return errors.New("--mode e2e needs --rate")
	case c.mode == modeE2E && c.recordSize < stampSize:
		return fmt.Errorf("--mode e2e needs --record-size of at least %d (a timestamp and a sequence number)", stampSize)
	case c.minRatio < 0 || (c.minRatio > 0 && c.ratioTo == ""):
		return errors.New("--min-ratio must be positive and needs --ratio-to")
	case c.minRatio > 0 && c.mode == modeE2E:
		return errors.New("--min-ratio bounds a records/s ratio; --mode e2e compares latency")
	case c.ratioTo != "" && c.ratioTo == c.label:
		return errors.New("--ratio-to names this cell itself")
	}
	return nil
}
