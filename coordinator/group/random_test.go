package group

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestGroupConsumerRandomized drives a KIP-848 group with random joins,
// leaves, static restarts, silences, lost responses, subscription and
// metadata changes and clock jumps, and checks after every step that no
// partition is held by two live members (as clients see it and as the
// server books it) and that the group epoch never goes back. At the end
// everyone heartbeats until the group is Stable and every subscribed
// partition has exactly one owner.
func TestGroupConsumerRandomized(t *testing.T) {
	t.Parallel()
	for seed := range uint64(6) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 0x5eed))
			h := newHarness(t)
			parts := map[string]int32{"a": 5, "b": 3}
			for name, n := range parts {
				h.topic(name, n)
			}
			randomTopics := func() []string {
				switch rng.IntN(3) {
				case 0:
					return []string{"a"}
				case 1:
					return []string{"b"}
				}
				return []string{"a", "b"}
			}
			var clients []*cclient
			for i := range 6 {
				cl := newCClient(fmt.Sprintf("m%d", i), randomTopics()...)
				if i%3 == 0 {
					cl.instance = kmsg.StringPtr(fmt.Sprintf("instance-%d", i))
				}
				clients = append(clients, cl)
			}
			silent := make(map[*cclient]bool)
			var lastEpoch int32
			for range 500 {
				cl := clients[rng.IntN(len(clients))]
				switch op := rng.IntN(100); {
				case op < 55:
					if !silent[cl] {
						h.cgHeartbeat("g", cl)
					}
				case op < 61 && cl.joined:
					h.consumerLeave("g", cl, -1)
					cl.id += "+" // a new consumer process gets a new id
				case op < 66 && cl.joined && cl.instance != nil:
					h.consumerLeave("g", cl, leftEpoch)
					cl.id += "'" // the restarted process
				case op < 74:
					silent[cl] = !silent[cl]
				case op < 84:
					h.clock.Advance(time.Duration(rng.IntN(20)) * time.Second)
				case op < 87:
					name := []string{"a", "b"}[rng.IntN(2)]
					if parts[name] < 12 {
						parts[name]++
						h.topic(name, parts[name])
					}
				case op < 92 && cl.joined && !silent[cl]:
					// The answer is lost: the client keeps its state.
					saved := *cl
					saved.owned = clonePartSet(cl.owned)
					h.cgHeartbeat("g", cl)
					*cl = saved
				case op < 96:
					cl.topics = randomTopics()
					if cl.joined && !silent[cl] {
						h.consumerResubscribe("g", cl)
					}
				default:
					h.clock.Advance(30 * time.Second)
				}
				h.checkExclusive("g", h.liveClients("g", clients))
				if e := h.groupEpoch("g"); e < lastEpoch {
					t.Fatalf("group epoch went back from %d to %d", lastEpoch, e)
				} else {
					lastEpoch = e
				}
			}
			// Quiesce.
			var active []*cclient
			for _, cl := range clients {
				if cl.joined || rng.IntN(2) == 0 {
					active = append(active, cl)
				}
			}
			if len(active) == 0 {
				active = clients[:1]
			}
			h.clock.Advance(time.Minute) // expire every member not in active...
			for _, cl := range active {
				h.cgHeartbeat("g", cl) // ...but active ones rejoin at once
			}
			h.converge("g", active)
			t.Logf("stats %+v epoch %d fenced %v", h.c.Stats().Rebalances, h.groupEpoch("g"), func() (n []int) {
				for _, cl := range clients {
					n = append(n, cl.fenced)
				}
				return n
			}())
			owned := make(map[tpid]*cclient)
			for _, cl := range active {
				for tp := range cl.owned {
					owned[tp] = cl
				}
			}
			for name, n := range parts {
				id, _, _ := h.topicMetadata(name)
				subscribed := false
				for _, cl := range active {
					subscribed = subscribed || slices.Contains(cl.topics, name)
				}
				for p := range n {
					holder, ok := owned[tpid{id: id, p: p}]
					if subscribed != ok {
						t.Fatalf("%s-%d: subscribed %v, owned %v", name, p, subscribed, ok)
					}
					if ok && !slices.Contains(holder.topics, name) {
						t.Fatalf("%s-%d held by %s which does not subscribe to it", name, p, holder.id)
					}
				}
			}
		})
	}
}

func clonePartSet(s partSet) partSet {
	out := make(partSet, len(s))
	for k := range s {
		out[k] = struct{}{}
	}
	return out
}

// consumerLeave sends a leave (-1) or static leave (-2); the client gives
// up its partitions either way.
func (h *harness) consumerLeave(group string, cl *cclient, epoch int32) {
	h.t.Helper()
	r := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	r.Version = 1
	r.Group, r.MemberID, r.MemberEpoch, r.InstanceID = group, cl.id, epoch, cl.instance
	resp := h.c.ConsumerGroupHeartbeat(h.ctx, r)
	switch resp.ErrorCode {
	case 0, kerr.UnknownMemberID.Code, kerr.FencedInstanceID.Code:
	default:
		h.t.Fatalf("leave %d: %v", epoch, kerr.ErrorForCode(resp.ErrorCode))
	}
	cl.joined, cl.owned, cl.epoch = false, make(partSet), 0
}

// consumerResubscribe sends a full heartbeat with the client's new topics.
func (h *harness) consumerResubscribe(group string, cl *cclient) {
	h.t.Helper()
	r := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	r.Version = 1
	r.Group, r.MemberID, r.MemberEpoch, r.InstanceID = group, cl.id, cl.epoch, cl.instance
	r.SubscribedTopicNames = cl.topics
	r.RebalanceTimeoutMillis = 30_000
	r.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	for _, tp := range sortedParts(cl.owned) {
		r.Topics = append(r.Topics, kmsg.ConsumerGroupHeartbeatRequestTopic{TopicID: tp.id, Partitions: []int32{tp.p}})
	}
	resp := h.c.ConsumerGroupHeartbeat(h.ctx, r)
	if resp.ErrorCode != 0 {
		cl.joined, cl.owned, cl.epoch = false, make(partSet), 0
		return
	}
	cl.epoch = resp.MemberEpoch
	if resp.Assignment != nil {
		cl.owned = make(partSet)
		for _, t := range resp.Assignment.Topics {
			for _, p := range t.Partitions {
				cl.owned[tpid{id: t.TopicID, p: p}] = struct{}{}
			}
		}
	}
}

// liveClients are the joined clients the server still counts as active
// members; a client whose session ended may still believe it owns
// partitions (a zombie), which Kafka does not protect against either.
func (h *harness) liveClients(group string, clients []*cclient) []*cclient {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	g := h.c.mu.groups[group]
	var out []*cclient
	for _, cl := range clients {
		if !cl.joined || g == nil || g.cg == nil {
			continue
		}
		if m := g.cg.members[cl.id]; m != nil && m.epoch != leftEpoch {
			out = append(out, cl)
		}
	}
	return out
}

func (h *harness) groupEpoch(group string) int32 {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	if g := h.c.mu.groups[group]; g != nil && g.cg != nil {
		return g.cg.epoch
	}
	return 0
}

// sclient simulates a classic consumer driving JoinGroup/SyncGroup.
type sclient struct {
	name     string
	id       string
	instance *string
	gen      int32
	state    int // 0 idle, 1 joining, 2 syncing, 3 stable
	joinCh   <-chan *kmsg.JoinGroupResponse
	syncCh   <-chan *kmsg.SyncGroupResponse
	members  []string // the leader's member list for gen
	leader   bool
}

// TestGroupClassicRandomized drives a classic group with random joins,
// heartbeats, leaves, commits, silences and clock jumps. Invariants: the
// generation never goes back; every member of one generation hears the
// same leader and protocol; a SyncGroup answer carries exactly what that
// generation's leader assigned to the member.
func TestGroupClassicRandomized(t *testing.T) {
	t.Parallel()
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 0xc1a5))
			h := newHarness(t)
			h.topic("t", 3)
			var clients []*sclient
			for i := range 5 {
				cl := &sclient{name: fmt.Sprintf("c%d", i)}
				if i%2 == 1 {
					cl.instance = kmsg.StringPtr(cl.name)
				}
				clients = append(clients, cl)
			}
			leaders := make(map[int32]string)
			assigned := make(map[int32]map[string][]byte)
			silent := make(map[*sclient]bool)
			var lastGen int32
			for step := range 600 {
				cl := clients[rng.IntN(len(clients))]
				op := rng.IntN(100)
				switch {
				case op < 60 && !silent[cl]:
					h.stepClassic(cl, rng, leaders, assigned)
				case op < 66 && cl.state == 3 && !silent[cl]:
					leave := kmsg.NewPtrLeaveGroupRequest()
					leave.Version = 5
					leave.Group = "g"
					leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: cl.id, InstanceID: cl.instance}}
					h.c.LeaveGroup(h.ctx, leave)
					cl.state, cl.id = 0, ""
				case op < 72 && cl.state == 3 && !silent[cl]:
					switch code := h.commit("g", cl.id, cl.gen, "t", 0, int64(step)); code {
					case 0, kerr.RebalanceInProgress.Code, kerr.IllegalGeneration.Code, kerr.UnknownMemberID.Code, kerr.FencedInstanceID.Code:
					default:
						t.Fatalf("commit: %v", kerr.ErrorForCode(code))
					}
				case op < 80:
					silent[cl] = !silent[cl]
				default:
					h.clock.Advance(time.Duration(rng.IntN(8)) * time.Second)
				}
				h.settle(clients)
				h.c.mu.Lock()
				gen := int32(0)
				if g := h.c.mu.groups["g"]; g != nil {
					gen = g.generation
				}
				h.c.mu.Unlock()
				if gen < lastGen {
					t.Fatalf("generation went back from %d to %d", lastGen, gen)
				}
				lastGen = gen
			}
			// Quiesce: everyone talks until the group is Stable with every
			// non-idle client in the latest generation.
			for round := 0; ; round++ {
				if round > 400 {
					t.Fatal("classic group did not settle")
				}
				for _, cl := range clients {
					h.stepClassic(cl, rng, leaders, assigned)
				}
				h.settle(clients)
				h.clock.Advance(time.Second)
				h.settle(clients)
				if h.classicSettled(clients) {
					t.Logf("settled after %d rounds: gen %d stats %+v commits %d", round, lastGen, h.c.Stats().Rebalances, h.c.Stats().OffsetCommits)
					break
				}
			}
		})
	}
}

// stepClassic advances one simulated client by one protocol step.
func (h *harness) stepClassic(cl *sclient, rng *rand.Rand, leaders map[int32]string, assigned map[int32]map[string][]byte) {
	t := h.t
	t.Helper()
	switch cl.state {
	case 0:
		if cl.instance == nil && cl.id == "" {
			r := h.c.JoinGroup(h.ctx, joinReq("g", "", nil, "t"))
			if r.ErrorCode == kerr.MemberIDRequired.Code {
				cl.id = r.MemberID
			}
			return
		}
		cl.joinCh, cl.state = h.joinAsync(joinReq("g", cl.id, cl.instance, "t")), 1
	case 1:
		if len(cl.joinCh) == 0 {
			return
		}
		r := <-cl.joinCh
		if r.ErrorCode != 0 {
			cl.state = 0
			if r.ErrorCode != kerr.RebalanceInProgress.Code {
				cl.id = ""
			}
			return
		}
		if l, ok := leaders[r.Generation]; ok && l != r.LeaderID {
			t.Fatalf("generation %d has leaders %s and %s", r.Generation, l, r.LeaderID)
		}
		leaders[r.Generation] = r.LeaderID
		if r.Protocol == nil || *r.Protocol != "range" {
			t.Fatalf("protocol %v", r.Protocol)
		}
		cl.id, cl.gen, cl.leader = r.MemberID, r.Generation, r.LeaderID == r.MemberID
		cl.members = nil
		for _, m := range r.Members {
			cl.members = append(cl.members, m.MemberID)
		}
		var plan map[string][]byte
		if cl.leader {
			if !slices.Contains(cl.members, cl.id) {
				t.Fatalf("leader %s missing from its member list %v", cl.id, cl.members)
			}
			plan = make(map[string][]byte)
			for _, m := range cl.members {
				plan[m] = []byte(fmt.Sprintf("%s@%d#%d", m, r.Generation, rng.IntN(1000)))
			}
			if _, dup := assigned[r.Generation]; !dup {
				assigned[r.Generation] = plan
			} else {
				plan = assigned[r.Generation] // a resent leader sync reuses the plan
			}
		}
		cl.syncCh, cl.state = h.syncAsync(syncReq("g", cl.id, cl.gen, plan)), 2
	case 2:
		if len(cl.syncCh) == 0 {
			return
		}
		r := <-cl.syncCh
		switch r.ErrorCode {
		case 0:
			want, ok := assigned[cl.gen][cl.id]
			if !ok || string(r.MemberAssignment) != string(want) {
				t.Fatalf("%s gen %d got assignment %q, leader gave %q", cl.id, cl.gen, r.MemberAssignment, want)
			}
			cl.state = 3
		case kerr.RebalanceInProgress.Code:
			cl.joinCh, cl.state = h.joinAsync(joinReq("g", cl.id, cl.instance, "t")), 1
		default:
			cl.state, cl.id = 0, ""
		}
	case 3:
		switch code := h.heartbeat("g", cl.id, cl.gen, cl.instance); code {
		case 0:
		case kerr.RebalanceInProgress.Code:
			cl.joinCh, cl.state = h.joinAsync(joinReq("g", cl.id, cl.instance, "t")), 1
		default:
			cl.state, cl.id = 0, ""
		}
	}
}

// settle waits until every outstanding call is answered or parked.
func (h *harness) settle(clients []*sclient) {
	h.t.Helper()
	waitFor(h.t, "outstanding calls to park", func() bool {
		h.c.mu.Lock()
		defer h.c.mu.Unlock()
		g := h.c.mu.groups["g"]
		for _, cl := range clients {
			var ready bool
			switch cl.state {
			case 1:
				ready = len(cl.joinCh) > 0
			case 2:
				ready = len(cl.syncCh) > 0
			default:
				continue
			}
			if ready {
				continue
			}
			if g == nil {
				return false
			}
			parked := false
			for _, m := range g.members {
				match := m.id == cl.id || (cl.instance != nil && m.instanceID != nil && *m.instanceID == *cl.instance)
				if match && ((cl.state == 1 && m.join != nil) || (cl.state == 2 && m.sync != nil)) {
					parked = true
				}
			}
			if !parked {
				return false
			}
		}
		return true
	})
}

func (h *harness) classicSettled(clients []*sclient) bool {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	g := h.c.mu.groups["g"]
	if g == nil || (g.state != stateStable && g.state != stateEmpty) {
		return false
	}
	for _, cl := range clients {
		if cl.state == 1 || cl.state == 2 {
			return false
		}
		if cl.state == 3 && (cl.gen != g.generation || g.members[cl.id] == nil) {
			return false
		}
	}
	return true
}
