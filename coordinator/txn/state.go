package txn

// The state of one transactional id and its transitions, as pure functions
// of the current durable state: Kafka's TransactionMetadata.prepare* (the
// "transit" metadata). Handlers decide with these under the coordinator
// lock, write the result, and apply it only once it is durable.

import (
	"cmp"
	"math"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// The states, with the int8 values __transaction_state stores (Kafka's
// TransactionState ids). PrepareEpochFence and Dead are never written by
// Sluice: a fence goes straight to PrepareAbort, and an expired id is
// tombstoned.
const (
	stateEmpty             = kmsg.TransactionStateEmpty
	stateOngoing           = kmsg.TransactionStateOngoing
	statePrepareCommit     = kmsg.TransactionStatePrepareCommit
	statePrepareAbort      = kmsg.TransactionStatePrepareAbort
	stateCompleteCommit    = kmsg.TransactionStateCompleteCommit
	stateCompleteAbort     = kmsg.TransactionStateCompleteAbort
	stateDead              = kmsg.TransactionStateDead
	statePrepareEpochFence = kmsg.TransactionStatePrepareEpochFence
)

// stateNames are the names DescribeTransactions and ListTransactions use,
// and that ListTransactions' state filter accepts (Kafka's
// TransactionState.name).
var stateNames = map[string]kmsg.TransactionState{
	"Empty":             stateEmpty,
	"Ongoing":           stateOngoing,
	"PrepareCommit":     statePrepareCommit,
	"PrepareAbort":      statePrepareAbort,
	"CompleteCommit":    stateCompleteCommit,
	"CompleteAbort":     stateCompleteAbort,
	"Dead":              stateDead,
	"PrepareEpochFence": statePrepareEpochFence,
}

func isPrepare(s kmsg.TransactionState) bool {
	return s == statePrepareCommit || s == statePrepareAbort
}

// isActive reports a transaction that has begun and not completed; these
// count as ongoing in Stats.
func isActive(s kmsg.TransactionState) bool { return s == stateOngoing || isPrepare(s) }

// isEnded reports the states a new transaction or a new producer can start
// from.
func isEnded(s kmsg.TransactionState) bool {
	return s == stateEmpty || s == stateCompleteCommit || s == stateCompleteAbort
}

// epochExhausted reports an epoch the coordinator may no longer bump for
// a client: Short.MaxValue is kept in reserve so that a producer at
// MaxValue-1 can still be fenced (Kafka's
// TransactionMetadata.isEpochExhausted).
func epochExhausted(epoch int16) bool { return epoch >= math.MaxInt16-1 }

// meta is one transactional id's durable state: what its latest
// __transaction_state record says, plus lastEpoch, which Kafka does not
// write either (it is lost on a coordinator move). Values are immutable
// once built; partitions is never modified in place.
type meta struct {
	producerID int64
	// prevProducerID is the producer id before the latest transition; it
	// differs from producerID right after a producer id rotation.
	prevProducerID int64
	// nextProducerID is set between Prepare* and Complete* when the epoch
	// is exhausted under transaction version 2: Complete* rotates to it.
	nextProducerID int64
	epoch          int16
	// lastEpoch is the epoch before the latest bump: an InitProducerId
	// retried with it is answered without bumping again (KIP-360).
	lastEpoch int16
	timeoutMs int32
	state     kmsg.TransactionState
	// partitions is sorted and distinct; nil unless Ongoing or Prepare*.
	partitions   []TopicPartition
	startMs      int64 // -1 when no transaction has started
	lastUpdateMs int64
	// tv is the client's transaction version (0 or 2) as of the latest
	// transition.
	tv int8
}

// newMeta is the state of a transactional id seen for the first time,
// before its first InitProducerId is written (Kafka's metadata with epoch
// NO_PRODUCER_EPOCH).
func newMeta(producerID int64, timeoutMs int32, nowMs int64) meta {
	return meta{
		producerID: producerID, prevProducerID: -1, nextProducerID: -1,
		epoch: -1, lastEpoch: -1, timeoutMs: timeoutMs,
		state: stateEmpty, startMs: -1, lastUpdateMs: nowMs,
	}
}

// transit starts a transition: a copy of m whose previous producer id is
// m's producer id, as every Kafka transition records.
func (m meta) transit() meta {
	n := m
	n.prevProducerID = m.producerID
	return n
}

// reset makes n an Empty state with no transaction (the end of every
// InitProducerId).
func (n *meta) reset(timeoutMs int32, nowMs int64) {
	n.state = stateEmpty
	n.timeoutMs = timeoutMs
	n.partitions = nil
	n.startMs = -1
	n.lastUpdateMs = nowMs
}

// producerRef is a producer id and epoch a request claims to hold.
type producerRef struct {
	id    int64
	epoch int16
}

// bumpEpochTransit is Kafka's prepareIncrementProducerEpoch: the epoch a
// (re)initialising producer gets, given the epoch it claims (nil for a new
// producer instance). ok is false when the claim is fenced.
func (m meta) bumpEpochTransit(expected *producerRef, timeoutMs int32, nowMs int64) (n meta, ok bool) {
	n = m.transit()
	switch {
	case expected == nil:
		// A new producer instance: bump, and forget the last epoch so
		// that nothing older can pass for a retry.
		n.epoch, n.lastEpoch = m.epoch+1, -1
	case m.epoch == -1 || expected.epoch == m.epoch:
		// The producer recovers (KIP-360), or the id has no epoch yet.
		n.epoch, n.lastEpoch = m.epoch+1, m.epoch
	case expected.epoch == m.lastEpoch:
		// A retry of a bump whose answer was lost: answer it again.
	default:
		return meta{}, false
	}
	if n.epoch != m.epoch && epochExhausted(m.epoch) {
		// Callers rotate the producer id instead; never overflow.
		return meta{}, false
	}
	n.reset(timeoutMs, nowMs)
	return n, true
}

// rotateTransit is Kafka's prepareProducerIdRotation: a new producer id
// with epoch 0, once the old one's epochs are exhausted. recordLast keeps
// the old epoch as lastEpoch for a KIP-360 request.
func (m meta) rotateTransit(newProducerID int64, recordLast bool, timeoutMs int32, nowMs int64) meta {
	n := m.transit()
	n.producerID, n.epoch, n.lastEpoch = newProducerID, 0, -1
	if recordLast {
		n.lastEpoch = m.epoch
	}
	n.reset(timeoutMs, nowMs)
	return n
}

// addTransit is Kafka's prepareAddPartitions: Ongoing with the union of
// the partitions; a transaction starting now gets its start time.
func (m meta) addTransit(added []TopicPartition, tv int8, nowMs int64) meta {
	n := m.transit()
	if isEnded(m.state) {
		n.startMs = nowMs
	}
	n.partitions = unionPartitions(m.partitions, added)
	n.state = stateOngoing
	n.lastUpdateMs = nowMs
	n.tv = tv
	return n
}

// endTransit is Kafka's prepareAbortOrCommit: to is PrepareCommit or
// PrepareAbort. Under transaction version 2 every end bumps the epoch
// (KIP-890) and the markers carry the bumped epoch; an epoch already at
// MaxValue (reachable only through a fence at MaxValue-1) is kept so that
// the abort can still complete. nextProducerID is the id Complete* rotates
// to when the epoch is exhausted, else -1. emptyAbort marks a version 2
// abort with no partitions, whose start time is now.
func (m meta) endTransit(to kmsg.TransactionState, tv int8, nextProducerID, nowMs int64, emptyAbort bool) meta {
	n := m.transit()
	n.state = to
	if tv >= 2 {
		if m.epoch < math.MaxInt16 {
			n.epoch = m.epoch + 1
		}
		n.lastEpoch = m.epoch
	}
	if emptyAbort {
		n.startMs = nowMs
	}
	n.nextProducerID = nextProducerID
	n.lastUpdateMs = nowMs
	n.tv = tv
	return n
}

// completeTransit is Kafka's prepareComplete: Complete* after the markers,
// rotating to the next producer id if Prepare* allocated one.
func (m meta) completeTransit(nowMs int64) meta {
	n := m.transit()
	n.state = stateCompleteCommit
	if m.state == statePrepareAbort {
		n.state = stateCompleteAbort
	}
	if m.tv >= 2 && m.nextProducerID >= 0 {
		n.producerID, n.epoch = m.nextProducerID, 0
	}
	n.nextProducerID = -1
	n.partitions = nil
	n.lastUpdateMs = nowMs
	return n
}

// clientProducer is the producer id and epoch a client holds once m is
// durable: after a version 2 end that rotates the producer id, the next
// id with epoch 0 (the client never sees the MaxValue epoch).
func (m meta) clientProducer() (int64, int16) {
	if m.nextProducerID >= 0 {
		return m.nextProducerID, 0
	}
	return m.producerID, m.epoch
}

func (m meta) hasPartition(tp TopicPartition) bool {
	_, ok := slices.BinarySearchFunc(m.partitions, tp, compareTopicPartitions)
	return ok
}

// hasAll reports whether every partition of tps is in m.
func (m meta) hasAll(tps []TopicPartition) bool {
	for _, tp := range tps {
		if !m.hasPartition(tp) {
			return false
		}
	}
	return true
}

func compareTopicPartitions(a, b TopicPartition) int {
	if c := strings.Compare(a.Topic, b.Topic); c != 0 {
		return c
	}
	return cmp.Compare(a.Partition, b.Partition)
}

// unionPartitions returns a new sorted, distinct slice of the partitions
// of both; neither input is modified.
func unionPartitions(sorted, added []TopicPartition) []TopicPartition {
	out := make([]TopicPartition, 0, len(sorted)+len(added))
	out = append(out, sorted...)
	out = append(out, added...)
	slices.SortFunc(out, compareTopicPartitions)
	return slices.Compact(out)
}
