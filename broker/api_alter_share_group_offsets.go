package broker

// AlterShareGroupOffsets: v0 (KIP-932).
//
// Sets the share-partition start offset of partitions of an empty share
// group (NON_EMPTY_GROUP while it has members): each partition's state is
// initialized at the share coordinator with a new state epoch, the start
// offset and no in-flight records, so the partition leader's next write is
// fenced and it reads the new state. Errors per partition: an unknown
// topic or partition UNKNOWN_TOPIC_OR_PARTITION, a negative start offset
// INVALID_REQUEST, and the share coordinator's errors as they are. A
// group id of another group type gets GROUP_ID_NOT_FOUND; a group that
// does not exist yet is not an error (Kafka creates it; here its state is
// set and the group appears with its first member). Repeated topics and
// partitions are answered once.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/coordinator/share"
	"github.com/sluicedev/sluice/internal/uniq"
)

func (b *Broker) alterShareGroupOffsetsAPI() api {
	return api{key: 91, min: 0, max: 0, handle: b.handleAlterShareGroupOffsets}
}

func (b *Broker) handleAlterShareGroupOffsets(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.AlterShareGroupOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.AlterShareGroupOffsetsResponse)
	if code := b.emptyShareGroupCode(req.GroupID, true); code != 0 {
		resp.ErrorCode = code
		return resp, nil
	}
	// As Kafka, altering the offsets of a group that does not exist creates
	// it (empty), and the topics altered become the group's, so that
	// DescribeShareGroupOffsets for all topics shows them.
	var known []string
	for _, rt := range uniq.By(req.Topics, func(t kmsg.AlterShareGroupOffsetsRequestTopic) string { return t.Topic }) {
		if b.topics.get(rt.Topic) != nil {
			known = append(known, rt.Topic)
		}
	}
	if code := b.coord.EnsureShareGroup(ctx, req.GroupID, known); code != 0 {
		resp.ErrorCode = code
		return resp, nil
	}
	for _, rt := range uniq.By(req.Topics, func(t kmsg.AlterShareGroupOffsetsRequestTopic) string { return t.Topic }) {
		t := kmsg.NewAlterShareGroupOffsetsResponseTopic()
		t.Topic = rt.Topic
		ts := b.topics.get(rt.Topic)
		if ts != nil {
			t.TopicID = ts.meta().ID
		}
		for _, rp := range uniq.By(rt.Partitions, func(p kmsg.AlterShareGroupOffsetsRequestTopicPartition) int32 { return p.Partition }) {
			p := kmsg.NewAlterShareGroupOffsetsResponseTopicPartition()
			p.Partition = rp.Partition
			switch {
			case ts == nil || rp.Partition < 0 || rp.Partition >= ts.meta().Partitions:
				p.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case rp.StartOffset < 0:
				p.ErrorCode = kerr.InvalidRequest.Code
			case ctx.Err() != nil:
				p.ErrorCode = kerr.RequestTimedOut.Code
			default:
				k := share.Key{Group: req.GroupID, TopicID: t.TopicID, Partition: rp.Partition}
				if err := b.resetShareState(ctx, k, rp.StartOffset); err != nil {
					p.ErrorCode = shareErrorCode(err)
				}
			}
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	return resp, nil
}

// emptyShareGroupCode is the group-level error of the share-group offset
// changes: the group must be a share group (GROUP_ID_NOT_FOUND otherwise)
// without members (NON_EMPTY_GROUP). missingOK accepts a group that does
// not exist.
func (b *Broker) emptyShareGroupCode(group string, missingOK bool) int16 {
	if !b.shareEnabled() {
		return kerr.UnsupportedVersion.Code
	}
	if group == "" {
		return kerr.InvalidGroupID.Code
	}
	info, code := b.coord.ShareGroup(group)
	switch code {
	case 0:
		if !info.Empty {
			return kerr.NonEmptyGroup.Code
		}
		return 0
	case kerr.GroupIDNotFound.Code:
		if missingOK {
			return 0
		}
		return code
	case kerr.InconsistentGroupProtocol.Code:
		return kerr.GroupIDNotFound.Code
	}
	return code
}

// resetShareState initializes k at startOffset with a state epoch above
// the stored one; a concurrent change of the epoch is retried once.
func (b *Broker) resetShareState(ctx context.Context, k share.Key, startOffset int64) error {
	var err error
	for range 2 {
		sum, found, serr := b.shareStateSummary(ctx, k)
		if serr != nil {
			return serr
		}
		epoch := int32(1)
		if found || sum.StateEpoch > 0 {
			epoch = sum.StateEpoch + 1
		}
		err = b.initializeShareState(ctx, k, epoch, startOffset)
		if !errors.Is(err, errShareStateFenced) {
			return err
		}
	}
	return err
}
