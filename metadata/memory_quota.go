package metadata

import (
	"context"
	"fmt"
	"maps"
	"slices"
)

// ClientQuota implements Store.
func (m *Memory) ClientQuota(_ context.Context, e QuotaEntity) (ClientQuota, error) {
	q := ClientQuota{Entity: e, Values: map[string]float64{}}
	if err := validateQuota(q); err != nil {
		return ClientQuota{}, err
	}
	if err := m.lock(); err != nil {
		return ClientQuota{}, err
	}
	defer m.mu.Unlock()
	if got, ok := m.mu.quotas[quotaKey(e)]; ok {
		return cloneQuota(got), nil
	}
	return q, nil
}

// ClientQuotas implements Store.
func (m *Memory) ClientQuotas(context.Context) ([]ClientQuota, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	return m.quotasLocked(), nil
}

func (m *Memory) quotasLocked() []ClientQuota {
	out := make([]ClientQuota, 0, len(m.mu.quotas))
	for _, k := range slices.Sorted(maps.Keys(m.mu.quotas)) {
		out = append(out, cloneQuota(m.mu.quotas[k]))
	}
	return out
}

// SetClientQuota implements Store.
func (m *Memory) SetClientQuota(_ context.Context, q ClientQuota) (ClientQuota, error) {
	if err := validateQuota(q); err != nil {
		return ClientQuota{}, err
	}
	q = cloneQuota(q)
	if err := m.lock(); err != nil {
		return ClientQuota{}, err
	}
	defer m.mu.Unlock()
	k := quotaKey(q.Entity)
	old, exists := m.mu.quotas[k]
	if (exists && old.Revision != q.Revision) || (!exists && q.Revision != 0) {
		return ClientQuota{}, fmt.Errorf("set quota %q at revision %d: %w", k, q.Revision, ErrConflict)
	}
	m.mu.rev++
	if len(q.Values) == 0 {
		q.Revision = 0
		if exists {
			delete(m.mu.quotas, k)
			m.publishQuotaLocked(EventDelete, old)
		}
		return q, nil
	}
	q.Revision = m.mu.rev
	m.mu.quotas[k] = cloneQuota(q)
	m.publishQuotaLocked(EventPut, q)
	return q, nil
}

// WatchClientQuotas implements Store.
func (m *Memory) WatchClientQuotas(ctx context.Context) (<-chan ClientQuotaEvent, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	w := newMemWatcher[ClientQuotaEvent]()
	for _, q := range m.quotasLocked() {
		w.push(ClientQuotaEvent{Type: EventPut, Quota: q, Snapshot: true})
	}
	m.mu.quotaWatchers[w] = struct{}{}
	m.startWatchLocked(ctx, w.pump, func() { delete(m.mu.quotaWatchers, w) })
	return w.out, nil
}

func (m *Memory) publishQuotaLocked(typ EventType, q ClientQuota) {
	for w := range m.mu.quotaWatchers {
		w.push(ClientQuotaEvent{Type: typ, Quota: cloneQuota(q)})
	}
}
