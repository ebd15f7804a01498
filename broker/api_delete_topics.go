package broker

// DeleteTopics: v0-6.
//
// The deleted topic's partitions count against controller_mutation_rate
// (KIP-599): from v5 a topic is refused with THROTTLING_QUOTA_EXCEEDED while
// the quota is exhausted; older versions are served and throttled.
//
// Topics are named, or from v6 named or identified by topic id (KIP-516).
// The etcd record goes first; every broker then drops its partitions when
// the deletion reaches its watch. Data is renamed away at once and removed
// in the background, so other partitions are never blocked. As in Kafka, a
// name or id given more than once is answered once with INVALID_REQUEST and
// not deleted, and so is an entry with both a name and an id, or neither.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/broker/quota"
	"github.com/sluicedev/sluice/metadata"
)

func (b *Broker) deleteTopicsAPI() api {
	return api{key: 20, min: 0, max: 6, handle: b.handleDeleteTopics}
}

func (b *Broker) handleDeleteTopics(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.DeleteTopicsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	targets := req.Topics
	if req.Version < 6 {
		targets = nil
		for _, n := range req.TopicNames {
			targets = append(targets, kmsg.DeleteTopicsRequestTopic{Topic: kmsg.StringPtr(n)})
		}
	}
	mq := b.mutationQuota(r, req.Version >= 5)
	dupNames := repeated(len(targets), func(i int) string {
		if t := targets[i].Topic; t != nil {
			return "n" + *t
		}
		return "i" + string(targets[i].TopicID[:])
	})
	var once onceSet
	for _, t := range targets {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic, st.TopicID = t.Topic, t.TopicID
		switch {
		case t.Topic != nil && t.TopicID != [16]byte{}:
			st.ErrorCode, st.ErrorMessage = kerr.InvalidRequest.Code, kmsg.StringPtr("You may not specify both topic name and topic id.")
		case t.Topic == nil && t.TopicID == [16]byte{}:
			st.ErrorCode, st.ErrorMessage = kerr.InvalidRequest.Code, kmsg.StringPtr("Neither topic name nor id were specified.")
		case t.Topic != nil && dupNames["n"+*t.Topic]:
			if !once.first("n" + *t.Topic) {
				continue // a repeated name is answered once, as in Kafka
			}
			st.ErrorCode, st.ErrorMessage = kerr.InvalidRequest.Code, kmsg.StringPtr("Duplicate topic name.")
		case t.Topic == nil && dupNames["i"+string(t.TopicID[:])]:
			if !once.first("i" + string(t.TopicID[:])) {
				continue
			}
			st.ErrorCode, st.ErrorMessage = kerr.InvalidRequest.Code, kmsg.StringPtr("Duplicate topic id.")
		default:
			st.ErrorCode, st.ErrorMessage = b.deleteTopic(ctx, t, &st, mq)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

func (b *Broker) deleteTopic(ctx context.Context, t kmsg.DeleteTopicsRequestTopic, st *kmsg.DeleteTopicsResponseTopic, mq *quota.Mutations) (int16, *string) {
	if !b.settings.brokerBool("delete.topic.enable") {
		return kerr.TopicDeletionDisabled.Code, nil
	}
	var ts *topicState
	if t.Topic != nil {
		ts = b.topics.get(*t.Topic)
		if ts == nil {
			return kerr.UnknownTopicOrPartition.Code, nil
		}
	} else {
		ts = b.topics.getID(t.TopicID)
		if ts == nil {
			return kerr.UnknownTopicID.Code, nil
		}
	}
	st.Topic, st.TopicID = kmsg.StringPtr(ts.meta().Name), ts.meta().ID
	if isInternalTopic(ts.meta().Name) {
		return kerr.InvalidTopicException.Code, kmsg.StringPtr("internal topics cannot be deleted")
	}
	if code, msg := admitMutations(mq, ts.meta().Partitions); code != 0 {
		return code, msg
	}
	err := b.meta.DeleteTopic(ctx, ts.meta().Name)
	switch {
	case errors.Is(err, metadata.ErrTopicNotFound):
		return kerr.UnknownTopicOrPartition.Code, nil
	case err != nil:
		b.log.Error("delete topic", "topic", ts.meta().Name, "err", err)
		return kerr.UnknownServerError.Code, kmsg.StringPtr(err.Error())
	}
	b.dropTopic(ts.meta().Name, ts.meta().ID)
	b.log.Info("topic deleted", "topic", ts.meta().Name)
	return 0, nil
}
