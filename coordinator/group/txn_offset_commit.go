package group

// TxnOffsetCommit: v0-5 (KIP-98, KIP-447, KIP-890).
//
// Commits offsets as part of the producer's transaction: they are written
// to the group's __consumer_offsets partition as one transactional batch of
// the producer (Persister.PersistTxn, the key and value OffsetCommit
// writes) and stay pending until the transaction's marker (CompleteTxn):
// COMMIT makes them the committed offsets, ABORT drops them (see
// txn_offsets.go). Meanwhile OffsetFetch with require_stable answers
// UNSTABLE_OFFSET_COMMIT for their partitions.
//
// Validation follows Kafka (KafkaApis.handleTxnOffsetCommitRequest,
// GroupCoordinatorService.commitTransactionalOffsets,
// OffsetMetadataManager.commitTransactionalOffset):
//   - An empty group id gets INVALID_GROUP_ID; TxnOffsetCommit never
//     accepted one, unlike OffsetCommit.
//   - A topic or partition TopicMetadata does not know gets
//     UNKNOWN_TOPIC_OR_PARTITION first; when no partition is left nothing
//     is verified or written.
//   - With Config.TxnVerifier the transaction is checked before the commit
//     is validated: v0-4 verify that the group's partition is in the
//     producer's transaction (AddOffsetsToTxn came first); v5 adds it
//     (KIP-890 transaction version 2, no AddOffsetsToTxn). A failure
//     answers every partition with the verifier's code (adapted, see
//     TxnVerifier). A marker of the producer written to the partition
//     while the check ran makes it check again, at most maxVerifyAttempts
//     times, then COORDINATOR_LOAD_IN_PROGRESS.
//   - A group that does not exist is created empty ("simple") for
//     generation -1; with a generation the answer is ILLEGAL_GENERATION.
//   - v3+ fence zombie producers by group membership (KIP-447). Classic
//     groups: generation -1 is accepted by an Empty group, and so is a
//     request naming no member, instance or generation (older clients send
//     none); otherwise an unknown member or instance id is
//     UNKNOWN_MEMBER_ID, another member under the instance id
//     FENCED_INSTANCE_ID, any other generation than the group's
//     ILLEGAL_GENERATION. KIP-848 groups: the same two exemptions, then an
//     unknown member is UNKNOWN_MEMBER_ID and any other epoch than the
//     member's ILLEGAL_GENERATION. Unlike OffsetCommit, a rebalance in
//     progress is no error and member sessions are not extended.
//   - Metadata longer than offset.metadata.max.bytes gets
//     OFFSET_METADATA_TOO_LARGE.
//   - A partition given more than once is answered for every entry; its
//     last entry wins and only that one is written, as for OffsetCommit.
//   - A negative producer id gets INVALID_PRODUCER_ID_MAPPING (what
//     verification answers): offsets of no producer could never see a
//     marker.
//   - v0-1 clients get COORDINATOR_NOT_AVAILABLE for
//     COORDINATOR_LOAD_IN_PROGRESS, which they cannot handle (KAFKA-7296);
//     v0-3 clients get INVALID_TXN_STATE for TRANSACTION_ABORTABLE.
//   - v6 names topics by id; it is not supported (UNSUPPORTED_VERSION).
//
// A failed write answers the written partitions with OffsetCommit's mapping
// of the error (COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR,
// INVALID_COMMIT_OFFSET_SIZE); a *kerr.Error the Persister returns for a
// refused transactional append (INVALID_TXN_STATE, INVALID_PRODUCER_EPOCH,
// PRODUCER_FENCED, INVALID_PRODUCER_ID_MAPPING, TRANSACTION_ABORTABLE,
// TRANSACTION_COORDINATOR_FENCED) is answered as is.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// txnCommitPlan is a validated TxnOffsetCommit waiting to be written.
type txnCommitPlan struct {
	g       *group
	records []Record
	entries []txnCommitEntry
}

// txnCommitEntry is one distinct partition of the commit: the offset of its
// last valid entry, and the answers of all its valid entries.
type txnCommitEntry struct {
	tp   topicPartition
	o    committedOffset
	resp []*kmsg.TxnOffsetCommitResponseTopicPartition
}

// txnMember is the group membership a TxnOffsetCommit claims (KIP-447);
// requests before v3 claim none.
type txnMember struct {
	id         string
	instanceID *string
	generation int32
}

func txnMemberOf(req *kmsg.TxnOffsetCommitRequest) txnMember {
	if req.Version < 3 {
		return txnMember{generation: -1}
	}
	return txnMember{id: req.MemberID, instanceID: req.InstanceID, generation: req.Generation}
}

// anonymous reports a request that names no member, instance or
// generation; strict says the generation must be exactly -1 (KIP-848
// groups), else any negative one will do (classic groups).
func (m txnMember) anonymous(strict bool) bool {
	return (m.generation == -1 || (!strict && m.generation < 0)) && m.id == "" && m.instanceID == nil
}

// TxnOffsetCommit handles a TxnOffsetCommit request (v0-5). It returns once
// the offsets are durable as pending offsets of the transaction, or the
// verification or the write failed.
func (c *Coordinator) TxnOffsetCommit(ctx context.Context, req *kmsg.TxnOffsetCommitRequest) *kmsg.TxnOffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewTxnOffsetCommitResponseTopic()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		for _, p := range t.Partitions {
			rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	switch {
	case req.Version >= 6:
		return setTxnCodes(resp, kerr.UnsupportedVersion.Code, req.Version)
	case req.Group == "":
		return setTxnCodes(resp, kerr.InvalidGroupID.Code, req.Version)
	}
	p := PartitionFor(req.Group, c.cfg.NumPartitions)
	c.mu.Lock()
	_, code := c.servableLocked(req.Group)
	live := 0
	if code == 0 {
		live = c.checkTxnTopicsLocked(req, resp)
	}
	c.mu.Unlock()
	switch {
	case code != 0:
		return setTxnCodes(resp, code, req.Version)
	case live == 0:
		return resp
	case req.ProducerID < 0:
		return setTxnCodes(resp, kerr.InvalidProducerIDMapping.Code, req.Version)
	}
	for attempt := 1; ; attempt++ {
		code, raced := c.commitTxn(ctx, req, resp, p)
		switch {
		case !raced:
			return setTxnCodes(resp, code, req.Version)
		case attempt == maxVerifyAttempts:
			return setTxnCodes(resp, kerr.CoordinatorLoadInProgress.Code, req.Version)
		}
	}
}

// setTxnCodes answers code (adapted to the version) for every partition not
// already answered with an error. Zero leaves resp as it is.
func setTxnCodes(resp *kmsg.TxnOffsetCommitResponse, code, version int16) *kmsg.TxnOffsetCommitResponse {
	if code == 0 {
		return resp
	}
	code = txnErrorCode(code, version)
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			if rp := &resp.Topics[i].Partitions[j]; rp.ErrorCode == 0 {
				rp.ErrorCode = code
			}
		}
	}
	return resp
}

// checkTxnTopicsLocked answers UNKNOWN_TOPIC_OR_PARTITION for partitions
// TopicMetadata does not know and returns how many entries are left.
func (c *Coordinator) checkTxnTopicsLocked(req *kmsg.TxnOffsetCommitRequest, resp *kmsg.TxnOffsetCommitResponse) int {
	live := 0
	for i, t := range req.Topics {
		parts, known := int32(0), true
		if c.cfg.TopicMetadata != nil {
			_, parts, known = c.cfg.TopicMetadata(t.Topic)
		}
		for j, rp := range t.Partitions {
			if c.cfg.TopicMetadata != nil && (!known || rp.Partition < 0 || rp.Partition >= parts) {
				resp.Topics[i].Partitions[j].ErrorCode = kerr.UnknownTopicOrPartition.Code
				continue
			}
			live++
		}
	}
	return live
}

// commitTxn verifies the transaction, validates the commit and writes it,
// and returns a code for every partition not yet answered. raced means a
// marker of the producer was written while the verification ran: nothing
// was validated or written, and the caller verifies again.
func (c *Coordinator) commitTxn(ctx context.Context, req *kmsg.TxnOffsetCommitRequest, resp *kmsg.TxnOffsetCommitResponse, p int32) (code int16, raced bool) {
	key := txnKey{partition: p, producerID: req.ProducerID}
	var watch *markerWatch
	var seen uint64
	if v := c.cfg.TxnVerifier; v != nil {
		c.mu.Lock()
		watch, seen = c.watchMarkersLocked(key)
		c.mu.Unlock()
		vctx, cancel := c.persistCtx(ctx)
		code := v.VerifyTxn(vctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, p, req.Version >= 5)
		cancel()
		if code != 0 {
			c.mu.Lock()
			c.unwatchMarkersLocked(key, watch)
			c.mu.Unlock()
			return code, false
		}
	}
	pm := &c.persistMu[p]
	pm.Lock()
	defer pm.Unlock()
	c.mu.Lock()
	if watch != nil {
		raced = watch.markers != seen
		c.unwatchMarkersLocked(key, watch)
		if raced {
			c.mu.Unlock()
			return 0, true
		}
	}
	plan, code := c.planTxnCommitLocked(req, resp)
	c.mu.Unlock()
	if code != 0 || len(plan.entries) == 0 {
		return code, false
	}
	pctx, cancel := c.persistCtx(ctx)
	err := c.cfg.Persister.PersistTxn(pctx, p, req.ProducerID, req.ProducerEpoch, plan.records)
	cancel()
	c.mu.Lock()
	c.applyTxnCommitLocked(plan, req.ProducerID, err)
	c.mu.Unlock()
	if err != nil {
		c.log.Warn("writing transactional offset commit failed", "group", req.Group,
			"transactional_id", req.TransactionalID, "producer_id", req.ProducerID, "err", err)
		code := txnErrorCode(txnPersistErrorCode(err), req.Version)
		for _, e := range plan.entries {
			for _, r := range e.resp {
				r.ErrorCode = code
			}
		}
	}
	return 0, false
}

// planTxnCommitLocked validates req, fills per-partition errors into resp
// and returns the records to write (group-level errors as code).
func (c *Coordinator) planTxnCommitLocked(req *kmsg.TxnOffsetCommitRequest, resp *kmsg.TxnOffsetCommitResponse) (txnCommitPlan, int16) {
	p, code := c.servableLocked(req.Group)
	if code != 0 {
		return txnCommitPlan{}, code
	}
	m := txnMemberOf(req)
	g := c.mu.groups[req.Group]
	if g == nil {
		if m.generation >= 0 {
			return txnCommitPlan{}, kerr.IllegalGeneration.Code
		}
		g = newGroup(req.Group, p)
		g.stateSince = c.clock.Now()
		c.mu.groups[req.Group] = g
	}
	if code := validateTxnCommit(g, m); code != 0 {
		c.dropIfUnusedLocked(g)
		return txnCommitPlan{}, code
	}
	plan := txnCommitPlan{g: g}
	entryOf := make(map[topicPartition]int)
	now := c.clock.Now().UnixMilli()
	for i, t := range req.Topics {
		for j, rp := range t.Partitions {
			out := &resp.Topics[i].Partitions[j]
			if out.ErrorCode != 0 {
				continue // unknown topic or partition
			}
			if rp.Metadata != nil && len(*rp.Metadata) > c.cfg.MaxOffsetMetadataBytes {
				out.ErrorCode = kerr.OffsetMetadataTooLarge.Code
				continue
			}
			o := committedOffset{offset: rp.Offset, leaderEpoch: -1, commitTime: now, expireTime: -1}
			if req.Version >= 2 {
				o.leaderEpoch = rp.LeaderEpoch
			}
			if rp.Metadata != nil {
				o.metadata = *rp.Metadata
			}
			tp := topicPartition{topic: t.Topic, partition: rp.Partition}
			if k, ok := entryOf[tp]; ok {
				plan.entries[k].o = o
				plan.entries[k].resp = append(plan.entries[k].resp, out)
				continue
			}
			entryOf[tp] = len(plan.entries)
			plan.entries = append(plan.entries, txnCommitEntry{tp: tp, o: o, resp: []*kmsg.TxnOffsetCommitResponseTopicPartition{out}})
			g.inflight[tp]++
		}
	}
	for _, e := range plan.entries {
		plan.records = append(plan.records, Record{Key: offsetKey(g.id, e.tp.topic, e.tp.partition), Value: offsetValue(e.o)})
	}
	if len(plan.entries) == 0 {
		c.dropIfUnusedLocked(g)
	}
	return plan, 0
}

// validateTxnCommit is the transactional flavour of Kafka's
// ClassicGroup.validateOffsetCommit and ConsumerGroup.validateOffsetCommit,
// with ConsumerGroup's STALE_MEMBER_EPOCH answered as ILLEGAL_GENERATION
// (OffsetMetadataManager.validateTransactionalOffsetCommit).
func validateTxnCommit(g *group, m txnMember) int16 {
	if g.kind == kindShare {
		return kerr.GroupIDNotFound.Code
	}
	if g.kind == kindConsumer {
		if (m.generation < 0 && len(g.cg.members) == 0) || m.anonymous(true) {
			return 0
		}
		cm := g.cg.members[m.id]
		switch {
		case cm == nil:
			return kerr.UnknownMemberID.Code
		case m.generation != cm.epoch:
			return kerr.IllegalGeneration.Code
		}
		return 0
	}
	if (m.generation < 0 && g.state == stateEmpty) || m.anonymous(false) {
		return 0
	}
	if iid := m.instanceID; iid != nil {
		known, ok := g.static[*iid]
		if !ok {
			return kerr.UnknownMemberID.Code
		}
		if known != m.id {
			return kerr.FencedInstanceID.Code
		}
	}
	if g.members[m.id] == nil {
		return kerr.UnknownMemberID.Code
	}
	if m.generation != g.generation {
		return kerr.IllegalGeneration.Code
	}
	return 0
}

// applyTxnCommitLocked makes a durable commit's offsets pending for the
// producer, positioned in write order.
func (c *Coordinator) applyTxnCommitLocked(plan txnCommitPlan, pid int64, err error) {
	g := plan.g
	for _, e := range plan.entries {
		if g.inflight[e.tp]--; g.inflight[e.tp] <= 0 {
			delete(g.inflight, e.tp)
		}
	}
	if !c.currentLocked(g) {
		return // unloaded meanwhile; a load replays the records
	}
	if err != nil {
		c.dropIfUnusedLocked(g)
		return
	}
	for _, e := range plan.entries {
		o := e.o
		o.pos = c.nextPosLocked(g.partition)
		g.txn.put(pid, e.tp, o)
	}
	c.trackTxnLocked(g, pid)
}

// txnPersistErrorCode maps a PersistTxn error: a refused transactional
// append keeps its code, anything else maps as for OffsetCommit.
func txnPersistErrorCode(err error) int16 {
	var ke *kerr.Error
	if !errors.Is(err, ErrNotCoordinator) && errors.As(err, &ke) {
		switch ke {
		case kerr.InvalidTxnState, kerr.InvalidProducerEpoch, kerr.ProducerFenced, kerr.InvalidProducerIDMapping,
			kerr.TransactionAbortable, kerr.TransactionCoordinatorFenced:
			return ke.Code
		}
	}
	return persistErrorCode(err, true)
}

// txnErrorCode adapts a code to what a TxnOffsetCommit client of version
// expects, as Kafka does: CoordinatorOperationExceptionHelper for
// verification and append errors, AddPartitionsToTxnManager for fencing,
// KafkaApis and KIP-890 for old clients.
func txnErrorCode(code, version int16) int16 {
	switch code {
	case kerr.NetworkException.Code:
		code = kerr.CoordinatorLoadInProgress.Code
	case kerr.UnknownTopicOrPartition.Code, kerr.NotEnoughReplicas.Code, kerr.RequestTimedOut.Code:
		code = kerr.CoordinatorNotAvailable.Code
	case kerr.NotLeaderForPartition.Code, kerr.KafkaStorageError.Code:
		code = kerr.NotCoordinator.Code
	case kerr.ProducerFenced.Code:
		code = kerr.InvalidProducerEpoch.Code
	}
	if code == kerr.TransactionAbortable.Code && version < 4 {
		code = kerr.InvalidTxnState.Code
	}
	if code == kerr.CoordinatorLoadInProgress.Code && version < 2 {
		code = kerr.CoordinatorNotAvailable.Code
	}
	return code
}
