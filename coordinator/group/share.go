package group

// The KIP-932 share group model: members with epochs and a server-side
// assignment in which a partition may be given to several members at once
// (records, not partitions, are what share-group members divide among
// themselves; the partition leader hands each record to one member).
//
// A share group has a group epoch, bumped whenever a member joins or leaves,
// a subscription changes, or the metadata of a subscribed topic changes
// (checked on every heartbeat). Each bump computes a new assignment at once
// (the assignment epoch always equals the group epoch). There is no
// revocation phase: a member simply moves to its new assignment and the
// group epoch on its next heartbeat. The group is Empty without members and
// Stable with them (Kafka's ShareGroupState).
//
// The assignor is Kafka's "simple" share assignor, per topic: with S
// subscribers and P partitions every partition gets ceil(S/P) slots (one
// when S <= P), the P*ceil(S/P) slots are dealt out as evenly as
// possible (each member's quota differs by at most one), and a member never
// holds a partition twice. It is sticky: a member keeps the partitions it
// held while they fit its quota and the partition's slots; only the
// remainder moves. Every partition of a subscribed topic is assigned to at
// least one subscriber. Every function here needs Coordinator.mu.

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Kafka's defaults for share groups (group.share.*).
const (
	DefaultShareHeartbeatInterval = 5 * time.Second  // group.share.heartbeat.interval.ms
	DefaultShareSessionTimeout    = 45 * time.Second // group.share.session.timeout.ms
	DefaultShareMaxSize           = 200              // group.share.max.size
)

// ShareAssignor is the name ShareGroupDescribe gives the share assignor.
const ShareAssignor = "simple"

// ShareSettings are the effective settings of one share group: the broker's
// group.share.* defaults overridden by the group's own configs
// (share.heartbeat.interval.ms, share.session.timeout.ms, KIP-1240). Zero
// fields take Kafka's defaults.
type ShareSettings struct {
	HeartbeatInterval, SessionTimeout time.Duration
	// MaxSize is group.share.max.size: a join beyond it gets
	// GROUP_MAX_SIZE_REACHED.
	MaxSize int
}

// ShareGroupInfo is what the share-group offset APIs need of a share group.
type ShareGroupInfo struct {
	// Empty says the group has no members.
	Empty bool
	// Topics is the union of the members' subscribed topic names, sorted.
	// An empty group keeps the topics it last subscribed to while it had
	// members (persisted with the group), so its share state can still be
	// described, altered and deleted after everyone left.
	Topics []string
}

// shareGroup is the KIP-932 state of a share group (kindShare).
type shareGroup struct {
	epoch   int32 // group epoch, also the assignment epoch
	members map[string]*smember
	topics  map[string]topicMeta // resolved subscribed topics the assignment was computed from
	// subscribed is the union of the members' subscribed names, sorted;
	// kept when the last member leaves (ShareGroupInfo.Topics).
	subscribed []string
	seq        uint64
	dirty      bool // the group record must be (re)written
}

// smember is a share group member.
type smember struct {
	id         string
	rackID     *string
	clientID   string
	clientHost string
	epoch      int32
	prevEpoch  int32
	topics     []string  // subscribed names, sorted, deduplicated
	assigned   partSet   // what the member was last told (at epoch)
	target     partSet   // its assignment at the group epoch
	seq        uint64    // join order
	deadline   time.Time // session expiry
}

func newShareGroup() *shareGroup {
	return &shareGroup{members: make(map[string]*smember), topics: make(map[string]topicMeta)}
}

func (sg *shareGroup) state() string {
	if len(sg.members) == 0 {
		return "Empty"
	}
	return "Stable"
}

func (sg *shareGroup) deadline() time.Time {
	var t time.Time
	for _, m := range sg.members {
		t = earliest(t, m.deadline)
	}
	return t
}

// ordered returns the members in join order (ties by id).
func (sg *shareGroup) ordered() []*smember {
	ms := slices.Collect(maps.Values(sg.members))
	slices.SortFunc(ms, func(a, b *smember) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	return ms
}

// shareSettingsLocked resolves the settings of group id.
func (c *Coordinator) shareSettingsLocked(id string) ShareSettings {
	var s ShareSettings
	if c.cfg.ShareSettings != nil {
		s = c.cfg.ShareSettings(id)
	}
	if s.HeartbeatInterval <= 0 {
		s.HeartbeatInterval = DefaultShareHeartbeatInterval
	}
	if s.SessionTimeout <= 0 {
		s.SessionTimeout = DefaultShareSessionTimeout
	}
	if s.MaxSize <= 0 {
		s.MaxSize = DefaultShareMaxSize
	}
	return s
}

// resolveShareLocked resolves the topics of names that exist.
func (c *Coordinator) resolveShareLocked(names []string) map[string]topicMeta {
	out := make(map[string]topicMeta, len(names))
	if c.cfg.TopicMetadata == nil {
		return out
	}
	for _, name := range names {
		if id, parts, ok := c.cfg.TopicMetadata(name); ok && parts > 0 {
			out[name] = topicMeta{name: name, id: id, partitions: parts}
		}
	}
	return out
}

// bumpShareLocked moves the group epoch and recomputes the assignment.
// sg.subscribed becomes the members' union (an empty group keeps the last
// one).
func (c *Coordinator) bumpShareLocked(g *group, reason RebalanceReason) {
	sg := g.sg
	sg.epoch++
	c.mu.stats.rebalances[reason]++
	var union []string
	if len(sg.members) > 0 {
		names := make(map[string]bool)
		for _, m := range sg.members {
			for _, t := range m.topics {
				names[t] = true
			}
		}
		union = slices.Sorted(maps.Keys(names))
		sg.subscribed = union
	}
	sg.topics = c.resolveShareLocked(union)
	assignShare(sg)
	sg.dirty = true
	g.dirty = true
	c.log.Info("group rebalanced", "group", g.id, "epoch", sg.epoch, "reason", string(reason),
		"members", len(sg.members), "assignor", ShareAssignor, "protocol", "share")
}

// maybeShareMetadataBumpLocked bumps the epoch if the subscribed topics'
// metadata (existence, id, partition count) changed since the last
// assignment. While the group has members sg.subscribed is their union
// (every change of it bumps), so this costs one lookup per distinct topic.
func (c *Coordinator) maybeShareMetadataBumpLocked(g *group) {
	if len(g.sg.members) > 0 && !maps.Equal(c.resolveShareLocked(g.sg.subscribed), g.sg.topics) {
		c.bumpShareLocked(g, ReasonMetadataChanged)
	}
}

// assignShare computes every member's target from sg.topics, keeping what
// each member held where the new quotas allow. Its work is linear in the
// members' previous assignments plus, per topic, subscribers x partitions.
func assignShare(sg *shareGroup) {
	members := sg.ordered()
	// prev[topic id][member] = the partitions the member held.
	prev := make(map[[16]byte]map[string][]int32)
	for _, m := range members {
		for _, tp := range sortedParts(m.target) {
			byMember := prev[tp.id]
			if byMember == nil {
				byMember = make(map[string][]int32)
				prev[tp.id] = byMember
			}
			byMember[m.id] = append(byMember[m.id], tp.p)
		}
		m.target = make(partSet)
	}
	subs := make(map[string][]*smember, len(sg.topics))
	for _, m := range members {
		for _, name := range m.topics {
			if _, ok := sg.topics[name]; ok {
				subs[name] = append(subs[name], m)
			}
		}
	}
	for _, name := range sortedKeys(sg.topics) {
		if len(subs[name]) > 0 {
			t := sg.topics[name]
			assignShareTopic(t, subs[name], prev[t.id])
		}
	}
}

// assignShareTopic deals the partitions of t to subs (in join order); prev
// holds what each member held of t.
func assignShareTopic(t topicMeta, subs []*smember, prev map[string][]int32) {
	s, p := len(subs), int(t.partitions)
	slotsPer := (s + p - 1) / p // members per partition
	total := slotsPer * p
	held := make(map[string]int, s)
	for _, m := range subs {
		for _, part := range prev[m.id] {
			if part < t.partitions {
				held[m.id]++
			}
		}
	}
	// Quotas: total/s each, one more for total%s members; the extra slots
	// go to the members that held the most of this topic (stickiness),
	// then by join order.
	byHeld := slices.Clone(subs)
	slices.SortStableFunc(byHeld, func(a, b *smember) int { return held[b.id] - held[a.id] })
	quota := make(map[string]int, s)
	for i, m := range byHeld {
		quota[m.id] = total / s
		if i < total%s {
			quota[m.id]++
		}
	}
	holders := make([]int, p)
	have := make(map[string]int, s)
	give := func(m *smember, part int) {
		m.target[tpid{id: t.id, p: int32(part)}] = struct{}{}
		holders[part]++
		have[m.id]++
	}
	// Keep what fits, members that held fewest first (they have the fewest
	// partitions to fall back on).
	slices.Reverse(byHeld)
	for _, m := range byHeld {
		for _, part := range prev[m.id] {
			if part >= t.partitions || have[m.id] >= quota[m.id] || holders[part] >= slotsPer {
				continue
			}
			give(m, int(part))
		}
	}
	// Fill: members short of their quota take free slots, scanning the
	// partitions round-robin from where the previous member stopped, so
	// the scans add up to about one pass per member.
	cursor := 0
	for _, m := range subs {
		for n := 0; n < p && have[m.id] < quota[m.id]; n++ {
			part := (cursor + n) % p
			if _, mine := m.target[tpid{id: t.id, p: int32(part)}]; mine || holders[part] >= slotsPer {
				continue
			}
			give(m, part)
			cursor = (part + 1) % p
		}
	}
	// Every partition has a holder: one left without (the fill could not
	// place it) goes to the subscriber holding the fewest.
	for part := range p {
		if holders[part] > 0 {
			continue
		}
		least := subs[0]
		for _, m := range subs[1:] {
			if have[m.id] < have[least.id] {
				least = m
			}
		}
		give(least, part)
	}
}

// removeShareMemberLocked drops m and rebalances.
func (c *Coordinator) removeShareMemberLocked(g *group, m *smember, reason RebalanceReason) {
	delete(g.sg.members, m.id)
	c.bumpShareLocked(g, reason)
}

// tickShareLocked removes members whose session passed.
func (c *Coordinator) tickShareLocked(g *group, now time.Time) {
	sg := g.sg
	for _, m := range sg.ordered() {
		if sg.members[m.id] != m || m.deadline.IsZero() || now.Before(m.deadline) {
			continue
		}
		c.log.Info("group member session expired", "group", g.id, "member", m.id)
		c.removeShareMemberLocked(g, m, ReasonSessionExpired)
	}
}

// toShareLocked makes a fresh group a share group.
func (c *Coordinator) toShareLocked(g *group) {
	g.kind = kindShare
	g.sg = newShareGroup()
	g.state = stateEmpty
}

// ShareGroup describes group for the share-group offset APIs
// (DescribeShareGroupOffsets, AlterShareGroupOffsets,
// DeleteShareGroupOffsets, DeleteGroups' share state). code is 0,
// NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE
// (closed), GROUP_ID_NOT_FOUND (no such group) or
// INCONSISTENT_GROUP_PROTOCOL (the id is a group of another type).
func (c *Coordinator) ShareGroup(group string) (ShareGroupInfo, int16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, code := c.servableLocked(group); code != 0 {
		return ShareGroupInfo{}, code
	}
	g := c.mu.groups[group]
	switch {
	case g == nil:
		return ShareGroupInfo{}, kerr.GroupIDNotFound.Code
	case g.kind != kindShare:
		return ShareGroupInfo{}, kerr.InconsistentGroupProtocol.Code
	}
	return ShareGroupInfo{Empty: len(g.sg.members) == 0, Topics: slices.Clone(g.sg.subscribed)}, 0
}

// EnsureShareGroup makes group an empty share group if it does not exist
// and adds topics to the topics an empty group keeps
// (ShareGroupInfo.Topics), durably, as Kafka's AlterShareGroupOffsets
// creates the group whose offsets it sets. A share group with members is
// left alone (the caller refuses it with NON_EMPTY_GROUP first). code is
// 0, GROUP_ID_NOT_FOUND for a group of another type, or ShareGroup's
// availability codes.
func (c *Coordinator) EnsureShareGroup(ctx context.Context, group string, topics []string) int16 {
	c.mu.Lock()
	p, code := c.servableLocked(group)
	if code != 0 {
		c.mu.Unlock()
		return code
	}
	g := c.mu.groups[group]
	switch {
	case g == nil:
		g = newGroup(group, p)
		c.toShareLocked(g)
		c.mu.groups[group] = g
		g.sg.dirty, g.dirty = true, true
	case g.kind != kindShare:
		c.mu.Unlock()
		return kerr.GroupIDNotFound.Code
	}
	if len(g.sg.members) == 0 {
		merged := slices.Clone(g.sg.subscribed)
		for _, t := range topics {
			if !slices.Contains(merged, t) {
				merged = append(merged, t)
			}
		}
		slices.Sort(merged)
		if !slices.Equal(merged, g.sg.subscribed) {
			g.sg.subscribed = merged
			g.sg.dirty, g.dirty = true, true
		}
	}
	dirty := g.dirty
	c.mu.Unlock()
	if !dirty {
		return 0
	}
	return c.flushNow(ctx, g, "share")
}
