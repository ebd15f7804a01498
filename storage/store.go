package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicedev/sluice/storage/vfs"
)

// deletedSuffix marks a partition directory being removed in the
// background; OpenStore resumes such removals.
const deletedSuffix = ".deleted"

// StoreOptions configures OpenStore.
type StoreOptions struct {
	// FS, Clock and Logger are passed to every Log; see Options.
	FS     vfs.FS
	Clock  func() time.Time
	Logger *slog.Logger
	// Config applies to logs found on disk until Log is called with their
	// topic's settings.
	Config Config
	// Interval is the period of Run's maintenance pass (segment.ms,
	// flush.ms, high-watermark checkpoints, producer expiry, and retention
	// when it is due); default 1s.
	Interval time.Duration
	// RetentionInterval is how often the maintenance pass enforces
	// retention (Kafka's log.retention.check.interval.ms): a segment past
	// retention.ms or retention.bytes, or below the log start offset, is
	// deleted by the first pass at least this long after the previous
	// retention pass. The first one is due min(RetentionInterval, 30s)
	// after OpenStore, as Kafka's retention task starts after
	// log.initial.task.delay.ms. Zero enforces retention on every pass.
	RetentionInterval time.Duration
	// StrictRecovery is passed to every Log; see Options.
	StrictRecovery bool
	// Ignore names directories in the data directory that belong to
	// someone else (the embedded etcd's), so they are not reported as
	// unrecognized.
	Ignore []string
	// OnSync is passed to every Log; see Options.
	OnSync func(time.Duration)
	// OnFence is passed to every Log; see Options.
	OnFence func(cause error)
	// Filter and CleanerBufferBytes are passed to every Log; see Options.
	// With a nil Filter no log is compacted.
	Filter             RecordFilter
	CleanerBufferBytes int64
}

type partKey struct {
	topic     string
	partition int32
}

// Store manages the data directory: one Log per "<topic>-<partition>"
// subdirectory. It is safe for concurrent use; Store.mu is taken before
// any Log lock and never held during I/O: a partition being opened (which
// may recover its segments) is marked in mu.opening, and whoever wants the
// same partition, or to delete its topic, waits for that open alone.
type Store struct {
	dir    string
	opts   StoreOptions
	logger *slog.Logger
	seq    atomic.Uint64 // makes deleted directory names unique
	// retentionDue is the Clock time, in Unix nanoseconds, from which the
	// next maintenance pass enforces retention.
	retentionDue atomic.Int64
	wg           sync.WaitGroup
	// cleaning is held by the Maintain pass that runs the log cleaner,
	// so only one log is compacted at a time.
	cleaning sync.Mutex

	mu struct {
		sync.Mutex
		logs map[partKey]*Log
		// opening holds the partitions being opened by Log, each with a
		// channel closed when its open has ended, either way.
		opening map[partKey]chan struct{}
		closed  bool
	}
}

// OpenStore opens every partition directory under dir in parallel,
// recovering each, and resumes background removal of directories left
// over from DeleteTopic. It fails if any partition cannot be opened.
func OpenStore(dir string, opts StoreOptions) (*Store, error) {
	if opts.FS == nil {
		opts.FS = vfs.OS()
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	s := &Store{dir: filepath.Clean(dir), opts: opts, logger: opts.Logger.With("data_dir", dir)}
	s.mu.logs = map[partKey]*Log{}
	s.mu.opening = map[partKey]chan struct{}{}
	s.retentionDue.Store(opts.Clock().Add(min(opts.RetentionInterval, retentionInitialDelay)).UnixNano())
	if err := opts.FS.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", dir, err)
	}
	ents, err := opts.FS.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list data dir %s: %w", dir, err)
	}
	var keys []partKey
	for _, e := range ents {
		name := e.Name()
		if !e.IsDir() {
			continue
		}
		if strings.HasSuffix(name, deletedSuffix) {
			s.removeInBackground(filepath.Join(s.dir, name))
			continue
		}
		if slices.Contains(opts.Ignore, name) {
			continue
		}
		topic, p, ok := parsePartitionDir(name)
		if !ok || validTopic(topic) != nil {
			s.logger.Warn("storage: ignoring unrecognized directory", "name", name)
			continue
		}
		keys = append(keys, partKey{topic, p})
	}
	if err := s.openAll(keys); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	return s, nil
}

// openAll opens the given partitions with bounded parallelism.
func (s *Store) openAll(keys []partKey) error {
	sem := make(chan struct{}, max(runtime.GOMAXPROCS(0), 2))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, k := range keys {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			l, err := Open(s.partDir(k), s.logOptions(s.opts.Config))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			s.adopt(k, l)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s *Store) adopt(k partKey, l *Log) {
	l.store = s
	s.mu.Lock()
	s.mu.logs[k] = l
	s.mu.Unlock()
}

func (s *Store) partDir(k partKey) string {
	return filepath.Join(s.dir, k.topic+"-"+strconv.Itoa(int(k.partition)))
}

func (s *Store) logOptions(cfg Config) Options {
	return Options{Config: cfg, FS: s.opts.FS, Clock: s.opts.Clock, Logger: s.opts.Logger, StrictRecovery: s.opts.StrictRecovery,
		OnSync: s.opts.OnSync, OnFence: s.opts.OnFence, Filter: s.opts.Filter, CleanerBufferBytes: s.opts.CleanerBufferBytes}
}

// validTopic applies Kafka's topic name rules (Topic.validate).
func validTopic(topic string) error {
	if topic == "" || topic == "." || topic == ".." || len(topic) > 249 {
		return fmt.Errorf("%w: %q", ErrInvalidTopic, topic)
	}
	for _, c := range topic {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q", ErrInvalidTopic, topic)
		}
	}
	return nil
}

// Log returns the log for topic/partition, creating its directory if
// needed, and applies cfg to it (an existing log takes the new settings).
func (s *Store) Log(topic string, partition int32, cfg Config) (*Log, error) {
	if err := validTopic(topic); err != nil {
		return nil, err
	}
	if partition < 0 {
		return nil, fmt.Errorf("%w: partition %d", ErrInvalidTopic, partition)
	}
	k := partKey{topic, partition}
	s.mu.Lock()
	for {
		if s.mu.closed {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		if l, ok := s.mu.logs[k]; ok {
			s.mu.Unlock()
			l.SetConfig(cfg)
			return l, nil
		}
		ch, busy := s.mu.opening[k]
		if !busy {
			break
		}
		s.mu.Unlock()
		<-ch
		s.mu.Lock()
	}
	done := make(chan struct{})
	s.mu.opening[k] = done
	s.mu.Unlock()

	l, err := Open(s.partDir(k), s.logOptions(cfg))

	s.mu.Lock()
	delete(s.mu.opening, k)
	close(done)
	closed := s.mu.closed
	if err == nil && !closed {
		l.store = s
		s.mu.logs[k] = l
	}
	s.mu.Unlock()
	switch {
	case err != nil:
		return nil, err
	case closed: // Close did not see this log; it must not stay open
		_ = l.Close()
		return nil, ErrClosed
	}
	return l, nil
}

// Logs returns every open log, sorted by topic then partition.
func (s *Store) Logs() []*Log {
	s.mu.Lock()
	out := make([]*Log, 0, len(s.mu.logs))
	for _, l := range s.mu.logs {
		out = append(out, l)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b *Log) int {
		if c := strings.Compare(a.topic, b.topic); c != 0 {
			return c
		}
		return int(a.partition) - int(b.partition)
	})
	return out
}

// forget drops l from the map if it is still the registered log.
func (s *Store) forget(l *Log) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := partKey{l.topic, l.partition}
	if s.mu.logs[k] == l {
		delete(s.mu.logs, k)
	}
}

// DeleteTopic closes every partition of topic without flushing, renames
// each directory to "<dir>.<n>.deleted" (durable once the data directory
// is fsynced) and removes the files in the background, so other
// partitions are never blocked behind the deletion. Close waits for the
// background removals.
func (s *Store) DeleteTopic(topic string) error {
	if err := validTopic(topic); err != nil {
		return err
	}
	s.mu.Lock()
	// A partition of the topic being opened is waited for, so that its
	// directory is not created again behind the deletion.
	for {
		var busy chan struct{}
		for k, ch := range s.mu.opening {
			if k.topic == topic {
				busy = ch
				break
			}
		}
		if busy == nil {
			break
		}
		s.mu.Unlock()
		<-busy
		s.mu.Lock()
	}
	if s.mu.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	var victims []*Log
	for k, l := range s.mu.logs {
		if k.topic == topic {
			victims = append(victims, l)
			delete(s.mu.logs, k)
		}
	}
	s.mu.Unlock()
	dirs := map[string]bool{}
	for _, l := range victims {
		l.abandon()
		dirs[l.dir] = true
	}
	// Directories that failed to open or were never opened go too.
	if ents, err := s.opts.FS.ReadDir(s.dir); err == nil {
		for _, e := range ents {
			if t, _, ok := parsePartitionDir(e.Name()); ok && t == topic && e.IsDir() {
				dirs[filepath.Join(s.dir, e.Name())] = true
			}
		}
	}
	var errs []error
	var renamed []string
	for d := range dirs {
		to := fmt.Sprintf("%s.%d%s", d, s.seq.Add(1), deletedSuffix)
		if err := s.opts.FS.Rename(d, to); err != nil {
			errs = append(errs, fmt.Errorf("rename %s: %w", d, err))
			continue
		}
		renamed = append(renamed, to)
	}
	if err := s.opts.FS.SyncDir(s.dir); err != nil {
		errs = append(errs, fmt.Errorf("sync data dir: %w", err))
	}
	for _, d := range renamed {
		s.removeInBackground(d)
	}
	return errors.Join(errs...)
}

// removeInBackground deletes dir on a goroutine the Store waits for in
// Close.
func (s *Store) removeInBackground(dir string) {
	s.wg.Go(func() {
		if err := s.opts.FS.RemoveAll(dir); err != nil {
			s.logger.Warn("storage: removing deleted partition failed", "dir", dir, "err", err)
			return
		}
		if err := s.opts.FS.SyncDir(s.dir); err != nil {
			s.logger.Warn("storage: sync data dir after removal failed", "err", err)
		}
	})
}

// Run performs maintenance every StoreOptions.Interval until ctx is done
// or the Store is closed: segment.ms rolls, flush.ms flushes, retention,
// high-watermark checkpoints, producer-id expiry and compaction (see
// Maintain). It returns nil on shutdown.
func (s *Store) Run(ctx context.Context) error {
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.mu.Lock()
			closed := s.mu.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			s.Maintain(s.opts.Clock())
		}
	}
}

// retentionInitialDelay bounds the wait for the first retention pass, as
// Kafka's log.initial.task.delay.ms (30 s) does.
const retentionInitialDelay = 30 * time.Second

// Maintain runs one maintenance pass over every log at time now, then
// compacts at most one log (see compactOne). Retention is enforced only
// when StoreOptions.RetentionInterval has passed since the last time it
// was. Errors are logged per partition and do not stop the pass; a log
// closed meanwhile is skipped.
func (s *Store) Maintain(now time.Time) {
	retain := s.retentionDueAt(now)
	for _, l := range s.Logs() {
		steps := []struct {
			what string
			run  func() error
		}{
			{"roll", func() error { return l.MaybeRoll(now) }},
			{"flush", func() error { return l.flushIfDue(now) }},
			{"retention", func() error {
				if !retain {
					return nil
				}
				_, err := l.EnforceRetention(now)
				return err
			}},
			{"high watermark checkpoint", l.checkpointHighWatermark},
		}
		for _, st := range steps {
			if err := st.run(); err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrFenced) {
				s.logger.Warn("storage: maintenance failed", "step", st.what,
					"topic", l.topic, "partition", l.partition, "err", err)
			}
		}
		l.ExpireProducers(now)
	}
	s.compactOne(now)
}

// retentionDueAt reports whether a pass at now enforces retention, and if
// so schedules the next one RetentionInterval later.
func (s *Store) retentionDueAt(now time.Time) bool {
	if s.opts.RetentionInterval <= 0 {
		return true
	}
	due := s.retentionDue.Load()
	if now.UnixNano() < due {
		return false
	}
	return s.retentionDue.CompareAndSwap(due, now.Add(s.opts.RetentionInterval).UnixNano())
}

// Close flushes and closes every log, then waits for background
// deletions. It is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		return nil
	}
	s.mu.closed = true
	logs := make([]*Log, 0, len(s.mu.logs))
	for _, l := range s.mu.logs {
		logs = append(logs, l)
	}
	opening := make([]chan struct{}, 0, len(s.mu.opening))
	for _, ch := range s.mu.opening {
		opening = append(opening, ch)
	}
	s.mu.Unlock()
	// An open under way closes its own log when it sees closed; wait for
	// it, so nothing is left open after Close.
	for _, ch := range opening {
		<-ch
	}
	var wg sync.WaitGroup
	errs := make([]error, len(logs))
	sem := make(chan struct{}, max(runtime.GOMAXPROCS(0), 2))
	for i, l := range logs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = l.Close()
		})
	}
	wg.Wait()
	s.wg.Wait()
	return errors.Join(errs...)
}
