package broker

import (
	"context"
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
// in __consumer_offsets partitions led here is loaded after the topic table
// is unlocked (the coordinator may call back into the table).
func (b *Broker) applyTopic(m metadata.Topic) error {
	opened, err := b.applyTopicLocking(m)
	b.applyHostedStates(opened)
	b.signalCluster()
	return err
}

// applyTopicLocking updates the topic table and opens the logs of newly
// hosted partitions, which it returns.
func (b *Broker) applyTopicLocking(m metadata.Topic) ([]*partition, error) {
	b.topics.mu.Lock()
	defer b.topics.mu.Unlock()
	old := b.topics.mu.byName[m.Name]
	if old != nil && old.meta().ID != m.ID {
		b.dropTopicLocked(old)
		old = nil
	}
	if old != nil && old.meta().Revision >= m.Revision {
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
	var err error
	for p := int32(0); p < m.Partitions; p++ {
		if parts[p] != nil {
			parts[p].log.SetConfig(cfg)
			continue
		}
		if !b.hosts(m, p) {
			continue
		}
		l, lerr := b.store.Log(m.Name, p, cfg)
		if lerr != nil {
			err = fmt.Errorf("open log %s-%d: %w", m.Name, p, lerr)
			break
		}
		part := &partition{topic: ts, index: p, log: l}
		part.rep = newReplica(b, part)
		parts[p] = part
		opened = append(opened, part)
	}
	ts.view.Store(&topicView{meta: m, parts: parts})
	b.topics.mu.byName[m.Name] = ts
	b.topics.mu.byID[m.ID] = ts
	return opened, err
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
	b.topics.mu.Lock()
	defer b.topics.mu.Unlock()
	ts := b.topics.mu.byName[name]
	if ts == nil || (id != [16]byte{} && ts.meta().ID != id) {
		return
	}
	b.dropTopicLocked(ts)
}

func (b *Broker) dropTopicLocked(ts *topicState) {
	delete(b.topics.mu.byName, ts.meta().Name)
	delete(b.topics.mu.byID, ts.meta().ID)
	for _, p := range ts.partitions() {
		if p != nil {
			p.rep.close()
		}
	}
	if err := b.store.DeleteTopic(ts.meta().Name); err != nil {
		b.log.Error("deleting topic data", "topic", ts.meta().Name, "err", err)
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
	if err := b.applyTopic(created); err != nil {
		return created, err
	}
	if err := b.initPartitionStates(ctx, created, 0); err != nil {
		// The controller fills in whatever is missing.
		b.log.Warn("writing partition states of a new topic", "topic", m.Name, "err", err)
	}
	return created, nil
}
