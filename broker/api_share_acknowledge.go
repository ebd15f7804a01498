package broker

// ShareAcknowledge: v1-2 (KIP-932; v2 adds IsRenewAck, KIP-1222). v0 was
// Kafka 4.0's early access and is not served.
//
// Acknowledgements only, on the member's share session (share_session.go):
// it cannot open one (epoch 0 is INVALID_SHARE_SESSION_EPOCH), -1 closes
// the session after the acknowledgements are applied (releasing what the
// member still holds on its partitions), any other epoch must be the
// session's next. Each partition's outcome is its ErrorCode, answered once
// the state covering it is durable; partitions named several times are
// acknowledged once, with all their batches.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) shareAcknowledgeAPI() api {
	return api{key: 79, min: 1, max: 2, handle: b.handleShareAcknowledge}
}

func (b *Broker) handleShareAcknowledge(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.ShareAcknowledgeRequest)
	resp := req.ResponseKind().(*kmsg.ShareAcknowledgeResponse)
	m := b.shares
	if !b.shareEnabled() || m == nil {
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		return resp, nil
	}
	group, member := derefString(req.GroupID), derefString(req.MemberID)
	if group == "" || member == "" || len(member) > 36 {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp, nil
	}
	if req.Version >= 2 {
		resp.AcquisitionLockTimeoutMillis = int32(min(b.groupSettings(group).ShareRecordLockDuration.Milliseconds(), 1<<31-1))
	}
	renew := req.Version >= 2 && req.IsRenewAck
	n := 0
	for i := range req.Topics {
		n += len(req.Topics[i].Partitions)
	}
	acks := collectShareAcks(n, func(yield func(shareTP, int64, int64, []int8)) {
		for i := range req.Topics {
			rt := &req.Topics[i]
			for j := range rt.Partitions {
				rp := &rt.Partitions[j]
				tp := shareTP{rt.TopicID, rp.Partition}
				if len(rp.AcknowledgementBatches) == 0 {
					yield(tp, -1, -1, nil)
				}
				for _, ab := range rp.AcknowledgementBatches {
					yield(tp, ab.FirstOffset, ab.LastOffset, ab.AcknowledgeTypes)
				}
			}
		}
	})
	checkAckTypes(acks, renew)
	key := shareSessionKey{group, member}
	switch req.ShareSessionEpoch {
	case 0:
		resp.ErrorCode = kerr.InvalidShareSessionEpoch.Code // only ShareFetch opens a session
		return resp, nil
	case -1:
		if !m.sessions.exists(key) {
			resp.ErrorCode = kerr.ShareSessionNotFound.Code
			return resp, nil
		}
		m.acknowledge(ctx, group, member, acks)
		if tps, code := m.sessions.close(key); code == 0 {
			m.releaseMember(ctx, group, member, tps)
		}
	default:
		if _, code := m.sessions.update(key, r.conn, req.ShareSessionEpoch, nil, nil); code != 0 {
			resp.ErrorCode = code
			return resp, nil
		}
		m.acknowledge(ctx, group, member, acks)
	}
	topics := map[[16]byte]int{}
	nodes := map[int32]bool{}
	for _, ap := range acks {
		ti, ok := topics[ap.tp.topicID]
		if !ok {
			ti = len(resp.Topics)
			topics[ap.tp.topicID] = ti
			t := kmsg.NewShareAcknowledgeResponseTopic()
			t.TopicID = ap.tp.topicID
			resp.Topics = append(resp.Topics, t)
		}
		sp := kmsg.NewShareAcknowledgeResponseTopicPartition()
		sp.Partition, sp.ErrorCode = ap.tp.partition, ap.code
		sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = -1, -1
		if ap.code == kerr.NotLeaderForPartition.Code || ap.code == kerr.FencedLeaderEpoch.Code {
			l := b.shareLeaderOf(ap.tp)
			sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = l.id, l.epoch
			if l.node != nil && !nodes[l.id] {
				nodes[l.id] = true
				ne := kmsg.NewShareAcknowledgeResponseNodeEndpoint()
				ne.NodeID, ne.Host, ne.Port, ne.Rack = l.node.id, l.node.host, l.node.port, l.node.rack
				resp.NodeEndpoints = append(resp.NodeEndpoints, ne)
			}
		}
		resp.Topics[ti].Partitions = append(resp.Topics[ti].Partitions, sp)
	}
	return resp, nil
}
