package group

// SyncGroup: v0-5.
//
// The second phase of a classic rebalance. Every member sends SyncGroup for
// the generation it joined; followers park until the leader's request
// arrives with the assignment of every member. The coordinator writes the
// group (GroupMetadataValue with the assignments) to __consumer_offsets and
// only then answers everyone, so an acknowledged generation survives a
// coordinator failover. If that write fails every parked member gets the
// mapped error and the group rebalances.
//
//   - v3+ (KIP-345): group.instance.id; a fenced static member gets
//     FENCED_INSTANCE_ID.
//   - v5+ (KIP-559): protocol type and name are checked against the group's
//     (INCONSISTENT_GROUP_PROTOCOL) and echoed in the response.

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SyncGroup handles a SyncGroup request (v0-5). It blocks until the leader's
// assignment is durable, the group starts another rebalance, or ctx ends.
func (c *Coordinator) SyncGroup(ctx context.Context, req *kmsg.SyncGroupRequest) *kmsg.SyncGroupResponse {
	if req.Group == "" {
		return syncError(req, kerr.InvalidGroupID.Code)
	}
	c.mu.Lock()
	resp, wait, g, leader := c.syncLocked(req)
	var gen int32
	if g != nil {
		c.rearmLocked(g)
		gen = g.generation
	}
	c.mu.Unlock()
	if resp != nil {
		return resp
	}
	if leader {
		c.persistAssignment(g, gen)
	}
	select {
	case r := <-wait:
		return r
	case <-ctx.Done():
		return syncError(req, kerr.RebalanceInProgress.Code)
	}
}

// syncLocked validates req and parks it. leader reports that req carried the
// assignment and the caller must write it.
func (c *Coordinator) syncLocked(req *kmsg.SyncGroupRequest) (resp *kmsg.SyncGroupResponse, wait chan *kmsg.SyncGroupResponse, g *group, leader bool) {
	_, code := c.servableLocked(req.Group)
	if code != 0 {
		return syncError(req, code), nil, nil, false
	}
	g = c.mu.groups[req.Group]
	if g == nil || g.kind != kindClassic {
		return syncError(req, kerr.UnknownMemberID.Code), nil, nil, false
	}
	if iid := req.InstanceID; iid != nil {
		if known, ok := g.static[*iid]; ok && known != req.MemberID {
			return syncError(req, kerr.FencedInstanceID.Code), nil, g, false
		}
	}
	m := g.members[req.MemberID]
	switch {
	case m == nil:
		return syncError(req, kerr.UnknownMemberID.Code), nil, g, false
	case req.Generation != g.generation:
		return syncError(req, kerr.IllegalGeneration.Code), nil, g, false
	case req.ProtocolType != nil && *req.ProtocolType != g.protocolType,
		req.Protocol != nil && *req.Protocol != g.protocol:
		return syncError(req, kerr.InconsistentGroupProtocol.Code), nil, g, false
	}
	switch g.state {
	case statePreparingRebalance:
		return syncError(req, kerr.RebalanceInProgress.Code), nil, g, false
	case stateStable:
		delete(g.pendingSync, m.id)
		m.deadline = c.clock.Now().Add(m.sessionTimeout)
		return c.syncResponseLocked(g, m, req), nil, g, false
	case stateCompletingRebalance:
	default:
		return syncError(req, kerr.UnknownMemberID.Code), nil, g, false
	}
	delete(g.pendingSync, m.id)
	if m.sync != nil {
		c.deliverSync(m, syncError(m.sync.req, kerr.RebalanceInProgress.Code))
	}
	w := &syncWaiter{req: req, ch: make(chan *kmsg.SyncGroupResponse, 1)}
	m.sync = w
	if m.id != g.leader || g.syncPersisting {
		return nil, w.ch, g, false
	}
	assignments := make(map[string][]byte, len(req.GroupAssignment))
	for _, a := range req.GroupAssignment {
		assignments[a.MemberID] = a.MemberAssignment
	}
	for id, gm := range g.members {
		// Members the leader left out get an empty assignment, as in Kafka.
		gm.assignment = slices.Clone(assignments[id])
		if gm.assignment == nil {
			gm.assignment = []byte{}
		}
	}
	g.syncPersisting = true
	g.dirty = true
	return nil, w.ch, g, true
}

// persistAssignment writes the leader's assignment for generation gen and
// then completes (or, on failure, aborts) the sync phase.
func (c *Coordinator) persistAssignment(g *group, gen int32) {
	err := c.flush(c.ctx, g)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.currentLocked(g) || g.generation != gen || g.state != stateCompletingRebalance || !g.syncPersisting {
		return // the group moved on; whoever moved it answered the waiters
	}
	if err != nil {
		c.log.Warn("writing group assignment failed", "group", g.id, "generation", gen, "err", err)
		c.resetAssignmentsLocked(g, persistErrorCode(err, false))
		c.prepareRebalanceLocked(g, ReasonPersistFailed)
	} else {
		c.completeSyncLocked(g)
	}
	c.rearmLocked(g)
}
