package group

// Pending transactional offsets and transaction markers (KIP-98).
//
// TxnOffsetCommit writes offsets in a transactional batch of the producer;
// they stay pending, per group, producer id and partition, until the
// transaction's marker reaches the group's __consumer_offsets partition.
// COMMIT makes each of them the committed offset unless a plain commit of
// that partition was written after it; ABORT drops them. Markers arrive
// through CompleteTxn while the partition is served, and as Marker records
// when a load replays the log. This is Kafka's OffsetMetadataManager
// (pendingTransactionalOffsets, replayEndTransactionMarker), which compares
// the log offsets of the two records; Sluice compares committedOffset.pos,
// the same order kept in memory.

import (
	"context"
	"slices"
)

// txnOffsets holds one group's pending transactional offsets by producer
// id. refs counts, per partition, the producers holding a pending offset for
// it, so require_stable, expiry and OffsetDelete ask in constant time. The
// zero value is empty and ready to use.
type txnOffsets struct {
	byProducer map[int64]map[topicPartition]committedOffset
	refs       map[topicPartition]int
}

// put makes o pid's pending offset for tp, replacing an earlier one of the
// same transaction (the later record wins on replay too).
func (t *txnOffsets) put(pid int64, tp topicPartition, o committedOffset) {
	if t.byProducer == nil {
		t.byProducer = make(map[int64]map[topicPartition]committedOffset)
		t.refs = make(map[topicPartition]int)
	}
	offs := t.byProducer[pid]
	if offs == nil {
		offs = make(map[topicPartition]committedOffset)
		t.byProducer[pid] = offs
	}
	if _, ok := offs[tp]; !ok {
		t.refs[tp]++
	}
	offs[tp] = o
}

// has reports whether any producer has a pending offset for tp.
func (t *txnOffsets) has(tp topicPartition) bool { return t.refs[tp] > 0 }

func (t *txnOffsets) empty() bool { return len(t.byProducer) == 0 }

// count is the number of pending offsets, all producers together.
func (t *txnOffsets) count() int {
	n := 0
	for _, offs := range t.byProducer {
		n += len(offs)
	}
	return n
}

// partitions lists the partitions with a pending offset, sorted.
func (t *txnOffsets) partitions() []topicPartition { return sortedOffsets(t.refs) }

// producers lists the producer ids with pending offsets, sorted.
func (t *txnOffsets) producers() []int64 {
	out := make([]int64, 0, len(t.byProducer))
	for pid := range t.byProducer {
		out = append(out, pid)
	}
	slices.Sort(out)
	return out
}

// drop removes every producer's pending offset for tp. A tombstone of the
// partition's offset (OffsetDelete, DeleteGroups) erases them, as Kafka's
// replay of an offset tombstone does, so a later COMMIT cannot bring the
// deleted partition back.
func (t *txnOffsets) drop(tp topicPartition) {
	if !t.has(tp) {
		return
	}
	for pid, offs := range t.byProducer {
		if _, ok := offs[tp]; ok {
			delete(offs, tp)
			if len(offs) == 0 {
				delete(t.byProducer, pid)
			}
		}
	}
	delete(t.refs, tp)
}

// end applies pid's marker to the group whose committed offsets are
// offsets. COMMIT moves each pending offset into offsets unless the offset
// there was written later (a higher pos: Kafka keeps the most recent record
// when transactional and plain commits mix, so compaction of the log cannot
// change the outcome); ABORT drops them. It returns how many offsets became
// committed.
func (t *txnOffsets) end(pid int64, commit bool, offsets map[topicPartition]committedOffset) int {
	pending, ok := t.byProducer[pid]
	if !ok {
		return 0
	}
	delete(t.byProducer, pid)
	n := 0
	for tp, o := range pending {
		if t.refs[tp]--; t.refs[tp] <= 0 {
			delete(t.refs, tp)
		}
		if !commit {
			continue
		}
		if cur, ok := offsets[tp]; ok && cur.pos > o.pos {
			continue
		}
		offsets[tp] = o
		n++
	}
	return n
}

// txnKey names one producer in one __consumer_offsets partition.
type txnKey struct {
	partition  int32
	producerID int64
}

// markerWatch counts the markers CompleteTxn wrote for one producer and
// partition while TxnOffsetCommits of that producer were being verified. A
// marker that lands during a verification may end the very transaction the
// verification saw (a transaction its coordinator aborted on timeout), and
// offsets written after that marker would stay pending forever; such a
// commit verifies again instead. This is what KIP-890's VerificationGuard
// does in Kafka's log; it lives here because PersistTxn carries no guard.
type markerWatch struct {
	refs    int    // verifications in flight
	markers uint64 // markers written while any of them was
}

// maxVerifyAttempts bounds how often one TxnOffsetCommit verifies again
// after a marker of its producer raced its verification. Past it the client
// gets COORDINATOR_LOAD_IN_PROGRESS and retries.
const maxVerifyAttempts = 3

// watchMarkersLocked registers a verification of k and returns the watch
// and its marker count now; unwatchMarkersLocked ends it.
func (c *Coordinator) watchMarkersLocked(k txnKey) (*markerWatch, uint64) {
	w := c.mu.markerWatch[k]
	if w == nil {
		w = &markerWatch{}
		c.mu.markerWatch[k] = w
	}
	w.refs++
	return w, w.markers
}

func (c *Coordinator) unwatchMarkersLocked(k txnKey, w *markerWatch) {
	if w.refs--; w.refs <= 0 && c.mu.markerWatch[k] == w {
		delete(c.mu.markerWatch, k)
	}
}

// CompleteTxn ends producerID's transaction in partition: write appends the
// COMMIT or ABORT marker (durably, as an acks=all produce), and once it
// returned nil the producer's pending offsets in the partition are committed
// or dropped. write runs under the partition's write lock, so markers and
// the coordinator's own writes reach the log in the order memory applies
// them. It works whether or not the partition is loaded here (the marker is
// written either way; a later load replays it) and returns write's error
// unchanged; after an error memory is left as it was, and the transaction
// coordinator's retry of the marker applies it. A marker written while the
// partition loads is applied when the load completes, whether or not the
// load read it. A marker of a producer with no pending offsets changes
// nothing.
func (c *Coordinator) CompleteTxn(ctx context.Context, partition int32, producerID int64, commit bool, write func(context.Context) error) error {
	if !c.validPartition(partition) {
		// No group can live there; the marker is the broker's business.
		return write(ctx)
	}
	pm := &c.persistMu[partition]
	pm.Lock()
	defer pm.Unlock()
	err := write(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if w := c.mu.markerWatch[txnKey{partition, producerID}]; w != nil {
		w.markers++ // a failed write may still have reached the log
	}
	if err != nil || c.mu.closed {
		return err
	}
	switch c.mu.parts[partition] {
	case partitionLoaded:
		c.endTxnLocked(partition, producerID, commit)
	case partitionLoading:
		m := c.mu.loadMarkers[partition]
		if m == nil {
			m = make(map[int64]bool)
			c.mu.loadMarkers[partition] = m
		}
		// Only the first marker can end offsets of this load: no
		// TxnOffsetCommit is accepted while the partition loads, so a
		// later marker of the producer finds nothing pending.
		if _, ok := m[producerID]; !ok {
			m[producerID] = commit
		}
	}
	return nil
}

// endTxnLocked applies pid's marker to every group of partition p holding
// pending offsets of pid.
func (c *Coordinator) endTxnLocked(p int32, pid int64, commit bool) {
	ids := c.mu.openTxns[p][pid]
	delete(c.mu.openTxns[p], pid)
	for id := range ids {
		// The index may name a group since deleted or replaced; a group
		// without pending offsets of pid is left alone by end.
		if g := c.mu.groups[id]; g != nil && g.partition == p {
			c.mu.stats.commits += uint64(g.txn.end(pid, commit, g.offsets))
		}
	}
}

// trackTxnLocked records that g holds pending offsets of pid, so a marker
// of pid finds g without scanning every group.
func (c *Coordinator) trackTxnLocked(g *group, pid int64) {
	byPID := c.mu.openTxns[g.partition]
	if byPID == nil {
		byPID = make(map[int64]map[string]struct{})
		c.mu.openTxns[g.partition] = byPID
	}
	ids := byPID[pid]
	if ids == nil {
		ids = make(map[string]struct{})
		byPID[pid] = ids
	}
	ids[g.id] = struct{}{}
}

// finishLoadTxnsLocked completes the load of partition p, whose groups
// are in place: later writes are positioned after its n replayed records,
// and the markers written while it loaded are applied.
func (c *Coordinator) finishLoadTxnsLocked(p int32, n int) {
	c.mu.offsetPos[p] = uint64(n)
	for pid, commit := range c.mu.loadMarkers[p] {
		c.endTxnLocked(p, pid, commit)
	}
	c.mu.loadMarkers[p] = nil
}

// nextPosLocked returns the position of the next offset write applied to
// partition p.
func (c *Coordinator) nextPosLocked(p int32) uint64 {
	c.mu.offsetPos[p]++
	return c.mu.offsetPos[p]
}
