package integration

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestReplicaKill9LeadersKeepsAckedRecords runs three broker processes on
// one etcd with a replication factor 3 topic (min.insync.replicas=2) and
// an idempotent acks=all franz-go producer, and kills the leader of each
// partition in turn with SIGKILL, restarting it afterwards. Every
// acknowledged record must then be present exactly once, at its
// acknowledged offset and in producing order; a consumer group carries on.
func TestReplicaKill9LeadersKeepsAckedRecords(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	const topic = "replicated"
	minISR := "2"
	c.createTopic(topic, 3, 3, map[string]*string{"min.insync.replicas": &minISR})

	hist := newAcked()
	prod := c.client(kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0), kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for p := int32(0); p < 3; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; ctx.Err() == nil; seq++ {
				r := &kgo.Record{Partition: p, Value: fmt.Appendf(nil, "%d-%06d", p, seq)}
				// Bounded in flight: one synchronous produce per partition
				// goroutine keeps the history easy to reason about.
				res := prod.ProduceSync(context.Background(), r)
				hist.add(r, res.FirstErr())
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	progress := func(n int) {
		t.Helper()
		start := hist.count()
		waitFor(t, 60*time.Second, func() error {
			if got := hist.count() - start; got < n {
				return fmt.Errorf("%d records acknowledged since, want %d", got, n)
			}
			return nil
		})
	}
	progress(100)
	for p := int32(0); p < 3; p++ {
		v := c.waitISR(topic, 3, 60*time.Second)[p]
		victim := c.procs[v.Leader]
		t.Logf("partition %d: killing leader %d (epoch %d)", p, v.Leader, v.Epoch)
		victim.kill()
		nv := c.waitLeader(topic, p, v.Leader, 30*time.Second)
		if nv.Epoch <= v.Epoch {
			t.Errorf("partition %d: leader epoch %d after failover, was %d", p, nv.Epoch, v.Epoch)
		}
		progress(100)
		victim.restart()
		progress(50)
	}
	c.waitISR(topic, 3, 60*time.Second)
	cancel()
	wg.Wait()
	hist.mu.Lock()
	errs := hist.errs
	hist.mu.Unlock()
	if len(errs) > 0 {
		t.Logf("%d produce errors (not acknowledged, so not checked), first: %v", len(errs), errs[0])
	}
	total := 0
	for p := int32(0); p < 3; p++ {
		recs := c.consumePartition(topic, p)
		checkHistory(t, p, hist.byPart[p], recs)
		t.Logf("partition %d: %d acknowledged, %d in the log", p, len(hist.byPart[p]), len(recs))
		total += len(recs)
	}

	// A consumer group forms on the failed-over cluster and reads it all.
	grp := c.client(kgo.ConsumerGroup("after-failover"), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	gctx, gcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer gcancel()
	for n := 0; n < total; {
		fs := grp.PollFetches(gctx)
		if gctx.Err() != nil {
			t.Fatalf("group consumed %d of %d records: %v", n, total, gctx.Err())
		}
		n += fs.NumRecords()
	}
	if err := grp.CommitUncommittedOffsets(gctx); err != nil {
		t.Fatalf("group commit after failovers: %v", err)
	}

	// Every replica holds the same records, byte for byte in value and offset.
	c.waitReplicasCaughtUp(topic, 3, 3, 30*time.Second)
	for _, id := range c.ids() {
		c.procs[id].kill()
	}
	for p := int32(0); p < 3; p++ {
		var want []string
		for i, id := range c.ids() {
			got := replicaRecords(t, c.procs[id].dataDir, topic, p)
			if i == 0 {
				want = got
			} else if !slices.Equal(got, want) {
				t.Errorf("partition %d: broker %d holds %d records, broker %d holds %d, or they differ", p, id, len(got), c.ids()[0], len(want))
			}
		}
	}
}

// TestReplicaFollowerLeavesAndRejoinsISR kills a follower: it falls out of
// the ISR, and comes back after a restart once it caught up. With
// min.insync.replicas=2, acks=all fails with NOT_ENOUGH_REPLICAS while two
// of three brokers are down and works again once one returns.
func TestReplicaFollowerLeavesAndRejoinsISR(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	const topic = "isr"
	minISR := "2"
	c.createTopic(topic, 1, 3, map[string]*string{"min.insync.replicas": &minISR})
	cl := c.client()
	// Retries what a client retries on its own: a leader that has not
	// taken over yet.
	produce := func() kmsg.ProduceResponseTopicPartition {
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := produceRaw(t, cl, topic, buildBatch(-1, -1, 0, "v"))
			transient := r.ErrorCode == kerr.NotLeaderForPartition.Code || r.ErrorCode == kerr.UnknownTopicOrPartition.Code ||
				r.ErrorCode == kerr.LeaderNotAvailable.Code
			if !transient || time.Now().After(deadline) {
				return r
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if r := produce(); r.ErrorCode != 0 {
		t.Fatalf("produce with a full ISR: code %d", r.ErrorCode)
	}
	v := c.waitISR(topic, 3, 30*time.Second)[0]
	var followers []int32
	for _, id := range v.Replicas {
		if id != v.Leader {
			followers = append(followers, id)
		}
	}
	f1, f2 := c.procs[followers[0]], c.procs[followers[1]]
	f1.kill()
	waitFor(t, 30*time.Second, func() error {
		v, err := c.metadata(topic)
		if err != nil {
			return err
		}
		if isr := v[0].ISR; len(isr) != 2 || slices.Contains(isr, followers[0]) {
			return fmt.Errorf("isr %v, want it without %d", isr, followers[0])
		}
		if off := v[0].Offline; !slices.Contains(off, followers[0]) {
			return fmt.Errorf("offline replicas %v, want %d among them", off, followers[0])
		}
		return nil
	})
	if r := produce(); r.ErrorCode != 0 {
		t.Fatalf("produce with two of three in the ISR and min.insync.replicas=2: code %d", r.ErrorCode)
	}
	lp := c.procs[v.Leader]
	// The leader applies the controller's record a moment after etcd has it.
	waitFor(t, 10*time.Second, func() error {
		if n := lp.metric(t, "sluice_under_replicated_partitions"); n != 1 {
			return fmt.Errorf("leader reports %v under-replicated partitions, want 1", n)
		}
		if n := lp.metric(t, "sluice_isr_shrinks_total"); n < 1 {
			return fmt.Errorf("leader reports %v ISR shrinks, want at least 1", n)
		}
		return nil
	})
	f2.kill()
	waitFor(t, 30*time.Second, func() error {
		v, err := c.metadata(topic)
		if err != nil {
			return err
		}
		if isr := v[0].ISR; len(isr) != 1 {
			return fmt.Errorf("isr %v, want only the leader", isr)
		}
		return nil
	})
	waitFor(t, 10*time.Second, func() error {
		if n := lp.metric(t, "sluice_under_min_isr_partitions"); n != 1 {
			return fmt.Errorf("leader reports %v partitions under min.insync.replicas, want 1", n)
		}
		return nil
	})
	if r := produce(); r.ErrorCode != kerr.NotEnoughReplicas.Code {
		t.Fatalf("produce with one in-sync replica and min.insync.replicas=2: code %d, want NOT_ENOUGH_REPLICAS (%d)", r.ErrorCode, kerr.NotEnoughReplicas.Code)
	}
	f1.restart()
	c.waitISR(topic, 2, 60*time.Second)
	waitFor(t, 10*time.Second, func() error {
		if n := lp.metric(t, "sluice_under_min_isr_partitions"); n != 0 {
			return fmt.Errorf("leader reports %v partitions under min.insync.replicas after a follower rejoined, want 0", n)
		}
		return nil
	})
	if r := produce(); r.ErrorCode != 0 {
		t.Fatalf("produce after a follower rejoined: code %d", r.ErrorCode)
	}
	f2.restart()
	c.waitISR(topic, 3, 60*time.Second)
	waitFor(t, 10*time.Second, func() error {
		if n := lp.metric(t, "sluice_under_replicated_partitions"); n != 0 {
			return fmt.Errorf("%v under-replicated partitions with the full ISR back", n)
		}
		if n := lp.metric(t, "sluice_isr_expands_total"); n < 2 {
			return fmt.Errorf("%v ISR expansions, want 2", n)
		}
		return nil
	})
	recs := c.consumePartition(topic, 0)
	if len(recs) != 3 {
		t.Fatalf("%d records in the log, want the 3 acknowledged", len(recs))
	}
}

// TestReplicaControllerFailover kills the controller: another broker takes
// over, and it handles the next broker failure by electing new leaders.
func TestReplicaControllerFailover(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	const topic = "ctl"
	c.createTopic(topic, 3, 3, nil)
	controller := func() int32 {
		var id int32 = -1
		waitFor(t, 30*time.Second, func() error {
			for _, pid := range c.ids() {
				p := c.procs[pid]
				if !p.running() {
					continue
				}
				cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr))
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				md, err := kadm.NewClient(cl).BrokerMetadata(ctx)
				cancel()
				cl.Close()
				if err != nil {
					return err
				}
				if md.Controller < 0 || !c.procs[md.Controller].running() {
					return fmt.Errorf("controller %d is not a running broker", md.Controller)
				}
				id = md.Controller
				return nil
			}
			return errors.New("no running broker")
		})
		return id
	}
	first := controller()
	c.procs[first].kill()
	var second int32
	waitFor(t, 30*time.Second, func() error {
		second = controller()
		if second == first {
			return fmt.Errorf("controller is still %d", first)
		}
		return nil
	})
	// Every partition first loses the killed broker (it led one of them).
	c.waitISR(topic, 2, 30*time.Second)
	var victim int32
	for _, id := range c.ids() {
		if id != first && id != second {
			victim = id
		}
	}
	c.procs[victim].kill()
	v := c.waitISR(topic, 1, 30*time.Second)
	for p, pv := range v {
		if pv.Leader != second {
			t.Errorf("partition %d led by %d, want the survivor %d", p, pv.Leader, second)
		}
	}
	cl := c.client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatalf("produce through the last broker: %v", err)
	}
}

// TestReplicaDivergentFollowerTruncated gives the leader records its
// followers never saw (acks=1 writes while both followers are frozen with
// SIGSTOP), kills it, and lets a follower take over. When the old leader
// comes back as a follower, its divergent tail is truncated (KIP-101,
// KIP-279): afterwards all three replicas hold exactly the same records on
// disk, without the lost acks=1 writes.
func TestReplicaDivergentFollowerTruncated(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	const topic = "diverge"
	c.createTopic(topic, 1, 3, nil)
	cl := c.client(kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	produce := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "%s-%d", prefix, i)}).FirstErr(); err != nil {
				t.Fatalf("produce %s-%d: %v", prefix, i, err)
			}
		}
	}
	produce("committed", 10)
	v := c.waitISR(topic, 3, 30*time.Second)[0]
	leader := c.procs[v.Leader]
	var followers []*proc
	for _, id := range v.Replicas {
		if id != v.Leader {
			followers = append(followers, c.procs[id])
		}
	}
	for _, f := range followers {
		f.signal(syscall.SIGSTOP)
	}
	stopped := time.Now()
	// A fetch the leader was long-polling when they froze still gets its
	// answer into their socket buffers; wait until those have returned
	// (replica.fetch.wait.max.ms), so nothing below reaches them.
	time.Sleep(700 * time.Millisecond)
	// kgo applies the client's acks to every produce it sends.
	one, err := kgo.NewClient(kgo.SeedBrokers(leader.addr), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	for i := range 5 {
		req := produceRequest(topic, 1, 5000, buildBatch(-1, -1, 0, fmt.Sprintf("lost-%d", i)))
		// Straight to the seed (the leader): a metadata request would
		// pick any broker, frozen ones included.
		raw, err := one.SeedBrokers()[0].Request(ctx, req)
		var resp *kmsg.ProduceResponse
		if err == nil {
			resp = raw.(*kmsg.ProduceResponse)
		}
		if err != nil || resp.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatalf("acks=1 write to the leader: %v %+v", err, resp)
		}
	}
	// Nothing past the high watermark is visible: consumers see the 10
	// committed records only, and acks=all cannot complete.
	lo := kmsg.NewPtrListOffsetsRequest()
	{
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Timestamp = -1
		rt.Partitions = append(rt.Partitions, rp)
		lo.Topics = append(lo.Topics, rt)
	}
	if raw, err := one.SeedBrokers()[0].Request(ctx, lo); err != nil {
		t.Fatalf("ListOffsets: %v", err)
	} else if end := raw.(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0].Offset; end != 10 {
		t.Errorf("latest offset (the high watermark) is %d with uncommitted writes, want 10", end)
	}
	allReq := produceRequest(topic, -1, 200, buildBatch(-1, -1, 0, "lost-timeout"))
	allCl, err := kgo.NewClient(kgo.SeedBrokers(leader.addr), kgo.DisableIdempotentWrite())
	if err != nil {
		t.Fatal(err)
	}
	defer allCl.Close()
	if raw, err := allCl.SeedBrokers()[0].Request(ctx, allReq); err != nil {
		t.Fatalf("acks=all with frozen followers: %v", err)
	} else if code := raw.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode; code != kerr.RequestTimedOut.Code {
		t.Errorf("acks=all with frozen followers: code %d, want REQUEST_TIMED_OUT (%d)", code, kerr.RequestTimedOut.Code)
	}
	leader.kill()
	for _, f := range followers {
		f.signal(syscall.SIGCONT)
	}
	t.Logf("followers were frozen for %v", time.Since(stopped))
	c.waitLeader(topic, 0, v.Leader, 30*time.Second)
	produce("after", 3)
	leader.restart()
	c.waitISR(topic, 3, 60*time.Second)
	produce("rejoined", 2)
	c.waitISR(topic, 3, 30*time.Second)
	// Wait for the last fetches to land, then compare the files.
	c.waitReplicasCaughtUp(topic, 1, 3, 30*time.Second)
	for _, id := range c.ids() {
		c.procs[id].kill()
	}
	var want []string
	for i, id := range c.ids() {
		got := replicaRecords(t, c.procs[id].dataDir, topic, 0)
		for _, r := range got {
			if strings.Contains(r, "lost-") {
				t.Errorf("broker %d still has %s", id, r)
			}
		}
		if i == 0 {
			want = got
			continue
		}
		if !slices.Equal(got, want) {
			t.Errorf("broker %d's log differs:\n got %v\nwant %v", id, got, want)
		}
	}
	if len(want) != 15 {
		t.Errorf("%d records on disk, want 15 (10 committed, 3 after the failover, 2 after the rejoin): %v", len(want), want)
	}
}
