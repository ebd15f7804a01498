package metadata

import (
	"context"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func (e *Etcd) quotaPrefix() string { return e.key("quotas") + "/" }

// ClientQuota implements Store.
func (e *Etcd) ClientQuota(ctx context.Context, ent QuotaEntity) (ClientQuota, error) {
	if err := e.closed(); err != nil {
		return ClientQuota{}, err
	}
	q := ClientQuota{Entity: ent, Values: map[string]float64{}}
	if err := validateQuota(q); err != nil {
		return ClientQuota{}, err
	}
	k := quotaKey(ent)
	resp, err := e.cli.Get(ctx, e.quotaPrefix()+k)
	if err != nil {
		return ClientQuota{}, fmt.Errorf("metadata: get quota %q: %w", k, err)
	}
	if len(resp.Kvs) == 0 {
		return q, nil
	}
	return decodeQuota(k, resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
}

// ClientQuotas implements Store. Undecodable records are logged and
// skipped, as Topics does.
func (e *Etcd) ClientQuotas(ctx context.Context) ([]ClientQuota, error) {
	if err := e.closed(); err != nil {
		return nil, err
	}
	pfx := e.quotaPrefix()
	resp, err := e.cli.Get(ctx, pfx, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("metadata: list quotas: %w", err)
	}
	out := make([]ClientQuota, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		q, err := decodeQuota(strings.TrimPrefix(string(kv.Key), pfx), kv.Value, kv.ModRevision)
		if err != nil {
			e.log.Warn("skipping undecodable quota record", "key", string(kv.Key), "err", err)
			continue
		}
		out = append(out, q)
	}
	return out, nil
}

// SetClientQuota implements Store with one compare-and-swap transaction on
// the entity's key.
func (e *Etcd) SetClientQuota(ctx context.Context, q ClientQuota) (ClientQuota, error) {
	if err := e.closed(); err != nil {
		return ClientQuota{}, err
	}
	if err := validateQuota(q); err != nil {
		return ClientQuota{}, err
	}
	q = cloneQuota(q)
	k := quotaKey(q.Entity)
	full := e.quotaPrefix() + k
	cmp := clientv3.Compare(clientv3.ModRevision(full), "=", q.Revision)
	if q.Revision == 0 {
		cmp = clientv3.Compare(clientv3.CreateRevision(full), "=", 0)
	}
	op := clientv3.OpDelete(full)
	if len(q.Values) > 0 {
		val, err := encodeQuota(q)
		if err != nil {
			return ClientQuota{}, err
		}
		op = clientv3.OpPut(full, string(val))
	}
	resp, err := e.cli.Txn(ctx).If(cmp).Then(op).Commit()
	if err != nil {
		return ClientQuota{}, fmt.Errorf("metadata: set quota %q: %w", k, err)
	}
	if !resp.Succeeded {
		return ClientQuota{}, fmt.Errorf("set quota %q at revision %d: %w", k, q.Revision, ErrConflict)
	}
	q.Revision = resp.Header.Revision
	if len(q.Values) == 0 {
		q.Revision = 0
	}
	return q, nil
}

// WatchClientQuotas implements Store.
func (e *Etcd) WatchClientQuotas(ctx context.Context) (<-chan ClientQuotaEvent, error) {
	ch := make(chan ClientQuotaEvent, watchBuffer)
	emit := func(ctx context.Context, ev kvEvent) bool {
		q, err := decodeQuota(ev.key, ev.value, ev.rev)
		if err != nil {
			e.log.Warn("skipping undecodable quota record", "key", ev.key, "err", err)
			return true
		}
		select {
		case ch <- ClientQuotaEvent{Type: ev.typ, Quota: q, Snapshot: ev.snapshot}:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if err := e.watchPrefix(ctx, e.quotaPrefix(), nil, emit, func() { close(ch) }); err != nil {
		return nil, wrapWatchErr("quotas", err)
	}
	return ch, nil
}
