package broker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/coordinator/txn"
	"github.com/sluicedev/sluice/internal/uniq"
	"github.com/sluicedev/sluice/protocol"
	"github.com/sluicedev/sluice/storage"
)

// markerSpec is one transaction's end as partition leaders write it.
type markerSpec struct {
	producerID       int64
	producerEpoch    int16
	commit           bool
	coordinatorEpoch int32
}

// markerTimeout bounds the replication of one marker (Kafka's leaders
// append WriteTxnMarkers with request.timeout.ms).
const markerTimeout = 30 * time.Second

// Bounds of the wait between rounds of marker writes that left partitions
// unwritten (no leader, leader moved, not enough replicas).
const (
	markerRetryMin = 20 * time.Millisecond
	markerRetryMax = time.Second
)

// markerWriter is the transaction coordinator's txn.MarkerWriter: it has
// each partition's leader write the marker, in process when that is this
// broker and with WriteTxnMarkers over a peer connection otherwise, as
// Kafka's TransactionMarkerChannelManager does, and retries what is left
// until every partition has its marker.
type markerWriter struct{ b *Broker }

// WriteMarkers returns nil once every partition of m has its marker or its
// topic is gone, ErrCoordinatorFenced (wrapped) when a leader refused the
// marker's epochs, another error for an answer that retrying cannot fix
// (the coordinator logs it and tries again later), or ctx's error.
func (w markerWriter) WriteMarkers(ctx context.Context, m txn.Marker) error {
	b := w.b
	spec := markerSpec{producerID: m.ProducerID, producerEpoch: m.ProducerEpoch, commit: m.Commit, coordinatorEpoch: m.CoordinatorEpoch}
	pending := uniq.By(m.Partitions, func(tp txn.TopicPartition) txn.TopicPartition { return tp })
	wait := markerRetryMin
	for {
		byLeader := map[int32][]txn.TopicPartition{}
		for _, tp := range pending {
			ts := b.topics.get(tp.Topic)
			if ts == nil || tp.Partition >= ts.meta().Partitions {
				continue // deleted: nothing left to mark
			}
			leader := b.leaderOf(ts.meta(), tp.Partition)
			byLeader[leader] = append(byLeader[leader], tp)
		}
		left, err := b.markersRound(ctx, spec, m.TransactionVersion, byLeader)
		if err != nil || len(left) == 0 {
			return err
		}
		pending = left
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("write markers of %q: %w", m.TransactionalID, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, markerRetryMax)
	}
}

// markersRound asks every leader, in parallel, to write the marker to its
// partitions and returns the partitions to try again.
func (b *Broker) markersRound(ctx context.Context, spec markerSpec, version int8, byLeader map[int32][]txn.TopicPartition) ([]txn.TopicPartition, error) {
	var (
		mu     sync.Mutex
		left   []txn.TopicPartition
		failed error
		wg     sync.WaitGroup
	)
	for leader, tps := range byLeader {
		if leader < 0 {
			left = append(left, tps...)
			continue
		}
		wg.Go(func() {
			codes := b.markersVia(ctx, leader, spec, version, tps)
			mu.Lock()
			defer mu.Unlock()
			for i, tp := range tps {
				switch code := codes[i]; {
				case markerDone(code):
				case code == kerr.TransactionCoordinatorFenced.Code || code == kerr.InvalidProducerEpoch.Code:
					failed = fmt.Errorf("marker for %s-%d refused with error %d: %w", tp.Topic, tp.Partition, code, txn.ErrCoordinatorFenced)
				case markerRetriable(code):
					left = append(left, tp)
				case failed == nil:
					failed = fmt.Errorf("marker for %s-%d failed with error %d", tp.Topic, tp.Partition, code)
				}
			}
		})
	}
	wg.Wait()
	return left, failed
}

// markerDone reports whether a partition's answer ends its marker: written,
// or a partition that cannot hold one (Kafka's TransactionMarkerChannelManager).
func markerDone(code int16) bool {
	return code == 0 || code == kerr.UnsupportedForMessageFormat.Code || code == kerr.UnsupportedVersion.Code
}

// markerRetriable reports whether a partition's answer means trying again,
// with the leader of the moment: leadership moving, replicas or the log
// directory unavailable, the connection lost, the group coordinator
// loading, or a topic this broker has not seen deleted yet.
func markerRetriable(code int16) bool {
	switch code {
	case kerr.NotLeaderForPartition.Code, kerr.NotEnoughReplicas.Code, kerr.NotEnoughReplicasAfterAppend.Code,
		kerr.RequestTimedOut.Code, kerr.KafkaStorageError.Code, kerr.NetworkException.Code,
		kerr.CoordinatorNotAvailable.Code, kerr.NotCoordinator.Code, kerr.CoordinatorLoadInProgress.Code,
		kerr.UnknownTopicOrPartition.Code:
		return true
	}
	return false
}

// markersVia has broker node write the marker to tps and returns one error
// code per partition; a failed round trip answers NETWORK_EXCEPTION for all.
func (b *Broker) markersVia(ctx context.Context, node int32, spec markerSpec, version int8, tps []txn.TopicPartition) []int16 {
	if node == b.cfg.NodeID {
		return b.writeMarkersLocal(ctx, spec, tps)
	}
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	req.Version = 2
	mk := kmsg.NewWriteTxnMarkersRequestMarker()
	mk.ProducerID, mk.ProducerEpoch, mk.Committed = spec.producerID, spec.producerEpoch, spec.commit
	mk.CoordinatorEpoch, mk.TransactionVersion = spec.coordinatorEpoch, version
	txn.GroupByTopic(tps, func(topic string, idx []int) {
		t := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
		t.Topic = topic
		for _, i := range idx {
			t.Partitions = append(t.Partitions, tps[i].Partition)
		}
		mk.Topics = append(mk.Topics, t)
	})
	req.Markers = append(req.Markers, mk)
	raw, err := b.peers.roundTrip(ctx, b, node, req)
	if err != nil {
		b.log.Debug("WriteTxnMarkers round trip failed", "node", node, "err", err)
		return sameCode(len(tps), kerr.NetworkException.Code)
	}
	got := map[txn.TopicPartition]int16{}
	for _, m := range raw.(*kmsg.WriteTxnMarkersResponse).Markers {
		for _, t := range m.Topics {
			for _, p := range t.Partitions {
				got[txn.TopicPartition{Topic: t.Topic, Partition: p.Partition}] = p.ErrorCode
			}
		}
	}
	return codesInOrder(tps, got)
}

// sameCode answers n partitions with one code.
func sameCode(n int, code int16) []int16 {
	codes := make([]int16, n)
	for i := range codes {
		codes[i] = code
	}
	return codes
}

// codesInOrder answers each of tps with its code in got, in tps order;
// a partition the answer left out gets UNKNOWN_SERVER_ERROR.
func codesInOrder(tps []txn.TopicPartition, got map[txn.TopicPartition]int16) []int16 {
	codes := make([]int16, len(tps))
	for i, tp := range tps {
		code, ok := got[tp]
		if !ok {
			code = kerr.UnknownServerError.Code
		}
		codes[i] = code
	}
	return codes
}

// pendingMarker is a marker appended here whose replication is awaited.
type pendingMarker struct {
	i     int
	p     *partition
	res   storage.AppendResult
	acked <-chan error
}

// writeMarkersLocal appends the marker to each of tps that this broker
// leads and waits until each is as durable as an acks=all produce. It
// returns one error code per partition. Markers on __consumer_offsets go
// through the group coordinator, which applies them to its pending offset
// commits in the same order as the log.
func (b *Broker) writeMarkersLocal(ctx context.Context, spec markerSpec, tps []txn.TopicPartition) []int16 {
	codes := make([]int16, len(tps))
	raw := protocol.MarkerBatch(spec.producerID, spec.producerEpoch, spec.commit, spec.coordinatorEpoch, time.Now().UnixMilli())
	var waits []pendingMarker
	var offsets []int
	for i, tp := range tps {
		p, code := b.markerTarget(tp)
		if code != 0 {
			codes[i] = code
			continue
		}
		if tp.Topic == offsetsTopic {
			offsets = append(offsets, i)
			continue
		}
		// Each append gets its own copy: the leader rewrites the offset
		// and leader epoch in place.
		res, acked, err := p.rep.appendLeader(append([]byte(nil), raw...), storage.AppendOptions{}, -1, markerTimeout)
		if err != nil {
			codes[i] = appendErrorCode(err)
			continue
		}
		waits = append(waits, pendingMarker{i: i, p: p, res: res, acked: acked})
	}
	for _, i := range offsets {
		p, _ := b.markerTarget(tps[i])
		err := b.coord.CompleteTxn(ctx, tps[i].Partition, spec.producerID, spec.commit, func(ctx context.Context) error {
			return b.appendDurably(ctx, p, append([]byte(nil), raw...), markerTimeout)
		})
		codes[i] = markerCode(err)
	}
	for _, w := range waits {
		codes[w.i] = b.awaitMarker(ctx, w)
	}
	for _, code := range codes {
		b.txnMetrics.markerWritten(spec.commit, code)
	}
	return codes
}

// markerTarget finds the partition a marker goes to, led here.
func (b *Broker) markerTarget(tp txn.TopicPartition) (*partition, int16) {
	ts := b.topics.get(tp.Topic)
	if ts == nil || tp.Partition < 0 || tp.Partition >= ts.meta().Partitions {
		return nil, kerr.UnknownTopicOrPartition.Code
	}
	p := ts.partition(tp.Partition)
	if p == nil || !p.rep.leading.Load() {
		return nil, kerr.NotLeaderForPartition.Code
	}
	return p, 0
}

// awaitMarker waits for an appended marker's fsync (flush.messages) and
// replication.
func (b *Broker) awaitMarker(ctx context.Context, w pendingMarker) int16 {
	if w.res.NeedsSync {
		if err := w.p.log.Sync(ctx, w.res.LastOffset); err != nil {
			return kerr.KafkaStorageError.Code
		}
	}
	select {
	case err := <-w.acked:
		return errorCode(err)
	case <-ctx.Done():
		return kerr.RequestTimedOut.Code
	}
}

// markerCode maps the outcome of a durable marker append.
func markerCode(err error) int16 {
	if err == nil {
		return 0
	}
	return appendErrorCode(err)
}
