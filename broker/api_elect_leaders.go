package broker

// ElectLeaders: v0-2.
//
// KIP-183 (preferred) and KIP-460 (v1+, election type: 0 preferred, 1
// unclean). Any broker serves it: each election is a pure decision over
// the partition's stored record, written with compare-and-swap, so it is
// safe whichever broker (or the controller at the same time) decides.
// Preferred: ELECTION_NOT_NEEDED when the preferred replica already leads,
// PREFERRED_LEADER_NOT_AVAILABLE when it is not live or not in the ISR.
// Unclean: only for partitions without a leader (ELECTION_NOT_NEEDED
// otherwise); the first live replica in the ISR, or else outside it, is
// elected, possibly losing committed records; ELIGIBLE_LEADERS_NOT_AVAILABLE
// when no replica is live. A null topic list means every partition (for
// preferred elections, those whose preferred replica does not lead). A
// partition named more than once is elected and answered once.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/replication"
)

func (b *Broker) electLeadersAPI() api {
	return api{key: 43, min: 0, max: 2, handle: b.handleElectLeaders}
}

func (b *Broker) handleElectLeaders(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.ElectLeadersRequest)
	resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
	typ := req.ElectionType
	if req.Version == 0 {
		typ = 0
	}
	if typ != 0 && typ != 1 {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp, nil
	}
	topics := req.Topics
	all := topics == nil
	if all {
		for _, ts := range b.topics.all() {
			t := kmsg.NewElectLeadersRequestTopic()
			t.Topic = ts.meta().Name
			for p := int32(0); p < ts.meta().Partitions; p++ {
				t.Partitions = append(t.Partitions, p)
			}
			topics = append(topics, t)
		}
	}
	if !all {
		// A partition named more than once is elected and answered once:
		// each election reads and may write etcd.
		topics = mergeLastWins(topics,
			func(t *kmsg.ElectLeadersRequestTopic) string { return t.Topic },
			func(t *kmsg.ElectLeadersRequestTopic) *[]int32 { return &t.Partitions },
			func(p *int32) int32 { return *p })
	}
	for _, rt := range topics {
		st := kmsg.NewElectLeadersResponseTopic()
		st.Topic = rt.Topic
		ts := b.topics.get(rt.Topic)
		for _, p := range rt.Partitions {
			sp := kmsg.NewElectLeadersResponseTopicPartition()
			sp.Partition = p
			var msg string
			sp.ErrorCode, msg = b.electLeader(ctx, ts, p, typ)
			if msg != "" {
				sp.ErrorMessage = kmsg.StringPtr(msg)
			}
			if all && sp.ErrorCode == kerr.ElectionNotNeeded.Code {
				continue // Kafka reports only the partitions it acted on
			}
			st.Partitions = append(st.Partitions, sp)
		}
		if !all || len(st.Partitions) > 0 {
			resp.Topics = append(resp.Topics, st)
		}
	}
	return resp, nil
}

// electLeader runs one election and returns its error code.
func (b *Broker) electLeader(ctx context.Context, ts *topicState, p int32, typ int8) (int16, string) {
	if ts == nil || p < 0 || p >= ts.meta().Partitions {
		return kerr.UnknownTopicOrPartition.Code, ""
	}
	_, err := b.updatePartition(ctx, ts, p, "ElectLeaders", func(cur replication.PartitionState) (replication.PartitionState, error) {
		if typ == 0 {
			return replication.ElectPreferredLeader(cur, b.clusterView())
		}
		return b.uncleanElection(cur, b.clusterView())
	})
	var ke *kerr.Error
	switch {
	case err == nil:
		return 0, ""
	case errors.Is(err, errReadPartition):
		return kerr.UnknownTopicOrPartition.Code, err.Error()
	case errors.As(err, &ke):
		return ke.Code, err.Error()
	}
	return kerr.UnknownServerError.Code, err.Error()
}

// uncleanElection elects a leader for an offline partition, from outside
// the ISR if need be (Kafka's ElectionType.UNCLEAN).
func (b *Broker) uncleanElection(cur replication.PartitionState, view replication.ClusterView) (replication.PartitionState, error) {
	if cur.Leader != replication.NoLeader {
		return cur, kerr.ElectionNotNeeded
	}
	next, err := replication.Reconcile(cur, view, true)
	if err != nil {
		return cur, err
	}
	if next.Leader == replication.NoLeader {
		return cur, kerr.EligibleLeadersNotAvailable
	}
	return next, nil
}
