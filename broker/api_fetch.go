package broker

// Fetch: v4-16.
//
// v4 is the first version with v2 batches and isolation levels (KIP-98).
// From v7, fetch sessions (KIP-227, fetch_sessions.go): epoch 0 or -1 is a
// full fetch whatever the session id, 0 asking for a session; incremental
// fetches name only what changed and get back only what did. Topic ids
// replace names from v13 (KIP-516). A partition named more than once is
// answered once, as Kafka answers it (see distinctParts). Long polls wait
// on one waiter per request that every partition signals (fetchWaiter), so
// an append wakes them at once; MaxWaitMillis and MinBytes are honoured,
// and so are the response, partition and fetch.max.bytes limits, except
// that the first partition with data always returns at least one whole
// batch (KIP-74). Stored batches are returned exactly as they sit in the
// segment files; on TCP connections they are sent from those files with
// sendfile(2) (see fetchReply), so large fetches do not pass through the
// broker's memory.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/protocol/batch"
	"github.com/sluicedev/sluice/storage"
)

func (b *Broker) fetchAPI() api { return api{key: 1, min: 4, max: 16, handle: b.handleFetch} }

func (b *Broker) handleFetch(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.FetchRequest)
	replicaID := req.ReplicaID
	if req.Version >= 15 {
		replicaID = req.ReplicaState.ID
	}
	if replicaID < 0 {
		b.clampFetch(r, req)
	}
	fc := b.fetchSessions.open(req, replicaID >= 0, time.Now())
	if fc.errCode != 0 {
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.ErrorCode = fc.errCode
		return resp, nil
	}
	defer b.fetchSessions.release(&fc) // after w.stop below
	parts := fc.parts
	start := time.Now()
	deadline := start.Add(time.Duration(req.MaxWaitMillis) * time.Millisecond)
	var w fetchWaiter
	defer w.stop(parts)
	waited := false
	for {
		w.drain()
		out := &fetchReply{FetchResponse: kmsg.NewPtrFetchResponse(), conn: r.conn}
		out.Version = req.Version
		part := b.consumerFetcher(req.IsolationLevel)
		if replicaID >= 0 {
			part = b.replicaFetcher(replicaID, time.Now())
		}
		n, stop := b.fetchOnce(req, parts, out, part)
		done := stop || n >= int(req.MinBytes) || !time.Now().Before(deadline) || !w.watch(parts)
		if !done && w.added {
			// Registered after this read: read again, so that a change
			// between the two is not missed.
			out.release()
			continue
		}
		if !done {
			waited = true
			waitStart := time.Now()
			woken := w.wait(ctx, deadline)
			r.q.waited += time.Since(waitStart) // waiting is not handling time (request_percentage)
			if woken {
				out.release() // read again, into the same buffers
				continue
			}
		}
		if waited {
			b.metrics.fetchWait.Observe(time.Since(start).Seconds())
		}
		if replicaID >= 0 {
			r.q.done = true // replication is exempt from client quotas
		} else if throttled := b.throttleFetch(r, out); throttled != kmsg.Response(out) {
			// Answered empty, as Kafka's throttled fetch: the session
			// keeps its epoch moving but records nothing as delivered.
			for i := range parts {
				parts[i].answered = false
				parts[i].answerHW, parts[i].answerLogStart = -1, -1
			}
			resp := throttled.(*kmsg.FetchResponse)
			if !b.fetchSessions.finish(&fc, resp, time.Now()) {
				resp.ErrorCode = kerr.InvalidFetchSessionEpoch.Code
			}
			return resp, nil
		}
		if !b.fetchSessions.finish(&fc, out.FetchResponse, time.Now()) {
			// A duplicate request moved the session on meanwhile.
			out.release()
			out.Topics = nil
			out.ErrorCode = kerr.InvalidFetchSessionEpoch.Code
			return out, nil
		}
		b.countFetched(out)
		return out, nil
	}
}

// fetchKey is a partition as a Fetch request names it: by topic name
// before v13, by topic id from v13 (KIP-516).
type fetchKey struct {
	topic     string
	id        [16]byte
	partition int32
}

// fetchPart is one distinct partition of a fetch: its topic, what the
// request (or its session) asks of it, the partition signal the fetch's
// waiter is registered with (wake is this round's, watched the registered
// one), and for sessions what was last answered and what this round
// answers.
type fetchPart struct {
	topic   string
	topicID [16]byte
	rp      kmsg.FetchRequestTopicPartition
	wake    waitTarget
	watched waitTarget

	// cached is the session's partition of an incremental fetch, with its
	// last answered HW and log start offset as of the request.
	cached                   *sessionPart
	cachedHW, cachedLogStart int64
	// This round's answer: whether the response carries the partition,
	// and the HW (-1 after an error) and log start offset it carries.
	answered                 bool
	answerHW, answerLogStart int64
}

// distinctParts lists the partitions of req once each, as Kafka does: its
// FetchRequest.fetchData is a map keyed by topic-partition, so a partition
// named several times is answered once, where it first appears, with the
// parameters of its last mention. Work and memory after decoding are
// bounded by the distinct partitions, however often a request repeats one.
func distinctParts(req *kmsg.FetchRequest) []fetchPart {
	n := 0
	for i := range req.Topics {
		n += len(req.Topics[i].Partitions)
	}
	parts := make([]fetchPart, 0, min(n, 1024))
	if !hasRepeats(req) {
		for i := range req.Topics {
			rt := &req.Topics[i]
			for j := range rt.Partitions {
				parts = append(parts, fetchPart{topic: rt.Topic, topicID: rt.TopicID, rp: rt.Partitions[j]})
			}
		}
		return parts
	}
	seen := make(map[fetchKey]int, min(n, 1024))
	for i := range req.Topics {
		rt := &req.Topics[i]
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			k := keyOf(req.Version >= 13, rt.Topic, rt.TopicID, rp.Partition)
			if at, ok := seen[k]; ok {
				parts[at].rp = *rp
				continue
			}
			seen[k] = len(parts)
			parts = append(parts, fetchPart{topic: rt.Topic, topicID: rt.TopicID, rp: *rp})
		}
	}
	return parts
}

// hasRepeats reports whether req may name a partition twice, cheaply for
// the usual request (each topic once, small partition numbers): a bitset
// per topic instead of a map over every partition. Anything unusual (a
// topic listed twice, a negative or huge partition number) says yes and
// takes the map.
func hasRepeats(req *kmsg.FetchRequest) bool {
	if len(req.Topics) > 1 {
		topics := make(map[fetchKey]struct{}, len(req.Topics))
		for i := range req.Topics {
			k := keyOf(req.Version >= 13, req.Topics[i].Topic, req.Topics[i].TopicID, 0)
			if _, ok := topics[k]; ok {
				return true
			}
			topics[k] = struct{}{}
		}
	}
	var bits []uint64
	for i := range req.Topics {
		ps := req.Topics[i].Partitions
		if len(ps) < 2 {
			continue
		}
		hi := int32(0)
		for j := range ps {
			hi = max(hi, ps[j].Partition)
			if ps[j].Partition < 0 || hi >= 1<<16 {
				return true
			}
		}
		words := int(hi)/64 + 1
		if cap(bits) < words {
			bits = make([]uint64, words)
		}
		bits = bits[:words]
		clear(bits)
		for j := range ps {
			p := ps[j].Partition
			if bits[p/64]&(1<<(p%64)) != 0 {
				return true
			}
			bits[p/64] |= 1 << (p % 64)
		}
	}
	return false
}

// waitTarget is the signal a waiting fetch registers with for one
// partition: a consumer's partition's HW (rep), or a follower's partition's
// log (log). The zero value is nothing to wait for.
type waitTarget struct {
	rep *replica
	log *storage.Log
}

// fetchWaiter is the one waiter of a long-polling fetch, Kafka's delayed
// fetch in its purgatory: a single channel with room for one token that
// every partition of the fetch signals, registered once per distinct
// partition and unregistered when the fetch completes. A fetch over any
// number of partitions costs one channel and one timer.
type fetchWaiter struct {
	ch    chan struct{}
	added bool // the last watch registered something new
}

// watch registers the waiter with every partition's signal of this round
// that it is not yet registered with (and unregisters those that changed).
// It reports whether there is anything to wait for.
func (w *fetchWaiter) watch(parts []fetchPart) bool {
	w.added = false
	waiting := false
	for i := range parts {
		p := &parts[i]
		if p.wake == p.watched {
			waiting = waiting || p.wake != waitTarget{}
			continue
		}
		if w.ch == nil {
			w.ch = make(chan struct{}, 1)
		}
		p.watched.unwatch(w.ch)
		p.watched = p.wake
		if p.wake != (waitTarget{}) {
			p.wake.watch(w.ch)
			w.added, waiting = true, true
		}
	}
	return waiting
}

// stop unregisters the waiter from every partition.
func (w *fetchWaiter) stop(parts []fetchPart) {
	if w.ch == nil {
		return
	}
	for i := range parts {
		parts[i].watched.unwatch(w.ch)
		parts[i].watched = waitTarget{}
	}
}

// drain drops a waiting token before a read: a change after it leaves a
// new one.
func (w *fetchWaiter) drain() {
	if w.ch == nil {
		return
	}
	select {
	case <-w.ch:
	default:
	}
}

// wait blocks until a partition signals or the deadline passes. It
// reports false when the context ended.
func (w *fetchWaiter) wait(ctx context.Context, deadline time.Time) bool {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-w.ch:
	case <-timer.C:
	case <-ctx.Done():
		return false
	}
	return true
}

func (t waitTarget) watch(c chan<- struct{}) {
	switch {
	case t.rep != nil:
		t.rep.watchHW(c)
	case t.log != nil:
		t.log.Watch(c)
	}
}

func (t waitTarget) unwatch(c chan<- struct{}) {
	switch {
	case t.rep != nil:
		t.rep.unwatchHW(c)
	case t.log != nil:
		t.log.Unwatch(c)
	}
}

// fetchReply is a Fetch response together with what its record batches
// are made of. Partitions with little data carry it in RecordBatches, as
// usual; the rest are listed in out, in encoding order, and the connection
// writer sends them apart from the encoded frame: from the read buffer
// with writev, or from the segment file with sendfile, without copying
// them into the frame. Read buffers go back to the connection afterwards.
type fetchReply struct {
	*kmsg.FetchResponse
	conn *conn // nil: no spans, buffers not recycled
	bufs []readBuf
	out  []payload
	next int // cursor into out for external
}

// payload is the record batches of one partition that the writer sends
// apart from the frame: data in memory, or a span of a segment file.
type payload struct {
	at   [2]int // topic and partition index in the response
	data []byte
	span storage.Span
}

// size is the payload's length in bytes.
func (p *payload) size() int64 {
	if p.data != nil {
		return int64(len(p.data))
	}
	return p.span.Len
}

// readBuf is a buffer a partition was read into and how much of it the read
// returned.
type readBuf struct {
	buf  []byte
	used int
}

// read reads a partition's batches: as a span of its segment file when the
// connection can send from files and the span is not small, otherwise into
// a recycled buffer, which f holds until release. It returns the bytes
// read (nil for a span) and their length; the caller hands a result it
// keeps to keep, and releases a span it drops.
func (f *fetchReply) read(l *storage.Log, offset int64, maxBytes int32, maxOffset int64) ([]byte, storage.Span, error) {
	if f.conn != nil && f.conn.sendfile {
		sp, scratch, err := l.ReadSpan(offset, maxBytes, maxOffset, f.conn.scratch)
		f.conn.scratch = scratch
		if err != nil || sp.Len == 0 || sp.Len >= spliceMin {
			return nil, sp, err
		}
		// Small: inline it. A truncation since the span was found
		// means the bytes may have changed; read them the usual way.
		data := make([]byte, sp.Len)
		_, err = sp.File.ReadAt(data, sp.Pos)
		intact := sp.Intact()
		sp.Release()
		if err == nil && intact {
			return data, storage.Span{}, nil
		}
	}
	var buf []byte
	if f.conn != nil {
		buf = f.conn.takeReadBuf()
	}
	data, used, err := l.ReadInto(buf, offset, maxBytes, maxOffset)
	if cap(used) > 0 {
		f.bufs = append(f.bufs, readBuf{buf: used, used: len(data)})
	}
	return data, storage.Span{}, err
}

// keep records the batches read for the partition at index at (topic,
// partition) and returns what goes into its RecordBatches field.
func (f *fetchReply) keep(at [2]int, data []byte, sp storage.Span) []byte {
	switch {
	case sp.Len > 0:
		f.out = append(f.out, payload{at: at, span: sp})
		return []byte{}
	case len(data) >= spliceMin:
		f.out = append(f.out, payload{at: at, data: data})
	}
	return data
}

// external reports, for protocol.AppendFetchResponse, which partitions the
// writer sends apart from the frame. Calls come in encoding order, which is
// the order of out.
func (f *fetchReply) external(topic, partition int) (int, bool) {
	if f.next < len(f.out) && f.out[f.next].at == [2]int{topic, partition} {
		f.next++
		return int(f.out[f.next-1].size()), true
	}
	return 0, false
}

// intact reports whether no log the response's spans come from was
// truncated since they were found.
func (f *fetchReply) intact() bool {
	for i := range f.out {
		if f.out[i].data == nil && !f.out[i].span.Intact() {
			return false
		}
	}
	return true
}

// inline reads the spans into memory and puts every partition's batches
// into its RecordBatches, for a writer that cannot send them apart from the
// frame. It fails if a log was truncated since its span was found.
func (f *fetchReply) inline() error {
	for i := range f.out {
		pl := &f.out[i]
		if pl.data != nil {
			continue
		}
		data := make([]byte, pl.span.Len)
		if _, err := pl.span.File.ReadAt(data, pl.span.Pos); err != nil {
			return fmt.Errorf("read fetched batches: %w", err)
		}
		if !pl.span.Intact() {
			return errSpanChanged
		}
		pl.span.Release()
		pl.data = data
		f.Topics[pl.at[0]].Partitions[pl.at[1]].RecordBatches = data
	}
	return nil
}

// release gives the read buffers back to the connection and unpins the
// spans. The response must not be written after it.
func (f *fetchReply) release() {
	if f.conn != nil {
		for _, rb := range f.bufs {
			f.conn.giveReadBuf(rb.buf, rb.used)
		}
	}
	for i := range f.out {
		f.out[i].span.Release()
	}
	f.bufs, f.out = nil, nil
}

// partFetcher reads one partition of a fetch into sp within budget bytes
// (minOne: the first partition with data may exceed it by one batch). It
// returns the signal to wait on when there is too little, the bytes read,
// and whether the response must go back now.
type partFetcher func(ts *topicState, rp *kmsg.FetchRequestTopicPartition, sp *kmsg.FetchResponseTopicPartition,
	budget int, minOne bool, out *fetchReply, at [2]int) (waitTarget, int, bool)

// consumerFetcher reads for a consumer: up to the high watermark.
func (b *Broker) consumerFetcher(isolation int8) partFetcher {
	return func(ts *topicState, rp *kmsg.FetchRequestTopicPartition, sp *kmsg.FetchResponseTopicPartition,
		budget int, minOne bool, out *fetchReply, at [2]int) (waitTarget, int, bool) {
		c, n := b.fetchPartition(ts, rp, sp, budget, minOne, isolation, out, at)
		return c, n, false
	}
}

// fetchOnce fills resp from the logs, one distinct partition at a time
// through part, setting each part's wake signal for this round (the
// waiter registers before the read it waits after, so no change is
// missed). Consecutive partitions of one topic share a response topic. It
// returns the number of record bytes gathered and whether an error means
// the response must go back now.
func (b *Broker) fetchOnce(req *kmsg.FetchRequest, parts []fetchPart, resp *fetchReply, part partFetcher) (int, bool) {
	var (
		total   int
		stop    bool
		budget  = int(req.MaxBytes)
		st      *kmsg.FetchResponseTopic
		ts      *topicState
		code    int16
		prev    *fetchPart
		scratch kmsg.FetchResponseTopicPartition
	)
	if budget <= 0 {
		budget = 1 << 31 / 2
	}
	if req.ReplicaID < 0 && req.ReplicaState.ID < 0 {
		// Consumers are held to fetch.max.bytes, as in Kafka's
		// KafkaApis; followers to their own replica.fetch.response.max.bytes.
		budget = min(budget, b.fetchMaxBytes)
	}
	for i := range parts {
		fp := &parts[i]
		fp.wake = waitTarget{}
		if prev == nil || prev.topic != fp.topic || prev.topicID != fp.topicID {
			if st != nil && len(st.Partitions) == 0 {
				resp.Topics = resp.Topics[:len(resp.Topics)-1] // all its partitions left out
			}
			resp.Topics = append(resp.Topics, kmsg.NewFetchResponseTopic())
			st = &resp.Topics[len(resp.Topics)-1]
			st.Topic, st.TopicID = fp.topic, fp.topicID
			if fp.cached == nil { // not incremental: every partition is answered
				st.Partitions = make([]kmsg.FetchResponseTopicPartition, 0, sameTopicRun(parts[i:]))
			}
			if ts, code = b.fetchTopic(req.Version, fp.topic, fp.topicID); ts != nil {
				st.Topic = ts.meta().Name
			}
		}
		prev = fp
		rp := &fp.rp
		// One scratch answer per round, copied into the response when
		// kept: it escapes through part, so a fresh one per partition
		// would be a heap allocation per partition.
		scratch = kmsg.NewFetchResponseTopicPartition()
		sp := &scratch
		sp.Partition = rp.Partition
		sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
		// Kafka never sends null records (librdkafka rejects size -1).
		sp.RecordBatches = []byte{}
		n := 0
		if code != 0 {
			sp.ErrorCode = code
			stop = true
		} else {
			at := [2]int{len(resp.Topics) - 1, len(st.Partitions)}
			var urgent bool
			fp.wake, n, urgent = part(ts, rp, sp, budget-total, total == 0, resp, at)
			stop = stop || urgent || sp.ErrorCode != 0
			total += n
		}
		fp.answerHW, fp.answerLogStart = sp.HighWatermark, sp.LogStartOffset
		if sp.ErrorCode != 0 {
			fp.answerHW = -1 // sent again once the error is gone
		}
		// An incremental response leaves out what has not changed; a
		// left-out partition read no records, so nothing refers to its slot.
		if fp.answered = fp.include(sp, n > 0); fp.answered {
			st.Partitions = append(st.Partitions, *sp)
		}
	}
	if st != nil && len(st.Partitions) == 0 {
		resp.Topics = resp.Topics[:len(resp.Topics)-1]
	}
	return total, stop
}

// sameTopicRun counts the parts at the head of parts that share the first
// one's topic.
func sameTopicRun(parts []fetchPart) int {
	n := 1
	for n < len(parts) && parts[n].topic == parts[0].topic && parts[n].topicID == parts[0].topicID {
		n++
	}
	return n
}

// fetchTopic resolves a requested topic by name (v4-12) or id (v13+).
func (b *Broker) fetchTopic(version int16, name string, id [16]byte) (*topicState, int16) {
	if version >= 13 {
		ts := b.topics.getID(id)
		if ts == nil {
			return nil, kerr.UnknownTopicID.Code
		}
		return ts, 0
	}
	ts := b.topics.get(name)
	if ts == nil {
		return nil, kerr.UnknownTopicOrPartition.Code
	}
	return ts, 0
}

// fetchPartition reads one partition into sp within budget bytes. minOne
// lets the first partition with data exceed the budget by one batch.
func (b *Broker) fetchPartition(ts *topicState, rp *kmsg.FetchRequestTopicPartition, sp *kmsg.FetchResponseTopicPartition, budget int, minOne bool, isolation int8, out *fetchReply, at [2]int) (waitTarget, int) {
	if rp.Partition < 0 || rp.Partition >= ts.meta().Partitions {
		sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
		return waitTarget{}, 0
	}
	p := ts.partition(rp.Partition)
	if p == nil {
		sp.ErrorCode = kerr.NotLeaderForPartition.Code
		b.fillCurrentLeader(out, ts, rp.Partition, sp)
		return waitTarget{}, 0
	}
	wake := waitTarget{rep: p.rep}
	hw, _, code := p.rep.readBound(rp.CurrentLeaderEpoch)
	if code != 0 {
		sp.ErrorCode = code
		b.fillCurrentLeader(out, ts, rp.Partition, sp)
		return waitTarget{}, 0
	}
	lso := min(p.log.LastStableOffset(), hw)
	sp.HighWatermark = hw
	sp.LastStableOffset = lso
	sp.LogStartOffset = p.log.LogStartOffset()
	limit := int(rp.PartitionMaxBytes)
	if limit > budget {
		limit = budget
	}
	if limit <= 0 && !minOne {
		return wake, 0
	}
	// read_committed consumers see up to the last stable offset (KIP-98).
	bound := hw
	if isolation == readCommitted {
		bound = lso
		sp.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
	}
	if rp.FetchOffset == bound {
		return wake, 0
	}
	data, span, err := out.read(p.log, rp.FetchOffset, int32(max(limit, 1)), bound)
	switch {
	case errors.Is(err, storage.ErrOffsetOutOfRange):
		if rp.FetchOffset > bound && rp.FetchOffset <= p.log.LogEndOffset() {
			return wake, 0 // between the bound and the log end: nothing visible yet
		}
		sp.ErrorCode = kerr.OffsetOutOfRange.Code
		return waitTarget{}, 0
	case err != nil:
		sp.ErrorCode = kerr.KafkaStorageError.Code
		b.log.Error("fetch read failed", "topic", ts.meta().Name, "partition", rp.Partition, "err", err)
		return waitTarget{}, 0
	}
	n := len(data) + int(span.Len)
	if n > limit && !minOne {
		span.Release()
		return wake, 0 // KIP-74: only the first partition may exceed its limit
	}
	if data != nil || span.Len > 0 {
		if isolation == readCommitted {
			end := fetchedEnd(data, span)
			if end <= rp.FetchOffset {
				end = bound // unknown: every transaction up to the bound
			}
			if sp.AbortedTransactions, err = abortedIn(p.log, rp.FetchOffset, end); err != nil {
				// Without the aborted transactions a read_committed
				// consumer would take aborted records for committed.
				span.Release()
				sp.ErrorCode = kerr.KafkaStorageError.Code
				b.log.Error("fetch: aborted transactions unreadable", "topic", ts.meta().Name, "partition", rp.Partition, "err", err)
				return waitTarget{}, 0
			}
		}
		sp.RecordBatches = out.keep(at, data, span)
	}
	return wake, n
}

// readCommitted is Fetch's and ListOffsets' isolation level 1.
const readCommitted = 1

// fetchedEnd is the offset after the last batch of a partition's fetched
// data, or -1 when it cannot be read.
func fetchedEnd(data []byte, span storage.Span) int64 {
	if span.Len > 0 {
		return span.NextOffset
	}
	if end, ok := batch.EndOffset(data); ok {
		return end
	}
	return -1
}

// abortedIn lists the aborted transactions overlapping [from, to), which a
// read_committed consumer drops from the batches it got (KIP-98).
func abortedIn(l *storage.Log, from, to int64) ([]kmsg.FetchResponseTopicPartitionAbortedTransaction, error) {
	txns, err := l.AppendAbortedTransactions(nil, from, to)
	if err != nil {
		return nil, fmt.Errorf("aborted transactions in [%d, %d): %w", from, to, err)
	}
	out := make([]kmsg.FetchResponseTopicPartitionAbortedTransaction, len(txns))
	for i, t := range txns {
		out[i] = kmsg.FetchResponseTopicPartitionAbortedTransaction{ProducerID: t.ProducerID, FirstOffset: t.FirstOffset}
	}
	return out, nil
}

// countFetched records bytes and records out per topic.
func (b *Broker) countFetched(resp *fetchReply) {
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if len(p.RecordBatches) == 0 {
				continue
			}
			records := 0
			rest := p.RecordBatches
			for len(rest) > 0 {
				one, r, err := batch.Next(rest)
				if err != nil {
					break
				}
				if h, err := batch.ParseHeader(one); err == nil {
					records += int(h.NumRecords)
				}
				rest = r
			}
			b.metrics.fetched(t.Topic, len(p.RecordBatches), records)
		}
	}
	for _, pl := range resp.out {
		if pl.data == nil {
			b.metrics.fetched(resp.Topics[pl.at[0]].Topic, int(pl.span.Len), int(pl.span.Records))
		}
	}
}
