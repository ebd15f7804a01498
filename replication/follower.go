package replication

import (
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// DefaultFetchBackoff is Kafka's replica.fetch.backoff.ms default: how long
// a Follower waits after a failed fetch before trying again.
const DefaultFetchBackoff = time.Second

// FollowerConfig holds the settings of one partition's Follower.
type FollowerConfig struct {
	// ReplicaID is this broker's node id.
	ReplicaID int32
	// TruncateWithOffsetForLeaderEpoch selects the pre-Fetch-v12 protocol:
	// after every leader change the Follower asks OffsetForLeaderEpoch
	// where its log diverges and truncates before fetching (KIP-101,
	// KIP-279), and its fetches carry no LastFetchedEpoch. The default
	// (false) is the Fetch v12+ protocol: fetch at once and let the leader
	// report a DivergingEpoch (KIP-320, KIP-595).
	TruncateWithOffsetForLeaderEpoch bool
	// FetchBackoff is replica.fetch.backoff.ms. Zero means
	// DefaultFetchBackoff.
	FetchBackoff time.Duration
}

// RequestKind names the RPC a Follower wants sent to its leader.
type RequestKind int8

const (
	// RequestNone: nothing to send now (no leader, fenced, backing off).
	RequestNone RequestKind = iota
	// RequestFetch: a Fetch for this partition (FetchOffset,
	// LastFetchedEpoch, CurrentLeaderEpoch).
	RequestFetch
	// RequestEpochEnd: an OffsetForLeaderEpoch for Epoch, sent as a
	// replica (ReplicaID set).
	RequestEpochEnd
	// RequestLeaderOffsets: ListOffsets as a replica for the leader's
	// earliest (-2) and latest (-1) offsets, to recover from
	// OFFSET_OUT_OF_RANGE.
	RequestLeaderOffsets
)

// Request is what a Follower wants sent to Leader. It is a comparable
// value; hand it back unchanged in the matching result so the Follower can
// tell a current answer from a stale one.
type Request struct {
	Kind               RequestKind
	Leader             int32
	CurrentLeaderEpoch LeaderEpoch
	// FetchOffset and LastFetchedEpoch are set for RequestFetch;
	// LastFetchedEpoch is -1 when the fetch must not carry one.
	FetchOffset      Offset
	LastFetchedEpoch LeaderEpoch
	// Epoch is set for RequestEpochEnd.
	Epoch LeaderEpoch
}

// FetchResult is the leader's answer to a RequestFetch.
type FetchResult struct {
	// Request is the request this answers.
	Request Request
	// Err is the partition error code as an error (kerr), or nil. A
	// transport failure is reported with RequestFailed instead.
	Err error
	// HighWatermark and LogStartOffset are the leader's.
	HighWatermark  Offset
	LogStartOffset Offset
	// DivergingEpoch is the response's DivergingEpoch (Fetch v12+), nil
	// when absent (epoch -1).
	DivergingEpoch *EpochEndOffset
	// HasRecords reports that the response carries record batches.
	HasRecords bool
}

// EpochEndResult is the leader's answer to a RequestEpochEnd.
type EpochEndResult struct {
	Request Request
	Err     error
	EpochEndOffset
}

// LeaderOffsetsResult is the leader's answer to a RequestLeaderOffsets.
type LeaderOffsetsResult struct {
	Request        Request
	Err            error
	LogStartOffset Offset
	LogEndOffset   Offset
}

// Truncation asks the driver to cut the local log.
type Truncation struct {
	// Offset is the new log end offset (storage.Log.TruncateTo), or with
	// Fully the new log start offset of an emptied log
	// (storage.Log.TruncateFullyAndStartAt). Offsets come from epoch
	// boundaries and log ends, which are batch boundaries on every
	// replica; should storage cut further back to one, the Follower reads
	// the log end offset it left on its next call.
	Offset Offset
	Fully  bool
}

// FollowerReady is everything one Follower event asks the driver to do, in
// this order: truncate, append, then publish the HW and log start offset.
type FollowerReady struct {
	// Truncate, if set, must be applied before anything else.
	Truncate *Truncation
	// Append: append the records of the FetchResult just handled, at its
	// FetchOffset (as a follower: keep their offsets and epochs), then call
	// Appended.
	Append bool
	// HighWatermark is the local high watermark after the event, min(leader
	// HW, local log end offset); always set. On a follower it can move
	// backwards (a new leader may know a lower HW, and truncation lowers
	// it), as in Kafka.
	HighWatermark        Offset
	HighWatermarkChanged bool
	// LogStartOffset, when LogStartOffsetAdvanced, is where the local log
	// must start now that the leader's log starts later
	// (storage.Log.DeleteRecordsBefore).
	LogStartOffset         Offset
	LogStartOffsetAdvanced bool
	// Fenced: the leader rejected our leader epoch as stale
	// (FENCED_LEADER_EPOCH). The Follower stops until BecomeFollower brings
	// a newer epoch; the driver should re-read the partition record.
	Fenced bool
	// Ignored: the result answered an outdated request and changed
	// nothing (drop any records that came with it).
	Ignored bool
}

type followerPhase int8

const (
	phaseIdle followerPhase = iota // not following anyone
	phaseFetching
	phaseEpochEnd      // waiting to learn the divergence point (OffsetForLeaderEpoch)
	phaseLeaderOffsets // recovering from OFFSET_OUT_OF_RANGE
	phaseFenced        // our epoch is stale; wait for BecomeFollower
)

// Follower is the replication state machine of one partition this broker
// follows (Kafka's AbstractFetcherThread/ReplicaFetcherThread logic for one
// partition): it says what to ask the leader next and what to do with each
// answer. Like Leader it has no goroutines, no I/O and no clock; it reads
// the local log through Log and is not safe for concurrent use.
type Follower struct {
	cfg FollowerConfig
	log Log

	phase       followerPhase
	leader      int32
	leaderEpoch LeaderEpoch
	hw          Offset
	retryAt     time.Time
	// leaderHW and leaderLSO come from the last good fetch response and
	// are applied once its records are appended.
	leaderHW, leaderLSO Offset
}

// NewFollower returns an idle Follower; call BecomeFollower to start.
func NewFollower(cfg FollowerConfig, log Log) *Follower {
	if cfg.FetchBackoff <= 0 {
		cfg.FetchBackoff = DefaultFetchBackoff
	}
	return &Follower{cfg: cfg, log: log, leader: NoLeader, leaderEpoch: UndefinedEpoch, leaderHW: -1, leaderLSO: -1}
}

// BecomeFollower starts (or restarts) following leader at leaderEpoch
// (Kafka's Partition.makeFollower plus adding the partition to a fetcher).
// hw is the local high watermark (from the checkpoint, or the HW this
// broker had as leader). An epoch older than the one in force is ignored;
// the same leader and epoch again changes nothing. Leader NoLeader parks
// the Follower until a leader is elected.
//
// With Fetch v12+ no truncation happens here: the first fetch carries the
// last fetched epoch and the leader answers with a DivergingEpoch if
// needed. A log without any epoch information is truncated to hw first
// (the pre-KIP-101 rule), since nothing else can prove it consistent.
func (f *Follower) BecomeFollower(leader int32, leaderEpoch LeaderEpoch, hw Offset, now time.Time) (FollowerReady, error) {
	if leader == f.cfg.ReplicaID {
		return f.ready(), fmt.Errorf("%w: replica %d cannot follow itself", ErrInvalidState, leader)
	}
	if leaderEpoch < f.leaderEpoch || (leaderEpoch == f.leaderEpoch && leader == f.leader && f.phase != phaseIdle) {
		return f.ready(), nil
	}
	f.leader, f.leaderEpoch = leader, leaderEpoch
	f.retryAt = time.Time{}
	f.leaderHW, f.leaderLSO = -1, -1
	rd := f.ready()
	if h := min(hw, f.log.LogEndOffset()); h != f.hw {
		f.hw, rd.HighWatermark, rd.HighWatermarkChanged = h, h, true
	}
	switch {
	case leader == NoLeader:
		f.phase = phaseIdle
	case f.log.LatestEpoch() < 0:
		if f.log.LogEndOffset() > f.hw {
			rd.Truncate = &Truncation{Offset: f.hw}
		}
		f.phase = phaseFetching
	case f.cfg.TruncateWithOffsetForLeaderEpoch:
		f.phase = phaseEpochEnd
	default:
		f.phase = phaseFetching
	}
	return rd, nil
}

// Stop parks the Follower (the partition became led here, or was
// deleted). BecomeFollower restarts it.
func (f *Follower) Stop() { f.phase = phaseIdle }

// Leader is the replica followed, or NoLeader.
func (f *Follower) Leader() int32 { return f.leader }

// LeaderEpoch is the epoch of the leader followed.
func (f *Follower) LeaderEpoch() LeaderEpoch { return f.leaderEpoch }

// HighWatermark is the local high watermark.
func (f *Follower) HighWatermark() Offset { return f.hw }

// Fenced reports whether the leader rejected our epoch and the Follower is
// waiting for a newer one.
func (f *Follower) Fenced() bool { return f.phase == phaseFenced }

// Next returns the request to send to the leader now, or one of kind
// RequestNone. It changes nothing, so the driver may call it whenever it
// builds a request (a fetcher batches the partitions that want a Fetch).
// Apply every FollowerReady before calling it: it reads the log end offset.
func (f *Follower) Next(now time.Time) Request {
	if now.Before(f.retryAt) {
		return Request{Kind: RequestNone}
	}
	return f.current()
}

// current is the request the Follower's state calls for, ignoring backoff.
func (f *Follower) current() Request {
	r := Request{Leader: f.leader, CurrentLeaderEpoch: f.leaderEpoch, LastFetchedEpoch: UndefinedEpoch, Epoch: UndefinedEpoch}
	switch f.phase {
	case phaseFetching:
		r.Kind = RequestFetch
		r.FetchOffset = f.log.LogEndOffset()
		if !f.cfg.TruncateWithOffsetForLeaderEpoch {
			r.LastFetchedEpoch = f.log.LatestEpoch()
		}
	case phaseEpochEnd:
		r.Kind, r.Epoch = RequestEpochEnd, f.log.LatestEpoch()
	case phaseLeaderOffsets:
		r.Kind = RequestLeaderOffsets
	default:
		return Request{Kind: RequestNone}
	}
	return r
}

// RequestFailed reports that req could not be sent or got no answer (the
// connection broke, the leader is down). The Follower backs off.
func (f *Follower) RequestFailed(req Request, now time.Time) {
	if req == f.current() {
		f.retryAt = now.Add(f.cfg.FetchBackoff)
	}
}

// HandleFetch processes the leader's answer to a RequestFetch (Kafka's
// AbstractFetcherThread.processFetchRequest for one partition).
func (f *Follower) HandleFetch(r FetchResult, now time.Time) FollowerReady {
	if f.phase != phaseFetching || r.Request != f.current() {
		rd := f.ready()
		rd.Ignored = true
		return rd
	}
	switch {
	case r.Err != nil:
		return f.fail(r.Err, now)
	case r.DivergingEpoch != nil:
		off, _ := f.truncationOffset(*r.DivergingEpoch)
		return f.truncate(off, now)
	}
	f.leaderHW, f.leaderLSO = r.HighWatermark, r.LogStartOffset
	if r.HasRecords {
		rd := f.ready()
		rd.Append = true
		return rd
	}
	return f.Appended()
}

// Appended reports that the records of the last FetchResult are in the
// log (or that appending them failed; the Follower reads the log end
// offset either way). It applies the leader's HW and log start offset.
// Kafka's ReplicaFetcherThread.processPartitionData.
func (f *Follower) Appended() FollowerReady {
	rd := f.ready()
	if f.leaderHW < 0 {
		return rd
	}
	if hw := min(f.leaderHW, f.log.LogEndOffset()); hw != f.hw {
		f.hw, rd.HighWatermark, rd.HighWatermarkChanged = hw, hw, true
	}
	if lso := min(f.leaderLSO, f.hw); lso > f.log.LogStartOffset() {
		rd.LogStartOffset, rd.LogStartOffsetAdvanced = lso, true
	}
	return rd
}

// HandleEpochEnd processes the answer to a RequestEpochEnd: truncate to
// the divergence point, and ask again if the leader named an epoch this
// log does not have (Kafka's truncationCompleted = false).
func (f *Follower) HandleEpochEnd(r EpochEndResult, now time.Time) FollowerReady {
	if f.phase != phaseEpochEnd || r.Request != f.current() {
		rd := f.ready()
		rd.Ignored = true
		return rd
	}
	if r.Err != nil {
		return f.fail(r.Err, now)
	}
	off, complete := f.truncationOffset(r.EpochEndOffset)
	if complete || off >= f.log.LogEndOffset() {
		f.phase = phaseFetching
	}
	if off >= f.log.LogEndOffset() {
		return f.ready()
	}
	return f.truncate(off, now)
}

// HandleLeaderOffsets processes the answer to a RequestLeaderOffsets
// (Kafka's AbstractFetcherThread.fetchOffsetAndTruncate): a leader whose
// log ends before ours means truncating to its end; a leader whose log
// starts after our end means starting over at its start.
func (f *Follower) HandleLeaderOffsets(r LeaderOffsetsResult, now time.Time) FollowerReady {
	if f.phase != phaseLeaderOffsets || r.Request != f.current() {
		rd := f.ready()
		rd.Ignored = true
		return rd
	}
	if r.Err != nil {
		return f.fail(r.Err, now)
	}
	f.phase = phaseFetching
	leo := f.log.LogEndOffset()
	switch {
	case r.LogEndOffset >= 0 && r.LogEndOffset < leo:
		return f.truncate(r.LogEndOffset, now)
	case r.LogStartOffset > leo:
		rd := f.ready()
		rd.Truncate = &Truncation{Offset: r.LogStartOffset, Fully: true}
		f.hw, rd.HighWatermark, rd.HighWatermarkChanged = r.LogStartOffset, r.LogStartOffset, true
		return rd
	}
	return f.ready()
}

// truncationOffset is Kafka's AbstractFetcherThread.getOffsetTruncationState:
// where to cut the local log given the leader's end offset for an epoch.
// complete is false when this log lacks that epoch, so the cut only reaches
// the end of our largest earlier epoch and another round may follow.
func (f *Follower) truncationOffset(leader EpochEndOffset) (off Offset, complete bool) {
	leo := f.log.LogEndOffset()
	if leader.undefined() {
		// The leader cannot place our epoch: fall back to the HW, below
		// which our log is committed and so identical to the leader's.
		return min(f.hw, leo), true
	}
	epoch, end := f.log.EndOffsetForEpoch(leader.Epoch)
	switch {
	case (epoch < 0 || end < 0) && f.log.LatestEpoch() >= 0:
		// The leader's epoch is older than every epoch we hold (it cannot
		// be newer: the leader answered for our own last epoch), so it has
		// none of our epochs and none of our records match: keep nothing.
		// Kafka's cache answers (epoch, start of our earliest epoch) here,
		// which is the log start offset.
		return min(f.log.LogStartOffset(), leader.EndOffset, leo), true
	case epoch < 0 || end < 0:
		return min(leader.EndOffset, leo), true
	case epoch != leader.Epoch:
		return min(end, leo), false
	default:
		return min(end, leader.EndOffset, leo), true
	}
}

// truncate emits a truncation to off, or backs off when off would not
// shorten the log (a leader that keeps reporting a divergence we cannot
// act on must not be asked again in a tight loop).
func (f *Follower) truncate(off Offset, now time.Time) FollowerReady {
	rd := f.ready()
	if off >= f.log.LogEndOffset() {
		f.retryAt = now.Add(f.cfg.FetchBackoff)
		return rd
	}
	rd.Truncate = &Truncation{Offset: off}
	if off < f.hw {
		f.hw, rd.HighWatermark, rd.HighWatermarkChanged = off, off, true
	}
	return rd
}

// fail handles a partition error from the leader.
func (f *Follower) fail(err error, now time.Time) FollowerReady {
	rd := f.ready()
	switch {
	case errors.Is(err, kerr.OffsetOutOfRange):
		f.phase = phaseLeaderOffsets
	case errors.Is(err, kerr.FencedLeaderEpoch):
		f.phase = phaseFenced
		rd.Fenced = true
	default:
		// UNKNOWN_LEADER_EPOCH (the leader has not caught up with the
		// controller yet), NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION
		// and anything unexpected: retry after the backoff.
		f.retryAt = now.Add(f.cfg.FetchBackoff)
	}
	return rd
}

func (f *Follower) ready() FollowerReady { return FollowerReady{HighWatermark: f.hw} }
