package sharestate

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/coordinator/share"
)

func batch(first, last int64, s share.RecordState, n int16) share.StateBatch {
	return share.StateBatch{FirstOffset: first, LastOffset: last, State: s, DeliveryCount: n}
}

func TestShareStateWriteReadRoundTrip(t *testing.T) {
	t.Parallel()
	log := newMemLog()
	c := newLoaded(t, log, Config{})
	if _, found, code := read(t, c, key(0), 0); code != 0 || found {
		t.Fatalf("read of a new share-partition: found %v code %d, want not found", found, code)
	}
	nb := epoch.Add(90 * time.Second)
	st := share.State{StateEpoch: 1, LeaderEpoch: 3, StartOffset: 10, Batches: []share.StateBatch{
		batch(10, 14, share.Acknowledged, 1),
		{FirstOffset: 15, LastOffset: 15, State: share.Available, DeliveryCount: 2, NotBefore: nb},
		batch(16, 20, share.Archiving, 5),
	}, DeadLetter: share.DeadLetterCursor{ProducerID: 7, ProducerEpoch: 2, Sequence: 41}}
	if code := write(t, c, key(0), st); code != 0 {
		t.Fatalf("write: code %d", code)
	}
	got, found, code := read(t, c, key(0), 3)
	if code != 0 || !found || !sameState(got, st) {
		t.Fatalf("read = %+v found %v code %d, want %+v", got, found, code, st)
	}
	if !got.Batches[1].NotBefore.Equal(nb) {
		t.Fatalf("NotBefore = %v, want %v", got.Batches[1].NotBefore, nb)
	}
	// The same state comes back from the log.
	c2 := newLoaded(t, log, Config{})
	got, _, _ = read(t, c2, key(0), 3)
	if !sameState(got, st) {
		t.Fatalf("after reload %+v, want %+v", got, st)
	}
}

func TestShareStateWriteMerges(t *testing.T) {
	t.Parallel()
	c := newLoaded(t, newMemLog(), Config{})
	k := key(1)
	first := share.State{StateEpoch: 0, LeaderEpoch: 1, StartOffset: 0, Batches: []share.StateBatch{
		batch(0, 9, share.Acknowledged, 1), batch(10, 19, share.Available, 1), batch(20, 29, share.Archived, 3)}}
	if code := write(t, c, k, first); code != 0 {
		t.Fatal(code)
	}
	// Overwrite the middle of a batch, advance the start past the first.
	upd := share.State{StateEpoch: 0, LeaderEpoch: 1, StartOffset: 10, Batches: []share.StateBatch{batch(12, 13, share.Acknowledged, 2)}}
	if code := write(t, c, k, upd); code != 0 {
		t.Fatal(code)
	}
	want := []share.StateBatch{batch(10, 11, share.Available, 1), batch(12, 13, share.Acknowledged, 2),
		batch(14, 19, share.Available, 1), batch(20, 29, share.Archived, 3)}
	got, _, _ := read(t, c, k, 1)
	if !sameState(got, share.State{StartOffset: 10, Batches: want}) {
		t.Fatalf("merged %+v, want %+v", got.Batches, want)
	}
	// Start offset -1 leaves it; a lower start offset is ignored.
	for _, so := range []int64{-1, 5} {
		if code := write(t, c, k, share.State{LeaderEpoch: 1, StartOffset: so}); code != 0 {
			t.Fatal(code)
		}
		if got, _, _ := read(t, c, k, 1); got.StartOffset != 10 {
			t.Fatalf("start offset after write with %d: %d", so, got.StartOffset)
		}
	}
}

func TestShareStateMergeTable(t *testing.T) {
	t.Parallel()
	A, K, R := share.Available, share.Acknowledged, share.Archived
	cases := []struct {
		name          string
		old, upd, out []share.StateBatch
		start         int64
	}{
		{"empty", nil, []share.StateBatch{batch(0, 3, K, 1)}, []share.StateBatch{batch(0, 3, K, 1)}, -1},
		{"cover whole", []share.StateBatch{batch(0, 3, A, 1)}, []share.StateBatch{batch(0, 3, K, 1)}, []share.StateBatch{batch(0, 3, K, 1)}, -1},
		{"span two", []share.StateBatch{batch(0, 3, A, 1), batch(4, 7, R, 2)}, []share.StateBatch{batch(2, 5, K, 1)},
			[]share.StateBatch{batch(0, 1, A, 1), batch(2, 5, K, 1), batch(6, 7, R, 2)}, -1},
		{"join equal", []share.StateBatch{batch(0, 3, K, 1)}, []share.StateBatch{batch(4, 7, K, 1)}, []share.StateBatch{batch(0, 7, K, 1)}, -1},
		{"gap kept", []share.StateBatch{batch(0, 3, K, 1)}, []share.StateBatch{batch(10, 12, A, 1)},
			[]share.StateBatch{batch(0, 3, K, 1), batch(10, 12, A, 1)}, -1},
		{"new before old", []share.StateBatch{batch(10, 12, A, 1)}, []share.StateBatch{batch(0, 3, K, 1)},
			[]share.StateBatch{batch(0, 3, K, 1), batch(10, 12, A, 1)}, -1},
		{"prune", []share.StateBatch{batch(0, 3, K, 1), batch(4, 9, A, 1)}, nil, []share.StateBatch{batch(6, 9, A, 1)}, 6},
		{"one new over many old", []share.StateBatch{batch(0, 0, A, 1), batch(1, 1, K, 1), batch(2, 2, A, 2), batch(3, 9, R, 1)},
			[]share.StateBatch{batch(0, 5, K, 3)}, []share.StateBatch{batch(0, 5, K, 3), batch(6, 9, R, 1)}, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := merge(tc.old, normalize(tc.upd), tc.start)
			if !sameState(share.State{Batches: got}, share.State{Batches: tc.out}) {
				t.Fatalf("merge = %+v, want %+v", got, tc.out)
			}
		})
	}
}

func TestShareStateFencing(t *testing.T) {
	t.Parallel()
	c := newLoaded(t, newMemLog(), Config{})
	k := key(2)
	if code := write(t, c, k, share.State{StateEpoch: 2, LeaderEpoch: 5, StartOffset: 0}); code != 0 {
		t.Fatal(code)
	}
	if code := write(t, c, k, share.State{StateEpoch: 1, LeaderEpoch: 5, StartOffset: 3}); code != kerr.FencedStateEpoch.Code {
		t.Fatalf("older state epoch: code %d, want FENCED_STATE_EPOCH", code)
	}
	if code := write(t, c, k, share.State{StateEpoch: 2, LeaderEpoch: 4, StartOffset: 3}); code != kerr.FencedLeaderEpoch.Code {
		t.Fatalf("older leader epoch: code %d, want FENCED_LEADER_EPOCH", code)
	}
	if _, _, code := read(t, c, k, 4); code != kerr.FencedLeaderEpoch.Code {
		t.Fatalf("read with an older leader epoch: code %d", code)
	}
	// A new leader's read records its epoch: the old leader is fenced.
	if _, _, code := read(t, c, k, 6); code != 0 {
		t.Fatal(code)
	}
	if code := write(t, c, k, share.State{StateEpoch: 2, LeaderEpoch: 5, StartOffset: 3}); code != kerr.FencedLeaderEpoch.Code {
		t.Fatalf("write of the previous leader after the new one read: code %d", code)
	}
	if got, _, _ := read(t, c, k, 6); got.StartOffset != 0 {
		t.Fatalf("fenced writes changed the state: %+v", got)
	}
	// A newer state epoch replaces the state whole.
	if code := write(t, c, k, share.State{StateEpoch: 3, LeaderEpoch: 6, StartOffset: 50, Batches: []share.StateBatch{batch(50, 51, share.Acknowledged, 1)}}); code != 0 {
		t.Fatal(code)
	}
	if got, _, _ := read(t, c, k, 6); got.StateEpoch != 3 || got.StartOffset != 50 || len(got.Batches) != 1 {
		t.Fatalf("after a newer state epoch: %+v", got)
	}
}

func initialize(t *testing.T, c *Coordinator, k share.Key, stateEpoch int32, start int64) int16 {
	t.Helper()
	req := kmsg.NewPtrInitializeShareGroupStateRequest()
	req.GroupID = k.Group
	req.Topics = []kmsg.InitializeShareGroupStateRequestTopic{{TopicID: k.TopicID,
		Partitions: []kmsg.InitializeShareGroupStateRequestTopicPartition{{Partition: k.Partition, StateEpoch: stateEpoch, StartOffset: start}}}}
	return c.InitializeShareGroupState(context.Background(), req).Topics[0].Partitions[0].ErrorCode
}

func deleteState(t *testing.T, c *Coordinator, k share.Key) int16 {
	t.Helper()
	req := kmsg.NewPtrDeleteShareGroupStateRequest()
	req.GroupID = k.Group
	req.Topics = []kmsg.DeleteShareGroupStateRequestTopic{{TopicID: k.TopicID,
		Partitions: []kmsg.DeleteShareGroupStateRequestTopicPartition{{Partition: k.Partition}}}}
	return c.DeleteShareGroupState(context.Background(), req).Topics[0].Partitions[0].ErrorCode
}

func summary(t *testing.T, c *Coordinator, k share.Key) kmsg.ReadShareGroupStateSummaryResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrReadShareGroupStateSummaryRequest()
	req.Version = 1
	req.GroupID = k.Group
	req.Topics = []kmsg.ReadShareGroupStateSummaryRequestTopic{{TopicID: k.TopicID,
		Partitions: []kmsg.ReadShareGroupStateSummaryRequestTopicPartition{{Partition: k.Partition, LeaderEpoch: -1}}}}
	return c.ReadShareGroupStateSummary(context.Background(), req).Topics[0].Partitions[0]
}

func TestShareStateInitializeDeleteSummary(t *testing.T) {
	t.Parallel()
	log := newMemLog()
	c := newLoaded(t, log, Config{})
	k := key(3)
	if s := summary(t, c, k); s.ErrorCode != 0 || s.StartOffset != -1 {
		t.Fatalf("summary of nothing: %+v", s)
	}
	if code := write(t, c, k, share.State{StateEpoch: 0, LeaderEpoch: 2, StartOffset: 100, Batches: []share.StateBatch{
		batch(100, 104, share.Acknowledged, 1), batch(105, 105, share.Available, 1), batch(106, 107, share.Archived, 5)}}); code != 0 {
		t.Fatal(code)
	}
	s := summary(t, c, k)
	if s.StartOffset != 100 || s.StateEpoch != 0 || s.LeaderEpoch != 2 || s.DeliveryCompleteCount != 7 {
		t.Fatalf("summary = %+v, want start 100, epochs 0/2, 7 complete", s)
	}
	if code := initialize(t, c, k, 0, 500); code != kerr.FencedStateEpoch.Code {
		t.Fatalf("initialize with the same state epoch: code %d", code)
	}
	if code := initialize(t, c, k, 1, 500); code != 0 {
		t.Fatal(code)
	}
	// The leader's next write with the old state epoch is fenced.
	if code := write(t, c, k, share.State{StateEpoch: 0, LeaderEpoch: 2, StartOffset: 110}); code != kerr.FencedStateEpoch.Code {
		t.Fatalf("write after initialize: code %d", code)
	}
	got, found, _ := read(t, c, k, 2)
	if !found || got.StateEpoch != 1 || got.StartOffset != 500 || len(got.Batches) != 0 {
		t.Fatalf("after initialize: %+v", got)
	}
	if code := deleteState(t, c, k); code != 0 {
		t.Fatal(code)
	}
	if _, found, _ := read(t, c, k, 2); found {
		t.Fatal("state still there after delete")
	}
	if code := deleteState(t, c, k); code != 0 {
		t.Fatalf("deleting nothing: code %d", code)
	}
	// The delete survives a reload, as does compaction of the log.
	for _, recs := range [][]Record{log.records(0), compacted(log.records(0))} {
		c2 := newLoaded(t, &memLog{parts: map[int32][]Record{0: recs}}, Config{})
		if _, found, _ := read(t, c2, k, 2); found {
			t.Fatal("deleted state came back from the log")
		}
	}
}

// TestShareStateLoadFromLog writes many updates (several snapshots) to
// many keys and checks that a reload, from the whole log and from a
// compacted one, rebuilds every state exactly.
func TestShareStateLoadFromLog(t *testing.T) {
	t.Parallel()
	log := newMemLog()
	c := newLoaded(t, log, Config{SnapshotEvery: 5})
	want := map[share.Key]share.State{}
	for i := range 60 {
		k := key(int32(i % 3))
		st := want[k]
		off := int64(i)
		st.LeaderEpoch = 1
		if i%7 == 0 {
			st.StartOffset = max(off-3, 0)
		}
		upd := share.State{LeaderEpoch: 1, StartOffset: -1, Batches: []share.StateBatch{batch(off, off+2, share.RecordState(i%5), int16(i%4))}}
		if i%7 == 0 {
			upd.StartOffset = st.StartOffset
		}
		if i%11 == 0 {
			upd.DeadLetter = share.DeadLetterCursor{ProducerID: int64(i), Sequence: int32(i)}
		}
		if code := write(t, c, k, upd); code != 0 {
			t.Fatal(code)
		}
		got, _, _ := read(t, c, k, 1)
		want[k] = got
	}
	recs := log.records(0)
	snaps, updates := 0, 0
	for _, r := range recs {
		typ, _, _, _ := decodeKey(r.Key)
		if typ == typeSnapshot {
			snaps++
		} else {
			updates++
		}
	}
	if snaps < 6 || updates < 20 {
		t.Fatalf("expected snapshots and updates, got %d and %d", snaps, updates)
	}
	for name, recs := range map[string][]Record{"full": recs, "compacted": compacted(recs)} {
		c2 := newLoaded(t, &memLog{parts: map[int32][]Record{0: recs}}, Config{SnapshotEvery: 5})
		for k, w := range want {
			got, _, code := read(t, c2, k, 1)
			if code != 0 || !sameState(got, w) {
				t.Fatalf("%s log: %v reloaded as %+v, want %+v", name, k, got, w)
			}
		}
	}
}

func TestShareStateNotCoordinatorLoadingUnload(t *testing.T) {
	t.Parallel()
	log := newMemLog()
	c, err := New(Config{Persister: log, NumPartitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	k := key(0)
	p := PartitionFor(k, 4)
	if code := write(t, c, k, share.State{}); code != kerr.NotCoordinator.Code {
		t.Fatalf("unloaded: code %d", code)
	}
	tok := c.BeginLoad(p)
	if code := write(t, c, k, share.State{}); code != kerr.CoordinatorLoadInProgress.Code {
		t.Fatalf("loading: code %d", code)
	}
	if err := c.LoadFrom(tok, source(nil)); err != nil {
		t.Fatal(err)
	}
	if code := write(t, c, k, share.State{StartOffset: 4}); code != 0 {
		t.Fatal(code)
	}
	// A stale token cannot finish a later load.
	tok2 := c.BeginLoad(p)
	if err := c.LoadFrom(tok, source(nil)); !errors.Is(err, ErrLoadSuperseded) {
		t.Fatalf("stale load: %v", err)
	}
	if err := c.LoadFrom(tok2, source(log.records(p))); err != nil {
		t.Fatal(err)
	}
	if got, found, _ := read(t, c, k, -1); !found || got.StartOffset != 4 {
		t.Fatalf("after reload: %+v", got)
	}
	c.Unload(p)
	if _, _, code := read(t, c, k, -1); code != kerr.NotCoordinator.Code {
		t.Fatalf("after unload: code %d", code)
	}
	c.Close()
	if _, _, code := read(t, c, k, -1); code != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("after close: code %d", code)
	}
}

// TestShareStateUnloadDuringWrite unloads while a write is in flight: the
// writer gets NOT_COORDINATOR and memory is not changed.
func TestShareStateUnloadDuringWrite(t *testing.T) {
	t.Parallel()
	log := newMemLog()
	c := newLoaded(t, log, Config{})
	log.mu.Lock()
	log.block = make(chan struct{})
	log.mu.Unlock()
	done := make(chan int16)
	go func() { done <- write(t, c, key(0), share.State{StartOffset: 9}) }()
	waitFor(t, func() bool {
		log.mu.Lock()
		defer log.mu.Unlock()
		return log.blocked > 0
	})
	c.Unload(0)
	if code := <-done; code != kerr.NotCoordinator.Code {
		t.Fatalf("write cut by unload: code %d", code)
	}
}

func TestShareStatePersistFailureChangesNothing(t *testing.T) {
	t.Parallel()
	log := newMemLog()
	c := newLoaded(t, log, Config{})
	k := key(0)
	if code := write(t, c, k, share.State{StartOffset: 1}); code != 0 {
		t.Fatal(code)
	}
	log.mu.Lock()
	log.fail = fmt.Errorf("append: %w", kerr.NotLeaderForPartition)
	log.mu.Unlock()
	if code := write(t, c, k, share.State{StartOffset: 5}); code != kerr.NotCoordinator.Code {
		t.Fatalf("failed persist: code %d", code)
	}
	log.mu.Lock()
	log.fail = errors.New("disk on fire")
	log.mu.Unlock()
	if code := write(t, c, k, share.State{StartOffset: 6}); code != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("failed persist: code %d", code)
	}
	if got, _, _ := read(t, c, k, -1); got.StartOffset != 1 {
		t.Fatalf("a failed write changed memory: %+v", got)
	}
}

func TestShareStateBadInput(t *testing.T) {
	t.Parallel()
	c := newLoaded(t, newMemLog(), Config{MaxBatches: 100})
	k := key(0)
	bad := []share.State{
		{StartOffset: -2},
		{Batches: []share.StateBatch{batch(-1, 3, share.Acknowledged, 1)}},
		{Batches: []share.StateBatch{batch(5, 3, share.Acknowledged, 1)}},
		{Batches: []share.StateBatch{batch(0, 3, 9, 1)}},
		{Batches: []share.StateBatch{batch(0, 3, share.Acknowledged, -1)}},
	}
	for i, st := range bad {
		if code := write(t, c, k, st); code != kerr.InvalidRequest.Code {
			t.Errorf("bad write %d: code %d, want INVALID_REQUEST", i, code)
		}
	}
	// Too many batches.
	var many []share.StateBatch
	for i := range 101 {
		many = append(many, batch(int64(2*i), int64(2*i), share.Acknowledged, int16(i%2)))
	}
	if code := write(t, c, k, share.State{Batches: many}); code != kerr.InvalidRequest.Code {
		t.Errorf("too many batches: code %d", code)
	}
	// Merges that would store too many.
	if code := write(t, c, k, share.State{Batches: many[:50]}); code != 0 {
		t.Errorf("first half: code %d", code)
	}
	if code := write(t, c, k, share.State{Batches: many[50:100]}); code != 0 {
		t.Errorf("exactly the bound: code %d", code)
	}
	if code := write(t, c, k, share.State{Batches: many[100:101]}); code != kerr.InvalidRequest.Code {
		t.Errorf("one past the bound: code %d", code)
	}
	// A bad tag value.
	req := kmsg.NewPtrWriteShareGroupStateRequest()
	req.GroupID = "g"
	p := WritePartition(0, share.State{Batches: []share.StateBatch{batch(0, 1, share.Available, 1)}})
	p.StateBatches[0].UnknownTags.Set(TagNotBefore, []byte{0xff})
	p.UnknownTags.Set(TagDeadLetter, []byte{1, 2})
	req.Topics = []kmsg.WriteShareGroupStateRequestTopic{{TopicID: topicA, Partitions: []kmsg.WriteShareGroupStateRequestTopicPartition{p}}}
	if code := c.WriteShareGroupState(context.Background(), req).Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidRequest.Code {
		t.Errorf("bad tags: code %d", code)
	}
	// Empty group, zero topic id, negative partition.
	rr := kmsg.NewPtrReadShareGroupStateRequest()
	rr.Topics = []kmsg.ReadShareGroupStateRequestTopic{{TopicID: topicA, Partitions: []kmsg.ReadShareGroupStateRequestTopicPartition{{Partition: 0}}},
		{Partitions: []kmsg.ReadShareGroupStateRequestTopicPartition{{Partition: 0}}}}
	for _, g := range []string{"", "g"} {
		rr.GroupID = g
		resp := c.ReadShareGroupState(context.Background(), rr)
		if g == "" && resp.Topics[0].Partitions[0].ErrorCode != kerr.InvalidRequest.Code {
			t.Errorf("empty group: %+v", resp.Topics[0].Partitions[0])
		}
		if resp.Topics[1].Partitions[0].ErrorCode != kerr.InvalidRequest.Code {
			t.Errorf("zero topic id: %+v", resp.Topics[1].Partitions[0])
		}
	}
	// Repeats are answered once.
	dr := kmsg.NewPtrDeleteShareGroupStateRequest()
	dr.GroupID = "g"
	var parts []kmsg.DeleteShareGroupStateRequestTopicPartition
	for range 10000 {
		parts = append(parts, kmsg.DeleteShareGroupStateRequestTopicPartition{Partition: 7}, kmsg.DeleteShareGroupStateRequestTopicPartition{Partition: -1})
	}
	dr.Topics = []kmsg.DeleteShareGroupStateRequestTopic{{TopicID: topicA, Partitions: parts}, {TopicID: topicA, Partitions: parts}}
	resp := c.DeleteShareGroupState(context.Background(), dr)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 2 || resp.Topics[0].Partitions[1].ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("repeated partitions answered as %+v", resp.Topics)
	}
}

// TestShareStateConcurrentWriters checks that writes of many goroutines
// to one key are all applied, in some order, and share Persist calls.
func TestShareStateConcurrentWriters(t *testing.T) {
	t.Parallel()
	log := newMemLog()
	c := newLoaded(t, log, Config{})
	k := key(0)
	const n = 50
	errs := make(chan int16, n)
	for i := range n {
		go func() {
			errs <- write(t, c, k, share.State{StartOffset: -1, Batches: []share.StateBatch{batch(int64(i), int64(i), share.Acknowledged, 1)}})
		}()
	}
	for range n {
		if code := <-errs; code != 0 {
			t.Fatal(code)
		}
	}
	got, _, _ := read(t, c, k, -1)
	if len(got.Batches) != 1 || got.Batches[0].FirstOffset != 0 || got.Batches[0].LastOffset != n-1 {
		t.Fatalf("after concurrent writes: %+v", got.Batches)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestShareStateCoordinatorKey(t *testing.T) {
	t.Parallel()
	k := share.Key{Group: "a:b", TopicID: [16]byte{0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xfe}, Partition: 12}
	s := CoordinatorKey(k)
	if s != "a:b:_wECAwQFBgcICQoLDA0O_g:12" {
		t.Fatalf("CoordinatorKey = %q", s)
	}
	if got, ok := ParseCoordinatorKey(s); !ok || got != k {
		t.Fatalf("ParseCoordinatorKey(%q) = %+v, %v", s, got, ok)
	}
	for _, bad := range []string{"", "g", "g:x:1", ":_wECAwQFBgcICQoLDA0O_g:1", "g:_wECAwQFBgcICQoLDA0O_g:-1", "g:_wECAwQFBgcICQoLDA0O_g:", "g:AAAA:1"} {
		if _, ok := ParseCoordinatorKey(bad); ok {
			t.Errorf("ParseCoordinatorKey(%q) accepted", bad)
		}
	}
	// Kafka hashes the key string; the partition follows it.
	if PartitionFor(k, 50) != PartitionFor(k, 50) || PartitionFor(k, 1) != 0 {
		t.Fatal("PartitionFor not stable")
	}
}

func TestShareStateFromReadMalformed(t *testing.T) {
	t.Parallel()
	good := kmsg.NewReadShareGroupStateResponseTopicPartition()
	good.StartOffset = 3
	good.StateBatches = []kmsg.ReadShareGroupStateResponseTopicPartitionStateBatch{{FirstOffset: 3, LastOffset: 4, DeliveryState: 2, DeliveryCount: 1}}
	if _, found, ok := StateFromRead(&good); !found || !ok {
		t.Fatalf("good answer: found %v ok %v", found, ok)
	}
	for name, mangle := range map[string]func(p *kmsg.ReadShareGroupStateResponseTopicPartition){
		"reversed batch": func(p *kmsg.ReadShareGroupStateResponseTopicPartition) { p.StateBatches[0].LastOffset = 1 },
		"bad state":      func(p *kmsg.ReadShareGroupStateResponseTopicPartition) { p.StateBatches[0].DeliveryState = 7 },
		"bad NotBefore": func(p *kmsg.ReadShareGroupStateResponseTopicPartition) {
			p.StateBatches[0].UnknownTags.Set(TagNotBefore, []byte{0x80})
		},
		"bad dead letter": func(p *kmsg.ReadShareGroupStateResponseTopicPartition) { p.UnknownTags.Set(TagDeadLetter, []byte{1}) },
	} {
		p := good
		p.StateBatches = append([]kmsg.ReadShareGroupStateResponseTopicPartitionStateBatch(nil), good.StateBatches...)
		p.UnknownTags = kmsg.Tags{}
		mangle(&p)
		if _, _, ok := StateFromRead(&p); ok {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestShareStateLoadSkipsBadRecords loads a log with records of an unknown
// type, values that do not parse, a key of another partition and an update
// of another snapshot epoch: each is skipped, the rest loads.
func TestShareStateLoadSkipsBadRecords(t *testing.T) {
	t.Parallel()
	good := share.State{StateEpoch: 1, StartOffset: 7, Batches: []share.StateBatch{batch(7, 8, share.Archived, 2)}}
	var other share.Key // a key PartitionFor puts on partition 1 of 2
	for i := int32(0); ; i++ {
		if other = key(i); PartitionFor(other, 2) == 1 {
			break
		}
	}
	var mine share.Key
	for i := int32(0); ; i++ {
		if mine = key(i); PartitionFor(mine, 2) == 0 {
			break
		}
	}
	recs := []Record{
		{Key: []byte{0, 9, 1, 2}, Value: []byte{1}},                          // unknown record type
		{Key: []byte{0}, Value: []byte{1}},                                   // short key
		{Key: recordKey(typeSnapshot, mine), Value: []byte{0, 0, 1}},         // short value
		{Key: recordKey(typeSnapshot, other), Value: snapshotValue(0, good)}, // another partition's key
		{Key: recordKey(typeSnapshot, mine), Value: snapshotValue(4, good)},
		{Key: recordKey(typeUpdate, mine), Value: updateValue(3, delta{startOffset: 100})}, // older snapshot epoch
	}
	c, err := New(Config{Persister: newMemLog(), NumPartitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.LoadFrom(c.BeginLoad(0), source(recs)); err != nil {
		t.Fatal(err)
	}
	got, found, code := read(t, c, mine, -1)
	if code != 0 || !found || !sameState(got, good) {
		t.Fatalf("loaded %+v (found %v, code %d), want %+v", got, found, code, good)
	}
	c.mu.Lock()
	n := len(c.mu.parts[0].entries)
	c.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d share-partitions loaded, want 1", n)
	}
}
