package storage

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/sluicedev/sluice/protocol/batch"
)

func TestProducerIdempotence(t *testing.T) {
	t.Parallel()
	type step struct {
		s       spec
		wantErr error
		dupOf   int // 1-based index of the step whose offsets a duplicate returns
	}
	p := func(epoch int16, seq int32, records int) spec {
		return spec{pid: 42, epoch: epoch, seq: seq, records: records}
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"in order", []step{{s: p(0, 0, 3)}, {s: p(0, 3, 2)}, {s: p(0, 5, 1)}}},
		{"duplicate of last", []step{{s: p(0, 0, 3)}, {s: p(0, 3, 2)}, {s: p(0, 3, 2), dupOf: 2}}},
		{"duplicate of older", []step{{s: p(0, 0, 1)}, {s: p(0, 1, 1)}, {s: p(0, 2, 1)}, {s: p(0, 0, 1), dupOf: 1}}},
		{"beyond window is out of order", []step{
			{s: p(0, 0, 1)}, {s: p(0, 1, 1)}, {s: p(0, 2, 1)}, {s: p(0, 3, 1)}, {s: p(0, 4, 1)}, {s: p(0, 5, 1)},
			{s: p(0, 0, 1), wantErr: ErrOutOfOrderSequence},
		}},
		{"gap", []step{{s: p(0, 0, 2)}, {s: p(0, 3, 1), wantErr: ErrOutOfOrderSequence}}},
		{"overlap", []step{{s: p(0, 0, 2)}, {s: p(0, 1, 2), wantErr: ErrOutOfOrderSequence}}},
		{"older epoch", []step{{s: p(2, 0, 1)}, {s: p(1, 1, 1), wantErr: ErrInvalidProducerEpoch}}},
		{"new epoch from zero", []step{{s: p(0, 0, 5)}, {s: p(1, 0, 1)}, {s: p(1, 1, 1)}}},
		{"new epoch not from zero", []step{{s: p(0, 0, 5)}, {s: p(1, 5, 1), wantErr: ErrOutOfOrderSequence}}},
		{"unknown producer any sequence", []step{{s: p(0, 77, 1)}, {s: p(0, 78, 1)}}},
		{"sequence wraps", []step{{s: p(0, math.MaxInt32-1, 2)}, {s: p(0, 0, 1)}, {s: p(0, 1, 1)}}},
		{"batch spanning the wrap", []step{{s: p(0, math.MaxInt32-1, 4)}, {s: p(0, 2, 1)}, {s: p(0, math.MaxInt32-1, 4), dupOf: 1}}},
		{"marker then sequence zero", []step{{s: p(0, 0, 2)}, {s: spec{pid: 42, epoch: 1, seq: -1, control: true}}, {s: p(1, 0, 1)}}},
		{"marker from old epoch", []step{{s: p(3, 0, 2)}, {s: spec{pid: 42, epoch: 2, seq: -1, control: true}, wantErr: ErrInvalidProducerEpoch}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := newEnv(t, nil, Config{}).open()
			var results []AppendResult
			for i, st := range tc.steps {
				leo := l.LogEndOffset()
				res, err := l.Append(mkBatch(t, st.s), leader)
				results = append(results, res)
				if !errors.Is(err, st.wantErr) || (err == nil) != (st.wantErr == nil) {
					t.Fatalf("step %d: err %v, want %v", i+1, err, st.wantErr)
				}
				if err != nil {
					if l.LogEndOffset() != leo {
						t.Fatalf("step %d: rejected batch was written", i+1)
					}
					continue
				}
				if st.dupOf > 0 {
					orig := results[st.dupOf-1]
					if !res.Duplicate || res.BaseOffset != orig.BaseOffset || res.LastOffset != orig.LastOffset || l.LogEndOffset() != leo {
						t.Fatalf("step %d: duplicate %+v, original %+v", i+1, res, orig)
					}
				} else if res.Duplicate {
					t.Fatalf("step %d: unexpected duplicate", i+1)
				}
			}
		})
	}
}

func TestProducerStateSurvivesCrash(t *testing.T) {
	t.Parallel()
	// No Close: recovery must rebuild from the roll snapshot plus a rescan.
	e := newEnv(t, nil, Config{SegmentBytes: 600})
	l := e.open()
	for i := range 20 {
		mustAppend(t, l, mkBatch(t, spec{pid: 5, seq: int32(i), valueSize: 50}), leader)
		mustAppend(t, l, mkBatch(t, spec{pid: 6, epoch: 2, seq: int32(2 * i), records: 2}), leader)
	}
	if len(l.Segments()) < 3 {
		t.Fatalf("want several segments, have %v", l.Segments())
	}
	l2, err := Open(e.dir, e.options()) // the first log is abandoned, not closed
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if res := mustAppend(t, l2, mkBatch(t, spec{pid: 5, seq: 19, valueSize: 50}), leader); !res.Duplicate {
		t.Fatalf("retry after restart not detected: %+v", res)
	}
	if _, err := l2.Append(mkBatch(t, spec{pid: 6, epoch: 1, seq: 40}), leader); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("epoch lost: %v", err)
	}
	mustAppend(t, l2, mkBatch(t, spec{pid: 6, epoch: 2, seq: 40}), leader)
}

func TestProducerStateDamagedSnapshot(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Config{})
	l := e.open()
	mustAppend(t, l, mkBatch(t, spec{pid: 9, seq: 0, records: 3}), leader)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	snap := segPath(e, 3, snapshotSuffix)
	rewriteFile(t, e.fs, snap, func(b []byte) []byte { b[len(b)-6] ^= 1; return b })
	l = e.open()
	if _, err := e.fs.Stat(snap); err == nil {
		t.Fatal("damaged snapshot kept")
	}
	// Rebuilt from the log instead.
	if _, err := l.Append(mkBatch(t, spec{pid: 9, seq: 4}), leader); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("state not rebuilt: %v", err)
	}
}

func TestProducerExpiryAndLogStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Config{ProducerIDExpirationMs: 1000})
	l := e.open()
	now := e.clock.Now().UnixMilli()
	mustAppend(t, l, mkBatch(t, spec{pid: 1, seq: 0, ts: now}), leader)
	mustAppend(t, l, mkBatch(t, spec{pid: 2, seq: 0, ts: now + 5000}), leader)
	if n := l.ExpireProducers(e.clock.Now().Add(2 * time.Second)); n != 1 {
		t.Fatalf("expired %d", n)
	}
	// Producer 1 is now unknown: any sequence is accepted.
	mustAppend(t, l, mkBatch(t, spec{pid: 1, seq: 10, ts: now}), leader)
	// Deleting records past producer 2's batch forgets it too.
	if _, err := l.DeleteRecordsBefore(2); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, mkBatch(t, spec{pid: 2, seq: 50}), leader)
}

func TestProducerSnapshotCodecRejectsDamage(t *testing.T) {
	t.Parallel()
	p := newProducerState()
	for i := range 10 {
		p.update(mkHeader(int64(i), int16(i), int32(i*3)), marker{})
	}
	b := p.encode(123, []completedTxn{{first: 5, last: 9}})
	got, err := decodeProducerSnapshot(b)
	if err != nil || got.offset != 123 || len(got.state.m) != 10 || len(got.unrepl) != 1 {
		t.Fatalf("round trip: %v %d %d", err, got.offset, len(got.state.m))
	}
	for i := range b {
		c := append([]byte(nil), b[:i]...)
		if _, err := decodeProducerSnapshot(c); err == nil {
			t.Fatalf("truncated to %d accepted", i)
		}
	}
}

func mkHeader(pid int64, epoch int16, seq int32) batch.Header {
	return batch.Header{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, LastOffsetDelta: 2, BaseOffset: pid * 10}
}
