package metadata

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func (e *Etcd) groupConfigPrefix() string { return e.key("groupconfigs") + "/" }

// GroupConfig implements Store.
func (e *Etcd) GroupConfig(ctx context.Context, group string) (GroupConfig, error) {
	if err := e.closed(); err != nil {
		return GroupConfig{}, err
	}
	if group == "" {
		return GroupConfig{}, ErrInvalidGroupConfig
	}
	k := groupConfigKey(group)
	resp, err := e.cli.Get(ctx, e.groupConfigPrefix()+k)
	if err != nil {
		return GroupConfig{}, fmt.Errorf("metadata: get group config %q: %w", group, err)
	}
	if len(resp.Kvs) == 0 {
		return GroupConfig{Group: group, Configs: map[string]string{}}, nil
	}
	return decodeGroupConfig(k, resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
}

// GroupConfigs implements Store. Undecodable records are logged and
// skipped, as Topics does.
func (e *Etcd) GroupConfigs(ctx context.Context) ([]GroupConfig, error) {
	if err := e.closed(); err != nil {
		return nil, err
	}
	pfx := e.groupConfigPrefix()
	resp, err := e.cli.Get(ctx, pfx, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("metadata: list group configs: %w", err)
	}
	out := make([]GroupConfig, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		c, err := decodeGroupConfig(strings.TrimPrefix(string(kv.Key), pfx), kv.Value, kv.ModRevision)
		if err != nil {
			e.log.Warn("skipping undecodable group config", "key", string(kv.Key), "err", err)
			continue
		}
		out = append(out, c)
	}
	return out, nil
}

// SetGroupConfig implements Store with one compare-and-swap transaction on
// the group's key.
func (e *Etcd) SetGroupConfig(ctx context.Context, c GroupConfig) (GroupConfig, error) {
	if err := e.closed(); err != nil {
		return GroupConfig{}, err
	}
	if c.Group == "" {
		return GroupConfig{}, ErrInvalidGroupConfig
	}
	c = cloneGroupConfig(c)
	full := e.groupConfigPrefix() + groupConfigKey(c.Group)
	cmp := clientv3.Compare(clientv3.ModRevision(full), "=", c.Revision)
	if c.Revision == 0 {
		cmp = clientv3.Compare(clientv3.CreateRevision(full), "=", 0)
	}
	op := clientv3.OpDelete(full)
	if len(c.Configs) > 0 {
		val, err := encodeGroupConfig(c)
		if err != nil {
			return GroupConfig{}, err
		}
		op = clientv3.OpPut(full, string(val))
	}
	resp, err := e.cli.Txn(ctx).If(cmp).Then(op).Commit()
	if err != nil {
		return GroupConfig{}, fmt.Errorf("metadata: set group config %q: %w", c.Group, err)
	}
	if !resp.Succeeded {
		return GroupConfig{}, fmt.Errorf("set group config %q at revision %d: %w", c.Group, c.Revision, ErrConflict)
	}
	c.Revision = resp.Header.Revision
	if len(c.Configs) == 0 {
		c.Revision = 0
	}
	return c, nil
}

// WatchGroupConfigs implements Store.
func (e *Etcd) WatchGroupConfigs(ctx context.Context) (<-chan GroupConfigEvent, error) {
	ch := make(chan GroupConfigEvent, watchBuffer)
	emit := func(ctx context.Context, ev kvEvent) bool {
		c, err := decodeGroupConfig(ev.key, ev.value, ev.rev)
		if err != nil {
			e.log.Warn("skipping undecodable group config", "key", ev.key, "err", err)
			return true
		}
		select {
		case ch <- GroupConfigEvent{Type: ev.typ, Config: c, Snapshot: ev.snapshot}:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if err := e.watchPrefix(ctx, e.groupConfigPrefix(), nil, emit, func() { close(ch) }); err != nil {
		return nil, wrapWatchErr("group configs", err)
	}
	return ch, nil
}

// featuresPrefix holds one key, "finalized": the JSON map of levels.
func (e *Etcd) featuresPrefix() string { return e.key("features") + "/" }

func (e *Etcd) featuresKey() string { return e.featuresPrefix() + "finalized" }

// Features implements Store.
func (e *Etcd) Features(ctx context.Context) (FinalizedFeatures, error) {
	if err := e.closed(); err != nil {
		return FinalizedFeatures{}, err
	}
	resp, err := e.cli.Get(ctx, e.featuresKey())
	if err != nil {
		return FinalizedFeatures{}, fmt.Errorf("metadata: get finalized features: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return FinalizedFeatures{Levels: map[string]int16{}}, nil
	}
	return decodeFeatures(resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
}

// SetFeatures implements Store with one compare-and-swap transaction.
func (e *Etcd) SetFeatures(ctx context.Context, f FinalizedFeatures) (FinalizedFeatures, error) {
	if err := e.closed(); err != nil {
		return FinalizedFeatures{}, err
	}
	f = cloneFeatures(f)
	k := e.featuresKey()
	cmp := clientv3.Compare(clientv3.ModRevision(k), "=", f.Revision)
	if f.Revision == 0 {
		cmp = clientv3.Compare(clientv3.CreateRevision(k), "=", 0)
	}
	val, err := json.Marshal(f.Levels)
	if err != nil {
		return FinalizedFeatures{}, err
	}
	resp, err := e.cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(k, string(val))).Commit()
	if err != nil {
		return FinalizedFeatures{}, fmt.Errorf("metadata: set finalized features: %w", err)
	}
	if !resp.Succeeded {
		return FinalizedFeatures{}, fmt.Errorf("set finalized features at revision %d: %w", f.Revision, ErrConflict)
	}
	f.Revision = resp.Header.Revision
	return f, nil
}

// WatchFeatures implements Store. A deleted record (never written by
// Sluice) is reported as no levels at revision 0.
func (e *Etcd) WatchFeatures(ctx context.Context) (<-chan FeaturesEvent, error) {
	ch := make(chan FeaturesEvent, watchBuffer)
	emit := func(ctx context.Context, ev kvEvent) bool {
		if ev.key != "finalized" {
			return true
		}
		f := FinalizedFeatures{Levels: map[string]int16{}}
		if ev.typ == EventPut {
			var err error
			if f, err = decodeFeatures(ev.value, ev.rev); err != nil {
				e.log.Warn("skipping undecodable finalized features", "err", err)
				return true
			}
		}
		select {
		case ch <- FeaturesEvent{Features: f, Snapshot: ev.snapshot}:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if err := e.watchPrefix(ctx, e.featuresPrefix(), nil, emit, func() { close(ch) }); err != nil {
		return nil, wrapWatchErr("features", err)
	}
	return ch, nil
}
