package metadata

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// DefaultEmbeddedStartTimeout bounds StartEmbedded when ctx has no deadline.
const DefaultEmbeddedStartTimeout = 30 * time.Second

// EmbeddedConfig configures StartEmbedded.
type EmbeddedConfig struct {
	// Dir holds etcd's data (WAL and snapshots), e.g. "<data-dir>/etcd".
	// Restarting on the same Dir keeps every key.
	Dir string
	// ClientAddr and PeerAddr are host:port listen addresses; port 0 picks a
	// free port (see Endpoints). Defaults: 127.0.0.1:2379 and 127.0.0.1:2380.
	ClientAddr, PeerAddr string
	// Name is the member name (default "sluice").
	Name string
	// Logger receives etcd's warnings and errors (nil: discard); etcd's info
	// and debug output is dropped.
	Logger *slog.Logger
}

// Embedded is a single-member etcd server running inside this process, for
// development, single-node deployments and tests.
type Embedded struct {
	etcd      *embed.Etcd
	endpoints []string
	closeOnce sync.Once
	closing   atomic.Bool // demotes the listener errors etcd logs while stopping
}

// StartEmbedded starts a single-member etcd and waits until it serves
// clients, or until ctx ends (DefaultEmbeddedStartTimeout if ctx has no
// deadline). A port already in use or a data dir held by another server is
// reported as an error naming the address or dir. Dir is created (mode
// 0700) if missing.
func StartEmbedded(ctx context.Context, cfg EmbeddedConfig) (*Embedded, error) {
	m := &Embedded{}
	ecfg, err := embedConfig(cfg, m.demote)
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultEmbeddedStartTimeout)
		defer cancel()
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("metadata: embedded etcd data dir: %w", err)
	}
	if err := checkDirFree(cfg.Dir); err != nil {
		return nil, err
	}
	e, err := embed.StartEtcd(ecfg)
	if err != nil {
		return nil, fmt.Errorf("metadata: start embedded etcd (dir %s, client %s, peer %s): %w",
			cfg.Dir, cfg.ClientAddr, cfg.PeerAddr, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("metadata: embedded etcd in %s failed while starting: %w", cfg.Dir, err)
	case <-ctx.Done():
		e.Close()
		return nil, fmt.Errorf("metadata: embedded etcd in %s not ready: %w", cfg.Dir, ctx.Err())
	}
	m.etcd = e
	for _, l := range e.Clients {
		m.endpoints = append(m.endpoints, "http://"+l.Addr().String())
	}
	if len(m.endpoints) == 0 {
		e.Close()
		return nil, errors.New("metadata: embedded etcd has no client listener")
	}
	return m, nil
}

// embedConfig builds etcd's configuration. demote decides which of etcd's
// warnings are routine (see Embedded.demote).
func embedConfig(cfg EmbeddedConfig, demote func(string, []slog.Attr) bool) (*embed.Config, error) {
	if cfg.Dir == "" {
		return nil, errors.New("metadata: embedded etcd needs a data dir")
	}
	if cfg.ClientAddr == "" {
		cfg.ClientAddr = "127.0.0.1:2379"
	}
	if cfg.PeerAddr == "" {
		cfg.PeerAddr = "127.0.0.1:2380"
	}
	if cfg.Name == "" {
		cfg.Name = "sluice"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	curl, err := url.Parse("http://" + cfg.ClientAddr)
	if err != nil {
		return nil, fmt.Errorf("metadata: embedded etcd client address %q: %w", cfg.ClientAddr, err)
	}
	purl, err := url.Parse("http://" + cfg.PeerAddr)
	if err != nil {
		return nil, fmt.Errorf("metadata: embedded etcd peer address %q: %w", cfg.PeerAddr, err)
	}
	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = cfg.Dir
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{*curl}, []url.URL{*curl}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{*purl}, []url.URL{*purl}
	ec.InitialCluster = ec.InitialClusterFromName(cfg.Name)
	ec.LogLevel = "warn"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(newZapLogger(log.With("component", "etcd"), zapWarn, demote))
	// A single member elects itself after a randomised election timeout;
	// with no peers to heartbeat, short ticks only make start-up faster
	// (about 0.2 s instead of up to 1 s with etcd's 100/1000 ms defaults).
	ec.TickMs, ec.ElectionMs = 20, 200
	// Sluice's metadata is small and changes rarely: a 2 GiB backend quota
	// (etcd's default, stated so it is visible) is ample, and snapshotting
	// every 10k entries keeps the WAL replayed at start-up short.
	ec.QuotaBackendBytes = 2 << 30
	ec.SnapshotCount = 10_000
	// Compact history older than an hour so the database does not grow with
	// every lease-scoped broker registration; watches resynchronise if they
	// fall behind a compaction.
	ec.AutoCompactionMode = embed.CompactorModePeriodic
	ec.AutoCompactionRetention = "1h"
	return ec, nil
}

// Endpoints returns the client URLs actually bound (with the real port when
// ClientAddr asked for port 0), ready for EtcdConfig.Endpoints.
func (m *Embedded) Endpoints() []string { return append([]string(nil), m.endpoints...) }

// Close stops the server and releases its listeners and data dir.
// Idempotent.
func (m *Embedded) Close() error {
	m.closeOnce.Do(func() {
		m.closing.Store(true)
		m.etcd.Close()
	})
	return nil
}

// demote reports whether an etcd warning is routine: one of the fixed
// start-up warnings of a single-member server without auth, or a
// "closed listener" complaint while Close is stopping the server.
func (m *Embedded) demote(msg string, attrs []slog.Attr) bool {
	for _, b := range benignEmbedded {
		if strings.HasPrefix(msg, b) {
			return true
		}
	}
	if !m.closing.Load() {
		return false
	}
	for _, a := range attrs {
		if a.Key == "error" && strings.Contains(strings.ToLower(a.Value.String()), "closed") {
			return true
		}
	}
	return false
}
