package metadata_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/sluicedev/sluice/metadata"
)

// newStoreFunc returns a fresh, empty store for one subtest; the store is
// closed by t.Cleanup.
type newStoreFunc func(t *testing.T) metadata.Store

// runConformance runs the behaviour every Store implementation shares.
func runConformance(t *testing.T, newStore newStoreFunc) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s metadata.Store)
	}{
		{"ClusterIDStable", testClusterIDStable},
		{"TopicCreateGet", testTopicCreateGet},
		{"TopicCreateDuplicate", testTopicCreateDuplicate},
		{"TopicInvalid", testTopicInvalid},
		{"TopicListSorted", testTopicListSorted},
		{"TopicUpdateCAS", testTopicUpdateCAS},
		{"TopicDelete", testTopicDelete},
		{"TopicWatch", testTopicWatch},
		{"BrokerConfigs", testBrokerConfigs},
		{"BrokerConfigsWatch", testBrokerConfigsWatch},
		{"BrokerRegister", testBrokerRegister},
		{"BrokerLeaseLost", testBrokerLeaseLost},
		{"BrokerWatch", testBrokerWatch},
		{"BrokerIncarnationTakeover", testBrokerIncarnationTakeover},
		{"BrokerEpoch", testBrokerEpoch},
		{"BrokerValidUntil", testBrokerValidUntil},
		{"ProducerIDsUnique", testProducerIDsUnique},
		{"PartitionStateCAS", testPartitionStateCAS},
		{"PartitionWatch", testPartitionWatch},
		{"PartitionCreateMany", testPartitionCreateMany},
		{"ControllerElection", testControllerElection},
		{"ControllerLeaseLost", testControllerLeaseLost},
		{"ControllerWithdrawn", testControllerWithdrawn},
		{"ClientQuotaCAS", testClientQuotaCAS},
		{"ClientQuotaList", testClientQuotaList},
		{"ClientQuotaWatch", testClientQuotaWatch},
		{"GroupConfigCAS", testGroupConfigCAS},
		{"GroupConfigWatch", testGroupConfigWatch},
		{"FeaturesCAS", testFeaturesCAS},
		{"StoreClose", testStoreClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it returns nil or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustCreate(t *testing.T, s metadata.Store, tp metadata.Topic) metadata.Topic {
	t.Helper()
	got, err := s.CreateTopic(ctxT(t), tp)
	if err != nil {
		t.Fatalf("CreateTopic(%s): %v", tp.Name, err)
	}
	return got
}

func sampleTopic(name string) metadata.Topic {
	return metadata.Topic{
		Name: name, Partitions: 3, ReplicationFactor: 2,
		Replicas: [][]int32{{1, 2}, {2, 3}, {3, 1}},
		Configs:  map[string]string{"cleanup.policy": "compact", "retention.ms": "1000"},
	}
}

func testClusterIDStable(t *testing.T, s metadata.Store) {
	ctx := ctxT(t)
	id1, err := s.ClusterID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id2, err := s.ClusterID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if id1 != id2 {
		t.Fatalf("cluster id changed: %q then %q", id1, id2)
	}
	if _, err := metadata.ParseUUID(id1); err != nil {
		t.Fatalf("cluster id %q is not a base64 uuid: %v", id1, err)
	}
}

func testTopicCreateGet(t *testing.T, s metadata.Store) {
	ctx := ctxT(t)
	in := sampleTopic("orders")
	created := mustCreate(t, s, in)
	if created.ID == ([16]byte{}) {
		t.Fatal("CreateTopic left the id zero")
	}
	if v := created.ID[6] >> 4; v != 4 {
		t.Fatalf("topic id version %d, want 4", v)
	}
	if created.Revision <= 0 {
		t.Fatalf("revision %d, want > 0", created.Revision)
	}
	got, err := s.Topic(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, created) {
		t.Fatalf("Topic() = %+v, want %+v", got, created)
	}
	want := in
	want.ID, want.Revision = created.ID, created.Revision
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("stored %+v, want %+v", got, want)
	}

	// A caller-chosen id is kept; nil configs come back as an empty map.
	id := [16]byte{0x12, 0x34, 6: 0x40, 8: 0x80, 15: 9}
	bare := mustCreate(t, s, metadata.Topic{Name: "bare", ID: id, Partitions: 1})
	got, err = s.Topic(ctx, "bare")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != id || bare.ID != id || got.Configs == nil || len(got.Configs) != 0 || got.Replicas != nil {
		t.Fatalf("bare topic stored as %+v", got)
	}
	empty := mustCreate(t, s, metadata.Topic{Name: "empty", Replicas: [][]int32{}})
	if empty.Replicas != nil {
		t.Fatalf("empty replica list returned as %#v, want nil", empty.Replicas)
	}
	if got, _ := s.Topic(ctx, "empty"); !reflect.DeepEqual(got, empty) {
		t.Fatalf("Topic(empty) = %+v, want %+v", got, empty)
	}
	if _, err := s.Topic(ctx, "missing"); !errors.Is(err, metadata.ErrTopicNotFound) {
		t.Fatalf("Topic(missing) err = %v, want ErrTopicNotFound", err)
	}
	// Mutating what the store returned must not change the store.
	got.Configs["x"] = "y"
	again, _ := s.Topic(ctx, "bare")
	if len(again.Configs) != 0 {
		t.Fatal("returned configs alias the stored ones")
	}
}

func testTopicCreateDuplicate(t *testing.T, s metadata.Store) {
	first := mustCreate(t, s, sampleTopic("dup"))
	_, err := s.CreateTopic(ctxT(t), metadata.Topic{Name: "dup", Partitions: 9})
	if !errors.Is(err, metadata.ErrTopicExists) {
		t.Fatalf("second create err = %v, want ErrTopicExists", err)
	}
	if err.Error() == metadata.ErrTopicExists.Error() {
		t.Fatalf("error %q does not name the topic", err)
	}
	got, _ := s.Topic(ctxT(t), "dup")
	if got.Partitions != first.Partitions || got.ID != first.ID {
		t.Fatalf("duplicate create changed the topic: %+v", got)
	}
}

func testTopicInvalid(t *testing.T, s metadata.Store) {
	for _, tp := range []metadata.Topic{
		{Name: "", Partitions: 1},
		{Name: "a/b", Partitions: 1},
		{Name: "..", Partitions: 1},
		{Name: "neg", Partitions: -1},
		{Name: "mismatch", Partitions: 2, Replicas: [][]int32{{1}}},
	} {
		if _, err := s.CreateTopic(ctxT(t), tp); !errors.Is(err, metadata.ErrInvalidTopic) {
			t.Errorf("CreateTopic(%+v) err = %v, want ErrInvalidTopic", tp, err)
		}
	}
	created := mustCreate(t, s, metadata.Topic{Name: "ok", Partitions: 1})
	created.ID = [16]byte{}
	if _, err := s.UpdateTopic(ctxT(t), created); !errors.Is(err, metadata.ErrInvalidTopic) {
		t.Errorf("UpdateTopic without id err = %v, want ErrInvalidTopic", err)
	}
}

func testTopicListSorted(t *testing.T, s metadata.Store) {
	ctx := ctxT(t)
	if ts, err := s.Topics(ctx); err != nil || len(ts) != 0 {
		t.Fatalf("Topics() on empty store = %v, %v", ts, err)
	}
	for _, n := range []string{"c", "a", "b.x", "b"} {
		mustCreate(t, s, metadata.Topic{Name: n, Partitions: 1})
	}
	ts, err := s.Topics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tp := range ts {
		names = append(names, tp.Name)
	}
	if want := []string{"a", "b", "b.x", "c"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("Topics() names = %v, want %v", names, want)
	}
}

func testTopicUpdateCAS(t *testing.T, s metadata.Store) {
	ctx := ctxT(t)
	v1 := mustCreate(t, s, sampleTopic("cas"))
	next := v1.Clone()
	next.Configs["retention.ms"] = "2000"
	next.Partitions, next.Replicas = 4, append(next.Replicas, []int32{1, 2})
	v2, err := s.UpdateTopic(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Revision <= v1.Revision {
		t.Fatalf("revision went from %d to %d", v1.Revision, v2.Revision)
	}
	got, _ := s.Topic(ctx, "cas")
	if !reflect.DeepEqual(got, v2) {
		t.Fatalf("after update Topic() = %+v, want %+v", got, v2)
	}
	// A writer still holding v1 loses.
	stale := v1.Clone()
	stale.Configs["retention.ms"] = "3000"
	if _, err := s.UpdateTopic(ctx, stale); !errors.Is(err, metadata.ErrConflict) {
		t.Fatalf("stale update err = %v, want ErrConflict", err)
	}
	zero := v2.Clone()
	zero.Revision = 0
	if _, err := s.UpdateTopic(ctx, zero); !errors.Is(err, metadata.ErrConflict) {
		t.Fatalf("update at revision 0 err = %v, want ErrConflict", err)
	}
	gone := v2.Clone()
	gone.Name = "nope"
	if _, err := s.UpdateTopic(ctx, gone); !errors.Is(err, metadata.ErrTopicNotFound) {
		t.Fatalf("update of absent topic err = %v, want ErrTopicNotFound", err)
	}
	if _, err := s.Topic(ctx, "nope"); !errors.Is(err, metadata.ErrTopicNotFound) {
		t.Fatalf("update of absent topic created it: %v", err)
	}
}

func testTopicDelete(t *testing.T, s metadata.Store) {
	ctx := ctxT(t)
	old := mustCreate(t, s, sampleTopic("del"))
	mustCreate(t, s, sampleTopic("del2")) // shares the prefix "del"
	if err := s.DeleteTopic(ctx, "del"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Topic(ctx, "del"); !errors.Is(err, metadata.ErrTopicNotFound) {
		t.Fatalf("Topic after delete err = %v", err)
	}
	if _, err := s.Topic(ctx, "del2"); err != nil {
		t.Fatalf("deleting del removed del2: %v", err)
	}
	if err := s.DeleteTopic(ctx, "del"); !errors.Is(err, metadata.ErrTopicNotFound) {
		t.Fatalf("second delete err = %v, want ErrTopicNotFound", err)
	}
	again := mustCreate(t, s, sampleTopic("del"))
	if again.ID == old.ID {
		t.Fatal("re-created topic reused the old id")
	}
}

func recvTopic(t *testing.T, ch <-chan metadata.TopicEvent) metadata.TopicEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no topic event within 10s")
	}
	return metadata.TopicEvent{}
}

func testTopicWatch(t *testing.T, s metadata.Store) {
	ctx := ctxT(t)
	b := mustCreate(t, s, metadata.Topic{Name: "b", Partitions: 1})
	a := mustCreate(t, s, metadata.Topic{Name: "a", Partitions: 2})
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := s.WatchTopics(wctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []metadata.Topic{a, b} {
		ev := recvTopic(t, ch)
		if ev.Type != metadata.EventPut || !ev.Snapshot || !reflect.DeepEqual(ev.Topic, want) {
			t.Fatalf("snapshot event %+v, want put of %+v", ev, want)
		}
	}
	c := mustCreate(t, s, metadata.Topic{Name: "c", Partitions: 1})
	a2 := a.Clone()
	a2.Configs["k"] = "v"
	a2, err = s.UpdateTopic(ctx, a2)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTopic(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	want := []metadata.TopicEvent{
		{Type: metadata.EventPut, Topic: c},
		{Type: metadata.EventPut, Topic: a2},
		{Type: metadata.EventDelete, Topic: b},
	}
	for i, w := range want {
		if ev := recvTopic(t, ch); !reflect.DeepEqual(ev, w) {
			t.Fatalf("event %d = %+v, want %+v", i, ev, w)
		}
	}
	cancel()
	waitFor(t, 10*time.Second, func() error {
		select {
		case _, ok := <-ch:
			if !ok {
				return nil
			}
		default:
		}
		return errors.New("watch channel still open after cancel")
	})
}

func testBrokerConfigs(t *testing.T, s metadata.Store) {
	ctx := ctxT(t)
	m, err := s.BrokerConfigs(ctx, 1)
	if err != nil || m == nil || len(m) != 0 {
		t.Fatalf("BrokerConfigs on empty = %v, %v; want empty map", m, err)
	}
	set := map[string]string{"log.retention.ms": "5", "num.io.threads": "4"}
	if err := s.SetBrokerConfigs(ctx, 1, set); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBrokerConfigs(ctx, -1, map[string]string{"log.retention.ms": "7"}); err != nil {
		t.Fatal(err)
	}
	set["mutated"] = "after set" // the store must have copied
	if m, _ := s.BrokerConfigs(ctx, 1); len(m) != 2 || m["num.io.threads"] != "4" {
		t.Fatalf("broker 1 configs = %v", m)
	}
	if m, _ := s.BrokerConfigs(ctx, -1); len(m) != 1 || m["log.retention.ms"] != "7" {
		t.Fatalf("default configs = %v", m)
	}
	if err := s.SetBrokerConfigs(ctx, 1, map[string]string{"a": "b"}); err != nil {
		t.Fatal(err)
	}
	if m, _ := s.BrokerConfigs(ctx, 1); !reflect.DeepEqual(m, map[string]string{"a": "b"}) {
		t.Fatalf("replaced configs = %v", m)
	}
	if err := s.SetBrokerConfigs(ctx, 1, nil); err != nil {
		t.Fatal(err)
	}
	if m, _ := s.BrokerConfigs(ctx, 1); len(m) != 0 {
		t.Fatalf("cleared configs = %v", m)
	}
}

func register(t *testing.T, s metadata.Store, id int32) *metadata.Registration {
	t.Helper()
	r, err := s.RegisterBroker(ctxT(t), metadata.Broker{NodeID: id, Host: "127.0.0.1", Port: 9000 + id, Rack: fmt.Sprint("r", id%2)}, 2*time.Second)
	if err != nil {
		t.Fatalf("RegisterBroker(%d): %v", id, err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func brokerIDs(t *testing.T, s metadata.Store) []int32 {
	t.Helper()
	bs, err := s.Brokers(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	ids := []int32{}
	for _, b := range bs {
		ids = append(ids, b.NodeID)
	}
	return ids
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func testBrokerRegister(t *testing.T, s metadata.Store) {
	ctx := ctxT(t)
	r2 := register(t, s, 2)
	r1 := register(t, s, 1)
	if got := brokerIDs(t, s); !reflect.DeepEqual(got, []int32{1, 2}) {
		t.Fatalf("Brokers() = %v", got)
	}
	bs, _ := s.Brokers(ctx)
	if bs[0] != r1.Broker() || bs[0].Rack != "r1" || bs[1].Port != 9002 {
		t.Fatalf("Brokers()[0] = %+v, want %+v", bs[0], r1.Broker())
	}
	if r1.Epoch() <= r2.Epoch() {
		t.Fatalf("later registration has epoch %d <= %d", r1.Epoch(), r2.Epoch())
	}
	if _, err := s.RegisterBroker(ctx, metadata.Broker{NodeID: 1, Host: "h", Port: 1}, time.Second); !errors.Is(err, metadata.ErrBrokerIDInUse) {
		t.Fatalf("duplicate registration err = %v, want ErrBrokerIDInUse", err)
	}
	if isClosed(r1.Lost()) || r1.Err() != nil {
		t.Fatal("live registration reports loss")
	}
	if err := r1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r1.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if !isClosed(r1.Lost()) || !errors.Is(r1.Err(), metadata.ErrClosed) {
		t.Fatalf("after Close: lost=%v err=%v", isClosed(r1.Lost()), r1.Err())
	}
	if got := brokerIDs(t, s); !reflect.DeepEqual(got, []int32{2}) {
		t.Fatalf("Brokers() after close = %v, want [2]", got)
	}
	r1b := register(t, s, 1)
	if r1b.Epoch() <= r1.Epoch() {
		t.Fatalf("re-registration epoch %d <= %d", r1b.Epoch(), r1.Epoch())
	}
}

func testBrokerLeaseLost(t *testing.T, s metadata.Store) {
	r := register(t, s, 5)
	other := register(t, s, 6)
	if err := metadata.ExpireRegistrationForTest(r); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("Lost() not closed 10s after the lease expired")
	}
	if !errors.Is(r.Err(), metadata.ErrLeaseLost) {
		t.Fatalf("Err() = %v, want ErrLeaseLost", r.Err())
	}
	waitFor(t, 5*time.Second, func() error {
		if got := brokerIDs(t, s); !reflect.DeepEqual(got, []int32{6}) {
			return fmt.Errorf("Brokers() = %v, want [6]", got)
		}
		return nil
	})
	if isClosed(other.Lost()) {
		t.Fatal("another broker's registration was lost too")
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close after loss: %v", err)
	}
	register(t, s, 5) // the id is free again
}

func recvBroker(t *testing.T, ch <-chan metadata.BrokerEvent) metadata.BrokerEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no broker event within 10s")
	}
	return metadata.BrokerEvent{}
}

func testBrokerWatch(t *testing.T, s metadata.Store) {
	r10 := register(t, s, 10)
	r1 := register(t, s, 1)
	ch, err := s.WatchBrokers(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	// The snapshot replays keys in byte order: "1" < "10".
	for _, r := range []*metadata.Registration{r1, r10} {
		if ev := recvBroker(t, ch); ev.Type != metadata.EventPut || !ev.Snapshot || ev.Broker != r.Broker() {
			t.Fatalf("snapshot event %+v, want put of %+v", ev, r.Broker())
		}
	}
	r2 := register(t, s, 2)
	if ev := recvBroker(t, ch); ev.Type != metadata.EventPut || ev.Snapshot || ev.Broker != r2.Broker() {
		t.Fatalf("register event %+v", ev)
	}
	_ = r1.Close()
	if ev := recvBroker(t, ch); ev.Type != metadata.EventDelete || ev.Broker != r1.Broker() {
		t.Fatalf("unregister event %+v", ev)
	}
}

func campaign(t *testing.T, s metadata.Store, id int32) *metadata.Leadership {
	t.Helper()
	l, err := s.Campaign(ctxT(t), id)
	if err != nil {
		t.Fatalf("Campaign(%d): %v", id, err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func testControllerElection(t *testing.T, s metadata.Store) {
	ctx := ctxT(t)
	if _, _, err := s.Controller(ctx); !errors.Is(err, metadata.ErrNoController) {
		t.Fatalf("Controller() on empty err = %v", err)
	}
	l1 := campaign(t, s, 1)
	if id, epoch, err := s.Controller(ctx); err != nil || id != 1 || epoch != l1.Epoch() {
		t.Fatalf("Controller() = %d, %d, %v; want 1, %d", id, epoch, err, l1.Epoch())
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := s.Campaign(short, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("contested Campaign err = %v, want deadline exceeded", err)
	}
	won := make(chan *metadata.Leadership, 1)
	go func() {
		l, err := s.Campaign(ctx, 3)
		if err != nil {
			t.Errorf("Campaign(3): %v", err)
		}
		won <- l
	}()
	if err := l1.Close(); err != nil {
		t.Fatal(err)
	}
	var l3 *metadata.Leadership
	select {
	case l3 = <-won:
	case <-time.After(10 * time.Second):
		t.Fatal("waiting candidate not elected after resignation")
	}
	if l3 == nil {
		t.FailNow()
	}
	t.Cleanup(func() { _ = l3.Close() })
	if l3.Epoch() <= l1.Epoch() || l3.NodeID() != 3 {
		t.Fatalf("new controller %d epoch %d, old epoch %d", l3.NodeID(), l3.Epoch(), l1.Epoch())
	}
	if id, _, _ := s.Controller(ctx); id != 3 {
		t.Fatalf("Controller() = %d, want 3", id)
	}
}

func testControllerLeaseLost(t *testing.T, s metadata.Store) {
	l := campaign(t, s, 7)
	if err := metadata.ExpireLeadershipForTest(l); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Lost():
	case <-time.After(15 * time.Second):
		t.Fatal("leadership not lost after its lease expired")
	}
	if !errors.Is(l.Err(), metadata.ErrLeaseLost) {
		t.Fatalf("Err() = %v, want ErrLeaseLost", l.Err())
	}
	waitFor(t, 5*time.Second, func() error {
		if _, _, err := s.Controller(ctxT(t)); !errors.Is(err, metadata.ErrNoController) {
			return fmt.Errorf("Controller() err = %v, want ErrNoController", err)
		}
		return nil
	})
	campaign(t, s, 8)
}

// testControllerWithdrawn: withdrawing a node's candidacies ends its won
// election and lets a waiting candidate in; other nodes are untouched.
func testControllerWithdrawn(t *testing.T, s metadata.Store) {
	ctx := ctxT(t)
	l := campaign(t, s, 4)
	if err := s.WithdrawCandidacies(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if id, _, err := s.Controller(ctx); err != nil || id != 4 {
		t.Fatalf("Controller() = %d, %v after withdrawing another node; want 4", id, err)
	}
	won := make(chan *metadata.Leadership, 1)
	go func() {
		l, err := s.Campaign(ctx, 5)
		if err != nil {
			t.Errorf("Campaign(5): %v", err)
		}
		won <- l
	}()
	if err := s.WithdrawCandidacies(ctx, 4); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Lost():
	case <-time.After(15 * time.Second):
		t.Fatal("withdrawn leadership not lost")
	}
	select {
	case l5 := <-won:
		if l5 != nil {
			defer l5.Close()
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiting candidate not elected after the winner was withdrawn")
	}
	if id, _, err := s.Controller(ctx); err != nil || id != 5 {
		t.Fatalf("Controller() = %d, %v; want 5", id, err)
	}
}

func testStoreClose(t *testing.T, s metadata.Store) {
	ctx := ctxT(t)
	r := register(t, s, 1)
	l := campaign(t, s, 1)
	ch, err := s.WatchTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	blocked := make(chan error, 1)
	go func() {
		_, err := s.Campaign(ctx, 2) // waits behind node 1
		blocked <- err
	}()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-blocked:
		if !errors.Is(err, metadata.ErrClosed) {
			t.Fatalf("blocked Campaign ended with %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close left a Campaign blocked")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if !isClosed(r.Lost()) || !isClosed(l.Lost()) {
		t.Fatal("Close left a registration or leadership alive")
	}
	if _, ok := <-ch; ok {
		t.Fatal("watch delivered an event after Close")
	}
	if _, err := s.Topics(ctx); !errors.Is(err, metadata.ErrClosed) {
		t.Fatalf("Topics after Close err = %v", err)
	}
	if _, err := s.CreateTopic(ctx, metadata.Topic{Name: "x", Partitions: 1}); !errors.Is(err, metadata.ErrClosed) {
		t.Fatalf("CreateTopic after Close err = %v", err)
	}
	if _, err := s.RegisterBroker(ctx, metadata.Broker{NodeID: 9}, 0); !errors.Is(err, metadata.ErrClosed) {
		t.Fatalf("RegisterBroker after Close err = %v", err)
	}
}

func testBrokerIncarnationTakeover(t *testing.T, s metadata.Store) {
	ctx := ctxT(t)
	first, err := s.RegisterBroker(ctx, metadata.Broker{NodeID: 7, Host: "h", Port: 1, Incarnation: "dir-a"}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := s.WatchBrokers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ev := recvBroker(t, ch); ev.Type != metadata.EventPut || !ev.Snapshot || ev.Broker != first.Broker() {
		t.Fatalf("snapshot event %+v, want put of %+v", ev, first.Broker())
	}
	// A different data directory claiming the id is refused.
	if _, err := s.RegisterBroker(ctx, metadata.Broker{NodeID: 7, Host: "h", Port: 2, Incarnation: "dir-b"}, 30*time.Second); !errors.Is(err, metadata.ErrBrokerIDInUse) {
		t.Fatalf("other incarnation: %v, want ErrBrokerIDInUse", err)
	}
	// The same directory (a restart after a crash) takes over at once.
	second, err := s.RegisterBroker(ctx, metadata.Broker{NodeID: 7, Host: "h", Port: 3, Incarnation: "dir-a"}, 30*time.Second)
	if err != nil {
		t.Fatalf("same incarnation: %v", err)
	}
	defer second.Close()
	select {
	case <-first.Lost():
	case <-time.After(15 * time.Second):
		t.Fatal("the replaced registration was not told it is lost")
	}
	bs, err := s.Brokers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 || bs[0].Port != 3 {
		t.Fatalf("brokers after takeover: %+v", bs)
	}
	// The restart is visible as a new epoch, not only as a changed record.
	if second.Epoch() <= first.Epoch() {
		t.Fatalf("takeover epoch %d, previous %d: want larger", second.Epoch(), first.Epoch())
	}
	if bs[0].Epoch != second.Epoch() || second.Broker().Epoch != second.Epoch() {
		t.Fatalf("Brokers() epoch %d, Broker().Epoch %d, want Epoch() %d", bs[0].Epoch, second.Broker().Epoch, second.Epoch())
	}
	if ev := recvBroker(t, ch); ev.Type != metadata.EventPut || ev.Snapshot || ev.Broker != second.Broker() {
		t.Fatalf("takeover event %+v, want put of %+v", ev, second.Broker())
	}
}

func testBrokerEpoch(t *testing.T, s metadata.Store) {
	ctx := ctxT(t)
	r3 := register(t, s, 3)
	if r3.Epoch() <= 0 || r3.Broker().Epoch != r3.Epoch() {
		t.Fatalf("Epoch() %d, Broker().Epoch %d", r3.Epoch(), r3.Broker().Epoch)
	}
	// What the caller puts in Epoch is not stored.
	r4, err := s.RegisterBroker(ctx, metadata.Broker{NodeID: 4, Host: "h", Port: 4, Epoch: 1 << 40}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r4.Close() })
	if r4.Epoch() <= r3.Epoch() || r4.Epoch() == 1<<40 || r4.Broker().Epoch != r4.Epoch() {
		t.Fatalf("second registration: Epoch() %d (first %d), Broker().Epoch %d", r4.Epoch(), r3.Epoch(), r4.Broker().Epoch)
	}
	bs, err := s.Brokers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []metadata.Broker{r3.Broker(), r4.Broker()}; !reflect.DeepEqual(bs, want) {
		t.Fatalf("Brokers() = %+v, want %+v", bs, want)
	}
	ch, err := s.WatchBrokers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*metadata.Registration{r3, r4} {
		if ev := recvBroker(t, ch); ev.Broker != r.Broker() {
			t.Fatalf("snapshot event %+v, want %+v", ev, r.Broker())
		}
	}
	r5 := register(t, s, 5)
	if ev := recvBroker(t, ch); ev.Type != metadata.EventPut || ev.Broker.Epoch != r5.Epoch() || ev.Broker != r5.Broker() {
		t.Fatalf("register event %+v, want put of %+v", ev, r5.Broker())
	}
	// A delete carries the epoch of the registration that ended.
	_ = r3.Close()
	if ev := recvBroker(t, ch); ev.Type != metadata.EventDelete || ev.Broker != r3.Broker() {
		t.Fatalf("unregister event %+v, want delete of %+v", ev, r3.Broker())
	}
}

func testBrokerValidUntil(t *testing.T, s metadata.Store) {
	before := time.Now()
	r := register(t, s, 1)
	if v := r.ValidUntil(); !v.After(before) {
		t.Fatalf("ValidUntil %v right after registering at %v", v, before)
	}
	if err := metadata.ExpireRegistrationForTest(r); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("Lost() not closed 10s after the lease expired")
	}
	if now := time.Now(); r.ValidUntil().After(now) {
		t.Fatalf("ValidUntil %v after the lease was lost at %v", r.ValidUntil(), now)
	}
	closed := register(t, s, 2)
	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}
	if now := time.Now(); closed.ValidUntil().After(now) {
		t.Fatalf("ValidUntil %v after Close at %v", closed.ValidUntil(), now)
	}
}

func testProducerIDsUnique(t *testing.T, s metadata.Store) {
	ctx := ctxT(t)
	seen := map[int64]bool{}
	for i := 0; i < 5; i++ {
		first, err := s.AllocateProducerIDs(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		for id := first; id < first+10; id++ {
			if seen[id] || id < 0 {
				t.Fatalf("producer id %d handed out twice or negative", id)
			}
			seen[id] = true
		}
	}
}

func testBrokerConfigsWatch(t *testing.T, s metadata.Store) {
	ctx := ctxT(t)
	if err := s.SetBrokerConfigs(ctx, -1, map[string]string{"log.retention.ms": "7"}); err != nil {
		t.Fatal(err)
	}
	ch, err := s.WatchBrokerConfigs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recv := func() metadata.BrokerConfigsEvent {
		t.Helper()
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("broker configs watch closed")
			}
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no broker configs event within 10s")
		}
		return metadata.BrokerConfigsEvent{}
	}
	ev := recv()
	if ev.Type != metadata.EventPut || !ev.Snapshot || ev.NodeID != -1 || ev.Configs["log.retention.ms"] != "7" {
		t.Fatalf("snapshot event %+v", ev)
	}
	if err := s.SetBrokerConfigs(ctx, 3, map[string]string{"max.connections": "10"}); err != nil {
		t.Fatal(err)
	}
	ev = recv()
	if ev.Type != metadata.EventPut || ev.Snapshot || ev.NodeID != 3 || !reflect.DeepEqual(ev.Configs, map[string]string{"max.connections": "10"}) {
		t.Fatalf("put event %+v", ev)
	}
	if err := s.SetBrokerConfigs(ctx, 3, nil); err != nil {
		t.Fatal(err)
	}
	ev = recv()
	if ev.Type != metadata.EventDelete || ev.NodeID != 3 || len(ev.Configs) != 0 {
		t.Fatalf("delete event %+v", ev)
	}
}
