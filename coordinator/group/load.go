package group

// Loading and unloading __consumer_offsets partitions: replaying their
// records into groups when this broker becomes the partition's leader, and
// dropping those groups when leadership moves away.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// LoadToken names one BeginLoad of a partition. A load that finishes after
// leadership moved on (a later Unload or BeginLoad of the same partition)
// carries a stale token and is discarded instead of serving groups this
// broker no longer owns.
type LoadToken struct {
	partition int32
	gen       uint64
}

// Partition is the __consumer_offsets partition the token loads.
func (t LoadToken) Partition() int32 { return t.partition }

// RecordSource yields one __consumer_offsets partition's records in log
// order and returns the error that stopped it early, if any; it stops when
// yield returns false. The coordinator folds each record into group state
// as it arrives, so a load holds the partition's live state (its groups and
// latest offsets), never its whole log.
type RecordSource func(yield func(Record) bool) error

// ErrLoadSuperseded is returned by LoadFrom when the partition was unloaded
// or loaded again while this load ran: its result is discarded.
var ErrLoadSuperseded = errors.New("coordinator: partition load superseded")

// BeginLoad marks partition as loading: until LoadFrom (or Unload) requests
// for its groups get COORDINATOR_LOAD_IN_PROGRESS, which clients retry,
// instead of NOT_COORDINATOR. Call it when leadership arrives, before
// reading the partition starts, and pass the token to LoadFrom.
func (c *Coordinator) BeginLoad(partition int32) LoadToken {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed || !c.validPartition(partition) {
		return LoadToken{partition: partition}
	}
	c.dropPartitionLocked(partition, kerr.NotCoordinator.Code)
	c.mu.parts[partition] = partitionLoading
	c.mu.loads[partition]++
	return LoadToken{partition: partition, gen: c.mu.loads[partition]}
}

// Loading reports whether token's load is still wanted: the partition is
// loading and no later BeginLoad or Unload has replaced it. A caller
// retrying a failed load checks it before reading the log again.
func (c *Coordinator) Loading(token LoadToken) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.loadingLocked(token)
}

func (c *Coordinator) loadingLocked(token LoadToken) bool {
	p := token.partition
	return !c.mu.closed && c.validPartition(p) && token.gen != 0 &&
		c.mu.parts[p] == partitionLoading && c.mu.loads[p] == token.gen
}

// LoadFrom replays src into the groups of token's partition, in log order
// (later records win, nil values delete), and starts serving them. Groups
// with members come back Stable (classic) or with their epochs and
// assignments (KIP-848); every member gets a fresh session and must
// heartbeat before it expires. Records that do not parse are skipped and
// logged. If src fails, nothing it yielded is served: the partition stays
// loading, so clients keep retrying, and the error is returned for the
// caller to retry the load. It returns ErrLoadSuperseded when the partition
// was unloaded or loaded again meanwhile.
func (c *Coordinator) LoadFrom(token LoadToken, src RecordSource) error {
	p := token.partition
	if !c.validPartition(p) {
		return fmt.Errorf("load __consumer_offsets partition %d: outside offsets.topic.num.partitions", p)
	}
	replayed, n, skipped, err := c.replay(p, src)
	if err != nil {
		return fmt.Errorf("load __consumer_offsets partition %d after %d records: %w", p, n, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.loadingLocked(token) {
		return ErrLoadSuperseded
	}
	now := c.clock.Now()
	for id, rg := range replayed {
		g := c.buildGroupLocked(id, p, rg, now)
		if g == nil {
			continue
		}
		c.mu.groups[id] = g
		for _, pid := range g.txn.producers() {
			c.trackTxnLocked(g, pid)
		}
		c.rearmLocked(g)
	}
	c.finishLoadTxnsLocked(p, n)
	c.mu.parts[p] = partitionLoaded
	c.log.Info("loaded __consumer_offsets partition", "partition", p, "records", n,
		"groups", len(replayed), "skipped", skipped)
	return nil
}

// Load replays records already in memory: BeginLoad and LoadFrom in one
// step, for callers that hold the partition's records (tests, tools).
// Loading a partition that is already loaded replaces its groups.
func (c *Coordinator) Load(partition int32, records []Record) {
	if !c.validPartition(partition) {
		c.log.Warn("load of a partition outside offsets.topic.num.partitions", "partition", partition)
		return
	}
	err := c.LoadFrom(c.BeginLoad(partition), func(yield func(Record) bool) error {
		for _, r := range records {
			if !yield(r) {
				break
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrLoadSuperseded) {
		c.log.Warn("load failed", "partition", partition, "err", err)
	}
}

// Unload stops serving partition: its groups are dropped from memory (their
// state stays in the log), requests parked in JoinGroup or SyncGroup get
// NOT_COORDINATOR, and later requests for them too.
func (c *Coordinator) Unload(partition int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed || !c.validPartition(partition) {
		return
	}
	c.dropPartitionLocked(partition, kerr.NotCoordinator.Code)
	c.mu.parts[partition] = partitionUnloaded
}

func (c *Coordinator) dropPartitionLocked(partition int32, code int16) {
	c.mu.openTxns[partition] = nil
	c.mu.loadMarkers[partition] = nil
	for id, g := range c.mu.groups {
		if g.partition == partition {
			c.dropGroupLocked(g, code)
			delete(c.mu.groups, id)
		}
	}
}

// dropGroupLocked stops g's timer and answers its parked requests with code.
// The caller removes g from the group map.
func (c *Coordinator) dropGroupLocked(g *group, code int16) {
	stopTimerLocked(g)
	for _, m := range g.members {
		if m.join != nil {
			c.deliverJoin(m, joinError(m.join.req, m.id, code))
		}
		if m.sync != nil {
			c.deliverSync(m, syncError(m.sync.req, code))
		}
	}
}

// replayedGroup accumulates one group's live records during replay.
type replayedGroup struct {
	offsets  map[topicPartition]committedOffset
	txn      txnOffsets // offsets of transactions without a marker yet
	classic  *kmsg.GroupMetadataValue
	consumer *consumerGroupRecord
	members  map[string]*cmember
	share    *shareGroupRecord
}

// replay folds the records of src into per-group state, one record at a
// time. It touches no coordinator state, so it runs without the lock. It
// returns the groups, the records read and skipped, and src's error.
//
// Offsets of transactional records stay pending per producer until a marker
// of that producer commits or drops them, in log order; a record's
// position is its index in src. Offsets still pending at the end stay
// pending: their markers are still to come.
func (c *Coordinator) replay(partition int32, src RecordSource) (map[string]*replayedGroup, int, int, error) {
	out := make(map[string]*replayedGroup)
	get := func(id string) *replayedGroup {
		rg := out[id]
		if rg == nil {
			rg = &replayedGroup{offsets: make(map[topicPartition]committedOffset), members: make(map[string]*cmember)}
			out[id] = rg
		}
		return rg
	}
	open := make(map[int64]map[string]struct{}) // producer -> groups with its pending offsets
	n, skipped := 0, 0
	err := src(func(r Record) bool {
		n++
		if r.Marker != NoMarker {
			if err := replayMarker(r, out, open); err != nil {
				skipped++
			}
			return true
		}
		id, err := c.replayOne(r, uint64(n), get, open)
		if err == nil && id != "" && PartitionFor(id, c.cfg.NumPartitions) != partition {
			err = errShortRecord
			delete(out, id)
		}
		if err != nil {
			skipped++
		}
		return true
	})
	return out, n, skipped, err
}

// replayMarker applies a COMMIT or ABORT marker to the groups holding
// pending offsets of its producer. A marker of a producer with none (its
// transaction wrote no offsets here, or they were deleted) changes nothing.
func replayMarker(r Record, out map[string]*replayedGroup, open map[int64]map[string]struct{}) error {
	if r.Marker != CommitMarker && r.Marker != AbortMarker {
		return errShortRecord
	}
	for id := range open[r.ProducerID] {
		if rg := out[id]; rg != nil {
			rg.txn.end(r.ProducerID, r.Marker == CommitMarker, rg.offsets)
		}
	}
	delete(open, r.ProducerID)
	return nil
}

// replayOne applies one record at position pos; it returns the group id it
// touched ("" for record types this package does not own). Transactional
// records of other types than offsets are applied as they come, as Kafka
// does.
func (c *Coordinator) replayOne(r Record, pos uint64, get func(string) *replayedGroup, open map[int64]map[string]struct{}) (string, error) {
	if len(r.Key) < 2 {
		return "", errShortRecord
	}
	switch int16(binary.BigEndian.Uint16(r.Key)) {
	case keyOffsetCommitV0, keyOffsetCommit:
		return replayOffset(r, pos, get, open)
	case keyGroupMetadata:
		return replayClassic(r, get)
	case keyConsumerGroup:
		return replayConsumerGroup(r, get)
	case keyConsumerMember:
		return replayConsumerMember(r, get)
	case keyShareGroup:
		return replayShareGroup(r, get)
	}
	return "", nil
}

// replayOffset applies an offset record. A tombstone deletes the committed
// offset and every producer's pending one.
func replayOffset(r Record, pos uint64, get func(string) *replayedGroup, open map[int64]map[string]struct{}) (string, error) {
	var k kmsg.OffsetCommitKey
	if err := k.ReadFrom(r.Key); err != nil {
		return "", err
	}
	rg, tp := get(k.Group), topicPartition{topic: k.Topic, partition: k.Partition}
	if r.Value == nil {
		delete(rg.offsets, tp)
		rg.txn.drop(tp)
		return k.Group, nil
	}
	var v kmsg.OffsetCommitValue
	if err := v.ReadFrom(r.Value); err != nil {
		return "", err
	}
	o := committedOffset{offset: v.Offset, leaderEpoch: -1, metadata: v.Metadata, commitTime: v.CommitTimestamp, expireTime: -1, pos: pos}
	if v.Version >= 3 {
		o.leaderEpoch = v.LeaderEpoch
	}
	if v.Version == 1 {
		o.expireTime = v.ExpireTimestamp
	}
	if !r.Transactional {
		rg.offsets[tp] = o
		return k.Group, nil
	}
	rg.txn.put(r.ProducerID, tp, o)
	ids := open[r.ProducerID]
	if ids == nil {
		ids = make(map[string]struct{})
		open[r.ProducerID] = ids
	}
	ids[k.Group] = struct{}{}
	return k.Group, nil
}

func replayClassic(r Record, get func(string) *replayedGroup) (string, error) {
	var k kmsg.GroupMetadataKey
	if err := k.ReadFrom(r.Key); err != nil {
		return "", err
	}
	rg := get(k.Group)
	rg.classic = nil
	if r.Value == nil {
		return k.Group, nil
	}
	v := new(kmsg.GroupMetadataValue)
	if err := v.ReadFrom(r.Value); err != nil {
		return "", err
	}
	rg.classic = v
	return k.Group, nil
}

func replayConsumerGroup(r Record, get func(string) *replayedGroup) (string, error) {
	d := dec{b: r.Key[2:]}
	id := d.str()
	if err := d.done(); err != nil {
		return "", err
	}
	rg := get(id)
	rg.consumer = nil
	if r.Value == nil {
		return id, nil
	}
	v, err := decodeConsumerGroupValue(r.Value)
	if err != nil {
		return "", err
	}
	rg.consumer = &v
	return id, nil
}

func replayConsumerMember(r Record, get func(string) *replayedGroup) (string, error) {
	d := dec{b: r.Key[2:]}
	id, memberID := d.str(), d.str()
	if err := d.done(); err != nil {
		return "", err
	}
	rg := get(id)
	delete(rg.members, memberID)
	if r.Value == nil {
		return id, nil
	}
	m, err := decodeConsumerMemberValue(memberID, r.Value)
	if err != nil {
		return "", err
	}
	rg.members[memberID] = m
	return id, nil
}

// buildGroupLocked turns replayed records into a live group (nil if nothing
// of the group is left).
func (c *Coordinator) buildGroupLocked(id string, partition int32, rg *replayedGroup, now time.Time) *group {
	if rg.classic == nil && rg.consumer == nil && rg.share == nil && len(rg.offsets) == 0 && rg.txn.empty() {
		return nil
	}
	g := newGroup(id, partition)
	g.offsets = rg.offsets
	g.txn = rg.txn
	g.state = stateEmpty
	switch {
	case rg.share != nil:
		c.buildShareLocked(g, rg, now)
	case rg.consumer != nil:
		c.buildConsumerLocked(g, rg, now)
		if rg.classic != nil {
			g.persistedClassic, g.dirty = true, true // tombstone the stale kind on the next write
		}
	case rg.classic != nil:
		c.buildClassicLocked(g, rg.classic, now)
	}
	return g
}

func (c *Coordinator) buildClassicLocked(g *group, v *kmsg.GroupMetadataValue, now time.Time) {
	g.persistedClassic = true
	g.protocolType = v.ProtocolType
	g.generation = v.Generation
	if v.Protocol != nil {
		g.protocol = *v.Protocol
	}
	if v.CurrentStateTimestamp >= 0 {
		g.stateSince = time.UnixMilli(v.CurrentStateTimestamp)
	}
	for _, vm := range v.Members {
		if _, dup := g.members[vm.MemberID]; dup {
			continue
		}
		c.mu.seq++
		m := &member{
			id:               vm.MemberID,
			instanceID:       cloneStringPtr(vm.InstanceID),
			clientID:         vm.ClientID,
			clientHost:       vm.ClientHost,
			sessionTimeout:   time.Duration(vm.SessionTimeoutMillis) * time.Millisecond,
			rebalanceTimeout: time.Duration(vm.RebalanceTimeoutMillis) * time.Millisecond,
			protocolType:     v.ProtocolType,
			protocols:        []kmsg.JoinGroupRequestProtocol{{Name: g.protocol, Metadata: slices.Clone(vm.Subscription)}},
			assignment:       slices.Clone(vm.Assignment),
			seq:              c.mu.seq,
		}
		if m.rebalanceTimeout <= 0 {
			m.rebalanceTimeout = m.sessionTimeout
		}
		m.deadline = now.Add(m.sessionTimeout)
		g.members[m.id] = m
		if m.instanceID != nil {
			g.static[*m.instanceID] = m.id
		}
	}
	if len(g.members) == 0 {
		g.state = stateEmpty
		return
	}
	g.state = stateStable
	if v.Leader != nil && g.members[*v.Leader] != nil {
		g.leader = *v.Leader
	} else {
		g.leader = g.ordered()[0].id
	}
}

func (c *Coordinator) buildConsumerLocked(g *group, rg *replayedGroup, now time.Time) {
	g.kind = kindConsumer
	g.persistedConsumer = true
	cg := newConsumerGroup()
	g.cg = cg
	cg.epoch, cg.targetEpoch, cg.assignor = rg.consumer.epoch, rg.consumer.targetEpoch, rg.consumer.assignor
	for _, t := range rg.consumer.topics {
		cg.topics[t.name] = t
	}
	for _, id := range sortedKeys(rg.members) {
		m := rg.members[id]
		cg.seq++
		m.seq = cg.seq
		cg.members[id] = m
		if m.instanceID != nil {
			cg.static[*m.instanceID] = id
		}
		for _, set := range []map[tpid]struct{}{keysOf(m.assigned), m.revoking} {
			for tp := range set {
				if owner, taken := cg.owners[tp]; taken && owner != id {
					// Two owners can only come from a damaged log;
					// the first keeps it.
					delete(m.assigned, tp)
					delete(m.revoking, tp)
					continue
				}
				cg.owners[tp] = id
			}
		}
		_, session := c.consumerTimings(g.id)
		m.sessionDeadline = now.Add(session)
		if m.state == memberUnrevoked {
			m.revokeDeadline = now.Add(m.rebalanceTimeout)
		}
	}
}

func keysOf(m map[tpid]int32) map[tpid]struct{} {
	out := make(map[tpid]struct{}, len(m))
	for k := range m {
		out[k] = struct{}{}
	}
	return out
}
