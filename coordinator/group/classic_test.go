package group

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestGroupJoinSyncEager(t *testing.T) {
	t.Parallel()
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d members", n), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			ids, leader, gen := h.stableGroup("g", n)
			if gen != 1 {
				t.Fatalf("generation %d, want 1", gen)
			}
			if leader != ids[0] && leader != ids[1] && (n < 3 || leader != ids[2]) {
				t.Fatalf("leader %q is not a member", leader)
			}
			d := h.describe("g")
			if d.State != "Stable" || len(d.Members) != n || d.Protocol != "range" || d.ProtocolType != "consumer" {
				t.Fatalf("describe: state %s members %d protocol %q/%q", d.State, len(d.Members), d.ProtocolType, d.Protocol)
			}
			for _, m := range d.Members {
				if string(m.MemberAssignment) != "assignment-"+m.MemberID || m.ClientID != "client" {
					t.Fatalf("member %s: assignment %q client %q", m.MemberID, m.MemberAssignment, m.ClientID)
				}
			}
			for _, id := range ids {
				expectCode(t, "heartbeat", h.heartbeat("g", id, gen, nil), nil)
			}
			if got := h.c.Stats().Rebalances[ReasonMemberJoined]; got != 1 {
				t.Fatalf("rebalances by member joined = %d, want 1", got)
			}
		})
	}
}

func TestGroupLeaderGetsAllMetadata(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.memberID("g", "t1"), h.memberID("g", "t2")
	ca := h.joinAsync(joinReq("g", a, nil, "t1"))
	h.waitParkedJoins("g", 1)
	cb := h.joinAsync(joinReq("g", b, nil, "t2"))
	ra, rb := recv(t, ca), recv(t, cb)
	leaderResp, followerResp := ra, rb
	if rb.LeaderID == b {
		leaderResp, followerResp = rb, ra
	}
	if len(leaderResp.Members) != 2 || len(followerResp.Members) != 0 {
		t.Fatalf("leader got %d members, follower %d", len(leaderResp.Members), len(followerResp.Members))
	}
	for _, m := range leaderResp.Members {
		var meta kmsg.ConsumerMemberMetadata
		if err := meta.ReadFrom(m.ProtocolMetadata); err != nil || len(meta.Topics) != 1 {
			t.Fatalf("member %s metadata: %v %v", m.MemberID, err, meta.Topics)
		}
	}
}

func TestGroupMemberIDRequired(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	// v4+: first join only hands out an id.
	id := h.memberID("g", "t")
	if j, _ := h.parked("g"); j != 0 {
		t.Fatal("a MEMBER_ID_REQUIRED join must not park")
	}
	// An id the coordinator never issued is unknown.
	expectCode(t, "made-up id", h.c.JoinGroup(h.ctx, joinReq("g", "made-up", nil, "t")).ErrorCode, kerr.UnknownMemberID)
	r := recv(t, h.joinAsync(joinReq("g", id, nil, "t")))
	expectCode(t, "join with issued id", r.ErrorCode, nil)
	if r.MemberID != id || r.LeaderID != id || r.Generation != 1 {
		t.Fatalf("join: member %s leader %s gen %d", r.MemberID, r.LeaderID, r.Generation)
	}
	// v3 and below join directly.
	old := joinReq("g3", "", nil, "t")
	old.Version = 3
	r = recv(t, h.joinAsync(old))
	expectCode(t, "v3 join", r.ErrorCode, nil)
	if r.MemberID == "" || r.Generation != 1 {
		t.Fatalf("v3 join: member %q gen %d", r.MemberID, r.Generation)
	}
	// An issued id that is never used expires with the session timeout
	// and stops blocking the join phase.
	expectCode(t, "sync", h.c.SyncGroup(h.ctx, syncReq("g", id, 1, map[string][]byte{id: nil})).ErrorCode, nil)
	pend := h.memberID("g", "t")
	c := h.joinAsync(joinReq("g", id, nil, "t")) // leader rejoins: rebalance waits for pend
	h.waitParkedJoins("g", 1)
	h.clock.Advance(11 * time.Second)
	r = recv(t, c)
	expectCode(t, "rejoin after pending expiry", r.ErrorCode, nil)
	if r.Generation != 2 || len(r.Members) != 1 {
		t.Fatalf("gen %d members %d, want 2 and 1", r.Generation, len(r.Members))
	}
	expectCode(t, "expired pending id", h.c.JoinGroup(h.ctx, joinReq("g", pend, nil, "t")).ErrorCode, kerr.UnknownMemberID)
}

func TestGroupMemberLeaveRebalances(t *testing.T) {
	t.Parallel()
	for _, version := range []int16{0, 3, 5} {
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			ids, _, gen := h.stableGroup("g", 2)
			leave := kmsg.NewPtrLeaveGroupRequest()
			leave.Version = version
			leave.Group = "g"
			if version < 3 {
				leave.MemberID = ids[1]
			} else {
				leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: ids[1], Reason: kmsg.StringPtr("shutting down")}, {MemberID: "nobody"}}
			}
			resp := h.c.LeaveGroup(h.ctx, leave)
			expectCode(t, "leave", resp.ErrorCode, nil)
			if version >= 3 {
				expectCode(t, "leave member", resp.Members[0].ErrorCode, nil)
				expectCode(t, "leave unknown member", resp.Members[1].ErrorCode, kerr.UnknownMemberID)
			}
			expectCode(t, "heartbeat after leave", h.heartbeat("g", ids[0], gen, nil), kerr.RebalanceInProgress)
			expectCode(t, "heartbeat of leaver", h.heartbeat("g", ids[1], gen, nil), kerr.UnknownMemberID)
			r := recv(t, h.joinAsync(joinReq("g", ids[0], nil, "t")))
			if r.Generation != gen+1 || len(r.Members) != 1 {
				t.Fatalf("after leave: gen %d members %d", r.Generation, len(r.Members))
			}
			if got := h.c.Stats().Rebalances[ReasonMemberLeft]; got != 1 {
				t.Fatalf("rebalances by member left = %d, want 1", got)
			}
		})
	}
}

func TestGroupSessionExpiryRebalances(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ids, _, gen := h.stableGroup("g", 2)
	// ids[0] heartbeats every 3s; ids[1] is silent and expires after 10s.
	for range 3 {
		h.clock.Advance(3 * time.Second)
		expectCode(t, "heartbeat", h.heartbeat("g", ids[0], gen, nil), nil)
	}
	h.clock.Advance(3 * time.Second)
	expectCode(t, "heartbeat after expiry", h.heartbeat("g", ids[0], gen, nil), kerr.RebalanceInProgress)
	r := recv(t, h.joinAsync(joinReq("g", ids[0], nil, "t")))
	if r.Generation != gen+1 || len(r.Members) != 1 || r.Members[0].MemberID != ids[0] {
		t.Fatalf("after expiry: gen %d members %+v", r.Generation, r.Members)
	}
	if got := h.c.Stats().Rebalances[ReasonSessionExpired]; got != 1 {
		t.Fatalf("rebalances by session expiry = %d, want 1", got)
	}
}

func TestGroupRebalanceTimeoutKicksMember(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ids, leader, gen := h.stableGroup("g", 2)
	other := ids[0]
	if other == leader {
		other = ids[1]
	}
	// The leader rejoins; the other member keeps heartbeating (and is told
	// to rejoin) but never does, so the rebalance timeout (20s) drops it.
	c := h.joinAsync(joinReq("g", leader, nil, "t"))
	h.waitParkedJoins("g", 1)
	for range 3 {
		expectCode(t, "heartbeat during rebalance", h.heartbeat("g", other, gen, nil), kerr.RebalanceInProgress)
		h.clock.Advance(6 * time.Second)
	}
	h.clock.Advance(3 * time.Second)
	r := recv(t, c)
	expectCode(t, "join", r.ErrorCode, nil)
	if r.Generation != gen+1 || len(r.Members) != 1 {
		t.Fatalf("gen %d members %d, want %d and 1", r.Generation, len(r.Members), gen+1)
	}
	expectCode(t, "kicked member heartbeat", h.heartbeat("g", other, gen, nil), kerr.UnknownMemberID)
}

func TestGroupSyncTimeoutKicksMember(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.memberID("g", "t"), h.memberID("g", "t")
	ca, cb := h.joinAsync(joinReq("g", a, nil, "t")), h.joinAsync(joinReq("g", b, nil, "t"))
	ra, rb := recv(t, ca), recv(t, cb)
	leader, gen := ra.LeaderID, ra.Generation
	follower := a
	if follower == leader {
		follower = b
	}
	_ = rb
	r := recv(t, h.syncAsync(syncReq("g", leader, gen, map[string][]byte{leader: []byte("x"), follower: []byte("y")})))
	expectCode(t, "leader sync", r.ErrorCode, nil)
	// The follower never syncs: after the rebalance timeout it is removed.
	for range 4 {
		h.clock.Advance(5 * time.Second)
		h.heartbeat("g", leader, gen, nil)
	}
	h.clock.Advance(time.Second)
	expectCode(t, "leader heartbeat", h.heartbeat("g", leader, gen, nil), kerr.RebalanceInProgress)
	expectCode(t, "follower heartbeat", h.heartbeat("g", follower, gen, nil), kerr.UnknownMemberID)
}

func TestGroupStaticMemberRestartWithoutRebalance(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ia, ib := kmsg.StringPtr("instance-a"), kmsg.StringPtr("instance-b")
	// Static members skip MEMBER_ID_REQUIRED. Nobody else is pending, so
	// a's join completes at once; b's join then starts generation 2.
	ra := recv(t, h.joinAsync(joinReq("g", "", ia, "t")))
	expectCode(t, "static join a", ra.ErrorCode, nil)
	cb := h.joinAsync(joinReq("g", "", ib, "t"))
	h.waitParkedJoins("g", 1)
	expectCode(t, "a heartbeat", h.heartbeat("g", ra.MemberID, ra.Generation, ia), kerr.RebalanceInProgress)
	ca := h.joinAsync(joinReq("g", ra.MemberID, ia, "t"))
	ra, rb := recv(t, ca), recv(t, cb)
	gen, leader := ra.Generation, ra.LeaderID
	assign := map[string][]byte{ra.MemberID: []byte("A"), rb.MemberID: []byte("B")}
	h.syncAll("g", []string{ra.MemberID, rb.MemberID}, leader, gen, assign)
	rebalances := h.c.Stats().Rebalances[ReasonMemberJoined]

	// Both restart: each joins with its instance id and no member id.
	for _, tc := range []struct {
		iid   *string
		oldID string
		want  string
	}{{ia, ra.MemberID, "A"}, {ib, rb.MemberID, "B"}} {
		r := h.c.JoinGroup(h.ctx, joinReq("g", "", tc.iid, "t"))
		expectCode(t, "static rejoin", r.ErrorCode, nil)
		if r.Generation != gen || r.MemberID == tc.oldID {
			t.Fatalf("static rejoin: gen %d (want %d) member %s (old %s)", r.Generation, gen, r.MemberID, tc.oldID)
		}
		if r.LeaderID == r.MemberID && (!r.SkipAssignment || len(r.Members) != 2) {
			t.Fatalf("replaced leader: skip %v members %d", r.SkipAssignment, len(r.Members))
		}
		expectCode(t, "old incarnation heartbeat", h.heartbeat("g", tc.oldID, gen, tc.iid), kerr.FencedInstanceID)
		s := h.c.SyncGroup(h.ctx, syncReq("g", r.MemberID, gen, nil))
		expectCode(t, "sync after restart", s.ErrorCode, nil)
		if string(s.MemberAssignment) != tc.want {
			t.Fatalf("assignment after restart %q, want %q", s.MemberAssignment, tc.want)
		}
		expectCode(t, "new incarnation heartbeat", h.heartbeat("g", r.MemberID, gen, tc.iid), nil)
	}
	if got := h.c.Stats().Rebalances[ReasonMemberJoined]; got != rebalances {
		t.Fatalf("static restarts caused %d rebalances", got-rebalances)
	}
	if d := h.describe("g"); d.State != "Stable" {
		t.Fatalf("state %s after static restarts", d.State)
	}
}

func TestGroupStaticMemberFencedWhileParked(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ia := kmsg.StringPtr("a")
	r := recv(t, h.joinAsync(joinReq("g", "", ia, "t")))
	b := h.memberID("g", "t")
	h.memberID("g", "t")                         // never used: holds the join phase open until it expires
	cb := h.joinAsync(joinReq("g", b, nil, "t")) // starts a rebalance, a not yet rejoined
	h.waitParkedJoins("g", 1)
	ca := h.joinAsync(joinReq("g", r.MemberID, ia, "t"))
	h.waitParkedJoins("g", 2)
	// a restarts while its old incarnation is parked in JoinGroup.
	cnew := h.joinAsync(joinReq("g", "", ia, "t"))
	expectCode(t, "old incarnation", recv(t, ca).ErrorCode, kerr.FencedInstanceID)
	h.waitParkedJoins("g", 2)
	h.clock.Advance(10 * time.Second) // the unused member id expires
	rn, rb := recv(t, cnew), recv(t, cb)
	expectCode(t, "new incarnation", rn.ErrorCode, nil)
	expectCode(t, "b", rb.ErrorCode, nil)
	if rn.Generation != rb.Generation || rn.MemberID == r.MemberID {
		t.Fatalf("gen %d/%d member %s", rn.Generation, rb.Generation, rn.MemberID)
	}
}

func TestGroupJoinErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.MaxGroupSize = 1 })
	recv(t, h.joinAsync(joinReq("g", "", kmsg.StringPtr("x"), "t")))
	for _, tc := range []struct {
		name string
		req  func() *kmsg.JoinGroupRequest
		want *kerr.Error
	}{
		{"empty group id", func() *kmsg.JoinGroupRequest { return joinReq("", "", nil) }, kerr.InvalidGroupID},
		{"session too short", func() *kmsg.JoinGroupRequest {
			r := joinReq("h", "", nil)
			r.SessionTimeoutMillis = 1000
			return r
		}, kerr.InvalidSessionTimeout},
		{"session too long", func() *kmsg.JoinGroupRequest {
			r := joinReq("h", "", nil)
			r.SessionTimeoutMillis = 3_600_000
			return r
		}, kerr.InvalidSessionTimeout},
		{"no protocols", func() *kmsg.JoinGroupRequest {
			r := joinReq("h", "", nil)
			r.Protocols = nil
			return r
		}, kerr.InconsistentGroupProtocol},
		{"other protocol type", func() *kmsg.JoinGroupRequest {
			r := joinReq("g", "", nil)
			r.ProtocolType = "connect"
			return r
		}, kerr.InconsistentGroupProtocol},
		{"no common protocol", func() *kmsg.JoinGroupRequest {
			r := joinReq("g", "", nil)
			r.Protocols[0].Name = "sticky"
			return r
		}, kerr.InconsistentGroupProtocol},
		{"group full", func() *kmsg.JoinGroupRequest { return joinReq("g", "", nil) }, kerr.GroupMaxSizeReached},
		{"unknown member of missing group", func() *kmsg.JoinGroupRequest { return joinReq("missing", "m-1", nil) }, kerr.UnknownMemberID},
	} {
		expectCode(t, tc.name, h.c.JoinGroup(h.ctx, tc.req()).ErrorCode, tc.want)
	}
	// Failed joins leave no groups behind.
	if groupOf(h.c, "h") != nil {
		t.Fatal("a failed first join left a group behind")
	}
}

func TestGroupCoordinatorStatusErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := PartitionFor("g", testPartitions)
	ids, _, gen := h.stableGroup("g", 1)

	h.c.BeginLoad(p)
	expectCode(t, "heartbeat while loading", h.heartbeat("g", ids[0], gen, nil), kerr.CoordinatorLoadInProgress)
	h.c.Unload(p)
	if h.c.Owns(p) {
		t.Fatal("Owns after Unload")
	}
	expectCode(t, "heartbeat after unload", h.heartbeat("g", ids[0], gen, nil), kerr.NotCoordinator)
	expectCode(t, "commit after unload", h.commit("g", "", -1, "t", 0, 1), kerr.NotCoordinator)

	// A parked join is answered NOT_COORDINATOR when the partition moves.
	h.c.Load(p, h.store.records(p))
	if !h.c.Owns(p) {
		t.Fatal("not Owns after Load")
	}
	h.memberID("g", "t") // an outstanding member id keeps the join phase open
	c := h.joinAsync(joinReq("g", ids[0], nil, "t"))
	h.waitParkedJoins("g", 1)
	h.c.Unload(p)
	expectCode(t, "parked join on unload", recv(t, c).ErrorCode, kerr.NotCoordinator)

	// And COORDINATOR_NOT_AVAILABLE when the coordinator closes.
	h.c.Load(p, h.store.records(p))
	h.memberID("g", "t")
	c = h.joinAsync(joinReq("g", ids[0], nil, "t"))
	h.waitParkedJoins("g", 1)
	h.c.Close()
	expectCode(t, "parked join on close", recv(t, c).ErrorCode, kerr.CoordinatorNotAvailable)
	expectCode(t, "heartbeat after close", h.heartbeat("g", ids[0], gen, nil), kerr.CoordinatorNotAvailable)
}

func TestGroupInitialRebalanceDelay(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.InitialRebalanceDelay = 3 * time.Second })
	a := h.joinAsync(joinReq("g", "", kmsg.StringPtr("a"), "t"))
	h.waitParkedJoins("g", 1)
	h.clock.Advance(2 * time.Second)
	b := h.joinAsync(joinReq("g", "", kmsg.StringPtr("b"), "t"))
	h.waitParkedJoins("g", 2)
	h.clock.Advance(time.Second) // first delay ends; b arrived during it: one more delay
	if j, _ := h.parked("g"); j != 2 {
		t.Fatalf("%d parked after first delay, want 2", j)
	}
	h.clock.Advance(3 * time.Second)
	ra, rb := recv(t, a), recv(t, b)
	if ra.Generation != 1 || rb.Generation != 1 {
		t.Fatalf("generations %d %d, want 1 1", ra.Generation, rb.Generation)
	}
}

func TestGroupSyncPersistFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a := h.memberID("g", "t")
	r := recv(t, h.joinAsync(joinReq("g", a, nil, "t")))
	h.store.setFail(fmt.Errorf("append: %w", kerr.NotEnoughReplicas))
	s := h.c.SyncGroup(h.ctx, syncReq("g", a, r.Generation, map[string][]byte{a: []byte("x")}))
	expectCode(t, "sync with failing persist", s.ErrorCode, kerr.CoordinatorNotAvailable)
	if d := h.describe("g"); d.State != "PreparingRebalance" && d.State != "CompletingRebalance" {
		t.Fatalf("state %s after failed sync write", d.State)
	}
	h.store.setFail(nil)
	r = recv(t, h.joinAsync(joinReq("g", a, nil, "t")))
	expectCode(t, "rejoin", r.ErrorCode, nil)
	s = h.c.SyncGroup(h.ctx, syncReq("g", a, r.Generation, map[string][]byte{a: []byte("x")}))
	expectCode(t, "sync", s.ErrorCode, nil)
	if got := h.c.Stats().Rebalances[ReasonPersistFailed]; got != 1 {
		t.Fatalf("rebalances by persist failure = %d, want 1", got)
	}
}

func TestGroupSyncErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ids, _, gen := h.stableGroup("g", 1)
	for _, tc := range []struct {
		name string
		req  *kmsg.SyncGroupRequest
		want *kerr.Error
	}{
		{"unknown group", syncReq("nope", ids[0], gen, nil), kerr.UnknownMemberID},
		{"unknown member", syncReq("g", "nope", gen, nil), kerr.UnknownMemberID},
		{"wrong generation", syncReq("g", ids[0], gen+1, nil), kerr.IllegalGeneration},
		{"wrong protocol", func() *kmsg.SyncGroupRequest {
			r := syncReq("g", ids[0], gen, nil)
			r.Protocol = kmsg.StringPtr("sticky")
			return r
		}(), kerr.InconsistentGroupProtocol},
		{"empty group id", syncReq("", ids[0], gen, nil), kerr.InvalidGroupID},
		{"stable resync", syncReq("g", ids[0], gen, nil), nil},
	} {
		expectCode(t, tc.name, h.c.SyncGroup(h.ctx, tc.req).ErrorCode, tc.want)
	}
	expectCode(t, "heartbeat wrong generation", h.heartbeat("g", ids[0], gen-1, nil), kerr.IllegalGeneration)
	expectCode(t, "heartbeat empty group", h.heartbeat("", ids[0], gen, nil), kerr.InvalidGroupID)
}

// logRecorder collects slog records.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec.Clone())
	return nil
}
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }

// rebalances returns the reason and generation (or epoch) of every
// "group rebalanced" line.
func (r *logRecorder) rebalances() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rec := range r.records {
		if rec.Message != "group rebalanced" || rec.Level != slog.LevelInfo {
			continue
		}
		var reason string
		var gen int64
		rec.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "reason":
				reason = a.Value.String()
			case "generation", "epoch":
				gen = a.Value.Int64()
			}
			return true
		})
		out = append(out, fmt.Sprintf("%s@%d", reason, gen))
	}
	return out
}

func TestGroupRebalanceLoggedOnce(t *testing.T) {
	t.Parallel()
	rec := &logRecorder{}
	h := newHarness(t, func(c *Config) { c.Logger = slog.New(rec) })
	h.topic("t", 2)
	ids, _, gen := h.stableGroup("g", 2)
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Version = 5
	leave.Group = "g"
	leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: ids[1]}}
	h.c.LeaveGroup(h.ctx, leave)
	recv(t, h.joinAsync(joinReq("g", ids[0], nil, "t")))
	h.converge("kip848", []*cclient{newCClient("a", "t")})
	want := []string{
		fmt.Sprintf("member joined@%d", gen),
		fmt.Sprintf("member left@%d", gen+1),
		"member joined@1",
	}
	if got := rec.rebalances(); !slices.Equal(got, want) {
		t.Fatalf("rebalance log lines %v, want %v", got, want)
	}
	var total uint64
	for _, n := range h.c.Stats().Rebalances {
		total += n
	}
	if total != uint64(len(want)) {
		t.Fatalf("Stats counts %d rebalances, log has %d", total, len(want))
	}
}
