package broker

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// sessReq is a v12 Fetch of partitions of topic "t" with the given session
// id and epoch.
func sessReq(id, epoch int32, parts ...int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.Version = 12
	req.SessionID, req.SessionEpoch = id, epoch
	if len(parts) > 0 {
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "t"
		for _, p := range parts {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition = p
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	return req
}

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ now time.Time }

func (c *fakeClock) advance(d time.Duration) time.Time { c.now = c.now.Add(d); return c.now }

func testCache(slots int) (*fetchSessionCache, *fakeClock) {
	return newFetchSessionCache(slots, sessionEvictionAge, rand.New(rand.NewPCG(1, 2))),
		&fakeClock{now: time.Unix(1_700_000_000, 0)}
}

// newSession opens a full fetch of n partitions with epoch 0, answers every
// partition with HW 0, and returns the session id (0: none created).
func newSession(t *testing.T, c *fetchSessionCache, now time.Time, privileged bool, n int) int32 {
	t.Helper()
	parts := make([]int32, n)
	for i := range parts {
		parts[i] = int32(i)
	}
	fc := c.open(sessReq(0, 0, parts...), privileged, now)
	if fc.errCode != 0 || !fc.create {
		t.Fatalf("full fetch: error %d create %v", fc.errCode, fc.create)
	}
	for i := range fc.parts {
		fc.parts[i].answered, fc.parts[i].answerHW, fc.parts[i].answerLogStart = true, 0, 0
	}
	resp := kmsg.NewPtrFetchResponse()
	if !c.finish(&fc, resp, now) {
		t.Fatal("finish of a full fetch failed")
	}
	return resp.SessionID
}

// alive reports whether session id still answers an incremental fetch at
// epoch, without changing it (a wrong epoch is still "alive").
func alive(c *fetchSessionCache, id int32, now time.Time) bool {
	return c.open(sessReq(id, math.MaxInt32-7), false, now).errCode != kerr.FetchSessionIDNotFound.Code
}

func TestFetchSessionIncrementalContext(t *testing.T) {
	t.Parallel()
	c, clk := testCache(10)
	id := newSession(t, c, clk.now, false, 3)
	if id == 0 {
		t.Fatal("no session")
	}
	// Epoch 1: change partition 1's offset, add partition 7, forget 0.
	req := sessReq(id, 1, 1, 7)
	req.Topics[0].Partitions[0].FetchOffset = 42
	ft := kmsg.NewFetchRequestForgottenTopic()
	ft.Topic, ft.Partitions = "t", []int32{0}
	req.ForgottenTopics = append(req.ForgottenTopics, ft)
	fc := c.open(req, false, clk.advance(time.Second))
	if fc.errCode != 0 || fc.sess == nil {
		t.Fatalf("incremental: error %d", fc.errCode)
	}
	var got []int32
	for _, fp := range fc.parts {
		got = append(got, fp.rp.Partition)
		if fp.rp.Partition == 1 && fp.rp.FetchOffset != 42 {
			t.Fatalf("partition 1 fetch offset %d, want 42", fp.rp.FetchOffset)
		}
		if fp.rp.Partition == 7 && fp.cachedHW != -1 {
			t.Fatal("a new partition must be answered the first time")
		}
	}
	if len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 7 {
		t.Fatalf("session partitions %v, want [1 2 7]", got)
	}
	// Unchanged partitions are left out; an answered one moves to the back.
	sp := kmsg.NewFetchResponseTopicPartition()
	sp.HighWatermark, sp.LogStartOffset = 0, 0
	if fc.parts[0].include(&sp, false) {
		t.Fatal("unchanged partition included")
	}
	if !fc.parts[0].include(&sp, true) {
		t.Fatal("partition with records left out")
	}
	sp.HighWatermark = 5
	if !fc.parts[0].include(&sp, false) {
		t.Fatal("partition whose HW moved left out")
	}
	fc.parts[0].answered, fc.parts[0].answerHW = true, 5
	resp := kmsg.NewPtrFetchResponse()
	if !c.finish(&fc, resp, clk.now) || resp.SessionID != id {
		t.Fatalf("finish: session %d", resp.SessionID)
	}
	// Epoch 2 sees the rotation and the new cached HW; epoch 2 again is a
	// duplicate.
	fc = c.open(sessReq(id, 2), false, clk.advance(time.Second))
	if fc.errCode != 0 || fc.parts[2].rp.Partition != 1 || fc.parts[2].cachedHW != 5 {
		t.Fatalf("epoch 2: error %d, last partition %d with HW %d; want 1 with 5", fc.errCode, fc.parts[2].rp.Partition, fc.parts[2].cachedHW)
	}
	if dup := c.open(sessReq(id, 2), false, clk.now); dup.errCode != kerr.InvalidFetchSessionEpoch.Code {
		t.Fatalf("repeated epoch: error %d", dup.errCode)
	}
	// A request racing past this one makes its answer stale.
	c.open(sessReq(id, 3), false, clk.now)
	if c.finish(&fc, kmsg.NewPtrFetchResponse(), clk.now) {
		t.Fatal("finish after the session moved on succeeded")
	}
	// Topic ids on a name-keyed session.
	v13 := sessReq(id, 4)
	v13.Version = 13
	if x := c.open(v13, false, clk.now); x.errCode != kerr.FetchSessionTopicIDError.Code {
		t.Fatalf("v13 on a v12 session: error %d", x.errCode)
	}
	// Forgetting everything ends the session.
	req = sessReq(id, 4)
	ft.Partitions = []int32{1, 2, 7}
	req.ForgottenTopics = []kmsg.FetchRequestForgottenTopic{ft}
	if x := c.open(req, false, clk.now); x.errCode != 0 || x.sess != nil {
		t.Fatalf("forget all: error %d, still a session", x.errCode)
	}
	if alive(c, id, clk.now) {
		t.Fatal("empty session kept")
	}
	if n, p, _ := c.stats(); n != 0 || p != 0 {
		t.Fatalf("stats %d sessions %d partitions, want 0 0", n, p)
	}
}

func TestFetchSessionFullFetchCloses(t *testing.T) {
	t.Parallel()
	c, clk := testCache(10)
	for _, epoch := range []int32{0, -1} {
		id := newSession(t, c, clk.now, false, 2)
		fc := c.open(sessReq(id, epoch, 0), false, clk.now)
		if fc.errCode != 0 || fc.sess != nil || len(fc.parts) != 1 || fc.create != (epoch == 0) {
			t.Fatalf("epoch %d: error %d create %v parts %d", epoch, fc.errCode, fc.create, len(fc.parts))
		}
		if alive(c, id, clk.now) {
			t.Fatalf("epoch %d full fetch left its session open", epoch)
		}
	}
	if x := c.open(sessReq(-1, -1, 0), false, clk.now); x.errCode != 0 || x.create {
		t.Fatalf("sessionless: error %d create %v", x.errCode, x.create)
	}
	if x := c.open(sessReq(12345, 3), false, clk.now); x.errCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("unknown session: error %d", x.errCode)
	}
}

// Eviction as Kafka's tryEvict: stale sessions first; then, among sessions
// older than the eviction age, the one with the fewest partitions if the
// newcomer has more; a follower's session may also evict a young
// consumer's; and with nothing evictable the newcomer gets no session.
func TestFetchSessionEviction(t *testing.T) {
	t.Parallel()
	c, clk := testCache(2)
	small := newSession(t, c, clk.now, false, 2)
	big := newSession(t, c, clk.now, false, 5)

	// Full, and both are young: no room for anyone unprivileged.
	if id := newSession(t, c, clk.advance(time.Second), false, 100); id != 0 {
		t.Fatal("a young session was evicted by a consumer")
	}
	// Past the eviction age, kept in use: a larger newcomer evicts the
	// smallest, an equal one does not.
	clk.advance(sessionEvictionAge)
	c.touch(c.mu.sessions[small], 2, clk.now)
	c.touch(c.mu.sessions[big], 5, clk.now)
	if id := newSession(t, c, clk.advance(time.Second), false, 2); id != 0 {
		t.Fatal("an equal-sized newcomer evicted a session")
	}
	third := newSession(t, c, clk.now, false, 3)
	if third == 0 || alive(c, small, clk.now) || !alive(c, big, clk.now) {
		t.Fatalf("newcomer %d; small alive %v, big alive %v; want small evicted", third, alive(c, small, clk.now), alive(c, big, clk.now))
	}
	// A follower's session evicts the smallest young consumer session.
	follower := newSession(t, c, clk.advance(time.Second), true, 1)
	if follower == 0 || alive(c, third, clk.now) {
		t.Fatal("a privileged newcomer did not evict a consumer session")
	}
	// Idle past the eviction age: the least recently used goes, whatever
	// its value.
	c.touch(c.mu.sessions[follower], 1, clk.advance(time.Second))
	clk.advance(sessionEvictionAge - time.Second/2)
	// big was last used 1 s before follower, 120.5 s ago: stale.
	if id := newSession(t, c, clk.now, false, 1); id == 0 || alive(c, big, clk.now) || !alive(c, follower, clk.now) {
		t.Fatalf("stale eviction: new %d, big alive %v, follower alive %v", id, alive(c, big, clk.now), alive(c, follower, clk.now))
	}
	if _, _, ev := c.stats(); ev != 3 {
		t.Fatalf("evictions %d, want 3", ev)
	}
}

// A consumer's session, however large, cannot evict a young follower's.
func TestFetchSessionPrivilegedKept(t *testing.T) {
	t.Parallel()
	c, clk := testCache(1)
	follower := newSession(t, c, clk.now, true, 1)
	if id := newSession(t, c, clk.advance(time.Minute), false, 1000); id != 0 || !alive(c, follower, clk.now) {
		t.Fatal("a consumer evicted a young follower session")
	}
	// Once idle past the eviction age, any newcomer replaces it.
	if id := newSession(t, c, clk.advance(sessionEvictionAge), false, 1000); id == 0 || alive(c, follower, clk.now) {
		t.Fatal("a stale follower session was kept")
	}
}

func TestFetchSessionSlotsZero(t *testing.T) {
	t.Parallel()
	c, clk := testCache(0)
	if fc := c.open(sessReq(0, 0, 1), false, clk.now); fc.create {
		t.Fatal("a session offered with no slots")
	}
}

func TestNextSessionEpoch(t *testing.T) {
	t.Parallel()
	for _, c := range [][2]int32{{0, 1}, {1, 2}, {math.MaxInt32, 1}, {-1, -1}} {
		if got := nextSessionEpoch(c[0]); got != c[1] {
			t.Fatalf("next(%d) = %d, want %d", c[0], got, c[1])
		}
	}
}

// distinctParts answers a repeated partition once, at its first position,
// with its last parameters.
func TestDistinctParts(t *testing.T) {
	t.Parallel()
	req := sessReq(0, -1, 3, 1, 3, 3)
	req.Topics[0].Partitions[3].FetchOffset = 9
	other := kmsg.NewFetchRequestTopic()
	other.Topic = "u"
	other.Partitions = append(other.Partitions, kmsg.NewFetchRequestTopicPartition())
	req.Topics = append(req.Topics, other, req.Topics[0])
	parts := distinctParts(req)
	if len(parts) != 3 {
		t.Fatalf("%d parts, want 3", len(parts))
	}
	if parts[0].topic != "t" || parts[0].rp.Partition != 3 || parts[0].rp.FetchOffset != 9 ||
		parts[1].rp.Partition != 1 || parts[2].topic != "u" {
		t.Fatalf("parts %+v", parts)
	}
}

func TestHasRepeats(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		parts []int32
		want  bool
	}{
		{[]int32{0, 1, 2, 63, 64, 1000}, false},
		{[]int32{5, 3, 5}, true},
		{[]int32{64, 0, 64}, true},
		{[]int32{-1, 0}, true},      // unusual: the map decides
		{[]int32{1 << 20, 0}, true}, // unusual: the map decides
		{[]int32{1 << 20, 1 << 20}, true},
	} {
		if got := hasRepeats(sessReq(0, -1, c.parts...)); got != c.want {
			t.Fatalf("hasRepeats(%v) = %v, want %v", c.parts, got, c.want)
		}
	}
	// A huge partition number named twice is still answered once.
	if parts := distinctParts(sessReq(0, -1, 1<<30, 7, 1<<30)); len(parts) != 2 {
		t.Fatalf("%d parts, want 2", len(parts))
	}
	// Two topics, each once, with the same partition numbers.
	req := sessReq(0, -1, 0, 1)
	other := req.Topics[0]
	other.Topic = "u"
	req.Topics = append(req.Topics, other)
	if hasRepeats(req) || len(distinctParts(req)) != 4 {
		t.Fatal("distinct topics with the same partition numbers seen as repeats")
	}
}

// Sessions outlive their requests, so the partitions they cache are
// bounded: a full fetch that does not fit gets no session, and an
// incremental one that would grow past the bound closes its session and
// is answered without one.
func TestFetchSessionPartitionBudget(t *testing.T) {
	t.Parallel()
	c, clk := testCache(10)
	c.partitionBudget = 5
	id := newSession(t, c, clk.now, false, 3)
	if id == 0 {
		t.Fatal("no session within the budget")
	}
	if other := newSession(t, c, clk.now, false, 3); other != 0 {
		t.Fatal("a session past the budget was created")
	}
	fc := c.open(sessReq(id, 1, 3), false, clk.now) // 4 of 5: fits
	if fc.errCode != 0 || fc.sess == nil || len(fc.parts) != 4 {
		t.Fatalf("growth within the budget: error %d, %d parts", fc.errCode, len(fc.parts))
	}
	if !c.finish(&fc, kmsg.NewPtrFetchResponse(), clk.now) {
		t.Fatal("finish")
	}
	fc = c.open(sessReq(id, 2, 4, 5), false, clk.now) // 6 of 5
	if fc.errCode != 0 || fc.sess != nil || len(fc.parts) != 2 {
		t.Fatalf("growth past the budget: error %d, session kept %v, %d parts; want a sessionless answer for the 2 named", fc.errCode, fc.sess != nil, len(fc.parts))
	}
	if alive(c, id, clk.now) {
		t.Fatal("the session that outgrew the budget is still open")
	}
	if _, p, _ := c.stats(); p != 0 {
		t.Fatalf("%d partitions still counted", p)
	}
}
