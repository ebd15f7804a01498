package storage

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sluicedev/sluice/protocol/batch"
)

// TestLogConcurrentReadsDuringChanges runs readers against a log that is
// being appended to, flushed, rolled, retained and truncated at the same
// time. Under -race this checks the locking; the assertions check that a
// reader only ever sees whole valid batches holding the offset it asked
// for, or ErrOffsetOutOfRange.
func TestLogConcurrentReadsDuringChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Config{SegmentBytes: 2000, IndexIntervalBytes: 200, RetentionBytes: 6000})
	l := e.open()
	for range 20 {
		mustAppend(t, l, mkBatch(t, spec{records: 2, valueSize: 80}), leader)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() { // writer
		for i := 0; i < 600; i++ {
			res, err := l.Append(mkBatch(t, spec{records: 2, valueSize: 80, fill: byte(i)}), leader)
			if err != nil {
				t.Error(err)
				break
			}
			if i%25 == 0 {
				if err := l.Sync(context.Background(), res.LastOffset); err != nil {
					t.Error(err)
					break
				}
			}
		}
		stop.Store(true)
	})
	wg.Go(func() { // maintenance
		for i := 0; !stop.Load(); i++ {
			if _, err := l.EnforceRetention(e.clock.Now()); err != nil {
				t.Error(err)
				return
			}
			if to := l.LogEndOffset() - 3; i%7 == 0 && to > l.LogStartOffset() {
				if err := l.TruncateTo(to); err != nil {
					t.Error(err)
					return
				}
			}
		}
	})
	for range 3 {
		wg.Go(func() { // readers
			for !stop.Load() {
				lso, leo := l.LogStartOffset(), l.LogEndOffset()
				if leo <= lso {
					continue
				}
				off := lso + (leo-lso)/2
				blob, err := l.Read(off, 1000, math.MaxInt64)
				if errors.Is(err, ErrOffsetOutOfRange) {
					continue
				}
				if err != nil {
					t.Errorf("Read(%d): %v", off, err)
					return
				}
				checkBlob(t, blob, off)
			}
		})
	}
	wg.Wait()
	readAll(t, l)
}

// checkBlob verifies a Read result: whole valid batches with increasing
// offsets, the first holding off (or starting after it when truncation and
// re-append raced the read and off is no longer a batch start).
func checkBlob(t *testing.T, blob []byte, off int64) {
	t.Helper()
	first := true
	var next int64
	for len(blob) > 0 {
		b, rest, err := batch.Next(blob)
		if err != nil {
			t.Errorf("torn read: %v", err)
			return
		}
		h, err := batch.Check(b)
		if err != nil {
			t.Errorf("invalid batch read: %v", err)
			return
		}
		if first && h.LastOffset() < off {
			t.Errorf("first batch [%d, %d] ends before %d", h.BaseOffset, h.LastOffset(), off)
		}
		if !first && h.BaseOffset != next {
			t.Errorf("gap in read: %d after %d", h.BaseOffset, next)
		}
		first, next, blob = false, h.NextOffset(), rest
	}
}
