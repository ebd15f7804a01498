package broker

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/sluicedev/sluice/metadata"
	"github.com/sluicedev/sluice/replication"
)

// The controller's duties, run by the elected broker only. Every decision
// is one of package replication's pure functions over the cached partition
// record, written with compare-and-swap on the record's etcd revision: a
// decision built from a stale cache fails to write and is made again from
// the newer record at the next pass, so a deposed controller, or one that
// is behind, never overwrites a newer decision.
//
//   - Partitions without a record (a creator that died halfway, data
//     directories from before replication) get their first one.
//   - Brokers lost or restarted: Reconcile elects leaders from the ISR
//     (bumping the leader epoch) and removes dead brokers from ISRs. A
//     broker whose registration is newer than a record naming it as leader
//     or ISR member has restarted since: it is treated as lost and then
//     returned, so the leader epoch is bumped and it rejoins the ISR only
//     by catching up (package replication's wiring guide).
//   - Preferred leader election when auto.leader.rebalance.enable is set
//     and a broker's share of preferred partitions led elsewhere exceeds
//     leader.imbalance.per.broker.percentage.
//
// A pass runs when a broker comes or goes, a partition goes offline or a
// topic appears, and once a second in any case.

const controllerSweep = time.Second

func (b *Broker) runController(ctx context.Context) {
	sweep := time.NewTicker(controllerSweep)
	defer sweep.Stop()
	interval := time.Duration(b.settings.brokerInt64("leader.imbalance.check.interval.seconds", 300)) * time.Second
	nextBalance := time.Now().Add(interval)
	for {
		b.reconcileAll(ctx)
		if b.settings.brokerBool("auto.leader.rebalance.enable") && !time.Now().Before(nextBalance) {
			b.balanceLeaders(ctx)
			nextBalance = time.Now().Add(interval)
		}
		select {
		case <-ctx.Done():
			return
		case <-b.clusterChanged:
		case <-sweep.C:
		}
	}
}

// reconcileAll makes one pass over every partition of every topic.
func (b *Broker) reconcileAll(ctx context.Context) {
	view := b.clusterView()
	epochs := map[int32]int64{}
	for _, br := range b.liveBrokers() {
		epochs[br.NodeID] = br.Epoch
	}
	for _, ts := range b.topics.all() {
		m := ts.meta()
		unclean := ts.config().uncleanElection
		for p := int32(0); p < m.Partitions && ctx.Err() == nil; p++ {
			replicas := replicasFor(m, p)
			if len(replicas) == 0 {
				continue
			}
			cur, ok := b.partitionState(m.Name, p)
			if !ok {
				b.createMissingState(ctx, m, p, view)
				continue
			}
			b.reconcileOne(ctx, cur, replicas, view, epochs, unclean)
		}
	}
}

func (b *Broker) createMissingState(ctx context.Context, m metadata.Topic, p int32, view replication.ClusterView) {
	st, err := replication.NewPartitionState(replicasFor(m, p), view)
	if err != nil {
		return // no replica is live; try again when one is
	}
	if _, err := b.writePartitionState(ctx, m.Name, p, st, 0); err == nil {
		b.log.Info("controller created partition state", "topic", m.Name, "partition", p, "state", st.String())
	}
}

// reconcileOne brings one partition in line with the live brokers.
func (b *Broker) reconcileOne(ctx context.Context, cur metadata.PartitionState, replicas []int32, view replication.ClusterView, epochs map[int32]int64, unclean bool) {
	st := toReplicationState(cur, replicas)
	var restarted []int32
	for _, id := range st.ISR {
		if e, ok := epochs[id]; ok && e > cur.Revision {
			restarted = append(restarted, id)
		}
	}
	next := st
	var err error
	if len(restarted) > 0 {
		without := replication.ClusterView{ShuttingDown: view.ShuttingDown}
		for _, id := range view.Live {
			if !slices.Contains(restarted, id) {
				without.Live = append(without.Live, id)
			}
		}
		if next, err = replication.Reconcile(next, without, unclean); err != nil {
			b.log.Error("reconcile partition", "topic", cur.Topic, "partition", cur.Partition, "err", err)
			return
		}
	}
	if next, err = replication.Reconcile(next, view, unclean); err != nil {
		b.log.Error("reconcile partition", "topic", cur.Topic, "partition", cur.Partition, "err", err)
		return
	}
	if next.PartitionEpoch == st.PartitionEpoch {
		return
	}
	b.writeDecision(ctx, cur, st, next, "broker change")
}

// writeDecision stores a controller decision and counts elections.
func (b *Broker) writeDecision(ctx context.Context, cur metadata.PartitionState, was, next replication.PartitionState, why string) error {
	_, err := b.writePartitionState(ctx, cur.Topic, cur.Partition, next, cur.Revision)
	if err != nil {
		if !errors.Is(err, metadata.ErrConflict) && ctx.Err() == nil {
			b.log.Warn("controller write failed", "topic", cur.Topic, "partition", cur.Partition, "err", err)
		}
		return err
	}
	if next.Leader != was.Leader {
		switch {
		case next.Leader == replication.NoLeader:
			b.log.Warn("partition offline: no eligible leader", "topic", cur.Topic, "partition", cur.Partition, "isr", next.ISR)
		case !slices.Contains(was.ISR, next.Leader):
			b.metrics.uncleanElections.Inc()
			b.metrics.leaderElections.Inc()
			b.log.Warn("unclean leader election: committed records may be lost", "topic", cur.Topic, "partition", cur.Partition, "leader", next.Leader)
		default:
			b.metrics.leaderElections.Inc()
		}
	}
	b.log.Info("partition state changed", "reason", why, "topic", cur.Topic, "partition", cur.Partition, "state", next.String(), "was", was.String())
	return nil
}

// balanceLeaders runs preferred leader elections for brokers whose share
// of preferred partitions led elsewhere is above
// leader.imbalance.per.broker.percentage (Kafka's
// checkAndTriggerAutoLeaderRebalance).
func (b *Broker) balanceLeaders(ctx context.Context) {
	pct := b.settings.brokerInt64("leader.imbalance.per.broker.percentage", 10)
	view := b.clusterView()
	type cand struct {
		cur metadata.PartitionState
		st  replication.PartitionState
	}
	preferred := map[int32]int{}
	misplaced := map[int32][]cand{}
	for _, ts := range b.topics.all() {
		for p := int32(0); p < ts.meta().Partitions; p++ {
			replicas := replicasFor(ts.meta(), p)
			cur, ok := b.partitionState(ts.meta().Name, p)
			if len(replicas) == 0 || !ok {
				continue
			}
			pref := replicas[0]
			preferred[pref]++
			if cur.Leader != pref {
				misplaced[pref] = append(misplaced[pref], cand{cur, toReplicationState(cur, replicas)})
			}
		}
	}
	for id, cs := range misplaced {
		if int64(len(cs))*100 <= pct*int64(preferred[id]) {
			continue
		}
		for _, c := range cs {
			next, err := replication.ElectPreferredLeader(c.st, view)
			if err != nil {
				continue
			}
			_ = b.writeDecision(ctx, c.cur, c.st, next, "preferred leader election")
		}
	}
}
