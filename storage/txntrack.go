package storage

import (
	"math"
	"sync"
	"sync/atomic"
)

// maxUnreplicated bounds the completed transactions a txnTracker keeps
// while the high watermark has not passed their markers. Past it the two
// oldest are merged into one that starts at the older one's first offset
// and ends at the newer one's marker, which can only hold the last stable
// offset back longer, never let it pass an unreplicated marker.
const maxUnreplicated = 1 << 14

// txnTracker keeps what the last stable offset depends on (Kafka's
// ProducerStateManager.ongoingTxns and unreplicatedTxns): the first offset
// of every ongoing transaction, and the first and marker offsets of
// completed transactions whose marker the high watermark has not passed.
// Its mutex is a leaf lock held only for in-memory work, so
// Log.LastStableOffset never waits for Log.mu (held across append
// writes). Appends change it under Log.mu and then its mutex.
//
// Both lists are kept in offset order without sorting: transactions start
// at the log end offset, so ongoing first offsets arrive in increasing
// order, and markers are appended in increasing order too. An ended
// transaction is found by binary search and marked dead, and dead entries
// are dropped from the front or by compaction of the list, so each
// operation is O(log n) or amortized O(1) and memory is bounded by the
// ongoing transactions (at most one per producer) and maxUnreplicated.
type txnTracker struct {
	mu      sync.Mutex
	ongoing []ongoingTxn // sorted by first offset, from head on
	head    int
	live    int // ongoing entries not dead
	// unrepl is a monotonic queue: marker offsets and first offsets both
	// increase from uhead on. A transaction with a later marker and an
	// earlier (or equal) first offset makes an earlier one irrelevant: it
	// holds the LSO at least as low for at least as long.
	unrepl []completedTxn
	uhead  int
	// active is false when both lists are empty, so LastStableOffset
	// needs no lock for logs without transactions. It is stored under mu.
	active atomic.Bool
}

type ongoingTxn struct {
	first int64
	dead  bool
}

// completedTxn is a decided transaction whose marker may not be replicated
// yet: first is the offset of its first batch, last that of its marker.
type completedTxn struct{ first, last int64 }

// start records a transaction that began at first, which must be above
// every first offset recorded so far.
func (t *txnTracker) start(first int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.startLocked(first)
}

func (t *txnTracker) startLocked(first int64) {
	t.ongoing = append(t.ongoing, ongoingTxn{first: first})
	t.live++
	t.active.Store(true)
}

// end records that the transaction that began at first was decided by a
// marker at last, and returns the offset the aborted-transaction index
// stores as its last stable offset (Kafka's
// ProducerStateManager.lastStableOffset(CompletedTxn)): the first offset of
// the earliest transaction still ongoing, or last+1 when there is none.
func (t *txnTracker) end(first, last int64) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.endLocked(first, last)
}

func (t *txnTracker) endLocked(first, last int64) int64 {
	t.killOngoingLocked(first)
	t.pushUnreplicatedLocked(completedTxn{first: first, last: last})
	if f := t.firstOngoingLocked(); f < last+1 {
		return f
	}
	return last + 1
}

// killOngoingLocked marks the ongoing entry for first dead.
func (t *txnTracker) killOngoingLocked(first int64) {
	q := t.ongoing[t.head:]
	lo, hi := 0, len(q)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if q[mid].first < first {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == len(q) || q[lo].first != first || q[lo].dead {
		return // not tracked (state rebuilt without it); nothing to end
	}
	q[lo].dead = true
	t.live--
	for t.head < len(t.ongoing) && t.ongoing[t.head].dead {
		t.head++
	}
	if dead := len(t.ongoing) - t.head - t.live; t.head > 64 && t.head > len(t.ongoing)/2 || dead > 64 && dead > 2*t.live {
		kept := make([]ongoingTxn, 0, t.live+8)
		for _, o := range t.ongoing[t.head:] {
			if !o.dead {
				kept = append(kept, o)
			}
		}
		t.ongoing, t.head = kept, 0
	}
	t.storeActiveLocked()
}

func (t *txnTracker) pushUnreplicatedLocked(c completedTxn) {
	for len(t.unrepl) > t.uhead && t.unrepl[len(t.unrepl)-1].first >= c.first {
		t.unrepl = t.unrepl[:len(t.unrepl)-1]
	}
	t.unrepl = append(t.unrepl, c)
	if len(t.unrepl)-t.uhead > maxUnreplicated {
		t.unrepl[t.uhead+1].first = t.unrepl[t.uhead].first
		t.uhead++
	}
	t.compactUnreplicatedLocked()
	t.active.Store(true)
}

func (t *txnTracker) compactUnreplicatedLocked() {
	if t.uhead > 64 && t.uhead > len(t.unrepl)/2 {
		t.unrepl = append(t.unrepl[:0:0], t.unrepl[t.uhead:]...)
		t.uhead = 0
	}
}

// dropUnreplicatedLocked forgets completed transactions whose marker lies
// below off: the high watermark (their markers are replicated) or the log
// start offset.
func (t *txnTracker) dropUnreplicatedLocked(off int64) {
	for t.uhead < len(t.unrepl) && t.unrepl[t.uhead].last < off {
		t.uhead++
	}
	if t.uhead == len(t.unrepl) {
		t.unrepl, t.uhead = t.unrepl[:0], 0
	}
	t.compactUnreplicatedLocked()
	t.storeActiveLocked()
}

func (t *txnTracker) dropUnreplicated(off int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dropUnreplicatedLocked(off)
}

func (t *txnTracker) storeActiveLocked() {
	t.active.Store(t.live > 0 || t.uhead < len(t.unrepl))
}

func (t *txnTracker) firstOngoingLocked() int64 {
	if t.live == 0 {
		return math.MaxInt64
	}
	return t.ongoing[t.head].first
}

// firstUnstable is the first offset of the earliest transaction that is
// ongoing or, when the high watermark hw is known (>= 0), completed with
// its marker at or above hw; math.MaxInt64 when there is none. Completed
// transactions whose markers hw passed are forgotten. Without a known
// high watermark completed transactions do not count: there is nothing to
// wait for, and they are kept in case one becomes known.
func (t *txnTracker) firstUnstable(hw int64) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.firstUnstableLocked(hw)
}

func (t *txnTracker) firstUnstableLocked(hw int64) int64 {
	f := t.firstOngoingLocked()
	if hw < 0 {
		return f
	}
	if t.uhead < len(t.unrepl) && t.unrepl[t.uhead].last < hw {
		t.dropUnreplicatedLocked(hw)
	}
	if t.uhead < len(t.unrepl) {
		f = min(f, t.unrepl[t.uhead].first)
	}
	return f
}

// unreplicated returns a copy of the completed transactions still
// tracked, oldest first, for a producer snapshot.
func (t *txnTracker) unreplicated() []completedTxn {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]completedTxn(nil), t.unrepl[t.uhead:]...)
}

// install replaces t's contents with src's (a tracker rebuilt by a
// replay, not shared with anyone).
func (t *txnTracker) install(src *txnTracker) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ongoing, t.head, t.live = src.ongoing, src.head, src.live
	t.unrepl, t.uhead = src.unrepl, src.uhead
	t.storeActiveLocked()
}

// restoreUnreplicated adds completed transactions read from a snapshot
// (oldest first) to a tracker being rebuilt.
func (t *txnTracker) restoreUnreplicated(cs []completedTxn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range cs {
		if n := len(t.unrepl); n > t.uhead && c.last <= t.unrepl[n-1].last {
			continue // not in marker order: damaged, skip
		}
		t.pushUnreplicatedLocked(c)
	}
}
