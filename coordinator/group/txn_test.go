package group

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// txnReq is a TxnOffsetCommit v5 of producer pid (transactional id
// "tx-<pid>", epoch 0) for one partition, naming no group membership.
func txnReq(group string, pid int64, topic string, partition int32, offset int64) *kmsg.TxnOffsetCommitRequest {
	r := kmsg.NewPtrTxnOffsetCommitRequest()
	r.Version = 5
	r.TransactionalID = fmt.Sprintf("tx-%d", pid)
	r.Group, r.ProducerID = group, pid
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset, rp.LeaderEpoch = partition, offset, 2
	rp.Metadata = kmsg.StringPtr("txn")
	rt.Partitions = append(rt.Partitions, rp)
	r.Topics = append(r.Topics, rt)
	return r
}

func (h *harness) txnCommit(group string, pid int64, topic string, partition int32, offset int64) int16 {
	return h.c.TxnOffsetCommit(h.ctx, txnReq(group, pid, topic, partition, offset)).Topics[0].Partitions[0].ErrorCode
}

// endTxn writes pid's marker to group's partition through CompleteTxn, as
// the broker does for WriteTxnMarkers.
func (h *harness) endTxn(group string, pid int64, commit bool) {
	h.t.Helper()
	p := PartitionFor(group, testPartitions)
	if err := h.c.CompleteTxn(h.ctx, p, pid, commit, h.store.markerWriter(p, pid, commit)); err != nil {
		h.t.Fatalf("CompleteTxn: %v", err)
	}
}

// fetchStable fetches one partition with require_stable (version 7: the
// single-group form; 8+: the multi-group form) and returns its offset and
// error code.
func (h *harness) fetchStable(group, topic string, partition int32, version int16) (int64, int16) {
	h.t.Helper()
	r := kmsg.NewPtrOffsetFetchRequest()
	r.Version, r.RequireStable = version, true
	if version < 8 {
		r.Group = group
		r.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: topic, Partitions: []int32{partition}}}
		resp := h.c.OffsetFetch(h.ctx, r)
		expectCode(h.t, "fetch", resp.ErrorCode, nil)
		p := resp.Topics[0].Partitions[0]
		return p.Offset, p.ErrorCode
	}
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = group
	rg.Topics = []kmsg.OffsetFetchRequestGroupTopic{{Topic: topic, Partitions: []int32{partition}}}
	r.Groups = append(r.Groups, rg)
	g := h.c.OffsetFetch(h.ctx, r).Groups[0]
	expectCode(h.t, "fetch", g.ErrorCode, nil)
	p := g.Topics[0].Partitions[0]
	return p.Offset, p.ErrorCode
}

// pending counts group's pending transactional offsets in c.
func pending(c *Coordinator, group string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if g := c.mu.groups[group]; g != nil {
		return g.txn.count()
	}
	return 0
}

// offsetState renders the committed and pending offsets of c's groups,
// sorted, to compare a coordinator with one that replayed its log.
func offsetState(c *Coordinator) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var lines []string
	for id, g := range c.mu.groups {
		for tp, o := range g.offsets {
			lines = append(lines, fmt.Sprintf("%s %s-%d committed %d %d %q", id, tp.topic, tp.partition, o.offset, o.leaderEpoch, o.metadata))
		}
		for pid, offs := range g.txn.byProducer {
			for tp, o := range offs {
				lines = append(lines, fmt.Sprintf("%s %s-%d pending(%d) %d %d %q", id, tp.topic, tp.partition, pid, o.offset, o.leaderEpoch, o.metadata))
			}
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// checkTxnInvariants checks that every group's refs count its producers'
// pending offsets, and that every pending producer is indexed for its
// marker.
func checkTxnInvariants(t *testing.T, c *Coordinator) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, g := range c.mu.groups {
		refs := make(map[topicPartition]int)
		for pid, offs := range g.txn.byProducer {
			if len(offs) == 0 {
				t.Fatalf("group %s: producer %d kept with no pending offsets", id, pid)
			}
			if _, ok := c.mu.openTxns[g.partition][pid][id]; !ok {
				t.Fatalf("group %s: producer %d pending but not indexed", id, pid)
			}
			for tp := range offs {
				refs[tp]++
			}
		}
		if len(refs) != len(g.txn.refs) {
			t.Fatalf("group %s: refs %v, want %v", id, g.txn.refs, refs)
		}
		for tp, n := range refs {
			if g.txn.refs[tp] != n {
				t.Fatalf("group %s: refs %v, want %v", id, g.txn.refs, refs)
			}
		}
	}
}

// fakeVerifier is a TxnVerifier that records its calls and answers code.
// hook, if set, runs inside each call with its 1-based number.
type fakeVerifier struct {
	mu    sync.Mutex
	calls []verifyCall
	code  int16
	hook  func(n int)
}

type verifyCall struct {
	txnID     string
	pid       int64
	epoch     int16
	partition int32
	add       bool
}

func (v *fakeVerifier) VerifyTxn(_ context.Context, txnID string, pid int64, epoch int16, partition int32, add bool) int16 {
	v.mu.Lock()
	v.calls = append(v.calls, verifyCall{txnID, pid, epoch, partition, add})
	n, code, hook := len(v.calls), v.code, v.hook
	v.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	return code
}

func (v *fakeVerifier) reset(code int16) []verifyCall {
	v.mu.Lock()
	defer v.mu.Unlock()
	calls := v.calls
	v.calls, v.code = nil, code
	return calls
}

func TestGroupTxnCommitAndAbort(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 2)
	p := PartitionFor("g", testPartitions)
	expectCode(t, "plain commit", h.commit("g", "", -1, "t", 0, 1), nil)
	expectCode(t, "txn commit", h.txnCommit("g", 7, "t", 0, 10), nil)
	if got := h.fetch("g", "t", 0); got != 1 {
		t.Fatalf("pending offset visible before its marker: %d", got)
	}
	if _, code := h.fetchStable("g", "t", 0, 8); code != kerr.UnstableOffsetCommit.Code {
		t.Fatalf("require_stable with a pending offset: %v", kerr.ErrorForCode(code))
	}
	if off, code := h.fetchStable("g", "t", 1, 8); off != -1 || code != 0 {
		t.Fatalf("require_stable of another partition: %d %v", off, kerr.ErrorForCode(code))
	}
	h.endTxn("g", 7, true)
	if off, code := h.fetchStable("g", "t", 0, 8); off != 10 || code != 0 {
		t.Fatalf("after COMMIT: %d %v, want 10", off, kerr.ErrorForCode(code))
	}
	r := kmsg.NewPtrOffsetFetchRequest()
	r.Version, r.Group = 7, "g"
	got := h.c.OffsetFetch(h.ctx, r).Topics[0].Partitions[0]
	if got.LeaderEpoch != 2 || got.Metadata == nil || *got.Metadata != "txn" {
		t.Fatalf("committed transactional offset: %+v", got)
	}
	// The next transaction aborts: its offset is dropped.
	expectCode(t, "second txn commit", h.txnCommit("g", 7, "t", 0, 20), nil)
	h.endTxn("g", 7, false)
	if off, code := h.fetchStable("g", "t", 0, 8); off != 10 || code != 0 {
		t.Fatalf("after ABORT: %d %v, want 10", off, kerr.ErrorForCode(code))
	}
	// A marker of a producer without offsets here changes nothing.
	h.endTxn("g", 99, true)
	if s := h.c.Stats(); s.OffsetCommits != 2 || s.PendingTxnOffsets != 0 {
		t.Fatalf("stats: %d commits, %d pending", s.OffsetCommits, s.PendingTxnOffsets)
	}
	var shape []string
	for _, rec := range h.store.records(p) {
		shape = append(shape, fmt.Sprintf("%v/%d/%d", rec.Transactional, rec.ProducerID, rec.Marker))
	}
	want := []string{"false/0/0", "true/7/0", "false/7/1", "true/7/0", "false/7/2", "false/99/1"}
	if !slices.Equal(shape, want) {
		t.Fatalf("log %v, want %v", shape, want)
	}
	checkTxnInvariants(t, h.c)
}

func TestGroupTxnRequireStable(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 3)
	expectCode(t, "plain 0", h.commit("g", "", -1, "t", 0, 1), nil)
	expectCode(t, "plain 1", h.commit("g", "", -1, "t", 1, 2), nil)
	expectCode(t, "txn 0", h.txnCommit("g", 1, "t", 0, 10), nil)
	expectCode(t, "txn 2", h.txnCommit("g", 2, "t", 2, 30), nil)
	expectCode(t, "other group", h.txnCommit("other", 3, "t", 1, 40), nil)
	for _, v := range []int16{7, 8, 9} {
		if _, code := h.fetchStable("g", "t", 0, v); code != kerr.UnstableOffsetCommit.Code {
			t.Fatalf("v%d: partition 0 %v", v, kerr.ErrorForCode(code))
		}
		if off, code := h.fetchStable("g", "t", 1, v); off != 2 || code != 0 {
			t.Fatalf("v%d: partition 1 %d %v", v, off, kerr.ErrorForCode(code))
		}
	}
	// Every committed partition: a pending one is unstable, a partition
	// with only a pending offset is not listed (Kafka's fetchAllOffsets).
	r := kmsg.NewPtrOffsetFetchRequest()
	r.Version, r.Group, r.RequireStable = 7, "g", true
	parts := h.c.OffsetFetch(h.ctx, r).Topics[0].Partitions
	if len(parts) != 2 || parts[0].ErrorCode != kerr.UnstableOffsetCommit.Code || parts[0].Offset != -1 || parts[1].Offset != 2 {
		t.Fatalf("fetch all with require_stable: %+v", parts)
	}
	h.endTxn("g", 1, false)
	h.endTxn("g", 2, true)
	for tp, want := range map[int32]int64{0: 1, 1: 2, 2: 30} {
		if off, code := h.fetchStable("g", "t", tp, 8); off != want || code != 0 {
			t.Fatalf("partition %d after the markers: %d %v, want %d", tp, off, kerr.ErrorForCode(code), want)
		}
	}
}

func TestGroupTxnMembershipFencing(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 1)
	ids, _, gen := h.stableGroup("g", 2)
	iid := kmsg.StringPtr("instance")
	rs := recv(t, h.joinAsync(joinReq("s", "", iid, "t")))
	expectCode(t, "static join", rs.ErrorCode, nil)
	h.syncAll("s", []string{rs.MemberID}, rs.MemberID, rs.Generation, map[string][]byte{rs.MemberID: []byte("a")})
	a := newCClient("a", "t")
	h.converge("m", []*cclient{a})
	for i, tc := range []struct {
		name     string
		version  int16
		group    string
		member   string
		instance *string
		gen      int32
		pid      int64
		want     *kerr.Error
	}{
		{"anonymous, group with members", 5, "g", "", nil, -1, 1, nil},
		{"member, its generation", 5, "g", ids[0], nil, gen, 1, nil},
		{"member, other generation", 5, "g", ids[0], nil, gen + 1, 1, kerr.IllegalGeneration},
		{"member, generation -1", 3, "g", ids[0], nil, -1, 1, kerr.IllegalGeneration},
		{"unknown member", 5, "g", "stranger", nil, gen, 1, kerr.UnknownMemberID},
		{"v2 carries no membership", 2, "g", "stranger", nil, gen + 7, 1, nil},
		{"static member", 5, "s", rs.MemberID, iid, rs.Generation, 1, nil},
		{"another member under the instance", 5, "s", "old-incarnation", iid, rs.Generation, 1, kerr.FencedInstanceID},
		{"unknown instance", 5, "s", rs.MemberID, kmsg.StringPtr("nope"), rs.Generation, 1, kerr.UnknownMemberID},
		{"missing group with a generation", 5, "missing", "m", nil, 1, 1, kerr.IllegalGeneration},
		{"missing group, generation -1", 5, "simple", "", nil, -1, 1, nil},
		{"KIP-848 member", 5, "m", a.id, nil, a.epoch, 1, nil},
		{"KIP-848 newer epoch", 5, "m", a.id, nil, a.epoch + 1, 1, kerr.IllegalGeneration},
		{"KIP-848 older epoch", 5, "m", a.id, nil, a.epoch - 1, 1, kerr.IllegalGeneration},
		{"KIP-848 unknown member", 5, "m", "stranger", nil, a.epoch, 1, kerr.UnknownMemberID},
		{"KIP-848 anonymous", 4, "m", "", nil, -1, 1, nil},
		{"empty group id", 5, "", "", nil, -1, 1, kerr.InvalidGroupID},
		{"v6 names topics by id", 6, "g", "", nil, -1, 1, kerr.UnsupportedVersion},
		{"no producer", 5, "g", "", nil, -1, -1, kerr.InvalidProducerIDMapping},
	} {
		r := txnReq(tc.group, tc.pid, "t", 0, int64(100+i))
		r.Version, r.MemberID, r.InstanceID, r.Generation = tc.version, tc.member, tc.instance, tc.gen
		before := pending(h.c, tc.group)
		expectCode(t, tc.name, h.c.TxnOffsetCommit(h.ctx, r).Topics[0].Partitions[0].ErrorCode, tc.want)
		if after := pending(h.c, tc.group); (tc.want == nil) != (after == 1) || (tc.want != nil && after != before) {
			t.Fatalf("%s: %d pending offsets, had %d", tc.name, after, before)
		}
		h.endTxn(tc.group, tc.pid, false)
	}
	if groupOf(h.c, "missing") != nil {
		t.Fatal("a refused commit created a group")
	}
	// A classic group completing a rebalance takes transactional commits
	// (Kafka does not enforce the state for them), plain ones wait.
	x, y := h.memberID("r", "t"), h.memberID("r", "t")
	cx, cy := h.joinAsync(joinReq("r", x, nil, "t")), h.joinAsync(joinReq("r", y, nil, "t"))
	rx, _ := recv(t, cx), recv(t, cy)
	expectCode(t, "plain commit while completing", h.commit("r", x, rx.Generation, "t", 0, 1), kerr.RebalanceInProgress)
	r := txnReq("r", 5, "t", 0, 2)
	r.MemberID, r.Generation = x, rx.Generation
	expectCode(t, "txn commit while completing", h.c.TxnOffsetCommit(h.ctx, r).Topics[0].Partitions[0].ErrorCode, nil)
}

func TestGroupTxnPartitionErrors(t *testing.T) {
	t.Parallel()
	v := &fakeVerifier{}
	h := newHarness(t, func(c *Config) { c.TxnVerifier = v })
	h.topic("t", 2)
	r := txnReq("g", 1, "t", 0, 5)
	r.Topics[0].Partitions = append(r.Topics[0].Partitions,
		kmsg.TxnOffsetCommitRequestTopicPartition{Partition: 1, Offset: 6, Metadata: kmsg.StringPtr(strings.Repeat("x", DefaultMaxOffsetMetadataBytes+1))},
		kmsg.TxnOffsetCommitRequestTopicPartition{Partition: 9, Offset: 7})
	r.Topics = append(r.Topics, kmsg.TxnOffsetCommitRequestTopic{Topic: "nope", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0}}})
	resp := h.c.TxnOffsetCommit(h.ctx, r)
	expectCode(t, "valid partition", resp.Topics[0].Partitions[0].ErrorCode, nil)
	expectCode(t, "large metadata", resp.Topics[0].Partitions[1].ErrorCode, kerr.OffsetMetadataTooLarge)
	expectCode(t, "unknown partition", resp.Topics[0].Partitions[2].ErrorCode, kerr.UnknownTopicOrPartition)
	expectCode(t, "unknown topic", resp.Topics[1].Partitions[0].ErrorCode, kerr.UnknownTopicOrPartition)
	if n := pending(h.c, "g"); n != 1 {
		t.Fatalf("%d pending offsets, want 1", n)
	}
	// Nothing left after the unknown partitions: no verification, no
	// write, and a verifier error does not override the answer.
	v.reset(kerr.InvalidTxnState.Code)
	p := PartitionFor("g", testPartitions)
	before := len(h.store.records(p))
	resp = h.c.TxnOffsetCommit(h.ctx, txnReq("g", 1, "nope", 0, 1))
	expectCode(t, "only unknown topics", resp.Topics[0].Partitions[0].ErrorCode, kerr.UnknownTopicOrPartition)
	if calls := v.reset(0); len(calls) != 0 || len(h.store.records(p)) != before {
		t.Fatalf("%d verifications, %d records for a commit of unknown topics", len(calls), len(h.store.records(p))-before)
	}
	// An unloaded partition answers before verifying, as do loading ones
	// (v0-1 clients get COORDINATOR_NOT_AVAILABLE for the latter).
	h.c.Unload(p)
	expectCode(t, "unloaded", h.txnCommit("g", 1, "t", 0, 1), kerr.NotCoordinator)
	h.c.BeginLoad(p)
	expectCode(t, "loading", h.txnCommit("g", 1, "t", 0, 1), kerr.CoordinatorLoadInProgress)
	old := txnReq("g", 1, "t", 0, 1)
	old.Version = 1
	expectCode(t, "loading, v1", h.c.TxnOffsetCommit(h.ctx, old).Topics[0].Partitions[0].ErrorCode, kerr.CoordinatorNotAvailable)
	if calls := v.reset(0); len(calls) != 0 {
		t.Fatalf("%d verifications for a partition not served", len(calls))
	}
}

func TestGroupTxnVerification(t *testing.T) {
	t.Parallel()
	v := &fakeVerifier{}
	h := newHarness(t, func(c *Config) { c.TxnVerifier = v })
	h.topic("t", 2)
	ids, _, gen := h.stableGroup("g", 1)
	p := PartitionFor("g", testPartitions)
	// v0-4 verify that AddOffsetsToTxn added the partition; v5 adds it.
	for _, version := range []int16{0, 4, 5} {
		r := txnReq("g", 3, "t", 0, int64(version))
		r.Version, r.ProducerEpoch = version, 4
		expectCode(t, fmt.Sprintf("v%d", version), h.c.TxnOffsetCommit(h.ctx, r).Topics[0].Partitions[0].ErrorCode, nil)
		calls := v.reset(0)
		want := verifyCall{txnID: "tx-3", pid: 3, epoch: 4, partition: p, add: version >= 5}
		if len(calls) != 1 || calls[0] != want {
			t.Fatalf("v%d verified %+v, want %+v", version, calls, want)
		}
	}
	h.endTxn("g", 3, true)
	// A refusal answers every partition with the verifier's code, adapted
	// to the version, and writes nothing. Verification comes first, so a
	// fenced generation is not what the client hears.
	for _, tc := range []struct {
		code    *kerr.Error
		version int16
		want    *kerr.Error
	}{
		{kerr.NetworkException, 3, kerr.CoordinatorLoadInProgress},
		{kerr.NetworkException, 1, kerr.CoordinatorNotAvailable},
		{kerr.NotEnoughReplicas, 5, kerr.CoordinatorNotAvailable},
		{kerr.NotLeaderForPartition, 5, kerr.NotCoordinator},
		{kerr.ProducerFenced, 5, kerr.InvalidProducerEpoch},
		{kerr.TransactionAbortable, 3, kerr.InvalidTxnState},
		{kerr.TransactionAbortable, 4, kerr.TransactionAbortable},
		{kerr.InvalidTxnState, 5, kerr.InvalidTxnState},
		{kerr.ConcurrentTransactions, 5, kerr.ConcurrentTransactions},
		{kerr.InvalidProducerIDMapping, 5, kerr.InvalidProducerIDMapping},
	} {
		v.reset(tc.code.Code)
		before := len(h.store.records(p))
		r := txnReq("g", 4, "t", 0, 1)
		r.Topics[0].Partitions = append(r.Topics[0].Partitions, kmsg.TxnOffsetCommitRequestTopicPartition{Partition: 1, Offset: 2})
		r.Version, r.MemberID, r.Generation = tc.version, ids[0], gen+1
		resp := h.c.TxnOffsetCommit(h.ctx, r)
		for _, rp := range resp.Topics[0].Partitions {
			expectCode(t, fmt.Sprintf("%s at v%d", tc.code.Message, tc.version), rp.ErrorCode, tc.want)
		}
		if len(h.store.records(p)) != before || pending(h.c, "g") != 0 {
			t.Fatalf("%s: a refused commit was written", tc.code.Message)
		}
	}
	if off, code := h.fetchStable("g", "t", 0, 8); off != 5 || code != 0 {
		t.Fatalf("committed %d %v, want the v5 commit's 5", off, kerr.ErrorForCode(code))
	}
}

func TestGroupTxnMarkerDuringVerification(t *testing.T) {
	t.Parallel()
	v := &fakeVerifier{}
	h := newHarness(t, func(c *Config) { c.TxnVerifier = v })
	h.topic("t", 1)
	p := PartitionFor("g", testPartitions)
	// The producer's previous transaction is aborted while the commit is
	// verified: it verifies again and writes after the marker.
	v.hook = func(n int) {
		if n == 1 {
			h.endTxn("g", 7, false)
		}
	}
	expectCode(t, "commit raced by a marker", h.txnCommit("g", 7, "t", 0, 10), nil)
	if calls := v.reset(0); len(calls) != 2 {
		t.Fatalf("%d verifications, want 2", len(calls))
	}
	recs := h.store.records(p)
	if len(recs) != 2 || recs[0].Marker != AbortMarker || !recs[1].Transactional {
		t.Fatalf("log %+v: the commit must follow the marker", recs)
	}
	if pending(h.c, "g") != 1 {
		t.Fatal("the commit is not pending")
	}
	h.endTxn("g", 7, true)
	// A marker of another producer does not make it verify again.
	v.hook = func(int) { h.endTxn("g", 8, true) }
	expectCode(t, "other producer's marker", h.txnCommit("g", 7, "t", 0, 20), nil)
	if calls := v.reset(0); len(calls) != 1 {
		t.Fatalf("%d verifications, want 1", len(calls))
	}
	h.endTxn("g", 7, false)
	// Markers every time: the client is told to retry and nothing is
	// written.
	v.hook = func(int) { h.endTxn("g", 7, false) }
	before := len(h.store.records(p))
	expectCode(t, "always raced", h.txnCommit("g", 7, "t", 0, 30), kerr.CoordinatorLoadInProgress)
	if calls := v.reset(0); len(calls) != maxVerifyAttempts {
		t.Fatalf("%d verifications, want %d", len(calls), maxVerifyAttempts)
	}
	for _, rec := range h.store.records(p)[before:] {
		if rec.Transactional {
			t.Fatal("a raced commit was written")
		}
	}
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	if len(h.c.mu.markerWatch) != 0 {
		t.Fatalf("marker watches left behind: %v", h.c.mu.markerWatch)
	}
}

func TestGroupTxnPersistFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 1)
	for _, tc := range []struct {
		err  error
		want *kerr.Error
	}{
		{errInjected, kerr.CoordinatorNotAvailable},
		{fmt.Errorf("append: %w", kerr.NotLeaderForPartition), kerr.NotCoordinator},
		{fmt.Errorf("append: %w", kerr.MessageTooLarge), kerr.InvalidCommitOffsetSize},
		{fmt.Errorf("append: %w", kerr.InvalidTxnState), kerr.InvalidTxnState},
		{fmt.Errorf("append: %w", kerr.ProducerFenced), kerr.InvalidProducerEpoch},
		{fmt.Errorf("append: %w", ErrNotCoordinator), kerr.NotCoordinator},
	} {
		h.store.setFail(tc.err)
		expectCode(t, tc.err.Error(), h.txnCommit("g", 1, "t", 0, 5), tc.want)
		if groupOf(h.c, "g") != nil {
			t.Fatalf("%v: a failed commit left a group", tc.err)
		}
	}
	// A failed marker write changes nothing; the retry applies it.
	h.store.setFail(nil)
	expectCode(t, "commit", h.txnCommit("g", 1, "t", 0, 5), nil)
	h.store.setFail(errInjected)
	p := PartitionFor("g", testPartitions)
	if err := h.c.CompleteTxn(h.ctx, p, 1, true, h.store.markerWriter(p, 1, true)); err != errInjected {
		t.Fatalf("CompleteTxn returned %v, want the write's error", err)
	}
	if pending(h.c, "g") != 1 {
		t.Fatal("a failed marker ended the transaction")
	}
	h.store.setFail(nil)
	h.endTxn("g", 1, true)
	if got := h.fetch("g", "t", 0); got != 5 {
		t.Fatalf("committed %d after the retried marker, want 5", got)
	}
}

func TestRepeatsTxnOffsetCommitWritesLastOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 2)
	r := txnReq("g", 1, "t", 0, 0)
	rt := &r.Topics[0]
	rt.Partitions = rt.Partitions[:0]
	for i := range copies {
		rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = int32(i%2), int64(i)
		rt.Partitions = append(rt.Partitions, rp)
	}
	p := PartitionFor("g", testPartitions)
	before := len(h.store.records(p))
	resp := h.c.TxnOffsetCommit(h.ctx, r)
	if got := len(resp.Topics[0].Partitions); got != copies {
		t.Fatalf("%d entries answered, want every one of %d", got, copies)
	}
	for _, rp := range resp.Topics[0].Partitions {
		expectCode(t, "commit", rp.ErrorCode, nil)
	}
	if got := len(h.store.records(p)) - before; got != 2 {
		t.Fatalf("%d records written for 2 distinct partitions", got)
	}
	h.endTxn("g", 1, true)
	if h.fetch("g", "t", 0) != copies-2 || h.fetch("g", "t", 1) != copies-1 {
		t.Fatalf("committed %d and %d, want the last entries", h.fetch("g", "t", 0), h.fetch("g", "t", 1))
	}
	h.store.setFail(errInjected)
	for i, rp := range h.c.TxnOffsetCommit(h.ctx, r).Topics[0].Partitions {
		if rp.ErrorCode == 0 {
			t.Fatalf("entry %d of a failed commit answered without error", i)
		}
	}
}
