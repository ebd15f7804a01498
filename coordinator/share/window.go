package share

import (
	"math"
	"time"
)

// Defaults applied to a Config field left zero or negative: Kafka's
// defaults for group.share.record.lock.duration.ms,
// group.share.delivery.count.limit and group.share.partition.max.record.locks.
const (
	DefaultLockDuration   = 30 * time.Second
	DefaultDeliveryLimit  = 5
	DefaultMaxRecordLocks = 2000
)

// maxRestoreSpan bounds the window New rebuilds from a State, whatever the
// State says: a State this package wrote never spans more offsets than the
// MaxRecordLocks it ran with, so only a corrupt or hostile one is cut.
const maxRestoreSpan = 1 << 16

// rec is one in-flight offset.
type rec struct {
	// member holds the record when Acquired.
	member string
	// at is the lock deadline when Acquired, the backoff end (NotBefore)
	// when Available, else zero; Unix nanoseconds.
	at int64
	// since is when an Available record became (or becomes, after its
	// backoff) available; zero when not yet known (restored).
	since    int64
	count    int16
	state    RecordState
	rejected bool // Archiving: a consumer rejected it (else: out of deliveries)
}

func (r *rec) done() bool { return r.state == Acknowledged || r.state == Archived }

// ready reports whether r can be acquired at n.
func (r *rec) ready(n int64) bool { return r.state == Available && (r.at == 0 || r.at <= n) }

func normalize(cfg Config) Config {
	if cfg.LockDuration <= 0 {
		cfg.LockDuration = DefaultLockDuration
	}
	if cfg.DeliveryLimit <= 0 {
		cfg.DeliveryLimit = DefaultDeliveryLimit
	}
	if cfg.MaxRecordLocks <= 0 {
		cfg.MaxRecordLocks = DefaultMaxRecordLocks
	}
	return cfg
}

func restore(cfg Config, st State) *Partition {
	p := &Partition{
		cfg:         normalize(cfg),
		start:       max(st.StartOffset, 0),
		stateEpoch:  st.StateEpoch,
		leaderEpoch: st.LeaderEpoch,
		dl:          st.DeadLetter,
		unstamped:   true,
	}
	limit := int64(max(p.cfg.MaxRecordLocks, maxRestoreSpan))
	for _, b := range st.Batches {
		lo, hi := max(b.FirstOffset, p.start, p.end()), b.LastOffset
		if hi < lo || lo-p.start >= limit {
			continue // malformed, below the start, overlapping or too far
		}
		hi = min(hi, p.start+limit-1)
		for p.end() < lo {
			p.recs = append(p.recs, rec{state: Available})
		}
		r := rec{state: b.State, count: max(b.DeliveryCount, 0)}
		switch b.State {
		case Available, Acquired: // an acquisition does not survive a restart
			r.state = Available
			if !b.NotBefore.IsZero() {
				r.at = b.NotBefore.UnixNano()
				r.since = r.at
			}
		case Acknowledged, Archived:
		case Archiving:
			// State does not carry the reason: a record below the
			// delivery limit can only have been rejected.
			r.rejected = r.count < p.cfg.DeliveryLimit
		default:
			r.state = Available
		}
		for o := lo; o <= hi; o++ {
			p.recs = append(p.recs, r)
		}
	}
	p.archiveWaiting()
	p.advance()
	return p
}

func (p *Partition) configure(cfg Config) {
	p.cfg = normalize(cfg)
	p.archiveWaiting()
}

// archiveWaiting archives the Archiving records when there is no
// dead-letter topic: nothing would complete them, and they would hold the
// start offset forever.
func (p *Partition) archiveWaiting() {
	if p.cfg.DeadLetter {
		return
	}
	changed := false
	for i := range p.recs {
		if r := &p.recs[i]; r.state == Archiving {
			r.state, r.rejected = Archived, false
			changed = true
		}
	}
	if changed {
		p.version++
		p.advance()
	}
}

func (p *Partition) end() int64 { return p.start + int64(len(p.recs)) }

// stamp gives restored Available records the first clock reading as the
// time they became available.
func (p *Partition) stamp(n int64) {
	if !p.unstamped {
		return
	}
	p.unstamped = false
	for i := range p.recs {
		if r := &p.recs[i]; r.state == Available && r.since == 0 {
			r.since = n
		}
	}
}

// advance moves the start offset past the leading done records; it
// reports whether it moved.
func (p *Partition) advance() bool {
	k := 0
	for k < len(p.recs) && p.recs[k].done() {
		k++
	}
	if k == 0 {
		return false
	}
	p.start += int64(k)
	if k == len(p.recs) {
		p.recs = nil
	} else {
		p.recs = p.recs[k:]
	}
	p.version++
	return true
}

// backoff is the delay before a record failed for the count-th time is
// available again.
func (p *Partition) backoff(count int16) time.Duration {
	b := p.cfg.Backoff
	if b.Initial <= 0 {
		return 0
	}
	m := b.Multiplier
	if !(m >= 1) { // also NaN
		m = 1
	}
	d := float64(b.Initial) * math.Pow(m, float64(max(count, 1)-1))
	limit := float64(math.MaxInt64 / 4)
	if b.Max > 0 {
		limit = min(limit, float64(b.Max))
	}
	if !(d <= limit) {
		d = limit
	}
	return time.Duration(d)
}

// toLimit moves r, out of deliveries or rejected, to Archived or, with a
// dead-letter topic, Archiving.
func (p *Partition) toLimit(r *rec, rejected bool) {
	r.member, r.at, r.since = "", 0, 0
	if p.cfg.DeadLetter {
		r.state, r.rejected = Archiving, rejected
		return
	}
	r.state, r.rejected = Archived, false
}

// fail ends an acquisition that did not succeed (release, lock expiry,
// member gone): the record is available again after its backoff, or
// archived at the delivery limit. It reports whether State changed.
func (p *Partition) fail(r *rec, n int64) bool {
	if r.count >= p.cfg.DeliveryLimit {
		p.toLimit(r, false)
		return true
	}
	r.state, r.member, r.at, r.since = Available, "", 0, n
	if d := p.backoff(r.count); d > 0 {
		r.at = n + int64(d)
		r.since = r.at
		return true
	}
	return false // State shows an acquired record as Available already
}

func (p *Partition) release(n int64, member string) {
	p.stamp(n)
	changed := false
	for i := range p.recs {
		if r := &p.recs[i]; r.state == Acquired && r.member == member {
			changed = p.fail(r, n) || changed
		}
	}
	if changed {
		p.version++
	}
	p.advance()
}

func (p *Partition) expire(n int64) int {
	p.stamp(n)
	expired, changed := 0, false
	for i := range p.recs {
		r := &p.recs[i]
		switch {
		case r.state == Acquired && r.at <= n:
			expired++
			changed = p.fail(r, n) || changed
		case r.state == Available && r.at != 0 && r.at <= n:
			r.at = 0 // the backoff ended
			changed = true
		}
	}
	if changed {
		p.version++
	}
	p.advance()
	return expired
}

func (p *Partition) nextDeadline() (time.Time, bool) {
	var best int64
	found := false
	for i := range p.recs {
		r := &p.recs[i]
		if (r.state == Acquired || r.state == Available) && r.at != 0 && (!found || r.at < best) {
			best, found = r.at, true
		}
	}
	if !found {
		return time.Time{}, false
	}
	return time.Unix(0, best), true
}

func (p *Partition) fetchOffset(n int64) (int64, bool) {
	p.stamp(n)
	for i := range p.recs {
		if p.recs[i].ready(n) {
			return p.start + int64(i), true
		}
	}
	return p.end(), p.canGrow()
}

// spanFactor bounds the window's span at spanFactor x MaxRecordLocks
// offsets (see canGrow).
const spanFactor = 4

// maxSpan is the most offsets the window spans.
func (p *Partition) maxSpan() int { return spanFactor * p.cfg.MaxRecordLocks }

// canGrow reports whether a new record may join the window.
// MaxRecordLocks bounds the records not yet done (Available, Acquired,
// Archiving), and the window's span is bounded at spanFactor times that.
// Kafka bounds the span itself, so a member that acknowledges before the
// one holding the window's head cannot acquire again until the head is
// done: with four members taking 500 records each from a window of 2,000,
// all wait for the slowest. Counting only what is still in flight lets
// them go on, while memory stays bounded by the span.
func (p *Partition) canGrow() bool {
	n := len(p.recs)
	return n < p.cfg.MaxRecordLocks || (n < p.maxSpan() && p.countLive() < p.cfg.MaxRecordLocks)
}

// countLive counts the window's records not yet done.
func (p *Partition) countLive() int {
	live := 0
	for i := range p.recs {
		if !p.recs[i].done() {
			live++
		}
	}
	return live
}

// durable is a record as State shows it.
type durable struct {
	state RecordState
	count int16
	at    int64
}

func (r *rec) durable() durable {
	switch r.state {
	case Acquired:
		return durable{Available, r.count, 0}
	case Available:
		return durable{Available, r.count, r.at}
	default:
		return durable{r.state, r.count, 0}
	}
}

func (p *Partition) state() State {
	st := State{
		StateEpoch:  p.stateEpoch,
		LeaderEpoch: p.leaderEpoch,
		StartOffset: p.start,
		DeadLetter:  p.dl,
	}
	var cur durable
	first := int64(-1)
	flush := func(last int64) {
		if first < 0 || (cur.state == Available && cur.count == 0 && cur.at == 0) {
			return
		}
		b := StateBatch{FirstOffset: first, LastOffset: last, State: cur.state, DeliveryCount: cur.count}
		if cur.at != 0 {
			b.NotBefore = time.Unix(0, cur.at)
		}
		st.Batches = append(st.Batches, b)
	}
	for i := range p.recs {
		d := p.recs[i].durable()
		o := p.start + int64(i)
		if first >= 0 && d == cur {
			continue
		}
		flush(o - 1)
		first, cur = o, d
	}
	flush(p.end() - 1)
	return st
}

func (p *Partition) deadLetters() []DeadLetter {
	var out []DeadLetter
	for i := range p.recs {
		if r := &p.recs[i]; r.state == Archiving {
			out = append(out, DeadLetter{Offset: p.start + int64(i), DeliveryCount: r.count, Rejected: r.rejected})
		}
	}
	return out
}

func (p *Partition) deadLettered(offsets []int64, seqs int32) {
	changed := false
	for _, o := range offsets {
		if o < p.start || o >= p.end() {
			continue
		}
		if r := &p.recs[o-p.start]; r.state == Archiving {
			r.state, r.rejected = Archived, false
			changed = true
		}
	}
	if seqs > 0 {
		// Producer sequences wrap from MaxInt32 to 0, as Kafka's do.
		p.dl.Sequence = int32((int64(p.dl.Sequence) + int64(seqs)) % (math.MaxInt32 + 1))
		changed = true
	}
	if changed {
		p.version++
	}
	p.advance()
}

func (p *Partition) advanceLogStart(offset int64) {
	if offset <= p.start {
		return
	}
	if offset >= p.end() {
		p.recs = nil
	} else {
		p.recs = p.recs[offset-p.start:]
	}
	p.start = offset
	p.version++
	p.advance()
}

func (p *Partition) stats() Stats {
	var s Stats
	var oldest int64
	for i := range p.recs {
		r := &p.recs[i]
		switch r.state {
		case Available:
			s.Available++
			if r.since != 0 && (oldest == 0 || r.since < oldest) {
				oldest = r.since
			}
		case Acquired:
			s.Acquired++
		case Acknowledged:
			s.Acknowledged++
		case Archiving:
			s.Archiving++
		case Archived:
			s.Archived++
		}
	}
	if oldest != 0 {
		s.OldestAvailable = time.Unix(0, oldest)
	}
	return s
}
