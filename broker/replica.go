package broker

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicedev/sluice/metadata"
	"github.com/sluicedev/sluice/replication"
	"github.com/sluicedev/sluice/storage"
)

// replica is the replication side of one partition hosted here: whether
// this broker leads or follows it, the state machine doing so (package
// replication), and lock-free mirrors of what the request paths need.
//
// Every call into the state machine and the application of the Ready it
// returns happen under mu, and so does every leader append, so that the
// log does not change between the two (the contract of replication.Log).
// Lock order: replica.mu, then the broker's fetcher table, then
// storage.Log's locks. The coordinator is never called with mu held.
type replica struct {
	b *Broker
	p *partition

	mu struct {
		sync.Mutex
		state    replication.PartitionState
		revision int64 // etcd revision of state; 0 before any record
		leader   *replication.Leader
		follower *replication.Follower
		fetchee  int32 // the leader whose fetcher has this partition, or -1
		waiters  map[replication.AckID]chan error
		sentHW   map[int32]int64 // HW last answered to each follower
		closed   bool
	}
	nextAck atomic.Uint64

	// Mirrors of mu's state for the request paths, written under mu.
	leading     atomic.Bool
	leaderID    atomic.Int32
	leaderEpoch atomic.Int32
	hw          atomic.Int64

	// hwWatchers are the consumer fetches waiting for the HW to move,
	// each a single channel per fetch request (see fetchWaiter).
	hwWatchers struct {
		sync.Mutex
		set map[chan<- struct{}]struct{}
	}

	// Follower statistics for the lag metrics.
	lagRecords   atomic.Int64
	caughtUpNano atomic.Int64
}

func newReplica(b *Broker, p *partition) *replica {
	r := &replica{b: b, p: p}
	r.mu.fetchee = replication.NoLeader
	r.mu.waiters = map[replication.AckID]chan error{}
	r.mu.sentHW = map[int32]int64{}
	r.leaderID.Store(replication.NoLeader)
	r.leaderEpoch.Store(-1)
	r.hw.Store(max(p.log.HighWatermark(), 0))
	return r
}

// watchHW registers c to receive a token (a non-blocking send) at every
// later change of the HW, until unwatchHW. Register before reading the HW,
// so that no change is missed.
func (r *replica) watchHW(c chan<- struct{}) {
	r.hwWatchers.Lock()
	defer r.hwWatchers.Unlock()
	if r.hwWatchers.set == nil {
		r.hwWatchers.set = map[chan<- struct{}]struct{}{}
	}
	r.hwWatchers.set[c] = struct{}{}
}

// unwatchHW removes a watchHW registration.
func (r *replica) unwatchHW(c chan<- struct{}) {
	r.hwWatchers.Lock()
	defer r.hwWatchers.Unlock()
	delete(r.hwWatchers.set, c)
}

// publishHWLocked makes hw the partition's visible high watermark: readers,
// waiting fetches and the storage checkpoint see it.
func (r *replica) publishHWLocked(hw int64) {
	if r.hw.Load() == hw {
		return
	}
	r.hw.Store(hw)
	r.p.log.SetHighWatermark(hw)
	r.hwWatchers.Lock()
	for c := range r.hwWatchers.set {
		select {
		case c <- struct{}{}:
		default: // a token is already waiting
		}
	}
	r.hwWatchers.Unlock()
}

// applyLeaderLocked carries out what the Leader asked for. Resignation is
// the caller's business (it knows what replaces the Leader).
func (r *replica) applyLeaderLocked(rd replication.LeaderReady) {
	r.publishHWLocked(rd.HighWatermark)
	for _, a := range rd.Acks {
		if ch, ok := r.mu.waiters[a.ID]; ok {
			ch <- a.Err
			delete(r.mu.waiters, a.ID)
		}
	}
	if rd.ISRChange != nil {
		r.b.proposeISRChange(r, *rd.ISRChange)
	}
}

// applyFollowerLocked carries out what the Follower asked for, except the
// append, which the fetcher does with the records it holds.
func (r *replica) applyFollowerLocked(rd replication.FollowerReady) {
	l := r.p.log
	if t := rd.Truncate; t != nil {
		var err error
		if t.Fully {
			err = l.TruncateFullyAndStartAt(t.Offset)
		} else {
			err = l.TruncateTo(t.Offset)
		}
		if err != nil {
			r.b.log.Error("follower truncation failed", "topic", l.Topic(), "partition", l.Partition(), "offset", t.Offset, "err", err)
		} else {
			r.b.log.Info("follower truncated its log", "topic", l.Topic(), "partition", l.Partition(), "offset", t.Offset, "fully", t.Fully)
			r.b.metrics.truncations.Inc()
		}
	}
	if rd.HighWatermarkChanged {
		r.publishHWLocked(rd.HighWatermark)
	}
	if rd.LogStartOffsetAdvanced {
		if _, err := l.AdvanceLogStartOffset(rd.LogStartOffset); err != nil {
			r.b.log.Warn("follower log start offset", "topic", l.Topic(), "partition", l.Partition(), "err", err)
		}
	}
	if rd.Fenced {
		r.b.log.Info("follower fenced by its leader; waiting for a newer partition record", "topic", l.Topic(), "partition", l.Partition())
	}
}

// errNotLeader is what leader-only paths get from a replica that does not
// lead; produceCode maps it to NOT_LEADER_OR_FOLLOWER.
var errNotLeader = kerr.NotLeaderForPartition

// appendLeader appends one produced batch as leader. With acks=-1 it also
// registers the wait for replication and returns the channel its outcome
// arrives on (already answered when the HW passed the batch at once).
func (r *replica) appendLeader(records []byte, opts storage.AppendOptions, acks int16, timeout time.Duration) (storage.AppendResult, <-chan error, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.mu.leader
	// Only acks=0/1 depend on the lease: an acks=all append is committed
	// only when every ISR member has it, and a deposed leader cannot get
	// that from a follower that knows the newer epoch.
	if l == nil || (acks != -1 && r.b.fenced()) {
		return storage.AppendResult{}, nil, errNotLeader
	}
	if r.b.logDirFailed() {
		return storage.AppendResult{}, nil, errLogDirOffline
	}
	if err := l.CheckProduce(acks); err != nil {
		return storage.AppendResult{}, nil, err
	}
	opts.AssignOffsets, opts.LeaderEpoch = true, l.LeaderEpoch()
	res, err := r.p.log.Append(records, opts)
	if err != nil {
		return res, nil, err
	}
	now := time.Now()
	r.applyLeaderLocked(l.LogAppended(now))
	if acks != -1 {
		return res, nil, nil
	}
	id := replication.AckID(r.nextAck.Add(1))
	ch := make(chan error, 1)
	r.mu.waiters[id] = ch
	r.applyLeaderLocked(l.WaitForAcks(id, res.LastOffset, now.Add(timeout), now))
	return res, ch, nil
}

// readBound is what a consumer fetch or ListOffsets may read: the HW and
// leader epoch, or the error when this broker does not lead. currentEpoch
// is the request's CurrentLeaderEpoch (KIP-320), -1 to skip the check.
func (r *replica) readBound(currentEpoch int32) (hw int64, epoch int32, code int16) {
	// Not fenced by the lease: what is below the HW is on every ISR member,
	// so even a leader the controller has replaced meanwhile serves only
	// committed records.
	if !r.leading.Load() {
		return -1, -1, kerr.NotLeaderForPartition.Code
	}
	epoch = r.leaderEpoch.Load()
	switch {
	case currentEpoch < 0 || currentEpoch == epoch:
	case currentEpoch < epoch:
		return -1, epoch, kerr.FencedLeaderEpoch.Code
	default:
		return -1, epoch, kerr.UnknownLeaderEpoch.Code
	}
	return r.hw.Load(), epoch, 0
}

// withLeader runs fn on the Leader under the lock, or reports
// NOT_LEADER_OR_FOLLOWER.
func (r *replica) withLeader(fn func(l *replication.Leader)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.leader == nil {
		return errNotLeader
	}
	fn(r.mu.leader)
	return nil
}

// followerFetch runs a follower's fetch through the Leader. It returns the
// decision, the log end offset to read up to, and whether the HW in the
// answer differs from the one this follower was last told (the fetch then
// answers at once rather than long-polling, so followers learn the HW
// without waiting for data).
func (r *replica) followerFetch(req replication.FollowerFetch) (replication.FetchDecision, int64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.mu.leader
	if l == nil {
		return replication.FetchDecision{Err: kerr.NotLeaderForPartition, HighWatermark: -1, LogStartOffset: -1}, 0, false
	}
	dec, rd := l.FollowerFetch(req)
	r.applyLeaderLocked(rd)
	if dec.Err != nil || dec.DivergingEpoch != nil {
		return dec, 0, true
	}
	last, seen := r.mu.sentHW[req.ReplicaID]
	r.mu.sentHW[req.ReplicaID] = dec.HighWatermark
	return dec, r.p.log.LogEndOffset(), !seen || last != dec.HighWatermark
}

// tick lets time pass for a led partition: ISR shrink, acks=all timeouts,
// retries of ISR changes. ineligible lists the replicas that are not live.
func (r *replica) tick(now time.Time, live func(int32) bool, minISR int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.mu.leader
	if l == nil {
		return
	}
	var ineligible []int32
	for _, id := range r.mu.state.Replicas {
		if id != r.b.cfg.NodeID && !live(id) {
			ineligible = append(ineligible, id)
		}
	}
	l.SetIneligible(ineligible)
	l.SetMinInsyncReplicas(minISR)
	r.applyLeaderLocked(l.Tick(now))
}

// transition says how a state change moved this broker's role, for the
// work that must happen outside the lock (the group coordinator).
type transition int8

const (
	noTransition transition = iota
	becameLeader
	stoppedLeading
)

// applyState brings the replica in line with a partition record from etcd
// and the partition's assignment. Records not newer than the one in force
// are ignored. A record naming this broker leader that was written before
// this broker registered is from its previous life: leading at that epoch
// could hide a divergence (see package replication), so the broker waits
// for the controller to bump the epoch.
func (r *replica) applyState(ms metadata.PartitionState, replicas []int32) transition {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.closed || (r.mu.revision != 0 && ms.Revision <= r.mu.revision) {
		return noTransition
	}
	st := replication.PartitionState{
		Leader: ms.Leader, LeaderEpoch: ms.LeaderEpoch, PartitionEpoch: ms.PartitionEpoch,
		Replicas: slices.Clone(replicas), ISR: slices.Clone(ms.ISR),
	}
	r.mu.state, r.mu.revision = st, ms.Revision
	self := r.b.cfg.NodeID
	now := time.Now()
	stale := st.Leader == self && ms.Revision <= r.b.registrationEpoch()
	switch {
	case st.Leader == self && !stale:
		return r.leadLocked(st, now)
	case st.Leader == self:
		// Neither lead nor follow until the controller re-elects.
		t := r.stopLeadingLocked()
		r.unfollowLocked()
		r.setMirrorsLocked(replication.NoLeader, st.LeaderEpoch)
		return t
	default:
		t := r.stopLeadingLocked()
		if slices.Contains(replicas, self) {
			r.followLocked(st, now)
		} else {
			r.unfollowLocked()
		}
		r.setMirrorsLocked(st.Leader, st.LeaderEpoch)
		return t
	}
}

func (r *replica) leadLocked(st replication.PartitionState, now time.Time) transition {
	if l := r.mu.leader; l != nil {
		before := len(l.ISR())
		rd, err := l.Update(st, now)
		r.countISRChange(before, len(l.ISR()))
		if err != nil {
			r.b.log.Error("partition record rejected", "topic", r.p.log.Topic(), "partition", r.p.index, "state", st.String(), "err", err)
			return noTransition
		}
		r.applyLeaderLocked(rd)
		r.setMirrorsLocked(st.Leader, l.LeaderEpoch())
		return noTransition
	}
	hw := r.hw.Load()
	if f := r.mu.follower; f != nil {
		hw = f.HighWatermark()
	}
	r.unfollowLocked()
	cfg := replication.LeaderConfig{
		ReplicaID:         r.b.cfg.NodeID,
		MinInsyncReplicas: r.p.topic.minInsync(),
		ReplicaLagTimeMax: r.b.settings.brokerMillis("replica.lag.time.max.ms", 30000),
	}
	l, rd, err := replication.NewLeader(cfg, r.p.log, st, hw, now)
	if err != nil {
		r.b.log.Error("cannot lead partition", "topic", r.p.log.Topic(), "partition", r.p.index, "state", st.String(), "err", err)
		return noTransition
	}
	r.mu.leader = l
	clear(r.mu.sentHW)
	r.applyLeaderLocked(rd)
	r.setMirrorsLocked(st.Leader, st.LeaderEpoch)
	r.leading.Store(true)
	r.b.log.Info("leading partition", "topic", r.p.log.Topic(), "partition", r.p.index,
		"leader_epoch", st.LeaderEpoch, "isr", st.ISR, "hw", rd.HighWatermark, "leo", r.p.log.LogEndOffset())
	return becameLeader
}

// stopLeadingLocked resigns a Leader: waiting acks=all produces fail with
// NOT_LEADER_OR_FOLLOWER.
func (r *replica) stopLeadingLocked() transition {
	l := r.mu.leader
	if l == nil {
		return noTransition
	}
	r.leading.Store(false)
	rd := l.Resign()
	r.applyLeaderLocked(rd)
	for id, ch := range r.mu.waiters {
		ch <- kerr.NotLeaderForPartition
		delete(r.mu.waiters, id)
	}
	r.mu.leader = nil
	r.b.log.Info("stopped leading partition", "topic", r.p.log.Topic(), "partition", r.p.index, "hw", rd.HighWatermark)
	return stoppedLeading
}

func (r *replica) followLocked(st replication.PartitionState, now time.Time) {
	f := r.mu.follower
	if f == nil {
		f = replication.NewFollower(replication.FollowerConfig{
			ReplicaID:    r.b.cfg.NodeID,
			FetchBackoff: r.b.settings.brokerMillis("replica.fetch.backoff.ms", 1000),
		}, r.p.log)
		r.mu.follower = f
	}
	rd, err := f.BecomeFollower(st.Leader, st.LeaderEpoch, r.hw.Load(), now)
	if err != nil {
		r.b.log.Error("cannot follow partition", "topic", r.p.log.Topic(), "partition", r.p.index, "state", st.String(), "err", err)
		return
	}
	r.applyFollowerLocked(rd)
	if r.mu.fetchee != st.Leader {
		r.b.fetchers.remove(r.mu.fetchee, r)
		r.mu.fetchee = st.Leader
		r.b.fetchers.add(st.Leader, r)
	}
	r.b.fetchers.wake(st.Leader)
}

func (r *replica) unfollowLocked() {
	if r.mu.follower != nil {
		r.mu.follower.Stop()
	}
	r.b.fetchers.remove(r.mu.fetchee, r)
	r.mu.fetchee = replication.NoLeader
	r.lagRecords.Store(0)
}

func (r *replica) setMirrorsLocked(leader, epoch int32) {
	r.leaderID.Store(leader)
	r.leaderEpoch.Store(epoch)
}

// close stops the replica for good (the topic was deleted or the broker
// is shutting down).
func (r *replica) close() transition {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.stopLeadingLocked()
	r.unfollowLocked()
	r.mu.closed = true
	return t
}

// state returns the record in force and whether one was applied.
func (r *replica) state() (replication.PartitionState, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.state.Clone(), r.mu.revision != 0
}

// leaderStatus reports what the replication metrics need of a led
// partition; ok is false when this broker does not lead it.
func (r *replica) leaderStatus() (underReplicated, underMinISR bool, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.leader == nil {
		return false, false, false
	}
	return r.mu.leader.UnderReplicated(), r.mu.leader.UnderMinISR(), true
}

// countISRChange counts a change of a led partition's ISR size, whoever
// wrote it (this leader's proposal, or the controller dropping a dead
// broker), as Kafka's IsrShrinksPerSec and IsrExpandsPerSec do.
func (r *replica) countISRChange(before, after int) {
	switch {
	case after < before:
		r.b.metrics.isrShrinks.Inc()
	case after > before:
		r.b.metrics.isrExpands.Inc()
	}
}

// errorCode maps a replication outcome (an acks=all wait, a Leader's
// check) to its Kafka error code: 0 for nil, the code of a kerr error, and
// REQUEST_TIMED_OUT for anything else (a wait cut short by shutdown).
func errorCode(err error) int16 {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	if err != nil {
		return kerr.RequestTimedOut.Code
	}
	return 0
}

// stepDownIfBefore stops leading when the record in force was written
// before registration epoch, as applyState does for such a record (a
// broker never resumes a leader epoch from before its registration).
func (r *replica) stepDownIfBefore(epoch int64) transition {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.closed || r.mu.leader == nil || r.mu.revision > epoch {
		return noTransition
	}
	t := r.stopLeadingLocked()
	r.setMirrorsLocked(replication.NoLeader, r.mu.state.LeaderEpoch)
	return t
}
