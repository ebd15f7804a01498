package group

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// sliceSource replays records, as a RecordSource over a log would.
func sliceSource(records []Record) RecordSource {
	return func(yield func(Record) bool) error {
		for _, r := range records {
			if !yield(r) {
				break
			}
		}
		return nil
	}
}

func TestGroupTxnPlainAndTransactionalOrder(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 4)
	// 0: an older transactional commit loses to a newer plain one.
	expectCode(t, "txn 0", h.txnCommit("g", 1, "t", 0, 10), nil)
	expectCode(t, "plain 0", h.commit("g", "", -1, "t", 0, 20), nil)
	h.endTxn("g", 1, true)
	// 1: a newer transactional commit wins over an older plain one.
	expectCode(t, "plain 1", h.commit("g", "", -1, "t", 1, 30), nil)
	expectCode(t, "txn 1", h.txnCommit("g", 2, "t", 1, 40), nil)
	h.endTxn("g", 2, true)
	// 2: two transactions; the one written first commits last and loses.
	expectCode(t, "txn 2 first", h.txnCommit("g", 3, "t", 2, 50), nil)
	expectCode(t, "txn 2 second", h.txnCommit("g", 4, "t", 2, 60), nil)
	h.endTxn("g", 4, true)
	h.endTxn("g", 3, true)
	want := map[int32]int64{0: 20, 1: 40, 2: 60}
	check := func(when string) {
		t.Helper()
		for p, off := range want {
			if got := h.fetch("g", "t", p); got != off {
				t.Fatalf("%s: partition %d committed %d, want %d", when, p, got, off)
			}
		}
	}
	check("in memory")
	h.reload()
	check("after reload")
	// Writes after a load are ordered after the records it replayed.
	expectCode(t, "txn after reload", h.txnCommit("g", 5, "t", 0, 70), nil)
	h.endTxn("g", 5, true)
	expectCode(t, "txn before plain", h.txnCommit("g", 6, "t", 1, 80), nil)
	expectCode(t, "plain after txn", h.commit("g", "", -1, "t", 1, 90), nil)
	h.endTxn("g", 6, true)
	want[0], want[1] = 70, 90
	check("after writes on the reloaded coordinator")
	h.reload()
	check("after a second reload")
}

func TestGroupTxnReload(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 3)
	// Two groups of one __consumer_offsets partition, so one marker ends
	// offsets in both.
	other := ""
	for i := 0; other == ""; i++ {
		if id := fmt.Sprintf("g%d", i); PartitionFor(id, testPartitions) == PartitionFor("g", testPartitions) {
			other = id
		}
	}
	expectCode(t, "plain", h.commit("g", "", -1, "t", 1, 5), nil)
	expectCode(t, "committed txn", h.txnCommit("g", 1, "t", 0, 10), nil)
	h.endTxn("g", 1, true)
	expectCode(t, "aborted txn", h.txnCommit("g", 2, "t", 1, 20), nil)
	h.endTxn("g", 2, false)
	expectCode(t, "open txn", h.txnCommit("g", 3, "t", 2, 30), nil)
	expectCode(t, "open txn, group 1", h.txnCommit("g", 4, "t", 0, 40), nil)
	expectCode(t, "open txn, group 2", h.txnCommit(other, 4, "t", 0, 41), nil)
	expectCode(t, "open txn, only group", h.txnCommit("lonely", 5, "t", 0, 50), nil)
	before := offsetState(h.c)
	h.reload()
	if after := offsetState(h.c); after != before {
		t.Fatalf("state after reload:\n%s\nwant\n%s", after, before)
	}
	checkTxnInvariants(t, h.c)
	if off, code := h.fetchStable("g", "t", 2, 8); off != -1 || code != kerr.UnstableOffsetCommit.Code {
		t.Fatalf("open transaction after reload: %d %v", off, kerr.ErrorForCode(code))
	}
	if groupOf(h.c, "lonely") == nil {
		t.Fatal("a group holding only pending offsets was not loaded")
	}
	// The markers still to come apply to the reloaded state.
	h.endTxn("g", 3, true)
	h.endTxn("g", 4, false)
	h.endTxn("lonely", 5, true)
	for _, tc := range []struct {
		group string
		p     int32
		want  int64
	}{{"g", 0, 10}, {"g", 1, 5}, {"g", 2, 30}, {other, 0, -1}, {"lonely", 0, 50}} {
		if off, code := h.fetchStable(tc.group, "t", tc.p, 8); off != tc.want || code != 0 {
			t.Fatalf("%s partition %d: %d %v, want %d", tc.group, tc.p, off, kerr.ErrorForCode(code), tc.want)
		}
	}
	before = offsetState(h.c)
	h.reload()
	if after := offsetState(h.c); after != before {
		t.Fatalf("state after the second reload:\n%s\nwant\n%s", after, before)
	}
}

func TestGroupTxnMarkerWhileNotLoaded(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 1)
	p := PartitionFor("g", testPartitions)
	fetchCode := func() int16 {
		r := kmsg.NewPtrOffsetFetchRequest()
		r.Version, r.Group = 7, "g"
		return h.c.OffsetFetch(h.ctx, r).ErrorCode
	}
	// Unloaded: the marker is written; the next load replays it.
	expectCode(t, "txn 1", h.txnCommit("g", 1, "t", 0, 10), nil)
	h.c.Unload(p)
	h.endTxn("g", 1, true)
	expectCode(t, "fetch while unloaded", fetchCode(), kerr.NotCoordinator)
	h.c.Load(p, h.store.records(p))
	if got := h.fetch("g", "t", 0); got != 10 {
		t.Fatalf("after loading a log with the marker: %d, want 10", got)
	}
	// Loading, from a read of the log that ended before the marker: the
	// marker is applied when the load completes.
	expectCode(t, "txn 2", h.txnCommit("g", 2, "t", 0, 20), nil)
	snapshot := h.store.records(p)
	token := h.c.BeginLoad(p)
	h.endTxn("g", 2, true)
	expectCode(t, "fetch while loading", fetchCode(), kerr.CoordinatorLoadInProgress)
	if err := h.c.LoadFrom(token, sliceSource(snapshot)); err != nil {
		t.Fatal(err)
	}
	if off, code := h.fetchStable("g", "t", 0, 8); off != 20 || code != 0 {
		t.Fatalf("marker written while loading: %d %v, want 20", off, kerr.ErrorForCode(code))
	}
	// Loading, with a read that fails and a retry that sees the marker:
	// applying it twice changes nothing.
	expectCode(t, "txn 3", h.txnCommit("g", 3, "t", 0, 30), nil)
	token = h.c.BeginLoad(p)
	h.endTxn("g", 3, false)
	broken := func(yield func(Record) bool) error { return errors.New("read failed") }
	if err := h.c.LoadFrom(token, broken); err == nil {
		t.Fatal("a failed read loaded")
	}
	if err := h.c.LoadFrom(token, sliceSource(h.store.records(p))); err != nil {
		t.Fatal(err)
	}
	if off, code := h.fetchStable("g", "t", 0, 8); off != 20 || code != 0 {
		t.Fatalf("aborted while loading: %d %v, want 20", off, kerr.ErrorForCode(code))
	}
	checkTxnInvariants(t, h.c)
	// A marker for a partition outside the topic is only written.
	called := false
	if err := h.c.CompleteTxn(h.ctx, testPartitions+3, 1, true, func(context.Context) error { called = true; return nil }); err != nil || !called {
		t.Fatalf("marker outside offsets.topic.num.partitions: %v, written %v", err, called)
	}
}

func TestGroupTxnDeletions(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.topic("t", 2)
	// DeleteGroups takes a group whose only offsets are pending: they get
	// a tombstone, and their COMMIT brings nothing back.
	expectCode(t, "pending only", h.txnCommit("doomed", 1, "t", 0, 10), nil)
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Version, del.Groups = 2, []string{"doomed"}
	expectCode(t, "delete group with pending offsets", h.c.DeleteGroups(h.ctx, del).Groups[0].ErrorCode, nil)
	if got := h.store.tombstones(PartitionFor("doomed", testPartitions)); got != 1 {
		t.Fatalf("%d tombstones for one pending partition", got)
	}
	h.endTxn("doomed", 1, true)
	if groupOf(h.c, "doomed") != nil {
		t.Fatal("COMMIT brought a deleted group back")
	}
	// OffsetDelete of partitions with pending offsets, committed or not.
	expectCode(t, "plain", h.commit("g", "", -1, "t", 0, 1), nil)
	r := txnReq("g", 2, "t", 0, 5)
	r.Topics[0].Partitions = append(r.Topics[0].Partitions, kmsg.TxnOffsetCommitRequestTopicPartition{Partition: 1, Offset: 6})
	expectCode(t, "txn", h.c.TxnOffsetCommit(h.ctx, r).Topics[0].Partitions[0].ErrorCode, nil)
	od := kmsg.NewPtrOffsetDeleteRequest()
	od.Group = "g"
	od.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}, {Partition: 1}}}}
	resp := h.c.OffsetDelete(h.ctx, od)
	expectCode(t, "offset delete", resp.ErrorCode, nil)
	if pending(h.c, "g") != 0 {
		t.Fatal("OffsetDelete left pending offsets")
	}
	h.endTxn("g", 2, true)
	for _, p := range []int32{0, 1} {
		if got := h.fetch("g", "t", p); got != -1 {
			t.Fatalf("partition %d came back after OffsetDelete and COMMIT: %d", p, got)
		}
	}
	before := offsetState(h.c)
	h.reload()
	if after := offsetState(h.c); after != before || groupOf(h.c, "doomed") != nil {
		t.Fatalf("after reload:\n%s\nwant\n%s", after, before)
	}
}

func TestGroupTxnExpiry(t *testing.T) {
	t.Parallel()
	const retention = 24 * time.Hour
	h := newHarness(t, func(c *Config) {
		c.OffsetsRetention = retention
		c.OffsetsRetentionCheckInterval = time.Hour
	})
	h.topic("t", 1)
	expectCode(t, "plain", h.commit("g", "", -1, "t", 0, 1), nil)
	expectCode(t, "txn", h.txnCommit("g", 1, "t", 0, 10), nil)
	expectCode(t, "txn, only offset", h.txnCommit("solo", 2, "t", 0, 20), nil)
	h.clock.Advance(retention + 2*time.Hour)
	if got := h.fetch("g", "t", 0); got != 1 {
		t.Fatalf("an offset with a pending transaction expired: %d", got)
	}
	if groupOf(h.c, "solo") == nil {
		t.Fatal("a group with pending offsets was deleted")
	}
	// The committed transactional offset ages from its TxnOffsetCommit.
	h.endTxn("g", 1, true)
	h.endTxn("solo", 2, false)
	if got := h.fetch("g", "t", 0); got != 10 {
		t.Fatalf("committed %d, want 10", got)
	}
	h.clock.Advance(time.Hour)
	if got := h.fetch("g", "t", 0); got != -1 {
		t.Fatalf("a committed transactional offset outlived its retention: %d", got)
	}
	for _, id := range []string{"g", "solo"} {
		if groupOf(h.c, id) != nil {
			t.Fatalf("empty group %s was not deleted", id)
		}
	}
}

func TestGroupTxnLoadOddRecords(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := PartitionFor("g", testPartitions)
	val := func(off int64) []byte {
		return offsetValue(committedOffset{offset: off, leaderEpoch: -1, expireTime: -1})
	}
	h.c.Load(p, []Record{
		{Marker: CommitMarker, ProducerID: 5},        // nothing pending
		{Marker: Marker(9), ProducerID: 5},           // no such marker: skipped
		{Key: offsetKey("g", "t", 0), Value: val(1)}, // plain
		{Key: offsetKey("g", "t", 0), Value: val(2), Transactional: true, ProducerID: 5},
		{Key: offsetKey("g", "t", 0), Transactional: true, ProducerID: 6}, // a tombstone drops every pending offset
		{Key: offsetKey("g", "t", 1), Value: val(3), Transactional: true, ProducerID: 5},
		{Key: offsetKey("g", "t", 1), Value: val(4), Transactional: true, ProducerID: 5}, // later record of the transaction wins
		{Marker: CommitMarker, ProducerID: 5},
		{Key: offsetKey("g", "t", 2), Value: val(5), Transactional: true, ProducerID: 6},
		{Marker: AbortMarker, ProducerID: 6},
		{Key: offsetKey("g", "t", 3), Value: []byte{0}, Transactional: true, ProducerID: 7}, // garbage value
	})
	for tp, want := range map[int32]int64{0: -1, 1: 4, 2: -1, 3: -1} {
		if off, code := h.fetchStable("g", "t", tp, 8); off != want || code != 0 {
			t.Fatalf("partition %d: %d %v, want %d", tp, off, kerr.ErrorForCode(code), want)
		}
	}
	checkTxnInvariants(t, h.c)
}

// TestGroupTxnConcurrent runs transactional and plain commits, markers and
// fetches of several producers at once, then checks that memory agrees
// with a replay of the log. Run it with -race.
func TestGroupTxnConcurrent(t *testing.T) {
	t.Parallel()
	v := &fakeVerifier{}
	h := newHarness(t, func(c *Config) { c.TxnVerifier = v })
	h.topic("t", 4)
	groups := []string{"a", "b", "c", "d", "e"}
	const producers, txns = 6, 25
	var wg sync.WaitGroup
	for pid := int64(1); pid <= producers; pid++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(pid), 1))
			for n := range txns {
				touched := map[string]bool{}
				for range 1 + rng.IntN(3) {
					g := groups[rng.IntN(len(groups))]
					r := txnReq(g, pid, "t", int32(rng.IntN(4)), int64(n*100+rng.IntN(100)))
					r.Version = int16(3 + rng.IntN(3))
					if code := h.c.TxnOffsetCommit(h.ctx, r).Topics[0].Partitions[0].ErrorCode; code != 0 {
						t.Errorf("producer %d: %v", pid, kerr.ErrorForCode(code))
						return
					}
					touched[g] = true
				}
				if pid%3 == 0 && n == txns-1 {
					return // leave the last transaction open
				}
				commit := rng.IntN(3) > 0
				done := map[int32]bool{}
				for g := range touched {
					if p := PartitionFor(g, testPartitions); !done[p] {
						done[p] = true
						if err := h.c.CompleteTxn(h.ctx, p, pid, commit, h.store.markerWriter(p, pid, commit)); err != nil {
							t.Errorf("CompleteTxn: %v", err)
						}
					}
				}
			}
		}()
	}
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			for n := range 100 {
				g := groups[rng.IntN(len(groups))]
				if code := h.commit(g, "", -1, "t", int32(rng.IntN(4)), int64(10_000+n)); code != 0 {
					t.Errorf("plain commit: %v", kerr.ErrorForCode(code))
				}
				h.fetchStable(g, "t", int32(rng.IntN(4)), 8)
			}
		}()
	}
	wg.Wait()
	checkTxnInvariants(t, h.c)
	before := offsetState(h.c)
	h.reload()
	if after := offsetState(h.c); after != before {
		t.Fatalf("memory and log disagree:\n%s\nreplayed:\n%s", before, after)
	}
	checkTxnInvariants(t, h.c)
}

// FuzzGroupLoadTxnRecords replays a record as a transactional one, around
// markers of its producer, and checks that loading never panics and keeps
// the pending offsets consistent.
func FuzzGroupLoadTxnRecords(f *testing.F) {
	f.Add(offsetKey("g", "t", 0), offsetValue(committedOffset{offset: 1, leaderEpoch: -1, expireTime: -1}), int64(5), int8(CommitMarker))
	f.Add(offsetKey("g", "t", 0), []byte(nil), int64(-1), int8(AbortMarker))
	f.Add(groupMetadataKey("g"), []byte{0, 3}, int64(0), int8(7))
	f.Fuzz(func(t *testing.T, key, value []byte, pid int64, marker int8) {
		h := newHarness(t)
		p := PartitionFor("g", testPartitions)
		h.c.Load(p, []Record{
			{Key: key, Value: value, Transactional: true, ProducerID: pid},
			{Key: key, Value: value, Transactional: true, ProducerID: pid + 1},
			{Marker: Marker(marker), ProducerID: pid},
			{Key: key, Value: value},
			{Key: key, Value: value, Transactional: true, ProducerID: pid},
		})
		checkTxnInvariants(t, h.c)
		h.endTxn("g", pid+1, marker%2 == 0)
		h.endTxn("g", pid, true)
		checkTxnInvariants(t, h.c)
		h.c.Stats()
	})
}
