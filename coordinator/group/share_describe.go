package group

// ShareGroupDescribe: v1 (KIP-932; v0 was Kafka 4.0's early access and is
// refused with UNSUPPORTED_VERSION, as Kafka 4.1+ does).
//
// Describes share groups: state (Empty or Stable), group epoch, assignment
// epoch (always the group epoch: share assignments are computed at once),
// the assignor ("simple"), and per member its epoch, rack, client id and
// host, subscribed topic names and its current assignment (topics by id and
// name, as the member was last told). Classic and consumer groups get
// GROUP_ID_NOT_FOUND ("Group g is not a share group."), missing groups
// GROUP_ID_NOT_FOUND, the empty group id INVALID_GROUP_ID. Authorized
// operations are Kafka's "not provided" value (-2147483648), as the other
// describes here answer; a repeated group id is described once.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/internal/uniq"
)

// authorizedOpsNotProvided is Kafka's value for "authorized operations not
// computed".
const authorizedOpsNotProvided int32 = -2147483648

// ShareGroupDescribe handles a ShareGroupDescribe request (v1).
func (c *Coordinator) ShareGroupDescribe(_ context.Context, req *kmsg.ShareGroupDescribeRequest) *kmsg.ShareGroupDescribeResponse {
	resp := req.ResponseKind().(*kmsg.ShareGroupDescribeResponse)
	for _, id := range uniq.Strings(req.GroupIDs) {
		dg := kmsg.NewShareGroupDescribeResponseGroup()
		dg.GroupID = id
		if req.Version < 1 {
			dg.ErrorCode = kerr.UnsupportedVersion.Code
		} else {
			c.mu.Lock()
			c.shareDescribeLocked(&dg)
			c.mu.Unlock()
		}
		dg.AuthorizedOperations = authorizedOpsNotProvided
		resp.Groups = append(resp.Groups, dg)
	}
	return resp
}

func (c *Coordinator) shareDescribeLocked(dg *kmsg.ShareGroupDescribeResponseGroup) {
	id := dg.GroupID
	if id == "" {
		dg.ErrorCode = kerr.InvalidGroupID.Code
		return
	}
	if _, code := c.servableLocked(id); code != 0 {
		dg.ErrorCode = code
		return
	}
	g := c.mu.groups[id]
	if g == nil || g.kind != kindShare {
		dg.ErrorCode = kerr.GroupIDNotFound.Code
		msg := "Group " + id + " not found."
		if g != nil {
			msg = "Group " + id + " is not a share group."
		}
		dg.ErrorMessage = &msg
		return
	}
	sg := g.sg
	dg.GroupState = sg.state()
	dg.GroupEpoch = sg.epoch
	dg.AssignmentEpoch = sg.epoch
	dg.Assignor = ShareAssignor
	names := make(map[[16]byte]string, len(sg.topics))
	for _, t := range sg.topics {
		names[t.id] = t.name
	}
	for _, m := range sg.ordered() {
		dm := kmsg.NewShareGroupDescribeResponseGroupMember()
		dm.MemberID = m.id
		dm.RackID = cloneStringPtr(m.rackID)
		dm.MemberEpoch = m.epoch
		dm.ClientID = m.clientID
		dm.ClientHost = m.clientHost
		dm.SubscribedTopicNames = append([]string{}, m.topics...)
		for _, tp := range sortedParts(m.assigned) {
			ts := dm.Assignment.TopicPartitions
			if n := len(ts); n > 0 && ts[n-1].TopicID == tp.id {
				ts[n-1].Partitions = append(ts[n-1].Partitions, tp.p)
				continue
			}
			t := kmsg.NewShareGroupDescribeResponseGroupMemberAssignmentTopicPartition()
			t.TopicID = tp.id
			t.Topic = names[tp.id]
			t.Partitions = []int32{tp.p}
			dm.Assignment.TopicPartitions = append(ts, t)
		}
		dg.Members = append(dg.Members, dm)
	}
}
