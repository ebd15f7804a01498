package group

// The classic group state machine (Kafka's GroupCoordinator). Handlers in
// join.go, sync.go, heartbeat.go and leave.go call into it; timers.go drives
// its deadlines. Every function here needs Coordinator.mu.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// RebalanceReason says why a rebalance (a classic generation bump, or a
// KIP-848 group epoch bump) happened. It labels the rebalance log line and the
// Stats.Rebalances counter.
type RebalanceReason string

// The rebalance reasons.
const (
	ReasonMemberJoined     RebalanceReason = "member joined"
	ReasonMemberLeft       RebalanceReason = "member left"
	ReasonSessionExpired   RebalanceReason = "session expired"
	ReasonMetadataChanged  RebalanceReason = "metadata changed"  // member protocols/subscription or topic metadata
	ReasonRebalanceTimeout RebalanceReason = "rebalance timeout" // a member did not sync or revoke in time
	ReasonPersistFailed    RebalanceReason = "persist failed"    // the assignment could not be written
)

func (c *Coordinator) setStateLocked(g *group, s classicState) {
	g.state = s
	g.stateSince = c.clock.Now()
}

func (g *group) maxRebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalanceTimeout)
	}
	return d
}

func (g *group) anyAwaitingJoin() bool {
	for _, m := range g.members {
		if m.join != nil {
			return true
		}
	}
	return false
}

// allJoined is Kafka's hasAllMembersJoined: every member is parked in
// JoinGroup and no KIP-394 member id is outstanding.
func (g *group) allJoined() bool {
	for _, m := range g.members {
		if m.join == nil {
			return false
		}
	}
	return len(g.pending) == 0
}

// supportsProtocols is Kafka's GroupMetadata.supportsProtocols: an empty group
// accepts any non-empty protocol list; otherwise the protocol type must match
// and at least one protocol must be supported by every current member.
func (g *group) supportsProtocols(protocolType string, ps []kmsg.JoinGroupRequestProtocol) bool {
	if len(g.members) == 0 {
		return protocolType != "" && len(ps) > 0
	}
	if protocolType != g.protocolType {
		return false
	}
	all := g.supportedByAll()
	for _, p := range ps {
		if all[p.Name] {
			return true
		}
	}
	return false
}

// supportedByAll returns the protocols every member supports. It is linear
// in what the members list, as Kafka's per-group protocol counts are, however
// many protocols each lists; a name a member repeats counts once.
func (g *group) supportedByAll() map[string]bool {
	counts := make(map[string]int)
	lastBy := make(map[string]int) // the ordinal+1 of the last member counted for a name
	i := 0
	for _, m := range g.members {
		i++
		for _, p := range m.protocols {
			if lastBy[p.Name] != i {
				lastBy[p.Name] = i
				counts[p.Name]++
			}
		}
	}
	all := make(map[string]bool)
	for name, n := range counts {
		if n == len(g.members) {
			all[name] = true
		}
	}
	return all
}

// selectProtocol is Kafka's GroupMetadata.selectProtocol: among the
// protocols every member supports, each member votes for the first one in
// its own preference order, and the most votes win. Ties go to the protocol
// the longest-standing member prefers, so the choice is deterministic.
func (g *group) selectProtocol() string {
	ms := g.ordered()
	if len(ms) == 0 {
		return ""
	}
	all := g.supportedByAll()
	votes := make(map[string]int)
	for _, m := range ms {
		for _, p := range m.protocols {
			if all[p.Name] {
				votes[p.Name]++
				break
			}
		}
	}
	best, bestVotes := "", 0
	for _, p := range ms[0].protocols {
		if v := votes[p.Name]; v > bestVotes {
			best, bestVotes = p.Name, v
		}
	}
	return best
}

// prepareRebalanceLocked moves g to PreparingRebalance (Kafka's
// prepareRebalance): members parked in SyncGroup are told
// REBALANCE_IN_PROGRESS, the join phase gets its deadline (or the initial
// delay for a group that was empty), and it completes at once if everyone
// has already joined.
func (c *Coordinator) prepareRebalanceLocked(g *group, reason RebalanceReason) {
	now := c.clock.Now()
	if g.state == stateCompletingRebalance {
		c.resetAssignmentsLocked(g, kerr.RebalanceInProgress.Code)
	}
	g.pendingSync = nil
	g.syncDeadline = time.Time{}
	g.syncPersisting = false
	wasEmpty := g.state == stateEmpty
	g.reason = reason
	c.setStateLocked(g, statePreparingRebalance)
	rt := g.maxRebalanceTimeout()
	if wasEmpty && c.cfg.InitialRebalanceDelay > 0 {
		d := c.cfg.InitialRebalanceDelay
		g.delayUntil = now.Add(d)
		g.delayRemaining = max(rt-d, 0)
		g.newMemberAdded = false
	} else {
		g.delayUntil = time.Time{}
		g.joinDeadline = now.Add(rt)
	}
	c.log.Debug("preparing group rebalance", "group", g.id, "reason", string(reason), "generation", g.generation)
	c.tryCompleteJoinLocked(g)
}

func (c *Coordinator) tryCompleteJoinLocked(g *group) {
	if g.state == statePreparingRebalance && g.delayUntil.IsZero() && g.allJoined() {
		c.completeJoinLocked(g)
	}
}

// completeJoinLocked ends the join phase (Kafka's onCompleteJoin): dynamic
// members that did not rejoin are dropped, the generation is bumped, a
// protocol is chosen and every parked JoinGroup is answered. The leader's
// answer carries every member's metadata.
func (c *Coordinator) completeJoinLocked(g *group) {
	now := c.clock.Now()
	g.joinDeadline, g.delayUntil, g.newMemberAdded = time.Time{}, time.Time{}, false
	for _, m := range g.ordered() {
		if m.join == nil && m.instanceID == nil {
			c.deleteMemberLocked(g, m, kerr.UnknownMemberID.Code)
		}
	}
	if len(g.members) > 0 && !g.anyAwaitingJoin() {
		// Only static members that have not rejoined are left: wait
		// another round for them (or for their sessions to expire).
		g.joinDeadline = now.Add(g.maxRebalanceTimeout())
		return
	}
	if l := g.members[g.leader]; l == nil || l.join == nil {
		g.leader = ""
		for _, m := range g.ordered() {
			if m.join != nil {
				g.leader = m.id
				break
			}
		}
	}
	g.generation++
	reason := g.reason
	g.reason = ""
	c.mu.stats.rebalances[reason]++
	if len(g.members) == 0 {
		g.protocol, g.leader = "", ""
		c.setStateLocked(g, stateEmpty)
		g.dirty = true
		c.log.Info("group rebalanced", "group", g.id, "generation", g.generation, "reason", string(reason), "members", 0, "state", g.state.String())
		return
	}
	g.protocol = g.selectProtocol()
	c.setStateLocked(g, stateCompletingRebalance)
	g.pendingSync = make(map[string]struct{}, len(g.members))
	for _, m := range g.ordered() {
		m.assignment = nil
		if m.join != nil {
			c.deliverJoin(m, c.joinResponseLocked(g, m, m.join.req, false))
		}
		m.deadline = now.Add(m.sessionTimeout)
		g.pendingSync[m.id] = struct{}{}
	}
	g.syncDeadline = now.Add(g.maxRebalanceTimeout())
	c.log.Info("group rebalanced", "group", g.id, "generation", g.generation, "reason", string(reason),
		"members", len(g.members), "protocol", g.protocol, "leader", g.leader)
}

// joinResponseLocked builds m's JoinGroup answer for the current generation.
func (c *Coordinator) joinResponseLocked(g *group, m *member, req *kmsg.JoinGroupRequest, skipAssignment bool) *kmsg.JoinGroupResponse {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.Generation = g.generation
	resp.ProtocolType = kmsg.StringPtr(g.protocolType)
	resp.Protocol = kmsg.StringPtr(g.protocol)
	resp.LeaderID = g.leader
	resp.MemberID = m.id
	if m.id == g.leader {
		resp.SkipAssignment = skipAssignment
		for _, o := range g.ordered() {
			resp.Members = append(resp.Members, kmsg.JoinGroupResponseMember{
				MemberID:         o.id,
				InstanceID:       o.instanceID,
				ProtocolMetadata: o.metadataFor(g.protocol),
			})
		}
	}
	return resp
}

// resetAssignmentsLocked drops every assignment and answers parked SyncGroup
// requests with code (Kafka's resetAndPropagateAssignmentWithError).
func (c *Coordinator) resetAssignmentsLocked(g *group, code int16) {
	for _, m := range g.members {
		m.assignment = nil
		if m.sync != nil {
			c.deliverSync(m, syncError(m.sync.req, code))
			m.deadline = c.clock.Now().Add(m.sessionTimeout)
		}
	}
	g.syncPersisting = false
}

// completeSyncLocked makes the leader's assignment (already in each member)
// effective: the group turns Stable and every parked SyncGroup is answered.
func (c *Coordinator) completeSyncLocked(g *group) {
	now := c.clock.Now()
	g.syncPersisting = false
	c.setStateLocked(g, stateStable)
	for _, m := range g.members {
		if m.sync != nil {
			c.deliverSync(m, c.syncResponseLocked(g, m, m.sync.req))
			m.deadline = now.Add(m.sessionTimeout)
		}
	}
}

func (c *Coordinator) syncResponseLocked(g *group, m *member, req *kmsg.SyncGroupRequest) *kmsg.SyncGroupResponse {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	resp.ProtocolType = kmsg.StringPtr(g.protocolType)
	resp.Protocol = kmsg.StringPtr(g.protocol)
	resp.MemberAssignment = m.assignment
	return resp
}

func syncError(req *kmsg.SyncGroupRequest, code int16) *kmsg.SyncGroupResponse {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	resp.ErrorCode = code
	return resp
}

func joinError(req *kmsg.JoinGroupRequest, memberID string, code int16) *kmsg.JoinGroupResponse {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.ErrorCode = code
	resp.MemberID = memberID
	return resp
}

func (c *Coordinator) deliverJoin(m *member, resp *kmsg.JoinGroupResponse) {
	if m.join != nil {
		m.join.ch <- resp
		m.join = nil
	}
}

func (c *Coordinator) deliverSync(m *member, resp *kmsg.SyncGroupResponse) {
	if m.sync != nil {
		m.sync.ch <- resp
		m.sync = nil
	}
}

// deleteMemberLocked removes m without starting a rebalance; parked requests
// of m are answered with code.
func (c *Coordinator) deleteMemberLocked(g *group, m *member, code int16) {
	if m.join != nil {
		c.deliverJoin(m, joinError(m.join.req, m.id, code))
	}
	if m.sync != nil {
		c.deliverSync(m, syncError(m.sync.req, code))
	}
	delete(g.members, m.id)
	delete(g.pendingSync, m.id)
	if m.instanceID != nil && g.static[*m.instanceID] == m.id {
		delete(g.static, *m.instanceID)
	}
	if g.leader == m.id {
		g.leader = ""
		if ms := g.ordered(); len(ms) > 0 {
			g.leader = ms[0].id
		}
	}
}

// removeMemberLocked removes m and reacts as Kafka's
// removeMemberAndUpdateGroup does: a Stable or CompletingRebalance group
// rebalances, a group in the join phase checks whether it can complete.
func (c *Coordinator) removeMemberLocked(g *group, m *member, reason RebalanceReason) {
	c.deleteMemberLocked(g, m, kerr.UnknownMemberID.Code)
	switch g.state {
	case stateStable, stateCompletingRebalance:
		c.prepareRebalanceLocked(g, reason)
	case statePreparingRebalance:
		c.tryCompleteJoinLocked(g)
	}
}

// tickClassicLocked handles every classic deadline that has passed by now.
func (c *Coordinator) tickClassicLocked(g *group, now time.Time) {
	for id, dl := range g.pending {
		if !now.Before(dl) {
			delete(g.pending, id)
			c.tryCompleteJoinLocked(g)
		}
	}
	for _, m := range g.ordered() {
		if g.members[m.id] != m || m.awaiting() || m.deadline.IsZero() || now.Before(m.deadline) {
			continue
		}
		c.log.Info("group member session expired", "group", g.id, "member", m.id)
		c.removeMemberLocked(g, m, ReasonSessionExpired)
	}
	switch g.state {
	case statePreparingRebalance:
		c.tickJoinPhaseLocked(g, now)
	case stateCompletingRebalance, stateStable:
		if !g.syncDeadline.IsZero() && !now.Before(g.syncDeadline) {
			g.syncDeadline = time.Time{}
			if len(g.pendingSync) > 0 {
				for id := range g.pendingSync {
					if m := g.members[id]; m != nil {
						c.log.Info("group member did not sync in time", "group", g.id, "member", id)
						c.deleteMemberLocked(g, m, kerr.UnknownMemberID.Code)
					}
				}
				g.pendingSync = nil
				c.prepareRebalanceLocked(g, ReasonRebalanceTimeout)
			}
		}
	}
}

func (c *Coordinator) tickJoinPhaseLocked(g *group, now time.Time) {
	if !g.delayUntil.IsZero() {
		if now.Before(g.delayUntil) {
			return
		}
		if g.newMemberAdded && g.delayRemaining > 0 {
			d := min(c.cfg.InitialRebalanceDelay, g.delayRemaining)
			g.delayRemaining -= d
			g.newMemberAdded = false
			g.delayUntil = now.Add(d)
			return
		}
		c.completeJoinLocked(g)
		return
	}
	if !g.joinDeadline.IsZero() && !now.Before(g.joinDeadline) {
		c.completeJoinLocked(g)
	}
}

// classicDeadline is the earliest classic deadline of g (zero if none).
func (g *group) classicDeadline() time.Time {
	var t time.Time
	for _, dl := range g.pending {
		t = earliest(t, dl)
	}
	for _, m := range g.members {
		if !m.awaiting() {
			t = earliest(t, m.deadline)
		}
	}
	switch g.state {
	case statePreparingRebalance:
		t = earliest(t, g.delayUntil)
		t = earliest(t, g.joinDeadline)
	case stateCompletingRebalance, stateStable:
		t = earliest(t, g.syncDeadline)
	}
	return t
}
