package broker

// ShareFetch: v1-2 (KIP-932; v2 adds ShareAcquireMode, KIP-1206, and
// IsRenewAck, KIP-1222). v0 was Kafka 4.0's early access and is not served.
//
// A request first moves the member's share session (share_session.go):
// epoch 0 opens it (piggy-backed acknowledgements are then INVALID_REQUEST),
// -1 closes it after applying the acknowledgements and releasing what the
// member holds on the session's partitions, anything else must be the
// session's next epoch. Acknowledgements are applied next, per partition
// (AcknowledgeErrorCode), and answered only once the state covering them is
// durable. With IsRenewAck the request only renews (and acknowledges):
// its fetch limits must be zero and nothing is fetched.
//
// Then records are acquired from the session's partitions this broker
// leads, in an order rotated by the session epoch: each is read from its
// share-partition's FetchOffset up to the high watermark (the last stable
// offset under read_committed, with aborted batches marked from the log's
// aborted transactions), within MaxBytes (fetch.max.bytes at most; the
// first partition with data may exceed it by one batch, KIP-74), and
// acquired up to MaxRecords (500 when zero) in total. In record-limit mode
// (ShareAcquireMode 1) the batches handed to the share-partition are cut
// at the remaining record count, so MaxRecords is never exceeded; in the
// batch-optimised mode whole batches may exceed it, and the acquired
// ranges are split at BatchSize. The response carries the batches'
// stored bytes and the AcquiredRecords ranges. When less than MinBytes
// could be read (nothing acquirable counts as nothing), the request waits
// up to MaxWaitMillis, woken by appends to the partitions (their high
// watermark) and by releases, expiries and acknowledgements of their
// share-partitions; nothing is acquired while it waits.
//
// Lists in the request are hostile: partitions named several times are
// handled once (acknowledgements of all mentions together), a session holds
// at most maxShareSessionParts partitions, and the work per round is
// bounded by the session's distinct partitions.

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/coordinator/share"
	"github.com/sluicedev/sluice/protocol/batch"
	"github.com/sluicedev/sluice/storage"
)

func (b *Broker) shareFetchAPI() api { return api{key: 78, min: 1, max: 2, handle: b.handleShareFetch} }

// defaultShareMaxRecords is what a ShareFetch without MaxRecords acquires
// at most (the Java client's max.poll.records default).
const defaultShareMaxRecords = 500

// shareAckPart is the acknowledgements of one partition in a request, and
// their outcome.
type shareAckPart struct {
	tp   shareTP
	acks []share.Ack
	code int16
}

// collectShareAcks lists the acknowledgements of a request by distinct
// partition, in order of first mention (all mentions' batches together).
// A type out of range (RENEW only with IsRenewAck) makes the partition's
// code INVALID_REQUEST.
func collectShareAcks(n int, each func(yield func(tp shareTP, first, last int64, types []int8))) []shareAckPart {
	var out []shareAckPart
	at := make(map[shareTP]int, min(n, 1024))
	each(func(tp shareTP, first, last int64, types []int8) {
		i, ok := at[tp]
		if !ok {
			i = len(out)
			at[tp] = i
			out = append(out, shareAckPart{tp: tp})
		}
		if first < 0 && last < 0 && types == nil {
			return // a partition named without acknowledgements
		}
		ap := &out[i]
		a := share.Ack{FirstOffset: first, LastOffset: last, Types: make([]share.AckType, len(types))}
		for j, t := range types {
			a.Types[j] = share.AckType(t)
		}
		ap.acks = append(ap.acks, a)
	})
	return out
}

// checkAckTypes sets INVALID_REQUEST on partitions with an acknowledgement
// type out of range: 0-3, and 4 (RENEW) only when renew is set.
func checkAckTypes(parts []shareAckPart, renew bool) {
	hi := share.AckReject
	if renew {
		hi = share.AckRenew
	}
	for i := range parts {
		for _, a := range parts[i].acks {
			if len(a.Types) == 0 || a.FirstOffset > a.LastOffset || a.FirstOffset < 0 {
				parts[i].code = kerr.InvalidRequest.Code
			}
			for _, t := range a.Types {
				if t < share.AckGap || t > hi {
					parts[i].code = kerr.InvalidRequest.Code
				}
			}
		}
	}
}

// acknowledge applies member's acknowledgements to each partition and
// waits until they are durable, setting each part's code.
func (m *shareManager) acknowledge(ctx context.Context, group, member string, parts []shareAckPart) {
	type applied struct {
		i    int
		e    *shareEntry
		need uint64
	}
	var done []applied
	for i := range parts {
		ap := &parts[i]
		if ap.code != 0 || len(ap.acks) == 0 {
			continue
		}
		e, code := m.get(ctx, share.Key{Group: group, TopicID: ap.tp.topicID, Partition: ap.tp.partition})
		if code != 0 {
			ap.code = code
			continue
		}
		// Rejected and gap records are archived by the consumer's
		// choice, not by the delivery limit: not counted as limit
		// archives below.
		chosen := int64(0)
		for _, a := range ap.acks {
			for _, t := range a.Types {
				if t != share.AckReject && t != share.AckGap {
					continue
				}
				if len(a.Types) == 1 {
					chosen += a.LastOffset - a.FirstOffset + 1
				} else {
					chosen++
				}
			}
		}
		var need uint64
		var archiving int
		err := m.use(e, func(p *share.Partition) {
			before := p.Stats()
			ap.code = p.Acknowledge(m.now(), member, ap.acks)
			after := p.Stats()
			archiving = after.Archiving - before.Archiving
			done := after.Archiving + after.Archived - before.Archiving - before.Archived
			m.metrics.limitArchives.Add(float64(max(0, int64(done)-chosen)))
			need = e.versionLocked()
		})
		if err != nil {
			ap.code = shareErrCode(err)
			continue
		}
		if ap.code == 0 {
			done = append(done, applied{i, e, need})
		}
		if archiving > 0 {
			defer m.b.wakeDeadLetters(e.key) // once the state is durable
		}
	}
	for _, d := range done {
		if err := m.persist(ctx, d.e, d.need); err != nil {
			parts[d.i].code = shareErrCode(err)
		}
		d.e.notify() // released records may be acquired by others
	}
	if len(done) > 0 {
		m.kickTimer() // renewed or released locks move the deadlines
	}
}

// shareLeader is a partition's leader hint for NOT_LEADER_OR_FOLLOWER.
type shareLeader struct {
	id, epoch int32
	node      *kmsgNode
}

// kmsgNode is a broker's endpoint for a response's NodeEndpoints.
type kmsgNode struct {
	id   int32
	host string
	port int32
	rack *string
}

// shareLeaderOf finds the leader of tp, -1/-1 when unknown (the Java
// default clients read as "no hint").
func (b *Broker) shareLeaderOf(tp shareTP) shareLeader {
	l := shareLeader{id: -1, epoch: -1}
	ts := b.topics.getID(tp.topicID)
	if ts == nil {
		return l
	}
	st, ok := b.partitionState(ts.meta().Name, tp.partition)
	if !ok || st.Leader < 0 {
		return l
	}
	l.id, l.epoch = st.Leader, st.LeaderEpoch
	if br, ok := b.brokers.get(st.Leader); ok {
		n := &kmsgNode{id: br.NodeID, host: br.Host, port: br.Port}
		if br.Rack != "" {
			n.rack = kmsg.StringPtr(br.Rack)
		}
		l.node = n
	}
	return l
}

// shareFetchOut builds a ShareFetch response, one entry per partition.
type shareFetchOut struct {
	b      *Broker
	resp   *kmsg.ShareFetchResponse
	topics map[[16]byte]int
	parts  map[shareTP][2]int
	nodes  map[int32]bool
}

func newShareFetchOut(b *Broker, resp *kmsg.ShareFetchResponse) *shareFetchOut {
	return &shareFetchOut{b: b, resp: resp, topics: map[[16]byte]int{}, parts: map[shareTP][2]int{}, nodes: map[int32]bool{}}
}

// part returns tp's response entry, adding it.
func (o *shareFetchOut) part(tp shareTP) *kmsg.ShareFetchResponseTopicPartition {
	if at, ok := o.parts[tp]; ok {
		return &o.resp.Topics[at[0]].Partitions[at[1]]
	}
	ti, ok := o.topics[tp.topicID]
	if !ok {
		ti = len(o.resp.Topics)
		o.topics[tp.topicID] = ti
		t := kmsg.NewShareFetchResponseTopic()
		t.TopicID = tp.topicID
		o.resp.Topics = append(o.resp.Topics, t)
	}
	sp := kmsg.NewShareFetchResponseTopicPartition()
	sp.Partition = tp.partition
	sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = -1, -1
	sp.Records = []byte{}
	t := &o.resp.Topics[ti]
	o.parts[tp] = [2]int{ti, len(t.Partitions)}
	t.Partitions = append(t.Partitions, sp)
	return &t.Partitions[len(t.Partitions)-1]
}

// fail sets tp's fetch error, with the leader hint for
// NOT_LEADER_OR_FOLLOWER and FENCED_LEADER_EPOCH.
func (o *shareFetchOut) fail(tp shareTP, code int16) {
	sp := o.part(tp)
	sp.ErrorCode = code
	if code != kerr.NotLeaderForPartition.Code && code != kerr.FencedLeaderEpoch.Code {
		return
	}
	l := o.b.shareLeaderOf(tp)
	sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = l.id, l.epoch
	if l.node != nil && !o.nodes[l.id] {
		o.nodes[l.id] = true
		ne := kmsg.NewShareFetchResponseNodeEndpoint()
		ne.NodeID, ne.Host, ne.Port, ne.Rack = l.node.id, l.node.host, l.node.port, l.node.rack
		o.resp.NodeEndpoints = append(o.resp.NodeEndpoints, ne)
	}
}

// acks puts the acknowledgement outcomes into the response: every
// partition acknowledged appears (clients take its presence as the answer).
func (o *shareFetchOut) acks(parts []shareAckPart) {
	for i := range parts {
		if len(parts[i].acks) == 0 && parts[i].code == 0 {
			continue
		}
		o.part(parts[i].tp).AcknowledgeErrorCode = parts[i].code
	}
}

func (b *Broker) handleShareFetch(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.ShareFetchRequest)
	resp := req.ResponseKind().(*kmsg.ShareFetchResponse)
	m := b.shares
	if !b.shareEnabled() || m == nil {
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		return resp, nil
	}
	group, member := derefString(req.GroupID), derefString(req.MemberID)
	if group == "" || member == "" || len(member) > 36 {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp, nil
	}
	gs := b.groupSettings(group)
	resp.AcquisitionLockTimeoutMillis = int32(min(gs.ShareRecordLockDuration.Milliseconds(), 1<<31-1))
	renew := req.Version >= 2 && req.IsRenewAck
	if renew && (req.MaxBytes != 0 || req.MinBytes != 0 || req.MaxRecords != 0 || req.MaxWaitMillis != 0) {
		resp.ErrorCode = kerr.InvalidRequest.Code // KIP-1222: a renewal fetches nothing
		return resp, nil
	}
	n := 0
	for i := range req.Topics {
		n += len(req.Topics[i].Partitions)
	}
	acks := collectShareAcks(n, func(yield func(shareTP, int64, int64, []int8)) {
		for i := range req.Topics {
			rt := &req.Topics[i]
			for j := range rt.Partitions {
				rp := &rt.Partitions[j]
				tp := shareTP{rt.TopicID, rp.Partition}
				if len(rp.AcknowledgementBatches) == 0 {
					yield(tp, -1, -1, nil)
				}
				for _, ab := range rp.AcknowledgementBatches {
					yield(tp, ab.FirstOffset, ab.LastOffset, ab.AcknowledgeTypes)
				}
			}
		}
	})
	hasAcks := slices.ContainsFunc(acks, func(a shareAckPart) bool { return len(a.acks) > 0 })
	if renew && slices.ContainsFunc(acks, func(a shareAckPart) bool { return len(a.acks) == 0 }) {
		resp.ErrorCode = kerr.InvalidRequest.Code // KIP-1222: only acknowledgements
		return resp, nil
	}
	checkAckTypes(acks, renew)
	key := shareSessionKey{group, member}
	out := newShareFetchOut(b, resp)

	var parts []shareSessionPart
	switch req.ShareSessionEpoch {
	case -1:
		if !m.sessions.exists(key) {
			resp.ErrorCode = kerr.ShareSessionNotFound.Code
			return resp, nil
		}
		m.acknowledge(ctx, group, member, acks)
		tps, code := m.sessions.close(key)
		if code == 0 {
			m.releaseMember(ctx, group, member, tps)
		}
		out.acks(acks)
		return resp, nil
	case 0:
		if hasAcks {
			resp.ErrorCode = kerr.InvalidRequest.Code // nothing can be acquired before a session
			return resp, nil
		}
		var code int16
		if parts, code = m.sessions.open(key, r.conn, req.Topics); code != 0 {
			resp.ErrorCode = code
			return resp, nil
		}
	default:
		var code int16
		if parts, code = m.sessions.update(key, r.conn, req.ShareSessionEpoch, req.Topics, req.ForgottenTopicsData); code != 0 {
			resp.ErrorCode = code
			return resp, nil
		}
	}
	m.acknowledge(ctx, group, member, acks)
	out.acks(acks)
	if renew {
		return resp, nil
	}
	m.fetchShare(ctx, r, req, gs, group, member, parts, out)
	return resp, nil
}

// shareTarget is a session partition this broker leads, and what one
// round read of it.
type shareTarget struct {
	tp   shareTP
	e    *shareEntry
	from int64 // the FetchOffset read from
	data []byte
	lbs  []share.LogBatch
}

// fetchShare acquires records for member from the session's partitions
// into out, waiting as the request allows when there are none.
func (m *shareManager) fetchShare(ctx context.Context, r *request, req *kmsg.ShareFetchRequest, gs groupSettings,
	group, member string, parts []shareSessionPart, out *shareFetchOut) {
	var targets []shareTarget
	for _, sp := range parts {
		e, code := m.get(ctx, share.Key{Group: group, TopicID: sp.tp.topicID, Partition: sp.tp.partition})
		switch {
		case code != 0:
			out.fail(sp.tp, code)
		case sp.new:
			out.part(sp.tp) // named once when added
			fallthrough
		default:
			targets = append(targets, shareTarget{tp: sp.tp, e: e})
		}
	}
	if len(targets) == 0 {
		return
	}
	if k := len(targets); k > 1 {
		rot := int(req.ShareSessionEpoch) % k
		targets = append(targets[rot:k:k], targets[:rot]...) // a new array: no aliasing
	}
	ch := make(chan struct{}, 1)
	for i := range targets {
		targets[i].e.part.rep.watchHW(ch)
		targets[i].e.watch(ch)
	}
	defer func() {
		for i := range targets {
			targets[i].e.part.rep.unwatchHW(ch)
			targets[i].e.unwatch(ch)
		}
	}()
	maxRecords := int(req.MaxRecords)
	if maxRecords <= 0 {
		maxRecords = defaultShareMaxRecords
	}
	budget := int(req.MaxBytes)
	if budget <= 0 {
		budget = 1 << 30
	}
	budget = min(budget, m.b.fetchMaxBytes)
	recordLimit := req.Version >= 2 && req.ShareAcquireMode == 1
	start := time.Now()
	deadline := start.Add(time.Duration(max(req.MaxWaitMillis, 0)) * time.Millisecond)
	for {
		select {
		case <-ch:
		default:
		}
		total, failed := m.readShares(targets, gs.ShareIsolationLevel, budget, maxRecords, out)
		late := !time.Now().Before(deadline) || ctx.Err() != nil
		if total > 0 && (total >= int(req.MinBytes) || late) {
			if m.acquireShares(ctx, targets, member, maxRecords, recordLimit, int(req.BatchSize), out) || late {
				return
			}
		} else if late || failed {
			return
		}
		timer := time.NewTimer(time.Until(deadline))
		waitStart := time.Now()
		select {
		case <-ch:
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
		r.q.waited += time.Since(waitStart)
		for i := range targets {
			targets[i].data, targets[i].lbs = nil, nil
		}
	}
}

// readShares reads every target's acquirable batches within budget bytes
// (the first with data may exceed it by one batch). It returns the bytes
// read and whether a partition failed (the response then goes back now).
func (m *shareManager) readShares(targets []shareTarget, isolation int8, budget, maxRecords int, out *shareFetchOut) (int, bool) {
	total, failed := 0, false
	now := m.now()
	for i := range targets {
		t := &targets[i]
		t.data, t.lbs = nil, nil
		limit := budget - total
		if limit <= 0 && total > 0 {
			break
		}
		code := m.readShare(t, now, isolation, max(limit, 1), maxRecords, total == 0)
		if code != 0 {
			out.fail(t.tp, code)
			failed = true
			continue
		}
		total += len(t.data)
	}
	return total, failed
}

// readShare reads t's share-partition's log from its FetchOffset.
func (m *shareManager) readShare(t *shareTarget, now time.Time, isolation int8, limit, maxRecords int, minOne bool) int16 {
	p := t.e.part
	hw, _, code := p.rep.readBound(-1)
	if code != 0 {
		return code
	}
	bound := hw
	if isolation == readCommitted {
		bound = min(p.log.LastStableOffset(), hw)
	}
	logStart := p.log.LogStartOffset()
	var (
		off int64
		ok  bool
	)
	err := m.use(t.e, func(sp *share.Partition) {
		if off, ok = sp.FetchOffset(now); ok && off < logStart {
			sp.AdvanceLogStart(logStart)
			off, ok = sp.FetchOffset(now)
		}
	})
	if err != nil {
		return shareErrCode(err)
	}
	if !ok || off >= bound {
		return 0
	}
	// The read need not reach past what this member may acquire: its
	// maxRecords, at most its fair share of the in-flight bound, at the
	// partition's recent bytes per record (twice over, for records in the
	// window it skips). A client's MaxBytes (franz-go: 50 MiB) would
	// otherwise make every fetch read, and zero, megabytes it then trims.
	readLimit := min(limit, t.e.readEstimate(min(maxRecords, t.e.fairShare())))
	data, _, err := p.log.ReadInto(nil, off, int32(min(readLimit, 1<<31-1)), bound)
	switch {
	case errors.Is(err, storage.ErrOffsetOutOfRange):
		return 0 // the log start moved: the next round advances past it
	case err != nil:
		m.b.log.Error("share fetch read failed", "topic", p.log.Topic(), "partition", p.index, "err", err)
		return kerr.KafkaStorageError.Code
	}
	if len(data) > limit && !minOne {
		return 0 // KIP-74: only the first partition may exceed its limit
	}
	var aborted []storage.AbortedTxn
	if isolation == readCommitted && len(data) > 0 {
		end, _ := batch.EndOffset(data)
		if aborted, err = p.log.AppendAbortedTransactions(nil, off, max(end, off+1)); err != nil {
			m.b.log.Error("share fetch: aborted transactions unreadable", "topic", p.log.Topic(), "partition", p.index, "err", err)
			return kerr.KafkaStorageError.Code
		}
	}
	rest := data
	for len(rest) > 0 {
		one, r, err := batch.Next(rest)
		if err != nil {
			break
		}
		h, err := batch.ParseHeader(one)
		if err != nil {
			break
		}
		lb := share.LogBatch{FirstOffset: h.BaseOffset, LastOffset: h.LastOffset(), Control: h.Control()}
		if h.Transactional() && !h.Control() {
			lb.Aborted = slices.ContainsFunc(aborted, func(a storage.AbortedTxn) bool {
				return a.ProducerID == h.ProducerID && a.FirstOffset <= h.BaseOffset && h.BaseOffset <= a.LastOffset
			})
		}
		t.lbs = append(t.lbs, lb)
		rest = r
	}
	t.data, t.from = data[:len(data)-len(rest)], off
	if n := len(t.lbs); n > 0 {
		t.e.noteRead(len(t.data), t.lbs[n-1].LastOffset-t.lbs[0].FirstOffset+1)
	}
	return 0
}

// acquireShares acquires what readShares read, up to maxRecords in total,
// and puts the records into out. It reports whether anything was acquired.
func (m *shareManager) acquireShares(ctx context.Context, targets []shareTarget, member string, maxRecords int,
	recordLimit bool, batchSize int, out *shareFetchOut) bool {
	got := 0
	now := m.now()
	for i := range targets {
		t := &targets[i]
		left := maxRecords - got
		if len(t.lbs) == 0 || left <= 0 {
			continue
		}
		lbs := t.lbs
		if recordLimit {
			lbs = clipLogBatches(lbs, t.from, t.from+int64(left)-1)
		}
		var (
			ranges    []share.AcquiredRange
			archiving bool
			need      uint64
		)
		// An acquisition is written only when it moved the start offset
		// (over transaction markers, aborted batches or compacted offsets
		// at the window's head), so that the stored start offset and the
		// lag shown from it reach the end. The rest of what it changes
		// (delivery counts) is written with the next acknowledgement,
		// release or expiry, as in Kafka: after a restart the records it
		// held are delivered again, counted from the last state written.
		err := m.use(t.e, func(p *share.Partition) {
			start := p.StartOffset()
			ranges = p.AcquireFrom(now, member, t.from, lbs, min(left, t.e.fairShareLocked(member, now)))
			archiving = p.Stats().Archiving > 0
			if p.StartOffset() != start {
				need = t.e.versionLocked()
			}
		})
		if err == nil && need > 0 {
			err = m.persist(ctx, t.e, need)
		}
		if archiving {
			m.b.wakeDeadLetters(t.e.key)
		}
		if err != nil {
			out.fail(t.tp, shareErrCode(err))
			continue
		}
		if len(ranges) == 0 {
			continue
		}
		sp := out.part(t.tp)
		first, last := ranges[0].FirstOffset, ranges[len(ranges)-1].LastOffset
		redelivered := 0
		for _, ar := range ranges {
			n := int(ar.LastOffset - ar.FirstOffset + 1)
			got += n
			if ar.DeliveryCount > 1 {
				redelivered += n
			}
			for _, piece := range splitRange(ar, batchSize, recordLimit) {
				sp.AcquiredRecords = append(sp.AcquiredRecords, piece)
			}
		}
		m.metrics.redeliveries.Add(float64(redelivered))
		sp.Records = trimBatches(t.data, t.lbs, first, last)
	}
	if got > 0 {
		m.kickTimer() // new lock deadlines
	}
	return got > 0
}

// clipLogBatches cuts batches to the offsets [from, to]: what lies outside
// is treated as not read, so the share-partition cannot acquire it.
func clipLogBatches(lbs []share.LogBatch, from, to int64) []share.LogBatch {
	out := make([]share.LogBatch, 0, len(lbs))
	for _, lb := range lbs {
		if lb.LastOffset < from || lb.FirstOffset > to {
			continue
		}
		lb.FirstOffset, lb.LastOffset = max(lb.FirstOffset, from), min(lb.LastOffset, to)
		out = append(out, lb)
	}
	return out
}

// splitRange splits an acquired range at batchSize records in the
// batch-optimised mode (KIP-1206).
func splitRange(ar share.AcquiredRange, batchSize int, recordLimit bool) []kmsg.ShareFetchResponseTopicPartitionAcquiredRecord {
	var out []kmsg.ShareFetchResponseTopicPartitionAcquiredRecord
	step := ar.LastOffset - ar.FirstOffset + 1
	if batchSize > 0 && !recordLimit {
		step = int64(batchSize)
	}
	for off := ar.FirstOffset; off <= ar.LastOffset; off += step {
		r := kmsg.NewShareFetchResponseTopicPartitionAcquiredRecord()
		r.FirstOffset, r.LastOffset, r.DeliveryCount = off, min(off+step-1, ar.LastOffset), ar.DeliveryCount
		out = append(out, r)
	}
	return out
}

// trimBatches returns the part of data (whose batches are lbs) from the
// batch holding first to the one holding last.
func trimBatches(data []byte, lbs []share.LogBatch, first, last int64) []byte {
	start, end, pos := -1, 0, 0
	rest := data
	for _, lb := range lbs {
		one, r, err := batch.Next(rest)
		if err != nil {
			break
		}
		if lb.LastOffset >= first && lb.FirstOffset <= last {
			if start < 0 {
				start = pos
			}
			end = pos + len(one)
		}
		pos += len(one)
		rest = r
	}
	if start < 0 {
		return []byte{}
	}
	return data[start:end]
}
