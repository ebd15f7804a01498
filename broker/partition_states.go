package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sluicedev/sluice/metadata"
	"github.com/sluicedev/sluice/replication"
)

// partitionStates is this broker's copy of every partition record in etcd
// (leader, leader epoch, ISR), fed by the partition watch and by the
// broker's own writes. Metadata answers from it; hosted partitions are
// driven by it.
type partitionStates struct {
	mu struct {
		sync.RWMutex
		m map[partKey]metadata.PartitionState
		// changed is closed, and replaced, by every put that stores a
		// record, so waiters (CreateTopics) wake on a change instead of
		// polling.
		changed chan struct{}
	}
}

func newPartitionStates() *partitionStates {
	s := &partitionStates{}
	s.mu.m = map[partKey]metadata.PartitionState{}
	s.mu.changed = make(chan struct{})
	return s
}

// changes returns a channel closed by the next stored record.
func (s *partitionStates) changes() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.mu.changed
}

// put stores st unless a newer record is already known; it reports
// whether st was stored.
func (s *partitionStates) put(st metadata.PartitionState) bool {
	k := partKey{st.Topic, st.Partition}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.mu.m[k]; ok && old.Revision >= st.Revision {
		return false
	}
	s.mu.m[k] = st
	close(s.mu.changed)
	s.mu.changed = make(chan struct{})
	return true
}

// remove forgets a deleted record unless a newer one replaced it.
func (s *partitionStates) remove(st metadata.PartitionState) {
	k := partKey{st.Topic, st.Partition}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.mu.m[k]; ok && old.Revision <= st.Revision {
		delete(s.mu.m, k)
	}
}

func (s *partitionStates) get(topic string, p int32) (metadata.PartitionState, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, ok := s.mu.m[partKey{topic, p}]
	return st, ok
}

// all returns every known record.
func (s *partitionStates) all() []metadata.PartitionState {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]metadata.PartitionState, 0, len(s.mu.m))
	for _, st := range s.mu.m {
		out = append(out, st)
	}
	return out
}

// partitionState is the known record of a partition.
func (b *Broker) partitionState(topic string, p int32) (metadata.PartitionState, bool) {
	return b.pstates.get(topic, p)
}

// loadPartitionStates reads every partition record before the broker
// serves, so Metadata is truthful from the first request.
func (b *Broker) loadPartitionStates(ctx context.Context) error {
	for _, ts := range b.topics.all() {
		sts, err := b.meta.PartitionStates(ctx, ts.meta().Name)
		if err != nil {
			return fmt.Errorf("load partition states of %s: %w", ts.meta().Name, err)
		}
		for _, st := range sts {
			b.pstates.put(st)
		}
	}
	return nil
}

// watchPartitions follows the partition records: every change is cached
// and applied to the partition if it is hosted here.
func (b *Broker) watchPartitions(ctx context.Context) {
	b.keepWatching(ctx, "partition", func() error {
		ch, err := b.meta.WatchPartitions(ctx)
		if err != nil {
			return err
		}
		for ev := range ch {
			if ev.Type == metadata.EventDelete {
				b.pstates.remove(ev.State)
				continue
			}
			b.pstates.put(ev.State)
			b.applyPartitionState(ev.State.Topic, ev.State.Partition)
			if ev.State.Leader < 0 {
				b.signalCluster()
			}
		}
		return nil
	})
}

// applyPartitionState drives the hosted replica of a partition from the
// newest known record. Transitions are serialized so that the group
// coordinator sees loads and unloads of a partition in order.
func (b *Broker) applyPartitionState(topic string, p int32) {
	b.transitions.Lock()
	defer b.transitions.Unlock()
	st, ok := b.pstates.get(topic, p)
	if !ok {
		return
	}
	ts := b.topics.get(topic)
	if ts == nil {
		return
	}
	part := ts.partition(p)
	if part == nil {
		return
	}
	b.coordinatorsOnTransition(part, part.rep.applyState(st, replicasFor(ts.meta(), p)))
}

// applyHostedStates applies the cached records of every hosted partition,
// for partitions opened after their record arrived.
func (b *Broker) applyHostedStates(parts []*partition) {
	for _, part := range parts {
		b.applyPartitionState(part.log.Topic(), part.index)
	}
}

// replicasFor is the assignment of partition p.
func replicasFor(m metadata.Topic, p int32) []int32 {
	if int(p) < len(m.Replicas) {
		return m.Replicas[p]
	}
	return nil
}

// clusterView is the live brokers as this broker sees them, for the
// replication decisions.
func (b *Broker) clusterView() replication.ClusterView {
	var v replication.ClusterView
	for _, br := range b.liveBrokers() {
		v.Live = append(v.Live, br.NodeID)
	}
	// A broker whose log directory failed is, for every decision it makes
	// itself, as one shutting down: not to be elected or added to an ISR.
	if b.shuttingDown.Load() || b.logDirFailed() {
		v.ShuttingDown = []int32{b.cfg.NodeID}
	}
	return v
}

// initPartitionStates writes the first record of partitions [from,
// m.Partitions) of a new topic (or of partitions just added): the live
// replicas form the ISR and the first of them leads (Kafka's createTopic).
// A record someone else wrote first (the controller filling a gap) is
// kept. The records are applied here at once, so this broker answers for
// them before the watch echoes them.
func (b *Broker) initPartitionStates(ctx context.Context, m metadata.Topic, from int32) error {
	view := b.clusterView()
	var errs []error
	states := make([]metadata.PartitionState, 0, max(m.Partitions-from, 0))
	for p := from; p < m.Partitions; p++ {
		st, err := replication.NewPartitionState(replicasFor(m, p), view)
		if err != nil {
			errs = append(errs, fmt.Errorf("partition %d: %w", p, err))
			continue
		}
		states = append(states, metadata.PartitionState{
			Topic: m.Name, Partition: p, Leader: st.Leader, LeaderEpoch: st.LeaderEpoch,
			ISR: slices.Clone(st.ISR), PartitionEpoch: st.PartitionEpoch,
		})
	}
	// One etcd transaction per ~127 partitions, not one per partition.
	written, err := b.meta.CreatePartitionStates(ctx, states)
	if err != nil {
		errs = append(errs, err)
	}
	for _, w := range written {
		b.pstates.put(w)
	}
	for _, w := range written {
		b.applyPartitionState(w.Topic, w.Partition)
	}
	return errors.Join(errs...)
}

// awaitLeaders waits until this broker's cache of partition records gives
// every partition of topic a live leader, or ctx ends; it reports whether
// they all have one.
func (b *Broker) awaitLeaders(ctx context.Context, topic string, partitions int32) bool {
	for {
		ch := b.pstates.changes()
		live := b.liveSet()
		ready := true
		for p := int32(0); p < partitions && ready; p++ {
			st, ok := b.partitionState(topic, p)
			ready = ok && st.Leader >= 0 && live[st.Leader]
		}
		if ready {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

// writePartitionState stores st with compare-and-swap against revision
// (0: only if absent), then caches and applies it here.
func (b *Broker) writePartitionState(ctx context.Context, topic string, p int32, st replication.PartitionState, revision int64) (metadata.PartitionState, error) {
	ms := metadata.PartitionState{
		Topic: topic, Partition: p, Leader: st.Leader, LeaderEpoch: st.LeaderEpoch,
		ISR: slices.Clone(st.ISR), PartitionEpoch: st.PartitionEpoch, Revision: revision,
	}
	written, err := b.meta.SetPartitionState(ctx, ms)
	if err != nil {
		return written, err
	}
	b.pstates.put(written)
	b.applyPartitionState(topic, p)
	return written, nil
}

// toReplicationState joins a partition record with its assignment.
func toReplicationState(ms metadata.PartitionState, replicas []int32) replication.PartitionState {
	return replication.PartitionState{
		Leader: ms.Leader, LeaderEpoch: ms.LeaderEpoch, PartitionEpoch: ms.PartitionEpoch,
		Replicas: slices.Clone(replicas), ISR: slices.Clone(ms.ISR),
	}
}

// signalCluster wakes the controller loop (a broker came or went, a
// partition went offline, a topic appeared).
func (b *Broker) signalCluster() {
	select {
	case b.clusterChanged <- struct{}{}:
	default:
	}
}

// proposeISRChange sends a Leader's AlterPartition proposal (KIP-497) to
// etcd in the background: the stored record is read, the change validated
// against it as the controller would (replication.ApplyISRChange) and
// written with compare-and-swap, so a newer decision is never overwritten.
// The outcome goes back to the Leader.
func (b *Broker) proposeISRChange(r *replica, c replication.ISRChange) {
	topic, p := r.p.log.Topic(), r.p.index
	b.goroutines.Go("isr-change", func() {
		ctx, cancel := context.WithTimeout(b.bgCtx(), 10*time.Second)
		defer cancel()
		st, err := b.commitISRChange(ctx, topic, p, c)
		r.mu.Lock()
		defer r.mu.Unlock()
		if l := r.mu.leader; l != nil {
			before := len(l.ISR())
			r.applyLeaderLocked(l.ISRChangeResult(c, st, err, time.Now()))
			r.countISRChange(before, len(l.ISR()))
		}
	})
}

func (b *Broker) commitISRChange(ctx context.Context, topic string, p int32, c replication.ISRChange) (replication.PartitionState, error) {
	ts := b.topics.get(topic)
	if ts == nil {
		return replication.PartitionState{}, errUnknownPartition
	}
	replicas := replicasFor(ts.meta(), p)
	for attempt := 0; ; attempt++ {
		ms, err := b.meta.PartitionState(ctx, topic, p)
		if err != nil {
			if errors.Is(err, metadata.ErrPartitionNotFound) || errors.Is(err, metadata.ErrTopicNotFound) {
				return replication.PartitionState{}, errUnknownPartition
			}
			return replication.PartitionState{}, err
		}
		cur := toReplicationState(ms, replicas)
		next, err := replication.ApplyISRChange(cur, c, b.clusterView())
		if err != nil {
			return cur, err
		}
		if next.PartitionEpoch == cur.PartitionEpoch {
			return cur, nil
		}
		written, err := b.meta.SetPartitionState(ctx, metadata.PartitionState{
			Topic: topic, Partition: p, Leader: next.Leader, LeaderEpoch: next.LeaderEpoch,
			ISR: next.ISR, PartitionEpoch: next.PartitionEpoch, Revision: ms.Revision,
		})
		if errors.Is(err, metadata.ErrConflict) && attempt < 3 {
			continue
		}
		if err != nil {
			return cur, err
		}
		b.pstates.put(written)
		b.log.Info("isr changed", "topic", topic, "partition", p, "isr", next.ISR, "was", cur.ISR, "partition_epoch", next.PartitionEpoch)
		return next, nil
	}
}
