package group

// DescribeGroups: v0-6.
//
// Describes classic groups. A Stable group shows its selected protocol and
// each member's metadata and assignment; other states show members without
// them, as Kafka does. A group that does not exist, or is a KIP-848 group
// (described by ConsumerGroupDescribe instead), comes back in state Dead
// with no error before v6 and GROUP_ID_NOT_FOUND from v6 (KIP-1043).
// v3+ may ask for authorized operations: the broker, which knows the ACLs,
// fills AuthorizedOperations; the coordinator leaves Kafka's "not provided"
// value. v4+ shows group.instance.id (KIP-345). A group id given more than
// once is described once.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/internal/uniq"
)

// DescribeGroups handles a DescribeGroups request (v0-6).
func (c *Coordinator) DescribeGroups(_ context.Context, req *kmsg.DescribeGroupsRequest) *kmsg.DescribeGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range uniq.Strings(req.Groups) {
		resp.Groups = append(resp.Groups, c.describeGroupLocked(req.Version, id))
	}
	return resp
}

func (c *Coordinator) describeGroupLocked(version int16, id string) kmsg.DescribeGroupsResponseGroup {
	dg := kmsg.NewDescribeGroupsResponseGroup()
	dg.Group = id
	if _, code := c.servableLocked(id); code != 0 {
		dg.ErrorCode = code
		return dg
	}
	g := c.mu.groups[id]
	if g == nil || g.kind != kindClassic {
		dg.State = stateDead.String()
		if version >= 6 {
			dg.ErrorCode = kerr.GroupIDNotFound.Code
			msg := "Group " + id + " not found."
			if g != nil {
				msg = "Group " + id + " is not a classic group."
			}
			dg.ErrorMessage = &msg
		}
		return dg
	}
	dg.State = g.state.String()
	dg.ProtocolType = g.protocolType
	stable := g.state == stateStable
	if stable {
		dg.Protocol = g.protocol
	}
	for _, m := range g.ordered() {
		dm := kmsg.NewDescribeGroupsResponseGroupMember()
		dm.MemberID = m.id
		dm.InstanceID = m.instanceID
		dm.ClientID = m.clientID
		dm.ClientHost = m.clientHost
		if stable {
			dm.ProtocolMetadata = m.metadataFor(g.protocol)
			dm.MemberAssignment = m.assignment
		}
		dg.Members = append(dg.Members, dm)
	}
	return dg
}
