package dlq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// RedriveOptions configure a redrive.
type RedriveOptions struct {
	// Selection chooses the records to move.
	Selection Selection
	// OnCommitted, when set, is called after each committed transaction
	// with the records it moved (progress reports). It runs on the redrive
	// goroutine.
	OnCommitted func(moved []Record)
	// BeforeCommit, when set, is called with each transaction's records
	// after they were produced and before the transaction commits; an
	// error aborts the transaction and ends the redrive with that error.
	// It is how tests interrupt a redrive at its most delicate point.
	BeforeCommit func(moved []Record) error
}

// RedriveResult is what a redrive did.
type RedriveResult struct {
	// ID is the transactional id and consumer group of the selection.
	ID string `json:"id"`
	// Moved counts the records moved by this run.
	Moved int `json:"moved"`
	// Skipped counts records the selection did not choose; Unmovable
	// selected records that could not be moved (no context headers, a
	// source partition that does not exist, or a pointer whose source
	// record is gone).
	Skipped   int `json:"skipped"`
	Unmovable int `json:"unmovable"`
	// Done is true when the run reached the end offsets it saw at its
	// start; false when it stopped at Max.
	Done bool `json:"done"`
}

// Redrive moves the selected records of topic back to their source
// topic-partitions, each exactly once across interrupted and repeated runs
// of the same selection (see the package documentation). It returns when it
// reached the read_committed end offsets it saw at its start, moved Max
// records, or failed; ctx cancels it, aborting the open transaction.
func Redrive(ctx context.Context, cfg Config, topic string, o RedriveOptions) (RedriveResult, error) {
	res := RedriveResult{ID: o.Selection.ID(topic)}
	if err := o.Selection.Validate(); err != nil {
		return res, err
	}
	plain, err := kgo.NewClient(cfg.opts()...)
	if err != nil {
		return res, err
	}
	defer plain.Close()
	adm := kadm.NewClient(plain)
	ends, err := endOffsets(ctx, adm, topic)
	if err != nil {
		return res, err
	}
	pos, err := committedOffsets(ctx, adm, res.ID, topic)
	if err != nil {
		return res, err
	}
	if reached(pos, ends) {
		res.Done = true
		return res, nil
	}
	sess, err := kgo.NewGroupTransactSession(cfg.opts(
		kgo.TransactionalID(res.ID),
		kgo.TransactionTimeout(time.Minute),
		kgo.ConsumerGroup(res.ID),
		// A run killed outright stays a group member until its session
		// times out; the next run's join waits for that, so keep it short.
		kgo.SessionTimeout(10*time.Second),
		kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)...)
	if err != nil {
		return res, err
	}
	defer sess.Close()
	r := redriver{cfg: cfg, topic: topic, o: o, sess: sess, res: &res, src: newSourceReader(plain)}
	err = r.run(ctx, pos, ends)
	return res, err
}

// redriver is one redrive run.
type redriver struct {
	cfg   Config
	topic string
	o     RedriveOptions
	sess  *kgo.GroupTransactSession
	res   *RedriveResult
	src   *sourceReader
}

func (r *redriver) run(ctx context.Context, pos, ends map[int32]int64) error {
	log := r.cfg.logger()
	idleSince := time.Now()
	for !reached(pos, ends) {
		if r.o.Selection.Max > 0 && r.res.Moved >= r.o.Selection.Max {
			return nil
		}
		if time.Since(idleSince) > idleLimit {
			return fmt.Errorf("dlq: redrive %s: no progress for %s", r.topic, idleLimit)
		}
		n, progressed, err := r.transaction(ctx, pos)
		if err != nil {
			return err
		}
		if progressed {
			idleSince = time.Now()
			log.Debug("redrive transaction committed", "id", r.res.ID, "moved", n, "total", r.res.Moved)
		}
	}
	r.res.Done = true
	return nil
}

// transaction polls, moves and commits one batch. progressed is false for
// an empty poll or an aborted transaction (whose records are polled again).
func (r *redriver) transaction(ctx context.Context, pos map[int32]int64) (moved int, progressed bool, err error) {
	limit := redriveBatch
	if m := r.o.Selection.Max; m > 0 {
		limit = min(limit, m-r.res.Moved)
	}
	if err := r.sess.Begin(); err != nil {
		return 0, false, fmt.Errorf("dlq: begin transaction: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, pollWait)
	fs := r.sess.PollRecords(pctx, limit)
	cancel()
	if err := ctx.Err(); err != nil {
		r.abort()
		return 0, false, err
	}
	if err := fetchErr(fs); err != nil {
		r.abort()
		return 0, false, err
	}
	if fs.NumRecords() == 0 {
		r.abort()
		return 0, false, nil
	}
	var out []*kgo.Record
	var batch []Record
	next := map[int32]int64{}
	var skipped, unmovable int
	for _, kr := range fs.Records() {
		next[kr.Partition] = kr.Offset + 1
		rec := fromKgo(kr)
		if !r.o.Selection.Match(&rec) {
			skipped++
			continue
		}
		ok, err := r.resolve(ctx, &rec)
		if err != nil {
			r.abort()
			return 0, false, err
		}
		if !ok {
			unmovable++
			continue
		}
		out = append(out, r.toKgo(&rec))
		batch = append(batch, rec)
	}
	if len(out) > 0 {
		if err := r.sess.ProduceSync(ctx, out...).FirstErr(); err != nil {
			r.abort()
			return 0, false, fmt.Errorf("dlq: produce: %w", err)
		}
	}
	if r.o.BeforeCommit != nil {
		if err := r.o.BeforeCommit(batch); err != nil {
			r.abort()
			return 0, false, err
		}
	}
	committed, err := r.sess.End(ctx, kgo.TryCommit)
	if err != nil {
		if ctx.Err() != nil {
			r.abort() // cancelled while flushing: do not leave the transaction open
		}
		return 0, false, fmt.Errorf("dlq: end transaction: %w", err)
	}
	if !committed {
		return 0, false, nil // a rebalance: the session rewound to the committed offsets
	}
	for p, o := range next {
		pos[p] = o
	}
	r.res.Moved += len(out)
	r.res.Skipped += skipped
	r.res.Unmovable += unmovable
	if r.o.OnCommitted != nil && len(batch) > 0 {
		r.o.OnCommitted(batch)
	}
	return len(out), true, nil
}

// abort ends the open transaction without committing; the session rewinds
// its positions to the committed offsets.
func (r *redriver) abort() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = r.sess.End(ctx, kgo.TryAbort)
}

// toKgo is the record to produce for rec.
func (r *redriver) toKgo(rec *Record) *kgo.Record {
	kr := &kgo.Record{Topic: rec.SourceTopic, Partition: rec.SourcePartition, Key: rec.Key, Value: rec.Value}
	for _, h := range moveHeaders(r.topic, rec) {
		kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h.Key, Value: []byte(h.Value)})
	}
	return kr
}

// resolve checks that rec can be moved and, for a pointer, fills in the
// source record's key, value and headers. ok is false for an unmovable
// record; an error means a source read failed (the transaction aborts).
func (r *redriver) resolve(ctx context.Context, rec *Record) (ok bool, err error) {
	if rec.Problem != "" {
		return false, nil
	}
	if _, _, exists := r.src.partition(ctx, rec.SourceTopic, rec.SourcePartition); !exists {
		return false, nil
	}
	if rec.HasCopy() {
		return true, nil
	}
	orig, err := r.src.record(ctx, rec.SourceTopic, rec.SourcePartition, rec.SourceOffset)
	if err != nil || orig == nil {
		return false, err
	}
	rec.Key, rec.Value = orig.Key, orig.Value
	// The pointer's own headers are only the context; the moved record
	// gets the original's.
	rec.Headers = rec.Headers[:0:0]
	for _, h := range orig.Headers {
		rec.Headers = append(rec.Headers, Header{Key: h.Key, Value: string(h.Value)})
	}
	return true, nil
}

// committedOffsets is group's committed offset per partition of topic (0
// where none is committed).
func committedOffsets(ctx context.Context, adm *kadm.Client, group, topic string) (map[int32]int64, error) {
	offs, err := adm.FetchOffsetsForTopics(ctx, group, topic)
	if err != nil {
		if errors.Is(err, kerr.GroupIDNotFound) {
			return map[int32]int64{}, nil
		}
		return nil, fmt.Errorf("dlq: committed offsets of %s: %w", group, err)
	}
	out := map[int32]int64{}
	for p, o := range offs[topic] {
		if o.Err == nil && o.At >= 0 {
			out[p] = o.At
		}
	}
	return out, nil
}
