package txn

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The scripts under testdata/scripts are cockroachdb/datadriven files: a
// command with key=value arguments, "----", and the expected output.
// Regenerate the expected output after an intended change with
//
//	go test ./coordinator/txn/ -run Scripts -rewrite
//
// and review the diff. Commands:
//
//	init id= [timeout=60s] [pid= epoch=] [v=5]      InitProducerId
//	add id= parts=(t-0,...) [v=3] [pid= epoch=]      client AddPartitionsToTxn
//	verify id= parts=(...) [v=5] [pid= epoch=]       leader, VerifyOnly
//	produce id= parts=(...) [v=5] [pid= epoch=]      leader, VerifyOnly=false
//	offsets id= group= [v=3] [pid= epoch=]           AddOffsetsToTxn
//	end id= commit|abort [v=5] [pid= epoch=]         EndTxn
//	describe ids=(...)
//	list [states=(...)] [pids=(...)] [duration=] [pattern=] [v=2]
//	tick d=                                          advance the clock
//	persist ok|block|release|fail=NAME [n=]          the __transaction_state writes
//	markers mode=ok|fail|fence|block                 the marker writes
//	marker-calls                                     marker writes since the last call
//	log id=                                          records of id's partition for id
//	show id=                                         durable state and pending state
//	unload id= | load id= [epoch=]                   id's partition
//	begin-load id= [epoch=]                          BeginLoad only: the partition stays loading
//	seed id= state= pid= epoch= [parts=] [tv=] [start=] [prev=] [next=] [timeout=]
//	                                                 append a record for id and reload its partition
//	stats
//
// pid and epoch default to what the last successful InitProducerId or
// EndTxn v5 gave the id.
type script struct {
	h    *harness
	prod map[string]producerRef
}

func TestTxnScripts(t *testing.T) {
	t.Parallel()
	datadriven.Walk(t, "testdata/scripts", func(t *testing.T, path string) {
		s := &script{h: newHarness(t), prod: make(map[string]producerRef)}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			s.h.t = t
			return s.run(t, d)
		})
	})
}

func (s *script) run(t *testing.T, d *datadriven.TestData) string {
	h := s.h
	switch d.Cmd {
	case "init":
		return s.init(t, d)
	case "add":
		id, pid, epoch := s.producer(t, d)
		return strings.Join(h.add(int16(argInt(t, d, "v", 3)), id, pid, epoch, argList(t, d, "parts")...), "\n")
	case "verify", "produce":
		id, pid, epoch := s.producer(t, d)
		return strings.Join(h.leader(int16(argInt(t, d, "v", 5)), d.Cmd == "verify", id, pid, epoch, argList(t, d, "parts")...), "\n")
	case "offsets":
		id, pid, epoch := s.producer(t, d)
		r := kmsg.NewPtrAddOffsetsToTxnRequest()
		r.Version = int16(argInt(t, d, "v", 3))
		r.TransactionalID, r.ProducerID, r.ProducerEpoch, r.Group = id, pid, epoch, argString(t, d, "group", "g")
		resp := h.c.AddOffsetsToTxn(h.ctx, r)
		h.settle()
		return codeName(resp.ErrorCode)
	case "end":
		return s.end(t, d)
	case "describe":
		return s.describe(t, d)
	case "list":
		return s.list(t, d)
	case "tick":
		h.advance(argDuration(t, d, "d", 0))
		return fmt.Sprintf("now=%s", h.clock.Now().Sub(testStart))
	case "persist":
		return s.persist(t, d)
	case "markers":
		h.markers.setMode(argString(t, d, "mode", "ok"))
		h.settle()
		return "ok"
	case "marker-calls":
		return fmtMarkers(h.markers.takeCalls())
	case "log":
		return s.log(t, d)
	case "show":
		id := argString(t, d, "id", "")
		m, pending, ok := h.state(id)
		if !ok {
			return "unknown"
		}
		return fmtMeta(m) + pendingSuffix(pending)
	case "unload":
		h.c.Unload(PartitionFor(argString(t, d, "id", ""), testPartitions))
		h.settle()
		return "ok"
	case "begin-load":
		h.c.BeginLoad(PartitionFor(argString(t, d, "id", ""), testPartitions), int32(argInt(t, d, "epoch", 2)))
		h.settle()
		return "ok"
	case "load":
		h.load(PartitionFor(argString(t, d, "id", ""), testPartitions), int32(argInt(t, d, "epoch", 2)))
		return "ok"
	case "seed":
		return s.seed(t, d)
	case "stats":
		st := h.c.Stats()
		return fmt.Sprintf("ongoing=%d oldest=%s committed=%d aborted=%d timed-out=%d fenced=%d ids=%d",
			st.Ongoing, st.OldestOngoing, st.Committed, st.Aborted, st.TimedOut, st.Fenced, st.TransactionalIDs)
	}
	d.Fatalf(t, "unknown command %s", d.Cmd)
	return ""
}

func (s *script) init(t *testing.T, d *datadriven.TestData) string {
	h := s.h
	id := argString(t, d, "id", "")
	r := kmsg.NewPtrInitProducerIDRequest()
	r.Version = int16(argInt(t, d, "v", 5))
	r.TransactionalID = kmsg.StringPtr(id)
	r.TransactionTimeoutMillis = int32(argDuration(t, d, "timeout", time.Minute).Milliseconds())
	if d.HasArg("pid") {
		r.ProducerID = argInt(t, d, "pid", -1)
		r.ProducerEpoch = int16(argInt(t, d, "epoch", -1))
	}
	resp := h.c.InitProducerID(h.ctx, r)
	h.settle()
	if resp.ErrorCode != 0 {
		return codeName(resp.ErrorCode)
	}
	s.prod[id] = producerRef{id: resp.ProducerID, epoch: resp.ProducerEpoch}
	return fmt.Sprintf("pid=%d epoch=%d", resp.ProducerID, resp.ProducerEpoch)
}

func (s *script) end(t *testing.T, d *datadriven.TestData) string {
	h := s.h
	id, pid, epoch := s.producer(t, d)
	commit := d.HasArg("commit")
	if !commit && !d.HasArg("abort") {
		d.Fatalf(t, "end needs commit or abort")
	}
	v := int16(argInt(t, d, "v", 5))
	resp := h.end(v, id, pid, epoch, commit)
	if resp.ErrorCode != 0 || v < 5 {
		return codeName(resp.ErrorCode)
	}
	s.prod[id] = producerRef{id: resp.ProducerID, epoch: resp.ProducerEpoch}
	return fmt.Sprintf("NONE pid=%d epoch=%d", resp.ProducerID, resp.ProducerEpoch)
}

func (s *script) seed(t *testing.T, d *datadriven.TestData) string {
	h := s.h
	id := argString(t, d, "id", "")
	state, ok := stateNames[argString(t, d, "state", "Empty")]
	if !ok {
		d.Fatalf(t, "unknown state")
	}
	m := meta{
		producerID: argInt(t, d, "pid", 1), prevProducerID: argInt(t, d, "prev", -1),
		nextProducerID: argInt(t, d, "next", -1), epoch: int16(argInt(t, d, "epoch", 0)), lastEpoch: -1,
		timeoutMs: int32(argDuration(t, d, "timeout", time.Minute).Milliseconds()), state: state,
		startMs: -1, lastUpdateMs: h.clock.Now().UnixMilli(), tv: int8(argInt(t, d, "tv", 0)),
	}
	if d.HasArg("start") {
		m.startMs = testStart.Add(argDuration(t, d, "start", 0)).UnixMilli()
	}
	if parts := argList(t, d, "parts"); parts != nil {
		m.partitions = unionPartitions(nil, parseTPs(parts...))
	}
	p := PartitionFor(id, testPartitions)
	h.log.mu.Lock()
	h.log.logs[p] = append(h.log.logs[p], stateRecord(id, m))
	h.log.mu.Unlock()
	h.load(p, int32(argInt(t, d, "coordinator-epoch", 2)))
	s.prod[id] = producerRef{id: m.producerID, epoch: m.epoch}
	return "ok"
}

func (s *script) producer(t *testing.T, d *datadriven.TestData) (string, int64, int16) {
	id := argString(t, d, "id", "")
	p := s.prod[id]
	return id, argInt(t, d, "pid", p.id), int16(argInt(t, d, "epoch", int64(p.epoch)))
}

func (s *script) describe(t *testing.T, d *datadriven.TestData) string {
	r := kmsg.NewPtrDescribeTransactionsRequest()
	r.TransactionalIDs = argList(t, d, "ids")
	resp := s.h.c.DescribeTransactions(s.h.ctx, r)
	var b strings.Builder
	for _, st := range resp.TransactionStates {
		if st.ErrorCode != 0 {
			fmt.Fprintf(&b, "%s: %s\n", st.TransactionalID, codeName(st.ErrorCode))
			continue
		}
		var parts []string
		for _, rt := range st.Topics {
			for _, p := range rt.Partitions {
				parts = append(parts, fmt.Sprintf("%s-%d", rt.Topic, p))
			}
		}
		fmt.Fprintf(&b, "%s: %s pid=%d epoch=%d timeout=%dms start=%s parts=[%s]\n", st.TransactionalID, st.State,
			st.ProducerID, st.ProducerEpoch, st.TimeoutMillis, relMs(st.StartTimestamp), strings.Join(parts, " "))
	}
	return strings.TrimSpace(b.String())
}

func (s *script) list(t *testing.T, d *datadriven.TestData) string {
	r := kmsg.NewPtrListTransactionsRequest()
	r.Version = int16(argInt(t, d, "v", 2))
	r.StateFilters = argList(t, d, "states")
	for _, p := range argList(t, d, "pids") {
		var id int64
		fmt.Sscan(p, &id)
		r.ProducerIDFilters = append(r.ProducerIDFilters, id)
	}
	if d.HasArg("duration") {
		r.DurationFilterMillis = argDuration(t, d, "duration", 0).Milliseconds()
	}
	if d.HasArg("pattern") {
		r.TransactionalIDPattern = kmsg.StringPtr(argString(t, d, "pattern", ""))
	}
	resp := s.h.c.ListTransactions(s.h.ctx, r)
	var b strings.Builder
	if resp.ErrorCode != 0 {
		fmt.Fprintf(&b, "error: %s\n", codeName(resp.ErrorCode))
	}
	if len(resp.UnknownStateFilters) > 0 {
		fmt.Fprintf(&b, "unknown states: %s\n", strings.Join(resp.UnknownStateFilters, " "))
	}
	for _, ts := range resp.TransactionStates {
		fmt.Fprintf(&b, "%s pid=%d %s\n", ts.TransactionalID, ts.ProducerID, ts.TransactionState)
	}
	if b.Len() == 0 {
		return "(none)"
	}
	return strings.TrimSpace(b.String())
}

func (s *script) persist(t *testing.T, d *datadriven.TestData) string {
	h := s.h
	switch {
	case d.HasArg("ok"):
		h.log.setFail(nil, 0)
	case d.HasArg("block"):
		h.log.block()
	case d.HasArg("release"):
		h.log.release()
		h.settle()
	case d.HasArg("fail"):
		h.log.setFail(namedError(argString(t, d, "fail", "")), int(argInt(t, d, "n", 0)))
	default:
		d.Fatalf(t, "persist needs ok, block, release or fail=")
	}
	return "ok"
}

func (s *script) log(t *testing.T, d *datadriven.TestData) string {
	id := argString(t, d, "id", "")
	var b strings.Builder
	for _, r := range s.h.log.records(PartitionFor(id, testPartitions)) {
		rid, _, err := decodeKey(r.Key)
		if err != nil || rid != id {
			continue
		}
		if r.Value == nil {
			b.WriteString("tombstone\n")
			continue
		}
		m, _, err := decodeValue(r.Value)
		if err != nil {
			fmt.Fprintf(&b, "malformed: %v\n", err)
			continue
		}
		b.WriteString(fmtMeta(m) + "\n")
	}
	if b.Len() == 0 {
		return "(none)"
	}
	return strings.TrimSpace(b.String())
}

// fmtMeta prints the fields of m the log holds (not lastEpoch).
func fmtMeta(m meta) string {
	var parts []string
	for _, tp := range m.partitions {
		parts = append(parts, fmt.Sprintf("%s-%d", tp.Topic, tp.Partition))
	}
	s := fmt.Sprintf("%s pid=%d epoch=%d timeout=%dms start=%s updated=%s tv=%d parts=[%s]",
		m.state, m.producerID, m.epoch, m.timeoutMs, relMs(m.startMs), relMs(m.lastUpdateMs), m.tv, strings.Join(parts, " "))
	if m.prevProducerID >= 0 && m.prevProducerID != m.producerID {
		s += fmt.Sprintf(" prev=%d", m.prevProducerID)
	}
	if m.nextProducerID >= 0 {
		s += fmt.Sprintf(" next=%d", m.nextProducerID)
	}
	return s
}

func pendingSuffix(p pendingKind) string {
	switch p {
	case pendingWrite:
		return " (writing)"
	case pendingComplete:
		return " (completing)"
	case pendingStopped:
		return " (stopped: newer coordinator)"
	}
	return ""
}

func fmtMarkers(ms []Marker) string {
	if len(ms) == 0 {
		return "(none)"
	}
	var b strings.Builder
	for _, m := range ms {
		var parts []string
		for _, tp := range m.Partitions {
			parts = append(parts, fmt.Sprintf("%s-%d", tp.Topic, tp.Partition))
		}
		result := "ABORT"
		if m.Commit {
			result = "COMMIT"
		}
		fmt.Fprintf(&b, "%s %s pid=%d epoch=%d coordinator-epoch=%d tv=%d parts=[%s]\n", m.TransactionalID, result,
			m.ProducerID, m.ProducerEpoch, m.CoordinatorEpoch, m.TransactionVersion, strings.Join(parts, " "))
	}
	return strings.TrimSpace(b.String())
}

// relMs prints a Kafka timestamp relative to the test's start.
func relMs(ms int64) string {
	if ms < 0 {
		return "-"
	}
	return time.UnixMilli(ms).Sub(testStart).String()
}

// namedError returns the Kafka error with that name, or a plain error
// standing for a transport failure.
func namedError(name string) error {
	for code := int16(-1); code < 200; code++ {
		var ke *kerr.Error
		if errors.As(kerr.ErrorForCode(code), &ke) && ke.Message == name {
			return ke
		}
	}
	if name == "NOT_COORDINATOR_SENTINEL" {
		return ErrNotCoordinator
	}
	return errors.New(name)
}

func argInt(t *testing.T, d *datadriven.TestData, key string, def int64) int64 {
	if !d.HasArg(key) {
		return def
	}
	var v int64
	d.ScanArgs(t, key, &v)
	return v
}

func argString(t *testing.T, d *datadriven.TestData, key, def string) string {
	if !d.HasArg(key) {
		return def
	}
	var v string
	d.ScanArgs(t, key, &v)
	return v
}

func argList(t *testing.T, d *datadriven.TestData, key string) []string {
	var v []string
	if d.HasArg(key) {
		d.ScanArgs(t, key, &v)
	}
	return v
}

func argDuration(t *testing.T, d *datadriven.TestData, key string, def time.Duration) time.Duration {
	if !d.HasArg(key) {
		return def
	}
	var v string
	d.ScanArgs(t, key, &v)
	dur, err := time.ParseDuration(v)
	if err != nil {
		d.Fatalf(t, "%s: %v", key, err)
	}
	return dur
}
