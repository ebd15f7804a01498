package broker

// Fetch from followers (replica id >= 0: ReplicaID before v15,
// ReplicaState from v15, KIP-903).
//
// A follower's fetch goes through the partition's replication.Leader,
// which validates the follower's epoch (KIP-320), reports a DivergingEpoch
// when the follower's log does not match (Fetch v12+, KIP-595), and records
// the follower's position, which may expand the ISR and advance the high
// watermark. Followers read up to the log end offset, not the HW, and the
// answer carries the HW (Kafka's Partition.fetchRecords as leader). A fetch
// that finds nothing long-polls like a consumer's, woken by appends, except
// that it answers at once when the HW it would report moved since the
// follower's previous fetch: that is how the follower learns the HW
// without waiting for more data.

import (
	"errors"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/replication"
	"github.com/sluicedev/sluice/storage"
)

// replicaFetcher reads for follower id: up to the log end, through the
// partition's Leader.
func (b *Broker) replicaFetcher(id int32, now time.Time) partFetcher {
	return func(ts *topicState, rp *kmsg.FetchRequestTopicPartition, sp *kmsg.FetchResponseTopicPartition,
		budget int, minOne bool, out *fetchReply, at [2]int) (waitTarget, int, bool) {
		return b.replicaFetchPartition(ts, id, rp, sp, budget, minOne, now, out, at)
	}
}

// replicaFetchPartition answers one partition of a follower fetch.
func (b *Broker) replicaFetchPartition(ts *topicState, id int32, rp *kmsg.FetchRequestTopicPartition, sp *kmsg.FetchResponseTopicPartition,
	budget int, minOne bool, now time.Time, out *fetchReply, at [2]int) (waitTarget, int, bool) {
	if rp.Partition < 0 || rp.Partition >= ts.meta().Partitions {
		sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
		return waitTarget{}, 0, false
	}
	p := ts.partition(rp.Partition)
	if p == nil {
		sp.ErrorCode = kerr.NotLeaderForPartition.Code
		return waitTarget{}, 0, false
	}
	wake := waitTarget{log: p.log}
	dec, leo, hwMoved := p.rep.followerFetch(replication.FollowerFetch{
		ReplicaID:          id,
		CurrentLeaderEpoch: rp.CurrentLeaderEpoch,
		FetchOffset:        rp.FetchOffset,
		LastFetchedEpoch:   rp.LastFetchedEpoch,
		Now:                now,
	})
	sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = dec.HighWatermark, dec.HighWatermark, dec.LogStartOffset
	switch {
	case dec.Err != nil:
		sp.ErrorCode = errorCode(dec.Err)
		return waitTarget{}, 0, true
	case dec.DivergingEpoch != nil:
		sp.DivergingEpoch.Epoch, sp.DivergingEpoch.EndOffset = dec.DivergingEpoch.Epoch, dec.DivergingEpoch.EndOffset
		return waitTarget{}, 0, true
	}
	limit := min(int(rp.PartitionMaxBytes), budget)
	if rp.FetchOffset >= leo || (limit <= 0 && !minOne) {
		return wake, 0, hwMoved
	}
	data, span, err := out.read(p.log, rp.FetchOffset, int32(max(limit, 1)), leo)
	switch {
	case errors.Is(err, storage.ErrOffsetOutOfRange):
		return wake, 0, hwMoved // truncated meanwhile; the next round decides again
	case err != nil:
		sp.ErrorCode = kerr.KafkaStorageError.Code
		b.log.Error("replica fetch read failed", "topic", ts.meta().Name, "partition", rp.Partition, "err", err)
		return waitTarget{}, 0, true
	}
	n := len(data) + int(span.Len)
	if n > limit && !minOne {
		span.Release()
		return wake, 0, hwMoved
	}
	if n > 0 {
		sp.RecordBatches = out.keep(at, data, span)
	}
	return wake, n, hwMoved
}

// fillCurrentLeader adds the partition's leader to a NOT_LEADER_OR_FOLLOWER
// or FENCED_LEADER_EPOCH answer (KIP-951, Fetch v16), so the client can go
// there without a metadata round trip.
func (b *Broker) fillCurrentLeader(out *fetchReply, ts *topicState, part int32, sp *kmsg.FetchResponseTopicPartition) {
	if out.Version < 16 || ts == nil {
		return
	}
	st, ok := b.partitionState(ts.meta().Name, part)
	if !ok || st.Leader < 0 {
		return
	}
	sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = st.Leader, st.LeaderEpoch
	if slices.ContainsFunc(out.Brokers, func(br kmsg.FetchResponseBroker) bool { return br.NodeID == st.Leader }) {
		return
	}
	if br, ok := b.brokers.get(st.Leader); ok {
		fb := kmsg.NewFetchResponseBroker()
		fb.NodeID, fb.Host, fb.Port = br.NodeID, br.Host, br.Port
		if br.Rack != "" {
			fb.Rack = kmsg.StringPtr(br.Rack)
		}
		out.Brokers = append(out.Brokers, fb)
	}
}
