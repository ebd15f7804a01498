package share

import (
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

var t0 = time.Unix(1_700_000_000, 0)

func at(d time.Duration) time.Time { return t0.Add(d) }

func newP(cfg Config, start int64) *Partition {
	return New(cfg, State{StartOffset: start, StateEpoch: 3, LeaderEpoch: 7})
}

func baseCfg() Config {
	return Config{LockDuration: 30 * time.Second, DeliveryLimit: 3, MaxRecordLocks: 100}
}

func lb(first, last int64) LogBatch { return LogBatch{FirstOffset: first, LastOffset: last} }

func one(t AckType) []AckType { return []AckType{t} }

func mustState(t *testing.T, p *Partition) (State, uint64) {
	t.Helper()
	return p.State()
}

func wantRanges(t *testing.T, got []AcquiredRange, want ...AcquiredRange) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("acquired %+v, want %+v", got, want)
	}
}

func wantFetch(t *testing.T, p *Partition, now time.Time, off int64, ok bool) {
	t.Helper()
	o, k := p.FetchOffset(now)
	if o != off || k != ok {
		t.Fatalf("FetchOffset = %d, %v; want %d, %v", o, k, off, ok)
	}
}

func wantStats(t *testing.T, p *Partition, avail, acq, acked, archiving, archived int) {
	t.Helper()
	s := p.Stats()
	if s.Available != avail || s.Acquired != acq || s.Acknowledged != acked || s.Archiving != archiving || s.Archived != archived {
		t.Fatalf("stats %+v, want avail %d acq %d acked %d archiving %d archived %d", s, avail, acq, acked, archiving, archived)
	}
}

func wantStart(t *testing.T, p *Partition, start int64) {
	t.Helper()
	if st, _ := p.State(); st.StartOffset != start {
		t.Fatalf("start offset %d, want %d", st.StartOffset, start)
	}
}

func TestAcquireNewRecords(t *testing.T) {
	p := newP(baseCfg(), 0)
	wantFetch(t, p, t0, 0, true)
	_, v0 := p.State()
	got := p.Acquire(t0, "a", []LogBatch{lb(0, 4), lb(5, 9)}, 100)
	wantRanges(t, got, AcquiredRange{0, 9, 1})
	wantStats(t, p, 0, 10, 0, 0, 0)
	wantFetch(t, p, t0, 10, true)
	st, v1 := p.State()
	if v1 <= v0 {
		t.Fatalf("version %d after acquire, was %d", v1, v0)
	}
	// An acquisition is stored as Available with its delivery count.
	want := []StateBatch{{FirstOffset: 0, LastOffset: 9, State: Available, DeliveryCount: 1}}
	if !reflect.DeepEqual(st.Batches, want) || st.StartOffset != 0 || st.StateEpoch != 3 || st.LeaderEpoch != 7 {
		t.Fatalf("state %+v", st)
	}
	if d, ok := p.NextDeadline(); !ok || !d.Equal(at(30*time.Second)) {
		t.Fatalf("next deadline %v %v", d, ok)
	}
}

func TestAcquireMaxRecordsFinishesBatch(t *testing.T) {
	p := newP(baseCfg(), 0)
	got := p.Acquire(t0, "a", []LogBatch{lb(0, 4), lb(5, 9), lb(10, 14)}, 6)
	wantRanges(t, got, AcquiredRange{0, 9, 1})
	got = p.Acquire(t0, "b", []LogBatch{lb(10, 14)}, 1)
	wantRanges(t, got, AcquiredRange{10, 14, 1})
}

func TestAcquireSkipsOtherStatesAndMergesByCount(t *testing.T) {
	p := newP(baseCfg(), 0)
	p.Acquire(t0, "a", []LogBatch{lb(0, 9)}, 100)
	// 2 released (count 1, Available), 3 accepted, 5 released.
	if c := p.Acknowledge(t0, "a", []Ack{{2, 3, []AckType{AckRelease, AckAccept}}, {5, 5, one(AckRelease)}}); c != 0 {
		t.Fatalf("ack: %d", c)
	}
	wantFetch(t, p, t0, 2, true)
	// The broker reads from 2; the batch starts below it.
	got := p.Acquire(t0, "b", []LogBatch{lb(0, 9), lb(10, 11)}, 100)
	wantRanges(t, got, AcquiredRange{2, 2, 2}, AcquiredRange{5, 5, 2}, AcquiredRange{10, 11, 1})
	// Offsets 0..9 except 2, 3, 5 are still a's.
	if c := p.Acknowledge(t0, "b", []Ack{{0, 0, one(AckAccept)}}); c != kerr.InvalidRecordState.Code {
		t.Fatalf("ack of a's record by b: %d", c)
	}
}

func TestAckTypes(t *testing.T) {
	cfg := baseCfg()
	p := newP(cfg, 100)
	p.Acquire(t0, "a", []LogBatch{lb(100, 109)}, 100)
	acks := []Ack{
		{100, 101, one(AckAccept)},
		{102, 104, []AckType{AckRelease, AckReject, AckGap}},
		{106, 107, one(AckRenew)},
	}
	if c := p.Acknowledge(at(10*time.Second), "a", acks); c != 0 {
		t.Fatalf("ack: %d", c)
	}
	// 100,101 accepted: start moves to 102 (Available).
	wantStart(t, p, 102)
	wantStats(t, p, 1, 5, 0, 0, 2) // 102 avail; 105..109 acquired; 103,104 archived
	st, _ := p.State()
	want := []StateBatch{
		{FirstOffset: 102, LastOffset: 102, State: Available, DeliveryCount: 1},
		{FirstOffset: 103, LastOffset: 104, State: Archived, DeliveryCount: 1},
		{FirstOffset: 105, LastOffset: 109, State: Available, DeliveryCount: 1},
	}
	if !reflect.DeepEqual(st.Batches, want) {
		t.Fatalf("batches %+v", st.Batches)
	}
	// Renewed 106,107 outlive the others' locks.
	if n := p.Expire(at(30 * time.Second)); n != 3 {
		t.Fatalf("expired %d, want 3 (105, 108, 109)", n)
	}
	wantStats(t, p, 4, 2, 0, 0, 2)
	if d, ok := p.NextDeadline(); !ok || !d.Equal(at(40*time.Second)) {
		t.Fatalf("next deadline %v", d)
	}
	if n := p.Expire(at(40 * time.Second)); n != 2 {
		t.Fatalf("expired %d, want 2", n)
	}
	if _, ok := p.NextDeadline(); ok {
		t.Fatal("deadline with nothing acquired")
	}
}

func TestLockExpiryRedelivers(t *testing.T) {
	p := newP(baseCfg(), 0)
	p.Acquire(t0, "a", []LogBatch{lb(0, 2)}, 10)
	if n := p.Expire(at(29 * time.Second)); n != 0 {
		t.Fatalf("expired %d early", n)
	}
	_, v := p.State()
	if n := p.Expire(at(30 * time.Second)); n != 3 {
		t.Fatalf("expired %d", n)
	}
	// Without backoff an expiry changes nothing State shows.
	if _, v2 := p.State(); v2 != v {
		t.Fatalf("version moved %d -> %d", v, v2)
	}
	wantFetch(t, p, at(30*time.Second), 0, true)
	got := p.Acquire(at(31*time.Second), "b", []LogBatch{lb(0, 2)}, 10)
	wantRanges(t, got, AcquiredRange{0, 2, 2})
	if c := p.Acknowledge(at(31*time.Second), "a", []Ack{{0, 2, one(AckAccept)}}); c != kerr.InvalidRecordState.Code {
		t.Fatalf("ack by the expired holder: %d", c)
	}
	if c := p.Acknowledge(at(31*time.Second), "b", []Ack{{0, 2, one(AckAccept)}}); c != 0 {
		t.Fatalf("ack: %d", c)
	}
	wantStart(t, p, 3)
	wantStats(t, p, 0, 0, 0, 0, 0)
}

func TestDeliveryLimitArchives(t *testing.T) {
	for _, dlq := range []bool{false, true} {
		cfg := baseCfg()
		cfg.DeadLetter = dlq
		p := newP(cfg, 0)
		now := t0
		for i := 1; i <= 2; i++ {
			got := p.Acquire(now, "a", []LogBatch{lb(0, 1)}, 10)
			wantRanges(t, got, AcquiredRange{0, 1, int16(i)})
			if c := p.Acknowledge(now, "a", []Ack{{0, 1, one(AckRelease)}}); c != 0 {
				t.Fatal(c)
			}
		}
		// The last attempt of each goes alone.
		wantRanges(t, p.Acquire(now, "a", []LogBatch{lb(0, 1)}, 10), AcquiredRange{0, 0, 3})
		wantRanges(t, p.Acquire(now, "a", []LogBatch{lb(0, 1)}, 10), AcquiredRange{1, 1, 3})
		// The third delivery's failure (expiry for 0, release for 1) ends it.
		if c := p.Acknowledge(now, "a", []Ack{{1, 1, one(AckRelease)}}); c != 0 {
			t.Fatal(c)
		}
		if n := p.Expire(now.Add(time.Hour)); n != 1 {
			t.Fatalf("expired %d", n)
		}
		if !dlq {
			wantStats(t, p, 0, 0, 0, 0, 0)
			wantStart(t, p, 2)
			if dl := p.DeadLetters(); len(dl) != 0 {
				t.Fatalf("dead letters without a DLQ: %+v", dl)
			}
			continue
		}
		wantStats(t, p, 0, 0, 0, 2, 0)
		wantStart(t, p, 0) // Archiving holds the start offset
		dl := p.DeadLetters()
		want := []DeadLetter{{0, 3, false}, {1, 3, false}}
		if !reflect.DeepEqual(dl, want) {
			t.Fatalf("dead letters %+v", dl)
		}
		st, _ := p.State()
		if len(st.Batches) != 1 || st.Batches[0].State != Archiving {
			t.Fatalf("state %+v", st)
		}
		p.DeadLettered([]int64{1}, 1)
		wantStart(t, p, 0)
		p.DeadLettered([]int64{0, 1, 55}, 1)
		wantStart(t, p, 2)
		if st, _ := p.State(); st.DeadLetter.Sequence != 2 {
			t.Fatalf("cursor %+v", st.DeadLetter)
		}
	}
}

func TestRejectToArchiving(t *testing.T) {
	cfg := baseCfg()
	cfg.DeadLetter = true
	p := newP(cfg, 0)
	p.SetDeadLetterProducer(DeadLetterCursor{ProducerID: 9, ProducerEpoch: 1, Sequence: 5})
	p.Acquire(t0, "a", []LogBatch{lb(0, 2)}, 10)
	if c := p.Acknowledge(t0, "a", []Ack{{0, 2, []AckType{AckReject, AckAccept, AckReject}}}); c != 0 {
		t.Fatal(c)
	}
	want := []DeadLetter{{0, 1, true}, {2, 1, true}}
	if dl := p.DeadLetters(); !reflect.DeepEqual(dl, want) {
		t.Fatalf("dead letters %+v", dl)
	}
	// The reason survives a restart (inferred from the delivery count).
	q := New(cfg, first(p.State()))
	if dl := q.DeadLetters(); !reflect.DeepEqual(dl, want) {
		t.Fatalf("dead letters after restart %+v", dl)
	}
	q.DeadLettered([]int64{0, 2}, 2)
	st, _ := q.State()
	if st.StartOffset != 3 || len(st.Batches) != 0 || st.DeadLetter != (DeadLetterCursor{9, 1, 7}) {
		t.Fatalf("state %+v", st)
	}
	// Sequences wrap as Kafka's do.
	q.SetDeadLetterProducer(DeadLetterCursor{ProducerID: 9, ProducerEpoch: 1, Sequence: 1<<31 - 2})
	q.DeadLettered(nil, 3)
	if st, _ := q.State(); st.DeadLetter.Sequence != 1 {
		t.Fatalf("wrapped sequence %d", st.DeadLetter.Sequence)
	}
	// Turning the DLQ off archives what waits.
	p.Configure(baseCfg())
	wantStart(t, p, 3)
}

func first(st State, _ uint64) State { return st }

func TestBackoffSchedule(t *testing.T) {
	cfg := baseCfg()
	cfg.DeliveryLimit = 10
	cfg.Backoff = Backoff{Initial: time.Second, Max: 5 * time.Second, Multiplier: 2}
	p := newP(cfg, 0)
	wants := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	now := t0
	for i, w := range wants {
		got := p.Acquire(now, "a", []LogBatch{lb(0, 0)}, 1)
		wantRanges(t, got, AcquiredRange{0, 0, int16(i + 1)})
		if c := p.Acknowledge(now, "a", []Ack{{0, 0, one(AckRelease)}}); c != 0 {
			t.Fatal(c)
		}
		st, _ := p.State()
		if len(st.Batches) != 1 || !st.Batches[0].NotBefore.Equal(now.Add(w)) {
			t.Fatalf("delivery %d: state %+v, want NotBefore +%v", i+1, st, w)
		}
		if d, ok := p.NextDeadline(); !ok || !d.Equal(now.Add(w)) {
			t.Fatalf("next deadline %v", d)
		}
		if s := p.Stats(); !s.OldestAvailable.Equal(now.Add(w)) {
			t.Fatalf("oldest available %v", s.OldestAvailable)
		}
		// Not acquirable during the backoff: the fetch goes past it.
		wantFetch(t, p, now.Add(w-1), 1, true)
		wantRanges(t, p.Acquire(now.Add(w-1), "a", []LogBatch{lb(0, 0)}, 1))
		now = now.Add(w)
		wantFetch(t, p, now, 0, true)
		if n := p.Expire(now); n != 0 {
			t.Fatalf("expire counted a backoff end: %d", n)
		}
		if _, ok := p.NextDeadline(); ok {
			t.Fatal("deadline after the backoff ended")
		}
	}
	// Off: Initial zero.
	var z Partition
	z.cfg = normalize(Config{Backoff: Backoff{Max: time.Hour, Multiplier: 3}})
	if d := z.backoff(4); d != 0 {
		t.Fatalf("backoff without Initial %v", d)
	}
	// Huge exponents are capped, never overflow.
	z.cfg.Backoff = Backoff{Initial: time.Hour, Multiplier: 1e9}
	if d := z.backoff(32767); d <= 0 {
		t.Fatalf("overflowed backoff %v", d)
	}
}

func TestBackoffOnMemberRelease(t *testing.T) {
	cfg := baseCfg()
	cfg.Backoff = Backoff{Initial: time.Second, Multiplier: 1}
	p := newP(cfg, 0)
	p.Acquire(t0, "a", []LogBatch{lb(0, 1)}, 10)
	p.Acquire(t0, "b", []LogBatch{lb(2, 3)}, 10)
	p.Release(t0, "a")
	wantStats(t, p, 2, 2, 0, 0, 0)
	wantFetch(t, p, t0, 4, true)
	wantFetch(t, p, at(time.Second), 0, true)
	if c := p.Acknowledge(t0, "b", []Ack{{2, 3, one(AckAccept)}}); c != 0 {
		t.Fatal(c)
	}
}

func TestWindowBound(t *testing.T) {
	cfg := baseCfg()
	cfg.MaxRecordLocks = 10
	p := newP(cfg, 0)
	got := p.Acquire(t0, "a", []LogBatch{lb(0, 19)}, 100)
	wantRanges(t, got, AcquiredRange{0, 9, 1})
	wantFetch(t, p, t0, 10, false)
	wantRanges(t, p.Acquire(t0, "b", []LogBatch{lb(0, 19)}, 100))
	// A released record inside the full window can be acquired again.
	if c := p.Acknowledge(t0, "a", []Ack{{9, 9, one(AckRelease)}}); c != 0 {
		t.Fatal(c)
	}
	wantFetch(t, p, t0, 9, true)
	wantRanges(t, p.Acquire(t0, "b", []LogBatch{lb(0, 19)}, 100), AcquiredRange{9, 9, 2})
	// Accepting the head makes room for exactly that many.
	if c := p.Acknowledge(t0, "a", []Ack{{0, 3, one(AckAccept)}}); c != 0 {
		t.Fatal(c)
	}
	wantFetch(t, p, t0, 10, true)
	wantRanges(t, p.Acquire(t0, "b", []LogBatch{lb(0, 19)}, 100), AcquiredRange{10, 13, 1})
	wantFetch(t, p, t0, 14, false)
	s := p.Stats()
	if n := s.Available + s.Acquired + s.Acknowledged + s.Archiving + s.Archived; n != 10 {
		t.Fatalf("window %d", n)
	}
}

func TestControlAbortedAndGapsArchived(t *testing.T) {
	p := newP(baseCfg(), 0)
	batches := []LogBatch{
		lb(0, 1),
		{FirstOffset: 2, LastOffset: 2, Control: true},
		{FirstOffset: 3, LastOffset: 5, Aborted: true},
		lb(6, 7),
		// 8..11 compacted away
		lb(12, 12),
	}
	got := p.Acquire(t0, "a", batches, 100)
	wantRanges(t, got, AcquiredRange{0, 1, 1}, AcquiredRange{6, 7, 1}, AcquiredRange{12, 12, 1})
	wantStats(t, p, 0, 5, 0, 0, 8)
	if c := p.Acknowledge(t0, "a", []Ack{{0, 1, one(AckAccept)}, {6, 7, one(AckAccept)}, {12, 12, one(AckAccept)}}); c != 0 {
		t.Fatal(c)
	}
	wantStart(t, p, 13)
	// Acknowledging below the start offset changes nothing.
	if c := p.Acknowledge(t0, "a", []Ack{{2, 2, one(AckAccept)}}); c != 0 {
		t.Fatalf("ack below the start: %d", c)
	}
	// A huge compacted gap with nothing in flight costs nothing.
	got = p.Acquire(t0, "a", []LogBatch{lb(1<<40, 1<<40+1)}, 100)
	wantRanges(t, got, AcquiredRange{1 << 40, 1<<40 + 1, 1})
	wantStart(t, p, 1<<40)
	// A leading gap before the first batch, inside the window: Available
	// records there are gone from the log.
	q := newP(baseCfg(), 0)
	q.Acquire(t0, "a", []LogBatch{lb(0, 4)}, 100)
	q.Acknowledge(t0, "a", []Ack{{0, 4, []AckType{AckRelease, AckRelease, AckAccept, AckRelease, AckRelease}}})
	got = q.Acquire(t0, "b", []LogBatch{lb(4, 6)}, 100)
	wantRanges(t, got, AcquiredRange{4, 4, 2}, AcquiredRange{5, 6, 1})
	wantStart(t, q, 0) // Acquire does not know where the read started
	wantRanges(t, q.AcquireFrom(t0, "b", 0, []LogBatch{lb(4, 6)}, 100))
	wantStart(t, q, 4)
	// A stale read (made at the window end before a release) archives
	// nothing inside the window.
	s := newP(baseCfg(), 0)
	s.Acquire(t0, "a", []LogBatch{lb(0, 9)}, 100)
	s.Acknowledge(t0, "a", []Ack{{5, 5, one(AckRelease)}})
	wantRanges(t, s.Acquire(t0, "b", []LogBatch{lb(12, 14)}, 100), AcquiredRange{12, 14, 1})
	wantRanges(t, s.AcquireFrom(t0, "b", 10, []LogBatch{lb(12, 15)}, 100), AcquiredRange{15, 15, 1})
	wantFetch(t, s, t0, 5, true)
	wantStats(t, s, 1, 13, 0, 0, 2)
	// A gap of new offsets behind an in-flight record is bounded by the window.
	cfg := baseCfg()
	cfg.MaxRecordLocks = 5
	r := newP(cfg, 0)
	r.Acquire(t0, "a", []LogBatch{lb(0, 0)}, 100)
	// Archived offsets are not in flight, so they fill the span (four
	// times the bound) rather than the bound.
	wantRanges(t, r.Acquire(t0, "a", []LogBatch{lb(1000, 1001)}, 100))
	wantFetch(t, r, t0, 20, false)
	r.Acknowledge(t0, "a", []Ack{{0, 0, one(AckAccept)}})
	wantStart(t, r, 20)
	wantRanges(t, r.Acquire(t0, "a", []LogBatch{lb(1000, 1001)}, 100), AcquiredRange{1000, 1001, 1})
}

func TestReleaseMember(t *testing.T) {
	p := newP(baseCfg(), 0)
	p.Acquire(t0, "a", []LogBatch{lb(0, 2)}, 10)
	p.Acquire(t0, "b", []LogBatch{lb(3, 5)}, 10)
	p.Release(at(time.Second), "a")
	wantStats(t, p, 3, 3, 0, 0, 0)
	if s := p.Stats(); !s.OldestAvailable.Equal(at(time.Second)) {
		t.Fatalf("oldest available %v", s.OldestAvailable)
	}
	wantRanges(t, p.Acquire(t0, "c", []LogBatch{lb(0, 5)}, 10), AcquiredRange{0, 2, 2})
	// At the delivery limit a release archives. (The last attempt of a
	// record goes alone.)
	p.Release(t0, "c")
	wantRanges(t, p.Acquire(t0, "c", []LogBatch{lb(0, 5)}, 10), AcquiredRange{0, 0, 3})
	p.Release(t0, "c")
	wantStats(t, p, 2, 3, 0, 0, 0)
	wantStart(t, p, 1)
}

func TestAdvanceLogStart(t *testing.T) {
	p := newP(baseCfg(), 0)
	p.Acquire(t0, "a", []LogBatch{lb(0, 9)}, 100)
	_, v := p.State()
	p.AdvanceLogStart(4)
	wantStart(t, p, 4)
	if _, v2 := p.State(); v2 <= v {
		t.Fatal("version did not move")
	}
	if c := p.Acknowledge(t0, "a", []Ack{{0, 5, one(AckAccept)}}); c != 0 {
		t.Fatalf("ack straddling the start: %d", c)
	}
	wantStart(t, p, 6)
	p.AdvanceLogStart(3) // below: nothing
	wantStart(t, p, 6)
	p.AdvanceLogStart(50)
	wantStart(t, p, 50)
	wantStats(t, p, 0, 0, 0, 0, 0)
	wantFetch(t, p, t0, 50, true)
}

// busy builds a partition in every state, with backoff and dead letters.
func busy(t *testing.T) (*Partition, Config) {
	cfg := baseCfg()
	cfg.DeadLetter = true
	cfg.Backoff = Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 2}
	p := newP(cfg, 10)
	p.SetDeadLetterProducer(DeadLetterCursor{ProducerID: 4, ProducerEpoch: 2, Sequence: 11})
	p.Acquire(t0, "a", []LogBatch{lb(10, 19), {FirstOffset: 20, LastOffset: 20, Control: true}, lb(21, 24)}, 100)
	if c := p.Acknowledge(t0, "a", []Ack{{10, 24, []AckType{
		AckRelease, AckAccept, AckReject, AckRelease, AckRelease, AckAccept, AckAccept, AckGap, AckRelease, AckRenew,
		AckGap /* 20: archived control, not a's */, AckAccept, AckRelease, AckRenew, AckRenew,
	}}}); c != 0 {
		t.Fatalf("ack: %d", c)
	}
	p.Acquire(t0, "b", []LogBatch{lb(25, 27)}, 100)
	return p, cfg
}

func TestStateRoundTrip(t *testing.T) {
	p, cfg := busy(t)
	st, _ := p.State()
	q := New(cfg, st)
	st2, _ := q.State()
	if !reflect.DeepEqual(st, st2) {
		t.Fatalf("round trip:\n%+v\n%+v", st, st2)
	}
	// With nothing acquired, the restored one behaves as the original.
	p.Release(t0, "a")
	p.Release(t0, "b")
	q = New(cfg, first(p.State()))
	if !reflect.DeepEqual(first(p.State()), first(q.State())) {
		t.Fatalf("after release:\n%+v\n%+v", first(p.State()), first(q.State()))
	}
	for _, now := range []time.Time{t0, at(time.Second), at(time.Hour)} {
		po, pok := p.FetchOffset(now)
		qo, qok := q.FetchOffset(now)
		if po != qo || pok != qok {
			t.Fatalf("fetch offsets differ at %v: %d %v / %d %v", now, po, pok, qo, qok)
		}
		batches := []LogBatch{lb(10, 30)}
		pa := p.Acquire(now, "m", batches, 100)
		qa := q.Acquire(now, "m", batches, 100)
		if !reflect.DeepEqual(pa, qa) {
			t.Fatalf("acquisitions differ: %+v / %+v", pa, qa)
		}
		if !reflect.DeepEqual(p.DeadLetters(), q.DeadLetters()) {
			t.Fatal("dead letters differ")
		}
		p.Release(now, "m")
		q.Release(now, "m")
	}
	// Hostile states are cut, not trusted.
	h := New(cfg, State{StartOffset: 5, Batches: []StateBatch{
		{FirstOffset: 9, LastOffset: 3, State: Archived},                   // backwards
		{FirstOffset: 0, LastOffset: 6, State: Acknowledged},               // below the start
		{FirstOffset: 7, LastOffset: 8, State: Acquired, DeliveryCount: 2}, // never stored
		{FirstOffset: 8, LastOffset: 9, State: Archived},                   // overlaps
		{FirstOffset: 10, LastOffset: 1 << 50, State: Archived},            // huge
		{FirstOffset: 1<<50 + 1, LastOffset: 1<<50 + 1, State: 9},
	}})
	hs, _ := h.State()
	if hs.StartOffset != 7 || len(hs.Batches) != 2 || hs.Batches[0] != (StateBatch{FirstOffset: 7, LastOffset: 8, DeliveryCount: 2}) ||
		hs.Batches[1].State != Archived || hs.Batches[1].FirstOffset != 9 {
		t.Fatalf("hostile state restored as %+v", hs)
	}
	if s := h.Stats(); s.Available+s.Acknowledged+s.Archived > maxRestoreSpan {
		t.Fatalf("restored window %+v", s)
	}
}

func TestBadAcksChangeNothing(t *testing.T) {
	big := make([]AckType, 1<<20)
	cases := []struct {
		name string
		acks []Ack
		code int16
	}{
		{"not acquired (accepted)", []Ack{{11, 11, one(AckAccept)}}, kerr.InvalidRecordState.Code},
		{"other member's", []Ack{{25, 25, one(AckAccept)}}, kerr.InvalidRecordState.Code},
		{"available", []Ack{{13, 13, one(AckRenew)}}, kerr.InvalidRecordState.Code},
		{"archiving", []Ack{{12, 12, one(AckReject)}}, kerr.InvalidRecordState.Code},
		{"good then bad", []Ack{{19, 19, one(AckAccept)}, {25, 25, one(AckAccept)}}, kerr.InvalidRecordState.Code},
		{"beyond the window", []Ack{{19, 19, one(AckAccept)}, {28, 28, one(AckAccept)}}, kerr.InvalidRequest.Code},
		{"huge range", []Ack{{19, 1 << 62, one(AckAccept)}}, kerr.InvalidRequest.Code},
		{"below the start, then bad", []Ack{{0, 5, one(AckAccept)}, {25, 25, one(AckAccept)}}, kerr.InvalidRecordState.Code},
		{"below the start (ignored)", []Ack{{0, 5, one(AckAccept)}, {8, 9, one(AckReject)}}, 0},
		{"last before first", []Ack{{19, 18, one(AckAccept)}}, kerr.InvalidRequest.Code},
		{"overlapping", []Ack{{19, 19, one(AckAccept)}, {19, 19, one(AckAccept)}}, kerr.InvalidRequest.Code},
		{"out of order", []Ack{{23, 23, one(AckAccept)}, {19, 19, one(AckAccept)}}, kerr.InvalidRequest.Code},
		{"no types", []Ack{{19, 19, nil}}, kerr.InvalidRequest.Code},
		{"types length", []Ack{{19, 23, []AckType{AckAccept, AckAccept}}}, kerr.InvalidRequest.Code},
		{"millions of types", []Ack{{19, 19, big}}, kerr.InvalidRequest.Code},
		{"type 5", []Ack{{19, 19, one(5)}}, kerr.InvalidRequest.Code},
		{"type -1", []Ack{{19, 19, one(-1)}}, kerr.InvalidRequest.Code},
		{"extreme offsets", []Ack{{-1 << 63, 1<<63 - 1, one(AckAccept)}}, kerr.InvalidRequest.Code},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, _ := busy(t)
			st, v := p.State()
			stats := p.Stats()
			d0, _ := p.NextDeadline()
			if got := p.Acknowledge(t0, "a", c.acks); got != c.code {
				t.Fatalf("code %d, want %d", got, c.code)
			}
			st2, v2 := p.State()
			if v2 != v || !reflect.DeepEqual(st, st2) || p.Stats() != stats {
				t.Fatalf("state changed on error: %+v -> %+v", st, st2)
			}
			if d1, _ := p.NextDeadline(); !d1.Equal(d0) {
				t.Fatalf("locks changed: %v", d1)
			}
		})
	}
	// ValidateAcks without Renew allowed rejects it.
	if c := ValidateAcks([]Ack{{0, 0, one(AckRenew)}}, AckReject); c != kerr.InvalidRequest.Code {
		t.Fatalf("renew where not allowed: %d", c)
	}
	// Gap offsets not held by the member are skipped, not errors.
	p, _ := busy(t)
	if c := p.Acknowledge(t0, "a", []Ack{{24, 25, []AckType{AckAccept, AckGap}}}); c != 0 {
		t.Fatalf("gap over another's record: %d", c)
	}
	if c := p.Acknowledge(t0, "b", []Ack{{25, 25, one(AckAccept)}}); c != 0 {
		t.Fatalf("b's record after a's gap ack: %d", c)
	}
}

func TestStatsOldestAvailableAfterRestore(t *testing.T) {
	p := newP(baseCfg(), 0)
	p.Acquire(t0, "a", []LogBatch{lb(0, 1)}, 10)
	q := New(baseCfg(), first(p.State()))
	if s := q.Stats(); s.Available != 2 || !s.OldestAvailable.IsZero() {
		t.Fatalf("stats before a clock reading %+v", s)
	}
	q.FetchOffset(at(time.Minute))
	if s := q.Stats(); !s.OldestAvailable.Equal(at(time.Minute)) {
		t.Fatalf("stats %+v", s)
	}
}

func TestDefaults(t *testing.T) {
	p := New(Config{}, State{})
	p.Acquire(t0, "a", []LogBatch{lb(0, 1<<20)}, 0)
	s := p.Stats()
	if s.Acquired != DefaultMaxRecordLocks {
		t.Fatalf("acquired %d", s.Acquired)
	}
	if d, _ := p.NextDeadline(); !d.Equal(t0.Add(DefaultLockDuration)) {
		t.Fatalf("deadline %v", d)
	}
}

func TestRestoreWithoutDeadLetterArchivesWaiting(t *testing.T) {
	cfg := baseCfg()
	cfg.DeadLetter = true
	p := newP(cfg, 0)
	p.Acquire(t0, "a", []LogBatch{lb(0, 1)}, 10)
	p.Acknowledge(t0, "a", []Ack{{0, 0, one(AckReject)}})
	st, _ := p.State()
	if q := New(cfg, st); len(q.DeadLetters()) != 1 {
		t.Fatalf("dead letters %+v", q.DeadLetters())
	}
	q := New(baseCfg(), st)
	if len(q.DeadLetters()) != 0 {
		t.Fatalf("dead letters without a DLQ %+v", q.DeadLetters())
	}
	wantStart(t, q, 1)
}

func TestIsolationOfFailingRecords(t *testing.T) {
	cfg := baseCfg()
	cfg.DeliveryLimit = 6 // throttled from 3 deliveries on
	p := newP(cfg, 0)
	read := []LogBatch{lb(0, 7)}
	releaseAll := func() {
		t.Helper()
		p.Release(t0, "a")
		p.Release(t0, "b")
	}
	wantRanges(t, p.Acquire(t0, "a", read, 100), AcquiredRange{0, 7, 1})
	releaseAll()
	wantRanges(t, p.Acquire(t0, "a", read, 100), AcquiredRange{0, 7, 2})
	releaseAll()
	wantRanges(t, p.Acquire(t0, "a", read, 100), AcquiredRange{0, 7, 3})
	releaseAll()
	// Delivered 3 times: groups of 8>>1.
	wantRanges(t, p.Acquire(t0, "a", read, 100), AcquiredRange{0, 3, 4})
	wantRanges(t, p.Acquire(t0, "b", read, 100), AcquiredRange{4, 7, 4})
	releaseAll()
	// 4 times: groups of 8>>2.
	wantRanges(t, p.Acquire(t0, "a", read, 100), AcquiredRange{0, 1, 5})
	// A throttled record does not join records acquired before it.
	q := newP(cfg, 0)
	q.Acquire(t0, "a", []LogBatch{lb(0, 3)}, 100)
	for i := 0; i < 3; i++ {
		q.Acknowledge(t0, "a", []Ack{{2, 2, one(AckRelease)}})
		q.Acquire(t0, "a", []LogBatch{lb(0, 3)}, 100)
	}
	q.Acknowledge(t0, "a", []Ack{{1, 2, one(AckRelease)}}) // 1: once, 2: 4 times
	wantRanges(t, q.Acquire(t0, "b", []LogBatch{lb(0, 3)}, 100), AcquiredRange{1, 1, 2})
	wantRanges(t, q.Acquire(t0, "b", []LogBatch{lb(0, 3)}, 100), AcquiredRange{2, 2, 5})
	// Last attempt: alone.
	q.Acknowledge(t0, "b", []Ack{{1, 2, one(AckRelease)}})
	wantRanges(t, q.Acquire(t0, "c", []LogBatch{lb(0, 3)}, 100), AcquiredRange{1, 1, 3})
	wantRanges(t, q.Acquire(t0, "c", []LogBatch{lb(0, 5)}, 100), AcquiredRange{2, 2, 6})
	wantRanges(t, q.Acquire(t0, "c", []LogBatch{lb(0, 5)}, 100), AcquiredRange{4, 5, 1})
}

func TestConfigure(t *testing.T) {
	p := newP(baseCfg(), 0)
	p.Acquire(t0, "a", []LogBatch{lb(0, 1)}, 10)
	cfg := baseCfg()
	cfg.LockDuration = time.Minute
	cfg.DeliveryLimit = 1
	p.Configure(cfg)
	// Locks taken before keep their deadline; new ones use the new duration.
	if d, _ := p.NextDeadline(); !d.Equal(at(30 * time.Second)) {
		t.Fatalf("deadline %v", d)
	}
	p.Acquire(t0, "a", []LogBatch{lb(2, 2)}, 10)
	if n := p.Expire(at(30 * time.Second)); n != 2 {
		t.Fatalf("expired %d", n)
	}
	// Delivered once with a limit of 1: archived, not delivered again.
	wantStart(t, p, 2)
	if d, _ := p.NextDeadline(); !d.Equal(at(time.Minute)) {
		t.Fatalf("deadline %v", d)
	}
	// A hostile ack spanning far below the start walks only the window.
	if c := p.Acknowledge(t0, "a", []Ack{{-1 << 62, 2, one(AckAccept)}}); c != 0 {
		t.Fatalf("ack: %d", c)
	}
	wantStart(t, p, 3)
}

func BenchmarkAcquireAcknowledge(b *testing.B) {
	p := newP(Config{LockDuration: time.Minute, DeliveryLimit: 5, MaxRecordLocks: 2000}, 0)
	var next int64
	now := t0
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		now = now.Add(time.Millisecond)
		off, _ := p.FetchOffset(now)
		batches := []LogBatch{lb(off, off+99), lb(off+100, off+199)}
		got := p.Acquire(now, "m", batches, 100)
		for _, r := range got {
			next = max(next, r.LastOffset+1)
			p.Acknowledge(now, "m", []Ack{{r.FirstOffset, r.LastOffset, one(AckAccept)}})
		}
		p.State()
	}
	_ = next
}
