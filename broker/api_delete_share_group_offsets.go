package broker

// DeleteShareGroupOffsets: v0 (KIP-932).
//
// Deletes the share state of every partition of the named topics for an
// empty share group: the group must exist (GROUP_ID_NOT_FOUND, also for a
// group id of another type) and have no members (NON_EMPTY_GROUP). Per
// topic: UNKNOWN_TOPIC_OR_PARTITION for a topic that does not exist, else
// the share coordinator's error, if any. Repeated topics are answered once.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/internal/uniq"
)

func (b *Broker) deleteShareGroupOffsetsAPI() api {
	return api{key: 92, min: 0, max: 0, handle: b.handleDeleteShareGroupOffsets}
}

func (b *Broker) handleDeleteShareGroupOffsets(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.DeleteShareGroupOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteShareGroupOffsetsResponse)
	if code := b.emptyShareGroupCode(req.GroupID, false); code != 0 {
		resp.ErrorCode = code
		return resp, nil
	}
	for _, rt := range uniq.By(req.Topics, func(t kmsg.DeleteShareGroupOffsetsRequestTopic) string { return t.Topic }) {
		t := kmsg.NewDeleteShareGroupOffsetsResponseTopic()
		t.Topic = rt.Topic
		switch ts := b.topics.get(rt.Topic); {
		case ts == nil:
			t.ErrorCode = kerr.UnknownTopicOrPartition.Code
		case ctx.Err() != nil:
			t.TopicID = ts.meta().ID
			t.ErrorCode = kerr.RequestTimedOut.Code
		default:
			t.TopicID = ts.meta().ID
			if err := b.deleteShareGroupState(ctx, req.GroupID, []string{rt.Topic}); err != nil {
				t.ErrorCode = shareErrorCode(err)
			}
		}
		resp.Topics = append(resp.Topics, t)
	}
	return resp, nil
}
