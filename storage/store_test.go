package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/sluicedev/sluice/storage/vfs"
)

func openTestStore(t *testing.T, fsys vfs.FS, opts StoreOptions) *Store {
	t.Helper()
	opts.FS = fsys
	s, err := OpenStore("/data", opts)
	if err != nil {
		t.Fatalf("OpenStore: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestStoreOpenExistingPartitions(t *testing.T) {
	t.Parallel()
	mem := vfs.NewMem()
	s := openTestStore(t, mem, StoreOptions{})
	want := map[string]int64{}
	for _, topic := range []string{"orders", "my-topic.v2"} {
		for p := range int32(3) {
			l, err := s.Log(topic, p, Config{})
			if err != nil {
				t.Fatal(err)
			}
			for range int(p) + 1 {
				mustAppend(t, l, mkBatch(t, spec{}), leader)
			}
			want[fmt.Sprintf("%s/%d", topic, p)] = l.LogEndOffset()
		}
	}
	if again, _ := s.Log("orders", 1, Config{RetentionMs: 5}); again.Config().RetentionMs != 5 {
		t.Fatal("existing log did not take the new config")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Log("orders", 0, Config{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Log after Close: %v", err)
	}
	// Junk in the data dir is ignored.
	if f, err := mem.Create("/data/README"); err == nil {
		f.Close()
	}
	mem.MkdirAll("/data/not a partition", 0o755)

	s2 := openTestStore(t, mem, StoreOptions{})
	logs := s2.Logs()
	if len(logs) != 6 {
		t.Fatalf("%d logs after reopen", len(logs))
	}
	for _, l := range logs {
		key := fmt.Sprintf("%s/%d", l.Topic(), l.Partition())
		if l.LogEndOffset() != want[key] {
			t.Fatalf("%s: LEO %d, want %d", key, l.LogEndOffset(), want[key])
		}
	}
	if logs[0].Topic() != "my-topic.v2" || logs[0].Partition() != 0 || logs[5].Topic() != "orders" {
		t.Fatalf("Logs not sorted: %s-%d ... %s", logs[0].Topic(), logs[0].Partition(), logs[5].Topic())
	}
}

func TestStoreRejectsBadNames(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, vfs.NewMem(), StoreOptions{})
	for _, topic := range []string{"", ".", "..", "a/b", "sp ace", strings.Repeat("x", 250)} {
		if _, err := s.Log(topic, 0, Config{}); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("topic %q: %v", topic, err)
		}
	}
	if _, err := s.Log("ok", -1, Config{}); !errors.Is(err, ErrInvalidTopic) {
		t.Errorf("negative partition: %v", err)
	}
}

func TestStoreDeleteTopic(t *testing.T) {
	t.Parallel()
	mem := vfs.NewMem()
	s := openTestStore(t, mem, StoreOptions{})
	var victims []*Log
	for p := range int32(2) {
		l, err := s.Log("doomed", p, Config{})
		if err != nil {
			t.Fatal(err)
		}
		mustAppend(t, l, mkBatch(t, spec{}), leader)
		victims = append(victims, l)
	}
	keep, err := s.Log("kept", 0, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTopic("doomed"); err != nil {
		t.Fatal(err)
	}
	if logs := s.Logs(); len(logs) != 1 || logs[0] != keep {
		t.Fatalf("logs after delete: %d", len(logs))
	}
	if _, err := victims[0].Append(mkBatch(t, spec{}), leader); !errors.Is(err, ErrClosed) {
		t.Fatalf("append to deleted log: %v", err)
	}
	mustAppend(t, keep, mkBatch(t, spec{}), leader)
	waitFor(t, 5*time.Second, func() error {
		ents, err := mem.ReadDir("/data")
		if err != nil {
			return err
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "doomed") {
				return fmt.Errorf("%s still present", e.Name())
			}
		}
		return nil
	})
	// Recreating the topic starts from scratch.
	l, err := s.Log("doomed", 0, Config{})
	if err != nil || l.LogEndOffset() != 0 {
		t.Fatalf("recreated: %v LEO %d", err, l.LogEndOffset())
	}
}

func TestStoreResumesInterruptedDeletion(t *testing.T) {
	t.Parallel()
	mem := vfs.NewMem()
	mem.MkdirAll("/data/gone-0.3.deleted", 0o755)
	if f, err := mem.Create("/data/gone-0.3.deleted/00000000000000000000.log"); err == nil {
		f.Close()
	}
	openTestStore(t, mem, StoreOptions{})
	waitFor(t, 5*time.Second, func() error {
		if _, err := mem.Stat("/data/gone-0.3.deleted"); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("still there: %v", err)
		}
		return nil
	})
}

func TestStoreRunEnforcesRetentionAndFlush(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := openTestStore(t, vfs.NewMem(), StoreOptions{Clock: clock.Now, Interval: time.Millisecond})
	l, err := s.Log("t", 0, Config{SegmentBytes: 500, RetentionBytes: 1000, FlushMs: 10})
	if err != nil {
		t.Fatal(err)
	}
	for range 30 {
		mustAppend(t, l, mkBatch(t, spec{valueSize: 100}), leader)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	clock.Advance(time.Second)
	waitFor(t, 5*time.Second, func() error {
		if l.Size() > 1500 || l.SyncedOffset() != l.LogEndOffset() {
			return fmt.Errorf("size %d, synced %d of %d", l.Size(), l.SyncedOffset(), l.LogEndOffset())
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if l.LogStartOffset() == 0 {
		t.Fatal("log start offset did not move")
	}
}

func TestStoreMaintainRollsIdleSegments(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := openTestStore(t, vfs.NewMem(), StoreOptions{Clock: clock.Now})
	l, err := s.Log("idle", 0, Config{SegmentMs: 1000, RetentionMs: 5000})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, mkBatch(t, spec{ts: clock.Now().UnixMilli()}), leader)
	clock.Advance(2 * time.Second)
	s.Maintain(clock.Now())
	if segs := l.Segments(); len(segs) != 2 {
		t.Fatalf("segments %v", segs)
	}
	clock.Advance(10 * time.Second)
	s.Maintain(clock.Now())
	if segs := l.Segments(); len(segs) != 1 || l.LogStartOffset() != 1 {
		t.Fatalf("after retention: %v LSO %d", segs, l.LogStartOffset())
	}
}

// TestStoreRetentionInterval: retention runs on the passes at least
// RetentionInterval apart (log.retention.check.interval.ms), not on every
// maintenance pass, while segment.ms rolls still happen on every pass.
func TestStoreRetentionInterval(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := openTestStore(t, vfs.NewMem(), StoreOptions{Clock: clock.Now, RetentionInterval: 10 * time.Second})
	l, err := s.Log("r", 0, Config{SegmentMs: 1000, RetentionMs: 1})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, mkBatch(t, spec{ts: clock.Now().UnixMilli()}), leader)
	for range 9 {
		clock.Advance(time.Second)
		s.Maintain(clock.Now())
	}
	if segs := l.Segments(); len(segs) != 2 || l.LogStartOffset() != 0 {
		t.Fatalf("after 9 s: segments %v LSO %d, want rolled and nothing deleted yet", segs, l.LogStartOffset())
	}
	clock.Advance(time.Second)
	s.Maintain(clock.Now())
	if segs := l.Segments(); len(segs) != 1 || l.LogStartOffset() != 1 {
		t.Fatalf("after 10 s: segments %v LSO %d, want the old segment deleted", segs, l.LogStartOffset())
	}
	mustAppend(t, l, mkBatch(t, spec{ts: clock.Now().UnixMilli()}), leader)
	clock.Advance(2 * time.Second)
	s.Maintain(clock.Now()) // rolls; retention next due at 20 s
	if l.LogStartOffset() != 1 {
		t.Fatalf("retention ran again 2 s after the last: LSO %d", l.LogStartOffset())
	}
	clock.Advance(8 * time.Second)
	s.Maintain(clock.Now())
	if l.LogStartOffset() != 2 {
		t.Fatalf("after 20 s: LSO %d, want 2", l.LogStartOffset())
	}
}

func TestStoreForgetsClosedLog(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, vfs.NewMem(), StoreOptions{})
	l, _ := s.Log("t", 0, Config{})
	mustAppend(t, l, mkBatch(t, spec{}), leader)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, err := s.Log("t", 0, Config{})
	if err != nil || l2 == l || l2.LogEndOffset() != 1 {
		t.Fatalf("reopened %v, same %v", err, l2 == l)
	}
	if err := l2.Delete(); err != nil {
		t.Fatal(err)
	}
	if len(s.Logs()) != 0 {
		t.Fatal("deleted log still listed")
	}
}

// gateFS holds every file creation under one directory until released, to
// stand for a partition whose open is slow (recovery of a large log).
type gateFS struct {
	vfs.FS
	dir     string
	entered chan struct{} // closed at the first held call
	once    bool
	release chan struct{}
}

func (g *gateFS) hold(name string) {
	if !strings.HasPrefix(name, g.dir) {
		return
	}
	if !g.once {
		g.once = true
		close(g.entered)
	}
	<-g.release
}

func (g *gateFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	g.hold(name)
	return g.FS.OpenFile(name, flag, perm)
}

func (g *gateFS) Create(name string) (vfs.File, error) {
	g.hold(name)
	return g.FS.Create(name)
}

// TestStoreSlowOpenBlocksOnlyItsPartition opens a partition whose file
// system stalls: meanwhile other partitions open, Logs lists the open ones
// and maintenance runs, and a second Log of the stalled partition waits
// for the first and gets the same log.
func TestStoreSlowOpenBlocksOnlyItsPartition(t *testing.T) {
	t.Parallel()
	g := &gateFS{FS: vfs.NewMem(), dir: "/data/slow-0", entered: make(chan struct{}), release: make(chan struct{})}
	s := openTestStore(t, g, StoreOptions{})
	fast, err := s.Log("fast", 0, Config{})
	if err != nil {
		t.Fatal(err)
	}
	slow := make(chan *Log, 2)
	for range 2 {
		go func() {
			l, err := s.Log("slow", 0, Config{})
			if err != nil {
				t.Error(err)
			}
			slow <- l
		}()
	}
	<-g.entered
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := s.Log("other", 3, Config{}); err != nil {
			t.Error(err)
		}
		if n := len(s.Logs()); n != 2 {
			t.Errorf("Logs lists %d logs while one opens, want fast-0 and other-3", n)
		}
		s.Maintain(time.Now())
		mustAppend(t, fast, mkBatch(t, spec{}), leader)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the store is blocked behind one partition's open")
	}
	close(g.release)
	a, b := <-slow, <-slow
	if a == nil || a != b {
		t.Fatalf("two opens of one partition gave %p and %p", a, b)
	}
	if n := len(s.Logs()); n != 3 {
		t.Fatalf("Logs lists %d logs, want 3", n)
	}
}
