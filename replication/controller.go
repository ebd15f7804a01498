package replication

import (
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
)

// ClusterView is the controller's view of the brokers when it decides.
type ClusterView struct {
	// Live are the brokers with a live registration (an unexpired lease).
	Live []int32
	// ShuttingDown are live brokers in controlled shutdown: they are never
	// elected leader and are dropped from ISRs (KIP-841 calls both this and
	// a dead broker ineligible).
	ShuttingDown []int32
}

func (v ClusterView) live(id int32) bool { return slices.Contains(v.Live, id) }

// eligible reports whether id may lead or join an ISR.
func (v ClusterView) eligible(id int32) bool {
	return v.live(id) && !slices.Contains(v.ShuttingDown, id)
}

// The controller functions below are pure: each takes the stored record
// and returns the record to store, with LeaderEpoch bumped when the leader
// changed and PartitionEpoch bumped when anything changed. An unchanged
// record comes back as it was (same PartitionEpoch), which is how callers
// tell whether to write. The caller stores the result with compare-and-swap
// on the record it read (metadata.Store.SetPartitionState) and, on a
// conflict, re-reads and decides again.

// NewPartitionState is the first record of a new partition: the ISR is the
// replicas that are live and eligible, the leader the first of them in
// assignment order (Kafka's KRaft createTopic). It fails with
// kerr.InvalidReplicationFactor when no replica can be placed online.
func NewPartitionState(replicas []int32, view ClusterView) (PartitionState, error) {
	p := PartitionState{Leader: NoLeader, Replicas: slices.Clone(replicas)}
	p.ISR = filterIDs(replicas, view.eligible)
	if len(p.ISR) == 0 {
		return p, fmt.Errorf("replication: no live replica among %s: %w", fmtIDs(replicas), kerr.InvalidReplicationFactor)
	}
	p.Leader = p.ISR[0]
	return p, p.validate()
}

// Reconcile brings a partition in line with the live brokers; call it for
// every partition when a broker is lost, returns, or enters controlled
// shutdown (Kafka's handleBrokerFenced / handleBrokerUnfenced /
// PartitionChangeBuilder):
//
//   - Dead and shutting-down brokers leave the ISR, unless that would
//     empty it: if no eligible member remains, live (shutting-down)
//     members stay; if no member is live, the ISR is left as it was, so the
//     last members standing can resume leadership cleanly when they return
//     (Kafka without KIP-966's ELR never shrinks an ISR to empty).
//   - A leader that is eligible and in the ISR stays. Otherwise the first
//     replica in assignment order that is in the ISR and eligible leads. A
//     shutting-down leader with no eligible successor keeps leading until
//     it actually leaves.
//   - With none, uncleanLeaderElection (unclean.leader.election.enable)
//     elects the first eligible replica outside the ISR, with an ISR of
//     itself; this may lose committed data. Otherwise the partition goes
//     offline: Leader NoLeader.
func Reconcile(p PartitionState, view ClusterView, uncleanLeaderElection bool) (PartitionState, error) {
	if err := p.validate(); err != nil {
		return p, err
	}
	next := p.Clone()
	next.ISR = reconcileISR(p.ISR, view)
	next.Leader = electFromISR(p.Leader, p.Replicas, next.ISR, view)
	if next.Leader == NoLeader && uncleanLeaderElection {
		if ids := filterIDs(p.Replicas, view.eligible); len(ids) > 0 {
			next.Leader, next.ISR = ids[0], ids[:1]
		}
	}
	return bump(p, next), nil
}

// ControlledShutdown moves leadership away from broker, which is about to
// stop, and removes it from the ISR (Kafka's
// handleBrokerInControlledShutdown). It is Reconcile with broker counted as
// shutting down and unclean election off. A partition where broker is the
// only eligible ISR member keeps it as leader until it actually goes; the
// caller can report such partitions as remaining.
func ControlledShutdown(p PartitionState, broker int32, view ClusterView) (PartitionState, error) {
	v := ClusterView{Live: slices.Clone(view.Live), ShuttingDown: slices.Clone(view.ShuttingDown)}
	if !v.live(broker) {
		v.Live = append(v.Live, broker)
	}
	if !slices.Contains(v.ShuttingDown, broker) {
		v.ShuttingDown = append(v.ShuttingDown, broker)
	}
	return Reconcile(p, v, false)
}

// ElectPreferredLeader moves leadership to the preferred replica
// (Replicas[0]) when it is eligible and in the ISR (ElectLeaders with
// PREFERRED; auto.leader.rebalance.enable). It fails with
// kerr.ElectionNotNeeded if the preferred replica already leads and with
// kerr.PreferredLeaderNotAvailable if it cannot lead now; the record is
// then returned unchanged.
func ElectPreferredLeader(p PartitionState, view ClusterView) (PartitionState, error) {
	if err := p.validate(); err != nil {
		return p, err
	}
	preferred := p.Replicas[0]
	switch {
	case p.Leader == preferred:
		return p, fmt.Errorf("replication: replica %d already leads: %w", preferred, kerr.ElectionNotNeeded)
	case !slices.Contains(p.ISR, preferred) || !view.eligible(preferred):
		return p, fmt.Errorf("replication: preferred replica %d not in the isr or not eligible: %w",
			preferred, kerr.PreferredLeaderNotAvailable)
	}
	next := p.Clone()
	next.Leader = preferred
	return bump(p, next), nil
}

// ApplyISRChange validates a leader's ISR change against the stored record
// and applies it (Kafka's ReplicationControlManager.alterPartition), with
// the same errors in the same order:
//
//   - kerr.NotController: the proposal is newer than the record (this
//     view of the metadata is stale);
//   - kerr.FencedLeaderEpoch: the proposer's leader epoch is old;
//   - kerr.InvalidRequest: the proposer is not the leader, or the ISR is
//     malformed (empty, duplicates, not replicas, without the leader);
//   - kerr.InvalidUpdateVersion: built from an older partition epoch;
//   - kerr.IneligibleReplica: a follower in the new ISR is dead or shutting
//     down (KIP-841).
//
// A proposal equal to the stored ISR returns the record unchanged.
func ApplyISRChange(p PartitionState, c ISRChange, view ClusterView) (PartitionState, error) {
	if err := p.validate(); err != nil {
		return p, err
	}
	reject := func(why string, code *kerr.Error) (PartitionState, error) {
		return p, fmt.Errorf("replication: isr change %s rejected by %s: %s: %w", c, p, why, code)
	}
	switch {
	case c.LeaderEpoch > p.LeaderEpoch || (c.LeaderEpoch == p.LeaderEpoch && c.PartitionEpoch > p.PartitionEpoch):
		return reject("newer than the stored record", kerr.NotController)
	case c.LeaderEpoch < p.LeaderEpoch:
		return reject("stale leader epoch", kerr.FencedLeaderEpoch)
	case c.Leader != p.Leader:
		return reject("not from the leader", kerr.InvalidRequest)
	case c.PartitionEpoch < p.PartitionEpoch:
		return reject("stale partition epoch", kerr.InvalidUpdateVersion)
	case len(c.ISR) == 0 || hasDuplicates(c.ISR) || !slices.Contains(c.ISR, p.Leader):
		return reject("malformed isr", kerr.InvalidRequest)
	}
	for _, id := range c.ISR {
		if !slices.Contains(p.Replicas, id) {
			return reject(fmt.Sprintf("%d is not a replica", id), kerr.InvalidRequest)
		}
		if id != p.Leader && !view.eligible(id) {
			return reject(fmt.Sprintf("replica %d is not eligible", id), kerr.IneligibleReplica)
		}
	}
	next := p.Clone()
	next.ISR = inOrder(p.Replicas, c.ISR)
	return bump(p, next), nil
}

// reconcileISR drops ineligible members, keeping the last ones standing.
func reconcileISR(isr []int32, view ClusterView) []int32 {
	if kept := filterIDs(isr, view.eligible); len(kept) > 0 {
		return kept
	}
	if kept := filterIDs(isr, view.live); len(kept) > 0 {
		return kept
	}
	return slices.Clone(isr)
}

// electFromISR picks the leader among isr: the current one if it may
// stay, else the first eligible in assignment order, else a live
// (shutting-down) current leader, else none.
func electFromISR(current int32, replicas, isr []int32, view ClusterView) int32 {
	inISR := func(id int32) bool { return id != NoLeader && slices.Contains(isr, id) }
	if inISR(current) && view.eligible(current) {
		return current
	}
	for _, id := range replicas {
		if inISR(id) && view.eligible(id) {
			return id
		}
	}
	if inISR(current) && view.live(current) {
		return current
	}
	return NoLeader
}

// bump returns next with its epochs advanced past p's if it differs, or p
// itself if nothing changed.
func bump(p, next PartitionState) PartitionState {
	if next.Leader == p.Leader && slices.Equal(next.ISR, p.ISR) {
		return p
	}
	if next.Leader != p.Leader {
		next.LeaderEpoch = p.LeaderEpoch + 1
	}
	next.PartitionEpoch = p.PartitionEpoch + 1
	return next
}

func filterIDs(ids []int32, keep func(int32) bool) []int32 {
	out := make([]int32, 0, len(ids))
	for _, id := range ids {
		if keep(id) {
			out = append(out, id)
		}
	}
	return out
}
