package group

// The KIP-848 consumer group model: members with epochs, a target assignment
// computed by a server-side assignor whenever the group epoch moves, and the
// per-member reconciliation that walks each member from its current
// assignment to its target without ever letting two members own a partition
// at once (Kafka's CurrentAssignmentBuilder). Every function here needs
// Coordinator.mu.

import (
	"maps"
	"regexp"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// tpid is a partition of a topic named by topic id, as KIP-848 names them.
type tpid struct {
	id [16]byte
	p  int32
}

type partSet map[tpid]struct{}

type topicMeta struct {
	name       string
	id         [16]byte
	partitions int32
}

// memberState is a KIP-848 member's reconciliation state.
type memberState int8

const (
	memberStable     memberState = iota // owns its whole target at the target epoch
	memberUnrevoked                     // must give partitions up before moving on
	memberUnreleased                    // at the target epoch, waiting for partitions others still own
)

// leftEpoch is the member epoch of a static member that left with epoch -2
// and is expected back: it keeps its assignment until its session expires.
const leftEpoch int32 = -2

// regexRefreshInterval bounds how often regex subscriptions are re-matched
// against the topic list.
const regexRefreshInterval = 10 * time.Second

// consumerState is a KIP-848 group state as ConsumerGroupDescribe and
// ListGroups spell it.
type consumerState int8

const (
	cgEmpty consumerState = iota
	cgAssigning
	cgReconciling
	cgStable
)

func (s consumerState) String() string {
	switch s {
	case cgEmpty:
		return "Empty"
	case cgAssigning:
		return "Assigning"
	case cgReconciling:
		return "Reconciling"
	}
	return "Stable"
}

type consumerGroup struct {
	epoch       int32 // group epoch: bumped on membership, subscription or metadata change
	targetEpoch int32 // epoch the current target assignment was computed for
	assignor    string
	members     map[string]*cmember
	static      map[string]string    // group.instance.id -> member id
	owners      map[tpid]string      // partition -> member holding it (assigned or being revoked)
	topics      map[string]topicMeta // resolved subscribed topics the target was computed from

	regexMatches   map[string][]string // regex -> matching topic names
	regexCheckedAt time.Time

	// Records that flush must (re)write; a dirty member id that is no
	// longer a member is written as a tombstone.
	dirtyGroup   bool
	dirtyMembers map[string]struct{}
	seq          uint64
}

// cmember is a KIP-848 group member.
type cmember struct {
	id               string
	instanceID       *string
	rackID           *string
	clientID         string
	clientHost       string
	epoch            int32
	prevEpoch        int32
	state            memberState
	rebalanceTimeout time.Duration
	topics           []string // subscribed names, sorted
	regex            string
	assignor         string
	assigned         map[tpid]int32 // partitions the member may consume -> epoch they were given at
	revoking         partSet        // partitions it must give up; still owned until it does
	target           partSet
	seq              uint64
	sessionDeadline  time.Time
	revokeDeadline   time.Time
}

func newConsumerGroup() *consumerGroup {
	return &consumerGroup{
		members:      make(map[string]*cmember),
		static:       make(map[string]string),
		owners:       make(map[tpid]string),
		topics:       make(map[string]topicMeta),
		regexMatches: make(map[string][]string),
		dirtyMembers: make(map[string]struct{}),
	}
}

func newCMember(id string) *cmember {
	return &cmember{
		id:       id,
		assigned: make(map[tpid]int32),
		revoking: make(partSet),
		target:   make(partSet),
	}
}

func (cg *consumerGroup) state() consumerState {
	if len(cg.members) == 0 {
		return cgEmpty
	}
	if cg.epoch > cg.targetEpoch {
		return cgAssigning
	}
	for _, m := range cg.members {
		if m.epoch != leftEpoch && (m.epoch != cg.targetEpoch || m.state != memberStable) {
			return cgReconciling
		}
	}
	return cgStable
}

func (cg *consumerGroup) deadline() time.Time {
	var t time.Time
	for _, m := range cg.members {
		t = earliest(t, m.sessionDeadline)
		if m.state == memberUnrevoked {
			t = earliest(t, m.revokeDeadline)
		}
	}
	return t
}

func (cg *consumerGroup) markMember(id string) { cg.dirtyMembers[id] = struct{}{} }

// ordered returns the members sorted by join order (ties by id).
func (cg *consumerGroup) ordered() []*cmember {
	ms := slices.Collect(maps.Values(cg.members))
	slices.SortFunc(ms, func(a, b *cmember) int {
		if a.seq != b.seq {
			if a.seq < b.seq {
				return -1
			}
			return 1
		}
		if a.id < b.id {
			return -1
		}
		return 1
	})
	return ms
}

func (cg *consumerGroup) release(tp tpid, memberID string) {
	if cg.owners[tp] == memberID {
		delete(cg.owners, tp)
	}
}

// topicNames maps topic ids to names for responses.
func (cg *consumerGroup) topicNames() map[[16]byte]string {
	out := make(map[[16]byte]string, len(cg.topics))
	for _, t := range cg.topics {
		out[t.id] = t.name
	}
	return out
}

// subscribedTopicNames is every topic some member subscribes to, by name
// or by regex (the set OffsetDelete and offset expiry protect).
func (cg *consumerGroup) subscribedTopicNames() map[string]bool {
	out := make(map[string]bool)
	for _, m := range cg.members {
		for _, t := range m.topics {
			out[t] = true
		}
		for _, t := range cg.regexMatches[m.regex] {
			out[t] = true
		}
	}
	return out
}

// compileSubscriptionRegex compiles a KIP-848 regex. Kafka uses RE2J and
// requires the whole topic name to match; Go's regexp is RE2 as well.
func compileSubscriptionRegex(s string) (*regexp.Regexp, error) {
	return regexp.Compile("^(?:" + s + ")$")
}

// resolveLocked resolves every member's subscription to topic metadata.
// Regexes are re-matched when refresh is set or when not matched before.
func (c *Coordinator) resolveLocked(cg *consumerGroup, refresh bool) map[string]topicMeta {
	if refresh {
		cg.regexCheckedAt = c.clock.Now()
		cg.regexMatches = make(map[string][]string) // also forgets regexes nobody uses any more
	}
	names := make(map[string]bool)
	var all []string
	listed := false
	for _, m := range cg.members {
		for _, t := range m.topics {
			names[t] = true
		}
		if m.regex == "" {
			continue
		}
		matches, ok := cg.regexMatches[m.regex]
		if !ok {
			if !listed && c.cfg.ListTopics != nil {
				all, listed = c.cfg.ListTopics(), true
			}
			matches = nil
			if re, err := compileSubscriptionRegex(m.regex); err == nil {
				for _, t := range all {
					// Internal topics match too, as in Kafka 4: a regex that
					// names __consumer_offsets gets it.
					if re.MatchString(t) {
						matches = append(matches, t)
					}
				}
			}
			slices.Sort(matches)
			cg.regexMatches[m.regex] = matches
		}
		for _, t := range matches {
			names[t] = true
		}
	}
	out := make(map[string]topicMeta, len(names))
	if c.cfg.TopicMetadata == nil {
		return out
	}
	for name := range names {
		if id, parts, ok := c.cfg.TopicMetadata(name); ok && parts > 0 {
			out[name] = topicMeta{name: name, id: id, partitions: parts}
		}
	}
	return out
}

// chooseAssignor picks the server assignor most members ask for; ties and
// groups where nobody asks go to the configured order.
func (c *Coordinator) chooseAssignor(cg *consumerGroup) string {
	counts := make(map[string]int)
	for _, m := range cg.members {
		if m.assignor != "" {
			counts[m.assignor]++
		}
	}
	best, bestN := c.cfg.ConsumerAssignors[0], 0
	for _, a := range c.cfg.ConsumerAssignors {
		if counts[a] > bestN {
			best, bestN = a, counts[a]
		}
	}
	return best
}

// computeTargetLocked recomputes the target assignment for the current group
// epoch.
func (c *Coordinator) computeTargetLocked(g *group) {
	cg := g.cg
	cg.topics = c.resolveLocked(cg, false)
	cg.assignor = c.chooseAssignor(cg)
	in := assignInput{
		members: slices.Sorted(maps.Keys(cg.members)),
		subs:    make(map[string]map[string]bool, len(cg.members)),
		topics:  cg.topics,
		prev:    make(map[string]partSet, len(cg.members)),
	}
	for id, m := range cg.members {
		subs := make(map[string]bool)
		for _, t := range m.topics {
			subs[t] = true
		}
		for _, t := range cg.regexMatches[m.regex] {
			subs[t] = true
		}
		in.subs[id] = subs
		in.prev[id] = m.target
	}
	out := assign(cg.assignor, in)
	for id, m := range cg.members {
		if !maps.Equal(m.target, out[id]) {
			m.target = out[id]
			cg.markMember(id)
		}
	}
	cg.targetEpoch = cg.epoch
	cg.dirtyGroup = true
	g.dirty = true
}

// bumpEpochLocked is a KIP-848 rebalance: the group epoch moves and a new
// target assignment is computed. Members converge on their next heartbeats.
func (c *Coordinator) bumpEpochLocked(g *group, reason RebalanceReason) {
	cg := g.cg
	cg.epoch++
	c.mu.stats.rebalances[reason]++
	c.computeTargetLocked(g)
	c.log.Info("group rebalanced", "group", g.id, "epoch", cg.epoch, "reason", string(reason),
		"members", len(cg.members), "assignor", cg.assignor, "protocol", "consumer")
}

// maybeMetadataBumpLocked bumps the epoch if the subscribed topics' metadata
// (existence, id, partition count, regex matches) changed since the target
// was computed.
func (c *Coordinator) maybeMetadataBumpLocked(g *group) {
	cg := g.cg
	refresh := c.clock.Now().Sub(cg.regexCheckedAt) >= regexRefreshInterval
	if !maps.Equal(c.resolveLocked(cg, refresh), cg.topics) {
		c.bumpEpochLocked(g, ReasonMetadataChanged)
	}
}

// reconcileLocked moves m one step towards its target and reports whether
// its assigned partitions changed. owned is what the member reported owning
// (nil: not reported, so assumed unchanged).
//
//  1. Partitions being revoked that the member no longer reports are freed.
//  2. While any remain, the member stays at its epoch (UNREVOKED).
//  3. Otherwise partitions outside its target are revoked; if the member
//     still reports owning some, it waits for them at its epoch.
//  4. Otherwise it moves to the target epoch and takes every partition of its
//     target that nobody else owns; the rest it waits for (UNRELEASED).
func (c *Coordinator) reconcileLocked(g *group, m *cmember, owned []kmsg.ConsumerGroupHeartbeatRequestTopic) bool {
	cg := g.cg
	before := m.epoch
	beforeState := m.state
	changed, released := false, false
	var have partSet
	if owned != nil {
		have = make(partSet)
		for _, t := range owned {
			for _, p := range t.Partitions {
				have[tpid{id: t.TopicID, p: p}] = struct{}{}
			}
		}
		for tp := range m.revoking {
			if _, ok := have[tp]; !ok {
				delete(m.revoking, tp)
				cg.release(tp, m.id)
				released = true
			}
		}
	}
	defer func() {
		if changed || released || m.epoch != before || m.state != beforeState {
			cg.markMember(m.id)
			g.dirty = true
		}
	}()
	if m.epoch == leftEpoch {
		return false
	}
	if len(m.revoking) > 0 {
		m.state = memberUnrevoked
		return false
	}
	if m.epoch == cg.targetEpoch && m.state == memberStable {
		return false
	}
	for tp := range m.assigned {
		if _, ok := m.target[tp]; ok {
			continue
		}
		delete(m.assigned, tp)
		changed = true
		if _, stillOwned := have[tp]; owned != nil && !stillOwned {
			cg.release(tp, m.id)
			continue
		}
		m.revoking[tp] = struct{}{}
	}
	if len(m.revoking) > 0 {
		m.state = memberUnrevoked
		m.revokeDeadline = c.clock.Now().Add(m.rebalanceTimeout)
		return true
	}
	unreleased := false
	for tp := range m.target {
		if _, ok := m.assigned[tp]; ok {
			continue
		}
		if owner, ok := cg.owners[tp]; ok && owner != m.id {
			unreleased = true
			continue
		}
		cg.owners[tp] = m.id
		m.assigned[tp] = cg.targetEpoch
		changed = true
	}
	if m.epoch != cg.targetEpoch {
		m.prevEpoch, m.epoch = m.epoch, cg.targetEpoch
	}
	m.revokeDeadline = time.Time{}
	m.state = memberStable
	if unreleased {
		m.state = memberUnreleased
	}
	return changed
}

// releaseAllLocked frees everything m owns.
func releaseAllLocked(cg *consumerGroup, m *cmember) {
	for tp := range m.assigned {
		cg.release(tp, m.id)
	}
	for tp := range m.revoking {
		cg.release(tp, m.id)
	}
	m.assigned = make(map[tpid]int32)
	m.revoking = make(partSet)
}

// removeCMemberLocked drops m from the group and rebalances.
func (c *Coordinator) removeCMemberLocked(g *group, m *cmember, reason RebalanceReason) {
	cg := g.cg
	releaseAllLocked(cg, m)
	delete(cg.members, m.id)
	if m.instanceID != nil && cg.static[*m.instanceID] == m.id {
		delete(cg.static, *m.instanceID)
	}
	cg.markMember(m.id)
	g.dirty = true
	c.bumpEpochLocked(g, reason)
}

// tickConsumerLocked fences members whose session or revocation deadline
// passed.
func (c *Coordinator) tickConsumerLocked(g *group, now time.Time) {
	cg := g.cg
	for _, m := range cg.ordered() {
		if cg.members[m.id] != m {
			continue
		}
		switch {
		case !m.sessionDeadline.IsZero() && !now.Before(m.sessionDeadline):
			c.log.Info("group member session expired", "group", g.id, "member", m.id)
			c.removeCMemberLocked(g, m, ReasonSessionExpired)
		case m.state == memberUnrevoked && !m.revokeDeadline.IsZero() && !now.Before(m.revokeDeadline):
			c.log.Info("group member did not revoke partitions in time", "group", g.id, "member", m.id)
			c.removeCMemberLocked(g, m, ReasonRebalanceTimeout)
		}
	}
}

// toConsumerLocked turns an empty classic group into a KIP-848 group,
// keeping its offsets.
func (c *Coordinator) toConsumerLocked(g *group) {
	g.kind = kindConsumer
	g.cg = newConsumerGroup()
	g.members = make(map[string]*member)
	g.pending = make(map[string]time.Time)
	g.static = make(map[string]string)
	g.state = stateEmpty
	g.cg.dirtyGroup = true
	g.dirty = true
}

// toClassicLocked turns an empty KIP-848 group into a classic one, keeping
// its offsets.
func (c *Coordinator) toClassicLocked(g *group) {
	for id := range g.cg.dirtyMembers {
		g.memberTombstones = append(g.memberTombstones, id)
	}
	g.kind = kindClassic
	g.cg = nil
	g.state = stateEmpty
	g.stateSince = c.clock.Now()
	g.protocolType = ""
	g.dirty = g.dirty || g.persistedConsumer
}

// assignmentTopics renders a partition set in response form, sorted.
func assignmentTopics[V any](s map[tpid]V) []kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic {
	var out []kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic
	for _, tp := range sortedParts(s) {
		if n := len(out); n > 0 && out[n-1].TopicID == tp.id {
			out[n-1].Partitions = append(out[n-1].Partitions, tp.p)
			continue
		}
		t := kmsg.NewConsumerGroupHeartbeatResponseAssignmentTopic()
		t.TopicID = tp.id
		t.Partitions = []int32{tp.p}
		out = append(out, t)
	}
	return out
}
