package storage

import (
	"context"
	"encoding/binary"
	"math"
	"testing"

	"github.com/sluicedev/sluice/storage/vfs"
)

// BenchmarkLogAppend measures the leader append path for 1 KiB batches on
// the real file system, without fsync (acks=1 with the default flush
// policy).
func BenchmarkLogAppend(b *testing.B) {
	e := newEnv(b, vfs.OS(), Config{SegmentBytes: 256 << 20})
	l := e.open()
	one := mkBatch(b, spec{valueSize: 1024 - 61 - 12})
	b.SetBytes(int64(len(one)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := l.Append(one, leader); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLogAppendSyncParallel measures acks=all-style appends where
// every producer waits for durability; group commit shares the fsyncs.
func BenchmarkLogAppendSyncParallel(b *testing.B) {
	e := newEnv(b, vfs.OS(), Config{SegmentBytes: 256 << 20})
	l := e.open()
	b.SetBytes(1024)
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		one := mkBatch(b, spec{valueSize: 1024 - 61 - 12})
		for pb.Next() {
			res, err := l.Append(one, leader)
			if err != nil {
				b.Fatal(err)
			}
			if err := l.Sync(context.Background(), res.LastOffset); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLogReadTail measures a consumer fetching the newest batches.
func BenchmarkLogReadTail(b *testing.B) {
	e := newEnv(b, vfs.OS(), Config{})
	l := e.open()
	one := mkBatch(b, spec{valueSize: 1024 - 61 - 12})
	for range 10000 {
		if _, err := l.Append(one, leader); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := l.Read(l.LogEndOffset()-16, 16<<10, math.MaxInt64); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLastStableOffset measures the per-fetch LSO call: a log
// without transactions (lock-free), and one with transactions in flight
// (the tracker's leaf lock), while nothing else runs and while an
// appender and a HW updater run beside it.
func BenchmarkLastStableOffset(b *testing.B) {
	for _, tc := range []struct {
		name      string
		producers int // with an open transaction each
		busy      bool
	}{
		{"no transactions", 0, false},
		{"1000 open transactions", 1000, false},
		{"1000 open transactions with appends", 1000, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			l := newEnv(b, nil, Config{SegmentBytes: 64 << 20}).open()
			r := newTxnRunner(b, l)
			for pid := range tc.producers {
				r.run([]txnStep{txnData(int64(pid+1), 1)})
			}
			r.run([]txnStep{plain(100)})
			l.SetHighWatermark(l.LogEndOffset())
			stop := make(chan struct{})
			done := make(chan struct{})
			if tc.busy {
				one := mkBatch(b, spec{valueSize: 100})
				go func() {
					defer close(done)
					for {
						select {
						case <-stop:
							return
						default:
						}
						if _, err := l.Append(one, leader); err != nil {
							panic(err)
						}
						l.SetHighWatermark(l.LogEndOffset())
					}
				}()
			} else {
				close(done)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				_ = l.LastStableOffset()
			}
			b.StopTimer()
			close(stop)
			<-done
		})
	}
}

// BenchmarkAbortedTransactions measures the read_committed fetch lookup:
// a log that never aborted (no lock, no allocation), and a tail read of a
// log whose segments hold many aborted transactions (active segment in
// memory, closed ones read from their files).
func BenchmarkAbortedTransactions(b *testing.B) {
	l := newEnv(b, nil, Config{SegmentBytes: 32 << 10}).open()
	r := newTxnRunner(b, l)
	r.run([]txnStep{plain(10)})
	b.Run("none aborted", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = l.AbortedTransactions(0, 10)
		}
	})
	for i := range 2000 {
		pid := int64(i%50 + 1)
		r.run([]txnStep{txnData(pid, 1), plain(2), abortOf(pid)})
	}
	if len(l.Segments()) < 10 {
		b.Fatalf("want many segments, have %d", len(l.Segments()))
	}
	leo := l.LogEndOffset()
	closedEnd := l.Segments()[len(l.Segments())-1]
	var buf []AbortedTxn
	for _, q := range []struct {
		name     string
		from, to int64
	}{
		{"tail of the active segment", leo - 20, leo},
		{"a closed segment", closedEnd - 40, closedEnd - 20},
	} {
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = l.AppendAbortedTransactions(buf[:0], q.from, q.to); err != nil || len(buf) == 0 {
					b.Fatal(len(buf), err)
				}
			}
		})
	}
}

// BenchmarkLogAppendTransactional is BenchmarkLogAppend for a producer
// inside a transaction (sequence checks plus the transaction state); each
// iteration also patches the batch's sequence and CRC (about 0.1 µs).
func BenchmarkLogAppendTransactional(b *testing.B) {
	e := newEnv(b, vfs.OS(), Config{SegmentBytes: 256 << 20})
	l := e.open()
	one := mkBatch(b, spec{valueSize: 1024 - 61 - 12, pid: 9, txn: true})
	seq := int32(0)
	b.SetBytes(int64(len(one)))
	b.ReportAllocs()
	for b.Loop() {
		binary.BigEndian.PutUint32(one[53:], uint32(seq))
		fixCRC(one)
		seq++
		if _, err := l.Append(one, leader); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLogAppendMem is BenchmarkLogAppend on the in-memory FS: the CPU
// cost of the append path (validation, offsets, indexes, producer and
// transaction state) without the write system call and page cache noise.
func BenchmarkLogAppendMem(b *testing.B) {
	for _, tc := range []struct {
		name string
		pid  int64
	}{{"plain", 0}, {"idempotent", 7}} {
		b.Run(tc.name, func(b *testing.B) {
			l := newEnv(b, vfs.NewMem(), Config{SegmentBytes: 1 << 30}).open()
			one := mkBatch(b, spec{valueSize: 1024 - 61 - 12, pid: tc.pid})
			seq := int32(0)
			b.SetBytes(int64(len(one)))
			b.ReportAllocs()
			for b.Loop() {
				if tc.pid != 0 {
					binary.BigEndian.PutUint32(one[53:], uint32(seq))
					fixCRC(one)
					seq++
				}
				if _, err := l.Append(one, leader); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
