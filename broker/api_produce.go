package broker

// Produce: v3-12, listed in ApiVersions from v0 (KAFKA-18659).
//
// v3 is the first version that carries v2 record batches (KIP-98). Kafka 4
// lists Produce from v0 because librdkafka will not compress otherwise, yet
// refuses v0-2 when they arrive; here such a request falls outside the
// dispatch range and the connection is closed, as Kafka 4 fails its parsing.
// Each partition must carry exactly one v2 batch, as Kafka's LogValidator
// requires, and every record in it is walked (protocol.Validator): record
// and field lengths, varints, offset deltas 0..n-1, the record count, header
// keys, keys on compacted topics and CreateTime bounds. Compressed batches
// are streamed through a bounded decompressor. A refused batch stores
// nothing and uses no offsets; from v8, refusals for some records carry
// RecordErrors (KIP-467). When the topic's compression.type names a codec
// other than the batch's, the batch is rebuilt with it at the KIP-390 level;
// otherwise the producer's bytes are stored as they came. Offsets are
// assigned inside the log's append critical section, where
// idempotent-producer sequence checks also run. With acks=0 there is no
// response. When the topic's flush policy requires an fsync before
// acknowledging (flush.messages), the wait runs as the request's finish step
// on the connection writer: the next request is read and appended meanwhile,
// so pipelined appends share one fsync while responses stay in order.
// Transactional batches (KIP-98) need the request's transactional id
// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED for the whole request otherwise, as
// Kafka answers) and one producer (INVALID_PRODUCER_ID_MAPPING otherwise).
// Before a producer's first transactional batch in a partition, the leader
// checks with the transaction coordinator that the partition is in the
// transaction (transaction.partition.verification.enable, KIP-890 part 1) or,
// for v12 under transaction version 2, adds it there (part 2); the storage
// guard refuses the append if a marker ended the transaction meanwhile. A
// partition given more than once is produced to once, with the last batch
// given for it, and answered once, as Kafka's per-partition map does.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/protocol"
	"github.com/sluicedev/sluice/protocol/batch"
	"github.com/sluicedev/sluice/storage"
)

// produceAPI serves v3-12 but lists Produce from v0 in ApiVersions, as
// Kafka 4 does (KAFKA-18659: librdkafka refuses to compress unless the
// broker lists v0). A v0-2 request still falls outside the row's range and
// closes the connection, as Kafka 4's request parsing fails it.
func (b *Broker) produceAPI() api {
	return api{key: 0, min: 3, max: 12, listFromV0: true, handle: b.handleProduce}
}

// pendingSync is an append that must be fsynced (flush.messages), or
// replicated to the ISR (acks=-1), or both, before it is acknowledged.
type pendingSync struct {
	log   *storage.Log
	upTo  int64 // fsync through here; -1 when no fsync is needed
	acked <-chan error
	resp  *kmsg.ProduceResponseTopicPartition
}

func (b *Broker) handleProduce(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	if req.Acks != 0 && req.Acks != 1 && req.Acks != -1 {
		fillProduceError(req, resp, kerr.InvalidRequiredAcks.Code)
		return resp, nil
	}
	if produceParts(req.Topics).hasRepeated() {
		// Kafka keeps one batch per partition, the last one given, and
		// answers each partition once.
		req.Topics = mergeLastWins(req.Topics,
			func(t *kmsg.ProduceRequestTopic) string { return t.Topic },
			func(t *kmsg.ProduceRequestTopic) *[]kmsg.ProduceRequestTopicPartition { return &t.Partitions },
			func(p *kmsg.ProduceRequestTopicPartition) int32 { return p.Partition })
	}
	tx, code := b.transactionalProduce(ctx, req)
	if code != 0 {
		fillProduceError(req, resp, code)
		return resp, nil
	}
	var syncs []pendingSync
	v := new(protocol.Validator)
	if r.conn != nil {
		v = &r.conn.validator // the reader handles one request at a time
	}
	v.Codecs = b.codecs
	now := time.Now()
	timeout := time.Duration(max(req.TimeoutMillis, 0)) * time.Millisecond
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		ts := b.topics.get(rt.Topic)
		// Allocated up front: pendingSync keeps pointers into this array.
		st.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			sp := &st.Partitions[j]
			sp.Default()
			sp.Partition = rp.Partition
			sp.BaseOffset = -1
			sp.LogAppendTime = -1
			sp.LogStartOffset = -1
			if s, ok := b.produceOne(v, ts, rt.Topic, rp, req.Acks, timeout, now, sp, tx); ok {
				syncs = append(syncs, s)
			}
			if sp.ErrorCode == kerr.NotLeaderForPartition.Code && req.Version >= 10 {
				b.fillProduceLeader(resp, ts, rp.Partition, sp)
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	if req.Acks == 0 {
		r.noResponse = true
	}
	if len(syncs) > 0 {
		c := r.conn
		r.finish = func(ctx context.Context) { b.syncProduce(ctx, c, syncs) }
	}
	return resp, nil
}

// produceParts lists a produce request's partitions for duplicate checks.
func produceParts(ts []kmsg.ProduceRequestTopic) partList {
	return partList{
		n:     len(ts),
		topic: func(i int) string { return ts[i].Topic },
		count: func(i int) int { return len(ts[i].Partitions) },
		part:  func(i, k int) int32 { return ts[i].Partitions[k].Partition },
	}
}

// syncProduce waits until the appends in syncs are durable, marking those
// whose fsync failed. Before it blocks it has c flush the responses already
// written ahead of this one.
func (b *Broker) syncProduce(ctx context.Context, c *conn, syncs []pendingSync) {
	for _, s := range syncs {
		if s.upTo < 0 {
			continue
		}
		if s.upTo >= s.log.SyncedOffset() {
			c.flushBeforeWait()
		}
		if err := s.log.Sync(ctx, s.upTo); err != nil {
			s.resp.ErrorCode = kerr.KafkaStorageError.Code
			s.resp.BaseOffset = -1
		}
	}
	for _, s := range syncs {
		if s.acked == nil {
			continue
		}
		var err error
		select {
		case err = <-s.acked:
		default:
			c.flushBeforeWait()
			select {
			case err = <-s.acked:
			case <-ctx.Done():
				err = kerr.RequestTimedOut
			}
		}
		if code := errorCode(err); code != 0 && s.resp.ErrorCode == 0 {
			s.resp.ErrorCode = code
			s.resp.BaseOffset = -1
		}
	}
}

// produceOne appends one partition's batch and fills sp. It returns a
// pendingSync (and true) when the append still needs an fsync.
func (b *Broker) produceOne(v *protocol.Validator, ts *topicState, topic string, rp *kmsg.ProduceRequestTopicPartition, acks int16, timeout time.Duration, now time.Time, sp *kmsg.ProduceResponseTopicPartition, tx *txnProduce) (pendingSync, bool) {
	code, msg := b.produceTarget(ts, topic, rp.Partition)
	if code != 0 {
		sp.ErrorCode, sp.ErrorMessage = code, msg
		return pendingSync{}, false
	}
	var opts storage.AppendOptions
	if tx != nil {
		if code, msg := tx.appendOptions(topic, rp.Partition, &opts); code != 0 {
			sp.ErrorCode, sp.ErrorMessage = code, msg
			return pendingSync{}, false
		}
	}
	p := ts.partition(rp.Partition)
	rules := produceRulesOf(ts, now)
	pc := b.validateProduceBatch(v, &rules, rp.Records)
	if pc.code != 0 {
		sp.ErrorCode, sp.ErrorMessage, sp.ErrorRecords = pc.code, pc.msg, pc.errs
		b.metrics.producedRejected.WithLabelValues(topic).Inc()
		return pendingSync{}, false
	}
	if rules.logAppendTime {
		opts.LogAppendTime = now.UnixMilli()
	}
	res, acked, err := p.rep.appendLeader(pc.records, opts, acks, timeout)
	if err != nil {
		sp.ErrorCode = appendErrorCode(err)
		if sp.ErrorCode == kerr.UnknownServerError.Code {
			b.log.Error("append failed", "topic", topic, "partition", rp.Partition, "err", err)
		}
		return pendingSync{}, false
	}
	sp.BaseOffset = res.BaseOffset
	sp.LogAppendTime = res.LogAppendTime
	sp.LogStartOffset = res.LogStartOffset
	if !res.Duplicate {
		b.metrics.produced(topic, len(pc.records), int(pc.h.NumRecords))
	}
	ps := pendingSync{log: p.log, upTo: -1, acked: acked, resp: sp}
	if res.NeedsSync {
		ps.upTo = res.LastOffset
	}
	return ps, ps.upTo >= 0 || acked != nil
}

// produceTarget checks that topic/partition can take a produce here.
func (b *Broker) produceTarget(ts *topicState, topic string, part int32) (int16, *string) {
	if err := validTopicName(topic); err != nil {
		return kerr.InvalidTopicException.Code, kmsg.StringPtr(err.Error())
	}
	if ts == nil || part < 0 || part >= ts.meta().Partitions {
		return kerr.UnknownTopicOrPartition.Code, nil
	}
	if isInternalTopic(topic) {
		return kerr.InvalidTopicException.Code, kmsg.StringPtr("cannot produce to an internal topic")
	}
	p := ts.partition(part)
	if p == nil || !p.rep.leading.Load() {
		return kerr.NotLeaderForPartition.Code, nil
	}
	return 0, nil
}

// fillProduceLeader adds the partition's current leader to a
// NOT_LEADER_OR_FOLLOWER answer (KIP-951, Produce v10+).
func (b *Broker) fillProduceLeader(resp *kmsg.ProduceResponse, ts *topicState, part int32, sp *kmsg.ProduceResponseTopicPartition) {
	if ts == nil {
		return
	}
	st, ok := b.partitionState(ts.meta().Name, part)
	if !ok || st.Leader < 0 || st.Leader == b.cfg.NodeID {
		return
	}
	br, ok := b.brokers.get(st.Leader)
	if !ok {
		return
	}
	sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = st.Leader, st.LeaderEpoch
	if slices.ContainsFunc(resp.Brokers, func(x kmsg.ProduceResponseBroker) bool { return x.NodeID == br.NodeID }) {
		return
	}
	pb := kmsg.NewProduceResponseBroker()
	pb.NodeID, pb.Host, pb.Port = br.NodeID, br.Host, br.Port
	if br.Rack != "" {
		pb.Rack = kmsg.StringPtr(br.Rack)
	}
	resp.Brokers = append(resp.Brokers, pb)
}

// produceRules are the topic settings a produce batch is checked and
// stored against.
type produceRules struct {
	maxMessageBytes int64
	validate        protocol.ValidateOptions
	logAppendTime   bool
	// recompress is set when compression.type names a codec: batches in
	// another codec are rebuilt with codec at level.
	recompress bool
	codec      int8
	level      int
}

// maxDecompressedFactor bounds a batch's records after decompression at
// this many times max.message.bytes (64 MiB by default): beyond what any
// real producer's compression ratio gives, and it keeps a compression
// bomb's cost to a bounded stream of CPU. Kafka has no such bound.
const maxDecompressedFactor = 64

// produceRulesOf is the topic's resolved produce check with the clock
// filled in: a copy of a struct, nothing parsed.
func produceRulesOf(ts *topicState, now time.Time) produceRules {
	r := ts.config().produce
	if r.validate.CheckTimestamps {
		r.validate.Now = now.UnixMilli()
	}
	return r
}

// produceCheck is the verdict on one partition's batch.
type produceCheck struct {
	h       batch.Header
	code    int16
	msg     *string
	errs    []kmsg.ProduceResponseTopicPartitionErrorRecord // KIP-467
	records []byte                                          // what to append
}

func produceFail(h batch.Header, code int16, msg string) produceCheck {
	pc := produceCheck{h: h, code: code}
	if msg != "" {
		pc.msg = kmsg.StringPtr(msg)
	}
	return pc
}

// validateProduceBatch checks one partition's records as Kafka's
// LogValidator does, walking every record (protocol.Validator), and
// recompresses them when the topic's compression.type asks for another
// codec. Nothing is stored when it answers an error code.
func (b *Broker) validateProduceBatch(v *protocol.Validator, rules *produceRules, records []byte) produceCheck {
	if len(records) == 0 {
		return produceFail(batch.Header{}, kerr.InvalidRecord.Code, "Record batch has no batches at all")
	}
	if int64(len(records)) > rules.maxMessageBytes {
		return produceFail(batch.Header{}, kerr.MessageTooLarge.Code, "")
	}
	first, rest, err := batch.Next(records)
	if err != nil {
		return produceFail(batch.Header{}, batchErrorCode(err), "")
	}
	if len(rest) > 0 {
		return produceFail(batch.Header{}, kerr.InvalidRecord.Code, "Compressed outer record has more than one batch")
	}
	h, err := batch.Check(first)
	if err != nil {
		return produceFail(h, batchErrorCode(err), "")
	}
	switch {
	case h.Control():
		return produceFail(h, kerr.InvalidRecord.Code, "Clients are not allowed to write control records")
	case h.Transactional() && h.ProducerID < 0:
		return produceFail(h, kerr.InvalidRecord.Code, "Invalid transactional record batch with no producer id")
	case h.ProducerID >= 0 && h.BaseSequence < 0:
		return produceFail(h, kerr.InvalidRecord.Code, "Invalid sequence number in a record batch with a producer id")
	}
	if _, err := v.Validate(first, rules.validate); err != nil {
		pc := produceFail(h, validateErrorCode(err), err.Error())
		var rve *protocol.RecordValidationError
		if errors.As(err, &rve) {
			pc.errs = make([]kmsg.ProduceResponseTopicPartitionErrorRecord, len(rve.Records))
			for i, re := range rve.Records {
				pc.errs[i] = kmsg.ProduceResponseTopicPartitionErrorRecord{RelativeOffset: re.Index, ErrorMessage: kmsg.StringPtr(re.Message)}
			}
		}
		return pc
	}
	pc := produceCheck{h: h, records: records}
	if rules.recompress && int8(h.Codec()) != rules.codec {
		out, err := protocol.Recompress(b.codecs, first, rules.codec, rules.level, rules.validate.MaxDecompressed)
		if err != nil {
			return produceFail(h, validateErrorCode(err), err.Error())
		}
		if int64(len(out)) > rules.maxMessageBytes {
			return produceFail(h, kerr.MessageTooLarge.Code, fmt.Sprintf("Message batch size is %d bytes after recompression, above max.message.bytes %d", len(out), rules.maxMessageBytes))
		}
		pc.records = out
	}
	return pc
}

// validateErrorCode maps a protocol.Validator error to what Kafka answers.
func validateErrorCode(err error) int16 {
	switch {
	case errors.Is(err, protocol.ErrBatchCRC):
		return kerr.CorruptMessage.Code
	case errors.Is(err, protocol.ErrInvalidTimestamp):
		return kerr.InvalidTimestamp.Code
	case errors.Is(err, protocol.ErrDecompressedTooLarge):
		return kerr.MessageTooLarge.Code
	case errors.Is(err, protocol.ErrCorruptCompression):
		// Kafka fails these with UNKNOWN_SERVER_ERROR (an IOException from
		// the codec); the batch passed its CRC, so the message is corrupt
		// at the source.
		return kerr.CorruptMessage.Code
	default:
		return kerr.InvalidRecord.Code
	}
}

func batchErrorCode(err error) int16 {
	switch {
	case errors.Is(err, batch.ErrMagic):
		return kerr.UnsupportedForMessageFormat.Code
	case errors.Is(err, batch.ErrCorrupt), errors.Is(err, batch.ErrShort):
		return kerr.CorruptMessage.Code
	default:
		return kerr.InvalidRecord.Code
	}
}

// appendErrorCode maps storage errors to what Kafka answers.
func appendErrorCode(err error) int16 {
	switch {
	case errors.Is(err, storage.ErrOutOfOrderSequence):
		return kerr.OutOfOrderSequenceNumber.Code
	case errors.Is(err, storage.ErrInvalidProducerEpoch):
		return kerr.InvalidProducerEpoch.Code
	case errors.Is(err, storage.ErrUnknownProducerID):
		return kerr.UnknownProducerID.Code
	case errors.Is(err, storage.ErrTxnCompleting):
		// Retriable: the previous transaction's marker is on its way.
		return kerr.NotEnoughReplicas.Code
	case errors.Is(err, storage.ErrInvalidTxnState):
		return kerr.InvalidTxnState.Code
	case errors.Is(err, storage.ErrCoordinatorFenced):
		return kerr.TransactionCoordinatorFenced.Code
	case errors.Is(err, storage.ErrFenced), errors.Is(err, storage.ErrClosed):
		return kerr.KafkaStorageError.Code
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return kerr.RequestTimedOut.Code
	}
	if ke := (*kerr.Error)(nil); errors.As(err, &ke) {
		return ke.Code // NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT from the replica
	}
	return kerr.UnknownServerError.Code
}

func fillProduceError(req *kmsg.ProduceRequest, resp *kmsg.ProduceResponse, code int16) {
	for _, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.ErrorCode = code
			sp.BaseOffset = -1
			sp.LogAppendTime = -1
			sp.LogStartOffset = -1
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
}
