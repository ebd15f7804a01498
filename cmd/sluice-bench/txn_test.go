package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// endTxnLog counts the EndTxn requests a kfake cluster sees; with abortAll
// it turns every commit into an abort before kfake handles it, as a broker
// that acknowledges a commit but aborts the transaction would.
type endTxnLog struct {
	mu              sync.Mutex
	commits, aborts int
}

func watchEndTxn(cluster *kfake.Cluster, abortAll bool) *endTxnLog {
	l := &endTxnLog{}
	cluster.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		r := req.(*kmsg.EndTxnRequest)
		l.mu.Lock()
		if r.Commit {
			l.commits++
		} else {
			l.aborts++
		}
		l.mu.Unlock()
		if abortAll {
			r.Commit = false
		}
		return nil, nil, false // kfake handles the (possibly changed) request
	})
	return l
}

func (l *endTxnLog) counts() (commits, aborts int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.commits, l.aborts
}

// runAgainst runs sluice-bench with args against cluster.
func runAgainst(t *testing.T, cluster *kfake.Cluster, args ...string) (*result, error) {
	t.Helper()
	c, err := parseFlags(append([]string{"--brokers", cluster.ListenAddrs()[0]}, args...), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return runBench(context.Background(), c, slog.New(slog.DiscardHandler))
}

// TestTxnCommitsAndVerifies runs transactional produce+consume: every
// transaction is committed on the broker, the last one is cut short by
// --records, and the read_committed consumer's count check passes.
func TestTxnCommitsAndVerifies(t *testing.T) {
	t.Parallel()
	cluster := newTestCluster(t)
	ends := watchEndTxn(cluster, false)
	res, err := runAgainst(t, cluster, "--acks", "all", "--txn-records", "100", "--records", "1050",
		"--partitions", "2", "--record-size", "200", "--delete-topic")
	if err != nil {
		t.Fatalf("runBench: %v (result %+v)", err, res)
	}
	if commits, aborts := ends.counts(); commits != 11 || aborts != 0 {
		t.Errorf("broker saw %d commits and %d aborts, want 11 and 0", commits, aborts)
	}
	tx, p, v := res.Txn, res.Produce, res.Verify
	if tx == nil || tx.Committed != 11 || tx.Aborted != 0 || tx.TxnPS <= 0 || tx.EndTxn == nil || tx.Flush == nil {
		t.Errorf("txn stats %+v", tx)
	}
	if p == nil || p.Records != 1050 || p.Bytes != 1050*200 || p.RecordsPS <= 0 {
		t.Errorf("produce %+v", p)
	}
	if res.Consume == nil || res.Consume.Records != 1050 {
		t.Errorf("consume %+v", res.Consume)
	}
	if v == nil || !v.OK || v.Expected != 1050 || v.Consumed != 1050 || v.Isolation != readCommitted || !res.Idempotent {
		t.Errorf("verify %+v idempotent %v", v, res.Idempotent)
	}
}

// TestTxnAbortEvery aborts every third transaction: read_committed must
// read only the committed ones, read_uncommitted all of them.
func TestTxnAbortEvery(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		isolation string
		want      int64
	}{{readCommitted, 70}, {readUncommitted, 100}} {
		t.Run(tt.isolation, func(t *testing.T) {
			t.Parallel()
			cluster := newTestCluster(t)
			ends := watchEndTxn(cluster, false)
			res, err := runAgainst(t, cluster, "--acks", "all", "--txn-records", "10", "--records", "100",
				"--txn-abort-every", "3", "--isolation", tt.isolation, "--record-size", "64")
			if err != nil {
				t.Fatalf("runBench: %v (result %+v)", err, res)
			}
			if commits, aborts := ends.counts(); commits != 7 || aborts != 3 {
				t.Errorf("broker saw %d commits and %d aborts, want 7 and 3", commits, aborts)
			}
			if tx := res.Txn; tx.Committed != 7 || tx.Aborted != 3 || tx.AbortedRecords != 30 || res.Produce.Records != 70 {
				t.Errorf("txn %+v, produce records %d", tx, res.Produce.Records)
			}
			if v := res.Verify; v == nil || !v.OK || v.Expected != tt.want || v.Consumed != tt.want {
				t.Errorf("verify %+v, want %d consumed", v, tt.want)
			}
		})
	}
}

// TestTxnVerifyReportsMismatch makes the broker misbehave in two ways the
// check must catch: commits that are acknowledged but aborted (the
// read_committed consumer reads fewer records), and aborted records served
// to a read_committed consumer (it reads more).
func TestTxnVerifyReportsMismatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		rig      func(*kfake.Cluster)
		args     []string
		consumed int64
	}{
		{"commit aborted", func(c *kfake.Cluster) { watchEndTxn(c, true) }, nil, 0},
		{"aborted records leak", leakAborted, []string{"--txn-abort-every", "2"}, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cluster := newTestCluster(t)
			tt.rig(cluster)
			args := append([]string{"--acks", "all", "--txn-records", "10", "--records", "100", "--record-size", "64",
				"--target", "sluice", "--label", "txn"}, tt.args...)
			res, err := runAgainst(t, cluster, args...)
			if !errors.Is(err, errVerifyFailed) {
				t.Fatalf("err = %v, want errVerifyFailed (result %+v)", err, res)
			}
			v := res.Verify
			if v == nil || v.OK || v.Consumed != tt.consumed || v.Expected == v.Consumed {
				t.Fatalf("verify %+v, want a failed check with %d consumed", v, tt.consumed)
			}
			var text, cmp bytes.Buffer
			if err := writeText(&text, res); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(text.String(), "verify read_committed") || !strings.Contains(text.String(), "FAIL") {
				t.Errorf("text output does not report the failed check:\n%s", text.String())
			}
			err = writeComparison(&cmp, pairResults([]*result{res}, "sluice", "reference"), "sluice", "reference")
			if !errors.Is(err, errCompareFailed) || !strings.Contains(cmp.String(), "FAILED sluice txn: "+errVerifyFailed.Error()) {
				t.Errorf("comparison err %v, output:\n%s", err, cmp.String())
			}
		})
	}
}

// leakAborted rewrites every Fetch to read_uncommitted before kfake
// answers it, as a broker that ignores the isolation level would.
func leakAborted(cluster *kfake.Cluster) {
	cluster.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		req.(*kmsg.FetchRequest).IsolationLevel = 0
		return nil, nil, false
	})
}

// TestE2ETxnReadCommitted times a read_committed consumer behind a
// transactional producer and checks every record by sequence number; the
// same run against a broker that aborts acknowledged commits reports each
// record missing.
func TestE2ETxnReadCommitted(t *testing.T) {
	t.Parallel()
	for _, abortAll := range []bool{false, true} {
		t.Run(map[bool]string{false: "commits", true: "commit aborted"}[abortAll], func(t *testing.T) {
			t.Parallel()
			cluster := newTestCluster(t)
			watchEndTxn(cluster, abortAll)
			res, err := runAgainst(t, cluster, "--mode", "e2e", "--acks", "all", "--txn-records", "10",
				"--rate", "2000", "--duration", "500ms", "--record-size", "100", "--partitions", "2")
			v := res.Verify
			if v == nil || !v.BySequence {
				t.Fatalf("verify %+v (err %v)", v, err)
			}
			committed := res.Produce.Records
			if abortAll {
				if !errors.Is(err, errVerifyFailed) || v.OK || v.Consumed != 0 || v.Missing != v.Expected || v.Expected < 500 {
					t.Fatalf("err %v verify %+v: want every record missing", err, v)
				}
				return
			}
			if err != nil {
				t.Fatalf("runBench: %v (result %+v)", err, res)
			}
			if !v.OK || v.Expected != committed || v.Consumed != committed || committed < 500 || committed%10 != 0 {
				t.Errorf("verify %+v, %d committed", v, committed)
			}
			if res.E2E == nil || res.E2ERecords != committed || res.E2E.P50Ms <= 0 || res.E2E.P99Ms < res.E2E.P50Ms {
				t.Errorf("e2e latency %+v over %d records", res.E2E, res.E2ERecords)
			}
			if res.Consume != nil {
				t.Error("--mode e2e reported a throughput consume phase")
			}
		})
	}
}

func TestVerifySeqs(t *testing.T) {
	t.Parallel()
	expected := []seqRange{{0, 10}, {20, 30}}
	tests := []struct {
		name                           string
		seen                           []int64
		missing, unexpected, duplicate int64
	}{
		{"exact", seqs(0, 10, 20, 30), 0, 0, 0},
		{"one missing", seqs(0, 9, 20, 30), 1, 0, 0},
		{"aborted one read", append(seqs(0, 10, 20, 30), 15), 0, 1, 0},
		{"duplicate", append(seqs(0, 10, 20, 30), 3), 0, 0, 1},
		{"unstamped", append(seqs(0, 10, 20, 30), -1), 0, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := &seqSet{}
			for _, seq := range tt.seen {
				s.add(seq)
			}
			v := verifySeqs(readCommitted, expected, s)
			wantOK := tt.missing == 0 && tt.unexpected == 0 && tt.duplicate == 0
			if v.Expected != 20 || v.Consumed != int64(len(tt.seen)) || v.Missing != tt.missing ||
				v.Unexpected != tt.unexpected || v.Duplicates != tt.duplicate || v.OK != wantOK {
				t.Errorf("verify %+v", v)
			}
			if (v.err() == nil) != wantOK || (!wantOK && !errors.Is(v.err(), errVerifyFailed)) {
				t.Errorf("err %v with ok %v", v.err(), v.OK)
			}
		})
	}
}

// seqs returns the sequence numbers of the ranges [a, b), [c, d), ...
func seqs(bounds ...int64) []int64 {
	var out []int64
	for i := 0; i+1 < len(bounds); i += 2 {
		for s := bounds[i]; s < bounds[i+1]; s++ {
			out = append(out, s)
		}
	}
	return out
}

func TestStampRoundTrip(t *testing.T) {
	t.Parallel()
	value := makeValue(64)
	orig := bytes.Clone(value)
	now := time.Unix(1_700_000_000, 123456789)
	v := stamped(value, now, 12345)
	at, seq, ok := readStamp(v)
	if !ok || !at.Equal(now) || seq != 12345 {
		t.Errorf("readStamp = %v %d %v", at, seq, ok)
	}
	if !bytes.Equal(value, orig) || !bytes.Equal(v[stampSize:], value[stampSize:]) {
		t.Error("stamped changed the shared template, or the value past the stamp")
	}
	if _, _, ok := readStamp(value[:stampSize-1]); ok {
		t.Error("a value shorter than the stamp was read")
	}
}

// failThirdCommit answers the third EndTxn commit with INVALID_TXN_STATE
// without kfake seeing it, so the transaction stays open until the
// producer aborts it.
func failThirdCommit(cluster *kfake.Cluster) {
	var mu sync.Mutex
	commits := 0
	cluster.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		r := req.(*kmsg.EndTxnRequest)
		mu.Lock()
		defer mu.Unlock()
		if !r.Commit {
			return nil, nil, false
		}
		if commits++; commits != 3 {
			return nil, nil, false
		}
		resp := r.ResponseKind().(*kmsg.EndTxnResponse)
		resp.ErrorCode = kerr.InvalidTxnState.Code
		return resp, nil, true
	})
}

// TestTxnFailedCommitStillChecked fails the third commit: the run reports
// that, and its consumer still checks that it reads the two committed
// transactions and nothing of the failed one, in both modes that consume.
// With aborted records leaking to the consumer the check fails as well.
func TestTxnFailedCommitStillChecked(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{modeBoth, modeE2E} {
		for _, leak := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s leak=%v", mode, leak), func(t *testing.T) {
				t.Parallel()
				cluster := newTestCluster(t)
				failThirdCommit(cluster)
				if leak {
					leakAborted(cluster)
				}
				args := []string{"--acks", "all", "--txn-records", "10", "--records", "100", "--record-size", "64", "--mode", mode,
					"--txn-timeout", "1s"} // kfake aborts the transaction the failed commit left open
				if mode == modeE2E {
					args = append(args, "--rate", "1000")
				}
				res, err := runAgainst(t, cluster, args...)
				if !errors.Is(err, kerr.InvalidTxnState) {
					t.Fatalf("err = %v, want the failed commit's INVALID_TXN_STATE", err)
				}
				v := res.Verify
				if v == nil || v.Expected != 20 || res.Txn.Committed != 2 {
					t.Fatalf("verify %+v, txn %+v, err %v: want 2 committed transactions checked", v, res.Txn, err)
				}
				if leak != errors.Is(err, errVerifyFailed) || v.OK == leak || (leak && v.Consumed != 30) {
					t.Errorf("leak %v: err %v, verify %+v", leak, err, v)
				}
			})
		}
	}
}

// txnIDLog records the transactional ids of the InitProducerID requests a
// kfake cluster sees.
type txnIDLog struct {
	mu  sync.Mutex
	ids map[string]int
}

func watchTxnIDs(cluster *kfake.Cluster) *txnIDLog {
	l := &txnIDLog{ids: make(map[string]int)}
	cluster.ControlKey(int16(kmsg.InitProducerID), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if id := req.(*kmsg.InitProducerIDRequest).TransactionalID; id != nil {
			l.mu.Lock()
			l.ids[*id]++
			l.mu.Unlock()
		}
		return nil, nil, false
	})
	return l
}

func (l *txnIDLog) distinct() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ids)
}

// TestTxnProducersCommitAndVerify runs three transactional producers at
// once: each has its own transactional id, --records is split among them,
// every transaction commits, and the read_committed check passes per
// producer.
func TestTxnProducersCommitAndVerify(t *testing.T) {
	t.Parallel()
	cluster := newTestCluster(t)
	ends := watchEndTxn(cluster, false)
	ids := watchTxnIDs(cluster)
	res, err := runAgainst(t, cluster, "--acks", "all", "--txn-records", "100", "--records", "1000", "--producers", "3",
		"--partitions", "2", "--record-size", "64", "--delete-topic")
	if err != nil {
		t.Fatalf("runBench: %v (result %+v)", err, res)
	}
	// 334, 333 and 333 records: 4 transactions each.
	if commits, aborts := ends.counts(); commits != 12 || aborts != 0 {
		t.Errorf("broker saw %d commits and %d aborts, want 12 and 0", commits, aborts)
	}
	if n := ids.distinct(); n != 3 {
		t.Errorf("%d distinct transactional ids, want 3", n)
	}
	if tx, p := res.Txn, res.Produce; tx == nil || tx.Committed != 12 || p == nil || p.Records != 1000 || res.Producers != 3 {
		t.Fatalf("txn %+v produce %+v producers %d", tx, p, res.Producers)
	}
	v := res.Verify
	if v == nil || !v.OK || v.Expected != 1000 || v.Consumed != 1000 || len(v.Producers) != 3 {
		t.Fatalf("verify %+v", v)
	}
	pids := map[int64]bool{}
	for i, pc := range v.Producers {
		want := int64(333)
		if i == 0 {
			want = 334
		}
		if !pc.OK || pc.Expected != want || pc.Consumed != want || len(pc.ProducerIDs) != 1 {
			t.Errorf("producer %d: %+v, want %d records under one producer id", i, pc, want)
		}
		for _, id := range pc.ProducerIDs {
			pids[id] = true
		}
	}
	if len(pids) != 3 {
		t.Errorf("producer ids %v, want 3 distinct", pids)
	}
}

// TestIdempotentProducersVerify runs four idempotent producers for a short
// duration; the check passes per producer.
func TestIdempotentProducersVerify(t *testing.T) {
	t.Parallel()
	cluster := newTestCluster(t)
	res, err := runAgainst(t, cluster, "--acks", "all", "--idempotent", "--producers", "4", "--duration", "200ms",
		"--record-size", "64")
	if err != nil {
		t.Fatalf("runBench: %v (result %+v)", err, res)
	}
	v := res.Verify
	if v == nil || !v.OK || len(v.Producers) != 4 || v.Consumed != res.Produce.Records || v.Consumed == 0 {
		t.Fatalf("verify %+v, produced %d", v, res.Produce.Records)
	}
	for _, pc := range v.Producers {
		if pc.Expected == 0 || pc.Consumed != pc.Expected {
			t.Errorf("producer %+v", pc)
		}
	}
}

// TestTxnProducersVerifyCatchesAbortedCommit: a broker that aborts every
// acknowledged commit fails the check of every producer.
func TestTxnProducersVerifyCatchesAbortedCommit(t *testing.T) {
	t.Parallel()
	cluster := newTestCluster(t)
	watchEndTxn(cluster, true)
	res, err := runAgainst(t, cluster, "--acks", "all", "--txn-records", "10", "--records", "100", "--producers", "2",
		"--record-size", "64")
	if !errors.Is(err, errVerifyFailed) {
		t.Fatalf("err = %v, want errVerifyFailed (result %+v)", err, res)
	}
	v := res.Verify
	if v == nil || v.OK || v.Consumed != 0 || len(v.Producers) != 2 || v.Producers[0].OK || v.Producers[1].OK {
		t.Fatalf("verify %+v", v)
	}
	if !strings.Contains(err.Error(), "producer 1") {
		t.Errorf("error does not name the producer: %v", err)
	}
}

// TestVerifyProducers checks the per-producer arithmetic: a record moved
// from one producer's id to another's fails both, and records of an id no
// producer had fail the check even when every producer's count is right.
func TestVerifyProducers(t *testing.T) {
	t.Parallel()
	expects := []producerExpect{{pids: []int64{7}, expected: 10}, {pids: []int64{8, 9}, expected: 5}}
	tests := []struct {
		name       string
		byPID      map[int64]int64
		ok         bool
		unexpected int64
		okEach     [2]bool
	}{
		{"exact", map[int64]int64{7: 10, 8: 3, 9: 2}, true, 0, [2]bool{true, true}},
		{"moved", map[int64]int64{7: 9, 8: 6}, false, 0, [2]bool{false, false}},
		{"stranger", map[int64]int64{7: 10, 8: 5, 42: 1}, false, 1, [2]bool{true, true}},
	}
	for _, tt := range tests {
		v := verifyProducers(readCommitted, expects, tt.byPID)
		if v.OK != tt.ok || v.Unexpected != tt.unexpected || v.Expected != 15 || v.Producers[0].OK != tt.okEach[0] ||
			v.Producers[1].OK != tt.okEach[1] {
			t.Errorf("%s: %+v", tt.name, v)
		}
		if (v.err() == nil) != tt.ok {
			t.Errorf("%s: err %v", tt.name, v.err())
		}
	}
}
