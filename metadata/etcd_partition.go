package metadata

import (
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
