package group

// ConsumerGroupDescribe: v0-1 (KIP-848).
//
// Describes KIP-848 groups: group epoch, target assignment epoch, assignor,
// and per member its epoch, subscription, current and target assignment
// (topics by id and name). Classic groups and missing groups get
// GROUP_ID_NOT_FOUND; the empty group id INVALID_GROUP_ID. v1 adds the
// member type (1: consumer protocol). Authorized operations are the
// broker's to fill, as for DescribeGroups.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/internal/uniq"
)

// ConsumerGroupDescribe handles a ConsumerGroupDescribe request (v0-1).
func (c *Coordinator) ConsumerGroupDescribe(_ context.Context, req *kmsg.ConsumerGroupDescribeRequest) *kmsg.ConsumerGroupDescribeResponse {
	resp := req.ResponseKind().(*kmsg.ConsumerGroupDescribeResponse)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range uniq.Strings(req.Groups) { // a repeated id is described once
		resp.Groups = append(resp.Groups, c.consumerDescribeLocked(id))
	}
	return resp
}

func (c *Coordinator) consumerDescribeLocked(id string) kmsg.ConsumerGroupDescribeResponseGroup {
	dg := kmsg.NewConsumerGroupDescribeResponseGroup()
	dg.Group = id
	if id == "" {
		dg.ErrorCode = kerr.InvalidGroupID.Code
		return dg
	}
	if _, code := c.servableLocked(id); code != 0 {
		dg.ErrorCode = code
		return dg
	}
	g := c.mu.groups[id]
	if g == nil || g.kind != kindConsumer {
		dg.ErrorCode = kerr.GroupIDNotFound.Code
		msg := "Group " + id + " not found."
		if g != nil {
			msg = "Group " + id + " is not a consumer group."
		}
		dg.ErrorMessage = &msg
		return dg
	}
	cg := g.cg
	dg.State = cg.state().String()
	dg.Epoch = cg.epoch
	dg.AssignmentEpoch = cg.targetEpoch
	dg.AssignorName = cg.assignor
	names := cg.topicNames()
	for _, m := range cg.ordered() {
		dm := kmsg.NewConsumerGroupDescribeResponseGroupMember()
		dm.MemberID = m.id
		dm.InstanceID = m.instanceID
		dm.RackID = m.rackID
		dm.MemberEpoch = m.epoch
		dm.ClientID = m.clientID
		dm.ClientHost = m.clientHost
		dm.SubscribedTopics = append([]string{}, m.topics...)
		if m.regex != "" {
			dm.SubscribedTopicRegex = kmsg.StringPtr(m.regex)
		}
		dm.Assignment = describeAssignment(m.assigned, names)
		dm.TargetAssignment = describeAssignment(m.target, names)
		dm.MemberType = 1
		dg.Members = append(dg.Members, dm)
	}
	return dg
}

func describeAssignment[V any](s map[tpid]V, names map[[16]byte]string) kmsg.Assignment {
	var a kmsg.Assignment
	for _, t := range assignmentTopics(s) {
		tp := kmsg.NewAssignmentTopicPartition()
		tp.TopicID = t.TopicID
		tp.Topic = names[t.TopicID]
		tp.Partitions = t.Partitions
		a.TopicPartitions = append(a.TopicPartitions, tp)
	}
	return a
}
