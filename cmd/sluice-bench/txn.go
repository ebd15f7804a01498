package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// errTxnRecordsFailed means records of a transaction failed, so the
// transaction was aborted and the run stopped.
var errTxnRecordsFailed = errors.New("sluice-bench: records of a transaction failed")

// endTxnTimeout bounds one EndTransaction call, retries included.
const endTxnTimeout = time.Minute

// txnStats is what the transactional producer (--txn-records) did. A
// record counts as produced only once its transaction has committed: the
// produce phase's records, bytes and rates are those of committed
// transactions, measured to the end of the last EndTransaction.
type txnStats struct {
	RecordsPerTxn  int     `json:"records_per_txn"`
	Committed      int64   `json:"committed"`
	Aborted        int64   `json:"aborted,omitempty"`
	AbortedRecords int64   `json:"aborted_records,omitempty"`
	TxnPS          float64 `json:"txn_per_sec"`
	// EndTxn is the time EndTransaction took (the EndTxn round trip; kgo
	// does not flush in it), commits and aborts alike.
	EndTxn *latency `json:"end_txn_latency,omitempty"`
	// Flush is the time Flush waited before EndTransaction: the produce
	// pipeline draining, which no transaction can skip.
	Flush *latency `json:"flush_latency,omitempty"`

	records, bytes int64      // of committed transactions
	committedSeqs  []seqRange // sequence numbers of committed records, in order
	endTxn, flush  *histogram
}

// seqRange is the sequence numbers [from, to) of one transaction's records.
type seqRange struct{ from, to int64 }

func newTxnStats(recordsPerTxn int) *txnStats {
	return &txnStats{RecordsPerTxn: recordsPerTxn, endTxn: newHistogram(), flush: newHistogram()}
}

// transactionalID is a producer client's transactional id: one per topic
// and producer client (--producers), so neither concurrent runs against one
// broker nor a run's producers fence each other.
func transactionalID(c *config) string {
	if c.producers <= 1 {
		return c.topic + "-txn"
	}
	return c.topic + "-txn-" + strconv.Itoa(c.producerIndex)
}

// txnLoop produces in transactions of --txn-records records, as an
// application would: BeginTransaction, every record handed to the client
// without waiting (so produce requests stay pipelined inside the
// transaction), Flush, then EndTransaction, which commits, or aborts every
// --txn-abort-every'th transaction. It starts transactions until --records
// or --duration is reached; the transaction under way then still runs to
// its end, so every transaction is whole (only --records can make the last
// one shorter). Records are paced at --rate across transactions, so a
// commit that takes longer than the gap between two records makes the next
// ones late, as it would for an application. It returns when start was
// (the first Produce call) and when the last EndTransaction returned.
func txnLoop(ctx context.Context, cl *kgo.Client, c *config, s *producerStats, ts *txnStats) (start, end time.Time, err error) {
	snd := newSender(cl, c, s)
	defer snd.stop()
	var deadline time.Time
	if c.duration > 0 {
		deadline = snd.start.Add(c.duration)
	}
	for n := int64(1); c.records == 0 || snd.sent < c.records; n++ {
		if ctx.Err() != nil || (!deadline.IsZero() && !time.Now().Before(deadline)) {
			break
		}
		commit := c.txnAbortEvery == 0 || n%int64(c.txnAbortEvery) != 0
		if err := oneTxn(ctx, cl, c, snd, ts, commit); err != nil {
			return snd.start, time.Now(), fmt.Errorf("transaction %d: %w", n, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return snd.start, time.Now(), fmt.Errorf("produce: %w", err)
	}
	return snd.start, time.Now(), nil
}

// oneTxn runs one transaction and ends it with commit, or with an abort
// when commit is false or one of its records failed.
func oneTxn(ctx context.Context, cl *kgo.Client, c *config, snd *sender, ts *txnStats, commit bool) error {
	if err := cl.BeginTransaction(); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	n := int64(c.txnRecords)
	if c.records > 0 {
		n = min(n, c.records-snd.sent)
	}
	from := snd.sent
	acked, bytes, errs := snd.stats.acked.Load(), snd.stats.bytes.Load(), snd.stats.errs.Load()
	for snd.sent-from < n && snd.next(ctx, time.Time{}) {
	}
	flushing := time.Now()
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	ts.flush.Record(time.Since(flushing))
	failed := snd.stats.errs.Load() - errs
	commit = commit && failed == 0 && ctx.Err() == nil
	// kgo advises against cancelling EndTransaction (the outcome would be
	// unknown), so it gets its own bound instead of the run's context.
	endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTxnTimeout)
	defer cancel()
	began := time.Now()
	err := cl.EndTransaction(endCtx, kgo.TransactionEndTry(commit))
	ts.endTxn.Record(time.Since(began))
	switch {
	case err != nil && commit:
		// kgo's advice for a failed commit: end it with an abort, which
		// reloads the producer id if need be. The consume phase then shows
		// whether the broker kept the transaction's records out.
		abortErr := cl.EndTransaction(endCtx, kgo.TryAbort)
		return fmt.Errorf("end (commit): %w; abort after it: %v", err, abortErr)
	case err != nil:
		return fmt.Errorf("end (abort): %w", err)
	case failed > 0:
		return fmt.Errorf("%w: %d, aborted", errTxnRecordsFailed, failed)
	case !commit:
		ts.Aborted++
		ts.AbortedRecords += snd.sent - from
	default:
		ts.Committed++
		ts.records += snd.stats.acked.Load() - acked
		ts.bytes += snd.stats.bytes.Load() - bytes
		ts.committedSeqs = append(ts.committedSeqs, seqRange{from, snd.sent})
	}
	return nil
}

// add sums o's transactions into ts (the producers of one run); the
// committed sequence numbers stay per producer and are not merged.
func (ts *txnStats) add(o *txnStats) {
	ts.Committed += o.Committed
	ts.Aborted += o.Aborted
	ts.AbortedRecords += o.AbortedRecords
	ts.records += o.records
	ts.bytes += o.bytes
	ts.endTxn.Merge(o.endTxn)
	ts.flush.Merge(o.flush)
}

// finish turns the phase's acknowledged records into committed ones over
// [start, end) and fills the per-second and latency figures.
func (ts *txnStats) finish(p *phase, start, end time.Time) {
	p.Records, p.Bytes = ts.records, ts.bytes
	p.fillRates(end.Sub(start))
	if p.Seconds > 0 {
		ts.TxnPS = float64(ts.Committed) / p.Seconds
	}
	ts.EndTxn, ts.Flush = latencyOf(ts.endTxn), latencyOf(ts.flush)
}
