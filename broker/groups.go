package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/coordinator/group"
	"github.com/sluicedev/sluice/protocol"
	"github.com/sluicedev/sluice/storage"
)

// offsetsTopic holds committed offsets and group metadata as Kafka lays them
// out, so the group coordinator rebuilds its state from the log.
const offsetsTopic = "__consumer_offsets"

// newCoordinator builds the group coordinator from the broker settings; the
// broker persists its records in __consumer_offsets.
func (b *Broker) newCoordinator() (*group.Coordinator, error) {
	ms := func(name string, def int64) time.Duration {
		return time.Duration(b.settings.brokerInt64(name, def)) * time.Millisecond
	}
	return group.New(group.Config{
		Logger:                        b.log.With("component", "groups"),
		Persister:                     offsetsPersister{b},
		NumPartitions:                 b.offsetsPartitions(),
		MinSessionTimeout:             ms("group.min.session.timeout.ms", 6000),
		MaxSessionTimeout:             ms("group.max.session.timeout.ms", 1800000),
		InitialRebalanceDelay:         ms("group.initial.rebalance.delay.ms", 3000),
		MaxGroupSize:                  int(b.settings.brokerInt64("group.max.size", 1<<31-1)),
		OffsetsRetention:              time.Duration(b.settings.brokerInt64("offsets.retention.minutes", 10080)) * time.Minute,
		OffsetsRetentionCheckInterval: ms("offsets.retention.check.interval.ms", 600000),
		MaxOffsetMetadataBytes:        int(b.settings.brokerInt64("offset.metadata.max.bytes", 4096)),
		ConsumerHeartbeatInterval:     ms("group.consumer.heartbeat.interval.ms", 5000),
		ConsumerSessionTimeout:        ms("group.consumer.session.timeout.ms", 45000),
		ConsumerAssignors:             strings.Split(b.settings.broker("group.consumer.assignors").value, ","),
		TopicMetadata:                 b.topicMetadata,
		ListTopics:                    b.topicNames,
		TxnVerifier:                   groupTxnVerifier{b},
		ShareSettings:                 b.shareGroupSettings,
		ConsumerSettings:              b.consumerGroupSettings,
	})
}

func (b *Broker) offsetsPartitions() int32 {
	return int32(b.settings.brokerInt64("offsets.topic.num.partitions", 50))
}

// topicMetadata resolves a topic for the coordinator. It takes only the
// topic table's read lock, which is never held while calling the
// coordinator (lock order: coordinator, then topic table).
func (b *Broker) topicMetadata(topic string) ([16]byte, int32, bool) {
	ts := b.topics.get(topic)
	if ts == nil {
		return [16]byte{}, 0, false
	}
	return ts.meta().ID, ts.meta().Partitions, true
}

func (b *Broker) topicNames() []string {
	all := b.topics.all()
	out := make([]string, 0, len(all))
	for _, ts := range all {
		out = append(out, ts.meta().Name)
	}
	return out
}

// ensureOffsetsTopic creates __consumer_offsets on first use, as Kafka does
// when the first FindCoordinator arrives.
func (b *Broker) ensureOffsetsTopic(ctx context.Context) error {
	rf := int16(b.settings.brokerInt64("offsets.topic.replication.factor", 1))
	return b.ensureInternalTopic(ctx, offsetsTopic, b.offsetsPartitions(), rf, func(int16) map[string]string {
		return map[string]string{
			"cleanup.policy":   "compact",
			"segment.bytes":    b.settings.broker("offsets.topic.segment.bytes").value,
			"compression.type": "producer",
		}
	})
}

// ensureInternalTopic creates an internal topic on first use, with its
// replication factor capped at the live brokers (Kafka refuses to create it
// instead, which leaves a single-broker cluster without coordinators).
// configs gets the capped replication factor.
func (b *Broker) ensureInternalTopic(ctx context.Context, name string, partitions int32, rf int16, configs func(rf int16) map[string]string) error {
	if b.topics.get(name) != nil {
		return nil
	}
	if live := len(b.liveBrokers()); int(rf) > live {
		rf = int16(live)
	}
	spec := topicSpec{name: name, partitions: partitions, replicationFactor: rf, configs: configs(rf)}
	_, code, msg := b.createTopicFromSpec(ctx, spec, false)
	if code != 0 && b.topics.get(name) == nil {
		return fmt.Errorf("create %s: error code %d: %v", name, code, derefString(msg))
	}
	return nil
}

func derefString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// loadOffsetsPartition hands a __consumer_offsets partition this broker
// just became leader of to the coordinator. It marks the partition loading
// at once (the caller holds the transitions lock, which orders it against a
// later Unload) and replays the log in the background, so no broker-wide
// lock is held while the log is read.
func (b *Broker) loadOffsetsPartition(part *partition) {
	if b.coord.Owns(part.index) {
		return
	}
	token := b.coord.BeginLoad(part.index)
	ctx := b.bgCtx()
	b.goroutines.Go("offsets-load", func() { b.runOffsetsLoad(ctx, part, token) })
}

// Bounds of the wait between attempts to load a __consumer_offsets
// partition whose log could not be read.
const (
	offsetsLoadRetryMin = 100 * time.Millisecond
	offsetsLoadRetryMax = 5 * time.Second
)

// runOffsetsLoad replays part's log into the coordinator, streaming one
// read of at most 1 MiB at a time. A read error serves nothing of the
// partition (clients keep getting COORDINATOR_LOAD_IN_PROGRESS) and the load
// is retried with backoff for as long as this broker still leads it.
func (b *Broker) runOffsetsLoad(ctx context.Context, part *partition, token group.LoadToken) {
	b.retryLoad(ctx, "group state", part.index,
		func() error { return b.coord.LoadFrom(token, offsetsLogSource(b.codecs, part.log)) },
		group.ErrLoadSuperseded, func() bool { return b.coord.Loading(token) })
}

// retryLoad runs load until it succeeds or is superseded, waiting between
// attempts with backoff (offsetsLoadRetryMin doubling to
// offsetsLoadRetryMax) for as long as wanted says the load is still wanted
// and ctx lasts. It returns whether the load succeeded.
func (b *Broker) retryLoad(ctx context.Context, what string, partition int32, load func() error, superseded error, wanted func() bool) bool {
	wait := offsetsLoadRetryMin
	for {
		err := load()
		if err == nil {
			return true
		}
		if errors.Is(err, superseded) {
			return false
		}
		b.log.Error("loading "+what+" failed; retrying", "partition", partition, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		if !wanted() {
			return false
		}
		wait = min(2*wait, offsetsLoadRetryMax)
	}
}

// offsetsLogSource streams the records of a __consumer_offsets partition
// (see scanInternalLog), with the producer of transactional batches and one
// record per transaction marker, so the coordinator can keep transactional
// offset commits pending until their marker.
func offsetsLogSource(codecs *protocol.Codecs, l *storage.Log) group.RecordSource {
	return func(yield func(group.Record) bool) error {
		return scanInternalLog(codecs, l, func(r internalRecord) bool {
			gr := group.Record{Key: r.key, Value: r.value, Transactional: r.transactional, ProducerID: r.producerID}
			switch r.marker {
			case markerCommit:
				gr.Marker = group.CommitMarker
			case markerAbort:
				gr.Marker = group.AbortMarker
			}
			return yield(gr)
		})
	}
}

// offsetsPersister writes coordinator records to __consumer_offsets.
type offsetsPersister struct{ b *Broker }

// Persist appends records as one batch and returns once it is as durable as
// an acks=all produce: replicated to the ISR (the high watermark passed
// it), and fsynced when the topic's flush policy asks for it. The wait is
// bounded by offsets.commit.timeout.ms (REQUEST_TIMED_OUT).
func (op offsetsPersister) Persist(ctx context.Context, partition int32, records []group.Record) error {
	return op.b.appendInternal(ctx, offsetsTopic, partition, groupRecords(records), protocol.DefaultBatchOptions(),
		op.b.settings.brokerMillis("offsets.commit.timeout.ms", 5000))
}

// PersistTxn appends records as one transactional batch of the producer
// (TxnOffsetCommit), durable as Persist's.
func (op offsetsPersister) PersistTxn(ctx context.Context, partition int32, producerID int64, producerEpoch int16, records []group.Record) error {
	opts := protocol.DefaultBatchOptions()
	opts.ProducerID, opts.ProducerEpoch, opts.Transactional = producerID, producerEpoch, true
	err := op.b.appendInternal(ctx, offsetsTopic, partition, groupRecords(records), opts,
		op.b.settings.brokerMillis("offsets.commit.timeout.ms", 5000))
	if err == nil {
		return nil
	}
	// The log's refusals of the producer reach the client as they are.
	switch code := appendErrorCode(err); code {
	case kerr.InvalidProducerEpoch.Code, kerr.InvalidTxnState.Code:
		return fmt.Errorf("%w: %w", kerr.ErrorForCode(code), err)
	}
	return err
}

func groupRecords(records []group.Record) []kmsg.Record {
	return numberedRecords(records, func(r group.Record) ([]byte, []byte) { return r.Key, r.Value })
}

// numberedRecords turns a coordinator's records into one batch's records,
// with offset deltas 0..n-1.
func numberedRecords[R any](records []R, kv func(R) (key, value []byte)) []kmsg.Record {
	recs := make([]kmsg.Record, len(records))
	for i, r := range records {
		k, v := kv(r)
		recs[i] = kmsg.Record{OffsetDelta: int32(i), Key: k, Value: v}
	}
	return recs
}

// errNoInternalPartition means a coordinator write targeted an internal
// topic partition this broker does not host.
var errNoInternalPartition = errors.New("broker: internal topic partition not hosted here")

// appendInternal appends records as one uncompressed batch with opts to a
// partition of an internal topic this broker leads and returns once it is as
// durable as an acks=all produce: replicated to the ISR (the high watermark
// passed it), and fsynced when the topic's flush policy asks for it, within
// timeout (REQUEST_TIMED_OUT) or ctx.
func (b *Broker) appendInternal(ctx context.Context, topic string, partition int32, recs []kmsg.Record, opts protocol.BatchOptions, timeout time.Duration) error {
	ts := b.topics.get(topic)
	if ts == nil || ts.partition(partition) == nil {
		return fmt.Errorf("%s-%d: %w", topic, partition, errNoInternalPartition)
	}
	now := time.Now().UnixMilli()
	opts.FirstTimestamp, opts.MaxTimestamp = now, now
	raw, err := protocol.BuildBatch(b.codecs, protocol.CodecNone, 0, recs, opts)
	if err != nil {
		return fmt.Errorf("encode %s records: %w", topic, err)
	}
	return b.appendDurably(ctx, ts.partition(partition), raw, timeout)
}

// appendDurably appends one batch as leader and waits until it is as durable
// as an acks=all produce.
func (b *Broker) appendDurably(ctx context.Context, p *partition, raw []byte, timeout time.Duration) error {
	res, acked, err := p.rep.appendLeader(raw, storage.AppendOptions{}, -1, timeout)
	if err != nil {
		return fmt.Errorf("append to %s-%d: %w", p.log.Topic(), p.index, err)
	}
	if res.NeedsSync {
		if err := p.log.Sync(ctx, res.LastOffset); err != nil {
			return fmt.Errorf("sync %s-%d: %w", p.log.Topic(), p.index, err)
		}
	}
	select {
	case err := <-acked:
		if err != nil {
			return fmt.Errorf("replicate to %s-%d: %w", p.log.Topic(), p.index, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("replicate to %s-%d: %w", p.log.Topic(), p.index, ctx.Err())
	}
}

// clientCtx tells the coordinator which client sent a request, for member
// ids and DescribeGroups (client id and host, as Kafka reports them).
func (b *Broker) clientCtx(ctx context.Context, r *request) context.Context {
	host := r.conn.remote
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return group.WithClient(ctx, r.hdr.ClientID, "/"+host)
}

// shareGroupSettings resolves a share group's membership settings for the
// coordinator: the group's share.heartbeat.interval.ms and
// share.session.timeout.ms over the broker's group.share.* (groupSettings),
// and group.share.max.size. It is called with the coordinator lock held and
// takes only the settings' own lock.
func (b *Broker) shareGroupSettings(id string) group.ShareSettings {
	s := b.groupSettings(id)
	return group.ShareSettings{
		HeartbeatInterval: s.ShareHeartbeatInterval,
		SessionTimeout:    s.ShareSessionTimeout,
		MaxSize:           b.shareSettings().MaxSize,
	}
}

// consumerGroupSettings gives a KIP-848 group's own
// consumer.heartbeat.interval.ms and consumer.session.timeout.ms (zero for
// those it does not set, so the coordinator's broker-wide values apply).
func (b *Broker) consumerGroupSettings(id string) (heartbeat, session time.Duration) {
	s := b.groupSettings(id)
	if s.ConsumerOwn[0] {
		heartbeat = s.ConsumerHeartbeatInterval
	}
	if s.ConsumerOwn[1] {
		session = s.ConsumerSessionTimeout
	}
	return heartbeat, session
}
