package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/protocol/batch"
	"github.com/sluicedev/sluice/storage/vfs"
)

// spec describes a test batch; zero values give one small record with no
// producer id.
type spec struct {
	records   int
	valueSize int
	ts        int64 // FirstTimestamp; MaxTimestamp is ts + records - 1
	pid       int64 // 0 means no producer id (-1 on the wire)
	epoch     int16
	seq       int32
	control   bool  // a transaction marker (ABORT unless commit) instead of records
	commit    bool  // with control: a COMMIT marker
	coord     int32 // with control: the coordinator epoch
	txn       bool  // the transactional attribute
	fill      byte  // value bytes, so batches are distinguishable
}

// mkBatch builds a v2 batch with kmsg, with Length and CRC computed the way
// a producer does (CRC-32C over the bytes from Attributes onward).
func mkBatch(t testing.TB, s spec) []byte {
	t.Helper()
	if s.records == 0 {
		s.records = 1
	}
	var recs []byte
	for i := range s.records {
		r := kmsg.Record{TimestampDelta64: int64(i), OffsetDelta: int32(i), Value: bytes.Repeat([]byte{s.fill}, s.valueSize)}
		if s.control {
			typ := kmsg.ControlRecordKeyTypeAbort
			if s.commit {
				typ = kmsg.ControlRecordKeyTypeCommit
			}
			r.Key = (&kmsg.ControlRecordKey{Type: typ}).AppendTo(nil)
			r.Value = (&kmsg.EndTxnMarker{CoordinatorEpoch: s.coord}).AppendTo(nil)
		}
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		recs = r.AppendTo(recs)
	}
	rb := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1, Magic: 2,
		LastOffsetDelta: int32(s.records - 1),
		FirstTimestamp:  s.ts, MaxTimestamp: s.ts + int64(s.records-1),
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1,
		NumRecords: int32(s.records), Records: recs,
	}
	if s.pid != 0 {
		rb.ProducerID, rb.ProducerEpoch, rb.FirstSequence = s.pid, s.epoch, s.seq
	}
	if s.control {
		rb.Attributes |= 0x30 // control batches are transactional
	}
	if s.txn {
		rb.Attributes |= 0x10
	}
	raw := rb.AppendTo(nil)
	rb.Length = int32(len(raw) - 12)
	raw = rb.AppendTo(raw[:0])
	rb.CRC = int32(crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	out := rb.AppendTo(raw[:0])
	if _, err := batch.Check(out); err != nil {
		t.Fatalf("helper built an invalid batch: %v", err)
	}
	return out
}

// fakeClock is a settable clock shared by a test and the log.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.UnixMilli(1_700_000_000_000)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env bundles what a test needs to open and reopen one log.
type env struct {
	t     testing.TB
	fs    vfs.FS
	dir   string
	clock *fakeClock
	cfg   Config
	opts  Options
}

func newEnv(t testing.TB, fsys vfs.FS, cfg Config) *env {
	t.Helper()
	if fsys == nil {
		fsys = vfs.NewMem()
	}
	root := "/data"
	if _, isMem := fsys.(*vfs.MemFS); !isMem {
		if _, isErr := fsys.(*vfs.ErrorFS); !isErr {
			root = t.TempDir()
		}
	}
	if err := fsys.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := fsys.SyncDir("/"); err != nil && root == "/data" {
		t.Fatal(err)
	}
	return &env{t: t, fs: fsys, dir: root + "/topic-0", clock: newFakeClock(), cfg: cfg}
}

func (e *env) options() Options {
	o := e.opts
	o.Config, o.FS, o.Clock = e.cfg, e.fs, e.clock.Now
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(testWriter{e.t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return o
}

func (e *env) open() *Log {
	e.t.Helper()
	l, err := Open(e.dir, e.options())
	if err != nil {
		e.t.Fatalf("Open: %v", err)
	}
	e.t.Cleanup(func() { _ = l.Close() })
	return l
}

// testWriter sends log output to t.Log so it shows only on failure.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func mustAppend(t testing.TB, l *Log, b []byte, o AppendOptions) AppendResult {
	t.Helper()
	res, err := l.Append(b, o)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return res
}

var leader = AppendOptions{AssignOffsets: true}

// readAll returns every batch from the log start offset to the end,
// checking that each is valid and that offsets are contiguous.
func readAll(t testing.TB, l *Log) [][]byte {
	t.Helper()
	var out [][]byte
	off := l.LogStartOffset()
	end := l.LogEndOffset()
	first := true
	for off < end {
		blob, err := l.Read(off, 1<<20, 1<<62)
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		if len(blob) == 0 {
			t.Fatalf("Read(%d) returned nothing before the end %d", off, end)
		}
		for len(blob) > 0 {
			b, rest, err := batch.Next(blob)
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			h, err := batch.Check(b)
			if err != nil {
				t.Fatalf("stored batch invalid: %v", err)
			}
			if !first && h.BaseOffset != off {
				t.Fatalf("offsets not contiguous: batch at %d, expected %d", h.BaseOffset, off)
			}
			first = false
			out = append(out, b)
			off = h.NextOffset()
			blob = rest
		}
	}
	return out
}

// waitFor polls cond until it returns nil or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %v", timeout, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// fileSize returns the size of a file in the FS.
func fileSize(t testing.TB, fsys vfs.FS, path string) int64 {
	t.Helper()
	st, err := fsys.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// rewriteFile replaces a file's contents with f(old).
func rewriteFile(t testing.TB, fsys vfs.FS, path string, f func([]byte) []byte) {
	t.Helper()
	old, err := readFile(fsys, path, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	w, err := fsys.OpenFile(path, os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(f(old)); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(w.Sync(), w.Close()); err != nil {
		t.Fatal(err)
	}
}

func segPath(e *env, base int64, suffix string) string {
	return fmt.Sprintf("%s/%020d%s", e.dir, base, suffix)
}

var errNotYet = errors.New("not yet")

// fixCRC recomputes the CRC-32C of a batch whose bytes a test changed.
func fixCRC(b []byte) {
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
}
