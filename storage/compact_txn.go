package storage

import (
	"github.com/sluicedev/sluice/protocol/batch"
)

// cleanTxns follows transactions while a compaction pass reads the log in
// offset order (Kafka's CleanedTransactionMetadata): which data batches
// belong to aborted transactions (from the aborted-transaction indexes),
// and whether each transaction still has records in the cleaned output,
// which decides whether its marker may go.
type cleanTxns struct {
	pending []AbortedTxn // sorted by FirstOffset; not yet reached
	// open holds, per producer, the aborted transaction the read position
	// is inside: its first offset was reached, its marker was not.
	open map[int64]*openAborted
	// committed records, per producer, whether a batch of its current
	// (not aborted) transaction kept records in the output.
	committed map[int64]bool
}

type openAborted struct {
	txn  AbortedTxn
	kept bool // a batch of it stays in the output
}

// newCleanTxns tracks the aborted transactions of all (sorted by
// FirstOffset) whose markers are at or after from, the offset the reading
// starts at: earlier ones ended before anything the pass reads.
func newCleanTxns(all []AbortedTxn, from int64) *cleanTxns {
	t := &cleanTxns{open: map[int64]*openAborted{}, committed: map[int64]bool{}}
	for _, a := range all {
		if a.LastOffset >= from {
			t.pending = append(t.pending, a)
		}
	}
	return t
}

// advance opens the aborted transactions that began at or before off.
func (t *cleanTxns) advance(off int64) {
	for len(t.pending) > 0 && t.pending[0].FirstOffset <= off {
		a := t.pending[0]
		t.pending = t.pending[1:]
		if _, ok := t.open[a.ProducerID]; !ok {
			t.open[a.ProducerID] = &openAborted{txn: a}
		}
	}
}

// abortedData returns the aborted transaction data batch h belongs to, or
// nil when h is not transactional or its transaction was not aborted.
func (t *cleanTxns) abortedData(h *batch.Header) *openAborted {
	t.advance(h.LastOffset())
	if !h.Transactional() {
		return nil
	}
	o := t.open[h.ProducerID]
	if o == nil || h.BaseOffset < o.txn.FirstOffset || h.BaseOffset > o.txn.LastOffset {
		return nil
	}
	return o
}

// keptData notes that a batch of producer pid's committed (or not yet
// known aborted) transaction kept records in the output.
func (t *cleanTxns) keptData(pid int64) { t.committed[pid] = true }

// endTxn is called at a marker of h's producer: it reports whether the
// transaction the marker ends still has records in the output, and, for
// an ABORT, the index entry to keep for it (ok false when none).
func (t *cleanTxns) endTxn(h *batch.Header, commit bool) (hasData bool, entry AbortedTxn, ok bool) {
	t.advance(h.LastOffset())
	pid := h.ProducerID
	committed := t.committed[pid]
	delete(t.committed, pid)
	o := t.open[pid]
	if o != nil && o.txn.LastOffset <= h.BaseOffset {
		delete(t.open, pid)
	}
	if commit {
		return committed, AbortedTxn{}, false
	}
	if o == nil || o.txn.LastOffset != h.BaseOffset {
		// An abort the index does not name: its transaction had no
		// records here (or they were before the log start).
		return committed, AbortedTxn{}, false
	}
	return o.kept || committed, o.txn, o.kept
}

// cleanMarker decides what stays of a control batch raw with header h:
// raw itself, a copy stamped with a delete horizon, or nil. Control
// batches that are not readable COMMIT/ABORT markers always stay. A
// marker stays while its transaction has records in the output (an ABORT
// then also keeps its index entry in out); once alone, the first pass
// stamps it with a delete horizon delete.retention.ms ahead, and a pass
// after the horizon drops it, unless it carries the epoch of a live
// producer whose newest batch it is.
func (c *cleaner) cleanMarker(out *cleanOutput, raw []byte, h *batch.Header) []byte {
	commit, _, err := batch.ParseMarker(raw)
	if err != nil || h.ProducerID < 0 {
		return raw
	}
	hasData, entry, indexed := c.txns.endTxn(h, commit)
	if indexed {
		out.txns = append(out.txns, entry)
	}
	if hasData {
		return raw
	}
	horizon, set := h.DeleteHorizon()
	if !set {
		stamped, err := batch.SetDeleteHorizon(raw, c.p.nowMs+max(c.p.cfg.DeleteRetentionMs, 0))
		if err != nil {
			return raw // cannot stamp (not uncompressed): keep it
		}
		return stamped
	}
	if epoch, live := c.p.markerEpoch[h.ProducerID]; horizon <= c.p.nowMs && !(live && epoch == h.ProducerEpoch) {
		c.res.RecordsRemoved += int64(h.NumRecords)
		return nil
	}
	return raw
}
