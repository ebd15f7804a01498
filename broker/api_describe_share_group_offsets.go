package broker

// DescribeShareGroupOffsets: v0-1 (KIP-932; v1 adds the lag and a null
// topic list meaning every topic of the group, KIP-1226).
//
// For each share group this broker coordinates: per partition the
// share-partition start offset, the leader epoch the share coordinator
// recorded and (v1) the lag, the high watermark minus the start offset
// minus the offsets at or above it already acknowledged or archived. The
// start offset comes from the share coordinator's
// ReadShareGroupStateSummary. A partition without share state, of a topic
// that does not exist, or of a group that does not exist answers start
// offset -1 and lag -1 without an error, as Kafka's. A group id of another
// group type gets GROUP_ID_NOT_FOUND. Repeated groups, topics and
// partitions are answered once.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/coordinator/share"
	"github.com/sluicedev/sluice/internal/uniq"
)

func (b *Broker) describeShareGroupOffsetsAPI() api {
	return api{key: 90, min: 0, max: 1, handle: b.handleDescribeShareGroupOffsets}
}

func (b *Broker) handleDescribeShareGroupOffsets(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.DescribeShareGroupOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeShareGroupOffsetsResponse)
	for _, rg := range uniq.By(req.Groups, func(g kmsg.DescribeShareGroupOffsetsRequestGroup) string { return g.GroupID }) {
		resp.Groups = append(resp.Groups, b.describeShareGroupOffsets(ctx, req.Version, rg))
		if ctx.Err() != nil {
			break
		}
	}
	return resp, nil
}

// describeShareGroupOffsets answers one group.
func (b *Broker) describeShareGroupOffsets(ctx context.Context, version int16, rg kmsg.DescribeShareGroupOffsetsRequestGroup) kmsg.DescribeShareGroupOffsetsResponseGroup {
	g := kmsg.NewDescribeShareGroupOffsetsResponseGroup()
	g.GroupID = rg.GroupID
	if !b.shareEnabled() {
		g.ErrorCode = kerr.UnsupportedVersion.Code
		return g
	}
	info, code := b.coord.ShareGroup(rg.GroupID)
	exists := code == 0
	switch code {
	case 0, kerr.GroupIDNotFound.Code:
	case kerr.InconsistentGroupProtocol.Code:
		g.ErrorCode = kerr.GroupIDNotFound.Code
		return g
	default:
		g.ErrorCode = code
		return g
	}
	topics := rg.Topics
	if topics == nil && version >= 1 {
		for _, name := range info.Topics {
			topics = append(topics, kmsg.DescribeShareGroupOffsetsRequestGroupTopic{Topic: name, Partitions: b.allPartitions(name)})
		}
	}
	for _, rt := range uniq.By(topics, func(t kmsg.DescribeShareGroupOffsetsRequestGroupTopic) string { return t.Topic }) {
		t := kmsg.NewDescribeShareGroupOffsetsResponseGroupTopic()
		t.Topic = rt.Topic
		ts := b.topics.get(rt.Topic)
		if ts != nil {
			t.TopicID = ts.meta().ID
		}
		for _, p := range uniq.By(rt.Partitions, func(p int32) int32 { return p }) {
			rp := kmsg.NewDescribeShareGroupOffsetsResponseGroupTopicPartition()
			rp.Partition, rp.StartOffset, rp.Lag = p, -1, -1
			if exists && ts != nil && p >= 0 && p < ts.meta().Partitions && ctx.Err() == nil {
				b.describeSharePartition(ctx, share.Key{Group: rg.GroupID, TopicID: t.TopicID, Partition: p}, rt.Topic, &rp)
			}
			t.Partitions = append(t.Partitions, rp)
		}
		g.Topics = append(g.Topics, t)
	}
	return g
}

// allPartitions lists the partitions of topic, none when it does not exist.
func (b *Broker) allPartitions(topic string) []int32 {
	ts := b.topics.get(topic)
	if ts == nil {
		return nil
	}
	ps := make([]int32, ts.meta().Partitions)
	for i := range ps {
		ps[i] = int32(i)
	}
	return ps
}

// describeSharePartition fills one partition's start offset, leader epoch
// and lag from its share state summary and high watermark.
func (b *Broker) describeSharePartition(ctx context.Context, k share.Key, topic string, rp *kmsg.DescribeShareGroupOffsetsResponseGroupTopicPartition) {
	sum, found, err := b.shareStateSummary(ctx, k)
	if err != nil {
		rp.ErrorCode = shareErrorCode(err)
		return
	}
	if !found {
		return
	}
	rp.StartOffset, rp.LeaderEpoch = sum.StartOffset, sum.LeaderEpoch
	if hw, ok := b.highWatermark(ctx, topic, k.Partition); ok {
		rp.Lag = max(0, hw-sum.StartOffset-int64(max(sum.DeliveryCompleteCount, 0)))
	}
}

// highWatermark is the partition's high watermark: read here when this
// broker leads it, else asked of its leader with ListOffsets.
func (b *Broker) highWatermark(ctx context.Context, topic string, partition int32) (int64, bool) {
	ts := b.topics.get(topic)
	if ts == nil {
		return 0, false
	}
	if p := ts.partition(partition); p != nil {
		if hw, _, code := p.rep.readBound(-1); code == 0 {
			return hw, true
		}
	}
	leader := b.leaderOf(ts.meta(), partition)
	if leader < 0 || leader == b.cfg.NodeID {
		return 0, false
	}
	req := kmsg.NewPtrListOffsetsRequest()
	req.Version = 4
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = partition, -1, -1
	rt.Partitions = []kmsg.ListOffsetsRequestTopicPartition{rp}
	req.Topics = []kmsg.ListOffsetsRequestTopic{rt}
	raw, err := b.peers.roundTrip(ctx, b, leader, req)
	if err != nil {
		return 0, false
	}
	resp := raw.(*kmsg.ListOffsetsResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		return 0, false
	}
	return resp.Topics[0].Partitions[0].Offset, true
}

// shareErrorCode is the Kafka error code a share state call's error gives
// an admin client: the code it carries, else UNKNOWN_SERVER_ERROR.
func shareErrorCode(err error) int16 {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return kerr.RequestTimedOut.Code
	}
	return kerr.UnknownServerError.Code
}
