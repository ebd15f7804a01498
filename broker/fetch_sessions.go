package broker

// Fetch sessions (KIP-227), Kafka's FetchSessionCache and FetchManager.
//
// A full fetch with session epoch 0 asks for a session: the broker caches
// the partitions and their fetch parameters under a new random session id
// and answers with it. The client's next requests are incremental: they
// carry the session id and the next epoch, name only the partitions whose
// parameters changed (and those to forget), and get back only the
// partitions with something new — records, a moved high watermark or log
// start offset, or an error. With thousands of partitions that saves
// encoding and sending them all every round, for consumers and followers.
//
// Epoch -1 is a sessionless full fetch; epochs 0 and -1 close the session
// they name. An unknown session id answers FETCH_SESSION_ID_NOT_FOUND, a
// wrong epoch INVALID_FETCH_SESSION_EPOCH, a session used with and without
// topic ids (v13+ against v7-12) FETCH_SESSION_TOPIC_ID_ERROR.
//
// The cache holds max.incremental.fetch.session.cache.slots sessions.
// When it is full a new session may evict, as in Kafka: first the least
// recently used session if it has been idle longer than the eviction age;
// otherwise the least valuable session older than that age (ordered by
// privileged, then partition count, then id), if it is worth less than the
// newcomer; a follower's (privileged) session may also evict any
// consumer's session, however young. When nothing can go, the full fetch
// is answered without a session (id 0) and the client keeps sending full
// requests.
//
// Lock order: fetchSessionCache.mu, then fetchSession.mu. Neither is held
// across I/O: the partitions are read with no session lock held, and the
// cached answer is updated afterwards, only if the session epoch did not
// move meanwhile (a duplicate request in between gets
// INVALID_FETCH_SESSION_EPOCH, as in Kafka).

import (
	"container/list"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// sessionEvictionAge is how long a session must be idle before any new
// session may evict it, and how old it must be before a larger one may:
// Kafka's MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS.
const sessionEvictionAge = 120 * time.Second

// maxSessionPartitions bounds the partitions cached across all sessions
// (about 300 bytes each, so some 300 MiB at most). Kafka bounds only the
// number of sessions; but a session outlives its request, so without this
// a few full fetches naming millions of made-up partitions would keep
// their memory for good. A full fetch that does not fit gets no session
// (id 0, a legal answer), and an incremental fetch that would grow its
// session past the bound closes it and is answered without one, which
// tells the client to go back to full fetches, as for a session emptied by
// forgotten topics.
const maxSessionPartitions = 1 << 20

// fetchSessionCache is the broker's fetch sessions.
type fetchSessionCache struct {
	slots      int
	evictAfter time.Duration
	// snapshots recycles the per-request copies of sessions' partitions
	// (*[]fetchPart), so a steady incremental consumer does not allocate
	// its session's size every round.
	snapshots sync.Pool
	// partitions is the total cached across sessions, written under mu,
	// read without it to bound a session's growth; partitionBudget bounds
	// it (maxSessionPartitions).
	partitions      atomic.Int64
	partitionBudget int64

	mu struct {
		sync.Mutex
		rng       *rand.Rand
		sessions  map[int32]*fetchSession
		evictions uint64
	}
}

// newFetchSessionCache makes a cache of slots sessions; rng picks session
// ids (injected so tests are deterministic).
func newFetchSessionCache(slots int, evictAfter time.Duration, rng *rand.Rand) *fetchSessionCache {
	c := &fetchSessionCache{slots: slots, evictAfter: evictAfter, partitionBudget: maxSessionPartitions}
	c.mu.rng = rng
	c.mu.sessions = map[int32]*fetchSession{}
	return c
}

// newBrokerFetchSessions is the broker's cache, sized by
// max.incremental.fetch.session.cache.slots (read once: it is a read-only
// setting in Kafka too).
func newBrokerFetchSessions(st *settings, node int32) *fetchSessionCache {
	slots := st.brokerInt64("max.incremental.fetch.session.cache.slots", 1000)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(node)))
	return newFetchSessionCache(int(slots), sessionEvictionAge, rng)
}

// fetchSession is one session: its partitions in response order, and the
// epoch the next incremental request must carry.
type fetchSession struct {
	id         int32
	privileged bool // a follower's
	topicIDs   bool // created by v13+: partitions keyed by topic id
	created    time.Time

	// Under the cache's mu: the cache's view, for eviction.
	lastUsed time.Time
	size     int // partitions when last touched; -1 once removed

	mu struct {
		sync.Mutex
		epoch int32
		order *list.List // of *sessionPart; answered partitions move to the back
		parts map[fetchKey]*sessionPart
	}
}

// sessionPart is one cached partition: the fetch parameters last sent for
// it and the answer last sent, which decides whether the next incremental
// response must include it.
type sessionPart struct {
	key      fetchKey
	topic    string
	topicID  [16]byte
	rp       kmsg.FetchRequestTopicPartition
	hw       int64 // -1: include it next time whatever happens
	logStart int64
	elem     *list.Element
}

// nextSessionEpoch is the epoch after e (Kafka's FetchMetadata.nextEpoch):
// it wraps to 1, never to 0 (a new session) or -1 (no session).
func nextSessionEpoch(e int32) int32 {
	switch {
	case e < 0:
		return -1
	case e == math.MaxInt32:
		return 1
	}
	return e + 1
}

// fetchContext is how one Fetch request relates to the session cache
// (Kafka's FetchContext): the partitions to read, and what to do with the
// answer.
type fetchContext struct {
	parts []fetchPart
	// errCode is a session error: the response carries it and nothing else.
	errCode int16
	// create: a full fetch with epoch 0; the answer creates a session.
	create     bool
	privileged bool
	topicIDs   bool
	// sess is the session of an incremental fetch, epoch the epoch the
	// session must still have when the answer is recorded.
	sess  *fetchSession
	epoch int32
}

// open resolves req against the cache at now: a session error, a
// sessionless or full fetch over req's distinct partitions, or an
// incremental fetch over the session's partitions after applying req's
// changes and forgotten topics (Kafka's FetchManager.newContext).
func (c *fetchSessionCache) open(req *kmsg.FetchRequest, privileged bool, now time.Time) fetchContext {
	topicIDs := req.Version >= 13
	if req.Version < 7 {
		// No session fields on the wire before v7.
		return fetchContext{parts: distinctParts(req)}
	}
	if req.SessionEpoch == 0 || req.SessionEpoch == -1 {
		if req.SessionID != 0 {
			c.remove(req.SessionID)
		}
		return fetchContext{parts: distinctParts(req), create: req.SessionEpoch == 0 && c.slots > 0,
			privileged: privileged, topicIDs: topicIDs}
	}
	c.mu.Lock()
	s := c.mu.sessions[req.SessionID]
	c.mu.Unlock()
	if s == nil {
		return fetchContext{errCode: kerr.FetchSessionIDNotFound.Code}
	}
	s.mu.Lock()
	switch {
	case s.mu.epoch != req.SessionEpoch:
		s.mu.Unlock()
		return fetchContext{errCode: kerr.InvalidFetchSessionEpoch.Code}
	case s.topicIDs != topicIDs:
		s.mu.Unlock()
		return fetchContext{errCode: kerr.FetchSessionTopicIDError.Code}
	}
	before := s.mu.order.Len()
	s.updateLocked(req)
	size := s.mu.order.Len()
	if size == 0 || (size > before && c.partitions.Load()+int64(size-before) > c.partitionBudget) {
		s.mu.Unlock()
		c.removeSession(s)
		return fetchContext{parts: distinctParts(req)}
	}
	s.mu.epoch = nextSessionEpoch(s.mu.epoch)
	fc := fetchContext{sess: s, epoch: s.mu.epoch, parts: c.snapshot(size)}
	for e := s.mu.order.Front(); e != nil; e = e.Next() {
		sp := e.Value.(*sessionPart)
		fc.parts = append(fc.parts, fetchPart{topic: sp.topic, topicID: sp.topicID, rp: sp.rp,
			cached: sp, cachedHW: sp.hw, cachedLogStart: sp.logStart})
	}
	s.mu.Unlock()
	c.touch(s, size, now)
	return fc
}

// snapshot is an empty slice with room for n parts, recycled if possible.
func (c *fetchSessionCache) snapshot(n int) []fetchPart {
	if p, ok := c.snapshots.Get().(*[]fetchPart); ok && cap(*p) >= n {
		return (*p)[:0]
	}
	return make([]fetchPart, 0, n)
}

// release recycles an incremental fetch's copy of its session once the
// request is done with it.
func (c *fetchSessionCache) release(fc *fetchContext) {
	if fc.sess == nil || cap(fc.parts) > 1<<16 {
		return
	}
	clear(fc.parts) // drop the pointers it holds
	p := fc.parts[:0]
	fc.parts = nil
	c.snapshots.Put(&p)
}

// updateLocked applies an incremental request: new partitions are added
// at the back (their first answer always includes them), known ones take
// the new parameters, then forgotten ones are dropped (Kafka's
// FetchSession.update).
func (s *fetchSession) updateLocked(req *kmsg.FetchRequest) {
	for _, fp := range distinctParts(req) {
		k := keyOf(s.topicIDs, fp.topic, fp.topicID, fp.rp.Partition)
		if sp := s.mu.parts[k]; sp != nil {
			sp.rp = fp.rp
			continue
		}
		sp := &sessionPart{key: k, topic: fp.topic, topicID: fp.topicID, rp: fp.rp, hw: -1, logStart: -1}
		sp.elem = s.mu.order.PushBack(sp)
		s.mu.parts[k] = sp
	}
	for i := range req.ForgottenTopics {
		ft := &req.ForgottenTopics[i]
		for _, p := range ft.Partitions {
			k := keyOf(s.topicIDs, ft.Topic, ft.TopicID, p)
			if sp := s.mu.parts[k]; sp != nil {
				s.mu.order.Remove(sp.elem)
				delete(s.mu.parts, k)
			}
		}
	}
}

// keyOf is the session key of a partition: by topic id from v13, by name
// before.
func keyOf(topicIDs bool, topic string, id [16]byte, partition int32) fetchKey {
	if topicIDs {
		return fetchKey{id: id, partition: partition}
	}
	return fetchKey{topic: topic, partition: partition}
}

// include reports whether an incremental response must carry the partition
// answered as sp (with records, if any were read: a span sent from the
// segment file leaves sp.RecordBatches empty), given what the session last sent for it (Kafka's
// CachedPartition.maybeUpdateResponseData): new records, a changed high
// watermark or log start offset, a diverging epoch or an error.
func (fp *fetchPart) include(sp *kmsg.FetchResponseTopicPartition, records bool) bool {
	return fp.cached == nil || records || sp.ErrorCode != 0 ||
		sp.HighWatermark != fp.cachedHW || sp.LogStartOffset != fp.cachedLogStart ||
		sp.DivergingEpoch.Epoch >= 0 || sp.PreferredReadReplica >= 0
}

// finish records the answer of a fetch opened with fc in the cache at now
// and sets the response's session id; for an incremental fetch whose
// session moved on meanwhile it reports false and the response must be
// replaced by INVALID_FETCH_SESSION_EPOCH.
func (c *fetchSessionCache) finish(fc *fetchContext, resp *kmsg.FetchResponse, now time.Time) bool {
	switch {
	case fc.create:
		resp.SessionID = c.create(fc, now)
	case fc.sess != nil:
		s := fc.sess
		s.mu.Lock()
		defer s.mu.Unlock()
		resp.SessionID = s.id
		if s.mu.epoch != fc.epoch {
			return false
		}
		for i := range fc.parts {
			fp := &fc.parts[i]
			if !fp.answered {
				continue
			}
			sp := fp.cached
			sp.hw, sp.logStart = fp.answerHW, fp.answerLogStart
			s.mu.order.MoveToBack(sp.elem) // rotate, so every partition gets its turn at the byte limits
		}
	}
	return true
}

// create makes a session of a full fetch's partitions as answered, if the
// cache has room or can evict for it; it returns the id, or 0 for none
// (Kafka's maybeCreateSession).
func (c *fetchSessionCache) create(fc *fetchContext, now time.Time) int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	size := len(fc.parts)
	if c.partitions.Load()+int64(size) > c.partitionBudget {
		return 0
	}
	if len(c.mu.sessions) >= c.slots && !c.evictLocked(fc.privileged, size, now) {
		return 0
	}
	s := &fetchSession{privileged: fc.privileged, topicIDs: fc.topicIDs, created: now, lastUsed: now, size: size}
	for s.id == 0 || c.mu.sessions[s.id] != nil {
		s.id = c.mu.rng.Int32N(math.MaxInt32-1) + 1
	}
	s.mu.epoch = nextSessionEpoch(0)
	s.mu.order = list.New()
	s.mu.parts = make(map[fetchKey]*sessionPart, size)
	for i := range fc.parts {
		fp := &fc.parts[i]
		sp := &sessionPart{key: keyOf(fc.topicIDs, fp.topic, fp.topicID, fp.rp.Partition), topic: fp.topic, topicID: fp.topicID,
			rp: fp.rp, hw: fp.answerHW, logStart: fp.answerLogStart}
		sp.elem = s.mu.order.PushBack(sp)
		s.mu.parts[sp.key] = sp
	}
	c.mu.sessions[s.id] = s
	c.partitions.Add(int64(size))
	return s.id
}

// evictLocked makes room for a new session of size partitions, as Kafka's
// tryEvict does; it reports whether a session went.
func (c *fetchSessionCache) evictLocked(privileged bool, size int, now time.Time) bool {
	var lru, cheapest *fetchSession
	for _, s := range c.mu.sessions {
		if lru == nil || s.lastUsed.Before(lru.lastUsed) || (s.lastUsed.Equal(lru.lastUsed) && s.id < lru.id) {
			lru = s
		}
		old := now.Sub(s.created) > c.evictAfter
		if !old && !(privileged && !s.privileged) {
			continue // too young to be evicted by this newcomer
		}
		if cheapest == nil || s.worthLess(cheapest) {
			cheapest = s
		}
	}
	victim := cheapest
	switch {
	case lru == nil:
		return false
	case now.Sub(lru.lastUsed) > c.evictAfter:
		victim = lru // stale
	case cheapest == nil:
		return false
	case privileged == cheapest.privileged && size <= cheapest.size,
		!privileged && cheapest.privileged:
		// The newcomer is worth no more (Kafka's EvictableKey order:
		// privileged, then size, then id, the newcomer's id counting as 0).
		return false
	}
	c.removeLocked(victim)
	c.mu.evictions++
	return true
}

// worthLess orders sessions for eviction: unprivileged before privileged,
// then fewer partitions, then lower id.
func (s *fetchSession) worthLess(o *fetchSession) bool {
	if s.privileged != o.privileged {
		return !s.privileged
	}
	if s.size != o.size {
		return s.size < o.size
	}
	return s.id < o.id
}

// touch records a session's use at now with its new size.
func (c *fetchSessionCache) touch(s *fetchSession, size int, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.size < 0 {
		return // removed meanwhile
	}
	c.partitions.Add(int64(size - s.size))
	s.size, s.lastUsed = size, now
}

// remove drops session id if it exists.
func (c *fetchSessionCache) remove(id int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.mu.sessions[id]; s != nil {
		c.removeLocked(s)
	}
}

func (c *fetchSessionCache) removeSession(s *fetchSession) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.sessions[s.id] == s {
		c.removeLocked(s)
	}
}

func (c *fetchSessionCache) removeLocked(s *fetchSession) {
	delete(c.mu.sessions, s.id)
	c.partitions.Add(-int64(s.size))
	s.size = -1
}

// stats reports the sessions, their cached partitions and the evictions so
// far, for the metrics.
func (c *fetchSessionCache) stats() (sessions, partitions int, evictions uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.mu.sessions), int(c.partitions.Load()), c.mu.evictions
}

// collectors are the cache's metrics, Kafka's NumIncrementalFetchSessions,
// NumIncrementalFetchPartitionsCached and
// IncrementalFetchSessionEvictionsPerSec.
func (c *fetchSessionCache) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sluice_fetch_sessions",
			Help: "Incremental fetch sessions cached (KIP-227)."},
			func() float64 { n, _, _ := c.stats(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sluice_fetch_session_partitions",
			Help: "Partitions cached across all incremental fetch sessions."},
			func() float64 { _, n, _ := c.stats(); return float64(n) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sluice_fetch_session_evictions_total",
			Help: "Fetch sessions evicted to make room for new ones."},
			func() float64 { _, _, n := c.stats(); return float64(n) }),
	}
}
