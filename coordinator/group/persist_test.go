package group

import (
	"bytes"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestGroupPersistenceRoundTrip(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 4)
	ids, _, gen := h.stableGroup("classic", 2)
	expectCode(t, "classic commit", h.commit("classic", ids[0], gen, "t", 1, 100), nil)
	expectCode(t, "simple commit", h.commit("simple", "", -1, "t", 2, 200), nil)
	a, b := newCClient("a", "t"), newCClient("b", "t")
	b.instance = kmsg.StringPtr("static-b")
	clients := []*cclient{a, b}
	h.converge("modern", clients)
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Version = 9
	commit.Group, commit.MemberID, commit.Generation = "modern", a.id, a.epoch
	commit.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 3, Offset: 300, LeaderEpoch: 7}}}}
	expectCode(t, "modern commit", h.c.OffsetCommit(h.ctx, commit).Topics[0].Partitions[0].ErrorCode, nil)

	beforeClassic := h.describe("classic")
	beforeModern := h.consumerDescribe("modern")

	// A new coordinator (another broker, or a restart) loads the log.
	old := h.c
	h.c = h.newCoordinator()
	for p := range int32(testPartitions) {
		h.c.Load(p, h.store.records(p))
	}
	old.Close()

	afterClassic := h.describe("classic")
	if afterClassic.State != "Stable" || !sameDescribe(beforeClassic, afterClassic) {
		t.Fatalf("classic group after reload:\n%+v\nwant\n%+v", afterClassic, beforeClassic)
	}
	afterModern := h.consumerDescribe("modern")
	if afterModern.Epoch != beforeModern.Epoch || afterModern.AssignmentEpoch != beforeModern.AssignmentEpoch ||
		afterModern.State != beforeModern.State || len(afterModern.Members) != 2 || afterModern.AssignorName != beforeModern.AssignorName {
		t.Fatalf("consumer group after reload:\n%+v\nwant\n%+v", afterModern, beforeModern)
	}
	for i, m := range afterModern.Members {
		want := beforeModern.Members[i]
		if m.MemberID != want.MemberID || m.MemberEpoch != want.MemberEpoch || !sameAssignment(m.Assignment, want.Assignment) ||
			!sameAssignment(m.TargetAssignment, want.TargetAssignment) || (m.InstanceID == nil) != (want.InstanceID == nil) {
			t.Fatalf("member %s after reload: %+v, want %+v", m.MemberID, m, want)
		}
	}
	for _, tc := range []struct {
		group string
		p     int32
		want  int64
	}{{"classic", 1, 100}, {"simple", 2, 200}, {"modern", 3, 300}} {
		if got := h.fetch(tc.group, "t", tc.p); got != tc.want {
			t.Fatalf("%s: offset %d after reload, want %d", tc.group, got, tc.want)
		}
	}
	// Members carry on where they were.
	for _, id := range ids {
		expectCode(t, "classic heartbeat after reload", h.heartbeat("classic", id, gen, nil), nil)
	}
	ownedBefore := []partSet{maps.Clone(a.owned), maps.Clone(b.owned)}
	for i, cl := range clients {
		expectCode(t, "consumer heartbeat after reload", h.cgHeartbeat("modern", cl).ErrorCode, nil)
		if !maps.Equal(cl.owned, ownedBefore[i]) {
			t.Fatalf("%s owns %v after reload, had %v", cl.id, cl.owned, ownedBefore[i])
		}
	}
	// Members that stay silent expire on the new coordinator.
	h.clock.Advance(time.Minute)
	if d := h.describe("classic"); d.State == "Stable" {
		t.Fatalf("classic members did not expire: %s", d.State)
	}
	if d := h.consumerDescribe("modern"); d.State != "Empty" {
		t.Fatalf("consumer members did not expire: %s with %d members", d.State, len(d.Members))
	}
	// ... and their removal is durable too.
	c3 := h.newCoordinator()
	for p := range int32(testPartitions) {
		c3.Load(p, h.store.records(p))
	}
	if g := groupOf(c3, "modern"); g == nil || len(g.cg.members) != 0 || len(g.offsets) != 1 {
		t.Fatalf("modern group on a third load: %+v", g)
	}
}

func TestGroupLoadSkipsGarbage(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := PartitionFor("g", testPartitions)
	good := Record{Key: offsetKey("g", "t", 0), Value: offsetValue(committedOffset{offset: 5, leaderEpoch: -1, expireTime: -1})}
	records := []Record{
		{Key: []byte{0}},          // short key
		{Key: []byte{0, 1, 0xff}}, // offset key with a bad string
		{Key: offsetKey("g", "t", 1), Value: []byte{0, 3}},
		{Key: groupMetadataKey("g"), Value: []byte{0, 9, 1}},
		{Key: consumerGroupKey("g"), Value: []byte{0, 0, 1}},
		{Key: consumerMemberKey("g", "m"), Value: []byte{0, 0, 0xff, 0xff, 0xff}},
		{Key: []byte{0, 99, 1, 2, 3}, Value: []byte("a record type this package does not own")},
		good,
	}
	h.c.Load(p, records)
	if got := h.fetch("g", "t", 0); got != 5 {
		t.Fatalf("good record lost among garbage: %d", got)
	}
	if got := h.fetch("g", "t", 1); got != -1 {
		t.Fatalf("garbage offset loaded: %d", got)
	}
}

func FuzzGroupLoadRecords(f *testing.F) {
	cg := newConsumerGroup()
	cg.epoch, cg.targetEpoch, cg.assignor = 3, 3, AssignorUniform
	cg.topics["t"] = topicMeta{name: "t", id: [16]byte{1}, partitions: 2}
	m := newCMember("m")
	m.instanceID = kmsg.StringPtr("i")
	m.topics = []string{"t"}
	m.assigned[tpid{id: [16]byte{1}, p: 0}] = 3
	m.revoking[tpid{id: [16]byte{1}, p: 1}] = struct{}{}
	m.target[tpid{id: [16]byte{1}, p: 0}] = struct{}{}
	f.Add(consumerGroupKey("g"), consumerGroupValue(cg))
	f.Add(consumerMemberKey("g", "m"), consumerMemberValue(m))
	f.Add(offsetKey("g", "t", 0), offsetValue(committedOffset{offset: 1, expireTime: 5}))
	g := newGroup("g", 0)
	g.protocolType, g.protocol, g.generation, g.state = "consumer", "range", 2, stateStable
	g.members["x"] = &member{id: "x", protocols: []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{1}}}, assignment: []byte{2}}
	f.Add(groupMetadataKey("g"), classicValue(g))
	sg := newShareGroup()
	sg.epoch, sg.subscribed = 4, []string{"t", "u"}
	f.Add(shareGroupKey("g"), shareGroupValue(sg))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		h := newHarness(t)
		h.c.Load(PartitionFor("g", testPartitions), []Record{{Key: key, Value: value}, {Key: key}})
		for p := range int32(testPartitions) {
			h.c.Load(p, []Record{{Key: key, Value: value}})
		}
		h.c.Stats()
		h.clock.Advance(time.Hour)
	})
}

func TestGroupRecordsRoundTrip(t *testing.T) {
	t.Parallel()
	cg := newConsumerGroup()
	cg.epoch, cg.targetEpoch, cg.assignor = 7, 6, AssignorRange
	cg.topics["t"] = topicMeta{name: "t", id: [16]byte{9}, partitions: 3}
	v, err := decodeConsumerGroupValue(consumerGroupValue(cg))
	if err != nil || v.epoch != 7 || v.targetEpoch != 6 || v.assignor != AssignorRange || len(v.topics) != 1 || v.topics[0] != cg.topics["t"] {
		t.Fatalf("group record: %+v %v", v, err)
	}
	m := newCMember("m")
	m.instanceID, m.rackID = kmsg.StringPtr("i"), nil
	m.clientID, m.clientHost, m.epoch, m.prevEpoch, m.state = "c", "h", 7, 5, memberUnreleased
	m.rebalanceTimeout, m.assignor, m.regex, m.topics = 30*time.Second, AssignorRange, "x.*", []string{"a", "b"}
	m.assigned[tpid{id: [16]byte{9}, p: 2}] = 6
	m.revoking[tpid{id: [16]byte{9}, p: 1}] = struct{}{}
	m.target[tpid{id: [16]byte{9}, p: 0}] = struct{}{}
	got, err := decodeConsumerMemberValue("m", consumerMemberValue(m))
	if err != nil {
		t.Fatal(err)
	}
	if *got.instanceID != "i" || got.rackID != nil || got.clientID != "c" || got.epoch != 7 || got.prevEpoch != 5 || got.state != memberUnreleased ||
		got.rebalanceTimeout != 30*time.Second || got.regex != "x.*" || len(got.topics) != 2 ||
		!maps.Equal(got.assigned, m.assigned) || !maps.Equal(got.revoking, m.revoking) || !maps.Equal(got.target, m.target) {
		t.Fatalf("member record: %+v", got)
	}
	if _, err := decodeConsumerMemberValue("m", append(consumerMemberValue(m), 0)); err == nil {
		t.Fatal("trailing bytes accepted")
	}
}

func (h *harness) consumerDescribe(group string) kmsg.ConsumerGroupDescribeResponseGroup {
	r := kmsg.NewPtrConsumerGroupDescribeRequest()
	r.Version = 1
	r.Groups = []string{group}
	return h.c.ConsumerGroupDescribe(h.ctx, r).Groups[0]
}

func sameDescribe(a, b kmsg.DescribeGroupsResponseGroup) bool {
	if a.State != b.State || a.Protocol != b.Protocol || a.ProtocolType != b.ProtocolType || len(a.Members) != len(b.Members) {
		return false
	}
	for i := range a.Members {
		x, y := a.Members[i], b.Members[i]
		if x.MemberID != y.MemberID || x.ClientID != y.ClientID || x.ClientHost != y.ClientHost ||
			!bytes.Equal(x.ProtocolMetadata, y.ProtocolMetadata) || !bytes.Equal(x.MemberAssignment, y.MemberAssignment) {
			return false
		}
	}
	return true
}

func sameAssignment(a, b kmsg.Assignment) bool {
	if len(a.TopicPartitions) != len(b.TopicPartitions) {
		return false
	}
	for i := range a.TopicPartitions {
		x, y := a.TopicPartitions[i], b.TopicPartitions[i]
		if x.TopicID != y.TopicID || x.Topic != y.Topic || len(x.Partitions) != len(y.Partitions) {
			return false
		}
		for j := range x.Partitions {
			if x.Partitions[j] != y.Partitions[j] {
				return false
			}
		}
	}
	return true
}

// A load whose log read fails part way serves nothing it read: the
// partition stays loading (clients retry) until a load succeeds.
func TestGroupLoadFailureServesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := PartitionFor("g", testPartitions)
	rec := Record{Key: offsetKey("g", "t", 0), Value: offsetValue(committedOffset{offset: 5, leaderEpoch: -1, expireTime: -1})}
	readErr := errors.New("injected read failure")
	token := h.c.BeginLoad(p)
	err := h.c.LoadFrom(token, func(yield func(Record) bool) error {
		yield(rec)
		return readErr
	})
	if !errors.Is(err, readErr) {
		t.Fatalf("LoadFrom with a failing source: %v, want %v", err, readErr)
	}
	if h.c.Owns(p) || !h.c.Loading(token) {
		t.Fatalf("after a failed load: owns %v, loading %v; want still loading", h.c.Owns(p), h.c.Loading(token))
	}
	r := kmsg.NewPtrOffsetFetchRequest()
	r.Version = 8
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = "g"
	r.Groups = append(r.Groups, rg)
	expectCode(t, "offset fetch during a failed load", h.c.OffsetFetch(h.ctx, r).Groups[0].ErrorCode, kerr.CoordinatorLoadInProgress)

	if err := h.c.LoadFrom(token, func(yield func(Record) bool) error { yield(rec); return nil }); err != nil {
		t.Fatalf("retried load: %v", err)
	}
	if got := h.fetch("g", "t", 0); got != 5 {
		t.Fatalf("offset after the retried load: %d, want 5", got)
	}
}

// A load that finishes after the partition was unloaded, or loaded again,
// is discarded.
func TestGroupLoadSuperseded(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := PartitionFor("g", testPartitions)
	rec := Record{Key: offsetKey("g", "t", 0), Value: offsetValue(committedOffset{offset: 5, leaderEpoch: -1, expireTime: -1})}
	one := func(yield func(Record) bool) error { yield(rec); return nil }

	stale := h.c.BeginLoad(p)
	h.c.Unload(p)
	if err := h.c.LoadFrom(stale, one); !errors.Is(err, ErrLoadSuperseded) {
		t.Fatalf("load after Unload: %v, want ErrLoadSuperseded", err)
	}
	if h.c.Owns(p) {
		t.Fatal("a superseded load made the partition served")
	}
	stale = h.c.BeginLoad(p)
	fresh := h.c.BeginLoad(p)
	if err := h.c.LoadFrom(stale, one); !errors.Is(err, ErrLoadSuperseded) {
		t.Fatalf("load after a newer BeginLoad: %v, want ErrLoadSuperseded", err)
	}
	if err := h.c.LoadFrom(fresh, one); err != nil {
		t.Fatalf("newest load: %v", err)
	}
	if got := h.fetch("g", "t", 0); got != 5 {
		t.Fatalf("offset after the newest load: %d, want 5", got)
	}
}
