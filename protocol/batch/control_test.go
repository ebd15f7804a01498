package batch

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// markerSpec describes a control batch for controlBatch; the zero value is
// a valid ABORT marker with coordinator epoch 0.
type markerSpec struct {
	typ          int16
	keyVersion   int16
	valueVersion int16
	epoch        int32
	key, value   []byte // override the encoded key/value when set
	nullKey      bool
	nullValue    bool
	attrs        int16 // or'ed into the control and transactional attributes
	notControl   bool  // clear the control attribute
	records      int   // 0 means 1; -1 means none
	headers      []kmsg.Header
	firstTs      int64
	tsDelta      int64
}

// controlBatch hand-builds a v2 control batch with kmsg's record and batch
// encoders (package protocol's MarkerBatch cannot be imported here).
func controlBatch(t testing.TB, s markerSpec) []byte {
	t.Helper()
	key := s.key
	if key == nil && !s.nullKey {
		key = binary.BigEndian.AppendUint16(nil, uint16(s.keyVersion))
		key = binary.BigEndian.AppendUint16(key, uint16(s.typ))
	}
	value := s.value
	if value == nil && !s.nullValue {
		value = binary.BigEndian.AppendUint16(nil, uint16(s.valueVersion))
		value = binary.BigEndian.AppendUint32(value, uint32(s.epoch))
	}
	n := s.records
	if n == 0 {
		n = 1
	}
	var recs []byte
	for i := 0; i < n; i++ {
		r := kmsg.Record{TimestampDelta64: s.tsDelta, OffsetDelta: int32(i), Key: key, Value: value, Headers: s.headers}
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		recs = r.AppendTo(recs)
	}
	if n < 0 {
		n = 0
	}
	attrs := attrControl | attrTransactional | s.attrs
	if s.notControl {
		attrs &^= attrControl
	}
	rb := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1, Magic: 2, Attributes: attrs,
		LastOffsetDelta: int32(max(n-1, 0)), FirstTimestamp: s.firstTs, MaxTimestamp: s.firstTs + s.tsDelta,
		ProducerID: 7, ProducerEpoch: 3, FirstSequence: -1, NumRecords: int32(n), Records: recs,
	}
	raw := rb.AppendTo(nil)
	rb.Length = int32(len(raw) - 12)
	raw = rb.AppendTo(raw[:0])
	rb.CRC = int32(crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return rb.AppendTo(raw[:0])
}

func TestMarkerParse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		s          markerSpec
		wantCommit bool
		wantEpoch  int32
		wantErr    error
	}{
		{"abort", markerSpec{typ: ControlAbort, epoch: 5}, false, 5, nil},
		{"commit", markerSpec{typ: ControlCommit, epoch: 9}, true, 9, nil},
		{"negative epoch", markerSpec{typ: ControlCommit, epoch: -1}, true, -1, nil},
		{"max epoch", markerSpec{typ: ControlAbort, epoch: math.MaxInt32}, false, math.MaxInt32, nil},
		{"newer key version", markerSpec{typ: ControlCommit, keyVersion: 3, epoch: 2}, true, 2, nil},
		{"newer value version with more fields", markerSpec{typ: ControlAbort, valueVersion: 1,
			value: []byte{0, 1, 0, 0, 0, 4, 0xaa, 0xbb}}, false, 4, nil},
		{"with headers", markerSpec{typ: ControlCommit, epoch: 1, headers: []kmsg.Header{{Key: "k", Value: []byte("v")}}}, true, 1, nil},
		{"nonzero timestamp delta", markerSpec{typ: ControlAbort, epoch: 1, firstTs: 1e12, tsDelta: -5}, false, 1, nil},
		{"leader change type", markerSpec{typ: 2}, false, 0, ErrUnknownControlType},
		{"snapshot header type", markerSpec{typ: 3}, false, 0, ErrUnknownControlType},
		{"negative type", markerSpec{typ: -4}, false, 0, ErrUnknownControlType},
		{"not control", markerSpec{notControl: true}, false, 0, ErrNotControl},
		{"compressed", markerSpec{attrs: int16(Zstd)}, false, 0, ErrCompressed},
		{"no record", markerSpec{records: -1}, false, 0, ErrEmptyControl},
		{"null key", markerSpec{nullKey: true}, false, 0, ErrInvalid},
		{"short key", markerSpec{key: []byte{0, 0, 0}}, false, 0, ErrInvalid},
		{"negative key version", markerSpec{keyVersion: -1}, false, 0, ErrInvalid},
		{"null value", markerSpec{nullValue: true}, false, 0, ErrInvalid},
		{"short value", markerSpec{value: []byte{0, 0, 0, 0, 1}}, false, 0, ErrInvalid},
		{"negative value version", markerSpec{valueVersion: -2}, false, 0, ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := controlBatch(t, tc.s)
			if _, err := Check(b); err != nil {
				t.Fatalf("test built an invalid batch: %v", err)
			}
			commit, epoch, err := ParseMarker(b)
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if err == nil && (commit != tc.wantCommit || epoch != tc.wantEpoch) {
				t.Fatalf("got commit=%v epoch=%d, want %v %d", commit, epoch, tc.wantCommit, tc.wantEpoch)
			}
		})
	}
}

func TestMarkerParseRejectsDamage(t *testing.T) {
	t.Parallel()
	good := controlBatch(t, markerSpec{typ: ControlCommit, epoch: 77, headers: []kmsg.Header{{Key: "a"}}})
	for i := 0; i < len(good); i++ {
		if _, _, err := ParseMarker(good[:i]); err == nil {
			t.Fatalf("marker truncated to %d of %d bytes accepted", i, len(good))
		}
	}
	// Every single-byte change of the record region either still parses
	// (a value byte) or is reported; none panics.
	for i := HeaderSize; i < len(good); i++ {
		for _, x := range []byte{0x01, 0x80, 0xff} {
			b := append([]byte(nil), good...)
			b[i] ^= x
			_, _, _ = ParseMarker(b)
		}
	}
	// A record length larger than the batch.
	b := append([]byte(nil), good...)
	b[HeaderSize] = 0x7e
	if _, _, err := ParseMarker(b); !errors.Is(err, ErrInvalid) {
		t.Fatalf("overlong record: %v", err)
	}
}

func TestMarkerDeleteHorizon(t *testing.T) {
	t.Parallel()
	cases := []markerSpec{
		{typ: ControlAbort, epoch: 3, firstTs: 1_700_000_000_000},
		{typ: ControlCommit, epoch: 4, firstTs: 1_700_000_000_000, tsDelta: 17, headers: []kmsg.Header{{Key: "h", Value: []byte("x")}}},
		{typ: ControlCommit, firstTs: -1},
	}
	for _, s := range cases {
		b := controlBatch(t, s)
		h0, _ := ParseHeader(b)
		if _, ok := h0.DeleteHorizon(); ok {
			t.Fatal("fresh batch has a delete horizon")
		}
		const horizon = 1_800_000_000_000
		out, err := SetDeleteHorizon(b, horizon)
		if err != nil {
			t.Fatal(err)
		}
		h, err := Check(out)
		if err != nil {
			t.Fatalf("rewritten batch invalid: %v", err)
		}
		if ms, ok := h.DeleteHorizon(); !ok || ms != horizon {
			t.Fatalf("DeleteHorizon = %d %v", ms, ok)
		}
		if h.MaxTimestamp != h0.MaxTimestamp || h.Attributes&^attrDeleteHorizon != h0.Attributes || h.ProducerID != h0.ProducerID {
			t.Fatalf("header changed: %+v vs %+v", h, h0)
		}
		commit, epoch, err := ParseMarker(out)
		if err != nil || commit != (s.typ == ControlCommit) || epoch != s.epoch {
			t.Fatalf("marker after rewrite: %v %d %v", commit, epoch, err)
		}
		var before, after kmsg.RecordBatch
		if before.ReadFrom(b) != nil || after.ReadFrom(out) != nil {
			t.Fatal("kmsg cannot read the batches")
		}
		var r0, r1 kmsg.Record
		if r0.ReadFrom(before.Records) != nil || r1.ReadFrom(after.Records) != nil {
			t.Fatal("kmsg cannot read the records")
		}
		if before.FirstTimestamp+r0.TimestampDelta64 != after.FirstTimestamp+r1.TimestampDelta64 {
			t.Fatalf("record timestamp moved: %d -> %d", before.FirstTimestamp+r0.TimestampDelta64, after.FirstTimestamp+r1.TimestampDelta64)
		}
		if string(r0.Key) != string(r1.Key) || string(r0.Value) != string(r1.Value) || len(r0.Headers) != len(r1.Headers) {
			t.Fatal("record contents changed")
		}
	}
	if _, err := SetDeleteHorizon(controlBatch(t, markerSpec{attrs: int16(Gzip)}), 1); !errors.Is(err, ErrCompressed) {
		t.Fatalf("compressed: %v", err)
	}
}

func TestBatchEndOffset(t *testing.T) {
	t.Parallel()
	a := kmsgBatch(t, testBatch{baseOffset: 10, records: 3})
	b := kmsgBatch(t, testBatch{baseOffset: 13, records: 2, lastOffDiff: 4})
	blob := append(append([]byte(nil), a...), b...)
	cases := []struct {
		name string
		in   []byte
		want int64
		ok   bool
	}{
		{"empty", nil, 0, false},
		{"one", a, 13, true},
		{"two with a compaction gap", blob, 19, true},
		{"torn tail", blob[:len(blob)-1], 13, true},
		{"torn only", a[:20], 0, false},
	}
	for _, tc := range cases {
		if got, ok := EndOffset(tc.in); got != tc.want || ok != tc.ok {
			t.Errorf("%s: EndOffset = %d %v, want %d %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzParseMarker feeds arbitrary bytes to ParseMarker. Properties: no
// panic; every failure is one of the package's sentinel errors; a marker
// that parses keeps parsing to the same values once its delete horizon is
// set, and its batch still passes Check.
func FuzzParseMarker(f *testing.F) {
	for _, s := range []markerSpec{
		{typ: ControlAbort, epoch: 1},
		{typ: ControlCommit, epoch: 1 << 20, headers: []kmsg.Header{{Key: "k", Value: []byte("v")}}},
		{typ: 2},
		{records: -1},
		{records: 2, typ: ControlCommit},
		{keyVersion: 1, valueVersion: 1, value: []byte{0, 1, 0, 0, 0, 2, 9}},
	} {
		f.Add(controlBatch(f, s))
	}
	f.Add(make([]byte, HeaderSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		commit, epoch, err := ParseMarker(b)
		if err != nil {
			for _, known := range []error{ErrShort, ErrInvalid, ErrNotControl, ErrCompressed, ErrEmptyControl, ErrUnknownControlType} {
				if errors.Is(err, known) {
					return
				}
			}
			t.Fatalf("unexpected error kind: %v", err)
		}
		if _, cerr := Check(b); cerr != nil {
			return
		}
		out, err := SetDeleteHorizon(b, 1_800_000_000_000)
		if err != nil {
			return // a second record may be malformed; ParseMarker reads only the first
		}
		if _, err := Check(out); err != nil {
			t.Fatalf("SetDeleteHorizon made an invalid batch: %v", err)
		}
		c2, e2, err := ParseMarker(out)
		if err != nil || c2 != commit || e2 != epoch {
			t.Fatalf("after SetDeleteHorizon: %v %d %v, before %v %d", c2, e2, err, commit, epoch)
		}
	})
}
