package broker

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"
)

// Config is everything a Broker needs to start. cmd/sluice fills it from
// flags and SLUICE_* environment variables; tests fill it directly.
type Config struct {
	// NodeID is this broker's Kafka node id. As in Kafka, any id from 0
	// up is valid, 0 included, so the zero value is node 0, not "unset";
	// a negative id is refused by New.
	NodeID int32
	// Listen is the Kafka listener's host:port (default 127.0.0.1:9092).
	// Port 0 picks a free port; Addr reports the one bound.
	Listen string
	// Advertise is the host:port Metadata gives clients; empty means the
	// bound listener address.
	Advertise string
	// DataDir holds the partition logs and, when etcd is embedded, its data.
	DataDir string
	// HTTPListen serves /metrics, /healthz and /readyz; empty disables it.
	HTTPListen string
	// Etcd lists the endpoints of an external etcd; empty starts an
	// embedded single-member etcd inside DataDir.
	Etcd []string
	// EtcdPrefix namespaces every key this cluster writes (default /sluice).
	EtcdPrefix string
	// EmbeddedEtcdClientAddr and EmbeddedEtcdPeerAddr are the embedded
	// etcd's listeners (defaults 127.0.0.1:2379 and 127.0.0.1:2380).
	EmbeddedEtcdClientAddr string
	EmbeddedEtcdPeerAddr   string
	// Rack is reported in Metadata and used by rack-aware assignment.
	Rack string
	// Settings are broker settings under their Kafka names
	// (num.partitions, log.retention.hours, ...). Unknown names are an
	// error at start-up.
	Settings map[string]string
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// ShutdownTimeout bounds how long Run waits for in-flight requests
	// after its context ends (default 10s).
	ShutdownTimeout time.Duration
	// RequestReadTimeout bounds how long a client may take to send the
	// rest of a request frame once its first byte has arrived (default
	// 30s, the request.timeout.ms of Kafka's clients); the connection is
	// closed when it runs out. Kafka has no such bound; without one a
	// frame that stops half way would hold its share of
	// queued.max.request.bytes until connections.max.idle.ms.
	RequestReadTimeout time.Duration
	// TestFaultInjection is for tests only: the partition logs run on an
	// error-injecting file system that POST /debug/faults on the HTTP
	// listener arms (logdir.go), so process-level tests can fail a real
	// broker's fsync or fill its disk. Never set it in production.
	TestFaultInjection bool
}

func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:9092"
	}
	if c.DataDir == "" {
		c.DataDir = "sluice-data"
	}
	if c.EtcdPrefix == "" {
		c.EtcdPrefix = "/sluice"
	}
	if c.EmbeddedEtcdClientAddr == "" {
		c.EmbeddedEtcdClientAddr = "127.0.0.1:2379"
	}
	if c.EmbeddedEtcdPeerAddr == "" {
		c.EmbeddedEtcdPeerAddr = "127.0.0.1:2380"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.RequestReadTimeout == 0 {
		c.RequestReadTimeout = 30 * time.Second
	}
	if c.Settings == nil {
		c.Settings = map[string]string{}
	}
}

// splitHostPort parses an advertised address into what Metadata reports.
func splitHostPort(addr string) (string, int32, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: %w", addr, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: bad port: %w", addr, err)
	}
	return host, int32(p), nil
}
