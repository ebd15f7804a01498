package broker

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicedev/sluice/metadata"
	"github.com/sluicedev/sluice/storage"
)

// partition is one partition this broker hosts.
type partition struct {
	topic *topicState
	index int32
	log   *storage.Log
	rep   *replica
}

// topicState is the broker's view of one topic: its metadata from etcd, its
// resolved settings and the partitions hosted here.
type topicState struct {
	// view is replaced whole, never changed in place, so request paths
	// and the replication goroutines read it without a lock.
	view atomic.Pointer[topicView]
	// cfg is the topic's settings resolved into typed values, replaced
	// whole when the topic or the broker settings defaulting it change.
	cfg atomic.Pointer[topicConfig]
}

// topicView is one revision of a topic: its etcd record and the hosted
// partitions (index = partition number; nil when not hosted here).
type topicView struct {
	meta  metadata.Topic
	parts []*partition
}

// meta is the topic's etcd record. Callers must not modify what it shares
// (Replicas, Configs); copy before changing.
func (t *topicState) meta() metadata.Topic { return t.view.Load().meta }

// partitions lists the partitions, nil entries for those not hosted here.
func (t *topicState) partitions() []*partition { return t.view.Load().parts }

// config is the topic's resolved settings.
func (t *topicState) config() *topicConfig { return t.cfg.Load() }

// partition returns partition p, or nil if it does not exist or is not hosted here.
func (t *topicState) partition(p int32) *partition {
	parts := t.partitions()
	if p < 0 || int(p) >= len(parts) {
		return nil
	}
	return parts[p]
}

// topicTable is the broker's cache of topics, fed by etcd.
type topicTable struct {
	mu struct {
		sync.RWMutex
		byName map[string]*topicState
		byID   map[[16]byte]*topicState
	}
}

func newTopicTable() *topicTable {
	t := &topicTable{}
	t.mu.byName = map[string]*topicState{}
	t.mu.byID = map[[16]byte]*topicState{}
	return t
}

func (t *topicTable) get(name string) *topicState {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.mu.byName[name]
}

func (t *topicTable) getID(id [16]byte) *topicState {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.mu.byID[id]
}

// all returns the topics sorted by name.
func (t *topicTable) all() []*topicState {
	t.mu.RLock()
	out := make([]*topicState, 0, len(t.mu.byName))
	for _, ts := range t.mu.byName {
		out = append(out, ts)
	}
	t.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].meta().Name < out[j].meta().Name })
	return out
}

// loadTopics reads every topic from etcd and opens the local partitions
// before the broker serves anyone.
func (b *Broker) loadTopics(ctx context.Context) error {
	ts, err := b.meta.Topics(ctx)
	if err != nil {
		return fmt.Errorf("load topics: %w", err)
	}
	for _, t := range ts {
		if err := b.applyTopic(t); err != nil {
			return err
		}
	}
	return nil
}

// watchTopics keeps the cache in step with etcd, so topics created, altered
// or deleted through another broker show up here.
func (b *Broker) watchTopics(ctx context.Context) {
	b.keepWatching(ctx, "topic", func() error {
		ch, err := b.meta.WatchTopics(ctx)
		if err != nil {
			return err
		}
		for ev := range ch {
			if ev.Type == metadata.EventDelete {
				b.dropTopic(ev.Topic.Name, ev.Topic.ID)
				continue
			}
			if err := b.applyTopic(ev.Topic); err != nil {
				b.log.Error("applying topic change", "topic", ev.Topic.Name, "err", err)
			}
		}
		return nil
	})
}

// keepWatching runs watch until ctx ends: a watch that fails to start is
// retried after a second, one whose channel closed is restarted at once.
func (b *Broker) keepWatching(ctx context.Context, what string, watch func() error) {
	for ctx.Err() == nil {
		if err := watch(); err != nil {
			b.log.Warn(what+" watch failed; retrying", "err", err)
			sleepCtx(ctx, time.Second)
		}
	}
}

// applyTopic installs or updates a topic from its etcd record. It is
// idempotent: the same revision applied twice changes nothing. Group state
// in __consumer_offsets partitions led here is loaded after the topic is
// installed (the coordinator may call back into the table).
func (b *Broker) applyTopic(m metadata.Topic) error {
	unlock := b.topicLocks.lock(m.Name)
	opened, err := b.applyTopicLocking(m, false)
	unlock()
	b.applyHostedStates(opened)
	b.signalCluster()
	return err
}

// applyTopicLocking updates the topic's entry and opens the logs of newly
// hosted partitions, which it returns. The caller holds the topic's name
// lock (b.topicLocks), which orders every change of one topic; the table
// lock is taken only to swap the entry in, never while logs are opened or
// recovered, so produces and fetches of every topic go on meanwhile. A
// partition that fails to open is left out and the others are opened; the
// error is returned and retryOpens tries again. With reopen, only
// partitions missing from the installed revision m are opened.
func (b *Broker) applyTopicLocking(m metadata.Topic, reopen bool) ([]*partition, error) {
	old := b.topics.get(m.Name)
	if reopen && (old == nil || old.meta().ID != m.ID || old.meta().Revision != m.Revision) {
		return nil, nil // a newer change replaced it, and opened what it could
	}
	if old != nil && old.meta().ID != m.ID {
		b.dropTopicNamed(old)
		old = nil
	}
	if !reopen && old != nil && old.meta().Revision >= m.Revision {
		return nil, nil
	}
	tc := b.settings.resolveTopic(m.Configs)
	cfg := tc.storage
	ts := old
	if ts == nil {
		ts = &topicState{}
		ts.view.Store(&topicView{})
	}
	ts.cfg.Store(tc)
	parts := make([]*partition, m.Partitions)
	copy(parts, ts.partitions())
	var opened []*partition
	var errs []error
	for p := int32(0); p < m.Partitions; p++ {
		if parts[p] != nil {
			parts[p].log.SetConfig(cfg)
			continue
		}
		if !b.hosts(m, p) {
			continue
		}
		l, err := b.store.Log(m.Name, p, cfg)
		if err != nil {
			errs = append(errs, fmt.Errorf("open log %s-%d: %w", m.Name, p, err))
			continue
		}
		part := &partition{topic: ts, index: p, log: l}
		part.rep = newReplica(b, part)
		parts[p] = part
		opened = append(opened, part)
	}
	b.topics.mu.Lock()
	ts.view.Store(&topicView{meta: m, parts: parts})
	b.topics.mu.byName[m.Name] = ts
	b.topics.mu.byID[m.ID] = ts
	b.topics.mu.Unlock()
	return opened, errors.Join(errs...)
}

// partitionOpenRetry is how often retryOpens looks for hosted partitions
// whose log failed to open.
const partitionOpenRetry = 5 * time.Second

// retryOpens opens, every partitionOpenRetry until ctx ends, the logs of
// hosted partitions that failed to open (a transient disk error, a
// directory that could not be created), so that one failure does not
// leave a replica missing until the next restart or topic change.
func (b *Broker) retryOpens(ctx context.Context) {
	t := time.NewTicker(partitionOpenRetry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if b.logDirFailed() {
			continue // the directory takes no writes until restart
		}
		for _, ts := range b.topics.all() {
			m := ts.meta()
			if !b.missingPartitions(ts) {
				continue
			}
			unlock := b.topicLocks.lock(m.Name)
			opened, err := b.applyTopicLocking(m, true)
			unlock()
			if err != nil {
				b.log.Warn("partition logs still fail to open; retrying", "topic", m.Name, "err", err)
			}
			if len(opened) > 0 {
				b.log.Info("opened partition logs that had failed to open", "topic", m.Name, "partitions", len(opened))
				b.applyHostedStates(opened)
				b.signalCluster()
			}
		}
	}
}

// missingPartitions reports whether a partition hosted here has no log.
func (b *Broker) missingPartitions(ts *topicState) bool {
	m := ts.meta()
	for p := int32(0); p < m.Partitions; p++ {
		if b.hosts(m, p) && ts.partition(p) == nil {
			return true
		}
	}
	return false
}

// hosts reports whether partition p of topic m has a replica on this broker.
func (b *Broker) hosts(m metadata.Topic, p int32) bool {
	if int(p) >= len(m.Replicas) || len(m.Replicas[p]) == 0 {
		return true // no assignment recorded: a single-broker topic
	}
	for _, r := range m.Replicas[p] {
		if r == b.cfg.NodeID {
			return true
		}
	}
	return false
}

func (b *Broker) dropTopic(name string, id [16]byte) {
	unlock := b.topicLocks.lock(name)
	defer unlock()
	ts := b.topics.get(name)
	if ts == nil || (id != [16]byte{} && ts.meta().ID != id) {
		return
	}
	b.dropTopicNamed(ts)
}

// dropTopicNamed removes ts from the table, then stops its replicas and
// deletes its data outside the table lock. The caller holds the topic's
// name lock.
func (b *Broker) dropTopicNamed(ts *topicState) {
	b.topics.mu.Lock()
	if b.topics.mu.byName[ts.meta().Name] == ts {
		delete(b.topics.mu.byName, ts.meta().Name)
	}
	if b.topics.mu.byID[ts.meta().ID] == ts {
		delete(b.topics.mu.byID, ts.meta().ID)
	}
	b.topics.mu.Unlock()
	for _, p := range ts.partitions() {
		if p != nil {
			p.rep.close()
		}
	}
	if err := b.store.DeleteTopic(ts.meta().Name); err != nil {
		b.log.Error("deleting topic data", "topic", ts.meta().Name, "err", err)
	}
	if b.metrics != nil {
		b.metrics.forgetTopic(ts.meta().Name)
	}
}

// nameLocks serializes the changes of one topic (applying a record,
// dropping it) without a lock over every topic: opening or deleting one
// topic's logs never holds up another's change, nor any request.
type nameLocks struct {
	mu sync.Mutex
	m  map[string]*nameLock
}

type nameLock struct {
	sync.Mutex
	refs int // holders and waiters; the entry goes when it drops to 0
}

// lock takes name's lock and returns its unlock.
func (n *nameLocks) lock(name string) func() {
	n.mu.Lock()
	if n.m == nil {
		n.m = map[string]*nameLock{}
	}
	l := n.m[name]
	if l == nil {
		l = &nameLock{}
		n.m[name] = l
	}
	l.refs++
	n.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		n.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(n.m, name)
		}
		n.mu.Unlock()
	}
}

// createTopic writes a new topic to etcd with the first record of each
// partition, and installs it locally, so the next request on any
// connection sees it.
func (b *Broker) createTopic(ctx context.Context, m metadata.Topic) (metadata.Topic, error) {
	created, err := b.meta.CreateTopic(ctx, m)
	if err != nil {
		return created, err
	}
	// The topic exists once etcd has it, as in Kafka once the controller
	// has it: a log that fails to open here is this replica's problem,
	// retried by retryOpens, not the creation's.
	if err := b.applyTopic(created); err != nil {
		b.log.Error("opening the logs of a new topic; retrying in the background", "topic", m.Name, "err", err)
	}
	if err := b.initPartitionStates(ctx, created, 0); err != nil {
		// The controller fills in whatever is missing.
		b.log.Warn("writing partition states of a new topic", "topic", m.Name, "err", err)
	}
	return created, nil
}
