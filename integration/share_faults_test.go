package integration

import (
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestShareStateSurvivesKill9 has a share consumer accept the first half
// of what it acquired and hold the rest, then kills the broker process
// with SIGKILL (and the consumer with it) and restarts it: the group's
// start offset is where the accepts left it, and a new consumer gets
// exactly the records not accepted (the held ones again, since an
// acquisition does not survive a restart) and never an accepted one.
func TestShareStateSurvivesKill9(t *testing.T) {
	t.Parallel()
	p := startProc(t, shareProcFlags(1)...)
	const topic, group, n = "share-kill", "share-kill-g", 20
	createTopic(t, p.addr, topic, 1, nil)
	cl := client(t, p.addr)
	shareGroupConfigs(t, cl, group, "share.auto.offset.reset", "earliest")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for _, v := range seqValues("kill", n) {
		recs = append(recs, &kgo.Record{Topic: topic, Value: []byte(v)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	d := newCutDialer()
	first := hungShareClient(t, []string{p.addr}, group, []string{topic}, d)
	var got []*kgo.Record
	waitFor(t, 20*time.Second, func() error {
		got, _ = pollShare(t, first, 500*time.Millisecond)
		if len(got) < 2 {
			return fmt.Errorf("first consumer got %d records, want at least 2 in one poll", len(got))
		}
		return nil
	})
	if got[0].Offset != 0 {
		t.Fatalf("first consumer's first record is at offset %d, want 0 (earliest)", got[0].Offset)
	}
	mid := got[len(got)/2].Offset
	for _, r := range got {
		if r.Offset < mid {
			r.Ack(kgo.AckAccept)
		}
	}
	if err := first.FlushAcks(ctx); err != nil {
		t.Fatalf("flush acks: %v", err)
	}
	waitShareStartOffset(t, kadm.NewClient(cl), group, topic, 0, mid, 15*time.Second)
	t.Logf("accepted offsets 0-%d, holding %d-%d; kill -9", mid-1, mid, got[len(got)-1].Offset)

	p.kill()
	d.kill()
	p.restart()
	cl2 := client(t, p.addr)
	adm := kadm.NewClient(cl2)
	waitShareStartOffset(t, adm, group, topic, 0, mid, 30*time.Second)
	second := shareClient(t, []string{p.addr}, group, []string{topic})
	offs := acceptShare(t, second, int(n-mid))
	var want []int64
	for o := mid; o < n; o++ {
		want = append(want, o)
	}
	if !slices.Equal(sortedCopy(offs), want) {
		t.Errorf("after the restart the group got offsets %v, want %v", offs, want)
	}
	waitShareStartOffset(t, adm, group, topic, 0, n, 15*time.Second)
}

// shareLedger records, for share consumers of one partition, every
// delivery and which records are known accepted: a poll's records are
// accepted, the acks flushed, and they count as accepted only if no ack
// of that client failed meanwhile (ShareAckCallback).
type shareLedger struct {
	t testing.TB
	// gate is held for reading by each consumer round (poll, ack,
	// flush); the test takes it to pause the consumers.
	gate       sync.RWMutex
	mu         sync.Mutex
	accepted   map[string]bool
	delivered  map[string]int
	lastAt     map[string]time.Time // when a record was last delivered
	lastCount  map[string]int32     // its delivery count then
	deliveries int
	violations []string
}

func newShareLedger(t testing.TB) *shareLedger {
	return &shareLedger{t: t, accepted: map[string]bool{}, delivered: map[string]int{}, lastAt: map[string]time.Time{}, lastCount: map[string]int32{}}
}

func (l *shareLedger) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.accepted)
}

// run consumes with a new client until ctx ends.
func (l *shareLedger) run(ctx context.Context, name string, seeds []string, group, topic string) {
	var (
		ackMu   sync.Mutex
		ackErrs int
	)
	// Strict record limits: a paused consumer fetches nothing ahead.
	c := shareClient(l.t, seeds, group, []string{topic}, kgo.ShareMaxRecords(10), kgo.ShareMaxRecordsStrict(),
		kgo.ShareAckCallback(func(_ *kgo.Client, rs kgo.ShareAckResults) {
			if err := rs.Error(); err != nil {
				ackMu.Lock()
				ackErrs++
				ackMu.Unlock()
			}
		}))
	for ctx.Err() == nil {
		l.gate.RLock()
		l.round(ctx, name, c, &ackMu, &ackErrs)
		l.gate.RUnlock()
	}
}

// round is one poll of a ledger consumer: deliveries are checked against
// the records known accepted, then accepted.
func (l *shareLedger) round(ctx context.Context, name string, c *kgo.Client, ackMu *sync.Mutex, ackErrs *int) {
	recs, _ := pollShare(l.t, c, 500*time.Millisecond)
	if len(recs) == 0 {
		return
	}
	ackMu.Lock()
	before := *ackErrs
	ackMu.Unlock()
	l.mu.Lock()
	for _, r := range recs {
		l.deliveries++
		l.delivered[string(r.Value)]++
		l.lastAt[string(r.Value)] = time.Now()
		l.lastCount[string(r.Value)] = r.DeliveryCount()
		if v := string(r.Value); l.accepted[v] {
			l.violations = append(l.violations, fmt.Sprintf("%s: %q (offset %d) delivered again (delivery count %d) after it was accepted", name, v, r.Offset, r.DeliveryCount()))
		}
	}
	l.mu.Unlock()
	for _, r := range recs {
		r.Ack(kgo.AckAccept)
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := c.FlushAcks(fctx)
	cancel()
	ackMu.Lock()
	failed := *ackErrs != before
	ackMu.Unlock()
	if err != nil || failed {
		return // not known accepted: may well come again
	}
	l.mu.Lock()
	for _, r := range recs {
		l.accepted[string(r.Value)] = true
	}
	l.mu.Unlock()
}

// javaStringHash is Java's String.hashCode of an ASCII string.
func javaStringHash(s string) int32 {
	var h int32
	for i := 0; i < len(s); i++ {
		h = 31*h + int32(s[i])
	}
	return h
}

// shareCoordinator returns the running broker holding the share state of
// the share-partition key ("group:topicId:partition"): the one FindCoordinator
// (key type 2, SHARE) names, or, when the broker does not answer that key
// type, the leader of the __share_group_state partition Kafka's
// ShareCoordinatorService.partitionFor places the key in (the key's Java
// hash, made non-negative, modulo the partitions).
func (c *cluster) shareCoordinator(adm *kadm.Client, key string, statePartitions int32) int32 {
	c.t.Helper()
	var coord int32
	waitFor(c.t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, ok := adm.FindShareCoordinators(ctx, key)[key]
		if ok && r.Err == nil {
			if c.procs[r.NodeID] == nil || !c.procs[r.NodeID].running() {
				return fmt.Errorf("share coordinator of %s is broker %d, which is down", key, r.NodeID)
			}
			coord = r.NodeID
			return nil
		}
		c.t.Logf("FindCoordinator (share) %s: %v; placing the key by its hash", key, r.Err)
		h := javaStringHash(key)
		if h == math.MinInt32 {
			h = 0
		} else if h < 0 {
			h = -h
		}
		p := h % statePartitions
		v, err := c.metadata("__share_group_state")
		if err != nil {
			return err
		}
		pv, ok := v[p]
		if !ok || pv.Leader < 0 || !c.procs[pv.Leader].running() {
			return fmt.Errorf("__share_group_state/%d: leader %d", p, pv.Leader)
		}
		coord = pv.Leader
		return nil
	})
	return coord
}

// TestShareClusterKill9LeaderAndStateCoordinator runs two share consumers
// of a replicated (RF 3) one-partition topic on three broker processes
// while kill -9 hits the partition's leader and then the leader of the
// __share_group_state partition holding the share-partition's state (the
// share coordinator FindCoordinator names for it), each restarted after
// the cluster has moved on without it. Records are produced in rounds;
// at each kill another member holds records it acquired, unacknowledged
// (and dies with the broker). Every round is consumed while the killed
// broker is down, the held records included; no record known accepted is
// ever delivered again, and every record is accepted in the end.
func TestShareClusterKill9LeaderAndStateCoordinator(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3, shareProcFlags(3)...)
	const topic, group, round = "share-cluster", "share-cluster-g", 40
	c.createTopic(topic, 1, 3, minISR2())
	adm := c.admin()
	shareGroupConfigs(t, c.client(), group, "share.auto.offset.reset", "earliest")
	prod := c.client(kgo.DefaultProduceTopic(topic))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	l := newShareLedger(t)
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.run(runCtx, fmt.Sprintf("consumer %d", i), c.addrs(), group, topic)
		}()
	}
	defer func() {
		stop()
		wg.Wait()
	}()

	produced := 0
	produceRound := func(tag string) {
		t.Helper()
		var recs []*kgo.Record
		for i := range round {
			recs = append(recs, kgo.StringRecord(fmt.Sprintf("%s-%d", tag, i)))
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce round %s: %v", tag, err)
		}
		produced += round
	}
	waitAccepted := func(when string) {
		t.Helper()
		start := time.Now()
		waitFor(t, 90*time.Second, func() error {
			if got := l.count(); got < produced {
				return fmt.Errorf("%s: %d of %d records accepted", when, got, produced)
			}
			return nil
		})
		t.Logf("%s: all %d records accepted after %v", when, produced, time.Since(start).Round(time.Millisecond))
	}

	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	id := md.Topics[topic].ID
	key := fmt.Sprintf("%s:%s:0", group, base64.RawURLEncoding.EncodeToString(id[:]))

	// holdThenKill pauses the ledger's consumers, produces a round, lets
	// another member acquire part of it and hold it unacknowledged, then
	// kill -9s the broker victim names, and the holder (its sockets
	// close). The resumed consumers get the held records again and
	// accept everything while the broker is down.
	holdThenKill := func(tag, role string, victim func() int32) int32 {
		t.Helper()
		l.gate.Lock()
		produceRound(tag)
		d := newCutDialer()
		holder := hungShareClient(t, c.addrs(), group, []string{topic}, d, kgo.ShareMaxRecords(5), kgo.ShareMaxRecordsStrict())
		var held []string
		waitFor(t, 30*time.Second, func() error {
			recs, _ := pollShare(t, holder, 500*time.Millisecond)
			for _, r := range recs {
				held = append(held, string(r.Value))
			}
			if len(held) == 0 {
				return fmt.Errorf("the holder acquired nothing of round %s", tag)
			}
			return nil
		})
		id := victim()
		c.procs[id].kill()
		d.kill()
		killed := time.Now()
		t.Logf("kill -9 broker %d (%s) while a member holds %v", id, role, held)
		l.gate.Unlock()
		produceRound(tag + "-more")
		waitAccepted(fmt.Sprintf("with broker %d (%s) down", id, role))
		l.mu.Lock()
		// Every record acquired when the broker died (by the holder or
		// by the consumers) is free on the new leader at once: none may
		// wait for its lock (the default 30 s) to come back.
		for v, at := range l.lastAt {
			if since := at.Sub(killed); l.delivered[v] > 1 && since > 20*time.Second {
				t.Errorf("%q delivered %d times, the last (delivery count %d) %v after broker %d (%s) was killed: it waited for a lock",
					v, l.delivered[v], l.lastCount[v], since.Round(time.Millisecond), id, role)
			}
		}
		for _, v := range held {
			if l.delivered[v] == 0 {
				t.Errorf("%q, held when broker %d was killed, was never delivered again", v, id)
				continue
			}
			// The acquisition died with the broker or the holder's
			// connection: the record must not wait for its lock (the
			// default 30 s) to come back.
			if since := l.lastAt[v].Sub(killed); since > 20*time.Second {
				t.Errorf("%q, held when broker %d (%s) was killed, came back only %v later (its lock ran out?)", v, id, role, since.Round(time.Millisecond))
			}
		}
		l.mu.Unlock()
		return id
	}

	produceRound("before")
	waitAccepted("before any kill")

	leader := holdThenKill("leader-down", "leader of "+topic+"/0", func() int32 {
		return c.waitLeader(topic, 0, -1, 30*time.Second).Leader
	})
	c.procs[leader].restart()
	c.waitISR(topic, 3, 60*time.Second)

	coord := holdThenKill("coordinator-down", "share coordinator of "+key, func() int32 {
		return c.shareCoordinator(adm, key, 3)
	})
	c.procs[coord].restart()
	c.waitISR(topic, 3, 60*time.Second)

	produceRound("after")
	waitAccepted("after the restarts")
	waitShareStartOffset(t, adm, group, topic, 0, int64(produced), 30*time.Second)

	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range l.violations {
		t.Error(v)
	}
	t.Logf("%d records, %d deliveries", produced, l.deliveries)
}
