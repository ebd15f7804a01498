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
// Stored batches are returned exactly as they sit in the segment files.

import (
	"context"
	"errors"
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
	start := time.Now()
	deadline := start.Add(time.Duration(req.MaxWaitMillis) * time.Millisecond)
	waited := false
	for {
		out := &fetchReply{FetchResponse: kmsg.NewPtrFetchResponse(), conn: r.conn}
		out.Version = req.Version
		wake, n, stop := b.fetchOnce(req, out)
		if stop || n >= int(req.MinBytes) || !time.Now().Before(deadline) || len(wake) == 0 {
			if waited {
				b.metrics.fetchWait.Observe(time.Since(start).Seconds())
			}
			b.countFetched(out.FetchResponse)
			return out, nil
		}
		waited = true
		if !waitAny(ctx, wake, deadline) {
			b.countFetched(out.FetchResponse)
			return out, nil
		}
		out.release() // read again into the same buffers
	}
}

// fetchReply is a Fetch response together with the read buffers its record
// batches alias. The connection writer writes the batches straight from
// those buffers and then gives them back for the connection's next fetch.
type fetchReply struct {
	*kmsg.FetchResponse
	conn *conn // nil: buffers are not recycled
	bufs []readBuf
}

// readBuf is a buffer a partition was read into and how much of it the read
// returned.
type readBuf struct {
	buf  []byte
	used int
}

// readInto reads a partition's batches through a recycled buffer, which f
// holds until release.
func (f *fetchReply) readInto(l *storage.Log, offset int64, maxBytes int32, maxOffset int64) ([]byte, error) {
	var buf []byte
	if f.conn != nil {
		buf = f.conn.takeReadBuf()
	}
	data, used, err := l.ReadInto(buf, offset, maxBytes, maxOffset)
	if cap(used) > 0 {
		f.bufs = append(f.bufs, readBuf{buf: used, used: len(data)})
	}
	return data, err
}

// release gives the read buffers back to the connection. The response must
// not be written after it: its record batches alias the buffers.
func (f *fetchReply) release() {
	if f.conn != nil {
		for _, rb := range f.bufs {
			f.conn.giveReadBuf(rb.buf, rb.used)
		}
	}
	f.bufs = nil
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

// fetchOnce fills resp from the logs. It returns the change signals of the
// partitions read (taken before reading, so no append is missed), the number
// of record bytes gathered, and whether an error means the response must go
// back now.
func (b *Broker) fetchOnce(req *kmsg.FetchRequest, resp *fetchReply) ([]<-chan struct{}, int, bool) {
	var (
		wake      []<-chan struct{}
		total     int
		stop      bool
		budget    = int(req.MaxBytes)
		isolation = req.IsolationLevel
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
			st.Topic = ts.meta.Name
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
			c, n := b.fetchPartition(ts, rp, &sp, budget-total, total == 0, isolation, resp)
			if c != nil {
				wake = append(wake, c)
			}
			if sp.ErrorCode != 0 {
				stop = true
			}
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
func (b *Broker) fetchPartition(ts *topicState, rp *kmsg.FetchRequestTopicPartition, sp *kmsg.FetchResponseTopicPartition, budget int, minOne bool, isolation int8, out *fetchReply) (<-chan struct{}, int) {
	if rp.Partition < 0 || rp.Partition >= ts.meta.Partitions {
		sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
		return nil, 0
	}
	p := ts.partition(rp.Partition)
	if p == nil || !b.isLeader(ts, rp.Partition) {
		sp.ErrorCode = kerr.NotLeaderForPartition.Code
		return nil, 0
	}
	if code := p.checkLeaderEpoch(rp.CurrentLeaderEpoch); code != 0 {
		sp.ErrorCode = code
		return nil, 0
	}
	wake := p.log.Changed()
	hw := p.highWatermark()
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
	data, err := out.readInto(p.log, rp.FetchOffset, int32(max(limit, 1)), hw)
	switch {
	case errors.Is(err, storage.ErrOffsetOutOfRange):
		if rp.FetchOffset > hw && rp.FetchOffset <= p.log.LogEndOffset() {
			return wake, 0 // between the high watermark and the log end: nothing visible yet
		}
		sp.ErrorCode = kerr.OffsetOutOfRange.Code
		return nil, 0
	case err != nil:
		sp.ErrorCode = kerr.KafkaStorageError.Code
		b.log.Error("fetch read failed", "topic", ts.meta.Name, "partition", rp.Partition, "err", err)
		return nil, 0
	}
	if len(data) > limit && !minOne {
		return wake, 0 // KIP-74: only the first partition may exceed its limit
	}
	if data != nil {
		sp.RecordBatches = data
	}
	return wake, len(data)
}

// countFetched records bytes and records out per topic.
func (b *Broker) countFetched(resp *kmsg.FetchResponse) {
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
}
