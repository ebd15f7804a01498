package replication

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// cluster is a model of brokers replicating one partition through Leader,
// Follower and the controller functions, with every message (fetches,
// their answers, ISR proposals, their results, etcd watch events) held in
// flight until the test delivers it. Scenario scripts drive it step by
// step; the simulation drives it randomly. It checks the replication
// invariants as it goes and fails the test on a violation.
type cluster struct {
	t     testing.TB
	now   time.Time
	nodes []*node

	// The controller's side: the stored record and the broker view.
	state        PartitionState
	live         []int32
	shuttingDown []int32
	unclean      bool
	minISR       int
	lag          time.Duration

	fetches    []fetchMsg
	answers    []answerMsg
	proposals  []proposalMsg
	isrResults []isrResultMsg

	nextValue int64
	nextAck   AckID
	waiting   map[AckID]ackInfo
	// committed is the longest HW-covered prefix any leader exposed.
	committed []record
	// strict enables the checks that only hold with clean elections.
	strict bool
	trace  *strings.Builder
	stats  map[string]int
}

type node struct {
	id       int32
	log      *memLog
	alive    bool
	leader   *Leader
	follower *Follower
	hw       Offset         // the HW checkpoint: last HW this broker published
	known    PartitionState // newest record this broker has seen
	watch    []PartitionState
	leaderHW Offset // HW of the current Leader instance, for monotonicity
}

type fetchMsg struct {
	from int32
	req  Request
}

type answerMsg struct {
	to      int32
	fetch   *FetchResult
	epoch   *EpochEndResult
	offsets *LeaderOffsetsResult
	recs    []record
}

type proposalMsg struct {
	from   int32
	change ISRChange
}

type isrResultMsg struct {
	to     int32
	change ISRChange
	state  PartitionState
	err    error
}

type ackInfo struct {
	from   int32
	offset Offset // first offset of the batch
	values []int64
}

func newCluster(t testing.TB, replicas []int32, minISR int, lag time.Duration, unclean bool) *cluster {
	c := &cluster{
		t: t, now: time.Unix(1_700_000_000, 0), minISR: minISR, lag: lag, unclean: unclean,
		waiting: map[AckID]ackInfo{}, strict: !unclean, live: slices.Clone(replicas), stats: map[string]int{},
	}
	for _, id := range replicas {
		c.nodes = append(c.nodes, &node{id: id, log: &memLog{}, alive: true})
	}
	st, err := NewPartitionState(replicas, c.view())
	if err != nil {
		t.Fatal(err)
	}
	c.state = st
	for _, n := range c.nodes {
		c.applyState(n, st)
	}
	return c
}

func (c *cluster) logf(format string, args ...any) {
	if c.trace != nil {
		fmt.Fprintf(c.trace, format+"\n", args...)
	}
}

func (c *cluster) fatalf(format string, args ...any) {
	c.t.Helper()
	c.t.Fatalf("%s: "+format, append([]any{c.now.Format("15:04:05.000")}, args...)...)
}

func (c *cluster) node(id int32) *node {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	c.fatalf("no broker %d", id)
	return nil
}

func (c *cluster) view() ClusterView {
	return ClusterView{Live: slices.Clone(c.live), ShuttingDown: slices.Clone(c.shuttingDown)}
}

// leaderNode is the broker the stored record names, if it runs a Leader
// for that epoch.
func (c *cluster) leaderNode() *node {
	for _, n := range c.nodes {
		if n.alive && n.leader != nil && n.id == c.state.Leader && n.leader.LeaderEpoch() == c.state.LeaderEpoch {
			return n
		}
	}
	return nil
}

// store writes a new record "to etcd" and queues it on every running
// broker's watch.
func (c *cluster) store(next PartitionState) {
	if next.PartitionEpoch == c.state.PartitionEpoch {
		return
	}
	prev := c.state
	c.state = next.Clone()
	c.logf("controller: %s", next)
	if next.Leader != prev.Leader && next.Leader != NoLeader {
		c.stats["elections"]++
		c.onElection(prev, next)
	}
	for _, n := range c.nodes {
		if n.alive {
			n.watch = append(n.watch, next.Clone())
		}
	}
}

// onElection checks that a clean election keeps every committed offset.
func (c *cluster) onElection(prev, next PartitionState) {
	l := c.node(next.Leader)
	if !slices.Contains(prev.ISR, next.Leader) {
		c.logf("unclean election of %d", next.Leader)
		c.stats["unclean elections"]++
		if c.strict {
			c.fatalf("unclean election of %d with unclean elections off: %s -> %s", next.Leader, prev, next)
		}
		return
	}
	if c.strict {
		c.checkHasCommitted(l, fmt.Sprintf("new leader %d", l.id))
	}
}

// viewChanged tells every running leader which replicas may not join the
// ISR, as a broker watch would.
func (c *cluster) viewChanged() {
	v := c.view()
	for _, n := range c.nodes {
		if n.alive && n.leader != nil {
			n.leader.SetIneligible(filterIDs(c.state.Replicas, func(id int32) bool { return !v.eligible(id) }))
		}
	}
}

func (c *cluster) reconcile() {
	c.viewChanged()
	next, err := Reconcile(c.state, c.view(), c.unclean)
	if err != nil {
		c.fatalf("reconcile: %v", err)
	}
	c.store(next)
}

// applyState is a broker processing a record from its watch: become or
// stay leader, or follow.
func (c *cluster) applyState(n *node, st PartitionState) {
	if st.LeaderEpoch < n.known.LeaderEpoch ||
		(st.LeaderEpoch == n.known.LeaderEpoch && st.PartitionEpoch < n.known.PartitionEpoch) {
		return
	}
	n.known = st.Clone()
	if st.Leader == n.id {
		if n.leader != nil {
			rd, err := n.leader.Update(st, c.now)
			if err != nil {
				c.fatalf("broker %d update: %v", n.id, err)
			}
			c.applyLeaderReady(n, rd)
			return
		}
		if n.follower != nil {
			n.hw = n.follower.HighWatermark()
			n.follower.Stop()
		}
		cfg := LeaderConfig{ReplicaID: n.id, MinInsyncReplicas: c.minISR, ReplicaLagTimeMax: c.lag}
		l, rd, err := NewLeader(cfg, n.log, st, n.hw, c.now)
		if err != nil {
			c.fatalf("broker %d new leader: %v", n.id, err)
		}
		c.logf("broker %d leads epoch %d from offset %d (hw %d)", n.id, st.LeaderEpoch, l.EpochStartOffset(), rd.HighWatermark)
		if !c.strict {
			// After an unclean election what survives is whatever the
			// new leader has when it takes over.
			c.committed = commonPrefix(c.committed, n.log)
		}
		n.leader, n.leaderHW = l, rd.HighWatermark
		c.applyLeaderReady(n, rd)
		return
	}
	if n.leader != nil {
		rd := n.leader.Resign()
		c.applyLeaderReady(n, rd)
		n.hw = n.leader.HighWatermark()
		n.leader = nil
		c.logf("broker %d resigns", n.id)
	}
	if n.follower == nil {
		n.follower = NewFollower(FollowerConfig{ReplicaID: n.id}, n.log)
	}
	rd, err := n.follower.BecomeFollower(st.Leader, st.LeaderEpoch, n.hw, c.now)
	if err != nil {
		c.fatalf("broker %d become follower: %v", n.id, err)
	}
	c.applyFollowerReady(n, rd, nil)
}

func (c *cluster) applyLeaderReady(n *node, rd LeaderReady) {
	if rd.HighWatermark < n.leaderHW && !rd.Resigned {
		c.fatalf("broker %d: leader HW went back from %d to %d", n.id, n.leaderHW, rd.HighWatermark)
	}
	n.leaderHW, n.hw = rd.HighWatermark, rd.HighWatermark
	if rd.HighWatermarkAdvanced {
		c.logf("broker %d: hw %d", n.id, rd.HighWatermark)
		c.commit(n, rd.HighWatermark)
	}
	for _, a := range rd.Acks {
		c.ack(a)
	}
	if rd.ISRChange != nil {
		c.logf("broker %d proposes %s", n.id, fmtIDs(rd.ISRChange.ISR))
		c.proposals = append(c.proposals, proposalMsg{from: n.id, change: *rd.ISRChange})
		c.stats["isr proposals"]++
	}
}

// commit records that n's log below hw is committed, checking that it
// agrees with everything committed before.
func (c *cluster) commit(n *node, hw Offset) {
	if !c.strict && n.leader != nil && n.leader.LeaderEpoch() < c.state.LeaderEpoch {
		// With unclean elections a deposed leader that has not heard of it
		// yet commits data the unclean leader never had; only the current
		// lineage is checked.
		return
	}
	for off := Offset(0); off < hw; off++ {
		r, ok := n.log.at(off)
		if !ok {
			if off < Offset(len(c.committed)) {
				continue // below this log's start: compared when it was there
			}
			c.fatalf("broker %d: hw %d covers offset %d it does not have", n.id, hw, off)
		}
		if off < Offset(len(c.committed)) {
			if c.committed[off] != r {
				c.fatalf("broker %d: committed offset %d changed from %v to %v", n.id, off, c.committed[off], r)
			}
			continue
		}
		c.committed = append(c.committed, r)
	}
}

func (c *cluster) ack(a AckResult) {
	info, ok := c.waiting[a.ID]
	if !ok {
		c.fatalf("ack %d completed twice or never registered", a.ID)
	}
	delete(c.waiting, a.ID)
	c.logf("ack %d: %s", a.ID, errName(a.Err))
	c.stats["ack "+errName(a.Err)]++
	if a.Err != nil && !errors.Is(a.Err, kerr.NotEnoughReplicasAfterAppend) {
		return
	}
	// Success (and AFTER_APPEND, which Kafka also returns only once the
	// HW passed the batch) means committed.
	for i, v := range info.values {
		off := info.offset + Offset(i)
		if c.strict && (off >= Offset(len(c.committed)) || c.committed[off].value != v) {
			c.fatalf("acked offset %d (value %d) is not committed", off, v)
		}
	}
}

// checkHasCommitted verifies that n's log holds every committed offset.
func (c *cluster) checkHasCommitted(n *node, who string) {
	for off, want := range c.committed {
		got, ok := n.log.at(Offset(off))
		if !ok && Offset(off) < n.log.LogStartOffset() {
			continue
		}
		if !ok || got != want {
			c.fatalf("%s lacks committed offset %d: has %v (ok=%v), want %v; log %s", who, off, got, ok, want, n.log)
		}
	}
}

// checkInvariants runs the checks that must hold after every step.
func (c *cluster) checkInvariants() {
	if !c.strict {
		return
	}
	if l := c.leaderNode(); l != nil {
		c.checkHasCommitted(l, fmt.Sprintf("leader %d", l.id))
	}
	for _, n := range c.nodes {
		// Below its own HW every replica agrees with the committed log.
		for off := n.log.LogStartOffset(); off < n.hw && off < n.log.LogEndOffset(); off++ {
			got, _ := n.log.at(off)
			if off >= Offset(len(c.committed)) || c.committed[off] != got {
				c.fatalf("broker %d diverges below its hw %d at offset %d; log %s", n.id, n.hw, off, n.log)
			}
		}
	}
}

func (c *cluster) applyFollowerReady(n *node, rd FollowerReady, recs []record) {
	if rd.Ignored {
		return
	}
	if tr := rd.Truncate; tr != nil {
		if c.strict && tr.Offset < n.hw && !tr.Fully {
			c.fatalf("broker %d truncates to %d below its hw %d", n.id, tr.Offset, n.hw)
		}
		c.logf("broker %d truncates to %d (fully=%v), was %s", n.id, tr.Offset, tr.Fully, n.log)
		if tr.Offset < n.log.LogEndOffset() {
			c.stats["truncations"]++
		}
		if tr.Fully {
			n.log.truncateFullyAndStartAt(tr.Offset)
		} else {
			n.log.truncateTo(tr.Offset)
		}
	}
	if rd.Fenced {
		c.logf("broker %d fenced", n.id)
		c.stats["follower fenced"]++
	}
	n.hw = rd.HighWatermark
	if rd.LogStartOffsetAdvanced {
		n.log.deleteBefore(rd.LogStartOffset)
	}
	if rd.Append {
		n.log.append(recs...)
		c.applyFollowerReady(n, n.follower.Appended(), nil)
	}
}

// produce appends count records on the broker leading now; acks=all waits.
func (c *cluster) produce(count int, acksAll bool, timeout time.Duration) {
	l := c.leaderNode()
	if l == nil {
		c.logf("produce: no leader")
		return
	}
	c.produceOn(l, count, acksAll, timeout)
}

// produceOn appends on n if it still believes it leads (zombies included).
func (c *cluster) produceOn(n *node, count int, acksAll bool, timeout time.Duration) {
	acks := int16(1)
	if acksAll {
		acks = -1
	}
	if err := n.leader.CheckProduce(acks); err != nil {
		c.logf("produce on %d: %s", n.id, errName(err))
		return
	}
	first := n.log.LogEndOffset()
	info := ackInfo{from: n.id, offset: first}
	for range count {
		c.nextValue++
		n.log.append(record{epoch: n.leader.LeaderEpoch(), value: c.nextValue})
		info.values = append(info.values, c.nextValue)
	}
	c.logf("produce on %d: offsets %d-%d", n.id, first, n.log.LogEndOffset()-1)
	c.applyLeaderReady(n, n.leader.LogAppended(c.now))
	if acksAll {
		c.nextAck++
		c.waiting[c.nextAck] = info
		c.applyLeaderReady(n, n.leader.WaitForAcks(c.nextAck, n.log.LogEndOffset()-1, c.now.Add(timeout), c.now))
	}
}

// sendRequest queues what n's Follower wants sent, if anything.
func (c *cluster) sendRequest(n *node) bool {
	if !n.alive || n.follower == nil {
		return false
	}
	req := n.follower.Next(c.now)
	if req.Kind == RequestNone {
		return false
	}
	c.fetches = append(c.fetches, fetchMsg{from: n.id, req: req})
	return true
}

// deliverFetch hands request i to its leader and queues the answer.
func (c *cluster) deliverFetch(i int, maxRecs int) {
	m := c.fetches[i]
	c.fetches = slices.Delete(c.fetches, i, i+1)
	if m.req.Leader == NoLeader {
		return
	}
	target := c.node(m.req.Leader)
	if !target.alive {
		if from := c.node(m.from); from.alive && from.follower != nil {
			from.follower.RequestFailed(m.req, c.now)
		}
		return
	}
	ans := answerMsg{to: m.from}
	switch m.req.Kind {
	case RequestFetch:
		ans.fetch = c.answerFetch(target, m, maxRecs, &ans.recs)
	case RequestEpochEnd:
		r := EpochEndResult{Request: m.req, Err: kerr.NotLeaderForPartition}
		if target.leader != nil {
			r.EpochEndOffset, r.Err = target.leader.EndOffsetForEpoch(m.req.CurrentLeaderEpoch, m.req.Epoch)
		}
		ans.epoch = &r
	case RequestLeaderOffsets:
		r := LeaderOffsetsResult{Request: m.req, Err: kerr.NotLeaderForPartition}
		if target.leader != nil && target.leader.LeaderEpoch() == m.req.CurrentLeaderEpoch {
			r.Err, r.LogStartOffset, r.LogEndOffset = nil, target.log.LogStartOffset(), target.log.LogEndOffset()
		}
		ans.offsets = &r
	}
	c.answers = append(c.answers, ans)
}

func (c *cluster) answerFetch(target *node, m fetchMsg, maxRecs int, recs *[]record) *FetchResult {
	if target.leader == nil {
		return &FetchResult{Request: m.req, Err: kerr.NotLeaderForPartition}
	}
	d, rd := target.leader.FollowerFetch(FollowerFetch{
		ReplicaID: m.from, CurrentLeaderEpoch: m.req.CurrentLeaderEpoch,
		FetchOffset: m.req.FetchOffset, LastFetchedEpoch: m.req.LastFetchedEpoch, Now: c.now,
	})
	r := &FetchResult{Request: m.req, Err: d.Err, HighWatermark: d.HighWatermark,
		LogStartOffset: d.LogStartOffset, DivergingEpoch: d.DivergingEpoch}
	what := errName(d.Err)
	switch {
	case d.DivergingEpoch != nil:
		what = fmt.Sprintf("diverging epoch=%d end=%d", d.DivergingEpoch.Epoch, d.DivergingEpoch.EndOffset)
	case d.Err == nil:
		*recs = target.log.read(m.req.FetchOffset, maxRecs)
		r.HasRecords = len(*recs) > 0
		what = fmt.Sprintf("%d records, hw=%d", len(*recs), d.HighWatermark)
	}
	c.logf("%d fetches from %d at %d (last epoch %d): %s", m.from, target.id, m.req.FetchOffset, m.req.LastFetchedEpoch, what)
	c.applyLeaderReady(target, rd)
	return r
}

// deliverAnswer hands answer i to the follower that asked.
func (c *cluster) deliverAnswer(i int) {
	a := c.answers[i]
	c.answers = slices.Delete(c.answers, i, i+1)
	n := c.node(a.to)
	if !n.alive || n.follower == nil {
		return
	}
	var rd FollowerReady
	switch {
	case a.fetch != nil:
		rd = n.follower.HandleFetch(*a.fetch, c.now)
	case a.epoch != nil:
		rd = n.follower.HandleEpochEnd(*a.epoch, c.now)
	default:
		rd = n.follower.HandleLeaderOffsets(*a.offsets, c.now)
	}
	c.applyFollowerReady(n, rd, a.recs)
}

// deliverProposal runs proposal i through the controller.
func (c *cluster) deliverProposal(i int) {
	p := c.proposals[i]
	c.proposals = slices.Delete(c.proposals, i, i+1)
	next, err := ApplyISRChange(c.state, p.change, c.view())
	if err != nil {
		c.logf("controller rejects %s from %d: %s", fmtIDs(p.change.ISR), p.from, errName(err))
		c.stats["isr rejected "+errName(err)]++
	} else {
		c.store(next)
	}
	c.isrResults = append(c.isrResults, isrResultMsg{to: p.from, change: p.change, state: next, err: err})
}

func (c *cluster) deliverISRResult(i int) {
	r := c.isrResults[i]
	c.isrResults = slices.Delete(c.isrResults, i, i+1)
	if n := c.node(r.to); n.alive && n.leader != nil {
		c.applyLeaderReady(n, n.leader.ISRChangeResult(r.change, r.state, r.err, c.now))
	}
}

func (c *cluster) deliverWatch(n *node) {
	if len(n.watch) == 0 {
		return
	}
	st := n.watch[0]
	n.watch = n.watch[1:]
	c.applyState(n, st)
}

func (c *cluster) tick(d time.Duration) {
	c.now = c.now.Add(d)
	for _, n := range c.nodes {
		if n.alive && n.leader != nil {
			c.applyLeaderReady(n, n.leader.Tick(c.now))
		}
	}
}

// crash stops broker id's process; its registration lives on until
// expire.
func (c *cluster) crash(id int32) {
	n := c.node(id)
	if !n.alive {
		return
	}
	c.logf("broker %d crashes", id)
	n.alive, n.leader, n.follower, n.watch = false, nil, nil, nil
	c.answers = slices.DeleteFunc(c.answers, func(a answerMsg) bool { return a.to == id })
	c.isrResults = slices.DeleteFunc(c.isrResults, func(r isrResultMsg) bool { return r.to == id })
	for k, w := range c.waiting {
		if w.from == id {
			delete(c.waiting, k)
		}
	}
}

// expire is the controller noticing that id's lease is gone (whether or
// not the process still runs).
func (c *cluster) expire(id int32) {
	if !slices.Contains(c.live, id) {
		return
	}
	c.logf("broker %d expires", id)
	c.live = slices.DeleteFunc(c.live, func(x int32) bool { return x == id })
	c.shuttingDown = slices.DeleteFunc(c.shuttingDown, func(x int32) bool { return x == id })
	c.reconcile()
}

// restart starts a crashed, expired broker again from its log and its HW
// checkpoint (hw, which may be older than what it last published).
func (c *cluster) restart(id int32, hw Offset) {
	n := c.node(id)
	if n.alive || slices.Contains(c.live, id) {
		c.fatalf("restart of broker %d that is running or still registered", id)
	}
	c.logf("broker %d restarts", id)
	n.alive, n.hw, n.known = true, min(hw, n.log.LogEndOffset()), PartitionState{}
	c.live = append(c.live, id)
	c.applyState(n, c.state)
	c.reconcile()
}

// quickRestart restarts a crashed follower before the controller noticed
// (its registration never lapsed), the setting of KIP-101's first
// scenario. Leaders must not do this: see the package documentation.
func (c *cluster) quickRestart(id int32, hw Offset) {
	n := c.node(id)
	if n.alive || !slices.Contains(c.live, id) || c.state.Leader == id {
		c.fatalf("quick restart of broker %d that is running, unregistered or the leader", id)
	}
	c.logf("broker %d restarts", id)
	n.alive, n.hw, n.known = true, min(hw, n.log.LogEndOffset()), PartitionState{}
	c.applyState(n, c.state)
}

// rejoin registers a still-running broker again after its lease expired.
func (c *cluster) rejoin(id int32) {
	if n := c.node(id); !n.alive || slices.Contains(c.live, id) {
		return
	}
	c.logf("broker %d registers again", id)
	c.live = append(c.live, id)
	c.reconcile()
}

func (c *cluster) controlledShutdown(id int32) {
	if !slices.Contains(c.shuttingDown, id) {
		c.shuttingDown = append(c.shuttingDown, id)
	}
	c.viewChanged()
	next, err := ControlledShutdown(c.state, id, c.view())
	if err != nil {
		c.fatalf("controlled shutdown: %v", err)
	}
	c.store(next)
}

func (c *cluster) preferred() {
	next, err := ElectPreferredLeader(c.state, c.view())
	if err != nil {
		c.logf("preferred election: %s", errName(err))
		return
	}
	c.store(next)
}

// settle delivers every ISR message and watch event until none is left.
func (c *cluster) settle() {
	for {
		switch {
		case len(c.proposals) > 0:
			c.deliverProposal(0)
		case len(c.isrResults) > 0:
			c.deliverISRResult(0)
		default:
			progressed := false
			for _, n := range c.nodes {
				if len(n.watch) > 0 {
					c.deliverWatch(n)
					progressed = true
				}
			}
			if !progressed {
				return
			}
		}
	}
}

// replicate runs one complete request/answer exchange for broker id.
func (c *cluster) replicate(id int32, maxRecs int, dropAnswer bool) {
	if !c.sendRequest(c.node(id)) {
		return
	}
	c.deliverFetch(len(c.fetches)-1, maxRecs)
	if len(c.answers) > 0 && c.answers[len(c.answers)-1].to == id {
		if dropAnswer {
			c.answers = c.answers[:len(c.answers)-1]
			return
		}
		c.deliverAnswer(len(c.answers) - 1)
	}
}

func (c *cluster) show() string {
	var b strings.Builder
	fmt.Fprintf(&b, "etcd: %s live=%s\n", c.state, fmtIDs(c.live))
	for _, n := range c.nodes {
		role := "follower"
		switch {
		case !n.alive:
			role = "down"
		case n.leader != nil:
			role = fmt.Sprintf("leader epoch=%d isr=%s", n.leader.LeaderEpoch(), fmtIDs(n.leader.ISR()))
		case n.follower != nil:
			role = fmt.Sprintf("follower of %d epoch=%d", n.follower.Leader(), n.follower.LeaderEpoch())
		}
		fmt.Fprintf(&b, "broker %d: %s hw=%d log=%s\n", n.id, role, n.hw, n.log)
	}
	fmt.Fprintf(&b, "committed=%d", len(c.committed))
	return b.String()
}

func commonPrefix(committed []record, l *memLog) []record {
	for off, r := range committed {
		got, ok := l.at(Offset(off))
		if !ok && Offset(off) < l.LogStartOffset() {
			continue
		}
		if !ok || got != r {
			return committed[:off]
		}
	}
	return committed
}

// errName renders an error as its Kafka name, "ok" for nil.
func errName(err error) string {
	var ke *kerr.Error
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &ke):
		return ke.Message
	}
	return err.Error()
}
