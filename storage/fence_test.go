package storage

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sluicedev/sluice/storage/vfs"
)

func isLogFile(p string) bool { return strings.HasSuffix(p, logSuffix) }

func TestLogFenceAfterFailedIO(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		rule vfs.Rule
		// failAt is the call that must fail: "sync" or "append".
		failAt string
	}{
		{"fsync of segment", vfs.Rule{Op: vfs.OpSync, Nth: 1, Match: isLogFile}, "sync"},
		{"fsync of directory", vfs.Rule{Op: vfs.OpSyncDir, Nth: 1}, "sync"},
		{"write of batch", vfs.Rule{Op: vfs.OpWrite, Nth: 1, Match: isLogFile}, "append"},
		{"create at roll", vfs.Rule{Op: vfs.OpCreate, Nth: 1, Match: isLogFile}, "append"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mem := vfs.NewMem()
			efs := vfs.NewErrorFS(mem)
			e := newEnv(t, efs, Config{SegmentBytes: 500})
			l := e.open()
			first := mustAppend(t, l, mkBatch(t, spec{valueSize: 100}), leader)
			if err := l.Sync(context.Background(), first.LastOffset); err != nil {
				t.Fatal(err)
			}
			efs.Add(tc.rule)

			var err error
			for i := 0; i < 10 && err == nil; i++ {
				var res AppendResult
				res, err = l.Append(mkBatch(t, spec{valueSize: 100}), leader)
				if err == nil && tc.failAt == "sync" {
					err = l.Sync(context.Background(), res.LastOffset)
				}
			}
			if !errors.Is(err, ErrFenced) || !errors.Is(err, vfs.ErrInjected) {
				t.Fatalf("failure not reported as fenced: %v", err)
			}
			synced := l.SyncedOffset()
			if _, err := l.Append(mkBatch(t, spec{}), leader); !errors.Is(err, ErrFenced) {
				t.Fatalf("append after fence: %v", err)
			}
			if err := l.Sync(context.Background(), l.LogEndOffset()); !errors.Is(err, ErrFenced) {
				t.Fatalf("sync after fence: %v", err)
			}
			if err := l.Flush(); !errors.Is(err, ErrFenced) {
				t.Fatalf("flush after fence: %v", err)
			}
			if l.SyncedOffset() != synced {
				t.Fatalf("synced offset moved after fence")
			}
			// Data synced before the failure is still readable.
			if blob, err := l.Read(0, 1<<20, 1<<62); err != nil || len(blob) == 0 {
				t.Fatalf("read after fence: %v", err)
			}
			if err := l.Close(); err != nil {
				t.Fatalf("close of fenced log: %v", err)
			}
			// Reopening (the failure is gone) recovers a consistent log.
			efs.Reset()
			l2 := e.open()
			if l2.LogEndOffset() < first.LastOffset+1 {
				t.Fatalf("synced batch lost: LEO %d", l2.LogEndOffset())
			}
			readAll(t, l2)
			mustAppend(t, l2, mkBatch(t, spec{}), leader)
		})
	}
}

func TestLogNoAckAfterFailedSyncUnderConcurrency(t *testing.T) {
	t.Parallel()
	efs := vfs.NewErrorFS(vfs.NewMem())
	e := newEnv(t, efs, Config{})
	l := e.open()
	efs.Add(vfs.Rule{Op: vfs.OpSync, Nth: 3, Sticky: true, Match: isLogFile})
	type ack struct {
		last int64
		err  error
	}
	acks := make(chan ack, 64)
	for range 8 {
		go func() {
			for range 8 {
				res, err := l.Append(mkBatch(t, spec{}), leader)
				if err == nil {
					err = l.Sync(context.Background(), res.LastOffset)
				}
				acks <- ack{res.LastOffset, err}
			}
		}()
	}
	var maxAcked int64 = -1
	for range 64 {
		a := <-acks
		if a.err == nil {
			maxAcked = max(maxAcked, a.last)
		}
	}
	if maxAcked >= l.SyncedOffset() {
		t.Fatalf("acknowledged offset %d but only %d is durable", maxAcked, l.SyncedOffset())
	}
	if efs.Count(vfs.OpSync) < 3 {
		t.Fatalf("failure never injected")
	}
}

// TestLogOnFenceReportsOnce checks that the owner hears of a failed fsync
// once, with its cause, at the moment the log is fenced (the broker turns
// it into a log directory failure), and not again on later refusals.
func TestLogOnFenceReportsOnce(t *testing.T) {
	t.Parallel()
	efs := vfs.NewErrorFS(vfs.NewMem())
	e := newEnv(t, efs, Config{})
	var causes []error
	e.opts.OnFence = func(cause error) { causes = append(causes, cause) }
	l := e.open()
	res := mustAppend(t, l, mkBatch(t, spec{valueSize: 10}), leader)
	if len(causes) != 0 {
		t.Fatalf("fenced before any failure: %v", causes)
	}
	efs.Add(vfs.Rule{Op: vfs.OpSync, Nth: 1, Match: isLogFile})
	if err := l.Sync(context.Background(), res.LastOffset); !errors.Is(err, ErrFenced) {
		t.Fatalf("sync: %v", err)
	}
	if _, err := l.Append(mkBatch(t, spec{}), leader); !errors.Is(err, ErrFenced) {
		t.Fatalf("append after fence: %v", err)
	}
	if len(causes) != 1 || !errors.Is(causes[0], vfs.ErrInjected) {
		t.Fatalf("OnFence calls: %v, want one with the injected error", causes)
	}
}
