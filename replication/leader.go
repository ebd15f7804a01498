package replication

import (
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Defaults applied by LeaderConfig and FollowerConfig for zero fields.
const (
	// DefaultReplicaLagTimeMax is Kafka's replica.lag.time.max.ms default.
	DefaultReplicaLagTimeMax = 30 * time.Second
	// DefaultISRChangeRetryBackoff is how long a Leader waits before
	// re-sending an ISR change whose outcome was a transient failure.
	DefaultISRChangeRetryBackoff = 100 * time.Millisecond
)

// LeaderConfig holds the settings of one partition's Leader.
type LeaderConfig struct {
	// ReplicaID is this broker's node id.
	ReplicaID int32
	// MinInsyncReplicas is the topic's min.insync.replicas. Values below 1
	// mean 1; values above the replication factor are capped at it, as
	// Kafka's Partition.effectiveMinIsr does.
	MinInsyncReplicas int
	// ReplicaLagTimeMax is replica.lag.time.max.ms: a follower that has not
	// been caught up to the leader's log end offset for longer than this is
	// removed from the ISR. Zero means DefaultReplicaLagTimeMax.
	ReplicaLagTimeMax time.Duration
	// ISRChangeRetryBackoff delays the re-send of an ISR change after a
	// transient failure. Zero means DefaultISRChangeRetryBackoff.
	ISRChangeRetryBackoff time.Duration
}

func (c LeaderConfig) normalized() LeaderConfig {
	c.MinInsyncReplicas = max(c.MinInsyncReplicas, 1)
	if c.ReplicaLagTimeMax <= 0 {
		c.ReplicaLagTimeMax = DefaultReplicaLagTimeMax
	}
	if c.ISRChangeRetryBackoff <= 0 {
		c.ISRChangeRetryBackoff = DefaultISRChangeRetryBackoff
	}
	return c
}

// AckID identifies one acks=all produce waiting for replication. The
// driver chooses it (a request sequence number, say); the Leader only
// hands it back.
type AckID uint64

// AckResult completes a waiting acks=all produce. Err is nil on success,
// or kerr.NotEnoughReplicasAfterAppend, kerr.RequestTimedOut or
// kerr.NotLeaderForPartition.
type AckResult struct {
	ID  AckID
	Err error
}

// LeaderReady is everything one Leader event asks the driver to do, in
// the spirit of etcd-io/raft's Ready. Apply it before the next event.
type LeaderReady struct {
	// HighWatermark is the partition's high watermark after the event;
	// always set.
	HighWatermark Offset
	// HighWatermarkAdvanced reports that HighWatermark grew during the
	// event: publish it to readers (consumers fetch below it), wake waiting
	// fetches, and checkpoint it when convenient (Kafka checkpoints the HW
	// periodically; a lower checkpoint is always safe).
	HighWatermarkAdvanced bool
	// Acks are the acks=all produces that finished, in registration order.
	Acks []AckResult
	// ISRChange, if set, is an AlterPartition proposal to send to the
	// controller. Report its outcome with ISRChangeResult exactly once
	// (unless Update replaces the partition state first).
	ISRChange *ISRChange
	// Resigned reports that the Leader stopped leading during the event
	// (Update named another leader). Every waiting produce is in Acks with
	// kerr.NotLeaderForPartition; replace the Leader with a Follower.
	Resigned bool
}

// followerState is the leader's record of one follower (Kafka's
// Replica.ReplicaState).
type followerState struct {
	// leo is the offset of the follower's last valid fetch, i.e. its log
	// end offset as far as the leader knows; -1 when unknown.
	leo Offset
	// lastCaughtUp is the last time the follower was known to have fetched
	// up to the leader's log end offset; zero for never.
	lastCaughtUp time.Time
	// lastFetchLeaderLEO and lastFetchTime describe the previous fetch.
	lastFetchLeaderLEO Offset
	lastFetchTime      time.Time
}

func newFollowerState(inISR bool, now time.Time) *followerState {
	f := &followerState{leo: -1, lastFetchLeaderLEO: -1}
	if inISR {
		f.lastCaughtUp = now
	}
	return f
}

// caughtUp is Kafka's ReplicaState.isCaughtUp: the follower has the
// leader's whole log, or had it within maxLag.
func (f *followerState) caughtUp(leaderLEO Offset, now time.Time, maxLag time.Duration) bool {
	if f.leo == leaderLEO {
		return true
	}
	return !f.lastCaughtUp.IsZero() && now.Sub(f.lastCaughtUp) <= maxLag
}

// update records a valid fetch (Kafka's Replica.updateFetchStateOrThrow):
// fetching the leader's current end means caught up now; reaching the end
// the leader had at the previous fetch means caught up as of that fetch.
func (f *followerState) update(fetchOffset, leaderLEO Offset, now time.Time) {
	switch {
	case fetchOffset >= leaderLEO:
		f.lastCaughtUp = latest(f.lastCaughtUp, now)
	case !f.lastFetchTime.IsZero() && fetchOffset >= f.lastFetchLeaderLEO:
		f.lastCaughtUp = latest(f.lastCaughtUp, f.lastFetchTime)
	}
	f.leo = fetchOffset
	f.lastFetchLeaderLEO = max(leaderLEO, f.lastFetchLeaderLEO)
	f.lastFetchTime = now
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// ackWaiter is an acks=all produce waiting for the HW to pass lastOffset.
type ackWaiter struct {
	id         AckID
	lastOffset Offset
	deadline   time.Time
}

// Leader is the replication state machine of one partition led by this
// broker: high watermark, ISR maintenance, acks=all completion and the
// leader side of follower fetches. It has no goroutines, performs no I/O
// and never reads a clock: every method takes the inputs it needs and
// returns what the driver must do. It is not safe for concurrent use; the
// driver serializes calls per partition (with the partition lock that also
// guards appends).
type Leader struct {
	cfg LeaderConfig
	log Log

	resigned       bool
	leaderEpoch    LeaderEpoch
	partitionEpoch int32
	replicas       []int32
	isr            []int32 // committed ISR, assignment order
	hw             Offset
	epochStart     Offset // log end offset when this leader epoch began

	// pending is the ISR change in flight (at most one, KIP-497).
	pending *ISRChange
	// pendingStale: the controller called the proposal stale; keep it
	// pending (it still bounds the HW) until Update brings the new record.
	pendingStale bool
	// retryAt: re-send pending at or after this time (transient failure).
	retryAt time.Time
	// expandAfter: no expansion before this time (after an
	// IneligibleReplica rejection).
	expandAfter time.Time

	followers  map[int32]*followerState
	ineligible []int32
	waiters    []ackWaiter
}

// NewLeader makes this broker the leader of a partition at st.LeaderEpoch
// (Kafka's Partition.makeLeader). hw is the high watermark the local log
// had as a follower (or from its checkpoint); it is clamped to the log.
// The leader epoch starts at the current log end offset: data beyond the
// old HW is exposed only once every ISR member has reached that offset.
func NewLeader(cfg LeaderConfig, log Log, st PartitionState, hw Offset, now time.Time) (*Leader, LeaderReady, error) {
	cfg = cfg.normalized()
	if err := st.validate(); err != nil {
		return nil, LeaderReady{}, err
	}
	if st.Leader != cfg.ReplicaID {
		return nil, LeaderReady{}, fmt.Errorf("%w: replica %d is not the leader in %s", ErrInvalidState, cfg.ReplicaID, st)
	}
	l := &Leader{cfg: cfg, log: log, followers: make(map[int32]*followerState)}
	l.hw = max(min(hw, log.LogEndOffset()), log.LogStartOffset())
	l.startTerm(st, now)
	var rd LeaderReady
	l.settle(now, &rd)
	return l, rd, nil
}

// startTerm adopts st as a new leader epoch: followers' positions are
// unknown again and ISR members get a fresh lag allowance.
func (l *Leader) startTerm(st PartitionState, now time.Time) {
	l.leaderEpoch = st.LeaderEpoch
	l.epochStart = l.log.LogEndOffset()
	l.followers = make(map[int32]*followerState)
	l.adopt(st, now)
}

// adopt takes replicas, ISR and partition epoch from st, dropping any
// pending change (the record supersedes it) and tracking new followers.
func (l *Leader) adopt(st PartitionState, now time.Time) {
	l.partitionEpoch = st.PartitionEpoch
	l.replicas = slices.Clone(st.Replicas)
	l.isr = inOrder(st.Replicas, st.ISR)
	l.pending, l.pendingStale, l.retryAt = nil, false, time.Time{}
	for id := range l.followers {
		if !slices.Contains(l.replicas, id) {
			delete(l.followers, id)
		}
	}
	for _, id := range l.replicas {
		if _, ok := l.followers[id]; !ok && id != l.cfg.ReplicaID {
			l.followers[id] = newFollowerState(slices.Contains(l.isr, id), now)
		}
	}
}

// Update applies a partition record from the controller (the etcd watch).
// Records not newer than the one in force (by leader epoch, then
// partition epoch) are ignored. A newer leader epoch
// for this broker starts a new term; a newer partition epoch in the same
// term replaces the ISR and any pending change; a record naming another
// leader resigns (LeaderReady.Resigned).
func (l *Leader) Update(st PartitionState, now time.Time) (LeaderReady, error) {
	if l.resigned {
		return LeaderReady{HighWatermark: l.hw}, ErrResigned
	}
	if err := st.validate(); err != nil {
		return LeaderReady{HighWatermark: l.hw}, err
	}
	if st.LeaderEpoch < l.leaderEpoch || (st.LeaderEpoch == l.leaderEpoch && st.PartitionEpoch <= l.partitionEpoch) {
		// Not newer than the record in force. An equal record (the watch
		// echoing an ISR change already adopted from ISRChangeResult) must
		// not clear a change proposed since: the controller may still
		// accept that one, and the HW must keep waiting for its replicas.
		return LeaderReady{HighWatermark: l.hw}, nil
	}
	if st.Leader != l.cfg.ReplicaID {
		return l.Resign(), nil
	}
	if st.LeaderEpoch > l.leaderEpoch {
		l.startTerm(st, now)
	} else {
		l.adopt(st, now)
	}
	var rd LeaderReady
	l.settle(now, &rd)
	return rd, nil
}

// Resign stops leading: every waiting produce fails with
// kerr.NotLeaderForPartition and later calls are refused. Call it when the
// broker learns it is no longer the leader, or is closing the partition.
func (l *Leader) Resign() LeaderReady {
	rd := LeaderReady{HighWatermark: l.hw, Resigned: !l.resigned}
	l.resigned = true
	l.pending = nil
	for _, w := range l.waiters {
		rd.Acks = append(rd.Acks, AckResult{ID: w.id, Err: kerr.NotLeaderForPartition})
	}
	l.waiters = nil
	return rd
}

// SetMinInsyncReplicas applies a changed min.insync.replicas.
func (l *Leader) SetMinInsyncReplicas(n int) { l.cfg.MinInsyncReplicas = max(n, 1) }

// SetIneligible names the replicas that must not join the ISR now
// (KIP-841: brokers that are not registered, are fenced, or are in
// controlled shutdown). The driver calls it whenever its view of the
// brokers changes; it replaces the previous list. Ineligible replicas are
// neither proposed for the ISR nor waited for by the HW unless already in
// the ISR.
func (l *Leader) SetIneligible(replicas []int32) { l.ineligible = slices.Clone(replicas) }

// LogAppended tells the Leader that its log grew (after an append). With
// an ISR of one (and no caught-up follower about to rejoin) this alone
// advances the HW.
func (l *Leader) LogAppended(now time.Time) LeaderReady {
	var rd LeaderReady
	if !l.resigned {
		l.settle(now, &rd)
	}
	rd.HighWatermark = l.hw
	return rd
}

// Tick lets time pass: followers that lag for longer than
// replica.lag.time.max.ms are proposed for removal from the ISR (Kafka's
// Partition.maybeShrinkIsr, which Kafka runs every lag/2), waiting
// produces whose deadline passed fail with kerr.RequestTimedOut, and an ISR
// change that failed transiently is re-sent. Call it periodically (every
// few hundred milliseconds) and after the clock jumps.
func (l *Leader) Tick(now time.Time) LeaderReady {
	var rd LeaderReady
	if l.resigned {
		rd.HighWatermark = l.hw
		return rd
	}
	if l.pending != nil && !l.pendingStale && !l.retryAt.IsZero() && !now.Before(l.retryAt) {
		l.retryAt = time.Time{}
		c := l.pending.clone()
		rd.ISRChange = &c
	}
	if rd.ISRChange == nil {
		rd.ISRChange = l.maybeShrinkISR(now)
	}
	l.settle(now, &rd)
	return rd
}

// CheckProduce decides, before anything is appended, whether a produce
// with requiredAcks may go ahead: kerr.NotLeaderForPartition after
// resignation, kerr.NotEnoughReplicas for acks=-1 while the committed ISR
// is smaller than min.insync.replicas (Kafka's
// Partition.appendRecordsToLeader), nil otherwise.
func (l *Leader) CheckProduce(requiredAcks int16) error {
	switch {
	case l.resigned:
		return kerr.NotLeaderForPartition
	case requiredAcks == -1 && len(l.isr) < l.effectiveMinISR():
		return kerr.NotEnoughReplicas
	}
	return nil
}

// CheckListOffsets returns kerr.OffsetNotAvailable while the HW lags the
// start of this leader epoch, as Kafka's Partition.fetchOffsetForTimestamp
// does for client ListOffsets (the "latest" offset would otherwise go
// backwards for a consumer that saw the previous leader's HW).
func (l *Leader) CheckListOffsets() error {
	switch {
	case l.resigned:
		return kerr.NotLeaderForPartition
	case l.hw < l.epochStart:
		return kerr.OffsetNotAvailable
	}
	return nil
}

// WaitForAcks registers an acks=all produce whose batch ends at lastOffset
// (inclusive). It completes when the HW passes lastOffset, or fails at
// deadline; the result may already be in the returned LeaderReady.
func (l *Leader) WaitForAcks(id AckID, lastOffset Offset, deadline, now time.Time) LeaderReady {
	if l.resigned {
		return LeaderReady{HighWatermark: l.hw, Acks: []AckResult{{ID: id, Err: kerr.NotLeaderForPartition}}}
	}
	l.waiters = append(l.waiters, ackWaiter{id: id, lastOffset: lastOffset, deadline: deadline})
	var rd LeaderReady
	l.settle(now, &rd)
	return rd
}

// HighWatermark is the offset below which records are committed.
func (l *Leader) HighWatermark() Offset { return l.hw }

// LeaderEpoch is the epoch this broker leads in.
func (l *Leader) LeaderEpoch() LeaderEpoch { return l.leaderEpoch }

// PartitionEpoch is the partition epoch of the record in force.
func (l *Leader) PartitionEpoch() int32 { return l.partitionEpoch }

// EpochStartOffset is the log end offset at which this leader epoch began.
func (l *Leader) EpochStartOffset() Offset { return l.epochStart }

// Replicas is the assignment in force.
func (l *Leader) Replicas() []int32 { return slices.Clone(l.replicas) }

// ISR is the committed in-sync replica set (what the controller stored).
func (l *Leader) ISR() []int32 { return slices.Clone(l.isr) }

// MaximalISR is the committed ISR plus replicas a pending expansion adds
// (KIP-497): the set the HW and acks=all wait for.
func (l *Leader) MaximalISR() []int32 {
	if l.pending == nil {
		return slices.Clone(l.isr)
	}
	return union(l.replicas, l.isr, l.pending.ISR)
}

// PendingISRChange returns the ISR change in flight, if any.
func (l *Leader) PendingISRChange() (ISRChange, bool) {
	if l.pending == nil {
		return ISRChange{}, false
	}
	return l.pending.clone(), true
}

// Resigned reports whether the Leader has stopped leading.
func (l *Leader) Resigned() bool { return l.resigned }

// UnderReplicated reports an ISR smaller than the assignment (Kafka's
// UnderReplicatedPartitions metric).
func (l *Leader) UnderReplicated() bool { return len(l.isr) < len(l.replicas) }

// UnderMinISR reports an ISR smaller than min.insync.replicas (Kafka's
// UnderMinIsrPartitionCount metric): acks=all produces are refused.
func (l *Leader) UnderMinISR() bool { return len(l.isr) < l.effectiveMinISR() }

func (l *Leader) effectiveMinISR() int { return min(l.cfg.MinInsyncReplicas, len(l.replicas)) }

func (c ISRChange) clone() ISRChange {
	c.ISR = slices.Clone(c.ISR)
	return c
}
