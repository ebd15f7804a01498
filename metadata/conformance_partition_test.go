package metadata_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/sluicedev/sluice/metadata"
)

func testPartitionStateCAS(t *testing.T, s metadata.Store) {
	ctx := ctxT(t)
	if _, err := s.PartitionState(ctx, "p", 0); !errors.Is(err, metadata.ErrPartitionNotFound) {
		t.Fatalf("missing state err = %v", err)
	}
	st := metadata.PartitionState{Topic: "p", Partition: 0, Leader: 1, LeaderEpoch: 0, ISR: []int32{1, 2}}
	if _, err := s.SetPartitionState(ctx, st); !errors.Is(err, metadata.ErrTopicNotFound) {
		t.Fatalf("state of absent topic err = %v, want ErrTopicNotFound", err)
	}
	mustCreate(t, s, metadata.Topic{Name: "p", Partitions: 11})
	v1, err := s.SetPartitionState(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if v1.Revision <= 0 {
		t.Fatalf("revision %d", v1.Revision)
	}
	if _, err := s.SetPartitionState(ctx, st); !errors.Is(err, metadata.ErrConflict) {
		t.Fatalf("second create err = %v, want ErrConflict", err)
	}
	next := v1
	next.Leader, next.LeaderEpoch, next.ISR, next.PartitionEpoch = 2, 1, []int32{2}, 1
	v2, err := s.SetPartitionState(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetPartitionState(ctx, v1); !errors.Is(err, metadata.ErrConflict) {
		t.Fatalf("stale write err = %v, want ErrConflict", err)
	}
	got, err := s.PartitionState(ctx, "p", 0)
	if err != nil || !reflect.DeepEqual(got, v2) {
		t.Fatalf("PartitionState = %+v, %v; want %+v", got, err, v2)
	}
	for _, p := range []int32{10, 2, 1} {
		if _, err := s.SetPartitionState(ctx, metadata.PartitionState{Topic: "p", Partition: p, Leader: -1}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.PartitionStates(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	var order []int32
	for _, ps := range all {
		order = append(order, ps.Partition)
	}
	if !reflect.DeepEqual(order, []int32{0, 1, 2, 10}) {
		t.Fatalf("PartitionStates order = %v", order)
	}
	if all[1].ISR == nil || len(all[1].ISR) != 0 {
		t.Fatalf("empty ISR came back as %#v", all[1].ISR)
	}
	if err := s.DeleteTopic(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, metadata.Topic{Name: "p", Partitions: 1})
	if all, _ := s.PartitionStates(ctx, "p"); len(all) != 0 {
		t.Fatalf("states survived topic deletion: %+v", all)
	}
}

func recvPartition(t *testing.T, ch <-chan metadata.PartitionEvent) metadata.PartitionEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no partition event within 10s")
	}
	return metadata.PartitionEvent{}
}

func setPartition(t *testing.T, s metadata.Store, st metadata.PartitionState) metadata.PartitionState {
	t.Helper()
	got, err := s.SetPartitionState(ctxT(t), st)
	if err != nil {
		t.Fatalf("SetPartitionState(%s-%d): %v", st.Topic, st.Partition, err)
	}
	return got
}

func testPartitionWatch(t *testing.T, s metadata.Store) {
	ctx := ctxT(t)
	// Key byte order differs from (topic, partition) order twice over:
	// "a.b/0" < "a/0" and "a/10" < "a/2".
	for _, tp := range []metadata.Topic{{Name: "b", Partitions: 2}, {Name: "a", Partitions: 11}, {Name: "a.b", Partitions: 1}} {
		mustCreate(t, s, tp)
	}
	var snap []metadata.PartitionState
	for _, k := range []struct {
		topic string
		p     int32
	}{{"b", 1}, {"a", 10}, {"a.b", 0}, {"a", 2}, {"b", 0}, {"a", 0}} {
		snap = append(snap, setPartition(t, s, metadata.PartitionState{
			Topic: k.topic, Partition: k.p, Leader: k.p % 3, LeaderEpoch: 2, ISR: []int32{k.p % 3, 5}, PartitionEpoch: 3,
		}))
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := s.WatchPartitions(wctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{5, 3, 1, 2, 4, 0} { // a-0 a-2 a-10 a.b-0 b-0 b-1
		want := metadata.PartitionEvent{Type: metadata.EventPut, State: snap[i], Snapshot: true}
		if ev := recvPartition(t, ch); !reflect.DeepEqual(ev, want) {
			t.Fatalf("snapshot event %+v, want %+v", ev, want)
		}
	}

	next := snap[0]
	next.Leader, next.LeaderEpoch, next.ISR, next.PartitionEpoch = 5, 3, []int32{5}, 4
	b1 := setPartition(t, s, next)
	if b1.Revision <= snap[0].Revision {
		t.Fatalf("revision went from %d to %d", snap[0].Revision, b1.Revision)
	}
	if ev, want := recvPartition(t, ch), (metadata.PartitionEvent{Type: metadata.EventPut, State: b1}); !reflect.DeepEqual(ev, want) {
		t.Fatalf("update event %+v, want %+v", ev, want)
	}
	if got, err := s.PartitionState(ctx, "b", 1); err != nil || got.Revision != b1.Revision {
		t.Fatalf("PartitionState(b, 1) = %+v, %v; want revision %d", got, err, b1.Revision)
	}

	// Deleting a topic deletes its states, each event carrying the last
	// value; the order within one deletion is not part of the contract.
	if err := s.DeleteTopic(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	deleted := map[int32]metadata.PartitionState{}
	for range 3 {
		ev := recvPartition(t, ch)
		if ev.Type != metadata.EventDelete || ev.Snapshot || ev.State.Topic != "a" {
			t.Fatalf("topic deletion event %+v, want a delete in topic a", ev)
		}
		deleted[ev.State.Partition] = ev.State
	}
	if want := map[int32]metadata.PartitionState{0: snap[5], 2: snap[3], 10: snap[1]}; !reflect.DeepEqual(deleted, want) {
		t.Fatalf("deleted states %+v, want %+v", deleted, want)
	}
	// A topic write is not a partition event; the next event is the next
	// partition write.
	if err := s.DeleteTopic(ctx, "a.b"); err != nil {
		t.Fatal(err)
	}
	if ev := recvPartition(t, ch); ev.Type != metadata.EventDelete || ev.State.Topic != "a.b" || !reflect.DeepEqual(ev.State, snap[2]) {
		t.Fatalf("event %+v, want delete of %+v", ev, snap[2])
	}
	mustCreate(t, s, metadata.Topic{Name: "c", Partitions: 1})
	c0 := setPartition(t, s, metadata.PartitionState{Topic: "c", Partition: 0, Leader: 1, ISR: []int32{1}})
	if ev, want := recvPartition(t, ch), (metadata.PartitionEvent{Type: metadata.EventPut, State: c0}); !reflect.DeepEqual(ev, want) {
		t.Fatalf("event %+v, want %+v", ev, want)
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

// testPartitionCreateMany: CreatePartitionStates writes the first record
// of every partition that has none, keeps the ones that exist, and needs
// the topic.
func testPartitionCreateMany(t *testing.T, s metadata.Store) {
	ctx := ctxT(t)
	const n = 300
	states := make([]metadata.PartitionState, n)
	for p := range states {
		states[p] = metadata.PartitionState{Topic: "many", Partition: int32(p), Leader: 1, ISR: []int32{1}}
	}
	if _, err := s.CreatePartitionStates(ctx, states); !errors.Is(err, metadata.ErrTopicNotFound) {
		t.Fatalf("absent topic: err %v, want ErrTopicNotFound", err)
	}
	mustCreate(t, s, metadata.Topic{Name: "many", Partitions: n})
	setPartition(t, s, metadata.PartitionState{Topic: "many", Partition: 5, Leader: 2, ISR: []int32{2}})
	setPartition(t, s, metadata.PartitionState{Topic: "many", Partition: 200, Leader: 2, ISR: []int32{2}})
	written, err := s.CreatePartitionStates(ctx, states)
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != n-2 {
		t.Fatalf("wrote %d records, want %d (two existed)", len(written), n-2)
	}
	all, err := s.PartitionStates(ctx, "many")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != n {
		t.Fatalf("%d records stored, want %d", len(all), n)
	}
	for _, st := range all {
		want := int32(1)
		if st.Partition == 5 || st.Partition == 200 {
			want = 2
		}
		if st.Leader != want || st.Revision <= 0 {
			t.Fatalf("partition %d: leader %d revision %d, want leader %d", st.Partition, st.Leader, st.Revision, want)
		}
	}
	for _, w := range written {
		if got := all[w.Partition]; got.Revision != w.Revision {
			t.Fatalf("partition %d: returned revision %d, stored %d", w.Partition, w.Revision, got.Revision)
		}
	}
}
