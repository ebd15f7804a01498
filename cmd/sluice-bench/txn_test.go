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
		cluster.KeepControl()
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
