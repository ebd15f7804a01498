package metadata

import (
	"cmp"
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// PartitionState implements Store.
func (e *Etcd) PartitionState(ctx context.Context, topic string, partition int32) (PartitionState, error) {
	if err := e.closed(); err != nil {
		return PartitionState{}, err
	}
	if err := validatePartition(PartitionState{Topic: topic, Partition: partition}); err != nil {
		return PartitionState{}, fmt.Errorf("partition %q-%d: %w", topic, partition, ErrPartitionNotFound)
	}
	resp, err := e.cli.Get(ctx, e.partitionKey(topic, partition))
	if err != nil {
		return PartitionState{}, fmt.Errorf("metadata: partition %s-%d: %w", topic, partition, err)
	}
	if len(resp.Kvs) == 0 {
		return PartitionState{}, fmt.Errorf("partition %s-%d: %w", topic, partition, ErrPartitionNotFound)
	}
	return decodePartition(topic, partition, resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
}

// PartitionStates implements Store.
func (e *Etcd) PartitionStates(ctx context.Context, topic string) ([]PartitionState, error) {
	if err := e.closed(); err != nil {
		return nil, err
	}
	if !validName(topic) {
		return []PartitionState{}, nil
	}
	pfx := e.partitionPrefix(topic)
	resp, err := e.cli.Get(ctx, pfx, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("metadata: partitions of %q: %w", topic, err)
	}
	out := make([]PartitionState, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		p, err := strconv.ParseInt(strings.TrimPrefix(string(kv.Key), pfx), 10, 32)
		if err != nil {
			e.log.Warn("skipping malformed partition key", "key", string(kv.Key))
			continue
		}
		s, err := decodePartition(topic, int32(p), kv.Value, kv.ModRevision)
		if err != nil {
			e.log.Warn("skipping undecodable partition record", "key", string(kv.Key), "err", err)
			continue
		}
		out = append(out, s)
	}
	// Keys sort as strings ("10" < "2"); callers want partition order.
	sort.Slice(out, func(i, j int) bool { return out[i].Partition < out[j].Partition })
	return out, nil
}

// SetPartitionState implements Store. One transaction checks that the
// topic still exists and that the record is at the expected revision.
func (e *Etcd) SetPartitionState(ctx context.Context, s PartitionState) (PartitionState, error) {
	if err := e.closed(); err != nil {
		return PartitionState{}, err
	}
	if err := validatePartition(s); err != nil {
		return PartitionState{}, err
	}
	s = clonePartition(s)
	val, err := encodePartition(s)
	if err != nil {
		return PartitionState{}, err
	}
	tk, pk := e.topicKey(s.Topic), e.partitionKey(s.Topic, s.Partition)
	resp, err := e.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(tk), ">", 0),
			clientv3.Compare(clientv3.ModRevision(pk), "=", s.Revision)).
		Then(clientv3.OpPut(pk, string(val))).
		Else(clientv3.OpGet(tk, clientv3.WithCountOnly())).
		Commit()
	if err != nil {
		return PartitionState{}, fmt.Errorf("metadata: set partition %s-%d: %w", s.Topic, s.Partition, err)
	}
	if !resp.Succeeded {
		if resp.Responses[0].GetResponseRange().Count == 0 {
			return PartitionState{}, fmt.Errorf("set partition %s-%d: %w", s.Topic, s.Partition, ErrTopicNotFound)
		}
		return PartitionState{}, fmt.Errorf("set partition %s-%d at revision %d: %w",
			s.Topic, s.Partition, s.Revision, ErrConflict)
	}
	s.Revision = resp.Header.Revision
	return s, nil
}

// WatchPartitions implements Store. Keys are "<topic>/<partition>" under
// "<prefix>/partitions/"; the snapshot is sorted by topic name, then by
// partition number, which byte order is not ("t/10" < "t/2", "a.b/0" <
// "a/0").
func (e *Etcd) WatchPartitions(ctx context.Context) (<-chan PartitionEvent, error) {
	ch := make(chan PartitionEvent, watchBuffer)
	emit := func(ctx context.Context, ev kvEvent) bool {
		topic, p, ok := splitPartitionKey(ev.key)
		if !ok {
			e.log.Warn("skipping malformed partition key", "key", ev.key)
			return true
		}
		s, err := decodePartition(topic, p, ev.value, ev.rev)
		if err != nil {
			e.log.Warn("skipping undecodable partition record", "key", ev.key, "err", err)
			return true
		}
		select {
		case ch <- PartitionEvent{Type: ev.typ, State: s, Snapshot: ev.snapshot}:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if err := e.watchPrefix(ctx, e.key("partitions")+"/", comparePartitionKeys, emit, func() { close(ch) }); err != nil {
		return nil, wrapWatchErr("partitions", err)
	}
	return ch, nil
}

// splitPartitionKey splits "<topic>/<partition>" at its last '/'.
func splitPartitionKey(k string) (topic string, partition int32, ok bool) {
	i := strings.LastIndexByte(k, '/')
	if i <= 0 {
		return "", 0, false
	}
	p, err := strconv.ParseInt(k[i+1:], 10, 32)
	if err != nil || p < 0 {
		return "", 0, false
	}
	return k[:i], int32(p), true
}

// comparePartitionKeys orders "<topic>/<partition>" keys by topic, then
// partition number; malformed keys go last, in byte order.
func comparePartitionKeys(a, b string) int {
	ta, pa, oka := splitPartitionKey(a)
	tb, pb, okb := splitPartitionKey(b)
	switch {
	case oka && okb:
		if c := strings.Compare(ta, tb); c != 0 {
			return c
		}
		return cmp.Compare(pa, pb)
	case oka != okb:
		if oka {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}
