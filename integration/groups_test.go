package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupSettings make rebalances quick enough for tests while keeping
// Kafka's semantics.
var groupSettings = map[string]string{
	"group.initial.rebalance.delay.ms": "0",
	"group.min.session.timeout.ms":     "1000",
	"offsets.topic.num.partitions":     "8",
}

func produceN(t testing.TB, addr, topic string, from, n int, opts ...kgo.Opt) {
	t.Helper()
	cl := client(t, addr, append([]kgo.Opt{kgo.DefaultProduceTopic(topic)}, opts...)...)
	ctx := context.Background()
	for i := from; i < from+n; i++ {
		cl.Produce(ctx, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint(i))}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// member is one group consumer recording what it read.
type member struct {
	cl       *kgo.Client
	mu       sync.Mutex
	got      map[string]int
	assigned map[int32]bool
	cancel   context.CancelFunc
	done     chan struct{}
}

func startMember(t *testing.T, addr, group, topic string, opts ...kgo.Opt) *member {
	t.Helper()
	m := &member{got: map[string]int{}, assigned: map[int32]bool{}, done: make(chan struct{})}
	base := []kgo.Opt{
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(3 * time.Second), kgo.HeartbeatInterval(300 * time.Millisecond),
		kgo.FetchMaxWait(200 * time.Millisecond), kgo.AutoCommitInterval(200 * time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
			m.mu.Lock()
			for _, p := range a[topic] {
				m.assigned[p] = true
			}
			m.mu.Unlock()
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, r map[string][]int32) {
			m.mu.Lock()
			for _, p := range r[topic] {
				delete(m.assigned, p)
			}
			m.mu.Unlock()
			_ = cl.CommitUncommittedOffsets(ctx)
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, l map[string][]int32) {
			m.mu.Lock()
			for _, p := range l[topic] {
				delete(m.assigned, p)
			}
			m.mu.Unlock()
		}),
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(addr)}, base...), opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	m.cl = cl
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			m.mu.Lock()
			fs.EachRecord(func(r *kgo.Record) { m.got[string(r.Value)]++ })
			m.mu.Unlock()
		}
	}()
	t.Cleanup(func() { m.leave() })
	return m
}

// leave stops polling and closes the client (LeaveGroup, final commit).
func (m *member) leave() {
	m.cancel()
	<-m.done
	m.cl.Close()
}

func (m *member) partitions() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.assigned)
}

// union counts, across members, how often each value was consumed.
func union(ms ...*member) map[string]int {
	out := map[string]int{}
	for _, m := range ms {
		m.mu.Lock()
		for k, v := range m.got {
			out[k] += v
		}
		m.mu.Unlock()
	}
	return out
}

func waitAllConsumed(t *testing.T, n int, ms ...*member) {
	t.Helper()
	waitFor(t, 30*time.Second, func() error {
		u := union(ms...)
		for i := 0; i < n; i++ {
			if u[fmt.Sprint(i)] == 0 {
				return fmt.Errorf("value %d not consumed (%d distinct so far)", i, len(u))
			}
		}
		return nil
	})
}

func TestGroupBalancersSplitPartitions(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, groupSettings)
	cases := []struct {
		name string
		opts []kgo.Opt
	}{
		{"range", []kgo.Opt{kgo.Balancers(kgo.RangeBalancer())}},
		{"cooperative-sticky", []kgo.Opt{kgo.Balancers(kgo.CooperativeStickyBalancer())}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			topic := "split-" + c.name
			createTopic(t, ib.addr(), topic, 6, nil)
			produceN(t, ib.addr(), topic, 0, 600)
			a := startMember(t, ib.addr(), "g-"+c.name, topic, c.opts...)
			b := startMember(t, ib.addr(), "g-"+c.name, topic, c.opts...)
			waitFor(t, 30*time.Second, func() error {
				if pa, pb := a.partitions(), b.partitions(); pa != 3 || pb != 3 {
					return fmt.Errorf("assignment %d/%d, want 3/3", pa, pb)
				}
				return nil
			})
			c3 := startMember(t, ib.addr(), "g-"+c.name, topic, c.opts...)
			waitFor(t, 30*time.Second, func() error {
				if pa, pb, pc := a.partitions(), b.partitions(), c3.partitions(); pa != 2 || pb != 2 || pc != 2 {
					return fmt.Errorf("assignment %d/%d/%d, want 2/2/2", pa, pb, pc)
				}
				return nil
			})
			waitAllConsumed(t, 600, a, b, c3)
			// A member leaving hands its partitions over.
			c3.leave()
			waitFor(t, 30*time.Second, func() error {
				if pa, pb := a.partitions(), b.partitions(); pa+pb != 6 {
					return fmt.Errorf("after leave: %d/%d", pa, pb)
				}
				return nil
			})
			produceN(t, ib.addr(), topic, 600, 60)
			waitAllConsumed(t, 660, a, b, c3)
		})
	}
}

func TestGroupCommittedOffsetsResume(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, groupSettings)
	createTopic(t, ib.addr(), "resume", 3, nil)
	produceN(t, ib.addr(), "resume", 0, 300)
	a := startMember(t, ib.addr(), "g-resume", "resume")
	waitAllConsumed(t, 300, a)
	a.leave() // commits on close

	adm := kadm.NewClient(client(t, ib.addr()))
	offs, err := adm.FetchOffsets(context.Background(), "g-resume")
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	offs.Each(func(o kadm.OffsetResponse) { total += o.At })
	if total != 300 {
		t.Fatalf("committed offsets sum to %d, want 300", total)
	}
	produceN(t, ib.addr(), "resume", 300, 30)
	b := startMember(t, ib.addr(), "g-resume", "resume")
	waitFor(t, 30*time.Second, func() error {
		if n := len(union(b)); n != 30 {
			return fmt.Errorf("new member read %d distinct values, want the 30 new ones", n)
		}
		return nil
	})
	for v := range union(b) {
		var n int
		fmt.Sscan(v, &n)
		if n < 300 {
			t.Fatalf("new member re-read committed value %d", n)
		}
	}
}

// rawJoin makes a group member with raw requests that joins, syncs, and
// then falls silent: no heartbeat, no LeaveGroup, as a crashed process.
func rawJoin(t *testing.T, addr, group, topic string) {
	t.Helper()
	cl := client(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Version = 3
	meta.Topics = []string{topic}
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.ProtocolType = group, "consumer"
	join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = 2000, 10000
	proto := kmsg.NewJoinGroupRequestProtocol()
	proto.Name, proto.Metadata = "cooperative-sticky", meta.AppendTo(nil)
	join.Protocols = append(join.Protocols, proto)
	var resp *kmsg.JoinGroupResponse
	for {
		var err error
		// JoinGroup needs the group's coordinator; franz-go routes it.
		if resp, err = join.RequestWith(ctx, cl); err != nil {
			t.Fatal(err)
		}
		if resp.ErrorCode == kerr.MemberIDRequired.Code {
			join.MemberID = resp.MemberID
			continue
		}
		if resp.ErrorCode != 0 {
			t.Fatalf("raw join: %v", kerr.ErrorForCode(resp.ErrorCode))
		}
		break
	}
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Group, sync.MemberID, sync.Generation = group, resp.MemberID, resp.Generation
	sync.ProtocolType, sync.Protocol = kmsg.StringPtr("consumer"), resp.Protocol
	if resp.LeaderID == resp.MemberID {
		t.Fatal("the silent member became leader; the test expects the franz-go member to lead")
	}
	sresp, err := sync.RequestWith(ctx, cl)
	if err != nil || (sresp.ErrorCode != 0 && sresp.ErrorCode != kerr.RebalanceInProgress.Code) {
		t.Fatalf("raw sync: %v %v", err, kerr.ErrorForCode(sresp.ErrorCode))
	}
}

func TestGroupSessionExpiryHandsOver(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, groupSettings)
	createTopic(t, ib.addr(), "expire", 4, nil)
	a := startMember(t, ib.addr(), "g-expire", "expire")
	waitFor(t, 30*time.Second, func() error {
		if a.partitions() != 4 {
			return fmt.Errorf("first member has %d partitions", a.partitions())
		}
		return nil
	})
	rawJoin(t, ib.addr(), "g-expire", "expire")
	sawShare := false
	waitFor(t, 30*time.Second, func() error {
		if a.partitions() < 4 {
			sawShare = true
		}
		if !sawShare {
			return fmt.Errorf("the silent member never got partitions")
		}
		if a.partitions() != 4 {
			return fmt.Errorf("survivor has %d partitions; the silent member's session should expire", a.partitions())
		}
		return nil
	})
	produceN(t, ib.addr(), "expire", 0, 100)
	waitAllConsumed(t, 100, a)
}

func TestGroupServerSideBalancer(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, groupSettings)
	createTopic(t, ib.addr(), "kip848", 4, nil)
	produceN(t, ib.addr(), "kip848", 0, 400)
	a := startMember(t, ib.addr(), "g-848", "kip848", kgo.ServerSideBalancer())
	b := startMember(t, ib.addr(), "g-848", "kip848", kgo.ServerSideBalancer())
	waitFor(t, 30*time.Second, func() error {
		if pa, pb := a.partitions(), b.partitions(); pa != 2 || pb != 2 {
			return fmt.Errorf("assignment %d/%d, want 2/2", pa, pb)
		}
		return nil
	})
	waitAllConsumed(t, 400, a, b)
	b.leave()
	waitFor(t, 30*time.Second, func() error {
		if a.partitions() != 4 {
			return fmt.Errorf("after leave: %d", a.partitions())
		}
		return nil
	})
}
