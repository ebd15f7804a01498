package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicedev/sluice/coordinator/group"
	"github.com/sluicedev/sluice/coordinator/sharestate"
	"github.com/sluicedev/sluice/coordinator/txn"
	"github.com/sluicedev/sluice/metadata"
	"github.com/sluicedev/sluice/protocol"
	"github.com/sluicedev/sluice/storage"
	"github.com/sluicedev/sluice/storage/vfs"
)

// Broker is one Sluice node: a Kafka listener, the partition logs in its data
// directory, and its view of the cluster's metadata in etcd.
type Broker struct {
	cfg      Config
	log      *slog.Logger
	settings *settings
	table    *apiTable
	metrics  *metrics
	// txnMetrics are the transaction series of the request path.
	txnMetrics *txnMetrics
	registry   *prometheus.Registry
	codecs     *protocol.Codecs
	clusterID  string

	embedded *metadata.Embedded // nil with an external etcd
	meta     metadata.Store
	reg      atomic.Pointer[metadata.Registration] // replaced by keepRegistered
	regInfo  metadata.Broker                       // what reg registered
	regTTL   time.Duration
	store    *storage.Store
	topics   *topicTable
	// topicLocks orders the changes of each topic (topics.go).
	topicLocks nameLocks
	brokers    *brokerCache
	coord      *group.Coordinator
	txn        *txn.Coordinator
	// shares are the share-partitions led here and the share sessions
	// (share_fetch.go).
	shares     *shareManager
	shareState *sharestate.Coordinator // the share coordinator (share_state.go)
	// peers carries control requests to other brokers (transaction
	// markers and verifications).
	peers  *peerPool
	quotas *quotaService
	lock   *os.File // flock on the data directory

	// groupCfg holds the GROUP config resource (group_config.go);
	// features the finalized feature levels (features.go).
	groupCfg *groupConfigs
	features *featureLevels

	ln       net.Listener
	httpLn   net.Listener
	httpSrv  *http.Server
	host     string
	port     int32
	producer *producerIDs

	goroutines goroutines
	hooks      connHooks // fault injection by tests in this package
	// connCount admits connections within max.connections and
	// max.connections.per.ip; queued bounds the requests and request
	// bytes held at once (queued.max.requests, queued.max.request.bytes).
	connCount *connCounter
	queued    struct{ requests, bytes *budget }
	conns     struct {
		sync.Mutex
		set map[net.Conn]struct{}
	}
	closeOnce sync.Once
	closeErr  error

	// isController and controllerNode track the etcd controller election.
	isController   atomic.Bool
	controllerNode atomic.Int32

	// Replication: the partition records, the follower fetchers, the
	// serialization of leadership transitions, and the controller's
	// wake-up signal.
	pstates        *partitionStates
	fetchers       *fetcherTable
	fetchSessions  *fetchSessionCache
	fetchMaxBytes  int // fetch.max.bytes, resolved once (read-only)
	transitions    sync.Mutex
	clusterChanged chan struct{}
	shuttingDown   atomic.Bool
	// leaving is set once the broker has given up its registration on
	// the way out; it is not registered again.
	leaving atomic.Bool

	// logDir is the data directory's health (logdir.go); faults is the
	// error-injecting file system of Config.TestFaultInjection, else nil.
	logDir *logDirHealth
	faults *vfs.ErrorFS

	// dlq writes share groups' dead letters (share_dlq.go).
	dlq *deadLetterWriter

	// bg is the context of the broker's background work; stopBG ends it.
	bg     context.Context
	stopBG context.CancelFunc
}

// New starts everything but the serving loops: it locks the data directory,
// starts or connects to etcd, opens the partition logs and binds the
// listeners, so that start-up errors (port taken, unreadable data directory,
// etcd unreachable) surface here, before Run.
func New(ctx context.Context, cfg Config) (*Broker, error) {
	cfg.setDefaults()
	if cfg.NodeID < 0 {
		return nil, fmt.Errorf("node id %d: must be 0 or more", cfg.NodeID)
	}
	for _, k := range []string{"node.id", "broker.id"} {
		// Accepted for Kafka-style configuration, but the id is NodeID:
		// a different value would be silently ignored, so refuse it.
		if v, ok := cfg.Settings[k]; ok && v != strconv.Itoa(int(cfg.NodeID)) {
			return nil, fmt.Errorf("broker setting %s=%s differs from the node id %d (--node-id)", k, v, cfg.NodeID)
		}
	}
	st, err := newSettings(cfg.Settings)
	if err != nil {
		return nil, err
	}
	b := &Broker{cfg: cfg, log: cfg.Logger.With("node", cfg.NodeID), settings: st, codecs: protocol.NewCodecs(),
		groupCfg: newGroupConfigs(), features: newFeatureLevels()}
	b.conns.set = map[net.Conn]struct{}{}
	b.controllerNode.Store(-1)
	b.bg, b.stopBG = context.WithCancel(context.Background())
	b.pstates = newPartitionStates()
	b.fetchers = newFetcherTable(b)
	b.fetchSessions = newBrokerFetchSessions(st, cfg.NodeID)
	b.fetchMaxBytes = int(st.brokerInt64("fetch.max.bytes", 57671680))
	b.clusterChanged = make(chan struct{}, 1)
	b.table = b.apis()
	b.connCount = newConnCounter()
	lim := st.limits.Load()
	b.queued.requests = newBudget(int64(lim.queuedRequests), 0, 0)
	b.queued.bytes = newBudget(lim.queuedBytes, smallFrame, max(lim.queuedBytes/16, smallFrame))
	b.registry = prometheus.NewRegistry()
	b.metrics = newMetrics(b.registry, b)
	b.registry.MustRegister(newStateCollector(b))
	b.txnMetrics = newTxnMetrics(b.registry)
	b.registry.MustRegister(newTxnCollector(b))
	b.registry.MustRegister(b.fetchSessions.collectors()...)
	b.shares = newShareManager(b)
	b.logDir = newLogDirHealth()
	b.registry.MustRegister(newLogDirCollector(b))
	b.dlq = newDeadLetterWriter(b, newDLQMetrics(b.registry))
	b.startQuotas()
	if err := b.start(ctx); err != nil {
		_ = b.Close()
		return nil, err
	}
	return b, nil
}

func (b *Broker) start(ctx context.Context) error {
	if err := b.lockDataDir(); err != nil {
		return err
	}
	incarnation, err := b.loadIdentity()
	if err != nil {
		return err
	}
	if err := b.startMetadata(ctx); err != nil {
		return err
	}
	store, err := storage.OpenStore(b.cfg.DataDir, storage.StoreOptions{
		Logger:   b.log,
		FS:       b.storageFS(),
		OnFence:  b.onLogFenced,
		Ignore:   []string{"etcd"},
		Filter:   protocol.RecordFilter{Codecs: b.codecs, MaxSize: maxDecodedBatch},
		OnSync:   b.metrics.observeFsync,
		Interval: time.Duration(b.settings.brokerInt64("log.flush.scheduler.interval.ms", 1000)) * time.Millisecond,
		// Retention as Kafka: every log.retention.check.interval.ms.
		RetentionInterval: b.settings.brokerMillis("log.retention.check.interval.ms", 300000),
	})
	if err != nil {
		return fmt.Errorf("open data directory %s: %w", b.cfg.DataDir, err)
	}
	b.store = store
	b.topics = newTopicTable()
	b.brokers = newBrokerCache()
	// Dynamic broker settings (altered through any broker, kept in etcd)
	// apply from the start; watchBrokerConfigs keeps them current.
	if err := b.reloadDynamicConfigs(ctx); err != nil {
		return fmt.Errorf("dynamic broker configs: %w", err)
	}
	if err := b.loadGroupConfigs(ctx); err != nil {
		return err
	}
	if err := b.loadFeatures(ctx); err != nil {
		return err
	}
	if err := b.listen(); err != nil {
		return err
	}
	b.peers = newPeerPool(b.cfg.NodeID)
	if b.coord, err = b.newCoordinator(); err != nil {
		return fmt.Errorf("group coordinator: %w", err)
	}
	if b.txn, err = b.newTxnCoordinator(); err != nil {
		return fmt.Errorf("transaction coordinator: %w", err)
	}
	if b.shareState, err = b.newShareStateCoordinator(); err != nil {
		return fmt.Errorf("share coordinator: %w", err)
	}
	if err := b.loadTopics(ctx); err != nil {
		return err
	}
	b.producer = newProducerIDs(b.meta)
	b.regInfo = metadata.Broker{NodeID: b.cfg.NodeID, Host: b.host, Port: b.port, Rack: b.cfg.Rack, Incarnation: incarnation}
	b.regTTL = time.Duration(b.settings.brokerInt64("broker.session.timeout.ms", 9000)) * time.Millisecond
	reg, err := b.meta.RegisterBroker(ctx, b.regInfo, b.regTTL)
	if err != nil {
		return fmt.Errorf("register broker %d: %w", b.cfg.NodeID, err)
	}
	b.reg.Store(reg)
	live, err := b.meta.Brokers(ctx)
	if err != nil {
		return fmt.Errorf("list brokers: %w", err)
	}
	for _, br := range live {
		b.brokers.put(br)
	}
	return b.loadPartitionStates(ctx)
}

// registrationEpoch is this broker's epoch: the etcd revision of its
// registration (0 before it registered).
func (b *Broker) registrationEpoch() int64 {
	if reg := b.reg.Load(); reg != nil {
		return reg.Epoch()
	}
	return 0
}

// fenced reports that this broker's lease may have expired on the etcd
// server (no renewal was confirmed within the TTL), so the controller may
// already have elected another leader. Such a leader refuses what only the
// lease protects: acks=0/1 produces (see docs/DESIGN.md, "etcd outages");
// acks=all and reads stay safe through the ISR protocol alone.
func (b *Broker) fenced() bool {
	reg := b.reg.Load()
	return reg != nil && time.Now().After(reg.ValidUntil())
}

// awaitReelection holds back serving, up to timeout, while partitions this
// broker led before it restarted wait for the controller to elect their
// leader again at a new epoch (this broker never resumes an old one).
// Clients that connect meanwhile wait in the listen backlog instead of
// being told NOT_LEADER_OR_FOLLOWER, which makes a restarted single broker
// usable at once.
func (b *Broker) awaitReelection(ctx context.Context, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		stale := 0
		for _, st := range b.pstates.all() {
			if st.Leader == b.cfg.NodeID && st.Revision <= b.registrationEpoch() {
				stale++
			}
		}
		if stale == 0 {
			return
		}
		sleepCtx(ctx, 10*time.Millisecond)
	}
}

// bgCtx is the context of background work; it ends at shutdown.
func (b *Broker) bgCtx() context.Context { return b.bg }

func (b *Broker) lockDataDir() error {
	if err := os.MkdirAll(b.cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data directory %s: %w", b.cfg.DataDir, err)
	}
	f, err := os.OpenFile(filepath.Join(b.cfg.DataDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("data directory %s: %w", b.cfg.DataDir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("data directory %s is in use by another process: %w", b.cfg.DataDir, err)
	}
	b.lock = f
	return nil
}

func (b *Broker) startMetadata(ctx context.Context) error {
	endpoints := b.cfg.Etcd
	if len(endpoints) == 0 {
		emb, err := metadata.StartEmbedded(ctx, metadata.EmbeddedConfig{
			Dir:        filepath.Join(b.cfg.DataDir, "etcd"),
			ClientAddr: b.cfg.EmbeddedEtcdClientAddr,
			PeerAddr:   b.cfg.EmbeddedEtcdPeerAddr,
			Name:       "sluice-" + strconv.Itoa(int(b.cfg.NodeID)),
			Logger:     b.log,
		})
		if err != nil {
			return fmt.Errorf("start embedded etcd: %w", err)
		}
		b.embedded = emb
		endpoints = emb.Endpoints()
	}
	meta, err := metadata.NewEtcd(ctx, metadata.EtcdConfig{
		Endpoints: endpoints, Prefix: b.cfg.EtcdPrefix, DialTimeout: 5 * time.Second, Logger: b.log,
		// A dead controller is replaced as fast as a dead broker is noticed.
		SessionTTL: b.settings.brokerMillis("broker.session.timeout.ms", 9000),
	})
	if err != nil {
		return fmt.Errorf("connect to etcd %v: %w", endpoints, err)
	}
	b.meta = meta
	id, err := meta.ClusterID(ctx)
	if err != nil {
		return fmt.Errorf("read cluster id: %w", err)
	}
	b.clusterID = id
	return nil
}

func (b *Broker) listen() error {
	ln, err := net.Listen("tcp", b.cfg.Listen)
	if err != nil {
		return fmt.Errorf("kafka listener %s: %w", b.cfg.Listen, err)
	}
	b.ln = ln
	adv := b.cfg.Advertise
	if adv == "" {
		adv = ln.Addr().String()
	}
	if b.host, b.port, err = splitHostPort(adv); err != nil {
		return fmt.Errorf("advertised address: %w", err)
	}
	if b.cfg.HTTPListen != "" {
		hl, err := net.Listen("tcp", b.cfg.HTTPListen)
		if err != nil {
			return fmt.Errorf("http listener %s: %w", b.cfg.HTTPListen, err)
		}
		b.httpLn = hl
	}
	return nil
}

// Addr is the bound Kafka listener address.
func (b *Broker) Addr() string { return b.ln.Addr().String() }

// HTTPAddr is the bound metrics/health address, or "" when disabled.
func (b *Broker) HTTPAddr() string {
	if b.httpLn == nil {
		return ""
	}
	return b.httpLn.Addr().String()
}

// Registry is the broker's own Prometheus registry (two brokers can share a
// process, as tests need).
func (b *Broker) Registry() *prometheus.Registry { return b.registry }

// Run serves clients until ctx ends, then shuts down gracefully: it stops
// accepting, lets in-flight requests finish (bounded by ShutdownTimeout),
// flushes the logs and closes etcd. It returns nil after a clean shutdown.
func (b *Broker) Run(ctx context.Context) error {
	serveCtx, cancelServe := b.bg, b.stopBG
	defer cancelServe()
	b.goroutines.Go("storage", func() { b.store.Run(serveCtx) })
	b.goroutines.Go("topic-watch", func() { b.watchTopics(serveCtx) })
	b.goroutines.Go("broker-config-watch", func() { b.watchBrokerConfigs(serveCtx) })
	b.goroutines.Go("group-config-watch", func() { b.watchGroupConfigs(serveCtx) })
	b.goroutines.Go("feature-watch", func() { b.watchFeatures(serveCtx) })
	b.goroutines.Go("broker-watch", func() { b.watchBrokers(serveCtx) })
	b.goroutines.Go("partition-watch", func() { b.watchPartitions(serveCtx) })
	b.goroutines.Go("quota-watch", func() { b.watchQuotas(serveCtx) })
	b.goroutines.Go("replica-ticker", func() { b.tickReplicas(serveCtx) })
	b.goroutines.Go("controller-campaign", func() { b.campaign(serveCtx) })
	b.goroutines.Go("controller-watch", func() { b.watchController(serveCtx) })
	b.goroutines.Go("log-dir-failure", func() { b.handleLogDirFailure(serveCtx) })
	b.goroutines.Go("partition-open-retry", func() { b.retryOpens(serveCtx) })
	b.awaitReelection(ctx, 5*time.Second)
	b.goroutines.Go("accept", func() { b.acceptLoop(serveCtx) })
	if b.httpLn != nil {
		b.serveHTTP()
	}
	b.log.Info("broker started", "listen", b.Addr(), "advertise", net.JoinHostPort(b.host, strconv.Itoa(int(b.port))), "cluster", b.clusterID)

	b.goroutines.Go("registration", func() { b.keepRegistered(serveCtx) })

	var runErr error
	<-ctx.Done()
	b.log.Info("shutting down")
	if b.settings.brokerBool("controlled.shutdown.enable") {
		b.controlledShutdown(b.settings.brokerMillis("controlled.shutdown.timeout.ms", 10000))
	}
	b.ln.Close()
	b.leaveCluster()
	b.drainConns(cancelServe)
	if err := b.Close(); err != nil && runErr == nil {
		runErr = err
	}
	b.log.Info("broker stopped", "err", runErr)
	return runErr
}

// drainConns stops reading new requests on every connection, waits for the
// in-flight ones to be answered, then cancels whatever is still waiting
// (long-poll fetches end early with what they have).
func (b *Broker) drainConns(cancel context.CancelFunc) {
	b.quotas.endMutes()
	done := make(chan struct{})
	go func() { // not tracked: it only waits for the tracked ones
		b.goroutines.close()
		b.waitConns()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(b.cfg.ShutdownTimeout):
	}
	cancel()
	<-done
}

// waitConns waits until every connection has closed. It sets an expired
// read deadline on each one on every pass, so a connection accepted or
// re-armed (each request sets a fresh idle deadline) after shutdown began
// still stops reading at its next frame boundary.
func (b *Broker) waitConns() {
	for {
		b.conns.Lock()
		n := len(b.conns.set)
		for c := range b.conns.set {
			_ = c.SetReadDeadline(time.Now())
		}
		b.conns.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (b *Broker) acceptLoop(ctx context.Context) {
	var pace tokenBucket // max.connection.creation.rate; only this loop uses it
	for {
		lim := b.settings.limits.Load()
		if d := pace.delay(time.Now(), lim.connRate); d > 0 {
			// Over the creation rate, Kafka delays the acceptor:
			// new connections wait in the listen backlog.
			b.metrics.acceptThrottle.Add(d.Seconds())
			sleepCtx(ctx, d)
			continue
		}
		nc, err := b.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			b.log.Warn("accept failed", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		pace.take(time.Now(), lim.connRate)
		addr := remoteAddr(nc)
		if reason, ok := b.connCount.admit(addr, lim); !ok {
			b.metrics.connectionsRejected.WithLabelValues(reason).Inc()
			b.log.Debug("connection refused", "remote", nc.RemoteAddr().String(), "reason", reason)
			nc.Close()
			continue
		}
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		b.conns.Lock()
		b.conns.set[nc] = struct{}{}
		b.conns.Unlock()
		if !b.goroutines.Go("conn", func() {
			defer func() {
				b.conns.Lock()
				delete(b.conns.set, nc)
				b.conns.Unlock()
				b.connCount.done(addr)
			}()
			b.serveConn(ctx, nc)
		}) {
			nc.Close()
			b.conns.Lock()
			delete(b.conns.set, nc)
			b.conns.Unlock()
			b.connCount.done(addr)
		}
	}
}

// Close releases everything New acquired. It is idempotent; Run calls it.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		var errs []error
		if b.ln != nil {
			b.ln.Close()
		}
		if b.httpSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = b.httpSrv.Shutdown(ctx)
			cancel()
		} else if b.httpLn != nil {
			b.httpLn.Close()
		}
		if b.stopBG != nil {
			b.stopBG()
		}
		b.goroutines.close()
		b.goroutines.wait()
		if reg := b.reg.Load(); reg != nil {
			_ = reg.Close()
		}
		if b.txn != nil {
			b.txn.Close()
		}
		if b.shareState != nil {
			b.shareState.Close()
		}
		if b.coord != nil {
			b.coord.Close()
		}
		if b.peers != nil {
			b.peers.close()
		}
		if b.store != nil {
			if err := b.store.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close logs: %w", err))
			}
		}
		if b.meta != nil {
			_ = b.meta.Close()
		}
		if b.embedded != nil {
			_ = b.embedded.Close()
		}
		if b.lock != nil {
			b.lock.Close()
		}
		b.closeErr = errors.Join(errs...)
	})
	return b.closeErr
}
