package metadata

import (
	"cmp"
	"context"
	"errors"
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

// maxTxnOps is etcd's default limit on the operations of one transaction
// (--max-txn-ops): compares, then-ops and else-ops are each checked
// against it.
const maxTxnOps = 128

// CreatePartitionStates implements Store. Each transaction checks that the
// topic exists and that none of its (up to maxTxnOps-1) partitions has a
// record, then writes them all. A transaction that fails because some
// record exists is redone one partition at a time, skipping those.
func (e *Etcd) CreatePartitionStates(ctx context.Context, states []PartitionState) ([]PartitionState, error) {
	if err := e.closed(); err != nil {
		return nil, err
	}
	for _, s := range states {
		if err := validatePartition(s); err != nil {
			return nil, err
		}
	}
	var out []PartitionState
	for len(states) > 0 {
		n := min(len(states), maxTxnOps-1)
		chunk := states[:n]
		states = states[n:]
		written, err := e.createPartitionChunk(ctx, chunk)
		if err != nil {
			return out, err
		}
		out = append(out, written...)
	}
	return out, nil
}

func (e *Etcd) createPartitionChunk(ctx context.Context, chunk []PartitionState) ([]PartitionState, error) {
	topic := chunk[0].Topic
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(e.topicKey(topic)), ">", 0)}
	puts := make([]clientv3.Op, 0, len(chunk))
	for _, s := range chunk {
		if s.Topic != topic {
			return nil, fmt.Errorf("metadata: create partition states of %q and %q in one call", topic, s.Topic)
		}
		val, err := encodePartition(clonePartition(s))
		if err != nil {
			return nil, err
		}
		pk := e.partitionKey(s.Topic, s.Partition)
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(pk), "=", 0))
		puts = append(puts, clientv3.OpPut(pk, string(val)))
	}
	resp, err := e.cli.Txn(ctx).If(cmps...).Then(puts...).Else(clientv3.OpGet(e.topicKey(topic), clientv3.WithCountOnly())).Commit()
	if err != nil {
		return nil, fmt.Errorf("metadata: create %d partition states of %s: %w", len(chunk), topic, err)
	}
	if resp.Succeeded {
		out := make([]PartitionState, len(chunk))
		for i, s := range chunk {
			out[i] = clonePartition(s)
			out[i].Revision = resp.Header.Revision
		}
		return out, nil
	}
	if resp.Responses[0].GetResponseRange().Count == 0 {
		return nil, fmt.Errorf("create partition states of %s: %w", topic, ErrTopicNotFound)
	}
	var out []PartitionState
	for _, s := range chunk {
		s.Revision = 0
		w, err := e.SetPartitionState(ctx, s)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return out, err
		}
		out = append(out, w)
	}
	return out, nil
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
