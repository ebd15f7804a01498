package broker

// Produce: v3-12.
//
// v3 is the first version that carries v2 record batches (KIP-98); older
// message formats are answered with UNSUPPORTED_FOR_MESSAGE_FORMAT. Each
// partition must carry exactly one v2 batch, as Kafka's LogValidator
// requires. Offsets are assigned inside the log's append critical section,
// where idempotent-producer sequence checks also run. With acks=0 there is no
// response. When the topic's flush policy requires an fsync before
// acknowledging (flush.messages), the wait runs as the request's finish step
// on the connection writer: the next request is read and appended meanwhile,
// so pipelined appends share one fsync while responses stay in order.
// v12 only signals KIP-890 transaction support on the client side.

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/protocol/batch"
	"github.com/sluicedev/sluice/storage"
)

func (b *Broker) produceAPI() api { return api{key: 0, min: 3, max: 12, handle: b.handleProduce} }

// pendingSync is an append that must be fsynced (flush.messages), or
// replicated to the ISR (acks=-1), or both, before it is acknowledged.
type pendingSync struct {
	log   *storage.Log
	upTo  int64 // fsync through here; -1 when no fsync is needed
	acked <-chan error
	resp  *kmsg.ProduceResponseTopicPartition
}

func (b *Broker) handleProduce(_ context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	if req.TransactionID != nil {
		// Transactions are not supported yet; no transactional producer id
		// can exist, so such a request cannot be valid.
		fillProduceError(req, resp, kerr.InvalidRequest.Code)
		return resp, nil
	}
	if req.Acks != 0 && req.Acks != 1 && req.Acks != -1 {
		fillProduceError(req, resp, kerr.InvalidRequiredAcks.Code)
		return resp, nil
	}
	var syncs []pendingSync
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
			if s, ok := b.produceOne(ts, rt.Topic, rp, req.Acks, timeout, now, sp); ok {
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
func (b *Broker) produceOne(ts *topicState, topic string, rp *kmsg.ProduceRequestTopicPartition, acks int16, timeout time.Duration, now time.Time, sp *kmsg.ProduceResponseTopicPartition) (pendingSync, bool) {
	code, msg := b.produceTarget(ts, topic, rp.Partition)
	if code != 0 {
		sp.ErrorCode, sp.ErrorMessage = code, msg
		return pendingSync{}, false
	}
	p := ts.partition(rp.Partition)
	h, code, msg := b.validateProduceBatch(ts, rp.Records, now)
	if code != 0 {
		sp.ErrorCode, sp.ErrorMessage = code, msg
		b.metrics.producedRejected.WithLabelValues(topic).Inc()
		return pendingSync{}, false
	}
	var opts storage.AppendOptions
	if ts.value("message.timestamp.type") == "LogAppendTime" {
		opts.LogAppendTime = now.UnixMilli()
	}
	res, acked, err := p.rep.appendLeader(rp.Records, opts, acks, timeout)
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
		b.metrics.produced(topic, len(rp.Records), int(h.NumRecords))
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

// validateProduceBatch checks one partition's records as Kafka's
// LogValidator does, returning the batch header or an error code.
func (b *Broker) validateProduceBatch(ts *topicState, records []byte, now time.Time) (batch.Header, int16, *string) {
	if len(records) == 0 {
		return batch.Header{}, kerr.InvalidRecord.Code, kmsg.StringPtr("no record batch")
	}
	if max := atoiDefault(ts.value("max.message.bytes"), 1048588); int64(len(records)) > max {
		return batch.Header{}, kerr.MessageTooLarge.Code, nil
	}
	first, rest, err := batch.Next(records)
	if err != nil {
		return batch.Header{}, batchErrorCode(err), nil
	}
	if len(rest) > 0 {
		return batch.Header{}, kerr.InvalidRecord.Code, kmsg.StringPtr("a produce request must carry exactly one record batch per partition")
	}
	h, err := batch.Check(first)
	if err != nil {
		return h, batchErrorCode(err), nil
	}
	switch {
	case h.Control():
		return h, kerr.InvalidRecord.Code, kmsg.StringPtr("clients may not write control batches")
	case h.Transactional():
		return h, kerr.TransactionalIDAuthorizationFailed.Code, kmsg.StringPtr("transactions are not supported yet")
	case h.NumRecords <= 0 || h.LastOffsetDelta != h.NumRecords-1:
		return h, kerr.InvalidRecord.Code, kmsg.StringPtr("record count does not match the last offset delta")
	}
	if strings.Contains(ts.value("cleanup.policy"), "compact") {
		// Kafka's LogValidator: compaction needs a key on every record.
		if _, recs, err := b.decodeRecords(first); err != nil {
			return h, kerr.CorruptMessage.Code, nil
		} else if slices.ContainsFunc(recs, func(r kmsg.Record) bool { return r.Key == nil }) {
			return h, kerr.InvalidRecord.Code, kmsg.StringPtr("compacted topic cannot accept a record without a key")
		}
	}
	if ts.value("message.timestamp.type") == "CreateTime" {
		if code := checkTimestamps(ts, h, now); code != 0 {
			return h, code, kmsg.StringPtr("timestamp out of the range allowed by message.timestamp.before.max.ms / after.max.ms")
		}
	}
	return h, 0, nil
}

func checkTimestamps(ts *topicState, h batch.Header, now time.Time) int16 {
	before := atoiDefault(ts.value("message.timestamp.before.max.ms"), 0)
	after := atoiDefault(ts.value("message.timestamp.after.max.ms"), 0)
	nowMs := now.UnixMilli()
	for _, t := range []int64{h.FirstTimestamp, h.MaxTimestamp} {
		if t < 0 {
			continue
		}
		if (before > 0 && nowMs-t > before) || (after > 0 && t-nowMs > after) {
			return kerr.InvalidTimestamp.Code
		}
	}
	return 0
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
	case errors.Is(err, storage.ErrFenced), errors.Is(err, storage.ErrClosed):
		return kerr.KafkaStorageError.Code
	case errors.Is(err, kerr.NotLeaderForPartition):
		return kerr.NotLeaderForPartition.Code
	case errors.Is(err, kerr.NotEnoughReplicas):
		return kerr.NotEnoughReplicas.Code
	default:
		return kerr.UnknownServerError.Code
	}
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
