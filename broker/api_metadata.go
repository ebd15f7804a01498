package broker

// Metadata: v0-12.
//
// v0 asks for all topics with an empty list; v1+ uses null for all and empty
// for none. Unknown topics are created when the broker allows it
// (auto.create.topics.enable) and the request does too (AllowAutoTopicCreation,
// v4+; implied before). As in Kafka, a topic created by the request is
// answered with LEADER_NOT_AVAILABLE and no partitions: clients retry, and
// the next answer lists its partitions with their leaders. A partition
// without a live leader is always LEADER_NOT_AVAILABLE, never leader -1
// with no error. Topic ids appear from v10 and may be used to ask
// for topics from v12 (KIP-516). Authorized operations (v8+) are reported as
// unknown (INT32_MIN) because Sluice has no ACLs yet. A topic named (or
// identified) more than once is answered once, as Kafka answers the set of
// topics asked for.

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/internal/uniq"
)

func (b *Broker) metadataAPI() api { return api{key: 3, min: 0, max: 12, handle: b.handleMetadata} }

const authorizedOpsUnknown = -2147483648

func (b *Broker) handleMetadata(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	for _, br := range b.liveBrokers() {
		mb := kmsg.NewMetadataResponseBroker()
		mb.NodeID, mb.Host, mb.Port = br.NodeID, br.Host, br.Port
		if br.Rack != "" {
			mb.Rack = kmsg.StringPtr(br.Rack)
		}
		resp.Brokers = append(resp.Brokers, mb)
	}
	resp.ClusterID = kmsg.StringPtr(b.clusterID)
	resp.ControllerID = b.controllerID()
	resp.AuthorizedOperations = authorizedOpsUnknown

	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if all {
		for _, ts := range b.topics.all() {
			resp.Topics = append(resp.Topics, b.describeTopic(ts))
		}
		return resp, nil
	}
	autoCreate := (req.Version < 4 || req.AllowAutoTopicCreation) && b.settings.brokerBool("auto.create.topics.enable")
	// Auto-creation writes what a CreateTopics would, so one request
	// creates no more than maxRecordsPerUserOp records' worth of topics,
	// as Kafka's controller takes them in one batch; the rest are
	// UNKNOWN_TOPIC_OR_PARTITION and may be asked for again.
	budget := int64(maxRecordsPerUserOp)
	perTopic := 1 + b.settings.brokerInt64("num.partitions", 1)
	for _, rt := range uniqueMetadataTopics(req.Topics) {
		create := autoCreate
		if create && rt.Topic != nil && validTopicName(*rt.Topic) == nil && b.topics.get(*rt.Topic) == nil {
			budget -= perTopic
			create = budget >= 0
		}
		resp.Topics = append(resp.Topics, b.metadataTopic(ctx, rt, create))
	}
	return resp, nil
}

// uniqueMetadataTopics drops repeats of a topic name, or of a topic id for
// entries without a name, keeping the first of each.
func uniqueMetadataTopics(ts []kmsg.MetadataRequestTopic) []kmsg.MetadataRequestTopic {
	if len(ts) < 2 {
		return ts
	}
	names := make(map[string]bool, uniq.SizeHint(len(ts)))
	ids := map[[16]byte]bool{}
	out := make([]kmsg.MetadataRequestTopic, 0, uniq.SizeHint(len(ts)))
	for _, t := range ts {
		if t.Topic != nil {
			if names[*t.Topic] {
				continue
			}
			names[*t.Topic] = true
		} else {
			if ids[t.TopicID] {
				continue
			}
			ids[t.TopicID] = true
		}
		out = append(out, t)
	}
	return out
}

func (b *Broker) metadataTopic(ctx context.Context, rt kmsg.MetadataRequestTopic, autoCreate bool) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	mt.AuthorizedOperations = authorizedOpsUnknown
	if rt.Topic == nil {
		mt.TopicID = rt.TopicID
		ts := b.topics.getID(rt.TopicID)
		if ts == nil {
			mt.ErrorCode = kerr.UnknownTopicID.Code
			return mt
		}
		return b.describeTopic(ts)
	}
	name := *rt.Topic
	mt.Topic = kmsg.StringPtr(name)
	if err := validTopicName(name); err != nil {
		mt.ErrorCode = kerr.InvalidTopicException.Code
		return mt
	}
	ts := b.topics.get(name)
	if ts == nil && autoCreate && !isInternalTopic(name) {
		code, _ := b.autoCreateTopic(ctx, name)
		if code == 0 {
			// Created by this request: Kafka answers LEADER_NOT_AVAILABLE
			// with no partitions until its metadata has them.
			mt.ErrorCode = kerr.LeaderNotAvailable.Code
			return mt
		}
		if code != kerr.TopicAlreadyExists.Code {
			mt.ErrorCode = code
			return mt
		}
		ts = b.topics.get(name)
	}
	if ts == nil {
		mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
		return mt
	}
	return b.describeTopic(ts)
}

// describeTopic reports a topic's partitions from their records: leader
// and leader epoch, the assignment, the ISR, and the replicas on brokers
// that are not live. A partition without a leader (offline, or whose
// first record is not written yet) is LEADER_NOT_AVAILABLE, as in Kafka.
func (b *Broker) describeTopic(ts *topicState) kmsg.MetadataResponseTopic {
	m := ts.meta()
	mt := kmsg.NewMetadataResponseTopic()
	mt.Topic = kmsg.StringPtr(m.Name)
	mt.TopicID = m.ID
	mt.IsInternal = isInternalTopic(m.Name)
	mt.AuthorizedOperations = authorizedOpsUnknown
	live := b.liveSet()
	for p := int32(0); p < m.Partitions; p++ {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p
		mp.Replicas = slices.Clone(replicasFor(m, p))
		if mp.Replicas == nil {
			mp.Replicas = []int32{}
		}
		mp.ISR = []int32{}
		mp.OfflineReplicas = []int32{}
		for _, id := range mp.Replicas {
			if !live[id] {
				mp.OfflineReplicas = append(mp.OfflineReplicas, id)
			}
		}
		mp.Leader, mp.LeaderEpoch = -1, -1
		if st, ok := b.partitionState(m.Name, p); ok {
			mp.Leader, mp.LeaderEpoch = st.Leader, st.LeaderEpoch
			mp.ISR = slices.Clone(st.ISR)
		}
		if mp.Leader < 0 || !live[mp.Leader] {
			mp.Leader = -1
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
		}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

// autoCreateTopic creates name with the broker's defaults.
func (b *Broker) autoCreateTopic(ctx context.Context, name string) (int16, *string) {
	spec := topicSpec{
		name:              name,
		partitions:        int32(b.settings.brokerInt64("num.partitions", 1)),
		replicationFactor: int16(b.settings.brokerInt64("default.replication.factor", 1)),
	}
	_, code, msg := b.createTopicFromSpec(ctx, spec, false)
	return code, msg
}
