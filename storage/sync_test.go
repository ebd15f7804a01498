package storage

import (
	"context"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicedev/sluice/storage/vfs"
)

// slowSyncFS counts fsyncs of segment files and can hold them until
// released or slow them down, to make group commit observable.
type slowSyncFS struct {
	vfs.FS
	logSyncs atomic.Int32
	hold     atomic.Bool
	release  chan struct{}
	delay    time.Duration
}

func (s *slowSyncFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	f, err := s.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &slowSyncFile{File: f, fs: s, name: name}, nil
}

type slowSyncFile struct {
	vfs.File
	fs   *slowSyncFS
	name string
}

func (f *slowSyncFile) Sync() error {
	if strings.HasSuffix(f.name, logSuffix) {
		f.fs.logSyncs.Add(1)
		if f.fs.hold.Load() {
			<-f.fs.release
		}
		time.Sleep(f.fs.delay) // simulated device latency, not an assertion
	}
	return f.File.Sync()
}

func TestLogGroupCommitCoalescesWaiters(t *testing.T) {
	t.Parallel()
	sfs := &slowSyncFS{FS: vfs.NewMem(), release: make(chan struct{})}
	e := newEnv(t, sfs, Config{})
	l := e.open()
	mustAppend(t, l, mkBatch(t, spec{}), leader)
	sfs.hold.Store(true)
	first := make(chan error, 1)
	go func() { first <- l.Sync(context.Background(), 0) }()
	waitFor(t, 5*time.Second, func() error {
		if sfs.logSyncs.Load() == 0 {
			return errNotYet
		}
		return nil
	})
	// While the first fsync is stuck, many producers append and wait.
	const waiters = 20
	errs := make(chan error, waiters)
	for range waiters {
		go func() {
			res, err := l.Append(mkBatch(t, spec{}), leader)
			if err == nil {
				err = l.Sync(context.Background(), res.LastOffset)
			}
			errs <- err
		}()
	}
	waitFor(t, 5*time.Second, func() error {
		if l.LogEndOffset() != waiters+1 {
			return errNotYet
		}
		return nil
	})
	sfs.hold.Store(false)
	close(sfs.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for range waiters {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := sfs.logSyncs.Load(); n != 2 {
		t.Fatalf("%d fsyncs of the segment for %d waiters, want 2", n, waiters+1)
	}
	if l.SyncedOffset() != waiters+1 {
		t.Fatalf("synced offset %d", l.SyncedOffset())
	}
}

func TestLogGroupCommitUnderLoad(t *testing.T) {
	t.Parallel()
	sfs := &slowSyncFS{FS: vfs.NewMem(), release: make(chan struct{}), delay: 200 * time.Microsecond}
	e := newEnv(t, sfs, Config{SegmentBytes: 64 << 10})
	l := e.open()
	const workers, each = 16, 40
	var wg sync.WaitGroup
	var acked atomic.Int64
	for range workers {
		wg.Go(func() {
			for range each {
				res, err := l.Append(mkBatch(t, spec{valueSize: 100}), leader)
				if err != nil {
					t.Error(err)
					return
				}
				if err := l.Sync(context.Background(), res.LastOffset); err != nil {
					t.Error(err)
					return
				}
				if l.SyncedOffset() <= res.LastOffset {
					t.Errorf("Sync returned before %d was durable", res.LastOffset)
				}
				acked.Add(1)
			}
		})
	}
	wg.Wait()
	if n := sfs.logSyncs.Load(); int64(n) >= acked.Load() {
		t.Fatalf("%d fsyncs for %d appends: no coalescing", n, acked.Load())
	}
	t.Logf("%d fsyncs for %d synced appends", sfs.logSyncs.Load(), acked.Load())
}

func TestLogSyncRespectsContext(t *testing.T) {
	t.Parallel()
	sfs := &slowSyncFS{FS: vfs.NewMem(), release: make(chan struct{})}
	l := newEnv(t, sfs, Config{}).open()
	mustAppend(t, l, mkBatch(t, spec{}), leader)
	sfs.hold.Store(true)
	go func() { _ = l.Sync(context.Background(), 0) }()
	waitFor(t, 5*time.Second, func() error {
		if sfs.logSyncs.Load() == 0 {
			return errNotYet
		}
		return nil
	})
	// Appends and reads do not wait for the fsync in progress.
	mustAppend(t, l, mkBatch(t, spec{}), leader)
	if blob, err := l.Read(0, 1<<20, 1<<62); err != nil || len(blob) == 0 {
		t.Fatalf("read during fsync: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Sync(ctx, 1); err != context.Canceled {
		t.Fatalf("Sync with cancelled context: %v", err)
	}
	sfs.hold.Store(false)
	close(sfs.release)
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
}
