package metadata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// DefaultPrefix is the key prefix used when EtcdConfig.Prefix is empty.
const DefaultPrefix = "/sluice"

// reconnectMaxDelay caps the pause between the etcd client's attempts to
// reconnect to an endpoint.
const reconnectMaxDelay = time.Second

// DefaultDialTimeout bounds NewEtcd's reachability check when
// EtcdConfig.DialTimeout is zero.
const DefaultDialTimeout = 5 * time.Second

// EtcdConfig configures NewEtcd.
type EtcdConfig struct {
	// Endpoints are etcd client URLs or host:port pairs.
	Endpoints []string
	// Prefix is prepended to every key (default DefaultPrefix), so several
	// clusters can share one etcd. A trailing '/' is ignored.
	Prefix string
	// DialTimeout bounds connecting and the start-up reachability check
	// (default DefaultDialTimeout).
	DialTimeout time.Duration
	// Logger receives the store's and the etcd client's warnings (nil:
	// discard).
	Logger *slog.Logger
	// SessionTTL is the lease TTL of a controller candidacy (default
	// DefaultBrokerTTL): how long a crashed controller keeps the election
	// before another node can win it.
	SessionTTL time.Duration
}

// Etcd is the Store backed by an etcd cluster. Safe for concurrent use.
type Etcd struct {
	cli        *clientv3.Client
	prefix     string
	log        *slog.Logger
	sessionTTL time.Duration

	// base is cancelled by Close; every background goroutine derives its
	// context from it and is tracked by wg.
	base   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu struct {
		sync.Mutex
		closing bool                // set by Close: no new leases or goroutines
		leases  map[*lease]struct{} // registrations and leaderships to release on Close
	}
	closeOnce sync.Once
	closeErr  error

	// testHooks are set only by tests, before the hooked call.
	testHooks struct {
		beforeWatch func() // between a watch's snapshot and its stream
	}
}

var _ Store = (*Etcd)(nil)

// NewEtcd connects to etcd and checks within DialTimeout that it answers,
// so that a wrong or dead endpoint fails start-up with one clear error
// rather than with retries later.
func NewEtcd(ctx context.Context, cfg EtcdConfig) (*Etcd, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("metadata: no etcd endpoints configured")
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	prefix := strings.TrimRight(cfg.Prefix, "/")
	if prefix == "" {
		prefix = DefaultPrefix
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout,
		Logger:      newZapLogger(log.With("component", "etcd-client"), zapWarn, nil),
		Context:     context.WithoutCancel(ctx),
		// gRPC's default reconnect backoff grows to two minutes, so after an
		// etcd outage of some seconds a client would wait on for many more
		// before it tries again. Brokers re-register and re-elect only once
		// the client reconnects, so the wait is capped at reconnectMaxDelay.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: reconnectMaxDelay},
			MinConnectTimeout: cfg.DialTimeout,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("metadata: connect to etcd %v: %w", cfg.Endpoints, err)
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if _, err := cli.Get(pctx, prefix+"/cluster/id"); err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("metadata: etcd %v unreachable within %v: %w", cfg.Endpoints, cfg.DialTimeout, err)
	}
	e := &Etcd{cli: cli, prefix: prefix, log: log, sessionTTL: cfg.SessionTTL}
	e.base, e.cancel = context.WithCancel(context.Background())
	e.mu.leases = map[*lease]struct{}{}
	return e, nil
}

// Close gives up open registrations and leaderships, ends watches and
// closes the client. Idempotent.
func (e *Etcd) Close() error {
	e.closeOnce.Do(func() {
		e.mu.Lock()
		e.mu.closing = true
		ls := make([]*lease, 0, len(e.mu.leases))
		for l := range e.mu.leases {
			ls = append(ls, l)
		}
		e.mu.Unlock()
		var errs []error
		for _, l := range ls {
			errs = append(errs, l.close())
		}
		e.cancel()
		e.wg.Wait()
		errs = append(errs, e.cli.Close())
		e.closeErr = errors.Join(errs...)
	})
	return e.closeErr
}

func (e *Etcd) closed() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mu.closing {
		return ErrClosed
	}
	return nil
}

// key builds "<prefix>/<parts joined by '/'>".
func (e *Etcd) key(parts ...string) string {
	return e.prefix + "/" + strings.Join(parts, "/")
}

func (e *Etcd) topicKey(name string) string { return e.key("topics", name) }

func (e *Etcd) partitionPrefix(topic string) string { return e.key("partitions", topic) + "/" }

func (e *Etcd) partitionKey(topic string, p int32) string {
	return e.partitionPrefix(topic) + strconv.FormatInt(int64(p), 10)
}

// ClusterID implements Store. The id is a random UUID in Kafka's base64
// form, written once with a create-if-absent transaction.
func (e *Etcd) ClusterID(ctx context.Context) (string, error) {
	if err := e.closed(); err != nil {
		return "", err
	}
	k := e.key("cluster", "id")
	id, err := NewTopicID()
	if err != nil {
		return "", err
	}
	resp, err := e.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, FormatUUID(id))).
		Else(clientv3.OpGet(k)).
		Commit()
	if err != nil {
		return "", fmt.Errorf("metadata: cluster id: %w", err)
	}
	if resp.Succeeded {
		return FormatUUID(id), nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return "", fmt.Errorf("metadata: cluster id vanished: %w", ErrConflict)
	}
	return string(kvs[0].Value), nil
}

// CreateTopic implements Store.
func (e *Etcd) CreateTopic(ctx context.Context, t Topic) (Topic, error) {
	if err := e.closed(); err != nil {
		return Topic{}, err
	}
	t, err := prepareCreate(t)
	if err != nil {
		return Topic{}, err
	}
	val, err := encodeTopic(t)
	if err != nil {
		return Topic{}, err
	}
	k := e.topicKey(t.Name)
	// Partition states left behind by an interrupted deletion must not leak
	// into the new incarnation, so they are cleared in the same transaction.
	resp, err := e.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, string(val)), clientv3.OpDelete(e.partitionPrefix(t.Name), clientv3.WithPrefix())).
		Commit()
	if err != nil {
		return Topic{}, fmt.Errorf("metadata: create topic %q: %w", t.Name, err)
	}
	if !resp.Succeeded {
		return Topic{}, fmt.Errorf("create topic %q: %w", t.Name, ErrTopicExists)
	}
	t.Revision = resp.Header.Revision
	return t, nil
}

// UpdateTopic implements Store.
func (e *Etcd) UpdateTopic(ctx context.Context, t Topic) (Topic, error) {
	if err := e.closed(); err != nil {
		return Topic{}, err
	}
	t, err := prepareUpdate(t)
	if err != nil {
		return Topic{}, err
	}
	val, err := encodeTopic(t)
	if err != nil {
		return Topic{}, err
	}
	k := e.topicKey(t.Name)
	resp, err := e.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), ">", 0),
			clientv3.Compare(clientv3.ModRevision(k), "=", t.Revision)).
		Then(clientv3.OpPut(k, string(val))).
		Else(clientv3.OpGet(k, clientv3.WithCountOnly())).
		Commit()
	if err != nil {
		return Topic{}, fmt.Errorf("metadata: update topic %q: %w", t.Name, err)
	}
	if !resp.Succeeded {
		if resp.Responses[0].GetResponseRange().Count == 0 {
			return Topic{}, fmt.Errorf("update topic %q: %w", t.Name, ErrTopicNotFound)
		}
		return Topic{}, fmt.Errorf("update topic %q at revision %d: %w", t.Name, t.Revision, ErrConflict)
	}
	t.Revision = resp.Header.Revision
	return t, nil
}

// DeleteTopic implements Store. The topic record and its partition states
// go in one transaction.
func (e *Etcd) DeleteTopic(ctx context.Context, name string) error {
	if err := e.closed(); err != nil {
		return err
	}
	if !validName(name) {
		return fmt.Errorf("delete topic %q: %w", name, ErrTopicNotFound)
	}
	k := e.topicKey(name)
	resp, err := e.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), ">", 0)).
		Then(clientv3.OpDelete(k), clientv3.OpDelete(e.partitionPrefix(name), clientv3.WithPrefix())).
		Commit()
	if err != nil {
		return fmt.Errorf("metadata: delete topic %q: %w", name, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("delete topic %q: %w", name, ErrTopicNotFound)
	}
	return nil
}

// Topic implements Store.
func (e *Etcd) Topic(ctx context.Context, name string) (Topic, error) {
	if err := e.closed(); err != nil {
		return Topic{}, err
	}
	if !validName(name) {
		return Topic{}, fmt.Errorf("topic %q: %w", name, ErrTopicNotFound)
	}
	resp, err := e.cli.Get(ctx, e.topicKey(name))
	if err != nil {
		return Topic{}, fmt.Errorf("metadata: get topic %q: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return Topic{}, fmt.Errorf("topic %q: %w", name, ErrTopicNotFound)
	}
	return decodeTopic(name, resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
}

// Topics implements Store. Records that fail to decode are logged and
// skipped, so one hand-edited key cannot hide every other topic.
func (e *Etcd) Topics(ctx context.Context) ([]Topic, error) {
	if err := e.closed(); err != nil {
		return nil, err
	}
	pfx := e.topicKey("")
	resp, err := e.cli.Get(ctx, pfx, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("metadata: list topics: %w", err)
	}
	out := make([]Topic, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		t, err := decodeTopic(strings.TrimPrefix(string(kv.Key), pfx), kv.Value, kv.ModRevision)
		if err != nil {
			e.log.Warn("skipping undecodable topic record", "key", string(kv.Key), "err", err)
			continue
		}
		out = append(out, t)
	}
	return out, nil // etcd returns keys in byte order, i.e. by name
}

// BrokerConfigs implements Store.
func (e *Etcd) BrokerConfigs(ctx context.Context, nodeID int32) (map[string]string, error) {
	if err := e.closed(); err != nil {
		return nil, err
	}
	k := e.key("configs", "brokers", strconv.FormatInt(int64(nodeID), 10))
	resp, err := e.cli.Get(ctx, k)
	if err != nil {
		return nil, fmt.Errorf("metadata: broker %d configs: %w", nodeID, err)
	}
	m := map[string]string{}
	if len(resp.Kvs) > 0 {
		if err := json.Unmarshal(resp.Kvs[0].Value, &m); err != nil {
			return nil, fmt.Errorf("metadata: broker %d configs: %w", nodeID, err)
		}
	}
	return m, nil
}

// SetBrokerConfigs implements Store.
func (e *Etcd) SetBrokerConfigs(ctx context.Context, nodeID int32, configs map[string]string) error {
	if err := e.closed(); err != nil {
		return err
	}
	k := e.key("configs", "brokers", strconv.FormatInt(int64(nodeID), 10))
	var err error
	if len(configs) == 0 {
		_, err = e.cli.Delete(ctx, k)
	} else {
		var val []byte
		if val, err = json.Marshal(configs); err == nil {
			_, err = e.cli.Put(ctx, k, string(val))
		}
	}
	if err != nil {
		return fmt.Errorf("metadata: set broker %d configs: %w", nodeID, err)
	}
	return nil
}

// WatchBrokerConfigs implements Store.
func (e *Etcd) WatchBrokerConfigs(ctx context.Context) (<-chan BrokerConfigsEvent, error) {
	ch := make(chan BrokerConfigsEvent, watchBuffer)
	emit := func(ctx context.Context, ev kvEvent) bool {
		id, err := strconv.ParseInt(ev.key, 10, 32)
		if err != nil {
			e.log.Warn("skipping broker configs under an unknown key", "key", ev.key)
			return true
		}
		out := BrokerConfigsEvent{Type: ev.typ, NodeID: int32(id), Configs: map[string]string{}, Snapshot: ev.snapshot}
		if ev.typ == EventPut {
			if err := json.Unmarshal(ev.value, &out.Configs); err != nil {
				e.log.Warn("skipping undecodable broker configs", "key", ev.key, "err", err)
				return true
			}
		}
		select {
		case ch <- out:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if err := e.watchPrefix(ctx, e.key("configs", "brokers")+"/", nil, emit, func() { close(ch) }); err != nil {
		return nil, wrapWatchErr("broker configs", err)
	}
	return ch, nil
}

// trackLease registers l for release on Close; it fails once the store is
// closing, so nothing is registered after Close collected the set.
func (e *Etcd) trackLease(l *lease) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mu.closing {
		return false
	}
	e.mu.leases[l] = struct{}{}
	return true
}

func (e *Etcd) untrackLease(l *lease) {
	e.mu.Lock()
	delete(e.mu.leases, l)
	e.mu.Unlock()
}

// goTracked runs f in a goroutine that Close waits for. It returns false,
// without running f, once Close has started.
func (e *Etcd) goTracked(f func()) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mu.closing {
		return false
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		f()
	}()
	return true
}
