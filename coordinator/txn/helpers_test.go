package txn

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/coordinator"
)

var testStart = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

const testPartitions = 4

// memLog is an in-memory __transaction_state: Persist appends to a
// partition's records unless a failure is injected; gate makes writes wait
// until released, to observe requests while one is pending.
type memLog struct {
	mu      sync.Mutex
	logs    map[int32][]Record
	fail    error
	failN   int // > 0: fail only the next failN writes
	gate    chan struct{}
	blocked int
	calls   int
}

func newMemLog() *memLog { return &memLog{logs: make(map[int32][]Record)} }

func (l *memLog) Persist(ctx context.Context, partition int32, records []Record) error {
	l.mu.Lock()
	l.calls++
	gate := l.gate
	if gate != nil {
		l.blocked++
	}
	l.mu.Unlock()
	if gate != nil {
		// release zeroes blocked itself, so that settle never mistakes
		// a released call for one still blocked on purpose.
		select {
		case <-gate:
		case <-ctx.Done():
			l.mu.Lock()
			if l.gate == gate {
				l.blocked--
			}
			l.mu.Unlock()
			return ctx.Err()
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		err := l.fail
		if l.failN > 0 {
			if l.failN--; l.failN == 0 {
				l.fail = nil
			}
		}
		return err
	}
	for _, r := range records {
		l.logs[partition] = append(l.logs[partition], Record{Key: slices.Clone(r.Key), Value: slices.Clone(r.Value)})
	}
	return nil
}

func (l *memLog) setFail(err error, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fail, l.failN = err, n
}

func (l *memLog) block() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gate = make(chan struct{})
}

func (l *memLog) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gate != nil {
		close(l.gate)
		l.gate = nil
		l.blocked = 0
	}
}

func (l *memLog) callCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls
}

func (l *memLog) blockedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.blocked
}

func (l *memLog) records(p int32) []Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.logs[p])
}

func (l *memLog) source(p int32) RecordSource {
	recs := l.records(p)
	return func(yield func(Record) bool) error {
		for _, r := range recs {
			if !yield(r) {
				break
			}
		}
		return nil
	}
}

// memMarkers records every WriteMarkers call. mode decides the outcome:
// "ok", "fail" (a transient error), "fence" (ErrCoordinatorFenced) or
// "block" (wait for release or the context).
type memMarkers struct {
	mu      sync.Mutex
	mode    string
	calls   []Marker
	gate    chan struct{}
	blocked int
}

func (mw *memMarkers) WriteMarkers(ctx context.Context, m Marker) error {
	mw.mu.Lock()
	mw.calls = append(mw.calls, m)
	mode, gate := mw.mode, mw.gate
	if mode == "block" {
		mw.blocked++
	}
	mw.mu.Unlock()
	switch mode {
	case "fail":
		return errors.New("leader unreachable")
	case "fence":
		return fmt.Errorf("partition t-0: %w", ErrCoordinatorFenced)
	case "block":
		select {
		case <-gate:
			return nil
		case <-ctx.Done():
			mw.mu.Lock()
			if mw.gate == gate && mw.mode == "block" {
				mw.blocked--
			}
			mw.mu.Unlock()
			return ctx.Err()
		}
	}
	return nil
}

func (mw *memMarkers) setMode(mode string) {
	mw.mu.Lock()
	defer mw.mu.Unlock()
	if mw.mode == "block" && mode != "block" {
		close(mw.gate)
		mw.blocked = 0
	}
	if mode == "block" && mw.mode != "block" {
		mw.gate = make(chan struct{})
	}
	mw.mode = mode
}

func (mw *memMarkers) blockedCount() int {
	mw.mu.Lock()
	defer mw.mu.Unlock()
	return mw.blocked
}

// takeCalls returns and forgets the calls so far.
func (mw *memMarkers) takeCalls() []Marker {
	mw.mu.Lock()
	defer mw.mu.Unlock()
	out := mw.calls
	mw.calls = nil
	return out
}

type harness struct {
	t       *testing.T
	clock   *coordinator.FakeClock
	log     *memLog
	markers *memMarkers
	c       *Coordinator
	ctx     context.Context

	mu       sync.Mutex
	nextPID  int64
	pidErr   error
	topics   map[string]int32
	logLines *strings.Builder
}

func newHarness(t *testing.T, mutate ...func(*Config)) *harness {
	t.Helper()
	h := &harness{
		t: t, clock: coordinator.NewFakeClock(testStart), log: newMemLog(), markers: &memMarkers{mode: "ok"},
		ctx: context.Background(), nextPID: 1000,
		topics: map[string]int32{"t": 4, "u": 2, OffsetsTopic: 10},
	}
	h.c = h.newCoordinator(mutate...)
	for p := range int32(testPartitions) {
		h.load(p, 1)
	}
	return h
}

func (h *harness) newCoordinator(mutate ...func(*Config)) *Coordinator {
	h.t.Helper()
	cfg := Config{
		Clock:                 h.clock,
		Persister:             h.log,
		Markers:               h.markers,
		ProducerIDs:           h.allocate,
		NumPartitions:         testPartitions,
		OffsetsPartitions:     10,
		TopicPartitions:       h.topicPartitions,
		MaxTimeout:            15 * time.Minute,
		AbortTimedOutInterval: 10 * time.Second,
		IDExpiration:          24 * time.Hour,
		RemoveExpiredInterval: time.Hour,
	}
	for _, f := range mutate {
		f(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(c.Close)
	return c
}

func (h *harness) allocate(context.Context) (int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pidErr != nil {
		return -1, h.pidErr
	}
	id := h.nextPID
	h.nextPID++
	return id, nil
}

func (h *harness) topicPartitions(topic string) (int32, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, ok := h.topics[topic]
	return n, ok
}

// load (re)loads partition p from the in-memory log at coordinatorEpoch.
func (h *harness) load(p, coordinatorEpoch int32) {
	h.t.Helper()
	if err := h.c.LoadFrom(h.c.BeginLoad(p, coordinatorEpoch), h.log.source(p)); err != nil {
		h.t.Fatalf("load partition %d: %v", p, err)
	}
	h.settle()
}

// settle waits until the coordinator has nothing left to do but what is
// blocked on purpose (a gated Persist, a blocked marker write) or waits
// for the clock.
func (h *harness) settle() {
	h.t.Helper()
	waitFor(h.t, "the coordinator to settle", func() bool {
		c := h.c
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, ps := range c.mu.parts {
			if ps == nil {
				continue
			}
			if len(ps.queue) > 0 && !ps.writing {
				return false
			}
			if ps.writing && h.log.blockedCount() == 0 {
				return false
			}
		}
		q := &c.mu.markers
		return c.mu.bg == 0 && q.running == h.markers.blockedCount() &&
			(len(q.queue) == 0 || q.running == maxMarkerWriters)
	})
}

// advance moves the clock and settles.
func (h *harness) advance(d time.Duration) {
	h.t.Helper()
	h.clock.Advance(d)
	h.settle()
}

// waitFor polls cond until it holds or five seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func expectCode(t *testing.T, what string, got int16, want *kerr.Error) {
	t.Helper()
	wantCode := int16(0)
	if want != nil {
		wantCode = want.Code
	}
	if got != wantCode {
		t.Fatalf("%s: error code %v, want %v", what, codeName(got), codeName(wantCode))
	}
}

func codeName(code int16) string {
	if code == 0 {
		return "NONE"
	}
	var ke *kerr.Error
	if errors.As(kerr.ErrorForCode(code), &ke) {
		return ke.Message
	}
	return fmt.Sprintf("code %d", code)
}

// ---- request helpers ----

func (h *harness) init(id string, timeout time.Duration) *kmsg.InitProducerIDResponse {
	r := kmsg.NewPtrInitProducerIDRequest()
	r.Version = 5
	r.TransactionalID = kmsg.StringPtr(id)
	r.TransactionTimeoutMillis = int32(timeout.Milliseconds())
	resp := h.c.InitProducerID(h.ctx, r)
	h.settle()
	return resp
}

func (h *harness) initRecover(id string, timeout time.Duration, pid int64, epoch int16) *kmsg.InitProducerIDResponse {
	r := kmsg.NewPtrInitProducerIDRequest()
	r.Version = 5
	r.TransactionalID = kmsg.StringPtr(id)
	r.TransactionTimeoutMillis = int32(timeout.Milliseconds())
	r.ProducerID, r.ProducerEpoch = pid, epoch
	resp := h.c.InitProducerID(h.ctx, r)
	h.settle()
	return resp
}

// mustInit initialises id and returns its producer id and epoch.
func (h *harness) mustInit(id string) (int64, int16) {
	h.t.Helper()
	resp := h.init(id, time.Minute)
	expectCode(h.t, "init "+id, resp.ErrorCode, nil)
	return resp.ProducerID, resp.ProducerEpoch
}

func parseTPs(specs ...string) []TopicPartition {
	var out []TopicPartition
	for _, s := range specs {
		i := strings.LastIndexByte(s, '-')
		var p int32
		fmt.Sscan(s[i+1:], &p)
		out = append(out, TopicPartition{Topic: s[:i], Partition: p})
	}
	return out
}

func clientTopics(tps []TopicPartition) []kmsg.AddPartitionsToTxnRequestTopic {
	var out []kmsg.AddPartitionsToTxnRequestTopic
	for _, tp := range tps {
		out = append(out, kmsg.AddPartitionsToTxnRequestTopic{Topic: tp.Topic, Partitions: []int32{tp.Partition}})
	}
	return out
}

// add sends a client AddPartitionsToTxn and returns "topic-p:CODE" per
// partition, sorted.
func (h *harness) add(version int16, id string, pid int64, epoch int16, parts ...string) []string {
	r := kmsg.NewPtrAddPartitionsToTxnRequest()
	r.Version = version
	r.TransactionalID, r.ProducerID, r.ProducerEpoch = id, pid, epoch
	r.Topics = clientTopics(parseTPs(parts...))
	resp := h.c.AddPartitionsToTxn(h.ctx, r)
	h.settle()
	var out []string
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			out = append(out, fmt.Sprintf("%s-%d:%s", rt.Topic, rp.Partition, codeName(rp.ErrorCode)))
		}
	}
	sort.Strings(out)
	return out
}

// mustAdd adds partitions with a v3 request and fails on any error.
func (h *harness) mustAdd(id string, pid int64, epoch int16, parts ...string) {
	h.t.Helper()
	for _, r := range h.add(3, id, pid, epoch, parts...) {
		if !strings.HasSuffix(r, ":NONE") {
			h.t.Fatalf("add %v to %s: %s", parts, id, r)
		}
	}
}

// leader sends a v4/v5 AddPartitionsToTxn for one transaction.
func (h *harness) leader(version int16, verify bool, id string, pid int64, epoch int16, parts ...string) []string {
	r := kmsg.NewPtrAddPartitionsToTxnRequest()
	r.Version = version
	tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
	tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tx.VerifyOnly = id, pid, epoch, verify
	for _, tp := range parseTPs(parts...) {
		tx.Topics = append(tx.Topics, kmsg.AddPartitionsToTxnRequestTransactionTopic{Topic: tp.Topic, Partitions: []int32{tp.Partition}})
	}
	r.Transactions = append(r.Transactions, tx)
	resp := h.c.AddPartitionsToTxn(h.ctx, r)
	h.settle()
	var out []string
	for _, rt := range resp.Transactions {
		for _, tt := range rt.Topics {
			for _, tp := range tt.Partitions {
				out = append(out, fmt.Sprintf("%s-%d:%s", tt.Topic, tp.Partition, codeName(tp.ErrorCode)))
			}
		}
	}
	sort.Strings(out)
	return out
}

func (h *harness) end(version int16, id string, pid int64, epoch int16, commit bool) *kmsg.EndTxnResponse {
	r := kmsg.NewPtrEndTxnRequest()
	r.Version = version
	r.TransactionalID, r.ProducerID, r.ProducerEpoch, r.Commit = id, pid, epoch, commit
	resp := h.c.EndTxn(h.ctx, r)
	h.settle()
	return resp
}

// state returns id's durable meta and pending state, read under the lock.
func (h *harness) state(id string) (meta, pendingKind, bool) {
	c := h.c
	c.mu.Lock()
	defer c.mu.Unlock()
	ps := c.mu.parts[PartitionFor(id, c.cfg.NumPartitions)]
	if ps == nil {
		return meta{}, pendingNone, false
	}
	t := ps.txns[id]
	if t == nil || !t.durable {
		return meta{}, pendingNone, false
	}
	return t.m, t.pending, true
}

// lastRecord decodes the last __transaction_state record of id.
func (h *harness) lastRecord(id string) (m meta, tomb, ok bool) {
	h.t.Helper()
	for _, r := range h.log.records(PartitionFor(id, testPartitions)) {
		rid, _, err := decodeKey(r.Key)
		if err != nil || rid != id {
			continue
		}
		ok = true
		if r.Value == nil {
			m, tomb = meta{}, true
			continue
		}
		dm, _, err := decodeValue(r.Value)
		if err != nil {
			h.t.Fatalf("decode record of %s: %v", id, err)
		}
		m, tomb = dm, false
	}
	return m, tomb, ok
}
