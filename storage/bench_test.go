package storage

import (
	"context"
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
