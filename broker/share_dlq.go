package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/coordinator/share"
	"github.com/sluicedev/sluice/protocol"
	"github.com/sluicedev/sluice/protocol/batch"
)

// Dead-letter queues for share groups (KIP-1191).
//
// A share-partition whose group names a DLQ topic moves rejected records,
// and records past the delivery limit, to Archiving instead of Archived.
// The share-partition manager then calls wakeDeadLetters; this writer reads
// the Archiving records, writes one record batch per round to the DLQ topic
// and completes them with completeDeadLetters, which marks them Archived
// and persists the share state.
//
// Writing and archiving are one durable step although they touch two logs:
// every batch is written by an idempotent producer whose id, epoch and next
// sequence (share.DeadLetterCursor) are part of the share state. The
// producer is allocated and persisted before its first write; the sequence
// advances only together with the Archived transition. A crash between the
// DLQ append and the state write leaves the records in Archiving with the
// old sequence, so the next leader sends the same batch (same records,
// same sequence) again and the DLQ partition answers it as a duplicate of
// one of the producer's last five batches: no loss, no second copy.
// (Kafka's own writer does not promise this; KIP-1191 allows duplicates.)
// For the batch to be the same, its record count depends only on the
// Archiving records and the immutable source log (see buildDeadLetterBatch).
//
// A DLQ that is unusable by configuration (no topic name, a name without
// errors.deadletterqueue.topic.name.prefix or starting with "__", a topic
// that does not exist while errors.deadletterqueue.auto.create.topics.enable
// is off, a topic without errors.deadletterqueue.group.enable=true) archives
// the records without a write, as KIP-1191 says, logged once per group and
// problem and counted. Transient failures (no leader, NOT_ENOUGH_REPLICAS,
// a peer down) are retried with backoff; after dlqMaxAttempts failures in a
// row the batch is archived without a write, as Kafka's writer gives up, so
// a broken DLQ cannot hold records in Archiving for ever.

// DLQ record headers (KIP-1191; the names Kafka's writer uses, so tools
// written for Kafka's DLQ read Sluice's). Values are UTF-8 strings.
const (
	dlqHeaderTopic         = "__dlq.errors.topic"
	dlqHeaderPartition     = "__dlq.errors.partition"
	dlqHeaderOffset        = "__dlq.errors.offset"
	dlqHeaderGroup         = "__dlq.errors.group"
	dlqHeaderDeliveryCount = "__dlq.errors.delivery.count"
	dlqHeaderMessage       = "__dlq.errors.message"
	// dlqHeaderPrefix marks the context headers: a copied record's own
	// headers with this prefix (a record dead-lettered before) are dropped
	// so the new context is the only one.
	dlqHeaderPrefix = "__dlq.errors."
)

// The reasons in __dlq.errors.message, as Kafka's writer words them.
const (
	dlqMessageRejected      = "Offset rejected by client."
	dlqMessageDeliveryLimit = "Offset delivery count exceeded the threshold."
)

const (
	// dlqWorkers bounds the share-partitions written at once.
	dlqWorkers = 4
	// dlqMaxBatchRecords bounds one write's records.
	dlqMaxBatchRecords = 500
	// dlqMaxCopyBytes bounds the copied keys, values and headers of one
	// write, and the source bytes read for it (below max.message.bytes).
	dlqMaxCopyBytes = 768 << 10
	// dlqMaxAttempts is how many failed writes in a row a batch gets before
	// it is archived without a write.
	dlqMaxAttempts = 8
	// dlqBackoffFirst and dlqBackoffMax bound the pause between attempts.
	dlqBackoffFirst = 200 * time.Millisecond
	dlqBackoffMax   = 15 * time.Second
	// dlqProduceTimeout bounds one acks=all write.
	dlqProduceTimeout = 30 * time.Second
	// dlqProduceVersion is the Produce version sent to a peer leading the
	// DLQ partition (flexible, named topics).
	dlqProduceVersion = 9
)

// dlqRunState is where a share-partition is in the writer's queue.
type dlqRunState int8

const (
	dlqQueued dlqRunState = iota + 1
	dlqRunning
	dlqRunningAgain // woken while running: run once more
)

// deadLetterWriter serializes the dead-letter writes of each
// share-partition (one writer at a time per key) over a small pool of
// workers. Its queue holds each key at most once, so its memory is bounded
// by the share-partitions led here.
type deadLetterWriter struct {
	b  *Broker
	m  *dlqMetrics
	sp dlqShareAccess
	// group resolves a group's DLQ settings (Broker.groupSettings).
	group func(group string) (topic string, copyRecord bool)
	// backoff is the pause after n failed attempts (dlqBackoff).
	backoff func(n int) time.Duration
	mu      struct {
		sync.Mutex
		queue   []share.Key
		state   map[share.Key]dlqRunState
		workers int
		// warned is the unusable-DLQ problem last logged per group, so
		// each is logged once until it changes.
		warned map[string]string
	}
}

// dlqShareAccess is how the writer reaches share-partitions: the
// share-partition manager's functions (brokerShares), replaced in tests.
type dlqShareAccess interface {
	// deadLetters snapshots k's first Archiving records and producer
	// cursor; false when this broker does not hold k.
	deadLetters(k share.Key) (dlqJob, bool)
	// setProducer sets k's dead-letter producer (not yet persisted).
	setProducer(k share.Key, c share.DeadLetterCursor) bool
	// complete marks offsets Archived, advances the sequence by seqs and
	// persists k's state (nil offsets: persist the producer only).
	complete(k share.Key, offsets []int64, seqs int32) error
}

// brokerShares is dlqShareAccess over the share-partition manager.
type brokerShares struct{ b *Broker }

func (s brokerShares) deadLetters(k share.Key) (dlqJob, bool) {
	var j dlqJob
	held := s.b.withSharePartition(k, func(p *share.Partition) {
		dl := p.DeadLetters()
		j.letters = slices.Clone(dl[:min(len(dl), dlqMaxBatchRecords)])
		st, _ := p.State()
		j.cursor = st.DeadLetter
	})
	return j, held
}

func (s brokerShares) setProducer(k share.Key, c share.DeadLetterCursor) bool {
	return s.b.withSharePartition(k, func(p *share.Partition) { p.SetDeadLetterProducer(c) })
}

func (s brokerShares) complete(k share.Key, offsets []int64, seqs int32) error {
	return s.b.completeDeadLetters(k, offsets, seqs)
}

func newDeadLetterWriter(b *Broker, m *dlqMetrics) *deadLetterWriter {
	w := &deadLetterWriter{b: b, m: m, sp: brokerShares{b}, backoff: dlqBackoff}
	w.group = func(group string) (string, bool) {
		gs := b.groupSettings(group)
		return gs.DLQTopic, gs.DLQCopyRecord
	}
	w.mu.state = map[share.Key]dlqRunState{}
	w.mu.warned = map[string]string{}
	return w
}

// wakeDeadLetters tells the writer that k has records in Archiving. The
// share-partition manager calls it after every change that created some;
// it never blocks.
func (b *Broker) wakeDeadLetters(k share.Key) {
	if b.dlq != nil {
		b.dlq.wake(k)
	}
}

func (w *deadLetterWriter) wake(k share.Key) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch w.mu.state[k] {
	case dlqQueued, dlqRunningAgain:
		return
	case dlqRunning:
		w.mu.state[k] = dlqRunningAgain
		return
	}
	w.mu.state[k] = dlqQueued
	w.mu.queue = append(w.mu.queue, k)
	if w.mu.workers >= dlqWorkers {
		return
	}
	w.mu.workers++
	if !w.b.goroutines.Go("dlq-writer", w.work) {
		w.mu.workers-- // shutting down: the state is reloaded elsewhere
	}
}

// work drains the queue, then exits.
func (w *deadLetterWriter) work() {
	for {
		k, ok := w.take()
		if !ok {
			return
		}
		w.drain(w.b.bg, k)
		w.finish(k)
	}
}

func (w *deadLetterWriter) take() (share.Key, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.mu.queue) == 0 || w.b.bg.Err() != nil {
		w.mu.workers--
		return share.Key{}, false
	}
	k := w.mu.queue[0]
	w.mu.queue[0] = share.Key{}
	w.mu.queue = w.mu.queue[1:]
	w.mu.state[k] = dlqRunning
	return k, true
}

func (w *deadLetterWriter) finish(k share.Key) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mu.state[k] == dlqRunningAgain && w.b.bg.Err() == nil {
		w.mu.state[k] = dlqQueued
		w.mu.queue = append(w.mu.queue, k)
		return
	}
	delete(w.mu.state, k)
}

// dlqJob is one round's snapshot of a share-partition: the first Archiving
// records and the producer cursor.
type dlqJob struct {
	letters []share.DeadLetter
	cursor  share.DeadLetterCursor
}

// snapshot reads k's next round; ok is false when this broker no longer
// holds k or nothing waits.
func (w *deadLetterWriter) snapshot(k share.Key) (dlqJob, bool) {
	j, held := w.sp.deadLetters(k)
	return j, held && len(j.letters) > 0
}

// drain writes k's Archiving records round by round until none is left,
// this broker stops holding k, or the broker shuts down.
func (w *deadLetterWriter) drain(ctx context.Context, k share.Key) {
	failures := 0
	for ctx.Err() == nil {
		j, ok := w.snapshot(k)
		if !ok {
			return
		}
		err := w.write(ctx, k, j)
		var unusable *dlqUnusableError
		switch {
		case err == nil:
			failures = 0
		case errors.As(err, &unusable):
			w.warnOnce(k.Group, unusable.problem)
			w.m.unusable.WithLabelValues(unusable.kind).Add(float64(len(j.letters)))
			if !w.archiveUnwritten(k, j, failures > 0) {
				return
			}
			failures = 0
		case ctx.Err() != nil:
			return
		default:
			failures++
			w.m.failures.WithLabelValues(dlqFailureKind(err)).Inc()
			if failures >= dlqMaxAttempts {
				w.b.log.Warn("dead-letter write keeps failing; archiving the records without a write",
					"group", k.Group, "partition", k.Partition, "records", len(j.letters), "err", err)
				w.m.unusable.WithLabelValues("gave_up").Add(float64(len(j.letters)))
				failures = 0
				if !w.archiveUnwritten(k, j, true) {
					return
				}
				continue
			}
			sleepCtx(ctx, w.backoff(failures))
		}
	}
}

// archiveUnwritten archives j's records without a DLQ write (the sequence
// does not move); false when the state could not be written, which ends
// this round: the records stay in Archiving for the next leader or wake.
//
// After failed attempts (attempted) the batch may be in the DLQ anyway (a
// write that timed out but landed): the producer is dropped with it, so the
// next batch, under a new producer, cannot be taken for a duplicate of that
// one by the DLQ partition.
func (w *deadLetterWriter) archiveUnwritten(k share.Key, j dlqJob, attempted bool) bool {
	if attempted && j.cursor.ProducerID > 0 {
		w.resetProducer(k)
	}
	if err := w.sp.complete(k, dlqOffsets(j.letters), 0); err != nil {
		w.b.log.Warn("archiving dead letters", "group", k.Group, "partition", k.Partition, "err", err)
		return false
	}
	return true
}

func (w *deadLetterWriter) warnOnce(group, problem string) {
	w.mu.Lock()
	last, seen := w.mu.warned[group]
	if !seen && len(w.mu.warned) >= 10000 {
		clear(w.mu.warned) // bounded: at worst some problems are logged again
	}
	w.mu.warned[group] = problem
	w.mu.Unlock()
	if last != problem {
		w.b.log.Warn("dead-letter topic unusable; archiving records without writing them (KIP-1191)",
			"group", group, "problem", problem)
	}
}

// dlqUnusableError is a DLQ that cannot be used by configuration: its
// records are archived without a write.
type dlqUnusableError struct {
	kind    string // metric label: a bounded set
	problem string
}

func (e *dlqUnusableError) Error() string { return "dead-letter topic unusable: " + e.problem }

func unusable(kind, format string, args ...any) error {
	return &dlqUnusableError{kind: kind, problem: fmt.Sprintf(format, args...)}
}

// errDLQTransient wraps failures worth another attempt.
var errDLQTransient = errors.New("broker: dead-letter write failed")

// write performs one round for k: resolve the DLQ topic, make sure the
// producer is persisted, build the batch, append it with acks=all and
// complete the records.
func (w *deadLetterWriter) write(ctx context.Context, k share.Key, j dlqJob) error {
	src := w.b.topics.getID(k.TopicID)
	if src == nil {
		return unusable("source_gone", "source topic %x no longer exists", k.TopicID)
	}
	dlqTopic, copyRecord := w.group(k.Group)
	dlq, err := w.resolveTopic(ctx, dlqTopic)
	if err != nil {
		return err
	}
	if j.cursor, err = w.ensureProducer(ctx, k, j.cursor); err != nil {
		return err
	}
	var payloads map[int64]kmsg.Record
	if copyRecord {
		payloads = w.readSources(src, k.Partition, j.letters)
	}
	dm := dlq.meta()
	maxBytes := min(int(dlq.config().produce.maxMessageBytes), dlqMaxCopyBytes)
	bb := buildDeadLetterBatch(deadLetterContext{group: k.Group, topic: src.meta().Name, partition: k.Partition},
		j.letters, payloads, maxBytes, time.Now())
	records, err := protocol.BuildBatch(w.b.codecs, protocol.CodecNone, 0, bb.records, protocol.BatchOptions{
		ProducerID: j.cursor.ProducerID, ProducerEpoch: j.cursor.ProducerEpoch, BaseSequence: j.cursor.Sequence,
		PartitionLeaderEpoch: -1, FirstTimestamp: bb.timestamp,
	})
	if err != nil {
		return fmt.Errorf("build dead-letter batch: %w", err)
	}
	part := dlqPartition(k.Partition, dm.Partitions)
	code := w.produce(ctx, dm.Name, part, records)
	switch code {
	case 0, kerr.DuplicateSequenceNumber.Code:
	case kerr.OutOfOrderSequenceNumber.Code, kerr.UnknownProducerID.Code, kerr.InvalidProducerEpoch.Code:
		// The DLQ partition lost or replaced this producer's state (it
		// expired, or the topic was recreated): start a new producer. Only
		// a batch written under the old producer and not yet completed
		// could be written twice, which needs that state to be gone too.
		w.resetProducer(k)
		return fmt.Errorf("%w: %s to %s-%d: %s", errDLQTransient, "produce", dm.Name, part, kerr.ErrorForCode(code))
	default:
		return fmt.Errorf("%w: produce to %s-%d: %w", errDLQTransient, dm.Name, part, kerr.ErrorForCode(code))
	}
	offsets := dlqOffsets(j.letters[:len(bb.records)])
	if err := w.sp.complete(k, offsets, int32(len(bb.records))); err != nil {
		// The batch is in the DLQ; the retry sends it again with the same
		// sequence and gets DUPLICATE_SEQUENCE_NUMBER or a duplicate append.
		return fmt.Errorf("%w: complete dead letters: %w", errDLQTransient, err)
	}
	w.m.wrote(j.letters[:len(bb.records)])
	return nil
}

// resolveTopic checks the group's DLQ topic against KIP-1191's rules and
// creates it when the cluster allows.
func (w *deadLetterWriter) resolveTopic(ctx context.Context, name string) (*topicState, error) {
	if name == "" {
		return nil, unusable("not_configured", "the group has no errors.deadletterqueue.topic.name")
	}
	if strings.HasPrefix(name, "__") {
		return nil, unusable("invalid_name", "topic %q is internal", name)
	}
	sh := w.b.shareSettings()
	if prefix := sh.DLQTopicPrefix; !strings.HasPrefix(name, prefix) {
		return nil, unusable("invalid_name", "topic %q does not start with %s=%q", name, settingDLQPrefix, prefix)
	}
	ts := w.b.topics.get(name)
	if ts == nil {
		if !sh.DLQAutoCreate {
			return nil, unusable("missing", "topic %q does not exist and %s is false", name, settingDLQAutoCreate)
		}
		if err := w.createTopic(ctx, name); err != nil {
			return nil, err
		}
		if ts = w.b.topics.get(name); ts == nil {
			return nil, fmt.Errorf("%w: topic %q created but not loaded yet", errDLQTransient, name)
		}
	}
	if w.b.settings.topic(topicConfigDLQEnable, ts.meta().Configs).value != "true" {
		return nil, unusable("not_enabled", "topic %q does not have %s=true", name, topicConfigDLQEnable)
	}
	return ts, nil
}

// createTopic creates a DLQ topic with the broker's defaults and the
// opt-in topic config.
func (w *deadLetterWriter) createTopic(ctx context.Context, name string) error {
	spec := topicSpec{
		name:              name,
		partitions:        int32(w.b.settings.brokerInt64("num.partitions", 1)),
		replicationFactor: int16(w.b.settings.brokerInt64("default.replication.factor", 1)),
		configs:           map[string]string{topicConfigDLQEnable: "true"},
	}
	_, code, msg := w.b.createTopicFromSpec(ctx, spec, false)
	if code != 0 && code != kerr.TopicAlreadyExists.Code {
		detail := ""
		if msg != nil {
			detail = ": " + *msg
		}
		return fmt.Errorf("%w: create %q: %s%s", errDLQTransient, name, kerr.ErrorForCode(code), detail)
	}
	w.b.log.Info("dead-letter topic created", "topic", name)
	return nil
}

// ensureProducer returns c, or a new producer allocated and persisted in
// k's state before any batch is written with it.
func (w *deadLetterWriter) ensureProducer(ctx context.Context, k share.Key, c share.DeadLetterCursor) (share.DeadLetterCursor, error) {
	if c.ProducerID > 0 {
		return c, nil
	}
	var id int64
	for id <= 0 { // id 0 reads as "none" in a zero state
		var err error
		if id, err = w.b.producer.next(ctx); err != nil {
			return c, fmt.Errorf("%w: %w", errDLQTransient, err)
		}
	}
	c = share.DeadLetterCursor{ProducerID: id}
	if !w.sp.setProducer(k, c) {
		return c, fmt.Errorf("%w: share-partition unloaded", errDLQTransient)
	}
	// Persist it (nothing archived, no sequence): a crash after the first
	// write must find this producer, or the retry would be a new one.
	if err := w.sp.complete(k, nil, 0); err != nil {
		return c, fmt.Errorf("%w: persist dead-letter producer: %w", errDLQTransient, err)
	}
	return c, nil
}

// resetProducer forgets k's producer so the next round allocates one.
func (w *deadLetterWriter) resetProducer(k share.Key) {
	w.sp.setProducer(k, share.DeadLetterCursor{})
}

// produce appends records to topic/part with acks=all, locally when this
// broker leads the partition, else through the leader. It returns the
// partition's Kafka error code.
func (w *deadLetterWriter) produce(ctx context.Context, topic string, part int32, records []byte) int16 {
	st, ok := w.b.partitionState(topic, part)
	if !ok || st.Leader < 0 {
		return kerr.LeaderNotAvailable.Code
	}
	if st.Leader == w.b.cfg.NodeID {
		return w.produceLocal(ctx, topic, part, records)
	}
	req := kmsg.NewPtrProduceRequest()
	req.Version = dlqProduceVersion
	req.Acks = -1
	req.TimeoutMillis = int32(dlqProduceTimeout / time.Millisecond)
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = part, records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := w.b.peers.roundTrip(ctx, w.b, st.Leader, req)
	if err != nil {
		return kerr.NetworkException.Code
	}
	pr := resp.(*kmsg.ProduceResponse)
	for _, t := range pr.Topics {
		for _, p := range t.Partitions {
			if t.Topic == topic && p.Partition == part {
				return p.ErrorCode
			}
		}
	}
	return kerr.UnknownServerError.Code
}

// produceLocal appends through the produce path (validation, the topic's
// max.message.bytes, idempotence checks) and waits for acks=all and, when
// the topic asks, the fsync.
func (w *deadLetterWriter) produceLocal(ctx context.Context, topic string, part int32, records []byte) int16 {
	ts := w.b.topics.get(topic)
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = part, records
	sp := kmsg.NewProduceResponseTopicPartition()
	v := &protocol.Validator{Codecs: w.b.codecs}
	ps, wait := w.b.produceOne(v, ts, topic, &rp, -1, dlqProduceTimeout, time.Now(), &sp, nil)
	if sp.ErrorCode != 0 || !wait {
		return sp.ErrorCode
	}
	if ps.upTo >= 0 {
		if err := ps.log.Sync(ctx, ps.upTo); err != nil {
			return kerr.KafkaStorageError.Code
		}
	}
	if ps.acked != nil {
		select {
		case err := <-ps.acked:
			return errorCode(err)
		case <-ctx.Done():
			return kerr.RequestTimedOut.Code
		}
	}
	return 0
}

// readSources reads the source records of letters from the local log of
// topic-partition src/part, for errors.deadletterqueue.copy.record.enable.
// A record no longer in the log (retention, compaction, DeleteRecords) is
// missing from the map and its DLQ record carries no copy, as KIP-1191
// says. Reads stop after dlqMaxCopyBytes of source batches.
func (w *deadLetterWriter) readSources(src *topicState, part int32, letters []share.DeadLetter) map[int64]kmsg.Record {
	p := src.partition(part)
	if p == nil || p.log == nil || len(letters) == 0 {
		return nil
	}
	want := make(map[int64]bool, len(letters))
	offs := make([]int64, 0, len(letters))
	for _, l := range letters {
		want[l.Offset] = true
		offs = append(offs, l.Offset)
	}
	slices.Sort(offs)
	out := make(map[int64]kmsg.Record, len(letters))
	budget := dlqMaxCopyBytes
	next := 0 // index in offs of the first offset not yet looked for
	for next < len(offs) && budget > 0 {
		off := max(offs[next], p.log.LogStartOffset())
		data, err := p.log.Read(off, int32(min(budget, 1<<20)), p.log.LogEndOffset())
		if err != nil || len(data) == 0 {
			break
		}
		budget -= len(data)
		end := dlqScanBatches(w.b.codecs, data, want, out)
		if end <= off {
			break
		}
		for next < len(offs) && offs[next] < end {
			next++
		}
	}
	return out
}

// dlqScanBatches decodes the batches in data, keeps the wanted records in
// out and returns the offset after the last batch (-1 for none).
func dlqScanBatches(codecs *protocol.Codecs, data []byte, want map[int64]bool, out map[int64]kmsg.Record) int64 {
	var end int64 = -1
	for len(data) > 0 {
		one, rest, err := batch.Next(data)
		if err != nil {
			break
		}
		data = rest
		h, err := batch.ParseHeader(one)
		if err != nil {
			break
		}
		end = h.NextOffset()
		if h.Control() { // transaction markers hold no user records
			continue
		}
		_, recs, err := protocol.DecodeCompactedRecords(one, codecs, maxDecodedBatch)
		if err != nil {
			continue
		}
		for _, r := range recs {
			if off := h.BaseOffset + int64(r.OffsetDelta); want[off] {
				out[off] = r
			}
		}
	}
	return end
}

// deadLetterContext is what every DLQ record of one share-partition says.
type deadLetterContext struct {
	group     string
	topic     string
	partition int32
}

// deadLetterBatch is one write's records (offset deltas 0..n-1, timestamp
// deltas 0) for the first len(records) letters.
type deadLetterBatch struct {
	records   []kmsg.Record
	timestamp int64
}

// dlqHeaders builds KIP-1191's context headers of one dead letter.
func dlqHeaders(c deadLetterContext, l share.DeadLetter) []kmsg.Header {
	msg := dlqMessageDeliveryLimit
	if l.Rejected {
		msg = dlqMessageRejected
	}
	return []kmsg.Header{
		{Key: dlqHeaderTopic, Value: []byte(c.topic)},
		{Key: dlqHeaderPartition, Value: strconv.AppendInt(nil, int64(c.partition), 10)},
		{Key: dlqHeaderOffset, Value: strconv.AppendInt(nil, l.Offset, 10)},
		{Key: dlqHeaderGroup, Value: []byte(c.group)},
		{Key: dlqHeaderDeliveryCount, Value: strconv.AppendInt(nil, int64(l.DeliveryCount), 10)},
		{Key: dlqHeaderMessage, Value: []byte(msg)},
	}
}

// buildDeadLetterBatch builds the DLQ records of letters, in order, with
// the context headers and, for a letter whose source record is in
// payloads, that record's key, value and headers (minus older __dlq.errors
// context). The copied bytes stay within maxBytes: the batch ends before
// the letter that would pass it, and a single letter bigger than maxBytes
// on its own is written without its copy. The record count therefore
// depends only on letters and the source records, never on timing, so a
// retry after a crash builds a batch with the same sequence range.
func buildDeadLetterBatch(c deadLetterContext, letters []share.DeadLetter, payloads map[int64]kmsg.Record, maxBytes int, now time.Time) deadLetterBatch {
	out := deadLetterBatch{timestamp: now.UnixMilli(), records: make([]kmsg.Record, 0, len(letters))}
	size := 0
	for i, l := range letters {
		r := kmsg.Record{OffsetDelta: int32(i), Headers: dlqHeaders(c, l)}
		cost := 64
		for _, h := range r.Headers {
			cost += len(h.Key) + len(h.Value) + 4
		}
		if src, ok := payloads[l.Offset]; ok {
			copyCost := len(src.Key) + len(src.Value)
			for _, h := range src.Headers {
				copyCost += len(h.Key) + len(h.Value) + 4
			}
			if cost+copyCost <= maxBytes {
				r.Key, r.Value = src.Key, src.Value
				for _, h := range src.Headers {
					if !strings.HasPrefix(h.Key, dlqHeaderPrefix) {
						r.Headers = append(r.Headers, h)
					}
				}
				cost += copyCost
			}
		}
		if i > 0 && size+cost > maxBytes {
			break
		}
		size += cost
		out.records = append(out.records, r)
	}
	return out
}

// dlqPartition is the DLQ partition of a source partition: fixed per
// share-partition, so its producer's sequences stay in one partition, and
// the same as Kafka's (source partition mod DLQ partitions).
func dlqPartition(source, partitions int32) int32 {
	if partitions <= 0 {
		return 0
	}
	return source % partitions
}

func dlqOffsets(letters []share.DeadLetter) []int64 {
	out := make([]int64, len(letters))
	for i, l := range letters {
		out[i] = l.Offset
	}
	return out
}

// dlqBackoff is the pause before attempt n+1 (n >= 1), doubling to
// dlqBackoffMax.
func dlqBackoff(n int) time.Duration {
	d := dlqBackoffFirst
	for i := 1; i < n && d < dlqBackoffMax; i++ {
		d *= 2
	}
	return min(d, dlqBackoffMax)
}

// dlqFailureKind labels a transient failure by its Kafka error, a bounded set.
func dlqFailureKind(err error) string {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Message
	}
	return "other"
}
