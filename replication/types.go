package replication

import (
	"errors"
	"fmt"
	"slices"
)

// Offset is a position in a partition log (Kafka's int64 offsets). It is an
// alias rather than a defined type so that values from storage, metadata
// and kmsg flow in and out without a conversion at every call site.
type Offset = int64

// LeaderEpoch numbers leadership terms of a partition (KIP-101). It is an
// alias for the same reason as Offset.
type LeaderEpoch = int32

const (
	// NoLeader is the leader id of an offline partition (Kafka's
	// LeaderAndIsr.NO_LEADER).
	NoLeader int32 = -1
	// UndefinedEpoch is Kafka's UNDEFINED_EPOCH: "no epoch", in requests
	// (a Fetch without LastFetchedEpoch) and in answers alike.
	UndefinedEpoch LeaderEpoch = -1
	// UndefinedOffset is Kafka's UNDEFINED_EPOCH_OFFSET.
	UndefinedOffset Offset = -1
)

var (
	// ErrInvalidState is returned when a PartitionState handed to a state
	// machine is self-contradictory (the leader outside the ISR, an ISR
	// member that is not a replica, duplicates) or names the wrong leader.
	// It signals a bug or a corrupt metadata record, never a client error.
	ErrInvalidState = errors.New("replication: invalid partition state")
	// ErrResigned is returned by a Leader that has resigned: it no longer
	// leads the partition and must be replaced (by a Follower or a new
	// Leader for a later epoch).
	ErrResigned = errors.New("replication: leader resigned")
)

// Log is the read-only view of the local partition log that Leader and
// Follower consult, in the manner of etcd-io/raft's Storage: the state
// machines read through it but never write; every change they want comes
// out as an action for the driver to apply. *storage.Log satisfies it.
//
// The driver must not change the log between the moment it calls into a
// state machine and the moment it has applied that call's actions (hold the
// partition lock across both).
type Log interface {
	// LogStartOffset is the first offset still in the log.
	LogStartOffset() Offset
	// LogEndOffset is the offset the next appended record will get (LEO).
	LogEndOffset() Offset
	// LatestEpoch is the newest epoch in the leader-epoch cache, or -1.
	LatestEpoch() LeaderEpoch
	// EndOffsetForEpoch answers OffsetForLeaderEpoch from the local cache
	// (KIP-101, KIP-279): the largest cached epoch <= epoch and the start
	// offset of the next higher cached epoch, or the log end offset if
	// epoch is the latest. (-1, -1) when the answer is unknown.
	EndOffsetForEpoch(epoch LeaderEpoch) (LeaderEpoch, Offset)
}

// EpochEndOffset is an (epoch, end offset) pair: the answer to
// OffsetForLeaderEpoch and the DivergingEpoch field of Fetch v12+
// (KIP-320, KIP-595): the follower's log diverges from the leader's at or
// before EndOffset for epochs >= Epoch.
type EpochEndOffset struct {
	Epoch     LeaderEpoch
	EndOffset Offset
}

func (e EpochEndOffset) undefined() bool { return e.Epoch < 0 || e.EndOffset < 0 }

// PartitionState is the leadership record of one partition as the
// controller writes it (metadata.PartitionState) together with the replica
// assignment from the topic record, which every decision here needs.
type PartitionState struct {
	// Leader is the leader's replica id, or NoLeader when offline.
	Leader int32
	// LeaderEpoch grows whenever the leader changes, including to and from
	// NoLeader (KIP-101).
	LeaderEpoch LeaderEpoch
	// PartitionEpoch grows on every change of the record (KIP-841), so an
	// ISR change built from an older record is rejected.
	PartitionEpoch int32
	// Replicas is the assignment in preference order: Replicas[0] is the
	// preferred leader.
	Replicas []int32
	// ISR is the in-sync replica set, kept in assignment order. It holds the
	// leader whenever there is one and is never empty.
	ISR []int32
}

// Clone returns a deep copy, so callers may keep states they hand out.
func (p PartitionState) Clone() PartitionState {
	p.Replicas = slices.Clone(p.Replicas)
	p.ISR = slices.Clone(p.ISR)
	return p
}

// String formats the state compactly for logs and test output.
func (p PartitionState) String() string {
	return fmt.Sprintf("leader=%d leader-epoch=%d partition-epoch=%d replicas=%s isr=%s",
		p.Leader, p.LeaderEpoch, p.PartitionEpoch, fmtIDs(p.Replicas), fmtIDs(p.ISR))
}

// validate checks the shape every state machine relies on.
func (p PartitionState) validate() error {
	if len(p.Replicas) == 0 {
		return fmt.Errorf("%w: no replicas", ErrInvalidState)
	}
	if hasDuplicates(p.Replicas) || hasDuplicates(p.ISR) {
		return fmt.Errorf("%w: duplicate ids in %s", ErrInvalidState, p)
	}
	for _, id := range p.ISR {
		if !slices.Contains(p.Replicas, id) {
			return fmt.Errorf("%w: isr member %d is not a replica in %s", ErrInvalidState, id, p)
		}
	}
	if p.Leader != NoLeader && !slices.Contains(p.ISR, p.Leader) {
		return fmt.Errorf("%w: leader outside the isr in %s", ErrInvalidState, p)
	}
	if p.LeaderEpoch < 0 || p.PartitionEpoch < 0 {
		return fmt.Errorf("%w: negative epoch in %s", ErrInvalidState, p)
	}
	return nil
}

// ISRChange is an AlterPartition proposal (KIP-497): the leader asks the
// controller to replace the ISR of the record it last saw. The controller
// accepts it only if Leader, LeaderEpoch and PartitionEpoch still match the
// stored record (ApplyISRChange).
type ISRChange struct {
	// Leader is the proposing leader's replica id.
	Leader int32
	// LeaderEpoch is the proposer's leader epoch.
	LeaderEpoch LeaderEpoch
	// PartitionEpoch is the partition epoch of the record the proposal was
	// built from.
	PartitionEpoch int32
	// ISR is the proposed in-sync replica set, in assignment order.
	ISR []int32
}

// equal reports whether two proposals are the same request.
func (c ISRChange) equal(o ISRChange) bool {
	return c.Leader == o.Leader && c.LeaderEpoch == o.LeaderEpoch &&
		c.PartitionEpoch == o.PartitionEpoch && slices.Equal(c.ISR, o.ISR)
}

// String formats the proposal for logs and test output.
func (c ISRChange) String() string {
	return fmt.Sprintf("leader=%d leader-epoch=%d partition-epoch=%d isr=%s",
		c.Leader, c.LeaderEpoch, c.PartitionEpoch, fmtIDs(c.ISR))
}

func hasDuplicates(ids []int32) bool {
	for i, a := range ids {
		if slices.Contains(ids[i+1:], a) {
			return true
		}
	}
	return false
}

// inOrder returns the members of set ordered as they appear in replicas;
// ids absent from replicas are dropped.
func inOrder(replicas, set []int32) []int32 {
	out := make([]int32, 0, len(set))
	for _, r := range replicas {
		if slices.Contains(set, r) {
			out = append(out, r)
		}
	}
	return out
}

// union returns a ∪ b in the order of replicas.
func union(replicas, a, b []int32) []int32 {
	return inOrder(replicas, append(slices.Clone(a), b...))
}

func fmtIDs(ids []int32) string {
	b := []byte{'('}
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, "%d", id)
	}
	return string(append(b, ')'))
}
