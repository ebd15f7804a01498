package txn

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// async runs f on a goroutine and returns a channel with its result.
func async[T any](f func() T) <-chan T {
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	return ch
}

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for a response")
	}
	var zero T
	return zero
}

func initReq(id string) *kmsg.InitProducerIDRequest {
	r := kmsg.NewPtrInitProducerIDRequest()
	r.Version = 5
	r.TransactionalID = kmsg.StringPtr(id)
	r.TransactionTimeoutMillis = 60_000
	return r
}

func endReq(version int16, id string, pid int64, epoch int16, commit bool) *kmsg.EndTxnRequest {
	r := kmsg.NewPtrEndTxnRequest()
	r.Version = version
	r.TransactionalID, r.ProducerID, r.ProducerEpoch, r.Commit = id, pid, epoch, commit
	return r
}

// While a transition of an id is being written, every other request that
// would change it gets CONCURRENT_TRANSACTIONS, and memory shows the state
// before the write until it is durable.
func TestTxnPendingWriteGetsConcurrentTransactions(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pid, epoch := h.mustInit("a")
	h.mustAdd("a", pid, epoch, "t-0")

	h.log.block()
	endDone := async(func() *kmsg.EndTxnResponse { return h.c.EndTxn(h.ctx, endReq(4, "a", pid, epoch, true)) })
	waitFor(t, "the PrepareCommit write", func() bool { return h.log.blockedCount() == 1 })

	if m, pending, _ := h.state("a"); m.state != stateOngoing || pending != pendingWrite {
		t.Fatalf("during the write: %s pending=%d, want Ongoing (writing)", m.state, pending)
	}
	expectCode(t, "init", h.c.InitProducerID(h.ctx, initReq("a")).ErrorCode, kerr.ConcurrentTransactions)
	expectCode(t, "end again", h.c.EndTxn(h.ctx, endReq(4, "a", pid, epoch, true)).ErrorCode, kerr.ConcurrentTransactions)
	r := kmsg.NewPtrAddPartitionsToTxnRequest()
	r.Version = 3
	r.TransactionalID, r.ProducerID, r.ProducerEpoch = "a", pid, epoch
	r.Topics = clientTopics(parseTPs("t-1"))
	expectCode(t, "add", h.c.AddPartitionsToTxn(h.ctx, r).Topics[0].Partitions[0].ErrorCode, kerr.ConcurrentTransactions)
	// Verification looks at the durable state only.
	if got := h.leader(5, true, "a", pid, epoch, "t-0"); got[0] != "t-0:NONE" {
		t.Fatalf("verify during the write: %v", got)
	}

	h.log.release()
	expectCode(t, "end", recv(t, endDone).ErrorCode, nil)
	h.settle()
	if m, pending, _ := h.state("a"); m.state != stateCompleteCommit || pending != pendingNone {
		t.Fatalf("after: %s pending=%d", m.state, pending)
	}
}

// A transactional id seen for the first time is unknown to everything but
// InitProducerId (which gets CONCURRENT_TRANSACTIONS) until its first
// record is durable.
func TestTxnFirstInitIsInvisibleUntilDurable(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.log.block()
	first := async(func() *kmsg.InitProducerIDResponse { return h.c.InitProducerID(h.ctx, initReq("a")) })
	waitFor(t, "the first write", func() bool { return h.log.blockedCount() == 1 })

	expectCode(t, "second init", h.c.InitProducerID(h.ctx, initReq("a")).ErrorCode, kerr.ConcurrentTransactions)
	r := kmsg.NewPtrDescribeTransactionsRequest()
	r.TransactionalIDs = []string{"a"}
	expectCode(t, "describe", h.c.DescribeTransactions(h.ctx, r).TransactionStates[0].ErrorCode, kerr.TransactionalIDNotFound)
	expectCode(t, "end", h.c.EndTxn(h.ctx, endReq(5, "a", 1000, 0, false)).ErrorCode, kerr.InvalidProducerIDMapping)
	if st := h.c.Stats(); st.TransactionalIDs != 0 {
		t.Fatalf("stats count a pending id: %+v", st)
	}

	h.log.release()
	resp := recv(t, first)
	expectCode(t, "first init", resp.ErrorCode, nil)
	if resp.ProducerID != 1000 || resp.ProducerEpoch != 0 {
		t.Fatalf("first init got %d/%d", resp.ProducerID, resp.ProducerEpoch)
	}
}

// Unloading the partition while a write is in flight cancels it, waits for
// it, and answers NOT_COORDINATOR; Close answers COORDINATOR_NOT_AVAILABLE.
func TestTxnUnloadAndCloseDuringWrite(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pid, epoch := h.mustInit("a")
	h.log.block()
	add := async(func() []string { return h.add(3, "a", pid, epoch, "t-0") })
	waitFor(t, "the add write", func() bool { return h.log.blockedCount() == 1 })
	h.c.Unload(PartitionFor("a", testPartitions))
	if got := recv(t, add); len(got) != 1 || got[0] != "t-0:NOT_COORDINATOR" {
		t.Fatalf("add during unload: %v", got)
	}
	h.log.release()
	h.load(PartitionFor("a", testPartitions), 2)
	if m, _, _ := h.state("a"); m.state != stateEmpty {
		t.Fatalf("reloaded: %s, want Empty (the add never reached the log)", m.state)
	}

	h.log.block()
	init := async(func() *kmsg.InitProducerIDResponse { return h.c.InitProducerID(h.ctx, initReq("b")) })
	waitFor(t, "the init write", func() bool { return h.log.blockedCount() == 1 })
	h.c.Close()
	expectCode(t, "init during close", recv(t, init).ErrorCode, kerr.CoordinatorNotAvailable)
	expectCode(t, "init after close", h.c.InitProducerID(h.ctx, initReq("b")).ErrorCode, kerr.CoordinatorNotAvailable)
	if h.c.Owns(0) {
		t.Fatal("a closed coordinator owns a partition")
	}
}

// A request whose context ends while its write is in flight is answered
// COORDINATOR_NOT_AVAILABLE at once; the write still completes and is
// applied.
func TestTxnContextEndsWhileWaiting(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pid, epoch := h.mustInit("a")
	h.mustAdd("a", pid, epoch, "t-0")
	h.log.block()
	ctx, cancel := context.WithCancel(context.Background())
	end := async(func() *kmsg.EndTxnResponse { return h.c.EndTxn(ctx, endReq(4, "a", pid, epoch, true)) })
	waitFor(t, "the write", func() bool { return h.log.blockedCount() == 1 })
	cancel()
	expectCode(t, "end", recv(t, end).ErrorCode, kerr.CoordinatorNotAvailable)
	h.log.release()
	h.settle()
	if m, _, _ := h.state("a"); m.state != stateCompleteCommit {
		t.Fatalf("after the write: %s, want CompleteCommit", m.state)
	}
	// The client's retry sees the completed commit.
	expectCode(t, "retry", h.end(4, "a", pid, epoch, true).ErrorCode, nil)
}

// Writes queued while a batch is in flight share the next Persist call.
func TestTxnWritesAreBatched(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var ids []string
	for i := 0; len(ids) < 20; i++ {
		if id := fmt.Sprintf("id-%d", i); PartitionFor(id, testPartitions) == 0 {
			ids = append(ids, id)
		}
	}
	h.log.block()
	first := async(func() *kmsg.InitProducerIDResponse { return h.c.InitProducerID(h.ctx, initReq(ids[0])) })
	waitFor(t, "the first write", func() bool { return h.log.blockedCount() == 1 })
	var rest []<-chan *kmsg.InitProducerIDResponse
	for _, id := range ids[1:] {
		rest = append(rest, async(func() *kmsg.InitProducerIDResponse { return h.c.InitProducerID(h.ctx, initReq(id)) }))
	}
	waitFor(t, "the queued writes", func() bool {
		h.c.mu.Lock()
		defer h.c.mu.Unlock()
		return len(h.c.mu.parts[0].queue) == len(ids)-1
	})
	calls := h.log.callCount()
	h.log.release()
	expectCode(t, "first", recv(t, first).ErrorCode, nil)
	for _, ch := range rest {
		expectCode(t, "queued", recv(t, ch).ErrorCode, nil)
	}
	h.log.mu.Lock()
	defer h.log.mu.Unlock()
	if got := h.log.calls - calls; got != 1 {
		t.Fatalf("%d queued writes took %d more Persist calls, want 1", len(ids)-1, got)
	}
	if n := len(h.log.logs[0]); n != len(ids) {
		t.Fatalf("log has %d records, want %d", n, len(ids))
	}
}

// A Persist error after the markers leaves Prepare* in memory and retries
// Complete* on the clock; unloading stops the retries.
func TestTxnCompleteRetryStopsAtUnload(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pid, epoch := h.mustInit("a")
	h.mustAdd("a", pid, epoch, "t-0")
	h.markers.setMode("block")
	expectCode(t, "end", h.end(4, "a", pid, epoch, false).ErrorCode, nil)
	h.log.setFail(kerr.NotEnoughReplicas, 0)
	h.markers.setMode("ok")
	h.settle()
	before := h.log.callCount()
	h.advance(time.Second)
	if h.log.callCount() <= before {
		t.Fatal("Complete* was not retried")
	}
	h.c.Unload(PartitionFor("a", testPartitions))
	after := h.log.callCount()
	h.advance(time.Minute)
	if n := h.log.callCount(); n != after {
		t.Fatalf("Complete* retried %d times after the unload", n-after)
	}
	h.log.setFail(nil, 0)
	h.load(PartitionFor("a", testPartitions), 2)
	if m, _, _ := h.state("a"); m.state != stateCompleteAbort {
		t.Fatalf("after the reload: %s, want CompleteAbort", m.state)
	}
}

// Producer id allocation failures reach the client as a retriable code
// (or the allocator's own Kafka error), and allocate nothing.
func TestTxnProducerIDAllocationFails(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.pidErr = fmt.Errorf("etcd: %w", context.DeadlineExceeded)
	expectCode(t, "init", h.init("a", time.Minute).ErrorCode, kerr.CoordinatorNotAvailable)
	h.pidErr = fmt.Errorf("blocks: %w", kerr.CoordinatorLoadInProgress)
	expectCode(t, "init", h.init("a", time.Minute).ErrorCode, kerr.CoordinatorLoadInProgress)
	if _, _, ok := h.state("a"); ok {
		t.Fatal("a failed allocation left the id behind")
	}
	h.pidErr = nil
	h.mustInit("a")
}

// InitProducerId without a transactional id is the broker's, and an empty
// one is invalid.
func TestTxnInitProducerIDRequiresTransactionalID(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := kmsg.NewPtrInitProducerIDRequest()
	r.Version = 1
	r.TransactionTimeoutMillis = 1000
	expectCode(t, "nil id", h.c.InitProducerID(h.ctx, r).ErrorCode, kerr.InvalidRequest)
	r.TransactionalID = kmsg.StringPtr("")
	resp := h.c.InitProducerID(h.ctx, r)
	expectCode(t, "empty id", resp.ErrorCode, kerr.InvalidRequest)
	if resp.ProducerID != -1 || resp.ProducerEpoch != -1 {
		t.Fatalf("error response carries %d/%d", resp.ProducerID, resp.ProducerEpoch)
	}
	expectCode(t, "empty id end", h.end(5, "", 1, 0, true).ErrorCode, kerr.InvalidRequest)
	if got := h.add(3, "", 1, 0, "t-0"); got[0] != "t-0:INVALID_REQUEST" {
		t.Fatalf("empty id add: %v", got)
	}
}

// Unload cancels the marker writes of the partition and returns only once
// they have returned; the transaction is completed by the next load.
func TestTxnUnloadWaitsForMarkerWrites(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pid, epoch := h.mustInit("a")
	h.mustAdd("a", pid, epoch, "t-0")
	h.markers.setMode("block")
	expectCode(t, "end", h.end(4, "a", pid, epoch, true).ErrorCode, nil)
	if h.markers.blockedCount() != 1 {
		t.Fatal("no marker write in flight")
	}
	h.c.Unload(PartitionFor("a", testPartitions))
	h.c.mu.Lock()
	running := h.c.mu.markers.running
	h.c.mu.Unlock()
	if running != 0 || h.markers.blockedCount() != 0 {
		t.Fatalf("after Unload: %d marker writes running, %d blocked", running, h.markers.blockedCount())
	}
	h.markers.setMode("ok")
	h.load(PartitionFor("a", testPartitions), 2)
	if m, _, _ := h.state("a"); m.state != stateCompleteCommit {
		t.Fatalf("after the reload: %s", m.state)
	}
}

// KIP-360 from the producer whose own transaction is ongoing aborts it
// (CONCURRENT_TRANSACTIONS until done) without counting as a fencing
// (Kafka's TransactionManager recovers from an abortable error this way).
func TestTxnRecoveringProducerAbortsItsTransaction(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	pid, epoch := h.mustInit("a")
	h.mustAdd("a", pid, epoch, "t-0")
	expectCode(t, "recover", h.initRecover("a", time.Minute, pid, epoch).ErrorCode, kerr.ConcurrentTransactions)
	// The client retries with the same epoch: the abort's bump counts as
	// its bump (the epoch before it is the last epoch), so it gets the
	// abort's epoch, with no second bump.
	resp := h.initRecover("a", time.Minute, pid, epoch)
	expectCode(t, "retry", resp.ErrorCode, nil)
	if resp.ProducerID != pid || resp.ProducerEpoch != epoch+1 {
		t.Fatalf("retry got %d/%d, want %d/%d", resp.ProducerID, resp.ProducerEpoch, pid, epoch+1)
	}
	if st := h.c.Stats(); st.Fenced != 0 || st.Aborted != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// With Config.CompletionWait, EndTxn answers once the markers and
// Complete* are done, or when the wait runs out if the markers are stuck;
// the answer is success either way, the outcome being durable at Prepare*.
func TestTxnEndWaitsForCompletion(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.CompletionWait = 5 * time.Second })
	pid, epoch := h.mustInit("a")
	h.mustAdd("a", pid, epoch, "t-0")
	h.markers.setMode("block")
	r := kmsg.NewPtrEndTxnRequest()
	r.Version = 4
	r.TransactionalID, r.ProducerID, r.ProducerEpoch, r.Commit = "a", pid, epoch, true
	answered := make(chan *kmsg.EndTxnResponse, 1)
	go func() { answered <- h.c.EndTxn(h.ctx, r) }()
	waitFor(t, "the markers to be asked for", func() bool { return h.markers.blockedCount() == 1 })
	select {
	case resp := <-answered:
		t.Fatalf("EndTxn answered (%s) before the markers were written", codeName(resp.ErrorCode))
	default:
	}
	h.markers.setMode("ok")
	resp := <-answered
	expectCode(t, "end", resp.ErrorCode, nil)
	if m, pending, _ := h.state("a"); m.state != stateCompleteCommit || pending != pendingNone {
		t.Fatalf("when EndTxn answered: %s (pending %v), want CompleteCommit", m.state, pending)
	}

	h.mustAdd("a", pid, epoch, "t-1")
	h.markers.setMode("block")
	go func() { answered <- h.c.EndTxn(h.ctx, r) }()
	waitFor(t, "the markers to be asked for", func() bool { return h.markers.blockedCount() == 1 })
	// The wait's timer may be armed a moment after the markers are asked
	// for: move the clock in steps until EndTxn answers.
	resp = nil
	waitFor(t, "EndTxn to give up waiting", func() bool {
		select {
		case resp = <-answered:
			return true
		default:
			h.advance(time.Second)
			return false
		}
	})
	expectCode(t, "end with stuck markers", resp.ErrorCode, nil)
	if m, _, _ := h.state("a"); m.state != statePrepareCommit {
		t.Fatalf("after the wait ran out: %s, want PrepareCommit", m.state)
	}
	h.markers.setMode("ok")
}

// An EndTxn waiting for its markers is answered at once when the partition
// is unloaded: the completion is the next coordinator's business, and the
// outcome was decided at Prepare*.
func TestTxnEndWaitEndsAtUnload(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.CompletionWait = time.Hour })
	pid, epoch := h.mustInit("a")
	h.mustAdd("a", pid, epoch, "t-0")
	h.markers.setMode("block")
	r := kmsg.NewPtrEndTxnRequest()
	r.Version = 4
	r.TransactionalID, r.ProducerID, r.ProducerEpoch, r.Commit = "a", pid, epoch, true
	answered := make(chan *kmsg.EndTxnResponse, 1)
	go func() { answered <- h.c.EndTxn(h.ctx, r) }()
	waitFor(t, "the markers to be asked for", func() bool { return h.markers.blockedCount() == 1 })
	h.c.Unload(PartitionFor("a", testPartitions))
	var resp *kmsg.EndTxnResponse
	waitFor(t, "EndTxn to answer after the unload", func() bool {
		select {
		case resp = <-answered:
			return true
		default:
			return false
		}
	})
	expectCode(t, "end", resp.ErrorCode, nil)
}
