package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestReplicaGroupCoordinatorMoves kills the broker coordinating a
// consumer group: the coordinator moves with the leadership of the
// group's __consumer_offsets partition, reloads it from the replicated
// log, and a new member resumes from the committed offsets.
func TestReplicaGroupCoordinatorMoves(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	const topic, group = "grp", "movers"
	c.createTopic(topic, 3, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	prod := c.client(kgo.DefaultProduceTopic(topic))
	produce := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			if err := prod.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "%s-%d", prefix, i)}).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
		}
	}
	consume := func(n int) []string {
		t.Helper()
		cl := c.client(kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		var got []string
		for len(got) < n {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("consumed %d of %d: %v", len(got), n, ctx.Err())
			}
			fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatalf("commit: %v", err)
		}
		cl.Close()
		return got
	}
	produce("first", 30)
	if got := consume(30); len(got) != 30 {
		t.Fatalf("first member consumed %d records", len(got))
	}
	coords := c.admin().FindGroupCoordinators(ctx, group)
	old := coords[group].NodeID
	if coords[group].Err != nil || c.procs[old] == nil {
		t.Fatalf("coordinator: %+v", coords[group])
	}
	c.procs[old].kill()
	produce("second", 30)
	got := consume(30)
	for _, v := range got {
		if !strings.HasPrefix(v, "second-") {
			t.Fatalf("after the coordinator moved, the group re-read %q: its committed offsets were lost", v)
		}
	}
	coords = c.admin().FindGroupCoordinators(ctx, group)
	if coords[group].Err != nil {
		t.Fatalf("coordinator after failover: %+v", coords[group])
	}
	if coords[group].NodeID == old {
		t.Fatalf("coordinator is still the killed broker %d", old)
	}
}

// TestReplicaControlledShutdownAndPreferredElection stops a leader with
// SIGTERM: it hands its leaderships over before it exits, so an acks=all
// producer sees no failure. After its restart, the ElectLeaders API moves
// leadership back to the preferred replicas.
func TestReplicaControlledShutdownAndPreferredElection(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3, "--set", "auto.leader.rebalance.enable=false")
	const topic = "handover"
	minISR := "2"
	c.createTopic(topic, 3, 3, map[string]*string{"min.insync.replicas": &minISR})
	before := c.waitISR(topic, 3, 30*time.Second)
	var victim int32 = -1
	for _, pv := range before {
		if pv.Leader == pv.Replicas[0] {
			victim = pv.Leader
			break
		}
	}
	if victim < 0 {
		t.Fatalf("no partition led by its preferred replica: %+v", before)
	}
	hist := newAcked()
	prod := c.client(kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	stopProducing := make(chan struct{})
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for seq := 0; ; seq++ {
			select {
			case <-stopProducing:
				return
			default:
			}
			p := int32(seq % 3)
			r := &kgo.Record{Partition: p, Value: fmt.Appendf(nil, "%d-%06d", p, seq)}
			hist.add(r, prod.ProduceSync(ctx, r).FirstErr())
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(time.Second)
	if err := c.procs[victim].stop(30 * time.Second); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, c.procs[victim].output())
	}
	out := c.procs[victim].output()
	if !strings.Contains(out, "controlled shutdown") || strings.Contains(out, "leaderships_moved=0 ") {
		t.Errorf("the broker did not hand over its leaderships:\n%s", out)
	}
	after, err := c.metadata(topic)
	if err != nil {
		t.Fatal(err)
	}
	for p, pv := range after {
		if pv.Leader == victim {
			t.Errorf("partition %d still led by the stopped broker", p)
		}
		if before[p].Leader == victim && pv.Epoch <= before[p].Epoch {
			t.Errorf("partition %d: leader epoch %d after the handover, was %d", p, pv.Epoch, before[p].Epoch)
		}
	}
	time.Sleep(500 * time.Millisecond)
	c.procs[victim].restart()
	c.waitISR(topic, 3, 60*time.Second)
	close(stopProducing)
	<-produced
	hist.mu.Lock()
	errs := len(hist.errs)
	hist.mu.Unlock()
	if errs > 0 {
		t.Errorf("%d acks=all produces failed across a controlled shutdown: %v", errs, hist.errs[0])
	}

	resp, err := c.admin().ElectLeaders(ctx, kadm.ElectPreferredReplica, kadm.TopicsSet{topic: {0: {}, 1: {}, 2: {}}})
	if err != nil {
		t.Fatalf("ElectLeaders: %v", err)
	}
	for _, ps := range resp {
		for p, r := range ps {
			if r.Err != nil && !strings.Contains(r.Err.Error(), "ELECTION_NOT_NEEDED") {
				t.Errorf("partition %d: %v", p, r.Err)
			}
		}
	}
	final := c.waitISR(topic, 3, 30*time.Second)
	for p, pv := range final {
		if pv.Leader != pv.Replicas[0] {
			t.Errorf("partition %d led by %d after a preferred election, preferred %d", p, pv.Leader, pv.Replicas[0])
		}
	}
	for p := int32(0); p < 3; p++ {
		checkHistory(t, p, hist.byPart[p], c.consumePartition(topic, p))
	}
}

// TestReplicaAutomaticPreferredElection restarts a broker and waits for the
// controller's periodic imbalance check (auto.leader.rebalance.enable) to
// give it back the partitions it is the preferred leader of.
func TestReplicaAutomaticPreferredElection(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3, "--set", "leader.imbalance.check.interval.seconds=2")
	const topic = "rebalance"
	c.createTopic(topic, 3, 3, nil)
	v := c.waitISR(topic, 3, 30*time.Second)
	victim := v[0].Replicas[0]
	c.procs[victim].kill()
	c.waitLeader(topic, 0, victim, 30*time.Second)
	c.procs[victim].restart()
	waitFor(t, 60*time.Second, func() error {
		v, err := c.metadata(topic)
		if err != nil {
			return err
		}
		for p, pv := range v {
			if pv.Leader != pv.Replicas[0] || len(pv.ISR) != 3 {
				return fmt.Errorf("partition %d: leader %d, preferred %d, isr %v", p, pv.Leader, pv.Replicas[0], pv.ISR)
			}
		}
		return nil
	})
}

// TestReplicaNotLeaderNamesLeader sends a produce and a fetch to a broker
// that follows the partition: both answer NOT_LEADER_OR_FOLLOWER with the
// current leader and its endpoint (KIP-951), and Metadata agrees.
func TestReplicaNotLeaderNamesLeader(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	const topic = "wrong-broker"
	c.createTopic(topic, 1, 3, nil)
	v := c.waitISR(topic, 3, 30*time.Second)[0]
	var follower int32
	for _, id := range v.Replicas {
		if id != v.Leader {
			follower = id
		}
	}
	cl := c.client(kgo.DisableIdempotentWrite())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).Metadata(ctx, topic); err != nil {
		t.Fatal(err)
	}
	br := cl.Broker(int(follower))

	preq := produceRequest(topic, 1, 5000, buildBatch(-1, -1, 0, "v"))
	var presp *kmsg.ProduceResponse
	var pp kmsg.ProduceResponseTopicPartition
	// The follower may learn of the new topic a moment after the broker
	// that created it (UNKNOWN_TOPIC_OR_PARTITION meanwhile, as in Kafka).
	waitFor(t, 10*time.Second, func() error {
		raw, err := br.Request(ctx, preq)
		if err != nil {
			return err
		}
		presp = raw.(*kmsg.ProduceResponse)
		pp = presp.Topics[0].Partitions[0]
		if pp.ErrorCode == kerr.UnknownTopicOrPartition.Code {
			return errors.New("follower does not know the topic yet")
		}
		// The topic's record and its partition's state arrive apart: until
		// the state does, the follower knows of no leader to name (-1).
		if pp.ErrorCode == kerr.NotLeaderForPartition.Code && pp.CurrentLeader.LeaderID < 0 {
			return errors.New("follower does not know the leader yet")
		}
		return nil
	})
	if pp.ErrorCode != kerr.NotLeaderForPartition.Code {
		t.Fatalf("produce to a follower: code %d, want NOT_LEADER_OR_FOLLOWER", pp.ErrorCode)
	}
	if presp.Version >= 10 {
		if pp.CurrentLeader.LeaderID != v.Leader || pp.CurrentLeader.LeaderEpoch != v.Epoch {
			t.Errorf("produce: current leader %+v, want %d at epoch %d", pp.CurrentLeader, v.Leader, v.Epoch)
		}
		if len(presp.Brokers) != 1 || presp.Brokers[0].NodeID != v.Leader || presp.Brokers[0].Port == 0 {
			t.Errorf("produce: node endpoints %+v, want the leader's", presp.Brokers)
		}
	} else {
		t.Errorf("client chose Produce v%d; KIP-951 needs v10+", presp.Version)
	}

	freq := kmsg.NewPtrFetchRequest()
	freq.ReplicaID, freq.MaxWaitMillis, freq.MaxBytes = -1, 100, 1<<20
	frt := kmsg.NewFetchRequestTopic()
	frt.Topic = topic
	frp := kmsg.NewFetchRequestTopicPartition()
	frp.PartitionMaxBytes = 1 << 20
	frt.Partitions = append(frt.Partitions, frp)
	freq.Topics = append(freq.Topics, frt)
	md, err := kadm.NewClient(cl).Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if err := md.Topics[topic].Err; err != nil {
		t.Fatalf("metadata of %s: %v", topic, err)
	}
	frt.TopicID = md.Topics[topic].ID
	freq.Topics[0] = frt
	raw, err := br.Request(ctx, freq)
	if err != nil {
		t.Fatal(err)
	}
	fresp := raw.(*kmsg.FetchResponse)
	fp := fresp.Topics[0].Partitions[0]
	if fp.ErrorCode != kerr.NotLeaderForPartition.Code {
		t.Fatalf("fetch from a follower: code %d, want NOT_LEADER_OR_FOLLOWER", fp.ErrorCode)
	}
	if fresp.Version >= 16 {
		if fp.CurrentLeader.LeaderID != v.Leader || len(fresp.Brokers) != 1 || fresp.Brokers[0].NodeID != v.Leader {
			t.Errorf("fetch: current leader %+v, endpoints %+v, want %d", fp.CurrentLeader, fresp.Brokers, v.Leader)
		}
	}
}

// TestReplicaOfflineUntilUncleanElection loses both replicas of a
// partition, the follower first, then brings back only the one outside the
// ISR: with unclean.leader.election.enable=false the partition stays
// offline (the controller reports it), and an unclean ElectLeaders brings
// it back with that replica as leader.
func TestReplicaOfflineUntilUncleanElection(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	const topic = "unclean"
	c.createTopic(topic, 1, 2, nil)
	v := c.waitISR(topic, 2, 30*time.Second)[0]
	leader, follower := v.Leader, v.Replicas[0]
	if follower == leader {
		follower = v.Replicas[1]
	}
	c.procs[follower].kill()
	c.waitISR(topic, 1, 30*time.Second)
	c.procs[leader].kill()
	c.procs[follower].restart()
	waitFor(t, 30*time.Second, func() error {
		v, err := c.metadata(topic)
		if err != nil {
			return err
		}
		if v[0].Leader != -1 {
			return fmt.Errorf("leader %d, want none: the only ISR member is down", v[0].Leader)
		}
		return nil
	})
	time.Sleep(2 * time.Second) // several controller passes: it must stay offline
	if v, err := c.metadata(topic); err != nil || v[0].Leader != -1 {
		t.Fatalf("clean election only, yet leader %+v (%v)", v[0], err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.admin().ElectLeaders(ctx, kadm.ElectLiveReplica, kadm.TopicsSet{topic: {0: {}}})
	if err != nil {
		t.Fatalf("ElectLeaders unclean: %v", err)
	}
	if r := resp[topic][0]; r.Err != nil {
		t.Fatalf("ElectLeaders unclean: %v", r.Err)
	}
	got := c.waitLeader(topic, 0, leader, 30*time.Second)
	if got.Leader != follower || len(got.ISR) != 1 {
		t.Fatalf("after the unclean election: %+v, want %d leading alone", got, follower)
	}
	cl := c.client(kgo.DefaultProduceTopic(topic))
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("back")}).FirstErr(); err != nil {
		t.Fatalf("produce after the unclean election: %v", err)
	}
}

// TestReplicaLeaderFencedWithoutEtcd kills etcd under a running cluster:
// no broker can renew its lease, so none may go on acknowledging what only
// the lease protects (acks=1) once the lease could have expired on the
// server (broker.session.timeout.ms, 3 s here). An acks=1 produce sent well
// after that fails instead of being acknowledged by a leader the cluster
// can no longer vouch for; the brokers notice the loss and stay up, trying
// to register again (TestFaultEtcdOutageSurvived covers the return).
func TestReplicaLeaderFencedWithoutEtcd(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	const topic = "fenced"
	c.createTopic(topic, 1, 3, nil)
	v := c.waitISR(topic, 3, 30*time.Second)[0]
	leader := c.procs[v.Leader]
	cl, err := kgo.NewClient(kgo.SeedBrokers(leader.addr), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produce := func() (int16, error) {
		req := produceRequest(topic, 1, 1000, buildBatch(-1, -1, 0, "v"))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		raw, err := cl.SeedBrokers()[0].Request(ctx, req)
		if err != nil {
			return -1, err
		}
		return raw.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode, nil
	}
	waitFor(t, 10*time.Second, func() error {
		if code, err := produce(); err != nil || code != 0 {
			return fmt.Errorf("produce to the leader: code %d, %v", code, err)
		}
		return nil
	})
	c.server.Kill()
	killed := time.Now()
	time.Sleep(5 * time.Second) // beyond the 3 s lease: the server may have expired it
	code, err := produce()
	if err == nil && code == 0 {
		t.Fatalf("a leader acknowledged a produce %v after etcd died, past its lease", time.Since(killed).Round(time.Millisecond))
	}
	t.Logf("produce %v after etcd died: code %d, %v", time.Since(killed).Round(time.Millisecond), code, err)
	waitFor(t, 20*time.Second, func() error {
		if out := leader.output(); !strings.Contains(out, "lost the etcd lease") {
			return errors.New("the leader has not given up its registration yet")
		}
		return nil
	})
	if !leader.alive() {
		t.Fatalf("the leader exited after losing its lease:\n%s", leader.output())
	}
}
