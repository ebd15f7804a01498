package metadata

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// memWatcher queues events for one watch without ever blocking the writer
// (which holds Memory.mu); a goroutine per watch forwards the queue to the
// consumer's channel in order.
type memWatcher[T any] struct {
	out    chan T
	signal chan struct{} // capacity 1: "the queue may be non-empty"
	mu     struct {
		sync.Mutex
		queue []T
	}
}

func newMemWatcher[T any]() *memWatcher[T] {
	return &memWatcher[T]{out: make(chan T, watchBuffer), signal: make(chan struct{}, 1)}
}

func (w *memWatcher[T]) push(ev T) {
	w.mu.Lock()
	w.mu.queue = append(w.mu.queue, ev)
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// pump forwards queued events until ctx ends, then closes out.
func (w *memWatcher[T]) pump(ctx context.Context) {
	defer close(w.out)
	for {
		w.mu.Lock()
		q := w.mu.queue
		w.mu.queue = nil
		w.mu.Unlock()
		for _, ev := range q {
			select {
			case w.out <- ev:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-w.signal:
		case <-ctx.Done():
			return
		}
	}
}

// startWatchLocked runs a pump in a tracked goroutine until ctx or the store
// ends, then calls remove (which must take m.mu itself).
func (m *Memory) startWatchLocked(ctx context.Context, pump func(context.Context), remove func()) {
	wctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(m.base, cancel)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer stop()
		defer cancel()
		defer func() {
			m.mu.Lock()
			remove()
			m.mu.Unlock()
		}()
		pump(wctx)
	}()
}

// WatchTopics implements Store.
func (m *Memory) WatchTopics(ctx context.Context) (<-chan TopicEvent, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	w := newMemWatcher[TopicEvent]()
	for _, t := range m.topicsLocked() {
		w.push(TopicEvent{Type: EventPut, Topic: t, Snapshot: true})
	}
	m.mu.topicWatchers[w] = struct{}{}
	m.startWatchLocked(ctx, w.pump, func() { delete(m.mu.topicWatchers, w) })
	return w.out, nil
}

// WatchBrokers implements Store.
func (m *Memory) WatchBrokers(ctx context.Context) (<-chan BrokerEvent, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	w := newMemWatcher[BrokerEvent]()
	bs := m.brokersLocked()
	// etcd replays keys in byte order, where "10" sorts before "2".
	slices.SortFunc(bs, func(a, b Broker) int { return compareDecimal(a.NodeID, b.NodeID) })
	for _, b := range bs {
		w.push(BrokerEvent{Type: EventPut, Broker: b, Snapshot: true})
	}
	m.mu.brokerWatchers[w] = struct{}{}
	m.startWatchLocked(ctx, w.pump, func() { delete(m.mu.brokerWatchers, w) })
	return w.out, nil
}

// WatchPartitions implements Store.
func (m *Memory) WatchPartitions(ctx context.Context) (<-chan PartitionEvent, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	w := newMemWatcher[PartitionEvent]()
	for _, topic := range slices.Sorted(maps.Keys(m.mu.partitions)) {
		ps := m.mu.partitions[topic]
		for _, p := range slices.Sorted(maps.Keys(ps)) {
			w.push(PartitionEvent{Type: EventPut, State: clonePartition(ps[p]), Snapshot: true})
		}
	}
	m.mu.partitionWatchers[w] = struct{}{}
	m.startWatchLocked(ctx, w.pump, func() { delete(m.mu.partitionWatchers, w) })
	return w.out, nil
}

func (m *Memory) publishTopicLocked(typ EventType, t Topic) {
	for w := range m.mu.topicWatchers {
		w.push(TopicEvent{Type: typ, Topic: t.Clone()})
	}
}

func (m *Memory) publishBrokerLocked(typ EventType, b Broker) {
	for w := range m.mu.brokerWatchers {
		w.push(BrokerEvent{Type: typ, Broker: b})
	}
}

func (m *Memory) publishPartitionLocked(typ EventType, s PartitionState) {
	for w := range m.mu.partitionWatchers {
		w.push(PartitionEvent{Type: typ, State: clonePartition(s)})
	}
}

// compareDecimal orders numbers as etcd orders keys holding their decimal
// form: by bytes, so 10 before 2.
func compareDecimal(a, b int32) int {
	return strings.Compare(strconv.FormatInt(int64(a), 10), strconv.FormatInt(int64(b), 10))
}
