package share

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"
)

// simLog is a partition log for the randomized test: batches with
// compacted gaps between and inside them, control and aborted batches.
type simLog struct {
	batches []LogBatch
	present map[int64]bool // offsets holding a deliverable record
	end     int64
}

func (l *simLog) grow(rng *rand.Rand) {
	switch k := rng.IntN(10); {
	case k == 0:
		l.end += 1 + rng.Int64N(5) // whole batches compacted away
	case k == 1:
		l.batches = append(l.batches, LogBatch{FirstOffset: l.end, LastOffset: l.end, Control: true})
		l.end++
	case k == 2:
		n := 1 + rng.Int64N(4)
		l.batches = append(l.batches, LogBatch{FirstOffset: l.end, LastOffset: l.end + n - 1, Aborted: true})
		l.end += n
	default:
		n := 1 + rng.Int64N(8)
		for o := l.end; o < l.end+n; o++ {
			if rng.IntN(8) != 0 { // else compacted inside the batch
				l.present[o] = true
			}
		}
		l.batches = append(l.batches, LogBatch{FirstOffset: l.end, LastOffset: l.end + n - 1})
		l.end += n
	}
}

// compact removes a random batch that is not the last (compaction keeps
// the active segment): its records were superseded.
func (l *simLog) compact(rng *rand.Rand) {
	if len(l.batches) < 2 {
		return
	}
	i := rng.IntN(len(l.batches) - 1)
	for o := l.batches[i].FirstOffset; o <= l.batches[i].LastOffset; o++ {
		delete(l.present, o)
	}
	l.batches = slices.Delete(l.batches, i, i+1)
}

// readAt returns up to n batches from the one holding off on.
func (l *simLog) readAt(off int64, n int) []LogBatch {
	i := sort.Search(len(l.batches), func(i int) bool { return l.batches[i].LastOffset >= off })
	return l.batches[i:min(i+n, len(l.batches))]
}

type hold struct {
	member   string
	deadline time.Time
}

type model struct {
	held     map[int64]hold
	count    map[int64]int16
	accepted map[int64]bool
	dropped  map[int64]bool // rejected or acked as a gap by a consumer
}

func TestRandomized(t *testing.T) {
	for seed := uint64(1); seed <= 12; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runRandom(t, seed, 3000) })
	}
}

func runRandom(t *testing.T, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, seed*7919))
	cfg := Config{
		LockDuration:   200 * time.Millisecond,
		DeliveryLimit:  int16(2 + rng.IntN(4)),
		MaxRecordLocks: 10 + rng.IntN(60),
		DeadLetter:     seed%2 == 0,
	}
	if seed%3 != 0 {
		cfg.Backoff = Backoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond, Multiplier: 2}
	}
	log := &simLog{present: map[int64]bool{}}
	m := &model{held: map[int64]hold{}, count: map[int64]int16{}, accepted: map[int64]bool{}, dropped: map[int64]bool{}}
	p := New(cfg, State{})
	now := t0
	members := []string{"m0", "m1", "m2", "m3", "m4"}

	check := func(step int, what string) {
		t.Helper()
		s := p.Stats()
		if live, n := s.Available+s.Acquired+s.Archiving, s.Available+s.Acquired+s.Acknowledged+s.Archiving+s.Archived; live > cfg.MaxRecordLocks || n > spanFactor*cfg.MaxRecordLocks {
			t.Fatalf("step %d (%s): window %d > %d", step, what, n, cfg.MaxRecordLocks)
		}
		st, _ := p.State()
		if dl := p.DeadLetters(); len(dl) > 0 && dl[0].Offset < st.StartOffset {
			t.Fatalf("step %d (%s): dead letter %d below the start offset %d", step, what, dl[0].Offset, st.StartOffset)
		}
		if len(st.Batches) > 0 && st.Batches[0].FirstOffset == st.StartOffset {
			if b := st.Batches[0]; b.State == Acknowledged || b.State == Archived {
				t.Fatalf("step %d (%s): start offset %d not advanced past %+v", step, what, st.StartOffset, b)
			}
		}
		if s.Acquired != len(m.held) {
			t.Fatalf("step %d (%s): %d acquired, model holds %d", step, what, s.Acquired, len(m.held))
		}
	}
	// A read kept for later: the broker reads the log outside the
	// partition's lock, so Acquire may see a read older than other calls.
	var staleOff int64
	var stale []LogBatch
	acquire := func(step int, member string, maxRecords int, drain bool) {
		t.Helper()
		off, ok := p.FetchOffset(now)
		if !ok {
			if got := p.Acquire(now, member, log.readAt(off, 4), maxRecords); len(got) != 0 {
				t.Fatalf("step %d: acquired %+v though FetchOffset said no", step, got)
			}
			return
		}
		batches := log.readAt(off, 1+rng.IntN(4))
		var got []AcquiredRange
		switch k := rng.IntN(6); {
		case drain || k < 2:
			got = p.AcquireFrom(now, member, off, batches, maxRecords)
		case k == 2 && stale != nil:
			got = p.AcquireFrom(now, member, staleOff, stale, maxRecords)
			stale = nil
		case k == 3:
			staleOff, stale = off, slices.Clone(batches)
			return
		default:
			got = p.Acquire(now, member, batches, maxRecords)
		}
		for _, r := range got {
			if r.LastOffset < r.FirstOffset || r.LastOffset >= log.end {
				t.Fatalf("step %d: bad range %+v (log end %d)", step, r, log.end)
			}
			for o := r.FirstOffset; o <= r.LastOffset; o++ {
				if m.accepted[o] || m.dropped[o] {
					t.Fatalf("step %d: offset %d delivered after it was accepted or dropped", step, o)
				}
				if h, ok := m.held[o]; ok {
					t.Fatalf("step %d: offset %d acquired by %s while %s holds it", step, o, member, h.member)
				}
				if r.DeliveryCount != m.count[o]+1 || r.DeliveryCount > cfg.DeliveryLimit {
					t.Fatalf("step %d: offset %d delivery count %d after %d (limit %d)", step, o, r.DeliveryCount, m.count[o], cfg.DeliveryLimit)
				}
				m.count[o] = r.DeliveryCount
				m.held[o] = hold{member, now.Add(cfg.LockDuration)}
			}
		}
	}
	// ack acknowledges some of member's records with random types.
	ack := func(step int, member string, all bool) {
		t.Helper()
		var mine []int64
		for o, h := range m.held {
			if h.member == member && (all || rng.IntN(2) == 0) {
				mine = append(mine, o)
			}
		}
		slices.Sort(mine)
		var acks []Ack
		for _, o := range mine {
			typ := AckAccept
			switch {
			case !log.present[o]:
				typ = AckGap
			case all:
			default:
				typ = []AckType{AckAccept, AckAccept, AckRelease, AckReject, AckRenew, AckGap}[rng.IntN(6)]
			}
			if k := len(acks); k > 0 && acks[k-1].LastOffset == o-1 && rng.IntN(4) != 0 {
				a := &acks[k-1]
				if len(a.Types) == 1 && int(a.LastOffset-a.FirstOffset) > 0 {
					for i := a.FirstOffset; i < a.LastOffset; i++ {
						a.Types = append(a.Types, a.Types[0])
					}
				}
				a.LastOffset = o
				a.Types = append(a.Types, typ)
				continue
			}
			acks = append(acks, Ack{FirstOffset: o, LastOffset: o, Types: []AckType{typ}})
		}
		for i := range acks {
			if ts := acks[i].Types; len(ts) > 1 && !slices.ContainsFunc(ts, func(t AckType) bool { return t != ts[0] }) {
				acks[i].Types = ts[:1]
			}
		}
		if c := p.Acknowledge(now, member, acks); c != 0 {
			t.Fatalf("step %d: ack %+v of held records: code %d", step, acks, c)
		}
		for _, a := range acks {
			for o := a.FirstOffset; o <= a.LastOffset; o++ {
				switch a.typeAt(o) {
				case AckAccept:
					if m.accepted[o] {
						t.Fatalf("step %d: offset %d accepted twice", step, o)
					}
					m.accepted[o] = true
					delete(m.held, o)
				case AckRelease:
					delete(m.held, o)
				case AckReject, AckGap:
					m.dropped[o] = true
					delete(m.held, o)
				case AckRenew:
					m.held[o] = hold{member, now.Add(cfg.LockDuration)}
				}
			}
		}
	}
	badAck := func(step int, member string) {
		t.Helper()
		var o int64
		switch k := rng.IntN(3); {
		case k == 0 && len(m.held) > 0:
			for off, h := range m.held {
				if h.member != member {
					o = off
					break
				}
			}
		default:
			o = rng.Int64N(log.end + 3)
		}
		if h, ok := m.held[o]; ok && h.member == member {
			return
		}
		before, v := p.State()
		acks := []Ack{{FirstOffset: o, LastOffset: o, Types: one([]AckType{AckAccept, AckRelease, AckReject, AckRenew}[rng.IntN(4)])}}
		if c := p.Acknowledge(now, member, acks); (c == 0) != (o < before.StartOffset) {
			// Only an offset below the start offset is ignored.
			t.Fatalf("step %d: bad ack %+v by %s: code %d", step, acks, member, c)
		}
		if after, v2 := p.State(); v2 != v || !reflect.DeepEqual(before, after) {
			t.Fatalf("step %d: bad ack changed the state", step)
		}
	}
	deadLetter := func(step int, all bool) {
		t.Helper()
		var done []int64
		for _, d := range p.DeadLetters() {
			if m.accepted[d.Offset] || (!m.dropped[d.Offset] && m.count[d.Offset] < cfg.DeliveryLimit) {
				t.Fatalf("step %d: dead letter %+v accepted or not failed", step, d)
			}
			if d.Rejected != m.dropped[d.Offset] && m.count[d.Offset] < cfg.DeliveryLimit {
				t.Fatalf("step %d: dead letter %+v reason", step, d)
			}
			if all || rng.IntN(2) == 0 {
				done = append(done, d.Offset)
			}
		}
		p.DeadLettered(done, int32(len(done)))
	}

	for step := 0; step < steps; step++ {
		member := members[rng.IntN(len(members))]
		switch k := rng.IntN(100); {
		case k < 14:
			log.grow(rng)
		case k < 15:
			log.compact(rng)
		case k < 40:
			acquire(step, member, 1+rng.IntN(20), false)
		case k < 65:
			ack(step, member, false)
		case k < 72:
			badAck(step, member)
		case k < 85:
			now = now.Add(time.Duration(rng.IntN(60)) * time.Millisecond)
			want := 0
			for o, h := range m.held {
				if !h.deadline.After(now) {
					delete(m.held, o)
					want++
				}
			}
			if n := p.Expire(now); n != want {
				t.Fatalf("step %d: expired %d, want %d", step, n, want)
			}
		case k < 89:
			p.Release(now, member)
			for o, h := range m.held {
				if h.member == member {
					delete(m.held, o)
				}
			}
		case k < 93:
			st, _ := p.State()
			p = New(cfg, st)
			clear(m.held)
			if st2, _ := p.State(); !reflect.DeepEqual(st, st2) {
				t.Fatalf("step %d: restart changed the state:\n%+v\n%+v", step, st, st2)
			}
		default:
			deadLetter(step, false)
		}
		check(step, "step")
	}

	// Drain: every member accepts all it gets until the window is empty
	// at the log end.
	for i := 0; ; i++ {
		if i > 100000 {
			st, _ := p.State()
			off, ok := p.FetchOffset(now)
			t.Fatalf("did not drain: log end %d, state %+v, stats %+v, fetch %d %v", log.end, st, p.Stats(), off, ok)
		}
		now = now.Add(time.Second)
		want := len(m.held)
		clear(m.held)
		if n := p.Expire(now); n != want {
			t.Fatalf("drain: expired %d, want %d", n, want)
		}
		deadLetter(-1, true)
		// A trailing compacted gap is never read: the window ends at the
		// last batch.
		readable := int64(0)
		if k := len(log.batches); k > 0 {
			readable = log.batches[k-1].LastOffset + 1
		}
		if st, _ := p.State(); st.StartOffset == readable && len(st.Batches) == 0 {
			break
		}
		for _, member := range members {
			acquire(-1, member, 1+rng.IntN(20), true)
			ack(-1, member, true)
		}
		check(-1, "drain")
	}
	for o := int64(0); o < log.end; o++ {
		if log.present[o] && !m.accepted[o] && !m.dropped[o] && m.count[o] < cfg.DeliveryLimit {
			t.Fatalf("offset %d lost: never accepted, rejected or out of deliveries (count %d)", o, m.count[o])
		}
	}
	t.Logf("log end %d, accepted %d, dropped %d", log.end, len(m.accepted), len(m.dropped))
}
