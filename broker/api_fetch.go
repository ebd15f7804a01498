package broker

// Fetch: v4-16.
//
// v4 is the first version with v2 batches and isolation levels (KIP-98). Fetch
// sessions (KIP-227, v7+) are not created: every response carries session id
// 0, which tells clients to keep sending full requests; a request naming a
// session id gets FETCH_SESSION_ID_NOT_FOUND. Topic ids replace names from
// v13 (KIP-516). Long polls wait on the partitions' change signals, so an
// append wakes them at once; MaxWaitMillis and MinBytes are honoured, and so
// are the response, partition and fetch.max.bytes limits, except that the
// first partition with data always returns at least one whole batch (KIP-74).
// Stored batches are returned exactly as they sit in the segment files; on
// TCP connections they are sent from those files with sendfile(2) (see
// fetchReply), so large fetches do not pass through the broker's memory.

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/protocol/batch"
	"github.com/sluicedev/sluice/storage"
)

func (b *Broker) fetchAPI() api { return api{key: 1, min: 4, max: 16, handle: b.handleFetch} }

func (b *Broker) handleFetch(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.FetchRequest)
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	if req.SessionID != 0 || req.SessionEpoch > 0 {
		resp.ErrorCode = kerr.FetchSessionIDNotFound.Code
		return resp, nil
	}
	replicaID := req.ReplicaID
	if req.Version >= 15 {
		replicaID = req.ReplicaState.ID
	}
	if replicaID < 0 {
		b.clampFetch(r, req)
	}
	start := time.Now()
	deadline := start.Add(time.Duration(req.MaxWaitMillis) * time.Millisecond)
	waited := false
	for {
		out := &fetchReply{FetchResponse: kmsg.NewPtrFetchResponse(), conn: r.conn}
		out.Version = req.Version
		part := b.consumerFetcher(req.IsolationLevel)
		if replicaID >= 0 {
			part = b.replicaFetcher(replicaID, time.Now())
		}
		wake, n, stop := b.fetchOnce(req, out, part)
		if stop || n >= int(req.MinBytes) || !time.Now().Before(deadline) || len(wake) == 0 {
			if waited {
				b.metrics.fetchWait.Observe(time.Since(start).Seconds())
			}
			return b.finishFetch(r, out, replicaID), nil
		}
		waited = true
		waitStart := time.Now()
		ok := waitAny(ctx, wake, deadline)
		r.q.waited += time.Since(waitStart)
		if !ok {
			return b.finishFetch(r, out, replicaID), nil
		}
		out.release() // read again, into the same buffers
	}
}

// finishFetch applies a client's fetch quotas to the response (a throttled
// fetch is answered empty) and counts what is sent.
func (b *Broker) finishFetch(r *request, out *fetchReply, replicaID int32) kmsg.Response {
	if replicaID >= 0 {
		r.q.done = true // replication is exempt from client quotas
	} else if resp := b.throttleFetch(r, out); resp != kmsg.Response(out) {
		return resp
	}
	b.countFetched(out)
	return out
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

// waitAny blocks until one of chans is closed or the deadline passes. It
// reports false when the context ended.
func waitAny(ctx context.Context, chans []<-chan struct{}, deadline time.Time) bool {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	if len(chans) == 1 {
		select {
		case <-chans[0]:
		case <-timer.C:
		case <-ctx.Done():
			return false
		}
		return true
	}
	cases := make([]reflect.SelectCase, 0, len(chans)+2)
	cases = append(cases,
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer.C)})
	for _, c := range chans {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c)})
	}
	chosen, _, _ := reflect.Select(cases)
	return chosen != 0
}

// partFetcher reads one partition of a fetch into sp within budget bytes
// (minOne: the first partition with data may exceed it by one batch). It
// returns the signal to wait on when there is too little, the bytes read,
// and whether the response must go back now.
type partFetcher func(ts *topicState, rp *kmsg.FetchRequestTopicPartition, sp *kmsg.FetchResponseTopicPartition,
	budget int, minOne bool, out *fetchReply, at [2]int) (<-chan struct{}, int, bool)

// consumerFetcher reads for a consumer: up to the high watermark.
func (b *Broker) consumerFetcher(isolation int8) partFetcher {
	return func(ts *topicState, rp *kmsg.FetchRequestTopicPartition, sp *kmsg.FetchResponseTopicPartition,
		budget int, minOne bool, out *fetchReply, at [2]int) (<-chan struct{}, int, bool) {
		c, n := b.fetchPartition(ts, rp, sp, budget, minOne, isolation, out, at)
		return c, n, false
	}
}

// fetchOnce fills resp from the logs, one partition at a time through
// part. It returns the change signals of the partitions read (taken before
// reading, so no append is missed), the number of record bytes gathered,
// and whether an error means the response must go back now.
func (b *Broker) fetchOnce(req *kmsg.FetchRequest, resp *fetchReply, part partFetcher) ([]<-chan struct{}, int, bool) {
	var (
		wake   []<-chan struct{}
		total  int
		stop   bool
		budget = int(req.MaxBytes)
	)
	if budget <= 0 {
		budget = 1 << 31 / 2
	}
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := kmsg.NewFetchResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		ts, code := b.fetchTopic(req.Version, rt)
		if ts != nil {
			st.Topic = ts.meta().Name
		}
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
			// Kafka never sends null records (librdkafka rejects size -1).
			sp.RecordBatches = []byte{}
			if code != 0 {
				sp.ErrorCode = code
				stop = true
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			at := [2]int{len(resp.Topics), len(st.Partitions)}
			c, n, urgent := part(ts, rp, &sp, budget-total, total == 0, resp, at)
			if c != nil {
				wake = append(wake, c)
			}
			stop = stop || urgent || sp.ErrorCode != 0
			total += n
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return wake, total, stop
}

// fetchTopic resolves a requested topic by name (v4-12) or id (v13+).
func (b *Broker) fetchTopic(version int16, rt *kmsg.FetchRequestTopic) (*topicState, int16) {
	if version >= 13 {
		ts := b.topics.getID(rt.TopicID)
		if ts == nil {
			return nil, kerr.UnknownTopicID.Code
		}
		return ts, 0
	}
	ts := b.topics.get(rt.Topic)
	if ts == nil {
		return nil, kerr.UnknownTopicOrPartition.Code
	}
	return ts, 0
}

// fetchPartition reads one partition into sp within budget bytes. minOne
// lets the first partition with data exceed the budget by one batch.
func (b *Broker) fetchPartition(ts *topicState, rp *kmsg.FetchRequestTopicPartition, sp *kmsg.FetchResponseTopicPartition, budget int, minOne bool, isolation int8, out *fetchReply, at [2]int) (<-chan struct{}, int) {
	if rp.Partition < 0 || rp.Partition >= ts.meta().Partitions {
		sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
		return nil, 0
	}
	p := ts.partition(rp.Partition)
	if p == nil {
		sp.ErrorCode = kerr.NotLeaderForPartition.Code
		b.fillCurrentLeader(out, ts, rp.Partition, sp)
		return nil, 0
	}
	wake := p.rep.hwChanged()
	hw, _, code := p.rep.readBound(rp.CurrentLeaderEpoch)
	if code != 0 {
		sp.ErrorCode = code
		b.fillCurrentLeader(out, ts, rp.Partition, sp)
		return nil, 0
	}
	sp.HighWatermark = hw
	sp.LastStableOffset = hw
	sp.LogStartOffset = p.log.LogStartOffset()
	limit := int(rp.PartitionMaxBytes)
	if limit > budget {
		limit = budget
	}
	if limit <= 0 && !minOne {
		return wake, 0
	}
	if rp.FetchOffset == hw {
		return wake, 0
	}
	data, span, err := out.read(p.log, rp.FetchOffset, int32(max(limit, 1)), hw)
	switch {
	case errors.Is(err, storage.ErrOffsetOutOfRange):
		if rp.FetchOffset > hw && rp.FetchOffset <= p.log.LogEndOffset() {
			return wake, 0 // between the high watermark and the log end: nothing visible yet
		}
		sp.ErrorCode = kerr.OffsetOutOfRange.Code
		return nil, 0
	case err != nil:
		sp.ErrorCode = kerr.KafkaStorageError.Code
		b.log.Error("fetch read failed", "topic", ts.meta().Name, "partition", rp.Partition, "err", err)
		return nil, 0
	}
	n := len(data) + int(span.Len)
	if n > limit && !minOne {
		span.Release()
		return wake, 0 // KIP-74: only the first partition may exceed its limit
	}
	if data != nil || span.Len > 0 {
		sp.RecordBatches = out.keep(at, data, span)
	}
	return wake, n
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
