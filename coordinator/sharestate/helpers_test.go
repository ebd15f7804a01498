package sharestate

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/coordinator"
	"github.com/sluicedev/sluice/coordinator/share"
)

// memLog is an in-memory Persister: the records of every partition, in
// order. fail makes the next Persist calls fail; block holds them until
// released.
type memLog struct {
	mu    sync.Mutex
	parts map[int32][]Record
	calls int
	fail  error
	block chan struct{}
	// blocked counts the Persist calls waiting on block.
	blocked int
}

func newMemLog() *memLog { return &memLog{parts: map[int32][]Record{}} }

func (m *memLog) Persist(ctx context.Context, partition int32, records []Record) error {
	m.mu.Lock()
	block := m.block
	if block != nil {
		m.blocked++
	}
	m.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.fail != nil {
		return m.fail
	}
	for _, r := range records {
		m.parts[partition] = append(m.parts[partition], Record{Key: append([]byte(nil), r.Key...), Value: append([]byte(nil), r.Value...)})
		if r.Value == nil {
			m.parts[partition][len(m.parts[partition])-1].Value = nil
		}
	}
	return nil
}

func (m *memLog) records(p int32) []Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Record(nil), m.parts[p]...)
}

// source streams recs.
func source(recs []Record) RecordSource {
	return func(yield func(Record) bool) error {
		for _, r := range recs {
			if !yield(r) {
				return nil
			}
		}
		return nil
	}
}

// compacted keeps the last record per key, in the order of those last
// records, and drops tombstoned keys, as log compaction eventually does.
func compacted(recs []Record) []Record {
	last := map[string]int{}
	for i, r := range recs {
		last[string(r.Key)] = i
	}
	var out []Record
	for i, r := range recs {
		if last[string(r.Key)] == i && r.Value != nil {
			out = append(out, r)
		}
	}
	return out
}

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// newLoaded returns a coordinator over log with every partition loaded
// from log's records.
func newLoaded(t *testing.T, log *memLog, cfg Config) *Coordinator {
	t.Helper()
	if cfg.Clock == nil {
		cfg.Clock = coordinator.NewFakeClock(epoch)
	}
	cfg.Persister = log
	if cfg.NumPartitions == 0 {
		cfg.NumPartitions = 1
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	for p := range cfg.NumPartitions {
		tok := c.BeginLoad(p)
		if err := c.LoadFrom(tok, source(log.records(p))); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

var topicA = [16]byte{1, 2, 3}

func key(p int32) share.Key { return share.Key{Group: "g", TopicID: topicA, Partition: p} }

// write stores st for k and returns the error code.
func write(t *testing.T, c *Coordinator, k share.Key, st share.State) int16 {
	t.Helper()
	req := kmsg.NewPtrWriteShareGroupStateRequest()
	req.Version = 1
	req.GroupID = k.Group
	req.Topics = []kmsg.WriteShareGroupStateRequestTopic{{TopicID: k.TopicID,
		Partitions: []kmsg.WriteShareGroupStateRequestTopicPartition{WritePartition(k.Partition, st)}}}
	resp := c.WriteShareGroupState(context.Background(), roundTrip(t, req).(*kmsg.WriteShareGroupStateRequest))
	return resp.Topics[0].Partitions[0].ErrorCode
}

// read returns k's state as a partition leader of leaderEpoch sees it.
func read(t *testing.T, c *Coordinator, k share.Key, leaderEpoch int32) (share.State, bool, int16) {
	t.Helper()
	req := kmsg.NewPtrReadShareGroupStateRequest()
	req.GroupID = k.Group
	req.Topics = []kmsg.ReadShareGroupStateRequestTopic{{TopicID: k.TopicID,
		Partitions: []kmsg.ReadShareGroupStateRequestTopicPartition{{Partition: k.Partition, LeaderEpoch: leaderEpoch}}}}
	resp := c.ReadShareGroupState(context.Background(), req)
	resp = roundTripResp(t, resp).(*kmsg.ReadShareGroupStateResponse)
	rp := &resp.Topics[0].Partitions[0]
	if rp.ErrorCode != 0 {
		return share.State{}, false, rp.ErrorCode
	}
	st, found, ok := StateFromRead(rp)
	if !ok {
		t.Fatalf("malformed read answer %+v", rp)
	}
	return st, found, 0
}

// roundTrip encodes and decodes req, so tagged fields travel as on the wire.
func roundTrip(t *testing.T, req kmsg.Request) kmsg.Request {
	t.Helper()
	raw := req.AppendTo(nil)
	out := req.ResponseKind().RequestKind()
	out.SetVersion(req.GetVersion())
	if err := out.ReadFrom(raw); err != nil {
		t.Fatal(err)
	}
	return out
}

func roundTripResp(t *testing.T, resp kmsg.Response) kmsg.Response {
	t.Helper()
	raw := resp.AppendTo(nil)
	out := resp.RequestKind().ResponseKind()
	out.SetVersion(resp.GetVersion())
	if err := out.ReadFrom(raw); err != nil {
		t.Fatal(err)
	}
	return out
}

// sameState compares states, NotBefore by instant.
func sameState(a, b share.State) bool {
	if a.StateEpoch != b.StateEpoch || a.StartOffset != b.StartOffset || a.DeadLetter != b.DeadLetter || len(a.Batches) != len(b.Batches) {
		return false
	}
	for i := range a.Batches {
		x, y := a.Batches[i], b.Batches[i]
		if x.FirstOffset != y.FirstOffset || x.LastOffset != y.LastOffset || !sameRun(x, y) {
			return false
		}
	}
	return true
}
