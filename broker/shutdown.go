package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sluicedev/sluice/metadata"
	"github.com/sluicedev/sluice/replication"
)

// replicaTick is how often led partitions are ticked: ISR shrink checks,
// acks=all timeouts and ISR change retries. Kafka checks ISR shrinks every
// replica.lag.time.max.ms/2; ticking faster only makes timeouts sharper.
const replicaTick = 100 * time.Millisecond

// tickReplicas ticks every led partition until ctx ends.
func (b *Broker) tickReplicas(ctx context.Context) {
	t := time.NewTicker(replicaTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			live := b.liveSet()
			isLive := func(id int32) bool { return live[id] }
			for _, ts := range b.topics.all() {
				minISR := ts.minInsync()
				for _, p := range ts.partitions() {
					if p != nil && p.rep.leading.Load() {
						p.rep.tick(now, isLive, minISR)
					}
				}
			}
		}
	}
}

// controlledShutdown hands this broker's leaderships over before it stops
// (Kafka's controlled shutdown): every partition it leads or is in the ISR
// of gets a record without it as leader and without it in the ISR, where
// another eligible ISR member exists (replication.ControlledShutdown). It
// waits, up to timeout, until the partitions it handed over are led
// elsewhere, so clients move before the connections close. Partitions
// where it is the only eligible ISR member keep it as leader until it is
// gone; the controller then takes them offline.
func (b *Broker) controlledShutdown(timeout time.Duration) {
	b.shuttingDown.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// Let the fetches already sent finish first: a leader long-polling one
	// records the fetch again on every wake-up and would propose this
	// broker back into the ISR right after it was taken out.
	for b.fetchers.inFlight.Load() > 0 && ctx.Err() == nil {
		sleepCtx(ctx, 5*time.Millisecond)
	}
	self := b.cfg.NodeID
	var moved []*partition
	remaining := 0
	for _, ts := range b.topics.all() {
		for p := int32(0); p < ts.meta().Partitions; p++ {
			cur, ok := b.partitionState(ts.meta().Name, p)
			if !ok || !slices.Contains(cur.ISR, self) {
				continue
			}
			next, err := b.shutdownOne(ctx, ts, p)
			switch {
			case err != nil:
				remaining++
			case next.Leader == self:
				remaining++
			case cur.Leader == self:
				if part := ts.partition(p); part != nil {
					moved = append(moved, part)
				}
			}
		}
	}
	for _, part := range moved {
		for part.rep.leading.Load() && ctx.Err() == nil {
			sleepCtx(ctx, 10*time.Millisecond)
		}
	}
	b.log.Info("controlled shutdown", "leaderships_moved", len(moved), "remaining", remaining)
}

// shutdownOne writes the controlled-shutdown record of one partition.
func (b *Broker) shutdownOne(ctx context.Context, ts *topicState, p int32) (replication.PartitionState, error) {
	return b.updatePartition(ctx, ts, p, "controlled shutdown", func(cur replication.PartitionState) (replication.PartitionState, error) {
		return replication.ControlledShutdown(cur, b.cfg.NodeID, b.clusterView())
	})
}

var (
	// errReadPartition wraps a failure to read a partition record.
	errReadPartition = errors.New("broker: read partition record")
	// errRecordChurn means the record changed under every attempt.
	errRecordChurn = errors.New("broker: the partition record kept changing")
)

// updatePartition reads a partition's stored record, lets decide compute
// the next one and writes it with compare-and-swap (writeDecision),
// deciding again from the fresher record on a conflict, up to four times.
// An unchanged decision is not written.
func (b *Broker) updatePartition(ctx context.Context, ts *topicState, p int32, why string,
	decide func(cur replication.PartitionState) (replication.PartitionState, error)) (replication.PartitionState, error) {
	replicas := replicasFor(ts.meta(), p)
	for range 4 {
		ms, err := b.meta.PartitionState(ctx, ts.meta().Name, p)
		if err != nil {
			return replication.PartitionState{}, fmt.Errorf("%w: %w", errReadPartition, err)
		}
		cur := toReplicationState(ms, replicas)
		next, err := decide(cur)
		if err != nil || next.PartitionEpoch == cur.PartitionEpoch {
			return next, err
		}
		err = b.writeDecision(ctx, ms, cur, next, why)
		if errors.Is(err, metadata.ErrConflict) {
			continue
		}
		return next, err
	}
	return replication.PartitionState{}, errRecordChurn
}

// leaveCluster ends this broker's registration once its leaderships are
// handed over, before the connections drain. The other brokers then count
// it out at once, as Kafka's count a broker in controlled shutdown
// ineligible (KIP-841): a leader no longer waits for it to fetch before it
// advances the high watermark, where it would otherwise wait for up to
// replica.lag.time.max.ms, and stall the acks=all requests (transaction
// state writes among them) that this broker's own draining requests may be
// waiting for. The controller re-elects what it still leads.
func (b *Broker) leaveCluster() {
	b.leaving.Store(true)
	if reg := b.reg.Load(); reg != nil {
		if err := reg.Close(); err != nil {
			b.log.Warn("ending the registration", "err", err)
		}
	}
}
