package group

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/coordinator"
)

// fakeClock is the shared manual clock: timers fire only inside Advance.
type fakeClock = coordinator.FakeClock

func newFakeClock() *fakeClock {
	return coordinator.NewFakeClock(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
}

// memPersister is an in-memory __consumer_offsets.
type memPersister struct {
	mu    sync.Mutex
	logs  map[int32][]Record
	fail  error
	gate  chan struct{} // if non-nil, Persist waits for a receive... close to release
	calls int
}

func newMemPersister() *memPersister { return &memPersister{logs: make(map[int32][]Record)} }

func (p *memPersister) Persist(ctx context.Context, partition int32, records []Record) error {
	p.mu.Lock()
	gate, fail := p.gate, p.fail
	p.calls++
	p.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail != nil {
		return fail
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range records {
		p.logs[partition] = append(p.logs[partition], Record{Key: slices.Clone(r.Key), Value: slices.Clone(r.Value),
			Transactional: r.Transactional, ProducerID: r.ProducerID, Marker: r.Marker})
	}
	return nil
}

// PersistTxn stores records as Persist does, marked with their producer, as
// a RecordSource replaying the log would yield them.
func (p *memPersister) PersistTxn(ctx context.Context, partition int32, producerID int64, _ int16, records []Record) error {
	txn := make([]Record, len(records))
	for i, r := range records {
		txn[i] = Record{Key: r.Key, Value: r.Value, Transactional: true, ProducerID: producerID}
	}
	return p.Persist(ctx, partition, txn)
}

// markerWriter returns the write of a CompleteTxn: it appends producerID's
// COMMIT or ABORT control record to partition's log, as the broker appends
// the marker batch, so a reload replays it as a Record with Marker set.
func (p *memPersister) markerWriter(partition int32, producerID int64, commit bool) func(context.Context) error {
	m := AbortMarker
	if commit {
		m = CommitMarker
	}
	return func(ctx context.Context) error {
		return p.Persist(ctx, partition, []Record{{Marker: m, ProducerID: producerID}})
	}
}

func (p *memPersister) setFail(err error) {
	p.mu.Lock()
	p.fail = err
	p.mu.Unlock()
}

func (p *memPersister) records(partition int32) []Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.logs[partition])
}

// tombstones counts tombstones in partition's log.
func (p *memPersister) tombstones(partition int32) int {
	n := 0
	for _, r := range p.records(partition) {
		if r.Value == nil {
			n++
		}
	}
	return n
}

const testPartitions = 4

type harness struct {
	t      *testing.T
	clock  *fakeClock
	store  *memPersister
	c      *Coordinator
	mu     sync.Mutex
	topics map[string]topicMeta
	ctx    context.Context
	mutate []func(*Config) // newHarness's, for reload
}

func newHarness(t *testing.T, mutate ...func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, clock: newFakeClock(), store: newMemPersister(), topics: make(map[string]topicMeta), mutate: mutate}
	h.ctx = WithClient(context.Background(), "client", "/127.0.0.1")
	h.c = h.newCoordinator(mutate...)
	for p := range int32(testPartitions) {
		h.c.Load(p, nil)
	}
	return h
}

// newCoordinator builds a coordinator on h's clock, store and topics (a
// restarted broker).
func (h *harness) newCoordinator(mutate ...func(*Config)) *Coordinator {
	h.t.Helper()
	cfg := Config{
		Clock:         h.clock,
		Persister:     h.store,
		NumPartitions: testPartitions,
		TopicMetadata: h.topicMetadata,
		ListTopics:    h.listTopics,
	}
	for _, f := range mutate {
		f(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(c.Close)
	return c
}

// reload replaces h.c with a coordinator configured as newHarness's that
// loads every partition from the log (a restart, or a move to another
// broker), and closes the old one.
func (h *harness) reload() {
	h.t.Helper()
	old := h.c
	h.c = h.newCoordinator(h.mutate...)
	for p := range int32(testPartitions) {
		h.c.Load(p, h.store.records(p))
	}
	old.Close()
}

func (h *harness) topicMetadata(name string) ([16]byte, int32, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.topics[name]
	return t.id, t.partitions, ok
}

func (h *harness) listTopics() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return sortedKeys(h.topics)
}

// topic creates (or resizes) a topic and returns its id.
func (h *harness) topic(name string, partitions int32) [16]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.topics[name]
	if !ok {
		t = topicMeta{name: name}
		copy(t.id[:], fmt.Sprintf("%-16.16s", name))
	}
	t.partitions = partitions
	h.topics[name] = t
	return t.id
}

// waitFor polls cond until it holds or five seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for a response")
	}
	var zero T
	return zero
}

func expectCode(t *testing.T, what string, got int16, want *kerr.Error) {
	t.Helper()
	wantCode := int16(0)
	if want != nil {
		wantCode = want.Code
	}
	if got != wantCode {
		t.Fatalf("%s: error code %v, want %v", what, kerr.ErrorForCode(got), kerr.ErrorForCode(wantCode))
	}
}

// ---- classic protocol helpers ----

func consumerMeta(topics ...string) []byte {
	m := kmsg.NewConsumerMemberMetadata()
	m.Topics = topics
	return m.AppendTo(nil)
}

func joinReq(group, memberID string, instanceID *string, topics ...string) *kmsg.JoinGroupRequest {
	r := kmsg.NewPtrJoinGroupRequest()
	r.Version = 9
	r.Group = group
	r.MemberID = memberID
	r.InstanceID = instanceID
	r.SessionTimeoutMillis = 10_000
	r.RebalanceTimeoutMillis = 20_000
	r.ProtocolType = "consumer"
	r.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: consumerMeta(topics...)}}
	return r
}

func (h *harness) joinAsync(req *kmsg.JoinGroupRequest) <-chan *kmsg.JoinGroupResponse {
	ch := make(chan *kmsg.JoinGroupResponse, 1)
	go func() { ch <- h.c.JoinGroup(h.ctx, req) }()
	return ch
}

func (h *harness) syncAsync(req *kmsg.SyncGroupRequest) <-chan *kmsg.SyncGroupResponse {
	ch := make(chan *kmsg.SyncGroupResponse, 1)
	go func() { ch <- h.c.SyncGroup(h.ctx, req) }()
	return ch
}

// memberID gets a member id through the KIP-394 handshake.
func (h *harness) memberID(group string, topics ...string) string {
	h.t.Helper()
	resp := h.c.JoinGroup(h.ctx, joinReq(group, "", nil, topics...))
	expectCode(h.t, "first join", resp.ErrorCode, kerr.MemberIDRequired)
	if resp.MemberID == "" {
		h.t.Fatal("MEMBER_ID_REQUIRED without a member id")
	}
	return resp.MemberID
}

// parked counts members parked in JoinGroup / SyncGroup.
func (h *harness) parked(group string) (joins, syncs int) {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	g := h.c.mu.groups[group]
	if g == nil {
		return 0, 0
	}
	for _, m := range g.members {
		if m.join != nil {
			joins++
		}
		if m.sync != nil {
			syncs++
		}
	}
	return joins, syncs
}

func (h *harness) waitParkedJoins(group string, n int) {
	h.t.Helper()
	waitFor(h.t, fmt.Sprintf("%d parked joins in %s", n, group), func() bool { j, _ := h.parked(group); return j == n })
}

func (h *harness) waitParkedSyncs(group string, n int) {
	h.t.Helper()
	waitFor(h.t, fmt.Sprintf("%d parked syncs in %s", n, group), func() bool { _, s := h.parked(group); return s == n })
}

func syncReq(group, memberID string, generation int32, assignments map[string][]byte) *kmsg.SyncGroupRequest {
	r := kmsg.NewPtrSyncGroupRequest()
	r.Version = 5
	r.Group = group
	r.MemberID = memberID
	r.Generation = generation
	r.ProtocolType = kmsg.StringPtr("consumer")
	r.Protocol = kmsg.StringPtr("range")
	for _, id := range sortedKeys(assignments) {
		r.GroupAssignment = append(r.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: id, MemberAssignment: assignments[id]})
	}
	return r
}

func (h *harness) heartbeat(group, memberID string, generation int32, instanceID *string) int16 {
	r := kmsg.NewPtrHeartbeatRequest()
	r.Version = 4
	r.Group, r.MemberID, r.Generation, r.InstanceID = group, memberID, generation, instanceID
	return h.c.Heartbeat(h.ctx, r).ErrorCode
}

// stableGroup brings n dynamic members into group through one rebalance
// and a sync where the leader assigns each member its own id as bytes. It
// returns the member ids in join order, the leader and the generation.
func (h *harness) stableGroup(group string, n int) (ids []string, leader string, gen int32) {
	h.t.Helper()
	for range n {
		ids = append(ids, h.memberID(group, "t"))
	}
	var chans []<-chan *kmsg.JoinGroupResponse
	for _, id := range ids {
		chans = append(chans, h.joinAsync(joinReq(group, id, nil, "t")))
	}
	var resps []*kmsg.JoinGroupResponse
	for _, ch := range chans {
		resps = append(resps, recv(h.t, ch))
	}
	for _, r := range resps {
		expectCode(h.t, "join", r.ErrorCode, nil)
	}
	leader, gen = resps[0].LeaderID, resps[0].Generation
	assign := make(map[string][]byte)
	for _, id := range ids {
		assign[id] = []byte("assignment-" + id)
	}
	h.syncAll(group, ids, leader, gen, assign)
	return ids, leader, gen
}

// syncAll syncs every member (followers first) and checks each gets
// assign[id].
func (h *harness) syncAll(group string, ids []string, leader string, gen int32, assign map[string][]byte) {
	h.t.Helper()
	chans := make(map[string]<-chan *kmsg.SyncGroupResponse)
	followers := 0
	for _, id := range ids {
		if id != leader {
			chans[id] = h.syncAsync(syncReq(group, id, gen, nil))
			followers++
		}
	}
	h.waitParkedSyncs(group, followers)
	chans[leader] = h.syncAsync(syncReq(group, leader, gen, assign))
	for _, id := range ids {
		r := recv(h.t, chans[id])
		expectCode(h.t, "sync "+id, r.ErrorCode, nil)
		if string(r.MemberAssignment) != string(assign[id]) {
			h.t.Fatalf("member %s got assignment %q, want %q", id, r.MemberAssignment, assign[id])
		}
	}
}

func (h *harness) describe(group string) kmsg.DescribeGroupsResponseGroup {
	r := kmsg.NewPtrDescribeGroupsRequest()
	r.Version = 5
	r.Groups = []string{group}
	return h.c.DescribeGroups(h.ctx, r).Groups[0]
}

func (h *harness) commit(group, memberID string, generation int32, topic string, partition int32, offset int64) int16 {
	r := kmsg.NewPtrOffsetCommitRequest()
	r.Version = 8
	r.Group, r.MemberID, r.Generation = group, memberID, generation
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset, rp.LeaderEpoch = partition, offset, 3
	rp.Metadata = kmsg.StringPtr("meta")
	rt.Partitions = append(rt.Partitions, rp)
	r.Topics = append(r.Topics, rt)
	return h.c.OffsetCommit(h.ctx, r).Topics[0].Partitions[0].ErrorCode
}

// fetch returns the committed offset of one partition (-1 if none).
func (h *harness) fetch(group, topic string, partition int32) int64 {
	h.t.Helper()
	r := kmsg.NewPtrOffsetFetchRequest()
	r.Version = 8
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = group
	rg.Topics = []kmsg.OffsetFetchRequestGroupTopic{{Topic: topic, Partitions: []int32{partition}}}
	r.Groups = append(r.Groups, rg)
	resp := h.c.OffsetFetch(h.ctx, r)
	g := resp.Groups[0]
	expectCode(h.t, "offset fetch", g.ErrorCode, nil)
	p := g.Topics[0].Partitions[0]
	expectCode(h.t, "offset fetch partition", p.ErrorCode, nil)
	return p.Offset
}

var errInjected = errors.New("injected persist failure")

// groupOf returns c's live group id (nil if none), read under the lock.
func groupOf(c *Coordinator, id string) *group {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.groups[id]
}
