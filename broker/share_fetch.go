package broker

// The share-partition manager: the partition leader's side of share groups
// (KIP-932). For every share group reading a topic-partition this broker
// leads, it holds one share.Partition (coordinator/share, pure) behind a
// mutex, loaded on first use from the share coordinator (readShareState)
// and written back (writeShareState) after every change its State shows.
//
// Durability and order of writes: writes of one share-partition are
// serialized by a one-token channel (waiting respects the request's
// context; no broker-wide lock is held across I/O) and coalesced: a caller
// asks for the version its change produced, and a write that already
// covered it (another request's, taken later) answers it without a new
// write. An acknowledgement is answered only once a write covering it
// returned. A failed or fenced write drops the entry: its in-memory changes
// since the last durable write are forgotten, the callers get an error,
// and the next use reloads the share-partition from the store (Kafka's
// SharePartition likewise refuses to go on from a state it could not
// persist). Acquisitions are not part of the state, so records acquired in
// a dropped entry are simply delivered again.
//
// Entries are dropped when leadership of the topic-partition changes
// (sharesOnTransition, from coordinatorsOnTransition), and reloaded with
// the new leader epoch, which goes into every state written.
//
// Timers: one goroutine (runShareTimers) sleeps until the earliest
// NextDeadline of the loaded share-partitions, expires locks and backoffs,
// persists, and wakes the fetches waiting on those share-partitions.
//
// Lock order: shareManager.mu before shareEntry.mu; shareSessions.mu is
// never held with either. shareEntry.write (the write token) is taken
// before shareEntry.mu, never while holding it.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicedev/sluice/coordinator/share"
)

// shareManager holds the share-partitions this broker leads and the share
// sessions of the members fetching from it.
type shareManager struct {
	b        *Broker
	now      func() time.Time // the clock; time.Now but in tests
	sessions *shareSessions
	metrics  *shareMetrics

	mu struct {
		sync.Mutex
		parts map[share.Key]*shareEntry
	}
	// timerKick wakes the timer goroutine to look at deadlines again;
	// timerOnce starts it on first load.
	timerKick chan struct{}
	timerOnce sync.Once
}

// shareEntry is one loaded share-partition.
type shareEntry struct {
	key   share.Key
	part  *partition // the topic-partition led here
	epoch int32      // its leader epoch when loaded
	ready chan struct{}
	err   error // the load's error, set before ready closes

	// write is the write token: one state write at a time.
	write chan struct{}
	// recordBytes is the bytes per offset of the partition's last read
	// (readEstimate); zero before the first.
	recordBytes atomic.Int64

	mu struct {
		sync.Mutex
		p       *share.Partition
		cfg     share.Config
		written uint64 // the version the store holds
		// readers is when each member last acquired here (fairShareLocked).
		readers  map[string]time.Time
		dropped  bool
		watchers map[chan<- struct{}]struct{}
	}
}

// errShareDropped means a share-partition was unloaded (leadership moved,
// or a state write failed) while a request used it.
var errShareDropped = errors.New("broker: share-partition unloaded")

// newShareManager builds the manager and registers its metrics.
func newShareManager(b *Broker) *shareManager {
	m := &shareManager{b: b, now: time.Now, timerKick: make(chan struct{}, 1)}
	m.mu.parts = map[share.Key]*shareEntry{}
	m.sessions = newShareSessions(b.shareSettings().MaxShareSessions)
	m.metrics = newShareMetrics(m)
	if b.registry != nil {
		b.registry.MustRegister(m.metrics.collectors()...)
	}
	return m
}

// shareConfig is a share-partition's configuration from its group's.
func shareConfig(gs groupSettings) share.Config {
	return share.Config{
		LockDuration:   gs.ShareRecordLockDuration,
		DeliveryLimit:  gs.ShareDeliveryCountLimit,
		MaxRecordLocks: gs.SharePartitionMaxRecordLocks,
		Backoff:        gs.ShareBackoff,
		DeadLetter:     gs.DLQTopic != "",
	}
}

// get returns the loaded share-partition of k, loading it on first use.
// The code is a Kafka error for the partition: UNKNOWN_TOPIC_ID,
// UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER, or
// COORDINATOR_NOT_AVAILABLE when its state could not be read.
func (m *shareManager) get(ctx context.Context, k share.Key) (*shareEntry, int16) {
	ts := m.b.topics.getID(k.TopicID)
	if ts == nil {
		return nil, kerr.UnknownTopicID.Code
	}
	if k.Partition < 0 || k.Partition >= ts.meta().Partitions {
		return nil, kerr.UnknownTopicOrPartition.Code
	}
	p := ts.partition(k.Partition)
	if p == nil {
		return nil, kerr.NotLeaderForPartition.Code
	}
	_, epoch, code := p.rep.readBound(-1)
	if code != 0 {
		return nil, code
	}
	m.mu.Lock()
	e := m.mu.parts[k]
	if e != nil && (e.part != p || e.epoch != epoch) {
		m.dropLocked(e)
		e = nil
	}
	load := e == nil
	if load {
		e = &shareEntry{key: k, part: p, epoch: epoch, ready: make(chan struct{}), write: make(chan struct{}, 1)}
		m.mu.parts[k] = e
	}
	m.mu.Unlock()
	if load {
		m.load(ctx, e)
	}
	select {
	case <-e.ready:
	case <-ctx.Done():
		return nil, kerr.RequestTimedOut.Code
	}
	if e.err != nil {
		return nil, shareErrCode(e.err)
	}
	return e, 0
}

// loaded returns k's share-partition if it is loaded, without loading it.
func (m *shareManager) loaded(k share.Key) *shareEntry {
	m.mu.Lock()
	e := m.mu.parts[k]
	m.mu.Unlock()
	if e == nil {
		return nil
	}
	select {
	case <-e.ready:
		if e.err != nil {
			return nil
		}
		return e
	default:
		return nil
	}
}

// shareErrCode maps a load or write error to a partition's error code.
func shareErrCode(err error) int16 {
	switch {
	case errors.Is(err, errShareStateFenced), errors.Is(err, errShareDropped):
		return kerr.NotLeaderForPartition.Code
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return kerr.RequestTimedOut.Code
	default:
		return kerr.CoordinatorNotAvailable.Code
	}
}

// load reads e's state, or starts it at the group's share.auto.offset.reset
// position (writing that state at once, so the start does not move on a
// reload), and closes e.ready. A failed load removes e, so the next use
// tries again.
func (m *shareManager) load(ctx context.Context, e *shareEntry) {
	defer close(e.ready)
	gs := m.b.groupSettings(e.key.Group)
	st, found, err := m.b.readShareState(ctx, e.key)
	if err == nil && !found {
		st = share.State{}
		st.StartOffset, err = m.initialOffset(e.part, gs)
		st.LeaderEpoch = e.epoch
		if err == nil {
			err = m.b.writeShareState(ctx, e.key, st)
		}
	}
	if err != nil {
		e.err = fmt.Errorf("load share-partition %s/%x/%d: %w", e.key.Group, e.key.TopicID, e.key.Partition, err)
		m.b.log.Warn("share-partition load failed", "group", e.key.Group, "partition", e.key.Partition, "err", err)
		m.mu.Lock()
		if m.mu.parts[e.key] == e {
			delete(m.mu.parts, e.key)
		}
		m.mu.Unlock()
		return
	}
	cfg := shareConfig(gs)
	p := share.New(cfg, st)
	v := p.Version()
	archiving := p.Stats().Archiving
	e.mu.Lock()
	e.mu.p, e.mu.cfg, e.mu.written = p, cfg, v
	e.mu.Unlock()
	m.metrics.loads.Inc()
	if archiving > 0 {
		// Dead letters a previous leader did not finish.
		m.b.wakeDeadLetters(e.key)
	}
	m.timerOnce.Do(func() {
		ctx := m.b.bgCtx()
		m.b.goroutines.Go("share-timers", func() { m.runTimers(ctx) })
	})
	m.kickTimer()
}

// initialOffset is where a new share-partition starts: share.auto.offset.reset
// "earliest" is the log start; "by_duration:<ISO-8601>" the first batch
// with a timestamp at or after now minus the duration (the batch's base
// offset: a few older records of that batch may be delivered); otherwise
// ("latest") the high watermark, or the last stable offset under
// read_committed.
func (m *shareManager) initialOffset(p *partition, gs groupSettings) (int64, error) {
	hw := p.rep.hw.Load()
	latest := hw
	if gs.ShareIsolationLevel == readCommitted {
		latest = min(p.log.LastStableOffset(), hw)
	}
	reset := gs.ShareAutoOffsetReset
	switch {
	case reset == "earliest":
		return p.log.LogStartOffset(), nil
	case strings.HasPrefix(reset, "by_duration:"):
		d, ok := shareResetDuration(reset)
		if !ok {
			return latest, nil // validated when set; be lenient here
		}
		ts := m.now().Add(-d).UnixMilli()
		off, _, ok, err := p.log.OffsetForTimestamp(ts)
		if err != nil {
			return 0, err
		}
		if !ok {
			return latest, nil
		}
		return min(max(off, p.log.LogStartOffset()), latest), nil
	default:
		return latest, nil
	}
}

// dropLocked unloads e (m.mu held) and wakes the fetches waiting on it.
func (m *shareManager) dropLocked(e *shareEntry) {
	if m.mu.parts[e.key] == e {
		delete(m.mu.parts, e.key)
	}
	e.mu.Lock()
	e.mu.dropped = true
	e.notifyLocked()
	e.mu.Unlock()
}

// drop unloads e, so that its next use reloads it from the store.
func (m *shareManager) drop(e *shareEntry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dropLocked(e)
}

// sharesOnTransition drops the share-partitions of a topic-partition whose
// leadership changed here; they are loaded again, with the new leader
// epoch, on next use by a leader.
func (b *Broker) sharesOnTransition(part *partition, t transition) {
	m := b.shares
	if m == nil || t == noTransition {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.mu.parts {
		if e.part == part {
			m.dropLocked(e)
		}
	}
}

// unloadShareGroup unloads group's share-partitions loaded here (all of
// them when topicIDs is empty), for the share-group offset and deletion
// APIs after they replaced or removed the stored state: the next use reads
// the new state instead of writing the old one back.
func (b *Broker) unloadShareGroup(group string, topicIDs ...[16]byte) {
	m := b.shares
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, e := range m.mu.parts {
		if k.Group == group && (len(topicIDs) == 0 || slices.Contains(topicIDs, k.TopicID)) {
			m.dropLocked(e)
		}
	}
}

// use runs f on e's share-partition under its lock, after applying the
// group's current configs. It returns errShareDropped when e was unloaded.
func (m *shareManager) use(e *shareEntry, f func(p *share.Partition)) error {
	cfg := shareConfig(m.b.groupSettings(e.key.Group))
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mu.dropped || e.mu.p == nil {
		return errShareDropped
	}
	if cfg != e.mu.cfg {
		e.mu.p.Configure(cfg)
		e.mu.cfg = cfg
	}
	f(e.mu.p)
	return nil
}

// fairShareLocked notes that member acquires now and returns how many
// records one acquisition may take: share.partition.max.record.locks
// divided among the members that acquired within the last lock duration.
// Without it the first few members' fetches (500 records each, by
// default) fill the in-flight bound and the others wait, each holding the
// acknowledgements its fetch carried, until records come back. The map
// holds at most the group's members.
func (e *shareEntry) fairShareLocked(member string, now time.Time) int {
	if e.mu.readers == nil {
		e.mu.readers = map[string]time.Time{}
	}
	e.mu.readers[member] = now
	lock := e.mu.cfg.LockDuration
	if lock <= 0 {
		lock = share.DefaultLockDuration
	}
	for m, at := range e.mu.readers {
		if now.Sub(at) > lock {
			delete(e.mu.readers, m)
		}
	}
	return e.shareOfLocked()
}

// shareOfLocked is share.partition.max.record.locks divided among the
// members noted in readers (at least one record).
func (e *shareEntry) shareOfLocked() int {
	bound := e.mu.cfg.MaxRecordLocks
	if bound <= 0 {
		bound = share.DefaultMaxRecordLocks
	}
	return max(1, bound/max(1, len(e.mu.readers)))
}

// fairShare is fairShareLocked's answer for the next acquisition, without
// noting a reader.
func (e *shareEntry) fairShare() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.shareOfLocked()
}

// shareReadFloor is the least a share fetch reads of a log.
const shareReadFloor = 64 << 10

// readEstimate is how many bytes of the log hold about records records,
// twice over, from the last read's bytes per offset (1 KiB before any).
func (e *shareEntry) readEstimate(records int) int {
	per := e.recordBytes.Load()
	if per <= 0 {
		per = 1024
	}
	return int(min(max(2*int64(records)*per, shareReadFloor), 1<<30))
}

// noteRead records a read of n bytes covering offsets offsets.
func (e *shareEntry) noteRead(n int, offsets int64) {
	if offsets > 0 && n > 0 {
		e.recordBytes.Store(max(1, int64(n)/offsets))
	}
}

// version is the version of e's state now.
func (e *shareEntry) versionLocked() uint64 {
	return e.mu.p.Version()
}

// persist makes sure a state of at least version need is durable: it
// waits for the write token, and writes the current state unless a write
// since already covered need. A failed write drops e.
func (m *shareManager) persist(ctx context.Context, e *shareEntry, need uint64) error {
	select {
	case e.write <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-e.write }()
	e.mu.Lock()
	if e.mu.written >= need { // durable, whatever happened since
		e.mu.Unlock()
		return nil
	}
	if e.mu.dropped {
		e.mu.Unlock()
		return errShareDropped
	}
	st, v := e.mu.p.State()
	e.mu.Unlock()
	st.LeaderEpoch = e.epoch
	start := time.Now()
	err := m.b.writeShareState(ctx, e.key, st)
	m.metrics.writeSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		m.b.log.Warn("share state write failed; reloading", "group", e.key.Group, "partition", e.key.Partition, "err", err)
		m.drop(e)
		return err
	}
	e.mu.Lock()
	e.mu.written = max(e.mu.written, v)
	e.mu.Unlock()
	return nil
}

// watch registers c for a token at every later change that may make records
// acquirable (a release, an expiry, an acknowledgement, an unload).
func (e *shareEntry) watch(c chan<- struct{}) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mu.watchers == nil {
		e.mu.watchers = map[chan<- struct{}]struct{}{}
	}
	e.mu.watchers[c] = struct{}{}
}

func (e *shareEntry) unwatch(c chan<- struct{}) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.mu.watchers, c)
}

func (e *shareEntry) notifyLocked() {
	for c := range e.mu.watchers {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

func (e *shareEntry) notify() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.notifyLocked()
}

// kickTimer makes the timer goroutine look at the deadlines again.
func (m *shareManager) kickTimer() {
	select {
	case m.timerKick <- struct{}{}:
	default:
	}
}

// entries lists the loaded share-partitions.
func (m *shareManager) entries() []*shareEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*shareEntry, 0, len(m.mu.parts))
	for _, e := range m.mu.parts {
		select {
		case <-e.ready:
			if e.err == nil {
				out = append(out, e)
			}
		default:
		}
	}
	return out
}

// shareTimerIdle is how long the timer sleeps with no deadline pending.
const shareTimerIdle = time.Minute

// runTimers expires acquisition locks and backoffs at the share-partitions'
// deadlines until ctx ends. A state write here is bounded by
// peerRequestTimeout; one slow write delays the other share-partitions'
// expiries by at most that.
func (m *shareManager) runTimers(ctx context.Context) {
	timer := time.NewTimer(shareTimerIdle)
	defer timer.Stop()
	for {
		now := m.now()
		next := now.Add(shareTimerIdle)
		for _, e := range m.entries() {
			var (
				due                bool
				expired, archiving int
				need               uint64
			)
			err := m.use(e, func(p *share.Partition) {
				d, ok := p.NextDeadline()
				if !ok {
					return
				}
				if d.After(now) {
					next = minTime(next, d)
					return
				}
				due = true
				before := p.Stats()
				expired = p.Expire(now)
				after := p.Stats()
				archiving = after.Archiving - before.Archiving
				m.metrics.limitArchives.Add(float64(max(0, after.Archiving+after.Archived-before.Archiving-before.Archived)))
				need = e.versionLocked()
				if d2, ok := p.NextDeadline(); ok {
					// A deadline Expire did not move would spin: look
					// again a little later.
					next = minTime(next, maxTime(d2, now.Add(10*time.Millisecond)))
				}
			})
			if err != nil || !due {
				continue
			}
			m.metrics.expiries.Add(float64(expired))
			wctx, cancel := context.WithTimeout(ctx, peerRequestTimeout)
			_ = m.persist(wctx, e, need) // a failure drops e: logged there
			cancel()
			if archiving > 0 {
				m.b.wakeDeadLetters(e.key)
			}
			e.notify()
		}
		timer.Reset(max(next.Sub(m.now()), time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-m.timerKick:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// withSharePartition runs f on k's share-partition if it is loaded here,
// under its lock, and reports whether it was (contract for the dead-letter
// writer). A change f makes to the state is persisted before it returns.
func (b *Broker) withSharePartition(k share.Key, f func(p *share.Partition)) bool {
	m := b.shares
	if m == nil {
		return false
	}
	e := m.loaded(k)
	if e == nil {
		return false
	}
	var before, after uint64
	if err := m.use(e, func(p *share.Partition) {
		before = e.versionLocked()
		f(p)
		after = e.versionLocked()
	}); err != nil {
		return false
	}
	if after != before {
		ctx, cancel := context.WithTimeout(b.bgCtx(), peerRequestTimeout)
		defer cancel()
		_ = m.persist(ctx, e, after)
	}
	return true
}

// completeDeadLetters marks offsets of k, whose dead-letter write is
// durable, Archived and advances its dead-letter cursor by seqs, and
// persists that (contract for the dead-letter writer). It fails when k is
// not loaded here any more or the state write failed; the records then
// stay in Archiving in the store, and the cursor makes the repeated write a
// duplicate the DLQ partition drops.
func (b *Broker) completeDeadLetters(k share.Key, offsets []int64, seqs int32) error {
	m := b.shares
	if m == nil {
		return errShareDropped
	}
	e := m.loaded(k)
	if e == nil {
		return errShareDropped
	}
	var need uint64
	if err := m.use(e, func(p *share.Partition) {
		p.DeadLettered(offsets, seqs)
		need = e.versionLocked()
	}); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(b.bgCtx(), peerRequestTimeout)
	defer cancel()
	if err := m.persist(ctx, e, need); err != nil {
		return err
	}
	e.notify() // the window may have moved on
	return nil
}

// shareKeyOf names a share-partition.
func shareKeyOf(group string, topicID [16]byte, partition int32) share.Key {
	return share.Key{Group: group, TopicID: topicID, Partition: partition}
}
