package metadata

import (
	"context"
	"fmt"
	"maps"
	"slices"
)

// GroupConfig implements Store.
func (m *Memory) GroupConfig(_ context.Context, group string) (GroupConfig, error) {
	if group == "" {
		return GroupConfig{}, ErrInvalidGroupConfig
	}
	if err := m.lock(); err != nil {
		return GroupConfig{}, err
	}
	defer m.mu.Unlock()
	if got, ok := m.mu.groupConfigs[groupConfigKey(group)]; ok {
		return cloneGroupConfig(got), nil
	}
	return GroupConfig{Group: group, Configs: map[string]string{}}, nil
}

// GroupConfigs implements Store.
func (m *Memory) GroupConfigs(context.Context) ([]GroupConfig, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	return m.groupConfigsLocked(), nil
}

func (m *Memory) groupConfigsLocked() []GroupConfig {
	out := make([]GroupConfig, 0, len(m.mu.groupConfigs))
	for _, k := range slices.Sorted(maps.Keys(m.mu.groupConfigs)) {
		out = append(out, cloneGroupConfig(m.mu.groupConfigs[k]))
	}
	return out
}

// SetGroupConfig implements Store.
func (m *Memory) SetGroupConfig(_ context.Context, c GroupConfig) (GroupConfig, error) {
	if c.Group == "" {
		return GroupConfig{}, ErrInvalidGroupConfig
	}
	c = cloneGroupConfig(c)
	if err := m.lock(); err != nil {
		return GroupConfig{}, err
	}
	defer m.mu.Unlock()
	k := groupConfigKey(c.Group)
	old, exists := m.mu.groupConfigs[k]
	if (exists && old.Revision != c.Revision) || (!exists && c.Revision != 0) {
		return GroupConfig{}, fmt.Errorf("set group config %q at revision %d: %w", c.Group, c.Revision, ErrConflict)
	}
	m.mu.rev++
	if len(c.Configs) == 0 {
		c.Revision = 0
		if exists {
			delete(m.mu.groupConfigs, k)
			for w := range m.mu.groupConfigWatchers {
				w.push(GroupConfigEvent{Type: EventDelete, Config: cloneGroupConfig(old)})
			}
		}
		return c, nil
	}
	c.Revision = m.mu.rev
	m.mu.groupConfigs[k] = cloneGroupConfig(c)
	for w := range m.mu.groupConfigWatchers {
		w.push(GroupConfigEvent{Type: EventPut, Config: cloneGroupConfig(c)})
	}
	return c, nil
}

// WatchGroupConfigs implements Store.
func (m *Memory) WatchGroupConfigs(ctx context.Context) (<-chan GroupConfigEvent, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	w := newMemWatcher[GroupConfigEvent]()
	for _, c := range m.groupConfigsLocked() {
		w.push(GroupConfigEvent{Type: EventPut, Config: c, Snapshot: true})
	}
	m.mu.groupConfigWatchers[w] = struct{}{}
	m.startWatchLocked(ctx, w.pump, func() { delete(m.mu.groupConfigWatchers, w) })
	return w.out, nil
}

// Features implements Store.
func (m *Memory) Features(context.Context) (FinalizedFeatures, error) {
	if err := m.lock(); err != nil {
		return FinalizedFeatures{}, err
	}
	defer m.mu.Unlock()
	return cloneFeatures(m.mu.features), nil
}

// SetFeatures implements Store.
func (m *Memory) SetFeatures(_ context.Context, f FinalizedFeatures) (FinalizedFeatures, error) {
	f = cloneFeatures(f)
	if err := m.lock(); err != nil {
		return FinalizedFeatures{}, err
	}
	defer m.mu.Unlock()
	if f.Revision != m.mu.features.Revision {
		return FinalizedFeatures{}, fmt.Errorf("set finalized features at revision %d: %w", f.Revision, ErrConflict)
	}
	m.mu.rev++
	f.Revision = m.mu.rev
	m.mu.features = cloneFeatures(f)
	for w := range m.mu.featureWatchers {
		w.push(FeaturesEvent{Features: cloneFeatures(f)})
	}
	return f, nil
}

// WatchFeatures implements Store.
func (m *Memory) WatchFeatures(ctx context.Context) (<-chan FeaturesEvent, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	w := newMemWatcher[FeaturesEvent]()
	if m.mu.features.Revision != 0 {
		w.push(FeaturesEvent{Features: cloneFeatures(m.mu.features), Snapshot: true})
	}
	m.mu.featureWatchers[w] = struct{}{}
	m.startWatchLocked(ctx, w.pump, func() { delete(m.mu.featureWatchers, w) })
	return w.out, nil
}
