package replication

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// FollowerFetch is one partition of a Fetch request from a follower
// (replica id >= 0), as the leader receives it.
type FollowerFetch struct {
	// ReplicaID is the fetching follower (Fetch ReplicaID, or
	// ReplicaState.ReplicaID from v15).
	ReplicaID int32
	// CurrentLeaderEpoch is the follower's view of the leader epoch
	// (KIP-320, Fetch v9+); -1 skips the check.
	CurrentLeaderEpoch LeaderEpoch
	// FetchOffset is where the follower wants to read from: its log end
	// offset.
	FetchOffset Offset
	// LastFetchedEpoch is the epoch of the follower's last batch (Fetch
	// v12+); -1 when absent, which skips the divergence check.
	LastFetchedEpoch LeaderEpoch
	// Now is when the leader received the fetch.
	Now time.Time
}

// FetchDecision is the leader's answer for one follower fetch. When Err
// and DivergingEpoch are both nil the driver reads records from
// FetchOffset up to the log end offset (within the byte limits) and sends
// them with HighWatermark and LogStartOffset.
type FetchDecision struct {
	// Err is the partition error for the response: kerr.FencedLeaderEpoch,
	// kerr.UnknownLeaderEpoch, kerr.NotLeaderForPartition or
	// kerr.OffsetOutOfRange; nil if the fetch is valid.
	Err error
	// DivergingEpoch, if set, goes into the response instead of records:
	// the follower's log diverges from the leader's (KIP-320, Fetch v12+)
	// and must be truncated first.
	DivergingEpoch *EpochEndOffset
	// HighWatermark and LogStartOffset fill the response fields. The HW
	// already counts this fetch (Kafka sends the one from before it), so a
	// follower learns an advance one round earlier.
	HighWatermark  Offset
	LogStartOffset Offset
}

// FollowerFetch handles a follower's fetch (Kafka's
// Partition.fetchRecords with a follower replica id): validate the epoch
// and the replica, detect divergence, check the offset range, then record
// the follower's position, which may expand the ISR and advance the HW. A
// fetch that diverges or fails leaves the follower's recorded state alone.
func (l *Leader) FollowerFetch(req FollowerFetch) (FetchDecision, LeaderReady) {
	d := FetchDecision{HighWatermark: l.hw, LogStartOffset: l.log.LogStartOffset()}
	rd := LeaderReady{HighWatermark: l.hw}
	if d.Err = l.checkCurrentEpoch(req.CurrentLeaderEpoch); d.Err != nil {
		return d, rd
	}
	f := l.followers[req.ReplicaID]
	if f == nil {
		// Not (or not yet) a replica in this epoch: make the follower
		// retry, as Partition.followerReplicaOrThrow does.
		d.Err = kerr.NotLeaderForPartition
		if req.CurrentLeaderEpoch >= 0 {
			d.Err = kerr.UnknownLeaderEpoch
		}
		return d, rd
	}
	// The divergence check comes before the log-end check: a follower
	// whose log runs past ours must learn where to truncate, not be told
	// its offset is out of range.
	if req.FetchOffset < d.LogStartOffset {
		d.Err = kerr.OffsetOutOfRange
		return d, rd
	}
	if req.LastFetchedEpoch >= 0 {
		ee := l.epochEnd(req.LastFetchedEpoch)
		if ee.undefined() {
			d.Err = kerr.OffsetOutOfRange
			return d, rd
		}
		if ee.Epoch < req.LastFetchedEpoch || ee.EndOffset < req.FetchOffset {
			d.DivergingEpoch = &ee
			return d, rd
		}
	}
	leo := l.log.LogEndOffset()
	if req.FetchOffset > leo {
		d.Err = kerr.OffsetOutOfRange
		return d, rd
	}
	f.update(req.FetchOffset, leo, req.Now)
	rd.ISRChange = l.maybeExpandISR(req.ReplicaID, req.Now)
	l.settle(req.Now, &rd)
	d.HighWatermark = l.hw
	return d, rd
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch for this partition
// (KIP-101, KIP-279; Kafka's Partition.lastOffsetForLeaderEpoch), after
// checking currentLeaderEpoch like a fetch does. The answer is
// (UndefinedEpoch, UndefinedOffset) only for an epoch above the current
// one.
func (l *Leader) EndOffsetForEpoch(currentLeaderEpoch, epoch LeaderEpoch) (EpochEndOffset, error) {
	if err := l.checkCurrentEpoch(currentLeaderEpoch); err != nil {
		return EpochEndOffset{Epoch: UndefinedEpoch, EndOffset: UndefinedOffset}, err
	}
	return l.epochEnd(epoch), nil
}

// checkCurrentEpoch is Kafka's Partition.getLocalLog check of a request's
// CurrentLeaderEpoch (KIP-320).
func (l *Leader) checkCurrentEpoch(current LeaderEpoch) error {
	switch {
	case l.resigned:
		return kerr.NotLeaderForPartition
	case current < 0:
		return nil
	case current < l.leaderEpoch:
		return kerr.FencedLeaderEpoch
	case current > l.leaderEpoch:
		return kerr.UnknownLeaderEpoch
	}
	return nil
}

// epochEnd looks epoch up in the local epoch cache, completed with the
// current epoch. Kafka writes (leader epoch, epoch start) into the cache
// when a leader is elected (LeaderEpochFileCache.assign via
// Partition.makeLeader) so that a follower holding batches of an epoch the
// new leader never saw truncates to the new epoch's start (KIP-279); here
// the Leader answers that entry itself until its first append puts it in
// the cache. An epoch older than every cached one ends at the log start
// offset, as Kafka's cache answers (the data before it is gone anyway).
func (l *Leader) epochEnd(epoch LeaderEpoch) EpochEndOffset {
	switch {
	case epoch < 0 || epoch > l.leaderEpoch:
		return EpochEndOffset{Epoch: UndefinedEpoch, EndOffset: UndefinedOffset}
	case epoch == l.leaderEpoch:
		return EpochEndOffset{Epoch: epoch, EndOffset: l.log.LogEndOffset()}
	}
	if latest := l.log.LatestEpoch(); latest < l.leaderEpoch && epoch >= latest {
		if latest < 0 {
			return EpochEndOffset{Epoch: epoch, EndOffset: l.epochStart}
		}
		return EpochEndOffset{Epoch: latest, EndOffset: l.epochStart}
	}
	e, end := l.log.EndOffsetForEpoch(epoch)
	if e < 0 || end < 0 {
		return EpochEndOffset{Epoch: epoch, EndOffset: l.log.LogStartOffset()}
	}
	return EpochEndOffset{Epoch: e, EndOffset: end}
}
