package broker

// The share coordinator's side of the broker (KIP-932): the
// __share_group_state topic, loading its partitions into
// coordinator/sharestate as leadership moves, persisting its records with
// acks=all, and the functions partition leaders and the share-group offset
// APIs use to read, write and delete share state wherever its coordinator
// is: in process when this broker leads the key's partition, otherwise
// through the peer pool.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/coordinator/share"
	"github.com/sluicedev/sluice/coordinator/sharestate"
	"github.com/sluicedev/sluice/protocol"
)

// shareStateTopic holds the share coordinator's records.
const shareStateTopic = "__share_group_state"

// errShareStateFenced means a newer state epoch or leader epoch of the
// share-partition exists: the partition leader must read the state again.
var errShareStateFenced = errors.New("broker: share state fenced")

// Bounds of the retries of a share state request whose coordinator is
// moving or loading (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS,
// COORDINATOR_NOT_AVAILABLE, an unreachable peer).
const (
	shareStateRetryMin = 20 * time.Millisecond
	shareStateRetryMax = 500 * time.Millisecond
	shareStateRetryFor = 10 * time.Second
)

// newShareStateCoordinator builds the share coordinator from the broker
// settings.
func (b *Broker) newShareStateCoordinator() (*sharestate.Coordinator, error) {
	return sharestate.New(sharestate.Config{
		Logger:        b.log.With("component", "share-coordinator"),
		Persister:     shareStatePersister{b},
		NumPartitions: b.shareStatePartitions(),
		SnapshotEvery: b.shareSettings().SnapshotEvery,
	})
}

// shareStatePartitions is share.coordinator.state.topic.num.partitions.
func (b *Broker) shareStatePartitions() int32 {
	return b.shareSettings().StateTopicPartitions
}

// ensureShareStateTopic creates __share_group_state on first use, compacted,
// with share.coordinator.state.topic.replication.factor (capped at the
// live brokers) and share.coordinator.state.topic.min.isr (default 2)
// capped at that factor, as __transaction_state.
func (b *Broker) ensureShareStateTopic(ctx context.Context) error {
	sh := b.shareSettings()
	minISR := int64(sh.StateTopicMinISR)
	return b.ensureInternalTopic(ctx, shareStateTopic, sh.StateTopicPartitions, sh.StateTopicReplicationFactor, func(rf int16) map[string]string {
		return map[string]string{
			"cleanup.policy":                 "compact",
			"compression.type":               "uncompressed",
			"min.insync.replicas":            strconv.FormatInt(min(minISR, int64(rf)), 10),
			"unclean.leader.election.enable": "false",
		}
	})
}

// shareStateOnTransition hands the share coordinator the
// __share_group_state partitions this broker started or stopped leading;
// called from coordinatorsOnTransition under the transitions lock.
func (b *Broker) shareStateOnTransition(part *partition, t transition) {
	if b.shareState == nil || part.log.Topic() != shareStateTopic {
		return
	}
	switch t {
	case becameLeader:
		if b.shareState.Owns(part.index) {
			return
		}
		token := b.shareState.BeginLoad(part.index)
		ctx := b.bgCtx()
		b.goroutines.Go("share-state-load", func() {
			b.retryLoad(ctx, "share state", part.index,
				func() error { return b.shareState.LoadFrom(token, shareStateLogSource(b.codecs, part)) },
				sharestate.ErrLoadSuperseded, func() bool { return b.shareState.Loading(token) })
		})
	case stoppedLeading:
		b.shareState.Unload(part.index)
	}
}

// shareStateLogSource streams the records of a __share_group_state partition.
func shareStateLogSource(codecs *protocol.Codecs, part *partition) sharestate.RecordSource {
	return func(yield func(sharestate.Record) bool) error {
		return scanInternalLog(codecs, part.log, func(r internalRecord) bool {
			if r.marker != markerNone {
				return true
			}
			return yield(sharestate.Record{Key: r.key, Value: r.value})
		})
	}
}

// shareStatePersister writes share coordinator records to
// __share_group_state, as durably as an acks=all produce.
type shareStatePersister struct{ b *Broker }

// Persist appends records as one batch and waits for the ISR, bounded by
// request.timeout.ms.
func (sp shareStatePersister) Persist(ctx context.Context, partition int32, records []sharestate.Record) error {
	recs := numberedRecords(records, func(r sharestate.Record) ([]byte, []byte) { return r.Key, r.Value })
	err := sp.b.appendInternal(ctx, shareStateTopic, partition, recs, protocol.DefaultBatchOptions(), peerRequestTimeout)
	if errors.Is(err, errNoInternalPartition) {
		return fmt.Errorf("%w: %w", sharestate.ErrNotCoordinator, err)
	}
	return err
}

// shareStateCall sends one share coordinator request for the key k to the
// coordinator of k (this broker's, or a peer's), local answering it in
// process. It creates __share_group_state on first use and retries a
// coordinator that is moving or loading with backoff, within ctx and
// shareStateRetryFor. code extracts the request's one partition's error
// code from the answer.
func (b *Broker) shareStateCall(ctx context.Context, k share.Key, req kmsg.Request,
	local func(ctx context.Context) kmsg.Response, code func(kmsg.Response) int16) (kmsg.Response, error) {
	if b.shareState == nil {
		return nil, kerr.CoordinatorNotAvailable
	}
	deadline := time.Now().Add(shareStateRetryFor)
	wait := shareStateRetryMin
	for {
		resp, err := b.shareStateCallOnce(ctx, k, req, local)
		if err == nil {
			switch c := code(resp); c {
			case kerr.NotCoordinator.Code, kerr.CoordinatorLoadInProgress.Code, kerr.CoordinatorNotAvailable.Code:
				err = kerr.ErrorForCode(c)
			default:
				return resp, nil
			}
		}
		if ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			return nil, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		wait = min(2*wait, shareStateRetryMax)
	}
}

// shareStateCallOnce is one attempt of shareStateCall.
func (b *Broker) shareStateCallOnce(ctx context.Context, k share.Key, req kmsg.Request, local func(ctx context.Context) kmsg.Response) (kmsg.Response, error) {
	if err := b.ensureShareStateTopic(ctx); err != nil {
		return nil, fmt.Errorf("%w: %w", kerr.CoordinatorNotAvailable, err)
	}
	ts := b.topics.get(shareStateTopic)
	if ts == nil {
		return nil, kerr.CoordinatorNotAvailable
	}
	leader := b.leaderOf(ts.meta(), sharestate.PartitionFor(k, ts.meta().Partitions))
	switch {
	case leader < 0:
		return nil, kerr.CoordinatorNotAvailable
	case leader == b.cfg.NodeID:
		return local(ctx), nil
	}
	resp, err := b.peers.roundTrip(ctx, b, leader, req)
	if err != nil {
		return nil, fmt.Errorf("%w: share coordinator %d: %w", kerr.CoordinatorNotAvailable, leader, err)
	}
	return resp, nil
}

// shareStateCode is the error of a share coordinator answer's one
// partition: errShareStateFenced for the fencing codes.
func shareStateCode(c int16) error {
	switch c {
	case 0:
		return nil
	case kerr.FencedStateEpoch.Code, kerr.FencedLeaderEpoch.Code:
		return fmt.Errorf("%w: %w", errShareStateFenced, kerr.ErrorForCode(c))
	}
	return kerr.ErrorForCode(c)
}

// readShareState returns the stored state of k; found false for none. The
// read names k's leader epoch as this broker knows it (st.LeaderEpoch), so
// the coordinator records it and fences the writes of a previous leader
// from then on.
func (b *Broker) readShareState(ctx context.Context, k share.Key) (st share.State, found bool, err error) {
	req := kmsg.NewPtrReadShareGroupStateRequest()
	req.GroupID = k.Group
	rp := kmsg.NewReadShareGroupStateRequestTopicPartition()
	rp.Partition, rp.LeaderEpoch = k.Partition, b.shareLeaderEpoch(k)
	rt := kmsg.NewReadShareGroupStateRequestTopic()
	rt.TopicID, rt.Partitions = k.TopicID, []kmsg.ReadShareGroupStateRequestTopicPartition{rp}
	req.Topics = []kmsg.ReadShareGroupStateRequestTopic{rt}
	part := func(resp kmsg.Response) *kmsg.ReadShareGroupStateResponseTopicPartition {
		r := resp.(*kmsg.ReadShareGroupStateResponse)
		if len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
			return nil
		}
		return &r.Topics[0].Partitions[0]
	}
	resp, err := b.shareStateCall(ctx, k, req,
		func(ctx context.Context) kmsg.Response { return b.shareState.ReadShareGroupState(ctx, req) },
		func(resp kmsg.Response) int16 {
			if p := part(resp); p != nil {
				return p.ErrorCode
			}
			return kerr.UnknownServerError.Code
		})
	if err != nil {
		return share.State{}, false, fmt.Errorf("read share state of %s: %w", sharestate.CoordinatorKey(k), err)
	}
	p := part(resp)
	if err := shareStateCode(p.ErrorCode); err != nil {
		return share.State{}, false, fmt.Errorf("read share state of %s: %w", sharestate.CoordinatorKey(k), err)
	}
	st, found, ok := sharestate.StateFromRead(p)
	if !ok {
		return share.State{}, false, fmt.Errorf("read share state of %s: malformed answer", sharestate.CoordinatorKey(k))
	}
	st.LeaderEpoch = rp.LeaderEpoch
	return st, found, nil
}

// shareLeaderEpoch is the leader epoch of k's topic-partition as this
// broker knows it, -1 when it does not host it.
func (b *Broker) shareLeaderEpoch(k share.Key) int32 {
	ts := b.topics.getID(k.TopicID)
	if ts == nil {
		return -1
	}
	p := ts.partition(k.Partition)
	if p == nil {
		return -1
	}
	return p.rep.leaderEpoch.Load()
}

// writeShareState stores st as k's state (replacing the batches it covers,
// Kafka's merge); an error wrapping errShareStateFenced means a newer state
// epoch or leader epoch exists: reload.
func (b *Broker) writeShareState(ctx context.Context, k share.Key, st share.State) error {
	req := kmsg.NewPtrWriteShareGroupStateRequest()
	req.Version = 1
	req.GroupID = k.Group
	rt := kmsg.NewWriteShareGroupStateRequestTopic()
	rt.TopicID = k.TopicID
	rt.Partitions = []kmsg.WriteShareGroupStateRequestTopicPartition{sharestate.WritePartition(k.Partition, st)}
	req.Topics = []kmsg.WriteShareGroupStateRequestTopic{rt}
	resp, err := b.shareStateCall(ctx, k, req,
		func(ctx context.Context) kmsg.Response { return b.shareState.WriteShareGroupState(ctx, req) },
		func(resp kmsg.Response) int16 { return writeShareStateCode(resp.(*kmsg.WriteShareGroupStateResponse)) })
	if err == nil {
		err = shareStateCode(writeShareStateCode(resp.(*kmsg.WriteShareGroupStateResponse)))
	}
	if err != nil {
		return fmt.Errorf("write share state of %s: %w", sharestate.CoordinatorKey(k), err)
	}
	return nil
}

func writeShareStateCode(r *kmsg.WriteShareGroupStateResponse) int16 {
	if len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
		return kerr.UnknownServerError.Code
	}
	return r.Topics[0].Partitions[0].ErrorCode
}

// initializeShareState gives k a new state epoch and start offset
// (AlterShareGroupOffsets); the partition leader's next write is fenced
// and it reads the new state.
func (b *Broker) initializeShareState(ctx context.Context, k share.Key, stateEpoch int32, startOffset int64) error {
	defer b.unloadShareGroup(k.Group, k.TopicID)
	req := kmsg.NewPtrInitializeShareGroupStateRequest()
	req.GroupID = k.Group
	rt := kmsg.NewInitializeShareGroupStateRequestTopic()
	rt.TopicID = k.TopicID
	rp := kmsg.NewInitializeShareGroupStateRequestTopicPartition()
	rp.Partition, rp.StateEpoch, rp.StartOffset = k.Partition, stateEpoch, startOffset
	rt.Partitions = []kmsg.InitializeShareGroupStateRequestTopicPartition{rp}
	req.Topics = []kmsg.InitializeShareGroupStateRequestTopic{rt}
	code := func(resp kmsg.Response) int16 {
		r := resp.(*kmsg.InitializeShareGroupStateResponse)
		if len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
			return kerr.UnknownServerError.Code
		}
		return r.Topics[0].Partitions[0].ErrorCode
	}
	resp, err := b.shareStateCall(ctx, k, req,
		func(ctx context.Context) kmsg.Response { return b.shareState.InitializeShareGroupState(ctx, req) }, code)
	if err == nil {
		err = shareStateCode(code(resp))
	}
	if err != nil {
		return fmt.Errorf("initialize share state of %s: %w", sharestate.CoordinatorKey(k), err)
	}
	return nil
}

// shareStateSummary returns k's start offset, state epoch and delivery
// complete count; found false for none.
func (b *Broker) shareStateSummary(ctx context.Context, k share.Key) (sum kmsg.ReadShareGroupStateSummaryResponseTopicPartition, found bool, err error) {
	req := kmsg.NewPtrReadShareGroupStateSummaryRequest()
	req.Version = 1
	req.GroupID = k.Group
	rt := kmsg.NewReadShareGroupStateSummaryRequestTopic()
	rt.TopicID = k.TopicID
	rp := kmsg.NewReadShareGroupStateSummaryRequestTopicPartition()
	rp.Partition, rp.LeaderEpoch = k.Partition, -1
	rt.Partitions = []kmsg.ReadShareGroupStateSummaryRequestTopicPartition{rp}
	req.Topics = []kmsg.ReadShareGroupStateSummaryRequestTopic{rt}
	part := func(resp kmsg.Response) *kmsg.ReadShareGroupStateSummaryResponseTopicPartition {
		r := resp.(*kmsg.ReadShareGroupStateSummaryResponse)
		if len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
			return nil
		}
		return &r.Topics[0].Partitions[0]
	}
	resp, err := b.shareStateCall(ctx, k, req,
		func(ctx context.Context) kmsg.Response { return b.shareState.ReadShareGroupStateSummary(ctx, req) },
		func(resp kmsg.Response) int16 {
			if p := part(resp); p != nil {
				return p.ErrorCode
			}
			return kerr.UnknownServerError.Code
		})
	if err == nil {
		err = shareStateCode(part(resp).ErrorCode)
	}
	if err != nil {
		return sum, false, fmt.Errorf("read share state summary of %s: %w", sharestate.CoordinatorKey(k), err)
	}
	sum = *part(resp)
	return sum, sum.StartOffset >= 0, nil
}

// deleteShareGroupState removes the state of every partition of topics of
// group. Topics that do not exist have no state. The first error is
// returned after every partition was tried.
func (b *Broker) deleteShareGroupState(ctx context.Context, group string, topics []string) error {
	defer b.unloadShareGroup(group)
	var first error
	for _, name := range topics {
		ts := b.topics.get(name)
		if ts == nil {
			continue
		}
		m := ts.meta()
		for p := range m.Partitions {
			if err := b.deleteShareState(ctx, share.Key{Group: group, TopicID: m.ID, Partition: p}); err != nil && first == nil {
				first = err
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	return first
}

// deleteShareState removes k's state.
func (b *Broker) deleteShareState(ctx context.Context, k share.Key) error {
	req := kmsg.NewPtrDeleteShareGroupStateRequest()
	req.GroupID = k.Group
	rt := kmsg.NewDeleteShareGroupStateRequestTopic()
	rt.TopicID = k.TopicID
	rp := kmsg.NewDeleteShareGroupStateRequestTopicPartition()
	rp.Partition = k.Partition
	rt.Partitions = []kmsg.DeleteShareGroupStateRequestTopicPartition{rp}
	req.Topics = []kmsg.DeleteShareGroupStateRequestTopic{rt}
	code := func(resp kmsg.Response) int16 {
		r := resp.(*kmsg.DeleteShareGroupStateResponse)
		if len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
			return kerr.UnknownServerError.Code
		}
		return r.Topics[0].Partitions[0].ErrorCode
	}
	resp, err := b.shareStateCall(ctx, k, req,
		func(ctx context.Context) kmsg.Response { return b.shareState.DeleteShareGroupState(ctx, req) }, code)
	if err == nil {
		err = shareStateCode(code(resp))
	}
	if err != nil {
		return fmt.Errorf("delete share state of %s: %w", sharestate.CoordinatorKey(k), err)
	}
	return nil
}
