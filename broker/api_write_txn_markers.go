package broker

// WriteTxnMarkers: v1-2 (KIP-98; v2 carries the transaction version,
// KIP-890).
//
// Transaction coordinators send it to partition leaders to end a
// transaction: each partition gets a COMMIT or ABORT control batch of the
// producer, written with acks=all and answered once replicated. On
// __consumer_offsets the group coordinator applies the marker to the
// producer's pending offset commits. A marker whose producer epoch is older
// than the partition's gets INVALID_PRODUCER_EPOCH, one whose coordinator
// epoch is older TRANSACTION_COORDINATOR_FENCED, and nothing is written. A
// partition named twice in one marker, or a marker repeated whole, is
// written and answered once.
// Kafka reserves the API for brokers (CLUSTER_ACTION); Sluice has no
// authorizer yet, as Kafka without one.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/coordinator/txn"
	"github.com/sluicedev/sluice/internal/uniq"
)

func (b *Broker) writeTxnMarkersAPI() api {
	return api{key: 27, min: 1, max: 2, handle: b.handleWriteTxnMarkers}
}

func (b *Broker) handleWriteTxnMarkers(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.WriteTxnMarkersRequest)
	resp := req.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
	// A marker repeated whole (same producer, epochs and outcome) is
	// written and answered once, its partitions merged.
	order, byMarker := []markerSpec{}, map[markerSpec][]txn.TopicPartition{}
	for _, m := range req.Markers {
		spec := markerSpec{producerID: m.ProducerID, producerEpoch: m.ProducerEpoch, commit: m.Committed, coordinatorEpoch: m.CoordinatorEpoch}
		if _, ok := byMarker[spec]; !ok {
			order = append(order, spec)
		}
		for _, t := range m.Topics {
			for _, p := range t.Partitions {
				byMarker[spec] = append(byMarker[spec], txn.TopicPartition{Topic: t.Topic, Partition: p})
			}
		}
	}
	for _, spec := range order {
		tps := uniq.By(byMarker[spec], func(tp txn.TopicPartition) txn.TopicPartition { return tp })
		codes := b.writeMarkersLocal(ctx, spec, tps)
		resp.Markers = append(resp.Markers, markerResponse(spec.producerID, tps, codes))
	}
	return resp, nil
}

// markerResponse answers one marker's partitions, grouped by topic.
func markerResponse(producerID int64, tps []txn.TopicPartition, codes []int16) kmsg.WriteTxnMarkersResponseMarker {
	rm := kmsg.NewWriteTxnMarkersResponseMarker()
	rm.ProducerID = producerID
	txn.GroupByTopic(tps, func(topic string, idx []int) {
		rt := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
		rt.Topic = topic
		for _, i := range idx {
			rp := kmsg.NewWriteTxnMarkersResponseMarkerTopicPartition()
			rp.Partition, rp.ErrorCode = tps[i].Partition, codes[i]
			rt.Partitions = append(rt.Partitions, rp)
		}
		rm.Topics = append(rm.Topics, rt)
	})
	return rm
}
