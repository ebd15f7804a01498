package metadata

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// Memory is a Store kept in process memory, with the same semantics as
// Etcd (revisions, compare-and-swap, watch snapshots and events, sentinel
// errors) so that other packages can unit-test against it. Leases never
// expire by themselves; ExpireBroker and ExpireController simulate a lost
// lease. Safe for concurrent use.
type Memory struct {
	base   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu struct {
		sync.Mutex
		closed     bool
		rev        int64 // bumped by every write, like etcd's store revision
		clusterID  string
		producerID int64 // next producer id to hand out
		topics     map[string]Topic
		partitions map[string]map[int32]PartitionState
		brokers    map[int32]*memBroker
		configs    map[int32]map[string]string
		leader     *memLeader
		// leaderFreed is closed (and replaced) whenever the controller
		// election becomes vacant, waking campaigners.
		leaderFreed       chan struct{}
		leases            map[*lease]struct{}
		topicWatchers     map[*memWatcher[TopicEvent]]struct{}
		brokerWatchers    map[*memWatcher[BrokerEvent]]struct{}
		partitionWatchers map[*memWatcher[PartitionEvent]]struct{}
		quotas            map[string]ClientQuota // by quotaKey
		quotaWatchers     map[*memWatcher[ClientQuotaEvent]]struct{}
		configWatchers    map[*memWatcher[BrokerConfigsEvent]]struct{}
		// groupConfigs (by groupConfigKey) and features: see group_config.go.
		groupConfigs        map[string]GroupConfig
		groupConfigWatchers map[*memWatcher[GroupConfigEvent]]struct{}
		features            FinalizedFeatures
		featureWatchers     map[*memWatcher[FeaturesEvent]]struct{}
	}
}

type memBroker struct {
	b Broker
	l *lease
}

type memLeader struct {
	nodeID int32
	epoch  int64
	l      *lease
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	m := &Memory{}
	m.base, m.cancel = context.WithCancel(context.Background())
	m.mu.rev = 1 // an empty etcd is at revision 1 too
	m.mu.topics = map[string]Topic{}
	m.mu.partitions = map[string]map[int32]PartitionState{}
	m.mu.brokers = map[int32]*memBroker{}
	m.mu.configs = map[int32]map[string]string{}
	m.mu.leaderFreed = make(chan struct{})
	m.mu.leases = map[*lease]struct{}{}
	m.mu.topicWatchers = map[*memWatcher[TopicEvent]]struct{}{}
	m.mu.brokerWatchers = map[*memWatcher[BrokerEvent]]struct{}{}
	m.mu.partitionWatchers = map[*memWatcher[PartitionEvent]]struct{}{}
	m.mu.quotas = map[string]ClientQuota{}
	m.mu.quotaWatchers = map[*memWatcher[ClientQuotaEvent]]struct{}{}
	m.mu.configWatchers = map[*memWatcher[BrokerConfigsEvent]]struct{}{}
	m.mu.groupConfigs = map[string]GroupConfig{}
	m.mu.groupConfigWatchers = map[*memWatcher[GroupConfigEvent]]struct{}{}
	m.mu.features = FinalizedFeatures{Levels: map[string]int16{}}
	m.mu.featureWatchers = map[*memWatcher[FeaturesEvent]]struct{}{}
	return m
}

// lock takes the mutex unless the store is closed.
func (m *Memory) lock() error {
	m.mu.Lock()
	if m.mu.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// Close releases registrations and leaderships and ends watches.
// Idempotent.
func (m *Memory) Close() error {
	m.mu.Lock()
	if m.mu.closed {
		m.mu.Unlock()
		return nil
	}
	m.mu.closed = true
	ls := slices.Collect(maps.Keys(m.mu.leases))
	m.mu.Unlock()
	for _, l := range ls {
		_ = l.close()
	}
	m.cancel()
	m.wg.Wait()
	return nil
}

// AllocateProducerIDs implements Store.
func (m *Memory) AllocateProducerIDs(_ context.Context, n int64) (int64, error) {
	if n <= 0 {
		return 0, fmt.Errorf("metadata: allocate %d producer ids", n)
	}
	if err := m.lock(); err != nil {
		return 0, err
	}
	defer m.mu.Unlock()
	first := m.mu.producerID
	m.mu.producerID += n
	m.mu.rev++
	return first, nil
}

// ClusterID implements Store.
func (m *Memory) ClusterID(context.Context) (string, error) {
	if err := m.lock(); err != nil {
		return "", err
	}
	defer m.mu.Unlock()
	if m.mu.clusterID == "" {
		id, err := NewTopicID()
		if err != nil {
			return "", err
		}
		m.mu.rev++
		m.mu.clusterID = FormatUUID(id)
	}
	return m.mu.clusterID, nil
}

// CreateTopic implements Store.
func (m *Memory) CreateTopic(_ context.Context, t Topic) (Topic, error) {
	t, err := prepareCreate(t)
	if err != nil {
		return Topic{}, err
	}
	if err := m.lock(); err != nil {
		return Topic{}, err
	}
	defer m.mu.Unlock()
	if _, ok := m.mu.topics[t.Name]; ok {
		return Topic{}, fmt.Errorf("create topic %q: %w", t.Name, ErrTopicExists)
	}
	m.mu.rev++
	t.Revision = m.mu.rev
	m.mu.topics[t.Name] = t
	m.dropPartitionsLocked(t.Name)
	m.publishTopicLocked(EventPut, t)
	return t.Clone(), nil
}

// UpdateTopic implements Store.
func (m *Memory) UpdateTopic(_ context.Context, t Topic) (Topic, error) {
	t, err := prepareUpdate(t)
	if err != nil {
		return Topic{}, err
	}
	if err := m.lock(); err != nil {
		return Topic{}, err
	}
	defer m.mu.Unlock()
	old, ok := m.mu.topics[t.Name]
	if !ok {
		return Topic{}, fmt.Errorf("update topic %q: %w", t.Name, ErrTopicNotFound)
	}
	if old.Revision != t.Revision {
		return Topic{}, fmt.Errorf("update topic %q at revision %d: %w", t.Name, t.Revision, ErrConflict)
	}
	m.mu.rev++
	t.Revision = m.mu.rev
	m.mu.topics[t.Name] = t
	m.publishTopicLocked(EventPut, t)
	return t.Clone(), nil
}

// DeleteTopic implements Store.
func (m *Memory) DeleteTopic(_ context.Context, name string) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	old, ok := m.mu.topics[name]
	if !ok {
		return fmt.Errorf("delete topic %q: %w", name, ErrTopicNotFound)
	}
	m.mu.rev++
	delete(m.mu.topics, name)
	m.dropPartitionsLocked(name)
	m.publishTopicLocked(EventDelete, old)
	return nil
}

// dropPartitionsLocked removes the partition states of a topic and
// publishes their deletion, in the order etcd applies a range delete: by
// key bytes, so "10" before "2".
func (m *Memory) dropPartitionsLocked(topic string) {
	ps := m.mu.partitions[topic]
	delete(m.mu.partitions, topic)
	if len(m.mu.partitionWatchers) == 0 {
		return
	}
	for _, p := range slices.SortedFunc(maps.Keys(ps), compareDecimal) {
		m.publishPartitionLocked(EventDelete, ps[p])
	}
}

// Topic implements Store.
func (m *Memory) Topic(_ context.Context, name string) (Topic, error) {
	if err := m.lock(); err != nil {
		return Topic{}, err
	}
	defer m.mu.Unlock()
	t, ok := m.mu.topics[name]
	if !ok {
		return Topic{}, fmt.Errorf("topic %q: %w", name, ErrTopicNotFound)
	}
	return t.Clone(), nil
}

// Topics implements Store.
func (m *Memory) Topics(context.Context) ([]Topic, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	return m.topicsLocked(), nil
}

func (m *Memory) topicsLocked() []Topic {
	out := make([]Topic, 0, len(m.mu.topics))
	for _, name := range slices.Sorted(maps.Keys(m.mu.topics)) {
		out = append(out, m.mu.topics[name].Clone())
	}
	return out
}

// BrokerConfigs implements Store.
func (m *Memory) BrokerConfigs(_ context.Context, nodeID int32) (map[string]string, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	return cloneConfigs(m.mu.configs[nodeID]), nil
}

// WatchBrokerConfigs implements Store.
func (m *Memory) WatchBrokerConfigs(ctx context.Context) (<-chan BrokerConfigsEvent, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	w := newMemWatcher[BrokerConfigsEvent]()
	ids := slices.Sorted(maps.Keys(m.mu.configs))
	for _, id := range ids {
		w.push(BrokerConfigsEvent{Type: EventPut, NodeID: id, Configs: cloneConfigs(m.mu.configs[id]), Snapshot: true})
	}
	m.mu.configWatchers[w] = struct{}{}
	m.startWatchLocked(ctx, w.pump, func() { delete(m.mu.configWatchers, w) })
	return w.out, nil
}

// SetBrokerConfigs implements Store.
func (m *Memory) SetBrokerConfigs(_ context.Context, nodeID int32, configs map[string]string) error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.mu.rev++
	typ := EventPut
	if len(configs) == 0 {
		if _, ok := m.mu.configs[nodeID]; !ok {
			return nil
		}
		delete(m.mu.configs, nodeID)
		typ = EventDelete
	} else {
		m.mu.configs[nodeID] = cloneConfigs(configs)
	}
	for w := range m.mu.configWatchers {
		w.push(BrokerConfigsEvent{Type: typ, NodeID: nodeID, Configs: cloneConfigs(configs)})
	}
	return nil
}

// PartitionState implements Store.
func (m *Memory) PartitionState(_ context.Context, topic string, partition int32) (PartitionState, error) {
	if err := m.lock(); err != nil {
		return PartitionState{}, err
	}
	defer m.mu.Unlock()
	s, ok := m.mu.partitions[topic][partition]
	if !ok {
		return PartitionState{}, fmt.Errorf("partition %s-%d: %w", topic, partition, ErrPartitionNotFound)
	}
	return clonePartition(s), nil
}

// PartitionStates implements Store.
func (m *Memory) PartitionStates(_ context.Context, topic string) ([]PartitionState, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	ps := m.mu.partitions[topic]
	out := make([]PartitionState, 0, len(ps))
	for _, p := range slices.Sorted(maps.Keys(ps)) {
		out = append(out, clonePartition(ps[p]))
	}
	return out, nil
}

// SetPartitionState implements Store.
func (m *Memory) SetPartitionState(_ context.Context, s PartitionState) (PartitionState, error) {
	if err := validatePartition(s); err != nil {
		return PartitionState{}, err
	}
	s = clonePartition(s)
	if err := m.lock(); err != nil {
		return PartitionState{}, err
	}
	defer m.mu.Unlock()
	if _, ok := m.mu.topics[s.Topic]; !ok {
		return PartitionState{}, fmt.Errorf("set partition %s-%d: %w", s.Topic, s.Partition, ErrTopicNotFound)
	}
	ps := m.mu.partitions[s.Topic]
	if ps == nil {
		ps = map[int32]PartitionState{}
		m.mu.partitions[s.Topic] = ps
	}
	if ps[s.Partition].Revision != s.Revision { // an absent record has revision 0
		return PartitionState{}, fmt.Errorf("set partition %s-%d at revision %d: %w",
			s.Topic, s.Partition, s.Revision, ErrConflict)
	}
	m.mu.rev++
	s.Revision = m.mu.rev
	ps[s.Partition] = s
	m.publishPartitionLocked(EventPut, s)
	return clonePartition(s), nil
}

// CreatePartitionStates implements Store, in one step under the lock.
func (m *Memory) CreatePartitionStates(_ context.Context, states []PartitionState) ([]PartitionState, error) {
	for _, s := range states {
		if err := validatePartition(s); err != nil {
			return nil, err
		}
	}
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	var out []PartitionState
	for _, s := range states {
		if _, ok := m.mu.topics[s.Topic]; !ok {
			return out, fmt.Errorf("create partitions of %s: %w", s.Topic, ErrTopicNotFound)
		}
		ps := m.mu.partitions[s.Topic]
		if ps == nil {
			ps = map[int32]PartitionState{}
			m.mu.partitions[s.Topic] = ps
		}
		if _, ok := ps[s.Partition]; ok {
			continue
		}
		s = clonePartition(s)
		m.mu.rev++
		s.Revision = m.mu.rev
		ps[s.Partition] = s
		m.publishPartitionLocked(EventPut, s)
		out = append(out, clonePartition(s))
	}
	return out, nil
}

// RegisterBroker implements Store. The ttl is accepted for symmetry with
// Etcd but the lease only ends through Close, Registration.Close or
// ExpireBroker.
func (m *Memory) RegisterBroker(_ context.Context, b Broker, _ time.Duration) (*Registration, error) {
	if b.NodeID < 0 {
		return nil, fmt.Errorf("metadata: register broker with negative node id %d", b.NodeID)
	}
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	if old, ok := m.mu.brokers[b.NodeID]; ok {
		if b.Incarnation == "" || old.b.Incarnation != b.Incarnation {
			return nil, fmt.Errorf("register broker %d: %w", b.NodeID, ErrBrokerIDInUse)
		}
		old.l.end(ErrLeaseLost) // the earlier process of this broker is gone
		delete(m.mu.leases, old.l)
	}
	l := newLease()
	l.extend(l.born.Add(neverExpires)) // until ExpireBroker or Close
	m.mu.rev++
	b.Epoch = m.mu.rev
	m.mu.brokers[b.NodeID] = &memBroker{b: b, l: l}
	m.mu.leases[l] = struct{}{}
	m.publishBrokerLocked(EventPut, b)
	l.release = func() error {
		m.dropBroker(b.NodeID, l)
		return nil
	}
	l.expire = func() error {
		l.end(ErrLeaseLost)
		m.dropBroker(b.NodeID, l)
		return nil
	}
	return &Registration{broker: b, epoch: b.Epoch, l: l}, nil
}

// dropBroker removes the broker record if it still belongs to lease l.
func (m *Memory) dropBroker(id int32, l *lease) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.mu.leases, l)
	mb, ok := m.mu.brokers[id]
	if !ok || mb.l != l {
		return
	}
	m.mu.rev++
	delete(m.mu.brokers, id)
	m.publishBrokerLocked(EventDelete, mb.b)
}

// ExpireBroker simulates the lease of broker nodeID expiring: the record
// disappears and the Registration reports ErrLeaseLost. It returns false if
// the broker is not registered.
func (m *Memory) ExpireBroker(nodeID int32) bool {
	m.mu.Lock()
	mb, ok := m.mu.brokers[nodeID]
	m.mu.Unlock()
	if ok {
		_ = mb.l.expire()
	}
	return ok
}

// Brokers implements Store.
func (m *Memory) Brokers(context.Context) ([]Broker, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	return m.brokersLocked(), nil
}

func (m *Memory) brokersLocked() []Broker {
	out := make([]Broker, 0, len(m.mu.brokers))
	for _, id := range slices.Sorted(maps.Keys(m.mu.brokers)) {
		out = append(out, m.mu.brokers[id].b)
	}
	return out
}

// Campaign implements Store: the first campaigner wins, later ones wait
// until the election is vacant.
func (m *Memory) Campaign(ctx context.Context, nodeID int32) (*Leadership, error) {
	for {
		if err := m.lock(); err != nil {
			return nil, err
		}
		if m.mu.leader == nil {
			return m.electLocked(nodeID), nil
		}
		freed := m.mu.leaderFreed
		m.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return nil, fmt.Errorf("metadata: campaign for controller: %w", ctx.Err())
		case <-m.base.Done():
			return nil, ErrClosed
		}
	}
}

// electLocked makes nodeID the controller and unlocks m.mu.
func (m *Memory) electLocked(nodeID int32) *Leadership {
	defer m.mu.Unlock()
	l := newLease()
	m.mu.rev++
	ld := &memLeader{nodeID: nodeID, epoch: m.mu.rev, l: l}
	m.mu.leader = ld
	m.mu.leases[l] = struct{}{}
	l.release = func() error {
		m.vacate(ld)
		return nil
	}
	l.expire = func() error {
		l.end(ErrLeaseLost)
		m.vacate(ld)
		return nil
	}
	return &Leadership{nodeID: nodeID, epoch: ld.epoch, l: l}
}

func (m *Memory) vacate(ld *memLeader) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.mu.leases, ld.l)
	if m.mu.leader != ld {
		return
	}
	m.mu.rev++
	m.mu.leader = nil
	close(m.mu.leaderFreed)
	m.mu.leaderFreed = make(chan struct{})
}

// ExpireController simulates the controller's session lease expiring: the
// Leadership reports ErrLeaseLost and the election becomes vacant. It
// returns false if there is no controller.
func (m *Memory) ExpireController() bool {
	m.mu.Lock()
	ld := m.mu.leader
	m.mu.Unlock()
	if ld != nil {
		_ = ld.l.expire()
	}
	return ld != nil
}

// WithdrawCandidacies implements Store: Memory keeps only the winner, so
// this ends nodeID's leadership if it holds it.
func (m *Memory) WithdrawCandidacies(_ context.Context, nodeID int32) error {
	if err := m.lock(); err != nil {
		return err
	}
	ld := m.mu.leader
	m.mu.Unlock()
	if ld != nil && ld.nodeID == nodeID {
		return ld.l.expire()
	}
	return nil
}

// Controller implements Store.
func (m *Memory) Controller(context.Context) (int32, int64, error) {
	if err := m.lock(); err != nil {
		return -1, 0, err
	}
	defer m.mu.Unlock()
	if m.mu.leader == nil {
		return -1, 0, ErrNoController
	}
	return m.mu.leader.nodeID, m.mu.leader.epoch, nil
}
