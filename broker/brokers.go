package broker

import (
	"context"
	"sort"
	"sync"

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
