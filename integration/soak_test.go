package integration

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The soak's shape: load, chaos schedule and the bounds of the end phase.
const (
	soakPartitions    = 6
	soakProducers     = 2
	soakProducerRate  = 150 // records/s per producer
	soakInFlight      = 96  // unacknowledged records per producer
	soakDefaultLength = 2 * time.Minute
	// soakEndBudget bounds everything after the chaos phase: rejoining the
	// ISR, draining the producers, consumers and the exactly-once stage
	// catching up, the final reads.
	soakEndBudget = 8 * time.Minute
	// soakEOSRate is the input rate of the exactly-once chain, records/s.
	soakEOSRate = 100
)

// TestSoakRandomKillsHistory is the soak test (`make soak`; not in CI).
// Three broker processes on one etcd hold a topic of 6 partitions with
// replication factor 3 and min.insync.replicas=2. Two idempotent acks=all
// producers and two consumers (one reading the partitions directly, one
// consumer group of two members) run steadily while a seeded schedule kills
// (SIGKILL) or stops (SIGTERM) one broker at a time and restarts it. At the
// end a fresh read of every partition is checked against the history: every
// acknowledged record is in the log exactly once at its acknowledged
// offset, no value is there twice, each producer's sequence rises with the
// offset in every partition, every consumer saw at every offset the value
// the log holds there, and the three replicas are identical on disk.
//
// Beside it runs an exactly-once chain (soakEOS): a transactional
// consume-transform-produce stage between two topics, whose output must
// hold every input record exactly once, and a transactional producer whose
// committed transactions must be read whole and aborted ones not at all.
//
// SLUICE_SOAK=1 enables it. SLUICE_SOAK_DURATION (a Go duration, default 2m)
// is the length of the chaos phase; SLUICE_SOAK_SEED replays a schedule of
// actions and delays (the seed is always logged; the cluster's own timing
// still differs between runs). The full output of every broker run is
// written to a temporary directory when the test fails, or always with
// SLUICE_SOAK_KEEP_LOGS=1.
func TestSoakRandomKillsHistory(t *testing.T) {
	length, seed := soakSettings(t)
	t.Logf("soak: seed %d (replay with SLUICE_SOAK_SEED=%d), chaos for %v", seed, seed, length)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	c := startCluster(t, 3)
	logs := newSoakLogs(t, c)
	const topic = "soak"
	minISR := "2"
	c.createTopic(topic, soakPartitions, 3, map[string]*string{"min.insync.replicas": &minISR})

	start := time.Now()
	t.Logf("[   0.00s] load starts; that is %s in the broker logs", start.UTC().Format("15:04:05.000"))
	hist := newSoakHistory(start)
	producers := startSoakProducers(c, topic, hist)
	direct := newSoakView("direct")
	group := newSoakView("group")
	consumers := startSoakConsumers(c, topic, direct, group)
	eos := startSoakEOS(c)

	chaos := &soakChaos{t: t, c: c, topic: topic, rng: rng, start: start, logs: logs}
	chaos.run(start.Add(length), func() string { return soakProgress(hist, direct, group) + "; " + eos.progress() })

	chaos.restartDown()
	t.Logf("%s chaos over after %d actions; waiting for a full ISR", chaos.stamp(), chaos.actions)
	c.waitISR(topic, 3, 2*time.Minute)
	eos.finish(t, c, chaos.stamp)
	producers.stop(t)
	ends := soakEndOffsets(t, c, topic)
	t.Logf("%s producers drained: %s; end offsets %v", chaos.stamp(), soakProgress(hist, direct, group), ends)
	consumers.stop(t, ends, direct, group)

	final := map[int32][]*kgo.Record{}
	for p := range int32(soakPartitions) {
		final[p] = c.consumePartition(topic, p)
	}
	rep := &soakReport{t: t}
	logged := soakCheckLog(rep, final, ends)
	soakCheckAcked(rep, hist, logged)
	for _, v := range []*soakView{direct, group} {
		soakCheckView(rep, v, logged, ends)
	}
	c.waitISR(topic, 3, 30*time.Second)
	for _, id := range c.ids() {
		c.procs[id].kill()
	}
	soakCheckReplicas(rep, c, topic, final)
	rep.summary()
	hist.log(t, logged)
	direct.log(t)
	group.log(t)
}

// soakEOS is the soak's exactly-once chain: an idempotent producer fills
// soak-eos-in, a consume-transform-produce stage of two
// GroupTransactSession members (read_committed, offsets committed in the
// transactions) writes one record to soak-eos-out per input record, and a
// transactional producer runs transactions back to back on soak-txn,
// aborting every fourth. All of it runs under the chaos schedule.
type soakEOS struct {
	input *eosInput
	stage *eosStage
	loop  *txnLoop
}

const soakEOSIn, soakEOSOut, soakTxnTopic = "soak-eos-in", "soak-eos-out", "soak-txn"

func startSoakEOS(c *cluster) *soakEOS {
	two := "2"
	for _, tp := range []string{soakEOSIn, soakEOSOut, soakTxnTopic} {
		c.createTopic(tp, soakPartitions, 3, map[string]*string{"min.insync.replicas": &two})
	}
	return &soakEOS{
		input: startEOSInput(c.addrs(), soakEOSIn, soakPartitions, soakEOSRate),
		stage: startEOSStage(c.addrs(), soakEOSIn, soakEOSOut, "soak-eos", 2),
		loop:  startTxnLoop(c.addrs(), soakTxnTopic, "soak-txn-producer", soakPartitions),
	}
}

func (e *soakEOS) progress() string {
	sent, acked, failed := e.input.counts()
	return fmt.Sprintf("eos input %d sent, %d acked, %d failed; %s; txn loop %s", sent, acked, failed, e.stage.summary(), e.loop.summary())
}

// finish stops the input and the transactional producer, waits for the
// stage to commit the whole input, stops it, and checks the chain: the
// output (read_committed) holds exactly one record per input record, none
// missing, none duplicated; and the transactional producer's history
// holds (every committed transaction whole, no aborted record).
func (e *soakEOS) finish(t *testing.T, c *cluster, stamp func() string) {
	for _, tp := range []string{soakEOSIn, soakEOSOut, soakTxnTopic, "__transaction_state"} {
		c.waitISR(tp, 3, 2*time.Minute)
	}
	e.loop.stop(t)
	e.input.stop(t)
	adm := c.admin()
	sentinels := c.client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	writeSentinels(t, sentinels, soakEOSIn, soakPartitions)
	writeSentinels(t, sentinels, soakTxnTopic, soakPartitions)
	t.Logf("%s exactly-once chain: load stopped; %s", stamp(), e.progress())
	e.stage.waitCaughtUp(t, adm, stableOffsets(t, adm, soakEOSIn, time.Minute), 3*time.Minute)
	e.stage.stop(t)
	writeSentinels(t, sentinels, soakEOSOut, soakPartitions)
	t.Logf("%s exactly-once chain: stage caught up and stopped; %s", stamp(), e.stage.summary())

	e.input.mu.Lock()
	acked := maps.Clone(e.input.acked)
	e.input.mu.Unlock()
	checkEOS(t, readToSentinels(t, c.addrs(), soakEOSIn, soakPartitions, kgo.ReadCommitted(), 2*time.Minute),
		readToSentinels(t, c.addrs(), soakEOSOut, soakPartitions, kgo.ReadCommitted(), 2*time.Minute), acked)
	stableOffsets(t, adm, soakTxnTopic, time.Minute)
	e.loop.check(t, readToSentinels(t, c.addrs(), soakTxnTopic, soakPartitions, kgo.ReadCommitted(), 2*time.Minute))
	sent, ackedN, failed := e.input.counts()
	t.Logf("exactly-once input producer: %d sent, %d acknowledged, %d failed", sent, ackedN, failed)
	t.Logf("%s", e.stage.summary())
	t.Logf("transaction loop: %s", e.loop.summary())
	e.stage.logErrors(t)
	e.loop.logErrors(t)
}

// soakSettings skips the test unless SLUICE_SOAK is set and reads its
// length and seed from the environment.
func soakSettings(t *testing.T) (time.Duration, uint64) {
	if os.Getenv("SLUICE_SOAK") == "" {
		t.Skip("soak test, not run by make test: run it with `make soak` " +
			"(SLUICE_SOAK=1; SLUICE_SOAK_DURATION, default 2m; SLUICE_SOAK_SEED to replay)")
	}
	length := soakDefaultLength
	if s := os.Getenv("SLUICE_SOAK_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("SLUICE_SOAK_DURATION=%q: want a positive Go duration such as 2m (%v)", s, err)
		}
		length = d
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SLUICE_SOAK_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SLUICE_SOAK_SEED=%q: %v", s, err)
		}
		seed = v
	}
	if dl, ok := t.Deadline(); ok && time.Until(dl) < length+soakEndBudget {
		t.Fatalf("go test -timeout leaves %v; the soak needs %v of chaos plus up to %v at the end (make soak passes -timeout 30m)",
			time.Until(dl).Round(time.Second), length, soakEndBudget)
	}
	return length, seed
}

// soakValue is what producer id sends as its seq-th record; soakParse
// reverses it.
func soakValue(id, seq int) []byte { return fmt.Appendf(nil, "%d-%09d", id, seq) }

func soakParse(v string) (id, seq int, err error) {
	a, b, ok := strings.Cut(v, "-")
	if !ok {
		return 0, 0, fmt.Errorf("value %q is not <producer>-<sequence>", v)
	}
	if id, err = strconv.Atoi(a); err == nil {
		seq, err = strconv.Atoi(b)
	}
	return id, seq, err
}

// soakAck is where an acknowledged record was written.
type soakAck struct {
	partition int32
	offset    int64
}

// soakHistory collects every producer's outcomes: the acknowledged records
// by value, the failures by message, and per partition the longest time
// without an acknowledgement (how long the cluster stalled acks=all writes
// to it).
type soakHistory struct {
	mu      sync.Mutex
	start   time.Time
	sent    int
	acked   map[string]soakAck
	errs    map[string]int
	nerrs   int
	lastAck map[int32]time.Time
	gaps    map[int32]soakGap
}

// soakGap is a stretch of time without an acknowledgement.
type soakGap struct{ from, to time.Duration } // since the start

func newSoakHistory(start time.Time) *soakHistory {
	return &soakHistory{start: start, acked: map[string]soakAck{}, errs: map[string]int{},
		lastAck: map[int32]time.Time{}, gaps: map[int32]soakGap{}}
}

func (h *soakHistory) add(r *kgo.Record, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sent++
	if err != nil {
		h.nerrs++
		h.errs[err.Error()]++
		return
	}
	h.acked[string(r.Value)] = soakAck{r.Partition, r.Offset}
	now := time.Now()
	last, ok := h.lastAck[r.Partition]
	if g := h.gaps[r.Partition]; ok && now.Sub(last) > g.to-g.from {
		h.gaps[r.Partition] = soakGap{last.Sub(h.start), now.Sub(h.start)}
	}
	h.lastAck[r.Partition] = now
}

func (h *soakHistory) counts() (sent, acked, errs int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sent, len(h.acked), h.nerrs
}

// log reports the totals, the most frequent errors, and how many failed
// records reached the log anyway (allowed: the client gave up on a write
// the broker had taken).
func (h *soakHistory) log(t *testing.T, logged map[int32]map[int64]string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	inLog := 0
	for _, m := range logged {
		inLog += len(m)
	}
	t.Logf("producers: %d records finished, %d acknowledged, %d failed; %d records in the log (%d not acknowledged)",
		h.sent, len(h.acked), h.nerrs, inLog, inLog-len(h.acked))
	for p := range int32(soakPartitions) {
		g := h.gaps[p]
		t.Logf("partition %d: longest time without an acknowledgement %v, [%7.2fs] to [%7.2fs]",
			p, (g.to - g.from).Round(time.Millisecond), g.from.Seconds(), g.to.Seconds())
	}
	msgs := make([]string, 0, len(h.errs))
	for m := range h.errs {
		msgs = append(msgs, m)
	}
	sort.Slice(msgs, func(i, j int) bool { return h.errs[msgs[i]] > h.errs[msgs[j]] })
	for i, m := range msgs {
		if i == 5 {
			t.Logf("  ... %d more kinds of produce error", len(msgs)-i)
			break
		}
		t.Logf("  produce error x%d: %s", h.errs[m], m)
	}
}

// soakProducerSet is the running producers.
type soakProducerSet struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	clients []*kgo.Client
}

// startSoakProducers starts soakProducers idempotent acks=all producers.
// Each sends soakProducerRate records/s spread evenly over the partitions,
// one goroutine per partition with at most soakInFlight/soakPartitions
// records unacknowledged, so a partition that stalls does not hold up the
// others. The sequence in a value counts per producer; each partition
// receives a producer's sequence numbers in increasing order.
func startSoakProducers(c *cluster, topic string, hist *soakHistory) *soakProducerSet {
	ctx, cancel := context.WithCancel(context.Background())
	ps := &soakProducerSet{cancel: cancel}
	for id := range soakProducers {
		// A metadata refresh every second at most (kgo's default is 5 s),
		// so the acknowledgement gaps measure the cluster's failover more
		// than the client's refresh throttle.
		cl := c.client(kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordDeliveryTimeout(30*time.Second),
			kgo.MetadataMinAge(time.Second),
			kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }))
		ps.clients = append(ps.clients, cl)
		var seq atomic.Int64
		for p := range int32(soakPartitions) {
			ps.wg.Add(1)
			go func() {
				defer ps.wg.Done()
				soakProduce(ctx, cl, id, p, &seq, hist)
			}()
		}
	}
	return ps
}

func soakProduce(ctx context.Context, cl *kgo.Client, id int, p int32, seq *atomic.Int64, hist *soakHistory) {
	tick := time.NewTicker(time.Second * soakPartitions / soakProducerRate)
	defer tick.Stop()
	inflight := make(chan struct{}, soakInFlight/soakPartitions)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case <-ctx.Done():
			return
		case inflight <- struct{}{}:
		}
		r := &kgo.Record{Partition: p, Value: soakValue(id, int(seq.Add(1)))}
		cl.Produce(context.Background(), r, func(r *kgo.Record, err error) {
			hist.add(r, err)
			<-inflight
		})
	}
}

// stop ends the load and waits (bounded) until every record sent has been
// acknowledged or failed; the clients are closed afterwards, so the
// history no longer changes.
func (ps *soakProducerSet) stop(t *testing.T) {
	ps.cancel()
	ps.wg.Wait()
	for i, cl := range ps.clients {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		if err := cl.Flush(ctx); err != nil {
			t.Errorf("producer %d: records neither acknowledged nor failed 90 s after the load stopped: %v", i, err)
		}
		cancel()
		cl.Close()
	}
}

// soakView is what one consumer (or one group's members together) saw:
// per partition the value at every offset.
type soakView struct {
	name      string
	mu        sync.Mutex
	recs      map[int32]map[int64]string
	last      map[int32]int64
	records   int
	rereads   int
	rewinds   int
	conflicts []string
	fetchErrs map[string]int
}

func newSoakView(name string) *soakView {
	return &soakView{name: name, recs: map[int32]map[int64]string{}, last: map[int32]int64{}, fetchErrs: map[string]int{}}
}

// add records r. Seeing an offset again is allowed (a group member takes
// over from the last commit, a consumer resets); seeing it again with a
// different value is not.
func (v *soakView) add(r *kgo.Record) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.records++
	m := v.recs[r.Partition]
	if m == nil {
		m = map[int64]string{}
		v.recs[r.Partition] = m
	}
	if last, ok := v.last[r.Partition]; ok && r.Offset <= last {
		v.rewinds++
	}
	v.last[r.Partition] = r.Offset
	old, seen := m[r.Offset]
	switch {
	case !seen:
		m[r.Offset] = string(r.Value)
	case old == string(r.Value):
		v.rereads++
	default:
		v.conflicts = append(v.conflicts, fmt.Sprintf("partition %d offset %d: %q, later %q", r.Partition, r.Offset, old, r.Value))
	}
}

func (v *soakView) fetchErr(err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.fetchErrs[err.Error()]++
}

// missing counts the offsets below ends[p] this view has not seen.
func (v *soakView) missing(ends map[int32]int64) int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	var n int64
	for p, end := range ends {
		n += end
		for off := range v.recs[p] {
			if off < end {
				n--
			}
		}
	}
	return n
}

func (v *soakView) distinct() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for _, m := range v.recs {
		n += len(m)
	}
	return n
}

func (v *soakView) log(t *testing.T) {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for _, m := range v.recs {
		n += len(m)
	}
	t.Logf("consumer %s: %d records delivered, %d distinct offsets, %d re-read, %d rewinds, %d fetch error kinds",
		v.name, v.records, n, v.rereads, v.rewinds, len(v.fetchErrs))
	for m, k := range v.fetchErrs {
		t.Logf("  %s fetch error x%d: %s", v.name, k, m)
	}
}

// soakConsumerSet is the running consumers.
type soakConsumerSet struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	direct  *kgo.Client
	members []*kgo.Client
}

// startSoakConsumers starts a direct consumer of every partition, from the
// start, recording into direct, and two members of one consumer group
// recording into group (autocommit, so a member that takes a partition
// over re-reads from the last commit).
func startSoakConsumers(c *cluster, topic string, direct, group *soakView) *soakConsumerSet {
	ctx, cancel := context.WithCancel(context.Background())
	cs := &soakConsumerSet{cancel: cancel}
	parts := map[int32]kgo.Offset{}
	for p := range int32(soakPartitions) {
		parts[p] = kgo.NewOffset().AtStart()
	}
	fetchWait := kgo.FetchMaxWait(time.Second)
	cs.direct = c.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}), fetchWait)
	cs.consume(ctx, cs.direct, direct)
	for range 2 {
		m := c.client(kgo.ConsumerGroup("soak-group"), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), fetchWait)
		cs.members = append(cs.members, m)
		cs.consume(ctx, m, group)
	}
	return cs
}

func (cs *soakConsumerSet) consume(ctx context.Context, cl *kgo.Client, v *soakView) {
	cs.wg.Add(1)
	go func() {
		defer cs.wg.Done()
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil || fs.IsClientClosed() {
				return
			}
			fs.EachError(func(_ string, _ int32, err error) { v.fetchErr(err) })
			fs.EachRecord(v.add)
		}
	}()
}

// stop waits (bounded) until every view holds every offset below ends,
// then stops the consumers and leaves the group.
func (cs *soakConsumerSet) stop(t *testing.T, ends map[int32]int64, views ...*soakView) {
	deadline := time.Now().Add(2 * time.Minute)
	for _, v := range views {
		for v.missing(ends) > 0 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
	}
	cs.cancel()
	cs.wg.Wait()
	cs.direct.Close()
	for _, m := range cs.members {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		if err := m.LeaveGroupContext(ctx); err != nil {
			t.Logf("group member: leave group: %v", err)
		}
		cancel()
		m.Close()
	}
}

// soakEndOffsets lists every partition's end offset (the high watermark).
func soakEndOffsets(t *testing.T, c *cluster, topic string) map[int32]int64 {
	t.Helper()
	adm := c.admin()
	ends := map[int32]int64{}
	waitFor(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		offs, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			return err
		}
		for p := range int32(soakPartitions) {
			o, ok := offs.Lookup(topic, p)
			if !ok || o.Err != nil {
				return fmt.Errorf("end offset of partition %d: %v", p, o.Err)
			}
			ends[p] = o.Offset
		}
		return nil
	})
	return ends
}

func soakProgress(hist *soakHistory, direct, group *soakView) string {
	sent, acked, errs := hist.counts()
	return fmt.Sprintf("%d finished, %d acked, %d produce errors; consumed: direct %d, group %d",
		sent, acked, errs, direct.distinct(), group.distinct())
}

// soakChaos kills or stops one random broker at a time and restarts it.
// It runs on the test goroutine: restarting uses the harness's fatal
// waits.
type soakChaos struct {
	t       *testing.T
	c       *cluster
	topic   string
	rng     *rand.Rand
	start   time.Time
	logs    *soakLogs
	actions int
}

func (ch *soakChaos) stamp() string { return fmt.Sprintf("[%7.2fs]", time.Since(ch.start).Seconds()) }

func (ch *soakChaos) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(ch.rng.Int64N(int64(hi-lo)))
}

// run acts every 3-8 s until until: a random broker is killed with SIGKILL
// (two times in three) or stopped with SIGTERM, and restarted 1-6 s later,
// so at most one broker is down at any time.
func (ch *soakChaos) run(until time.Time, progress func() string) {
	ids := ch.c.ids()
	for {
		gap := ch.between(3*time.Second, 8*time.Second)
		down := ch.between(time.Second, 6*time.Second)
		id := ids[ch.rng.IntN(len(ids))]
		kill := ch.rng.IntN(3) < 2
		if time.Now().Add(gap + down).After(until) {
			return
		}
		time.Sleep(gap)
		ch.actions++
		p := ch.c.procs[id]
		role := soakRoles(ch.c, ch.topic, id)
		if kill {
			ch.t.Logf("%s #%d kill -9 broker %d (%s), restart in %v", ch.stamp(), ch.actions, id, role, down.Round(time.Millisecond))
			p.kill()
		} else {
			ch.t.Logf("%s #%d SIGTERM broker %d (%s), restart in %v", ch.stamp(), ch.actions, id, role, down.Round(time.Millisecond))
			if err := p.stop(20 * time.Second); err != nil {
				ch.t.Errorf("%s broker %d after SIGTERM: %v", ch.stamp(), id, err)
			}
			ch.t.Logf("%s broker %d exited", ch.stamp(), id)
		}
		time.Sleep(down)
		ch.logs.save(id)
		p.restart()
		ch.t.Logf("%s broker %d restarted; %s", ch.stamp(), id, progress())
	}
}

// restartDown restarts any broker the schedule left down.
func (ch *soakChaos) restartDown() {
	for _, id := range ch.c.ids() {
		if p := ch.c.procs[id]; !p.running() {
			ch.t.Logf("%s restarting broker %d", ch.stamp(), id)
			ch.logs.save(id)
			p.restart()
		}
	}
}

// soakRoles describes what broker id is to the cluster at the moment, for
// the chaos log: controller or not, the partitions it leads, and the
// partitions whose ISR is short (a broker restarted earlier not back yet).
func soakRoles(c *cluster, topic string, id int32) string {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.procs[id].addr))
	if err != nil {
		return err.Error()
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	md, err := kadm.NewClient(cl).Metadata(ctx, topic)
	if err != nil {
		return "metadata: " + err.Error()
	}
	parts := md.Topics[topic].Partitions.Sorted()
	var leads []int32
	var short []string
	for _, pd := range parts {
		if pd.Leader == id {
			leads = append(leads, pd.Partition)
		}
		if len(pd.ISR) < len(pd.Replicas) {
			short = append(short, fmt.Sprintf("%d:%v", pd.Partition, pd.ISR))
		}
	}
	role := fmt.Sprintf("leads %v", leads)
	if md.Controller == id {
		role = "controller, " + role
	}
	if len(short) > 0 {
		role += "; short ISRs " + strings.Join(short, " ")
	}
	return role
}

// soakLogs keeps the output of every broker's earlier runs (the harness
// keeps only the current one) and, if the test fails or
// SLUICE_SOAK_KEEP_LOGS is set, writes all of it to a directory that
// outlives the test.
type soakLogs struct {
	c    *cluster
	mu   sync.Mutex
	past map[int32][]string
}

func newSoakLogs(t *testing.T, c *cluster) *soakLogs {
	l := &soakLogs{c: c, past: map[int32][]string{}}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("SLUICE_SOAK_KEEP_LOGS") != "" {
			l.dump(t)
		}
	})
	return l
}

// save keeps the output of broker id's run that just ended.
func (l *soakLogs) save(id int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.past[id] = append(l.past[id], l.c.procs[id].output())
}

func (l *soakLogs) dump(t *testing.T) {
	dir, err := os.MkdirTemp("", "sluice-soak-logs-")
	if err != nil {
		t.Logf("keeping broker logs: %v", err)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range l.c.ids() {
		runs := append(slices.Clone(l.past[id]), l.c.procs[id].output())
		var b strings.Builder
		for i, out := range runs {
			fmt.Fprintf(&b, "===== broker %d, run %d of %d =====\n%s", id, i+1, len(runs), out)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("broker-%d.log", id)), []byte(b.String()), 0o644); err != nil {
			t.Logf("keeping broker logs: %v", err)
		}
	}
	t.Logf("full output of every broker run: %s", dir)
}

// soakReport reports the first few violations of each kind as test errors
// and counts the rest, so a broken run stays readable.
type soakReport struct {
	t     *testing.T
	kinds []string
	count map[string]int
}

func (r *soakReport) errorf(kind, format string, args ...any) {
	r.t.Helper()
	if r.count == nil {
		r.count = map[string]int{}
	}
	if r.count[kind] == 0 {
		r.kinds = append(r.kinds, kind)
	}
	r.count[kind]++
	if r.count[kind] <= 10 {
		r.t.Errorf("%s: %s", kind, fmt.Sprintf(format, args...))
	}
}

func (r *soakReport) summary() {
	for _, k := range r.kinds {
		r.t.Errorf("%s: %d in all", k, r.count[k])
	}
}

// soakCheckLog checks the final read of every partition: offsets dense from
// 0 to the end offset, every value well formed and in the log once, each
// producer's sequence increasing with the offset. It returns the log as
// partition -> offset -> value.
func soakCheckLog(r *soakReport, final map[int32][]*kgo.Record, ends map[int32]int64) map[int32]map[int64]string {
	logged := map[int32]map[int64]string{}
	where := map[string]soakAck{}
	for p, recs := range final {
		logged[p] = map[int64]string{}
		last := map[int]int{}
		for i, rec := range recs {
			v := string(rec.Value)
			if rec.Offset != int64(i) {
				r.errorf("offset gap", "partition %d: record %d of the log has offset %d", p, i, rec.Offset)
			}
			logged[p][rec.Offset] = v
			if w, dup := where[v]; dup {
				r.errorf("duplicate", "%q at partition %d offset %d and partition %d offset %d", v, w.partition, w.offset, p, rec.Offset)
			}
			where[v] = soakAck{p, rec.Offset}
			id, seq, err := soakParse(v)
			if err != nil {
				r.errorf("bad value", "partition %d offset %d: %v", p, rec.Offset, err)
				continue
			}
			if prev, ok := last[id]; ok && seq <= prev {
				r.errorf("producer order", "partition %d offset %d: producer %d sequence %d after %d", p, rec.Offset, id, seq, prev)
			}
			last[id] = seq
		}
		if n := int64(len(recs)); n < ends[p] {
			r.errorf("short log", "partition %d: %d records read, end offset was %d", p, n, ends[p])
		}
	}
	return logged
}

// soakCheckAcked checks that every acknowledged record is in the log at
// its acknowledged offset (soakCheckLog already found any second copy).
func soakCheckAcked(r *soakReport, hist *soakHistory, logged map[int32]map[int64]string) {
	hist.mu.Lock()
	defer hist.mu.Unlock()
	for v, a := range hist.acked {
		got, ok := logged[a.partition][a.offset]
		switch {
		case !ok:
			r.errorf("acked lost", "%q acknowledged at partition %d offset %d: the log ends before it", v, a.partition, a.offset)
		case got != v:
			r.errorf("acked lost", "%q acknowledged at partition %d offset %d: the log has %q there", v, a.partition, a.offset, got)
		}
	}
}

// soakCheckView checks that a consumer saw, at every offset, the value the
// final log holds there, never two values at one offset, and every offset
// below the end.
func soakCheckView(r *soakReport, v *soakView, logged map[int32]map[int64]string, ends map[int32]int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, c := range v.conflicts {
		r.errorf("consumer conflict", "consumer %s, %s", v.name, c)
	}
	for p, m := range v.recs {
		for off, val := range m {
			if got, ok := logged[p][off]; !ok || got != val {
				r.errorf("consumer diverges", "consumer %s saw %q at partition %d offset %d; the log has %q (present %v)", v.name, val, p, off, got, ok)
			}
		}
	}
	for p, end := range ends {
		var missing []int64
		for off := range end {
			if _, ok := v.recs[p][off]; !ok {
				missing = append(missing, off)
			}
		}
		if len(missing) > 0 {
			r.errorf("consumer behind", "consumer %s never saw %d of partition %d's %d offsets (first %d)", v.name, len(missing), p, end, missing[0])
		}
	}
}

// soakCheckReplicas compares every (stopped) broker's copy of every
// partition with the final read.
func soakCheckReplicas(r *soakReport, c *cluster, topic string, final map[int32][]*kgo.Record) {
	for p := range int32(soakPartitions) {
		want := make([]string, 0, len(final[p]))
		for _, rec := range final[p] {
			want = append(want, fmt.Sprintf("%d:%s", rec.Offset, rec.Value))
		}
		for _, id := range c.ids() {
			got := replicaRecords(r.t, c.procs[id].dataDir, topic, p)
			if err := soakDiff(got, want); err != nil {
				r.errorf("replica differs", "broker %d partition %d: %v", id, p, err)
			}
		}
	}
}

// soakDiff describes the first difference between a replica and the log.
func soakDiff(got, want []string) error {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Errorf("record %d on disk is %s, the log has %s (%d records on disk, %d in the log)", i, got[i], want[i], len(got), len(want))
		}
	}
	switch {
	case len(got) < len(want):
		return fmt.Errorf("%d records on disk, the log has %d (first missing %s)", len(got), len(want), want[len(got)])
	case len(got) > len(want):
		return fmt.Errorf("%d records on disk, the log has %d (first extra %s)", len(got), len(want), got[len(want)])
	}
	return nil
}
