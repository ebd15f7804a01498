package replication

import (
	"errors"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// settle runs after every event: advance the HW if it can, then finish the
// produces that the HW or the clock decided.
func (l *Leader) settle(now time.Time, rd *LeaderReady) {
	if l.maybeAdvanceHW(now) {
		rd.HighWatermarkAdvanced = true
	}
	l.completeWaiters(now, rd)
	rd.HighWatermark = l.hw
}

// maybeAdvanceHW is Kafka's Partition.maybeIncrementLeaderHW. The new HW
// is the smallest log end offset among the leader and every follower that
// is in the maximal ISR, or that is caught up and eligible to join it (so a
// follower about to join is not left chasing a HW that runs ahead of it).
// The HW never moves backwards, and it does not stop short of the start
// of this leader epoch: the tail a new leader inherits beyond its old HW
// is exposed all at once, when every ISR member has all of it (the rule a
// KRaft leader follows, minus its record written in the new epoch).
func (l *Leader) maybeAdvanceHW(now time.Time) bool {
	leo := l.log.LogEndOffset()
	candidate := leo
	maximal := l.MaximalISR()
	for _, id := range l.replicas {
		f := l.followers[id]
		if f == nil || f.leo >= candidate {
			continue
		}
		if slices.Contains(maximal, id) || (l.eligible(id) && f.caughtUp(leo, now, l.cfg.ReplicaLagTimeMax)) {
			candidate = f.leo
		}
	}
	if candidate <= l.hw || candidate < l.epochStart {
		return false
	}
	l.hw = candidate
	return true
}

// completeWaiters finishes acks=all produces: those the HW passed succeed,
// or fail with NOT_ENOUGH_REPLICAS_AFTER_APPEND if the maximal ISR is now
// below min.insync.replicas (Kafka's
// Partition.checkEnoughReplicasReachOffset); those past their deadline
// fail with REQUEST_TIMED_OUT (DelayedProduce expiry).
func (l *Leader) completeWaiters(now time.Time, rd *LeaderReady) {
	kept := l.waiters[:0]
	for _, w := range l.waiters {
		switch {
		case l.hw > w.lastOffset:
			var err error
			if len(l.MaximalISR()) < l.effectiveMinISR() {
				err = kerr.NotEnoughReplicasAfterAppend
			}
			rd.Acks = append(rd.Acks, AckResult{ID: w.id, Err: err})
		case !now.Before(w.deadline):
			rd.Acks = append(rd.Acks, AckResult{ID: w.id, Err: kerr.RequestTimedOut})
		default:
			kept = append(kept, w)
		}
	}
	clear(l.waiters[len(kept):])
	l.waiters = kept
}

func (l *Leader) eligible(id int32) bool {
	return id != l.cfg.ReplicaID && slices.Contains(l.replicas, id) && !slices.Contains(l.ineligible, id)
}

// maybeShrinkISR is Kafka's Partition.maybeShrinkIsr: with no change in
// flight, propose removing every ISR follower that is not caught up (has
// not reached the leader's log end offset within the lag time).
func (l *Leader) maybeShrinkISR(now time.Time) *ISRChange {
	if l.pending != nil {
		return nil
	}
	leo := l.log.LogEndOffset()
	keep := make([]int32, 0, len(l.isr))
	for _, id := range l.isr {
		if f := l.followers[id]; f == nil || f.caughtUp(leo, now, l.cfg.ReplicaLagTimeMax) {
			keep = append(keep, id)
		}
	}
	if len(keep) == len(l.isr) {
		return nil
	}
	return l.propose(keep)
}

// maybeExpandISR is Kafka's Partition.maybeExpandIsr: with no change in
// flight, propose adding an eligible follower whose log reaches both the
// HW and the start of this leader epoch. The epoch-start condition keeps a
// replica that lacks committed data between the HW and the epoch start out
// of the ISR, where it could be elected and lose that data.
func (l *Leader) maybeExpandISR(id int32, now time.Time) *ISRChange {
	f := l.followers[id]
	if l.pending != nil || f == nil || slices.Contains(l.isr, id) || !l.eligible(id) || now.Before(l.expandAfter) {
		return nil
	}
	if f.leo < l.hw || f.leo < l.epochStart {
		return nil
	}
	return l.propose(union(l.replicas, l.isr, []int32{id}))
}

func (l *Leader) propose(isr []int32) *ISRChange {
	c := ISRChange{Leader: l.cfg.ReplicaID, LeaderEpoch: l.leaderEpoch, PartitionEpoch: l.partitionEpoch, ISR: isr}
	l.pending, l.pendingStale, l.retryAt = &c, false, time.Time{}
	out := c.clone()
	return &out
}

// ISRChangeResult reports the outcome of an ISRChange this Leader emitted
// (KIP-497 AlterPartition response semantics, Kafka's
// Partition.handleAlterPartitionUpdate / handleAlterPartitionError):
//
//   - err == nil: st is the stored record; it becomes the committed ISR
//     unless it is older than what the Leader already knows.
//   - kerr.IneligibleReplica, kerr.OperationNotAttempted: the controller
//     did not apply it; the Leader returns to its committed ISR and
//     proposes no expansion for ISRChangeRetryBackoff (SetIneligible is
//     how it learns which replicas to leave out).
//   - kerr.FencedLeaderEpoch, kerr.InvalidUpdateVersion,
//     kerr.InvalidRequest, kerr.UnknownTopicOrPartition,
//     kerr.NewLeaderElected: the proposal was built from a stale record;
//     it stays pending (bounding the HW) until Update delivers the new
//     record. The driver should re-read the record and call Update.
//   - anything else (etcd unreachable, kerr.NotController, ...): the same
//     proposal is re-sent by Tick after ISRChangeRetryBackoff.
//
// Outcomes for a proposal that is no longer pending are ignored.
func (l *Leader) ISRChangeResult(c ISRChange, st PartitionState, err error, now time.Time) LeaderReady {
	if l.resigned || l.pending == nil || !l.pending.equal(c) {
		return LeaderReady{HighWatermark: l.hw}
	}
	switch {
	case err == nil:
		if st.validate() != nil || st.Leader != l.cfg.ReplicaID ||
			st.LeaderEpoch != l.leaderEpoch || st.PartitionEpoch < l.partitionEpoch {
			l.pendingStale = true
			break
		}
		l.adopt(st, now)
	case isAnyErr(err, kerr.IneligibleReplica, kerr.OperationNotAttempted):
		l.pending = nil
		l.expandAfter = now.Add(l.cfg.ISRChangeRetryBackoff)
	case isAnyErr(err, kerr.FencedLeaderEpoch, kerr.InvalidUpdateVersion, kerr.InvalidRequest,
		kerr.UnknownTopicOrPartition, kerr.NewLeaderElected):
		l.pendingStale = true
	default:
		l.retryAt = now.Add(l.cfg.ISRChangeRetryBackoff)
	}
	var rd LeaderReady
	l.settle(now, &rd)
	return rd
}

func isAnyErr(err error, targets ...*kerr.Error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
