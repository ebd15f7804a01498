package group

// ConsumerGroupHeartbeat: v0-1 (KIP-848).
//
// The whole protocol of KIP-848 groups: joining (member epoch 0), staying
// alive and reconciling (the current epoch), leaving (-1) and a static
// member's temporary leave (-2). The coordinator computes the target
// assignment with a server-side assignor ("uniform" by default, or "range")
// whenever the group epoch moves, and hands each member the partitions of
// its target that no other member still owns; a member giving partitions up
// keeps its epoch until its heartbeat stops listing them.
//
//   - v0: the coordinator generates the member id on join.
//   - v1 (KIP-1082): the client generates its member id (a UUID) and sends
//     it on every request including the join; it also adds
//     SubscribedTopicRegex (RE2, whole-name match), which needs
//     Config.ListTopics (else INVALID_REQUEST); a bad regex is
//     INVALID_REGULAR_EXPRESSION.
//   - A heartbeat for a group this coordinator does not know with a non-zero
//     epoch gets UNKNOWN_MEMBER_ID (Kafka says GROUP_ID_NOT_FOUND), so clients
//     rejoin after a coordinator move instead of failing.
//   - A classic group with members cannot be joined this way
//     (GROUP_ID_NOT_FOUND); an empty one is converted, keeping its offsets.
//   - Every state change is written to __consumer_offsets before the answer.

import (
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ConsumerGroupHeartbeat handles a ConsumerGroupHeartbeat request (v0-1).
func (c *Coordinator) ConsumerGroupHeartbeat(ctx context.Context, req *kmsg.ConsumerGroupHeartbeatRequest) *kmsg.ConsumerGroupHeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
	hb, _ := c.consumerTimings(req.Group)
	resp.HeartbeatIntervalMillis = millis(hb)
	fail := func(code int16, msg string) *kmsg.ConsumerGroupHeartbeatResponse {
		out := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
		out.ErrorCode = code
		if msg != "" {
			out.ErrorMessage = &msg
		}
		return out
	}
	if code, msg := c.validateConsumerHeartbeat(req); code != 0 {
		return fail(code, msg)
	}
	c.mu.Lock()
	g, code, msg := c.consumerGroupForHeartbeatLocked(req)
	if code == 0 {
		code, msg = c.consumerHeartbeatLocked(ctx, g, req, resp)
		c.rearmLocked(g)
	}
	if code != 0 && g != nil {
		c.dropIfUnusedLocked(g)
	}
	dirty := code == 0 && g.dirty
	c.mu.Unlock()
	if code != 0 {
		return fail(code, msg)
	}
	if dirty {
		if code := c.flushNow(ctx, g, "consumer"); code != 0 {
			return fail(code, "")
		}
	}
	return resp
}

// validateConsumerHeartbeat is Kafka's
// throwIfConsumerGroupHeartbeatRequestIsInvalid.
func (c *Coordinator) validateConsumerHeartbeat(req *kmsg.ConsumerGroupHeartbeatRequest) (int16, string) {
	bad := func(msg string) (int16, string) { return kerr.InvalidRequest.Code, msg }
	switch {
	case req.Group == "":
		return bad("GroupId can't be empty.")
	case req.InstanceID != nil && *req.InstanceID == "":
		return bad("InstanceId can't be empty.")
	case req.RackID != nil && *req.RackID == "":
		return bad("RackId can't be empty.")
	case req.MemberID == "" && (req.Version >= 1 || req.MemberEpoch != 0):
		return bad("MemberId can't be empty.")
	case req.MemberEpoch < leftEpoch:
		return bad("MemberEpoch is invalid.")
	case req.MemberEpoch == leftEpoch && req.InstanceID == nil:
		return bad("InstanceId can't be null.")
	}
	if req.MemberEpoch == 0 {
		switch {
		case req.RebalanceTimeoutMillis == -1:
			return bad("RebalanceTimeoutMs must be provided when joining.")
		case req.Topics == nil || len(req.Topics) > 0:
			return bad("TopicPartitions must be empty when (re-)joining.")
		case req.SubscribedTopicNames == nil && req.SubscribedTopicRegex == nil:
			return bad("SubscribedTopicNames or SubscribedTopicRegex must be set in first request.")
		}
	}
	if re := req.SubscribedTopicRegex; re != nil && *re != "" {
		if c.cfg.ListTopics == nil {
			return bad("SubscribedTopicRegex is not supported by this coordinator.")
		}
		if _, err := compileSubscriptionRegex(*re); err != nil {
			return kerr.InvalidRegularExpression.Code, err.Error()
		}
	}
	if a := req.ServerAssignor; a != nil && !slices.Contains(c.cfg.ConsumerAssignors, *a) {
		return kerr.UnsupportedAssignor.Code, "ServerAssignor " + *a + " is not supported."
	}
	return 0, ""
}

// consumerGroupForHeartbeatLocked finds (or, for a join, creates or
// converts) the group.
func (c *Coordinator) consumerGroupForHeartbeatLocked(req *kmsg.ConsumerGroupHeartbeatRequest) (*group, int16, string) {
	p, code := c.servableLocked(req.Group)
	if code != 0 {
		return nil, code, ""
	}
	g := c.mu.groups[req.Group]
	switch {
	case g == nil && req.MemberEpoch != 0:
		return nil, kerr.UnknownMemberID.Code, ""
	case g == nil:
		g = newGroup(req.Group, p)
		c.toConsumerLocked(g)
		g.dirty, g.cg.dirtyGroup = false, false // nothing to write until a member joins
		c.mu.groups[req.Group] = g
	case g.kind == kindShare:
		return nil, kerr.GroupIDNotFound.Code, "Group " + req.Group + " is not a consumer group."
	case g.kind == kindClassic && g.hasMembers():
		return nil, kerr.GroupIDNotFound.Code, "Group " + req.Group + " is not a consumer group."
	case g.kind == kindClassic && req.MemberEpoch != 0:
		return nil, kerr.UnknownMemberID.Code, ""
	case g.kind == kindClassic:
		c.toConsumerLocked(g)
	}
	return g, 0, ""
}

func (c *Coordinator) consumerHeartbeatLocked(ctx context.Context, g *group, req *kmsg.ConsumerGroupHeartbeatRequest, resp *kmsg.ConsumerGroupHeartbeatResponse) (int16, string) {
	switch req.MemberEpoch {
	case 0:
		return c.consumerJoinLocked(ctx, g, req, resp)
	case -1:
		return c.consumerLeaveLocked(g, req, resp)
	case leftEpoch:
		return c.consumerStaticLeaveLocked(g, req, resp)
	}
	return c.consumerRegularLocked(g, req, resp)
}

// consumerJoinLocked handles member epoch 0: a new member, a static member
// replacing its departed incarnation, or a known member starting over.
func (c *Coordinator) consumerJoinLocked(ctx context.Context, g *group, req *kmsg.ConsumerGroupHeartbeatRequest, resp *kmsg.ConsumerGroupHeartbeatResponse) (int16, string) {
	cg := g.cg
	id := req.MemberID
	if id == "" {
		id = c.newUUID()
	}
	var m *cmember
	isNew := false
	if iid := req.InstanceID; iid != nil {
		if ownerID, ok := cg.static[*iid]; ok && ownerID != id {
			if old := cg.members[ownerID]; old != nil {
				if old.epoch != leftEpoch {
					return kerr.UnreleasedInstanceID.Code, "Static member " + *iid + " has not left the group."
				}
				m = c.replaceConsumerStaticLocked(g, old, id)
			}
		}
	}
	if m == nil {
		if m = cg.members[id]; m != nil {
			if m.epoch != leftEpoch {
				releaseAllLocked(cg, m) // the client says it owns nothing
			}
			m.prevEpoch, m.epoch, m.state = m.epoch, 0, memberStable
			m.revokeDeadline = time.Time{}
		} else {
			if len(cg.members) >= c.cfg.MaxGroupSize {
				return kerr.GroupMaxSizeReached.Code, "The consumer group has reached its max size."
			}
			m = newCMember(id)
			cg.seq++
			m.seq = cg.seq
			_, m.rebalanceTimeout = c.consumerTimings(g.id)
			cg.members[id] = m
			isNew = true
		}
	}
	if iid := req.InstanceID; iid != nil {
		m.instanceID = cloneStringPtr(iid)
		cg.static[*iid] = m.id
	}
	ci := clientFrom(ctx)
	m.clientID, m.clientHost = ci.id, ci.host
	changed := updateConsumerMember(m, req)
	_, session := c.consumerTimings(g.id)
	m.sessionDeadline = c.clock.Now().Add(session)
	cg.markMember(m.id)
	g.dirty = true
	switch {
	case isNew:
		c.bumpEpochLocked(g, ReasonMemberJoined)
	case changed:
		c.bumpEpochLocked(g, ReasonMetadataChanged)
	default:
		c.maybeMetadataBumpLocked(g)
	}
	c.reconcileLocked(g, m, req.Topics)
	fillConsumerResponse(resp, m, true)
	return 0, ""
}

// replaceConsumerStaticLocked hands a departed static member's assignment to
// its new incarnation (new member id, epoch 0) without a rebalance.
func (c *Coordinator) replaceConsumerStaticLocked(g *group, old *cmember, newID string) *cmember {
	cg := g.cg
	m := newCMember(newID)
	m.seq = old.seq
	m.topics, m.regex, m.assignor = old.topics, old.regex, old.assignor
	m.rebalanceTimeout = old.rebalanceTimeout
	m.target = old.target
	for tp, at := range old.assigned {
		m.assigned[tp] = at
		cg.owners[tp] = newID
	}
	for tp := range old.revoking {
		cg.release(tp, old.id)
	}
	delete(cg.members, old.id)
	cg.markMember(old.id)
	cg.members[newID] = m
	c.log.Info("static group member replaced", "group", g.id, "instance", *old.instanceID, "old", old.id, "new", newID)
	return m
}

// updateConsumerMember applies the optional fields of a heartbeat and
// reports whether the subscription or assignor changed.
func updateConsumerMember(m *cmember, req *kmsg.ConsumerGroupHeartbeatRequest) bool {
	changed := false
	if req.SubscribedTopicNames != nil {
		topics := slices.Clone(req.SubscribedTopicNames)
		slices.Sort(topics)
		topics = slices.Compact(topics)
		if !slices.Equal(topics, m.topics) {
			m.topics, changed = topics, true
		}
	}
	if re := req.SubscribedTopicRegex; re != nil && *re != m.regex {
		m.regex, changed = *re, true
	}
	if a := req.ServerAssignor; a != nil && *a != m.assignor {
		m.assignor, changed = *a, true
	}
	if req.RackID != nil {
		m.rackID = cloneStringPtr(req.RackID)
	}
	if req.RebalanceTimeoutMillis > 0 {
		m.rebalanceTimeout = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	}
	return changed
}

func (c *Coordinator) consumerRegularLocked(g *group, req *kmsg.ConsumerGroupHeartbeatRequest, resp *kmsg.ConsumerGroupHeartbeatResponse) (int16, string) {
	cg := g.cg
	m, code, msg := c.lookupConsumerMemberLocked(cg, req)
	if code != 0 {
		return code, msg
	}
	if req.MemberEpoch > m.epoch {
		return kerr.FencedMemberEpoch.Code, "The member epoch is ahead of the coordinator's."
	}
	if req.MemberEpoch < m.epoch {
		// Accept the previous epoch if the answer that moved the member
		// on was lost (it still owns a subset of what it was given).
		if req.MemberEpoch != m.prevEpoch || req.Topics == nil || !ownedSubset(req.Topics, m.assigned) {
			return kerr.FencedMemberEpoch.Code, "The member epoch is stale."
		}
	}
	_, session := c.consumerTimings(g.id)
	m.sessionDeadline = c.clock.Now().Add(session)
	if updateConsumerMember(m, req) {
		cg.markMember(m.id)
		g.dirty = true
		c.bumpEpochLocked(g, ReasonMetadataChanged)
	} else {
		c.maybeMetadataBumpLocked(g)
	}
	assignedChanged := c.reconcileLocked(g, m, req.Topics)
	full := req.RebalanceTimeoutMillis != -1 && (req.SubscribedTopicNames != nil || req.SubscribedTopicRegex != nil) && req.Topics != nil
	fillConsumerResponse(resp, m, full || assignedChanged || req.MemberEpoch != m.epoch)
	return 0, ""
}

func (c *Coordinator) consumerLeaveLocked(g *group, req *kmsg.ConsumerGroupHeartbeatRequest, resp *kmsg.ConsumerGroupHeartbeatResponse) (int16, string) {
	m, code, msg := c.lookupConsumerMemberLocked(g.cg, req)
	if code != 0 {
		return code, msg
	}
	c.log.Info("group member left", "group", g.id, "member", m.id)
	c.removeCMemberLocked(g, m, ReasonMemberLeft)
	resp.MemberID = kmsg.StringPtr(m.id)
	resp.MemberEpoch = -1
	return 0, ""
}

// consumerStaticLeaveLocked parks a static member at epoch -2: it keeps its
// assignment, and its session keeps running, so a restart within the
// session timeout costs no rebalance.
func (c *Coordinator) consumerStaticLeaveLocked(g *group, req *kmsg.ConsumerGroupHeartbeatRequest, resp *kmsg.ConsumerGroupHeartbeatResponse) (int16, string) {
	cg := g.cg
	m, code, msg := c.lookupConsumerMemberLocked(cg, req)
	if code != 0 {
		return code, msg
	}
	for tp := range m.revoking {
		cg.release(tp, m.id)
	}
	m.revoking = make(partSet)
	m.prevEpoch, m.epoch, m.state = m.epoch, leftEpoch, memberStable
	m.revokeDeadline = time.Time{}
	cg.markMember(m.id)
	g.dirty = true
	c.log.Info("static group member left temporarily", "group", g.id, "member", m.id, "instance", *req.InstanceID)
	resp.MemberID = kmsg.StringPtr(m.id)
	resp.MemberEpoch = leftEpoch
	return 0, ""
}

// lookupConsumerMemberLocked finds the member a non-join heartbeat names,
// checking its static identity.
func (c *Coordinator) lookupConsumerMemberLocked(cg *consumerGroup, req *kmsg.ConsumerGroupHeartbeatRequest) (*cmember, int16, string) {
	if iid := req.InstanceID; iid != nil {
		known, ok := cg.static[*iid]
		if !ok {
			return nil, kerr.UnknownMemberID.Code, "Instance id " + *iid + " is unknown."
		}
		if known != req.MemberID {
			return nil, kerr.FencedInstanceID.Code, "Instance id " + *iid + " belongs to another member."
		}
	}
	m := cg.members[req.MemberID]
	if m == nil {
		return nil, kerr.UnknownMemberID.Code, ""
	}
	return m, 0, ""
}

func ownedSubset(owned []kmsg.ConsumerGroupHeartbeatRequestTopic, assigned map[tpid]int32) bool {
	for _, t := range owned {
		for _, p := range t.Partitions {
			if _, ok := assigned[tpid{id: t.TopicID, p: p}]; !ok {
				return false
			}
		}
	}
	return true
}

func fillConsumerResponse(resp *kmsg.ConsumerGroupHeartbeatResponse, m *cmember, withAssignment bool) {
	resp.MemberID = kmsg.StringPtr(m.id)
	resp.MemberEpoch = m.epoch
	if withAssignment {
		a := kmsg.NewConsumerGroupHeartbeatResponseAssignment()
		a.Topics = assignmentTopics(m.assigned)
		if a.Topics == nil {
			a.Topics = []kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic{}
		}
		resp.Assignment = &a
	}
}

// consumerTimings is group's heartbeat interval and session timeout: its
// group configs over the broker's (Config.ConsumerSettings).
func (c *Coordinator) consumerTimings(group string) (heartbeat, session time.Duration) {
	heartbeat, session = c.cfg.ConsumerHeartbeatInterval, c.cfg.ConsumerSessionTimeout
	if c.cfg.ConsumerSettings != nil {
		h, s := c.cfg.ConsumerSettings(group)
		if h > 0 {
			heartbeat = h
		}
		if s > 0 {
			session = s
		}
	}
	return heartbeat, session
}
