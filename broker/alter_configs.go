package broker

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/metadata"
)

// configMutation turns a resource's current overrides into the new ones, or
// reports the Kafka error code and message for the client.
type configMutation func(cur map[string]string) (map[string]string, int16, *string)

// clusterDefaultsID is the node id under which cluster-wide dynamic broker
// settings (resource name "") are stored.
const clusterDefaultsID = -1

// alterResource applies mutate to a topic or broker resource. Topic changes
// are written with compare-and-swap and retried a few times on conflict.
func (b *Broker) alterResource(ctx context.Context, typ kmsg.ConfigResourceType, name string, mutate configMutation, validateOnly bool) (int16, *string) {
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
		return b.alterTopicConfigs(ctx, name, mutate, validateOnly)
	case kmsg.ConfigResourceTypeBroker:
		return b.alterBrokerConfigs(ctx, name, mutate, validateOnly)
	case kmsg.ConfigResourceTypeGroupConfig:
		return b.alterGroupConfigs(ctx, name, mutate, validateOnly)
	default:
		return kerr.InvalidRequest.Code, kmsg.StringPtr("unsupported resource type")
	}
}

func (b *Broker) alterTopicConfigs(ctx context.Context, name string, mutate configMutation, validateOnly bool) (int16, *string) {
	for attempt := 0; attempt < 5; attempt++ {
		ts := b.topics.get(name)
		if ts == nil {
			return kerr.UnknownTopicOrPartition.Code, nil
		}
		m := ts.meta()
		next, code, msg := mutate(copyMap(m.Configs))
		if code != 0 {
			return code, msg
		}
		if err := b.settings.validateTopicConfigs(next); err != nil {
			return kerr.InvalidConfig.Code, kmsg.StringPtr(err.Error())
		}
		if validateOnly {
			return 0, nil
		}
		m.Configs = next
		updated, err := b.meta.UpdateTopic(ctx, m)
		if errors.Is(err, metadata.ErrConflict) {
			if t, gerr := b.meta.Topic(ctx, name); gerr == nil {
				_ = b.applyTopic(t)
			}
			continue
		}
		if errors.Is(err, metadata.ErrTopicNotFound) {
			return kerr.UnknownTopicOrPartition.Code, nil
		}
		if err != nil {
			return kerr.UnknownServerError.Code, kmsg.StringPtr(err.Error())
		}
		if err := b.applyTopic(updated); err != nil {
			return kerr.KafkaStorageError.Code, kmsg.StringPtr(err.Error())
		}
		return 0, nil
	}
	return kerr.ConcurrentTransactions.Code, kmsg.StringPtr("the topic kept changing concurrently; retry")
}

func (b *Broker) alterBrokerConfigs(ctx context.Context, name string, mutate configMutation, validateOnly bool) (int16, *string) {
	id := int32(clusterDefaultsID)
	if name != "" {
		n, err := strconv.ParseInt(name, 10, 32)
		if err != nil || int32(n) != b.cfg.NodeID {
			return kerr.InvalidRequest.Code, kmsg.StringPtr("broker configs must be altered on the broker itself, or cluster-wide with an empty name")
		}
		id = int32(n)
	}
	cur, err := b.meta.BrokerConfigs(ctx, id)
	if err != nil {
		return kerr.UnknownServerError.Code, kmsg.StringPtr(err.Error())
	}
	next, code, msg := mutate(copyMap(cur))
	if code != 0 {
		return code, msg
	}
	keys := make([]string, 0, len(next))
	for k := range next {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		d, ok := b.settings.reg.broker[k]
		if !ok {
			return kerr.InvalidConfig.Code, kmsg.StringPtr("unknown broker config name: " + k)
		}
		if d.readOnly {
			return kerr.InvalidRequest.Code, kmsg.StringPtr(fmt.Sprintf("cannot update %s dynamically", k))
		}
		if err := d.check(next[k]); err != nil {
			return kerr.InvalidConfig.Code, kmsg.StringPtr(fmt.Sprintf("invalid value for %s: %v", k, err))
		}
	}
	if validateOnly {
		return 0, nil
	}
	if err := b.meta.SetBrokerConfigs(ctx, id, next); err != nil {
		return kerr.UnknownServerError.Code, kmsg.StringPtr(err.Error())
	}
	if err := b.reloadDynamicConfigs(ctx); err != nil {
		return kerr.UnknownServerError.Code, kmsg.StringPtr(err.Error())
	}
	return 0, nil
}

// watchBrokerConfigs applies dynamic broker settings altered through any
// broker: a change of the cluster-wide defaults or of this broker's own
// settings re-reads both (reloadDynamicConfigs), so every broker of the
// cluster serves the same values, as Kafka's brokers do.
func (b *Broker) watchBrokerConfigs(ctx context.Context) {
	b.keepWatching(ctx, "broker configs", func() error {
		ch, err := b.meta.WatchBrokerConfigs(ctx)
		if err != nil {
			return err
		}
		for ev := range ch {
			if ev.NodeID != clusterDefaultsID && ev.NodeID != b.cfg.NodeID {
				continue
			}
			if err := b.reloadDynamicConfigs(ctx); err != nil && ctx.Err() == nil {
				b.log.Error("applying dynamic broker configs", "node", ev.NodeID, "err", err)
			}
		}
		return nil
	})
}

// reloadDynamicConfigs reads the cluster-wide and per-broker dynamic settings
// from etcd and re-resolves every topic's effective settings.
func (b *Broker) reloadDynamicConfigs(ctx context.Context) error {
	def, err := b.meta.BrokerConfigs(ctx, clusterDefaultsID)
	if err != nil {
		return fmt.Errorf("read cluster-wide broker configs: %w", err)
	}
	mine, err := b.meta.BrokerConfigs(ctx, b.cfg.NodeID)
	if err != nil {
		return fmt.Errorf("read broker configs: %w", err)
	}
	b.settings.setDynamic(mine, def)
	b.groupCfg.refresh(b.settings)
	for _, ts := range b.topics.all() {
		tc := b.settings.resolveTopic(ts.meta().Configs)
		ts.cfg.Store(tc)
		cfg := tc.storage
		for _, p := range ts.partitions() {
			if p != nil {
				p.log.SetConfig(cfg)
			}
		}
	}
	return nil
}
