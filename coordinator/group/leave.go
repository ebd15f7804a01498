package group

// LeaveGroup: v0-5.
//
// A classic member leaves; the group rebalances without waiting for its
// session to expire. v0-2 name one member by member id; v3+ (KIP-345) take a
// batch of members, each by member id or by group.instance.id (how an
// operator removes static members), with a per-member error code. v5+
// (KIP-800) carries a reason, which is logged. A member id that does not
// match the instance id's current member gets FENCED_INSTANCE_ID. A member
// listed more than once is answered once.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// LeaveGroup handles a LeaveGroup request (v0-5).
func (c *Coordinator) LeaveGroup(_ context.Context, req *kmsg.LeaveGroupRequest) *kmsg.LeaveGroupResponse {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	leaving := uniqueLeaving(req.Members)
	if req.Version < 3 {
		leaving = []kmsg.LeaveGroupRequestMember{{MemberID: req.MemberID}}
	}
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	c.mu.Lock()
	top, codes, g := c.leaveLocked(req.Group, leaving)
	dirty := g != nil && g.dirty
	c.mu.Unlock()
	if dirty {
		// The group may have become Empty; failing to record that is
		// only logged, as in Kafka (a reload would expire the members).
		if err := c.flush(c.ctx, g); err != nil {
			c.log.Warn("writing group metadata failed", "group", g.id, "err", err)
		}
	}
	resp.ErrorCode = top
	if req.Version < 3 {
		if top == 0 && len(codes) == 1 {
			resp.ErrorCode = codes[0]
		}
		return resp
	}
	if top != 0 {
		return resp
	}
	for i, lm := range leaving {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID = lm.MemberID
		rm.InstanceID = lm.InstanceID
		rm.ErrorCode = codes[i]
		resp.Members = append(resp.Members, rm)
	}
	return resp
}

// leaveLocked removes each leaving member and returns the group-level code
// and one code per member.
func (c *Coordinator) leaveLocked(groupID string, leaving []kmsg.LeaveGroupRequestMember) (int16, []int16, *group) {
	if _, code := c.servableLocked(groupID); code != 0 {
		return code, nil, nil
	}
	g := c.mu.groups[groupID]
	if g == nil || g.kind != kindClassic {
		return kerr.UnknownMemberID.Code, nil, nil
	}
	codes := make([]int16, len(leaving))
	for i, lm := range leaving {
		codes[i] = c.leaveOneLocked(g, lm)
	}
	c.rearmLocked(g)
	return 0, codes, g
}

func (c *Coordinator) leaveOneLocked(g *group, lm kmsg.LeaveGroupRequestMember) int16 {
	id := lm.MemberID
	if iid := lm.InstanceID; iid != nil {
		known, ok := g.static[*iid]
		switch {
		case !ok:
			return kerr.UnknownMemberID.Code
		case id != "" && id != known:
			return kerr.FencedInstanceID.Code
		}
		id = known
	}
	if _, ok := g.pending[id]; ok {
		delete(g.pending, id)
		c.tryCompleteJoinLocked(g)
		return 0
	}
	m := g.members[id]
	if m == nil {
		return kerr.UnknownMemberID.Code
	}
	reason := ""
	if lm.Reason != nil {
		reason = *lm.Reason
	}
	c.log.Info("group member left", "group", g.id, "member", id, "reason", reason)
	c.removeMemberLocked(g, m, ReasonMemberLeft)
	return 0
}
