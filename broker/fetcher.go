package broker

import (
	"context"
	"iter"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/protocol/batch"
	"github.com/sluicedev/sluice/replication"
	"github.com/sluicedev/sluice/storage"
)

// Follower fetching, Kafka's ReplicaFetcherThread: one fetcher per leader
// broker, batching every partition followed from that leader into one
// Fetch request with this broker's replica id. What to ask for and what to
// do with each answer is the replication.Follower's decision; the fetcher
// only moves bytes.

// fetcherTable holds the running fetchers by leader id.
type fetcherTable struct {
	b *Broker
	// inFlight counts fetcher rounds under way (a request sent, its answer
	// not yet applied), so controlled shutdown can wait for the last ones.
	inFlight atomic.Int32
	mu       struct {
		sync.Mutex
		byLeader map[int32]*fetcher
	}
}

func newFetcherTable(b *Broker) *fetcherTable {
	t := &fetcherTable{b: b}
	t.mu.byLeader = map[int32]*fetcher{}
	return t
}

// fetcher fetches every partition followed from one leader.
type fetcher struct {
	b      *Broker
	leader int32
	wakeCh chan struct{}
	cancel context.CancelFunc
	sess   followerSession // only run's goroutine uses it
	opts   fetcherOpts
	mu     struct {
		sync.Mutex
		parts map[*replica]struct{}
	}
}

// fetcherOpts are the replica.* settings of follower fetching, resolved
// once when a fetcher starts (they are read-only) rather than parsed every
// round.
type fetcherOpts struct {
	waitMax            time.Duration
	minBytes, maxBytes int32
	partitionMaxBytes  int32
	socketTimeout      time.Duration
}

func resolveFetcherOpts(s *settings) fetcherOpts {
	return fetcherOpts{
		waitMax:           s.brokerMillis("replica.fetch.wait.max.ms", 500),
		minBytes:          int32(s.brokerInt64("replica.fetch.min.bytes", 1)),
		maxBytes:          int32(s.brokerInt64("replica.fetch.response.max.bytes", 10<<20)),
		partitionMaxBytes: int32(s.brokerInt64("replica.fetch.max.bytes", 1<<20)),
		socketTimeout:     s.brokerMillis("replica.socket.timeout.ms", 30000),
	}
}

// add has leader's fetcher fetch r, starting the fetcher if needed.
func (t *fetcherTable) add(leader int32, r *replica) {
	if leader < 0 || leader == t.b.cfg.NodeID {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.mu.byLeader[leader]
	if f == nil {
		ctx, cancel := context.WithCancel(t.b.bgCtx())
		f = &fetcher{b: t.b, leader: leader, wakeCh: make(chan struct{}, 1), cancel: cancel, opts: resolveFetcherOpts(t.b.settings)}
		f.mu.parts = map[*replica]struct{}{}
		if !t.b.goroutines.Go("fetcher-"+strconv.Itoa(int(leader)), func() { f.run(ctx) }) {
			cancel()
			return
		}
		t.mu.byLeader[leader] = f
	}
	f.mu.Lock()
	f.mu.parts[r] = struct{}{}
	f.mu.Unlock()
}

// remove stops fetching r from leader; a fetcher left with nothing stops.
func (t *fetcherTable) remove(leader int32, r *replica) {
	if leader < 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.mu.byLeader[leader]
	if f == nil {
		return
	}
	f.mu.Lock()
	delete(f.mu.parts, r)
	empty := len(f.mu.parts) == 0
	f.mu.Unlock()
	if empty {
		f.cancel()
		delete(t.mu.byLeader, leader)
	}
}

// wake makes leader's fetcher build its next request now.
func (t *fetcherTable) wake(leader int32) {
	t.mu.Lock()
	f := t.mu.byLeader[leader]
	t.mu.Unlock()
	if f != nil {
		f.wake()
	}
}

func (f *fetcher) wake() {
	select {
	case f.wakeCh <- struct{}{}:
	default:
	}
}

func (f *fetcher) snapshot() []*replica {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*replica, 0, len(f.mu.parts))
	for r := range f.mu.parts {
		out = append(out, r)
	}
	return out
}

// pending is one partition's request in the round being built.
type pending struct {
	r   *replica
	req replication.Request
}

func (f *fetcher) run(ctx context.Context) {
	pc := newPeerConn(f.b.cfg.NodeID, f.leader)
	defer pc.close()
	idle := time.NewTimer(0)
	defer idle.Stop()
	for ctx.Err() == nil {
		var fetches, epochs, offsets []pending
		now := time.Now()
		parts := f.snapshot()
		// Counted before shuttingDown is read: controlled shutdown sets it
		// and then waits for the count to drop to zero.
		f.b.fetchers.inFlight.Add(1)
		if f.b.shuttingDown.Load() || f.b.logDirFailed() {
			// A broker in controlled shutdown leaves the ISRs; fetching
			// would only have leaders propose it again. So does one whose
			// log directory failed: it cannot store what it fetches.
			parts = nil
		}
		for _, r := range parts {
			req := r.nextRequest(f.leader, now)
			switch req.Kind {
			case replication.RequestFetch:
				fetches = append(fetches, pending{r, req})
			case replication.RequestEpochEnd:
				epochs = append(epochs, pending{r, req})
			case replication.RequestLeaderOffsets:
				offsets = append(offsets, pending{r, req})
			}
		}
		if len(epochs) > 0 {
			f.sendEpochEnds(ctx, pc, epochs)
		}
		if len(offsets) > 0 {
			f.sendLeaderOffsets(ctx, pc, offsets)
		}
		if len(fetches) > 0 {
			f.sendFetch(ctx, pc, fetches)
		}
		f.b.fetchers.inFlight.Add(-1)
		if len(fetches)+len(epochs)+len(offsets) > 0 {
			continue
		}
		// Nothing to send (backing off, fenced, or no partitions): wait
		// for a wake-up or poll again shortly.
		idle.Reset(100 * time.Millisecond)
		select {
		case <-ctx.Done():
		case <-f.wakeCh:
		case <-idle.C:
		}
	}
}

// leaderAddr is where the leader listens, from the live brokers.
func (f *fetcher) leaderAddr() (string, bool) {
	br, ok := f.b.brokers.get(f.leader)
	if !ok {
		return "", false
	}
	return net.JoinHostPort(br.Host, strconv.Itoa(int(br.Port))), true
}

func (f *fetcher) failAll(ps []pending, err error) {
	now := time.Now()
	for _, p := range ps {
		p.r.requestFailed(p.req, now)
	}
	if err != nil && f.b.bgCtx().Err() == nil {
		f.b.log.Debug("follower request failed", "leader", f.leader, "partitions", len(ps), "err", err)
	}
}

func (f *fetcher) roundTrip(ctx context.Context, pc *peerConn, req kmsg.Request, wait time.Duration) (kmsg.Response, error) {
	addr, ok := f.leaderAddr()
	if !ok {
		return nil, errLeaderUnknown
	}
	return pc.roundTrip(ctx, addr, req, time.Now().Add(wait+f.opts.socketTimeout))
}

var errLeaderUnknown = kerr.LeaderNotAvailable

// groupTopics yields each pending partition with the index of its topic in
// the request being built; addTopic appends a topic the first time one of
// its partitions comes up.
func groupTopics(ps []pending, addTopic func(name string)) iter.Seq2[pending, int] {
	return func(yield func(pending, int) bool) {
		index := map[string]int{}
		for _, p := range ps {
			name := p.r.p.log.Topic()
			i, ok := index[name]
			if !ok {
				i = len(index)
				index[name] = i
				addTopic(name)
			}
			if !yield(p, i) {
				return
			}
		}
	}
}

type partKey struct {
	topic     string
	partition int32
}

// sendFetch fetches ps from the leader within the fetcher's fetch session
// (KIP-227): a full request when there is none, else one naming only the
// partitions whose fetch offset or epochs changed. A partition the
// incremental answer leaves out has nothing new: it is handled as an empty
// answer with the HW and log start offset last received.
func (f *fetcher) sendFetch(ctx context.Context, pc *peerConn, ps []pending) {
	req := kmsg.NewPtrFetchRequest()
	req.Version = 12
	req.ReplicaID = f.b.cfg.NodeID
	req.MaxWaitMillis = int32(f.opts.waitMax.Milliseconds())
	req.MinBytes, req.MaxBytes = f.opts.minBytes, f.opts.maxBytes
	maxBytes := f.opts.partitionMaxBytes
	byKey := make(map[partKey]pending, len(ps))
	want := make([]partKey, 0, len(ps))
	params := make(map[partKey]kmsg.FetchRequestTopicPartition, len(ps))
	for _, p := range ps {
		k := partKey{p.r.p.log.Topic(), p.r.p.index}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = p.r.p.index
		rp.CurrentLeaderEpoch = p.req.CurrentLeaderEpoch
		rp.FetchOffset = p.req.FetchOffset
		rp.LastFetchedEpoch = p.req.LastFetchedEpoch
		rp.LogStartOffset = p.r.p.log.LogStartOffset()
		rp.PartitionMaxBytes = maxBytes
		byKey[k] = p
		want = append(want, k)
		params[k] = rp
	}
	sr := f.sess.build(req, want, params)
	raw, err := f.roundTrip(ctx, pc, req, time.Duration(req.MaxWaitMillis)*time.Millisecond)
	if err != nil {
		f.sess.failed()
		f.failAll(ps, err)
		return
	}
	resp := raw.(*kmsg.FetchResponse)
	if !f.sess.handle(sr, resp) {
		f.b.log.Debug("follower fetch session reset", "leader", f.leader, "session", req.SessionID, "err", kerr.ErrorForCode(resp.ErrorCode))
		return // the next round is a full fetch
	}
	if resp.ErrorCode != 0 {
		f.failAll(ps, kerr.ErrorForCode(resp.ErrorCode))
		return
	}
	now := time.Now()
	for i := range resp.Topics {
		rt := &resp.Topics[i]
		for j := range rt.Partitions {
			sp := &rt.Partitions[j]
			k := partKey{rt.Topic, sp.Partition}
			p, ok := byKey[k]
			if !ok {
				continue
			}
			delete(byKey, k)
			p.r.handleFetch(p.req, sp, now)
		}
	}
	for k, p := range byKey {
		if sp, ok := f.sess.unchanged(k); ok && !sr.full {
			p.r.handleFetch(p.req, &sp, now)
			continue
		}
		p.r.requestFailed(p.req, now)
	}
}

func (f *fetcher) sendEpochEnds(ctx context.Context, pc *peerConn, ps []pending) {
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.Version = 4
	req.ReplicaID = f.b.cfg.NodeID
	byKey := map[partKey]pending{}
	for p, i := range groupTopics(ps, func(name string) {
		t := kmsg.NewOffsetForLeaderEpochRequestTopic()
		t.Topic = name
		req.Topics = append(req.Topics, t)
	}) {
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = p.r.p.index, p.req.CurrentLeaderEpoch, p.req.Epoch
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
		byKey[partKey{req.Topics[i].Topic, rp.Partition}] = p
	}
	raw, err := f.roundTrip(ctx, pc, req, 0)
	if err != nil {
		f.failAll(ps, err)
		return
	}
	now := time.Now()
	for _, rt := range raw.(*kmsg.OffsetForLeaderEpochResponse).Topics {
		for _, sp := range rt.Partitions {
			k := partKey{rt.Topic, sp.Partition}
			if p, ok := byKey[k]; ok {
				delete(byKey, k)
				p.r.handleEpochEnd(replication.EpochEndResult{Request: p.req, Err: kerr.ErrorForCode(sp.ErrorCode),
					EpochEndOffset: replication.EpochEndOffset{Epoch: sp.LeaderEpoch, EndOffset: sp.EndOffset}}, now)
			}
		}
	}
	for _, p := range byKey {
		p.r.requestFailed(p.req, now)
	}
}

// sendLeaderOffsets asks the leader for its log start and end offsets
// (ListOffsets earliest and latest, as a replica) for partitions recovering
// from OFFSET_OUT_OF_RANGE.
func (f *fetcher) sendLeaderOffsets(ctx context.Context, pc *peerConn, ps []pending) {
	ask := func(ts int64) (map[partKey]kmsg.ListOffsetsResponseTopicPartition, error) {
		req := kmsg.NewPtrListOffsetsRequest()
		req.Version = 4
		req.ReplicaID = f.b.cfg.NodeID
		for p, i := range groupTopics(ps, func(name string) {
			t := kmsg.NewListOffsetsRequestTopic()
			t.Topic = name
			req.Topics = append(req.Topics, t)
		}) {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition, rp.CurrentLeaderEpoch, rp.Timestamp = p.r.p.index, p.req.CurrentLeaderEpoch, ts
			req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
		}
		raw, err := f.roundTrip(ctx, pc, req, 0)
		if err != nil {
			return nil, err
		}
		out := map[partKey]kmsg.ListOffsetsResponseTopicPartition{}
		for _, rt := range raw.(*kmsg.ListOffsetsResponse).Topics {
			for _, sp := range rt.Partitions {
				out[partKey{rt.Topic, sp.Partition}] = sp
			}
		}
		return out, nil
	}
	earliest, err := ask(-2)
	if err != nil {
		f.failAll(ps, err)
		return
	}
	latest, err := ask(-1)
	if err != nil {
		f.failAll(ps, err)
		return
	}
	now := time.Now()
	for _, p := range ps {
		k := partKey{p.r.p.log.Topic(), p.r.p.index}
		e, ok1 := earliest[k]
		l, ok2 := latest[k]
		if !ok1 || !ok2 {
			p.r.requestFailed(p.req, now)
			continue
		}
		code := e.ErrorCode
		if code == 0 {
			code = l.ErrorCode
		}
		p.r.handleLeaderOffsets(replication.LeaderOffsetsResult{Request: p.req, Err: kerr.ErrorForCode(code),
			LogStartOffset: e.Offset, LogEndOffset: l.Offset}, now)
	}
}

// nextRequest is what the Follower wants sent to leader now.
func (r *replica) nextRequest(leader int32, now time.Time) replication.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.mu.follower
	if f == nil || r.mu.closed || r.mu.fetchee != leader {
		return replication.Request{Kind: replication.RequestNone}
	}
	return f.Next(now)
}

func (r *replica) requestFailed(req replication.Request, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f := r.mu.follower; f != nil {
		f.RequestFailed(req, now)
	}
}

// handleFetch applies one partition of a fetch response: truncate, append
// the records (keeping the leader's offsets and epochs), then the HW and
// log start offset.
func (r *replica) handleFetch(req replication.Request, sp *kmsg.FetchResponseTopicPartition, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.mu.follower
	if f == nil || r.mu.closed {
		return
	}
	res := replication.FetchResult{
		Request:        req,
		Err:            kerr.ErrorForCode(sp.ErrorCode),
		HighWatermark:  sp.HighWatermark,
		LogStartOffset: sp.LogStartOffset,
		HasRecords:     len(sp.RecordBatches) > 0,
	}
	if sp.DivergingEpoch.Epoch >= 0 {
		res.DivergingEpoch = &replication.EpochEndOffset{Epoch: sp.DivergingEpoch.Epoch, EndOffset: sp.DivergingEpoch.EndOffset}
	}
	rd := f.HandleFetch(res, now)
	r.applyFollowerLocked(rd)
	if rd.Append {
		r.appendFetchedLocked(sp.RecordBatches)
		r.applyFollowerLocked(f.Appended())
	}
	if res.Err == nil && res.DivergingEpoch == nil {
		lag := max(sp.HighWatermark-r.p.log.LogEndOffset(), 0)
		r.lagRecords.Store(lag)
		if lag == 0 {
			r.caughtUpNano.Store(now.UnixNano())
		}
	}
}

// appendFetchedLocked appends the whole batches of data at the log end; a
// trailing partial batch (cut by the leader's byte limit) and batches the
// log already has are skipped.
func (r *replica) appendFetchedLocked(data []byte) {
	l := r.p.log
	for len(data) > 0 {
		one, rest, err := batch.Next(data)
		if err != nil {
			return
		}
		data = rest
		h, err := batch.ParseHeader(one)
		if err != nil {
			return
		}
		if h.LastOffset() < l.LogEndOffset() {
			continue
		}
		if _, err := batch.Check(one); err != nil {
			r.b.log.Warn("follower got a corrupt batch; fetching again", "topic", l.Topic(), "partition", l.Partition(), "offset", h.BaseOffset, "err", err)
			return
		}
		// Append may rewrite nothing for a follower (offsets are kept), but
		// the bytes alias the response frame: copy them into the log only.
		if _, err := l.Append(one, storage.AppendOptions{}); err != nil {
			r.b.log.Warn("follower append failed", "topic", l.Topic(), "partition", l.Partition(), "offset", h.BaseOffset, "err", err)
			return
		}
		r.b.metrics.replicated(l.Topic(), len(one), int(h.NumRecords))
	}
}

func (r *replica) handleEpochEnd(res replication.EpochEndResult, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f := r.mu.follower; f != nil && !r.mu.closed {
		r.applyFollowerLocked(f.HandleEpochEnd(res, now))
	}
}

func (r *replica) handleLeaderOffsets(res replication.LeaderOffsetsResult, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f := r.mu.follower; f != nil && !r.mu.closed {
		r.applyFollowerLocked(f.HandleLeaderOffsets(res, now))
	}
}
