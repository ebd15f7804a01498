package group

import (
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupKind says which protocol a group speaks: the classic JoinGroup /
// SyncGroup protocol (also used by "simple" groups that only store offsets)
// or KIP-848's ConsumerGroupHeartbeat protocol, or a KIP-932 share group
// (ShareGroupHeartbeat). An empty classic or consumer group may switch
// between those two kinds; a group with members may not, and a share group
// never changes kind (Kafka neither), only DeleteGroups ends it.
type groupKind int8

const (
	kindClassic groupKind = iota
	kindConsumer
	kindShare
)

// String returns the name ListGroups v5 uses for the kind.
func (k groupKind) String() string {
	switch k {
	case kindConsumer:
		return "consumer"
	case kindShare:
		return "share"
	}
	return "classic"
}

// classicState is the state of a classic group, named as Kafka's
// GroupState names it on the wire (DescribeGroups, ListGroups).
type classicState int8

const (
	stateEmpty classicState = iota
	statePreparingRebalance
	stateCompletingRebalance
	stateStable
	stateDead
)

func (s classicState) String() string {
	switch s {
	case stateEmpty:
		return "Empty"
	case statePreparingRebalance:
		return "PreparingRebalance"
	case stateCompletingRebalance:
		return "CompletingRebalance"
	case stateStable:
		return "Stable"
	}
	return "Dead"
}

type topicPartition struct {
	topic     string
	partition int32
}

// committedOffset is one committed offset as OffsetCommitValue stores it.
type committedOffset struct {
	offset      int64
	leaderEpoch int32
	metadata    string
	commitTime  int64 // unix ms
	expireTime  int64 // unix ms from a v1-v4 explicit retention, else -1
	// pos orders the records that wrote offsets to one __consumer_offsets
	// partition: its index in the log on load, and after that one more
	// than the previous offset write applied (writes to a partition are
	// serialized). A transaction's COMMIT marker compares positions, as
	// Kafka compares record offsets, so a later plain commit is not
	// overwritten by an earlier transactional one. Never written to the
	// log.
	pos uint64
}

// group is one consumer group of either kind plus its committed offsets.
// Every field is guarded by Coordinator.mu.
type group struct {
	id        string
	partition int32
	kind      groupKind

	offsets  map[topicPartition]committedOffset
	inflight map[topicPartition]int // commits being written; RequireStable reports them unstable
	txn      txnOffsets             // TxnOffsetCommit offsets waiting for their transaction's marker

	// dirty means the group's metadata record(s) differ from what was last
	// written; flush writes them. persisted* say whether a live (non
	// tombstone) metadata record of that kind exists in the log, so a
	// kind switch or a deletion knows what to tombstone.
	dirty             bool
	persistedClassic  bool
	persistedConsumer bool
	persistedShare    bool
	memberTombstones  []string // KIP-848 member records to erase after a switch to classic

	timer    Timer
	timerAt  time.Time
	timerSeq uint64

	// Classic protocol state (kindClassic).
	state        classicState
	stateSince   time.Time // Kafka's currentStateTimestamp
	protocolType string
	protocol     string
	generation   int32
	leader       string
	members      map[string]*member
	pending      map[string]time.Time // KIP-394 member ids handed out, with their expiry
	static       map[string]string    // group.instance.id -> member id (KIP-345)
	reason       RebalanceReason      // why the current rebalance started
	joinDeadline time.Time            // PreparingRebalance: when the join phase is forced to end
	// Initial rebalance delay (group.initial.rebalance.delay.ms): the
	// first rebalance of an empty group waits until delayUntil, extended
	// while new members keep arriving, up to the rebalance timeout.
	delayUntil     time.Time
	delayRemaining time.Duration
	newMemberAdded bool
	// After the join phase every member must SyncGroup by syncDeadline;
	// pendingSync holds those that have not.
	syncDeadline   time.Time
	pendingSync    map[string]struct{}
	syncPersisting bool // the leader's assignment is being written

	cg *consumerGroup // KIP-848 state (kindConsumer)
	sg *shareGroup    // KIP-932 state (kindShare)
}

// member is a classic group member.
type member struct {
	id               string
	instanceID       *string
	clientID         string
	clientHost       string
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	protocolType     string
	protocols        []kmsg.JoinGroupRequestProtocol // owned copies, client preference order
	assignment       []byte
	seq              uint64    // join order: leader choice and response order
	deadline         time.Time // session expiry; not enforced while join or sync is set
	join             *joinWaiter
	sync             *syncWaiter
}

// joinWaiter is a JoinGroup request parked until the join phase ends.
type joinWaiter struct {
	req *kmsg.JoinGroupRequest
	ch  chan *kmsg.JoinGroupResponse // buffered: delivery never blocks
}

// syncWaiter is a SyncGroup request parked until the leader's assignment is
// durable.
type syncWaiter struct {
	req *kmsg.SyncGroupRequest
	ch  chan *kmsg.SyncGroupResponse
}

func newGroup(id string, partition int32) *group {
	return &group{
		id:        id,
		partition: partition,
		offsets:   make(map[topicPartition]committedOffset),
		inflight:  make(map[topicPartition]int),
		members:   make(map[string]*member),
		pending:   make(map[string]time.Time),
		static:    make(map[string]string),
	}
}

// ordered returns the classic members in join order.
func (g *group) ordered() []*member {
	ms := make([]*member, 0, len(g.members))
	for _, m := range g.members {
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b *member) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	return ms
}

// hasMembers reports whether any member (of either kind) or pending member
// exists: such a group is not empty and cannot change kind or be deleted.
func (g *group) hasMembers() bool {
	switch g.kind {
	case kindConsumer:
		return g.cg != nil && len(g.cg.members) > 0
	case kindShare:
		return g.sg != nil && len(g.sg.members) > 0
	}
	return len(g.members) > 0 || len(g.pending) > 0
}

// stateName is the group state as DescribeGroups/ListGroups spell it.
func (g *group) stateName() string {
	switch g.kind {
	case kindConsumer:
		return g.cg.state().String()
	case kindShare:
		return g.sg.state()
	}
	return g.state.String()
}

// wireProtocolType is the protocol type ListGroups reports.
func (g *group) wireProtocolType() string {
	if g.kind != kindClassic {
		return g.kind.String()
	}
	return g.protocolType
}

func (m *member) metadataFor(protocol string) []byte {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

func (m *member) awaiting() bool { return m.join != nil || m.sync != nil }

// copyProtocols copies the protocols of a request: request buffers may be
// reused by the broker once the handler returns.
func copyProtocols(ps []kmsg.JoinGroupRequestProtocol) []kmsg.JoinGroupRequestProtocol {
	out := make([]kmsg.JoinGroupRequestProtocol, len(ps))
	for i, p := range ps {
		out[i] = kmsg.JoinGroupRequestProtocol{Name: p.Name, Metadata: slices.Clone(p.Metadata)}
	}
	return out
}

func sameProtocols(a, b []kmsg.JoinGroupRequestProtocol) bool {
	return slices.EqualFunc(a, b, func(x, y kmsg.JoinGroupRequestProtocol) bool {
		return x.Name == y.Name && string(x.Metadata) == string(y.Metadata)
	})
}

func cloneStringPtr(s *string) *string {
	if s == nil {
		return nil
	}
	v := *s
	return &v
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func millis(d time.Duration) int32 { return int32(d / time.Millisecond) }

// sortedOffsets returns the partitions of m ordered by topic, partition.
func sortedOffsets[V any](m map[topicPartition]V) []topicPartition {
	out := make([]topicPartition, 0, len(m))
	for tp := range m {
		out = append(out, tp)
	}
	slices.SortFunc(out, func(a, b topicPartition) int {
		if a.topic != b.topic {
			if a.topic < b.topic {
				return -1
			}
			return 1
		}
		return int(a.partition) - int(b.partition)
	})
	return out
}
