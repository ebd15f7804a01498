package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/protocol/batch"
)

// compactTestBatch builds a transactional idempotent batch of n records at
// base offset 1000 with codec.
func compactTestBatch(t *testing.T, c *Codecs, codec int8, n int, appendTime bool) ([]byte, []kmsg.Record) {
	t.Helper()
	recs := testRecords(n)
	opts := BatchOptions{
		ProducerID: 77, ProducerEpoch: 3, BaseSequence: 40, Transactional: true,
		PartitionLeaderEpoch: 9, FirstTimestamp: 1_700_000_000_000, MaxTimestamp: 1_700_000_999_999,
		LogAppendTime: appendTime,
	}
	b, err := BuildBatch(c, codec, 1000, recs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b, recs
}

// headerOf parses and checks a batch, failing the test if it is invalid.
func headerOf(t *testing.T, b []byte) batch.Header {
	t.Helper()
	h, err := batch.Check(b)
	if err != nil {
		t.Fatalf("invalid batch: %v", err)
	}
	return h
}

func TestRecordFilterRewriteRoundTrip(t *testing.T) {
	t.Parallel()
	c := NewCodecs()
	f := RecordFilter{Codecs: c}
	for _, codec := range []int8{CodecNone, CodecGzip, CodecSnappy, CodecLZ4, CodecZstd} {
		for _, appendTime := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/appendTime=%v", batch.Codec(codec), appendTime), func(t *testing.T) {
				t.Parallel()
				orig, recs := compactTestBatch(t, c, codec, 24, appendTime)
				oh := headerOf(t, orig)
				// Two passes: the second works on a batch with offset gaps.
				passes := []func(off int64) bool{
					func(off int64) bool { return off%2 == 1 },
					func(off int64) bool { return off%3 != 0 },
				}
				cur, want := orig, recs
				for i, keep := range passes {
					next, err := f.Rewrite(cur, keep)
					if err != nil {
						t.Fatalf("pass %d: %v", i, err)
					}
					var kept []kmsg.Record
					for _, r := range want {
						if keep(1000 + int64(r.OffsetDelta)) {
							kept = append(kept, r)
						}
					}
					h := headerOf(t, next)
					if h.BaseOffset != oh.BaseOffset || h.LastOffsetDelta != oh.LastOffsetDelta ||
						h.PartitionLeaderEpoch != oh.PartitionLeaderEpoch || h.Attributes != oh.Attributes ||
						h.FirstTimestamp != oh.FirstTimestamp || h.MaxTimestamp != oh.MaxTimestamp ||
						h.ProducerID != oh.ProducerID || h.ProducerEpoch != oh.ProducerEpoch ||
						h.BaseSequence != oh.BaseSequence || h.NumRecords != int32(len(kept)) {
						t.Fatalf("pass %d: header %+v, original %+v", i, h, oh)
					}
					if _, _, err := DecodeRecords(next, c, 1<<20); err == nil {
						t.Fatalf("pass %d: a thinned batch passed the strict produce check", i)
					}
					_, got, err := DecodeCompactedRecords(next, c, 1<<20)
					if err != nil {
						t.Fatalf("pass %d: decode: %v", i, err)
					}
					sameRecords(t, got, kept)
					cur, want = next, kept
				}
			})
		}
	}
}

func TestRecordFilterRewriteAllOrNothing(t *testing.T) {
	t.Parallel()
	f := RecordFilter{}
	orig, _ := compactTestBatch(t, nil, CodecLZ4, 5, false)
	all, err := f.Rewrite(orig, func(int64) bool { return true })
	if err != nil || !bytes.Equal(all, orig) {
		t.Fatalf("keep all: %v, equal %v", err, bytes.Equal(all, orig))
	}
	all[0] ^= 0xff
	if orig[0] == all[0] {
		t.Fatal("Rewrite returned a slice aliasing its input")
	}
	none, err := f.Rewrite(orig, func(int64) bool { return false })
	if err != nil || none != nil {
		t.Fatalf("keep none: %v, %d bytes", err, len(none))
	}
}

func TestRecordFilterRecordsReportsFields(t *testing.T) {
	t.Parallel()
	f := RecordFilter{Codecs: NewCodecs()}
	for _, appendTime := range []bool{false, true} {
		b, recs := compactTestBatch(t, f.Codecs, CodecGzip, 8, appendTime)
		// Thin it first so offsets have gaps.
		b, err := f.Rewrite(b, func(off int64) bool { return off != 1002 && off != 1005 })
		if err != nil {
			t.Fatal(err)
		}
		type rec struct {
			off  int64
			key  string
			null bool
			tomb bool
			ts   int64
		}
		var got, want []rec
		for _, r := range recs {
			off := 1000 + int64(r.OffsetDelta)
			if off == 1002 || off == 1005 {
				continue
			}
			ts := int64(1_700_000_000_000) + r.TimestampDelta64
			if appendTime {
				ts = 1_700_000_999_999
			}
			want = append(want, rec{off, string(r.Key), r.Key == nil, r.Value == nil, ts})
		}
		err = f.Records(b, func(off int64, key []byte, tomb bool, ts int64) {
			got = append(got, rec{off, string(key), key == nil, tomb, ts})
		})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("appendTime=%v:\n got %v\nwant %v", appendTime, got, want)
		}
	}
}

func TestRecordFilterControlBatchKeepsControlBit(t *testing.T) {
	t.Parallel()
	f := RecordFilter{}
	opts := DefaultBatchOptions()
	opts.Control, opts.Transactional, opts.ProducerID, opts.ProducerEpoch = true, true, 5, 1
	recs := []kmsg.Record{{OffsetDelta: 0, Key: []byte{0, 0, 0, 1}, Value: []byte{0, 0, 0, 0, 0, 0}}, {OffsetDelta: 1, Key: []byte{0, 0, 0, 0}, Value: []byte{0}}}
	b, err := BuildBatch(nil, CodecNone, 50, recs, opts)
	if err != nil {
		t.Fatal(err)
	}
	out, err := f.Rewrite(b, func(off int64) bool { return off == 50 })
	if err != nil {
		t.Fatal(err)
	}
	if h := headerOf(t, out); !h.Control() || !h.Transactional() || h.LastOffsetDelta != 1 || h.NumRecords != 1 {
		t.Fatalf("control batch header after rewrite: %+v", h)
	}
}

func TestRecordFilterRejectsDamage(t *testing.T) {
	t.Parallel()
	f := RecordFilter{}
	b, _ := compactTestBatch(t, nil, CodecNone, 4, false)
	b[len(b)-3] ^= 0x40
	if err := f.Records(b, func(int64, []byte, bool, int64) { t.Fatal("callback on a damaged batch") }); !errors.Is(err, ErrBatchCRC) {
		t.Fatalf("Records: %v", err)
	}
	if _, err := f.Rewrite(b, func(int64) bool { return true }); !errors.Is(err, ErrBatchCRC) {
		t.Fatalf("Rewrite: %v", err)
	}
	small := RecordFilter{MaxSize: 10}
	b, _ = compactTestBatch(t, nil, CodecZstd, 4, false)
	if err := small.Records(b, func(int64, []byte, bool, int64) {}); !errors.Is(err, ErrInvalidBatch) {
		t.Fatalf("over MaxSize: %v", err)
	}
}
