package broker

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/sluicedev/sluice/metadata"
)

// brokerCache is this broker's view of the live brokers, fed by etcd.
type brokerCache struct {
	mu struct {
		sync.RWMutex
		byID map[int32]metadata.Broker
	}
}

func newBrokerCache() *brokerCache {
	c := &brokerCache{}
	c.mu.byID = map[int32]metadata.Broker{}
	return c
}

func (c *brokerCache) put(br metadata.Broker) {
	c.mu.Lock()
	c.mu.byID[br.NodeID] = br
	c.mu.Unlock()
}

func (c *brokerCache) get(id int32) (metadata.Broker, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	br, ok := c.mu.byID[id]
	return br, ok
}

func (c *brokerCache) remove(id int32) {
	c.mu.Lock()
	delete(c.mu.byID, id)
	c.mu.Unlock()
}

// liveBrokers lists registered brokers ordered by node id. This broker is
// always included: it is serving, whatever etcd's watch has delivered yet.
func (b *Broker) liveBrokers() []metadata.Broker {
	b.brokers.mu.RLock()
	out := make([]metadata.Broker, 0, len(b.brokers.mu.byID)+1)
	self := false
	for _, br := range b.brokers.mu.byID {
		out = append(out, br)
		self = self || br.NodeID == b.cfg.NodeID
	}
	b.brokers.mu.RUnlock()
	if !self {
		out = append(out, metadata.Broker{NodeID: b.cfg.NodeID, Host: b.host, Port: b.port, Rack: b.cfg.Rack, Epoch: b.registrationEpoch()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out
}

// liveSet is the node ids of liveBrokers, for membership checks.
func (b *Broker) liveSet() map[int32]bool {
	live := map[int32]bool{}
	for _, br := range b.liveBrokers() {
		live[br.NodeID] = true
	}
	return live
}

// watchBrokers keeps the broker cache in step with etcd registrations.
func (b *Broker) watchBrokers(ctx context.Context) {
	b.keepWatching(ctx, "broker", func() error {
		ch, err := b.meta.WatchBrokers(ctx)
		if err != nil {
			return err
		}
		for ev := range ch {
			if ev.Type == metadata.EventDelete {
				b.brokers.remove(ev.Broker.NodeID)
				b.log.Info("broker left", "broker", ev.Broker.NodeID)
				b.signalCluster()
				b.withdrawCandidacies(ev.Broker.NodeID)
				continue
			}
			if old, ok := b.brokers.get(ev.Broker.NodeID); !ok || old.Epoch != ev.Broker.Epoch {
				b.log.Info("broker registered", "broker", ev.Broker.NodeID, "epoch", ev.Broker.Epoch)
			}
			b.brokers.put(ev.Broker)
			b.signalCluster()
		}
		return nil
	})
}

// withdrawCandidacies ends the controller candidacy of a broker whose
// registration is gone. The candidacy sits on a lease of its own, which
// etcd may expire seconds later than the registration's; meanwhile a dead
// controller would keep the election and no one would elect leaders for
// its partitions. A broker without a registration has stopped acting as a
// member anyway (it exits when it loses its lease).
func (b *Broker) withdrawCandidacies(id int32) {
	if id == b.cfg.NodeID {
		return
	}
	b.goroutines.Go("withdraw-candidacy", func() {
		ctx, cancel := context.WithTimeout(b.bgCtx(), 5*time.Second)
		defer cancel()
		if _, back := b.brokers.get(id); back {
			return // registered again meanwhile
		}
		if err := b.meta.WithdrawCandidacies(ctx, id); err != nil && ctx.Err() == nil {
			b.log.Warn("withdrawing a departed broker's controller candidacy", "broker", id, "err", err)
		}
	})
}
