// Command sluice runs a Sluice broker: a Kafka-compatible message broker in
// one binary. With no flags it serves Kafka clients on 127.0.0.1:9092 with
// its data, and an embedded etcd, in ./sluice-data.
//
// "sluice dlq inspect|redrive" are admin commands for share groups'
// dead-letter topics (cmd/sluice/dlq.go); they talk to a running cluster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/sluicedev/sluice/broker"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "dlq" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		code := runDLQ(ctx, os.Args[2:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sluice:", err)
		os.Exit(1)
	}
}

// settingsFlag collects repeated --set name=value pairs.
type settingsFlag map[string]string

func (s settingsFlag) String() string { return "" }

func (s settingsFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want name=value, got %q", v)
	}
	s[strings.TrimSpace(k)] = strings.TrimSpace(val)
	return nil
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("sluice", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		nodeID     = fs.Int("node-id", 1, "this broker's node id, 0 or more (0 is a valid id, as in Kafka)")
		listen     = fs.String("listen", "127.0.0.1:9092", "Kafka listener host:port")
		advertise  = fs.String("advertise", "", "host:port given to clients in Metadata (default: the listener)")
		dataDir    = fs.String("data-dir", "sluice-data", "directory for partition logs and the embedded etcd")
		httpListen = fs.String("http-listen", "127.0.0.1:9644", "host:port for /metrics, /healthz and /readyz (empty disables)")
		etcd       = fs.String("etcd", "", "comma-separated endpoints of an external etcd (empty: start an embedded one)")
		etcdPrefix = fs.String("etcd-prefix", "/sluice", "key prefix for this cluster in etcd")
		embClient  = fs.String("embedded-etcd-client-addr", "127.0.0.1:2379", "embedded etcd client listener")
		embPeer    = fs.String("embedded-etcd-peer-addr", "127.0.0.1:2380", "embedded etcd peer listener")
		rack       = fs.String("rack", "", "rack id reported to clients")
		logLevel   = fs.String("log-level", "info", "debug, info, warn or error")
		logFormat  = fs.String("log-format", "text", "text or json")
		faults     = fs.Bool("test-fault-injection", false, "TESTS ONLY: let POST /debug/faults on the HTTP listener fail storage writes or fsyncs; never in production")
		sets       = settingsFlag{}
	)
	fs.Var(sets, "set", "broker setting under its Kafka name, name=value (repeatable), e.g. --set num.partitions=3")
	if err := applyEnv(fs); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *nodeID < 0 || *nodeID > math.MaxInt32 {
		return fmt.Errorf("--node-id %d: want 0 to %d", *nodeID, math.MaxInt32)
	}
	logger, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		return err
	}
	cfg := broker.Config{
		NodeID: int32(*nodeID), Listen: *listen, Advertise: *advertise, DataDir: *dataDir,
		HTTPListen: *httpListen, EtcdPrefix: *etcdPrefix, EmbeddedEtcdClientAddr: *embClient,
		EmbeddedEtcdPeerAddr: *embPeer, Rack: *rack, Settings: sets, Logger: logger,
		TestFaultInjection: *faults,
	}
	if *etcd != "" {
		cfg.Etcd = strings.Split(*etcd, ",")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	b, err := broker.New(ctx, cfg)
	if err != nil {
		return err
	}
	return b.Run(ctx)
}

// applyEnv sets every flag from SLUICE_<NAME> (dashes become underscores)
// before the command line is parsed, so flags win over the environment.
// SLUICE_SET takes comma-separated name=value pairs.
func applyEnv(fs *flag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		key := "SLUICE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v, ok := os.LookupEnv(key)
		if !ok || err != nil {
			return
		}
		if f.Name == "set" {
			for _, kv := range strings.Split(v, ",") {
				if kv = strings.TrimSpace(kv); kv != "" {
					if e := f.Value.Set(kv); e != nil {
						err = fmt.Errorf("%s: %w", key, e)
						return
					}
				}
			}
			return
		}
		if e := f.Value.Set(v); e != nil {
			err = fmt.Errorf("%s: %w", key, e)
		}
	})
	return err
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
}
