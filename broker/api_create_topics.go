package broker

// CreateTopics: v0-7.
//
// Created partitions count against the client's controller_mutation_rate
// (KIP-599): from v6 a topic is refused with THROTTLING_QUOTA_EXCEEDED while
// the quota is exhausted; older versions are created and the response is
// throttled. ValidateOnly requests use no quota.
//
// NumPartitions and ReplicationFactor of -1 take num.partitions and
// default.replication.factor (KIP-464, v4+). Configs are validated against
// the topic settings Sluice knows (INVALID_CONFIG names the bad one).
// ValidateOnly (v1+) runs every check and creates nothing. From v5 the
// response echoes the partition count, replication factor and the resolved
// configs with their sources; v7 adds the topic id (KIP-516). A name given
// more than once is answered once with INVALID_REQUEST and not created; a
// request that would write more than maxRecordsPerUserOp records (a topic,
// its partitions and configs each count one) creates nothing and every
// topic gets POLICY_VIOLATION, as from Kafka's controller.
//
// The first records of the new partitions are written in a few etcd
// transactions, and the answer waits, up to TimeoutMillis, until this
// broker's metadata cache and every other live broker's Metadata give
// every partition a leader, so a client's next Metadata request finds the
// topic complete whichever broker it asks.

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/broker/quota"
	"github.com/sluicedev/sluice/metadata"
	"github.com/sluicedev/sluice/replication"
)

func (b *Broker) createTopicsAPI() api {
	return api{key: 19, min: 0, max: 7, handle: b.handleCreateTopics}
}

// topicSpec is a topic to create, from CreateTopics or auto-creation.
type topicSpec struct {
	name              string
	partitions        int32
	replicationFactor int16
	assignment        [][]int32
	configs           map[string]string
	// mutations is the request's controller mutation quota (KIP-599);
	// nil for auto-created topics.
	mutations *quota.Mutations
}

func (b *Broker) handleCreateTopics(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.CreateTopicsRequest)
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	mq := b.mutationQuota(r, req.Version >= 6)
	waitCtx, cancel := context.WithTimeout(ctx, time.Duration(max(req.TimeoutMillis, 0))*time.Millisecond)
	defer cancel()
	dup := repeated(len(req.Topics), func(i int) string { return req.Topics[i].Topic })
	tooLarge := b.createRecords(req.Topics, dup) > maxRecordsPerUserOp
	var once onceSet
	for _, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		st.NumPartitions, st.ReplicationFactor = -1, -1
		if dup[rt.Topic] {
			if once.first(rt.Topic) { // a repeated name is answered once, as in Kafka
				st.ErrorCode, st.ErrorMessage = kerr.InvalidRequest.Code, kmsg.StringPtr("Duplicate topic name.")
				resp.Topics = append(resp.Topics, st)
			}
			continue
		}
		if tooLarge {
			st.ErrorCode, st.ErrorMessage = policyViolationTooLarge()
			resp.Topics = append(resp.Topics, st)
			continue
		}
		spec, code, msg := b.specFromRequest(rt)
		spec.mutations = mq
		if code == 0 {
			var created metadata.Topic
			created, code, msg = b.createTopicFromSpec(ctx, spec, req.ValidateOnly)
			if code == 0 {
				b.fillCreatedTopic(&st, created)
				if !req.ValidateOnly && req.TimeoutMillis > 0 {
					if !b.awaitLeaders(waitCtx, created.Name, created.Partitions) {
						b.log.Warn("created topic without leaders for every partition within the request's timeout",
							"topic", created.Name, "timeout_ms", req.TimeoutMillis)
					} else if !b.awaitPeersSeeTopic(waitCtx, created.Name, created.Partitions) {
						b.log.Warn("created topic not yet complete in every broker's metadata within the request's timeout",
							"topic", created.Name, "timeout_ms", req.TimeoutMillis)
					}
				}
			}
		}
		st.ErrorCode, st.ErrorMessage = code, msg
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

// createRecords counts what creating the topics not in dup and not already
// there would write, as Kafka's controller counts records: one for the
// topic, one per partition and one per config. The count is taken before
// any work, so a request for billions of partitions costs nothing.
func (b *Broker) createRecords(topics []kmsg.CreateTopicsRequestTopic, dup map[string]bool) int64 {
	var n int64
	for _, rt := range topics {
		if dup[rt.Topic] || b.topics.get(rt.Topic) != nil {
			continue // not created: nothing to write
		}
		parts := int64(rt.NumPartitions)
		switch {
		case len(rt.ReplicaAssignment) > 0:
			parts = int64(len(rt.ReplicaAssignment))
		case parts == -1:
			parts = b.settings.brokerInt64("num.partitions", 1)
		}
		n += 1 + max(parts, 0) + int64(len(rt.Configs))
	}
	return n
}

func (b *Broker) fillCreatedTopic(st *kmsg.CreateTopicsResponseTopic, t metadata.Topic) {
	st.TopicID = t.ID
	st.NumPartitions = t.Partitions
	st.ReplicationFactor = t.ReplicationFactor
	for _, name := range b.settings.reg.topicOrder {
		res := b.settings.topic(name, t.Configs)
		c := kmsg.NewCreateTopicsResponseTopicConfig()
		c.Name, c.Value, c.Source = name, kmsg.StringPtr(res.value), int8(res.source)
		st.Configs = append(st.Configs, c)
	}
}

// specFromRequest applies defaults and checks the shape of a request topic.
func (b *Broker) specFromRequest(rt kmsg.CreateTopicsRequestTopic) (topicSpec, int16, *string) {
	spec := topicSpec{name: rt.Topic, partitions: rt.NumPartitions, replicationFactor: rt.ReplicationFactor, configs: map[string]string{}}
	for _, c := range rt.Configs {
		if c.Value == nil {
			continue
		}
		spec.configs[c.Name] = *c.Value
	}
	if len(rt.ReplicaAssignment) > 0 {
		if rt.NumPartitions != -1 || rt.ReplicationFactor != -1 {
			return spec, kerr.InvalidRequest.Code, kmsg.StringPtr("both numPartitions or replicationFactor and replicasAssignments were set")
		}
		assign := make([][]int32, len(rt.ReplicaAssignment))
		for _, a := range rt.ReplicaAssignment {
			if a.Partition < 0 || int(a.Partition) >= len(assign) || assign[a.Partition] != nil {
				return spec, kerr.InvalidReplicaAssignment.Code, kmsg.StringPtr("partitions must be numbered 0 to n-1, each once")
			}
			assign[a.Partition] = a.Replicas
		}
		spec.assignment = assign
		spec.partitions = int32(len(assign))
		spec.replicationFactor = int16(len(assign[0]))
		return spec, 0, nil
	}
	if spec.partitions == -1 {
		spec.partitions = int32(b.settings.brokerInt64("num.partitions", 1))
	}
	if spec.replicationFactor == -1 {
		spec.replicationFactor = int16(b.settings.brokerInt64("default.replication.factor", 1))
	}
	return spec, 0, nil
}

// createTopicFromSpec validates spec and, unless validateOnly, creates it.
func (b *Broker) createTopicFromSpec(ctx context.Context, spec topicSpec, validateOnly bool) (metadata.Topic, int16, *string) {
	t := metadata.Topic{Name: spec.name, Partitions: spec.partitions, ReplicationFactor: spec.replicationFactor, Configs: spec.configs}
	if err := validTopicName(spec.name); err != nil {
		return t, kerr.InvalidTopicException.Code, kmsg.StringPtr(err.Error())
	}
	if b.topics.get(spec.name) != nil {
		return t, kerr.TopicAlreadyExists.Code, kmsg.StringPtr(fmt.Sprintf("topic %q already exists", spec.name))
	}
	if spec.partitions <= 0 {
		return t, kerr.InvalidPartitions.Code, kmsg.StringPtr("number of partitions must be larger than 0")
	}
	if 1+int64(spec.partitions)+int64(len(spec.configs)) > maxRecordsPerUserOp {
		// Also bounds auto-creation, whose partition count is num.partitions.
		code, msg := policyViolationTooLarge()
		return t, code, msg
	}
	if spec.replicationFactor <= 0 {
		return t, kerr.InvalidReplicationFactor.Code, kmsg.StringPtr("replication factor must be larger than 0")
	}
	if err := b.settings.validateTopicConfigs(spec.configs); err != nil {
		return t, kerr.InvalidConfig.Code, kmsg.StringPtr(err.Error())
	}
	assign, code, msg := b.assignReplicas(spec, 0)
	if code != 0 {
		return t, code, msg
	}
	t.Replicas = assign
	if validateOnly {
		return t, 0, nil
	}
	if code, msg := admitMutations(spec.mutations, spec.partitions); code != 0 {
		return t, code, msg
	}
	created, err := b.createTopic(ctx, t)
	switch {
	case errors.Is(err, metadata.ErrTopicExists):
		return t, kerr.TopicAlreadyExists.Code, kmsg.StringPtr(fmt.Sprintf("topic %q already exists", spec.name))
	case err != nil:
		b.log.Error("create topic", "topic", spec.name, "err", err)
		return t, kerr.UnknownServerError.Code, kmsg.StringPtr(err.Error())
	}
	b.log.Info("topic created", "topic", spec.name, "partitions", created.Partitions, "replication_factor", created.ReplicationFactor)
	return created, 0, nil
}

// assignReplicas checks a manual assignment, or places replicas over the
// live brokers as Kafka does (replication.AssignReplicas: leaders and
// followers spread evenly, rack-aware when every broker has a rack).
// firstPartition continues an existing topic's placement (CreatePartitions).
func (b *Broker) assignReplicas(spec topicSpec, firstPartition int32) ([][]int32, int16, *string) {
	live := b.liveBrokers()
	known := map[int32]bool{}
	infos := make([]replication.BrokerInfo, 0, len(live))
	for _, br := range live {
		known[br.NodeID] = true
		infos = append(infos, replication.BrokerInfo{ID: br.NodeID, Rack: br.Rack})
	}
	if spec.assignment != nil {
		for _, reps := range spec.assignment {
			if len(reps) != int(spec.replicationFactor) {
				return nil, kerr.InvalidReplicaAssignment.Code, kmsg.StringPtr("all partitions must have the same number of replicas")
			}
			dup := map[int32]bool{}
			for _, r := range reps {
				if !known[r] || dup[r] {
					return nil, kerr.InvalidReplicaAssignment.Code, kmsg.StringPtr(fmt.Sprintf("replica %d is unknown or repeated", r))
				}
				dup[r] = true
			}
		}
		return spec.assignment, 0, nil
	}
	if int(spec.replicationFactor) > len(infos) {
		return nil, kerr.InvalidReplicationFactor.Code, kmsg.StringPtr(fmt.Sprintf("replication factor: %d larger than available brokers: %d", spec.replicationFactor, len(infos)))
	}
	// Kafka draws both choices at random; a hash of the name spreads
	// topics just as well and makes a placement reproducible.
	h := fnv.New32a()
	_, _ = h.Write([]byte(spec.name))
	seed := int(h.Sum32() & 0x7fffffff)
	out, err := replication.AssignReplicas(infos, spec.partitions, spec.replicationFactor, replication.AssignOptions{
		FirstPartition: firstPartition, StartIndex: seed % len(infos), ReplicaShift: (seed / len(infos)) % len(infos),
	})
	if err != nil {
		return nil, kerr.InvalidReplicationFactor.Code, kmsg.StringPtr(err.Error())
	}
	return out, 0, nil
}
