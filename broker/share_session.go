package broker

// Share sessions (KIP-932's share session cache): what a member fetches
// from this broker, keyed by group and member id. ShareFetch epoch 0 opens
// one (replacing the member's previous session here), naming its
// partitions; later requests carry the next epoch, add partitions with
// Topics and remove them with ForgottenTopicsData; -1 closes it, releasing
// what the member holds on its partitions. The cache holds at most
// group.share.max.share.sessions sessions (SHARE_SESSION_LIMIT_REACHED);
// each session at most maxShareSessionParts partitions (INVALID_REQUEST
// past that, as a request's lists are hostile). A connection closing
// releases the records of the sessions it last used.

import (
	"context"
	"math"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/coordinator/share"
)

// maxShareSessionParts bounds the partitions of one share session.
const maxShareSessionParts = 4096

// shareTP is a topic-partition as share requests name it.
type shareTP struct {
	topicID   [16]byte
	partition int32
}

type shareSessionKey struct{ group, member string }

// shareSession is one member's session.
type shareSession struct {
	conn  *conn
	epoch int32 // the epoch the next request must carry
	// parts maps the session's partitions to whether the next response
	// must name it (it was just added), as Kafka's requiresUpdate.
	parts map[shareTP]bool
}

// shareSessions is the share session cache.
type shareSessions struct {
	max int
	mu  struct {
		sync.Mutex
		m map[shareSessionKey]*shareSession
	}
}

func newShareSessions(max int) *shareSessions {
	s := &shareSessions{max: max}
	s.mu.m = map[shareSessionKey]*shareSession{}
	return s
}

// shareSessionPart is a session's partition for one request: whether the
// response must name it.
type shareSessionPart struct {
	tp  shareTP
	new bool
}

func nextShareEpoch(e int32) int32 {
	if e == math.MaxInt32 {
		return 1
	}
	return e + 1
}

// open replaces k's session with a new one on c over topics.
func (s *shareSessions) open(k shareSessionKey, c *conn, topics []kmsg.ShareFetchRequestTopic) ([]shareSessionPart, int16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.mu.m, k)
	if len(s.mu.m) >= s.max {
		return nil, kerr.ShareSessionLimitReached.Code
	}
	ss := &shareSession{conn: c, epoch: 1, parts: map[shareTP]bool{}}
	if !ss.add(topics) {
		return nil, kerr.InvalidRequest.Code
	}
	s.mu.m[k] = ss
	return ss.take(), 0
}

// add adds topics' partitions; false past maxShareSessionParts.
func (ss *shareSession) add(topics []kmsg.ShareFetchRequestTopic) bool {
	for i := range topics {
		for j := range topics[i].Partitions {
			tp := shareTP{topics[i].TopicID, topics[i].Partitions[j].Partition}
			if _, ok := ss.parts[tp]; ok {
				continue
			}
			if len(ss.parts) >= maxShareSessionParts {
				return false
			}
			ss.parts[tp] = true
		}
	}
	return true
}

// take lists the partitions for this request and clears their new flags.
func (ss *shareSession) take() []shareSessionPart {
	out := make([]shareSessionPart, 0, len(ss.parts))
	for tp, n := range ss.parts {
		out = append(out, shareSessionPart{tp, n})
		if n {
			ss.parts[tp] = false
		}
	}
	return out
}

// update moves k's session to its next epoch, after checking epoch, with
// topics added and forgotten removed (nil both for ShareAcknowledge).
func (s *shareSessions) update(k shareSessionKey, c *conn, epoch int32, topics []kmsg.ShareFetchRequestTopic, forgotten []kmsg.ShareFetchRequestForgottenTopicsData) ([]shareSessionPart, int16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.mu.m[k]
	if ss == nil {
		return nil, kerr.ShareSessionNotFound.Code
	}
	if epoch != ss.epoch {
		return nil, kerr.InvalidShareSessionEpoch.Code
	}
	for i := range forgotten {
		for _, p := range forgotten[i].Partitions {
			delete(ss.parts, shareTP{forgotten[i].TopicID, p})
		}
	}
	if !ss.add(topics) {
		return nil, kerr.InvalidRequest.Code
	}
	ss.epoch = nextShareEpoch(ss.epoch)
	ss.conn = c
	return ss.take(), 0
}

// exists reports whether k has a session (for a close, checked before its
// acknowledgements are applied).
func (s *shareSessions) exists(k shareSessionKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.m[k] != nil
}

// close removes k's session and returns its partitions.
func (s *shareSessions) close(k shareSessionKey) ([]shareTP, int16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.mu.m[k]
	if ss == nil {
		return nil, kerr.ShareSessionNotFound.Code
	}
	delete(s.mu.m, k)
	return ss.tps(), 0
}

func (ss *shareSession) tps() []shareTP {
	out := make([]shareTP, 0, len(ss.parts))
	for tp := range ss.parts {
		out = append(out, tp)
	}
	return out
}

// closedSession is a session removed with its connection.
type closedSession struct {
	key   shareSessionKey
	parts []shareTP
}

// closeConn removes the sessions last used on c.
func (s *shareSessions) closeConn(c *conn) []closedSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []closedSession
	for k, ss := range s.mu.m {
		if ss.conn == c {
			out = append(out, closedSession{k, ss.tps()})
			delete(s.mu.m, k)
		}
	}
	return out
}

// inUse reports whether a session of group other than member's includes
// tp. It walks every session (at most group.share.max.share.sessions),
// which only session ends pay.
func (s *shareSessions) inUse(group, member string, tp shareTP) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, ss := range s.mu.m {
		if k.group == group && k.member != member {
			if _, ok := ss.parts[tp]; ok {
				return true
			}
		}
	}
	return false
}

// len is the number of sessions.
func (s *shareSessions) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.mu.m)
}

// releaseShareSessions is called when a connection closes: the records
// its share sessions hold are released, and the sessions removed.
func (b *Broker) releaseShareSessions(c *conn) {
	m := b.shares
	if m == nil {
		return
	}
	closed := m.sessions.closeConn(c)
	if len(closed) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(b.bgCtx(), peerRequestTimeout)
	defer cancel()
	for _, cs := range closed {
		m.releaseMember(ctx, cs.key.group, cs.key.member, cs.parts)
	}
}

// releaseMember returns what member holds on parts (those loaded here) to
// Available, persists that, and wakes the fetches waiting on them.
func (m *shareManager) releaseMember(ctx context.Context, group, member string, parts []shareTP) {
	for _, tp := range parts {
		e := m.loaded(share.Key{Group: group, TopicID: tp.topicID, Partition: tp.partition})
		if e == nil {
			continue
		}
		var (
			need      uint64
			archiving int
		)
		if m.use(e, func(p *share.Partition) {
			before := p.Stats()
			p.Release(m.now(), member)
			after := p.Stats()
			archiving = after.Archiving - before.Archiving
			m.metrics.limitArchives.Add(float64(max(0, after.Archiving+after.Archived-before.Archiving-before.Archived)))
			need = e.versionLocked()
		}) != nil {
			continue
		}
		if m.persist(ctx, e, need) == nil && archiving > 0 { // a failure drops e: logged there
			m.b.wakeDeadLetters(e.key)
		}
		e.notify()
		m.unloadIdle(e, member, tp)
	}
}

// unloadIdle unloads e once no session of its group but member's reads
// it and it has no dead letters waiting: the next session loads it from
// the store again. A share group's state can change behind the partition
// leader's back only while no member reads it (AlterShareGroupOffsets and
// DeleteShareGroupOffsets need an empty group; DeleteGroups deletes the
// state), so this is what keeps a leader from writing stale state back, on
// every broker, without a message between them.
func (m *shareManager) unloadIdle(e *shareEntry, member string, tp shareTP) {
	if m.sessions.inUse(e.key.Group, member, tp) {
		return
	}
	busy := false
	if m.use(e, func(p *share.Partition) { busy = p.Stats().Archiving > 0 }) != nil || busy {
		return
	}
	m.drop(e)
}
