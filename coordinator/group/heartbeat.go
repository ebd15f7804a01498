package group

// Heartbeat: v0-4.
//
// Keeps a classic member's session alive. During a rebalance the answer is
// REBALANCE_IN_PROGRESS, which is how members that are not parked in
// JoinGroup learn they must rejoin. v3+ (KIP-345) carries group.instance.id:
// a fenced static member gets FENCED_INSTANCE_ID. Heartbeats for a group that
// does not exist (or is a KIP-848 group) get UNKNOWN_MEMBER_ID, as in Kafka.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Heartbeat handles a Heartbeat request (v0-4).
func (c *Coordinator) Heartbeat(_ context.Context, req *kmsg.HeartbeatRequest) *kmsg.HeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	resp.ErrorCode = c.heartbeatLocked(req)
	return resp
}

func (c *Coordinator) heartbeatLocked(req *kmsg.HeartbeatRequest) int16 {
	if _, code := c.servableLocked(req.Group); code != 0 {
		return code
	}
	g := c.mu.groups[req.Group]
	if g == nil || g.kind != kindClassic {
		return kerr.UnknownMemberID.Code
	}
	if iid := req.InstanceID; iid != nil {
		if known, ok := g.static[*iid]; ok && known != req.MemberID {
			return kerr.FencedInstanceID.Code
		}
	}
	m := g.members[req.MemberID]
	if m == nil {
		return kerr.UnknownMemberID.Code
	}
	if req.Generation != g.generation {
		return kerr.IllegalGeneration.Code
	}
	switch g.state {
	case stateEmpty, stateDead:
		return kerr.UnknownMemberID.Code
	}
	m.deadline = c.clock.Now().Add(m.sessionTimeout)
	c.rearmLocked(g)
	if g.state == statePreparingRebalance {
		return kerr.RebalanceInProgress.Code
	}
	return 0
}
