package group

// JoinGroup: v0-9.
//
// The first phase of a classic rebalance. The request parks until every
// member has (re)joined or the rebalance timeout ends the join phase; then
// each member gets the new generation and the leader also gets every
// member's protocol metadata to run its assignor on.
//
//   - v0 has no rebalance timeout; the session timeout serves as both.
//   - v4+ (KIP-394): a dynamic member joining without a member id gets
//     MEMBER_ID_REQUIRED with a fresh id and must join again with it. Until it
//     does (or its session timeout passes) the join phase cannot complete.
//   - v5+ (KIP-345): group.instance.id. A static member joining without a
//     member id replaces its previous incarnation: it gets a new member id,
//     requests still parked for the old id get FENCED_INSTANCE_ID, and a
//     Stable group whose selected protocol would not change keeps its
//     assignment without a rebalance.
//   - v7+: the protocol type is returned. v8+ (KIP-800): the client's
//     reason is logged. v9+ (KIP-814): SkipAssignment tells a replaced static
//     leader that the assignment stands.
//   - A protocol named more than once counts once, with the metadata of its
//     first entry (Kafka keeps a member's protocols keyed by name).

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// joinOutcome is what joinLocked decided: an immediate answer, or a channel
// to wait on; and whether group metadata must be written first.
type joinOutcome struct {
	resp     *kmsg.JoinGroupResponse
	wait     chan *kmsg.JoinGroupResponse
	memberID string
	flush    *group
}

// JoinGroup handles a JoinGroup request (v0-9). It blocks until the join
// phase of the rebalance completes or ctx ends.
func (c *Coordinator) JoinGroup(ctx context.Context, req *kmsg.JoinGroupRequest) *kmsg.JoinGroupResponse {
	if req.Group == "" {
		return joinError(req, req.MemberID, kerr.InvalidGroupID.Code)
	}
	// A repeated protocol name counts once; deduplicated before the lock,
	// so that checks under it are linear in what the members support.
	req.Protocols = uniqueProtocols(req.Protocols)
	c.mu.Lock()
	out := c.joinLocked(ctx, req)
	c.mu.Unlock()
	if out.flush != nil {
		pctx, cancel := c.persistCtx(ctx)
		err := c.flush(pctx, out.flush)
		cancel()
		if err != nil {
			c.log.Warn("writing group metadata failed", "group", req.Group, "err", err)
			return joinError(req, out.resp.MemberID, persistErrorCode(err, false))
		}
	}
	if out.resp != nil {
		return out.resp
	}
	select {
	case resp := <-out.wait:
		return resp
	case <-ctx.Done():
		// The connection is gone; the member stays parked as Kafka
		// leaves it, and the join phase completes without it answering.
		return joinError(req, out.memberID, kerr.RebalanceInProgress.Code)
	}
}

func (c *Coordinator) joinLocked(ctx context.Context, req *kmsg.JoinGroupRequest) joinOutcome {
	fail := func(code int16) joinOutcome { return joinOutcome{resp: joinError(req, req.MemberID, code)} }
	p, code := c.servableLocked(req.Group)
	if code != 0 {
		return fail(code)
	}
	st := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	if st < c.cfg.MinSessionTimeout || st > c.cfg.MaxSessionTimeout {
		return fail(kerr.InvalidSessionTimeout.Code)
	}
	g := c.mu.groups[req.Group]
	if g == nil {
		if req.MemberID != "" {
			return fail(kerr.UnknownMemberID.Code)
		}
		g = newGroup(req.Group, p)
		g.stateSince = c.clock.Now()
		c.mu.groups[req.Group] = g
	}
	if g.kind == kindShare {
		// Kafka: a JoinGroup for a group of another type than classic
		// or consumer.
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	if g.kind == kindConsumer {
		if g.hasMembers() {
			return fail(kerr.InconsistentGroupProtocol.Code)
		}
		c.toClassicLocked(g)
	}
	if req.Reason != nil {
		c.log.Debug("join group", "group", g.id, "member", req.MemberID, "reason", *req.Reason)
	}
	defer c.rearmLocked(g)
	if !g.supportsProtocols(req.ProtocolType, req.Protocols) {
		c.dropIfUnusedLocked(g)
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	if req.MemberID == "" {
		return c.joinUnknownLocked(ctx, g, req)
	}
	return c.joinKnownLocked(ctx, g, req)
}

// joinUnknownLocked handles a member without a member id (Kafka's
// doUnknownJoinGroup).
func (c *Coordinator) joinUnknownLocked(ctx context.Context, g *group, req *kmsg.JoinGroupRequest) joinOutcome {
	if iid := req.InstanceID; iid != nil {
		if oldID, ok := g.static[*iid]; ok {
			if old := g.members[oldID]; old != nil {
				return c.replaceStaticLocked(ctx, g, old, req)
			}
			delete(g.static, *iid)
		}
	}
	if len(g.members)+len(g.pending) >= c.cfg.MaxGroupSize {
		c.dropIfUnusedLocked(g)
		return joinOutcome{resp: joinError(req, "", kerr.GroupMaxSizeReached.Code)}
	}
	prefix := clientFrom(ctx).id
	if req.InstanceID != nil {
		prefix = *req.InstanceID
	}
	id := c.newMemberID(prefix)
	if req.Version >= 4 && req.InstanceID == nil {
		g.pending[id] = c.clock.Now().Add(time.Duration(req.SessionTimeoutMillis) * time.Millisecond)
		return joinOutcome{resp: joinError(req, id, kerr.MemberIDRequired.Code)}
	}
	return c.addMemberLocked(ctx, g, id, req)
}

// joinKnownLocked handles a member that presents a member id (Kafka's
// doCurrentMemberJoinGroup).
func (c *Coordinator) joinKnownLocked(ctx context.Context, g *group, req *kmsg.JoinGroupRequest) joinOutcome {
	fail := func(code int16) joinOutcome { return joinOutcome{resp: joinError(req, req.MemberID, code)} }
	if _, ok := g.pending[req.MemberID]; ok {
		return c.addMemberLocked(ctx, g, req.MemberID, req)
	}
	if iid := req.InstanceID; iid != nil {
		if known, ok := g.static[*iid]; ok && known != req.MemberID {
			return fail(kerr.FencedInstanceID.Code)
		}
	}
	m := g.members[req.MemberID]
	if m == nil {
		return fail(kerr.UnknownMemberID.Code)
	}
	same := sameProtocols(m.protocols, req.Protocols)
	switch g.state {
	case statePreparingRebalance:
		w := c.updateMemberLocked(ctx, m, req)
		c.tryCompleteJoinLocked(g)
		return joinOutcome{wait: w, memberID: m.id}
	case stateCompletingRebalance:
		if same {
			// A lost response: answer with the current generation.
			return joinOutcome{resp: c.joinResponseLocked(g, m, req, false)}
		}
		w := c.updateMemberLocked(ctx, m, req)
		c.prepareRebalanceLocked(g, ReasonMetadataChanged)
		return joinOutcome{wait: w, memberID: m.id}
	case stateStable:
		if same && m.id != g.leader {
			m.deadline = c.clock.Now().Add(m.sessionTimeout)
			return joinOutcome{resp: c.joinResponseLocked(g, m, req, false)}
		}
		reason := ReasonMetadataChanged
		if same {
			reason = ReasonMemberJoined // the leader rejoining asks for a new assignment
		}
		w := c.updateMemberLocked(ctx, m, req)
		c.prepareRebalanceLocked(g, reason)
		return joinOutcome{wait: w, memberID: m.id}
	}
	return fail(kerr.UnknownMemberID.Code)
}

// addMemberLocked adds a new member, parked in JoinGroup, and rebalances.
func (c *Coordinator) addMemberLocked(ctx context.Context, g *group, id string, req *kmsg.JoinGroupRequest) joinOutcome {
	ci := clientFrom(ctx)
	c.mu.seq++
	m := &member{
		id:         id,
		instanceID: cloneStringPtr(req.InstanceID),
		clientID:   ci.id,
		clientHost: ci.host,
		seq:        c.mu.seq,
	}
	setJoinFields(m, req)
	delete(g.pending, id)
	if len(g.members) == 0 {
		g.protocolType = req.ProtocolType
	}
	g.members[id] = m
	if m.instanceID != nil {
		g.static[*m.instanceID] = id
	}
	if g.leader == "" {
		g.leader = id
	}
	w := &joinWaiter{req: req, ch: make(chan *kmsg.JoinGroupResponse, 1)}
	m.join = w
	if g.state == statePreparingRebalance {
		if !g.delayUntil.IsZero() {
			g.newMemberAdded = true
		}
		c.tryCompleteJoinLocked(g)
	} else {
		c.prepareRebalanceLocked(g, ReasonMemberJoined)
	}
	return joinOutcome{wait: w.ch, memberID: id}
}

// updateMemberLocked records a known member's new join request and parks it.
func (c *Coordinator) updateMemberLocked(ctx context.Context, m *member, req *kmsg.JoinGroupRequest) chan *kmsg.JoinGroupResponse {
	if m.join != nil {
		// A retry superseded the parked request.
		c.deliverJoin(m, joinError(m.join.req, m.id, kerr.RebalanceInProgress.Code))
	}
	if ci := clientFrom(ctx); ci.id != "" || ci.host != "" {
		m.clientID, m.clientHost = ci.id, ci.host
	}
	setJoinFields(m, req)
	w := &joinWaiter{req: req, ch: make(chan *kmsg.JoinGroupResponse, 1)}
	m.join = w
	return w.ch
}

func setJoinFields(m *member, req *kmsg.JoinGroupRequest) {
	m.sessionTimeout = time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	m.rebalanceTimeout = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	if req.Version == 0 || m.rebalanceTimeout <= 0 {
		m.rebalanceTimeout = m.sessionTimeout
	}
	m.protocolType = req.ProtocolType
	m.protocols = copyProtocols(req.Protocols)
}

// replaceStaticLocked is KIP-345's replacement of a static member that
// rejoined without its member id (Kafka's updateStaticMemberAndRebalance).
func (c *Coordinator) replaceStaticLocked(ctx context.Context, g *group, old *member, req *kmsg.JoinGroupRequest) joinOutcome {
	now := c.clock.Now()
	ci := clientFrom(ctx)
	newID := c.newMemberID(*req.InstanceID)
	if old.join != nil {
		c.deliverJoin(old, joinError(old.join.req, old.id, kerr.FencedInstanceID.Code))
	}
	if old.sync != nil {
		c.deliverSync(old, syncError(old.sync.req, kerr.FencedInstanceID.Code))
	}
	delete(g.members, old.id)
	m := &member{
		id:         newID,
		instanceID: cloneStringPtr(req.InstanceID),
		clientID:   ci.id,
		clientHost: ci.host,
		assignment: old.assignment,
		seq:        old.seq,
	}
	setJoinFields(m, req)
	g.members[newID] = m
	g.static[*m.instanceID] = newID
	if g.leader == old.id {
		g.leader = newID
	}
	if _, ok := g.pendingSync[old.id]; ok {
		delete(g.pendingSync, old.id)
		g.pendingSync[newID] = struct{}{}
	}
	c.log.Info("static group member replaced", "group", g.id, "instance", *req.InstanceID, "old", old.id, "new", newID)
	w := &joinWaiter{req: req, ch: make(chan *kmsg.JoinGroupResponse, 1)}
	switch g.state {
	case stateStable:
		if g.selectProtocol() == g.protocol {
			m.deadline = now.Add(m.sessionTimeout)
			g.dirty = true
			return joinOutcome{resp: c.joinResponseLocked(g, m, req, true), flush: g, memberID: newID}
		}
		m.join = w
		c.prepareRebalanceLocked(g, ReasonMetadataChanged)
	case stateCompletingRebalance:
		// The leader may already hold the old member id: rebalance so
		// the assignment names the new one.
		m.join = w
		c.prepareRebalanceLocked(g, ReasonMemberJoined)
	default:
		m.join = w
		c.tryCompleteJoinLocked(g)
	}
	return joinOutcome{wait: w.ch, memberID: newID}
}

// dropIfUnusedLocked forgets a group that a failed request created: no
// members, no offsets, nothing in the log.
func (c *Coordinator) dropIfUnusedLocked(g *group) {
	if g.hasMembers() || len(g.offsets) > 0 || len(g.inflight) > 0 || !g.txn.empty() || g.persistedClassic || g.persistedConsumer || g.persistedShare || g.dirty {
		return
	}
	if g.kind == kindClassic && g.protocolType != "" {
		return
	}
	stopTimerLocked(g)
	if c.mu.groups[g.id] == g {
		delete(c.mu.groups, g.id)
	}
}
