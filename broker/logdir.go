package broker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicedev/sluice/replication"
	"github.com/sluicedev/sluice/storage"
	"github.com/sluicedev/sluice/storage/vfs"
)

// Log directory failure, as Kafka's LogDirFailureChannel and
// ReplicaManager.handleLogDirFailure: the first failed write or fsync of
// any partition log (storage fences that log, see storage.ErrFenced) takes
// the whole data directory offline. The page cache may hold data the disk
// never got, and the next write of any other log on the same disk is
// likely to fail the same way, so the broker:
//
//   - refuses every produce to a partition in the directory with
//     KAFKA_STORAGE_ERROR (clients retry, and reach the new leader);
//   - stops fetching as a follower, so no leader counts it in an ISR again;
//   - gives up leadership and ISR membership of every partition it hosts
//     through the partition records, exactly as controlled shutdown does
//     (replication.ControlledShutdown), so the controller's choice falls on
//     a healthy in-sync replica. The pass is repeated every
//     logDirRetryInterval, because a write can fail on conflicts or while
//     etcd is away;
//   - reports the directory offline: sluice_offline_log_directory_count
//     (Kafka's OfflineLogDirectoryCount) and logDirOffline, for
//     DescribeLogDirs.
//
// Where this broker is the only in-sync replica of a partition it keeps
// leading it read-only, as controlled shutdown keeps such partitions: the
// acknowledged records are still readable from it, and no other replica
// could take over without losing them (unclean election stays the
// operator's decision). This is where Sluice differs from Kafka: a Kafka
// broker halts when its last log directory fails; a Sluice broker has one
// data directory and stays up, so the failure stays visible (metrics,
// DescribeLogDirs) and sole-replica data stays readable. A restart
// reopens and recovers the logs and clears the state.
//
// A full disk is the same failure: ENOSPC from a write is an I/O error
// like EIO, as Kafka's IOException is, and producers see
// KAFKA_STORAGE_ERROR.

// logDirRetryInterval is how often the give-up pass is repeated while the
// directory is offline.
const logDirRetryInterval = time.Second

// logDirHealth is the state of the broker's one data directory.
type logDirHealth struct {
	offline atomic.Bool
	once    sync.Once
	failed  chan struct{} // closed when offline is set
	mu      sync.Mutex
	cause   error
}

func newLogDirHealth() *logDirHealth { return &logDirHealth{failed: make(chan struct{})} }

// fail marks the directory offline with cause. It is called by storage
// with a log's lock held (storage.Options.OnFence), so it only records.
func (h *logDirHealth) fail(cause error) {
	h.once.Do(func() {
		h.mu.Lock()
		h.cause = cause
		h.mu.Unlock()
		h.offline.Store(true)
		close(h.failed)
	})
}

// err returns why the directory went offline, or nil.
func (h *logDirHealth) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cause
}

// errLogDirOffline answers appends while the data directory is offline;
// it wraps storage.ErrFenced so produce maps it to KAFKA_STORAGE_ERROR.
var errLogDirOffline = fmt.Errorf("broker: log directory offline: %w", storage.ErrFenced)

// logDirOffline reports whether dir, a log directory as DescribeLogDirs
// names it (this broker's data directory), is offline after a failed
// write or fsync. Directories this broker does not have are not offline.
func (b *Broker) logDirOffline(dir string) bool {
	return b.logDir.offline.Load() && filepath.Clean(dir) == b.logDirPath()
}

// logDirPath is the absolute path of the data directory, the name
// DescribeLogDirs reports.
func (b *Broker) logDirPath() string {
	if abs, err := filepath.Abs(b.cfg.DataDir); err == nil {
		return abs
	}
	return filepath.Clean(b.cfg.DataDir)
}

// logDirFailed reports whether the data directory is offline.
func (b *Broker) logDirFailed() bool { return b.logDir.offline.Load() }

// onLogFenced is storage's OnFence hook.
func (b *Broker) onLogFenced(cause error) { b.logDir.fail(cause) }

// handleLogDirFailure waits for the directory to fail, then gives up the
// partitions on it until ctx ends.
func (b *Broker) handleLogDirFailure(ctx context.Context) {
	select {
	case <-ctx.Done():
		return
	case <-b.logDir.failed:
	}
	b.log.Error("log directory failed: refusing writes and giving up leadership and ISR membership of its partitions until restart",
		"dir", b.logDirPath(), "disk_full", isDiskFull(b.logDir.err()), "err", b.logDir.err())
	t := time.NewTicker(logDirRetryInterval)
	defer t.Stop()
	lastKept := -1
	for {
		moved, kept, failed, err := b.giveUpPartitions(ctx)
		if moved > 0 || kept != lastKept {
			b.log.Info("log directory offline: partitions given up", "moved", moved, "still_led_alone", kept)
			lastKept = kept
		}
		if failed > 0 && ctx.Err() == nil {
			b.log.Warn("log directory offline: cannot give up some partitions yet; retrying", "partitions", failed, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// giveUpPartitions writes, for every partition whose record has this
// broker in its ISR, the record controlled shutdown would write. It
// returns how many records it changed, how many partitions this broker
// still leads as their only eligible in-sync replica, and how many it
// could not write (with the first error).
func (b *Broker) giveUpPartitions(ctx context.Context) (moved, kept, failed int, firstErr error) {
	self := b.cfg.NodeID
	for _, ts := range b.topics.all() {
		for p := int32(0); p < ts.meta().Partitions && ctx.Err() == nil; p++ {
			cur, ok := b.partitionState(ts.meta().Name, p)
			if !ok || !slices.Contains(cur.ISR, self) {
				continue
			}
			if len(cur.ISR) == 1 && cur.Leader == self {
				kept++ // nobody to hand it to; do not read etcd every pass
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			next, err := b.updatePartition(pctx, ts, p, "log directory offline", func(cur replication.PartitionState) (replication.PartitionState, error) {
				return replication.ControlledShutdown(cur, self, b.clusterView())
			})
			cancel()
			switch {
			case err != nil:
				if failed++; firstErr == nil {
					firstErr = fmt.Errorf("%s-%d: %w", ts.meta().Name, p, err)
				}
			case next.Leader == self:
				kept++
			case next.PartitionEpoch != cur.PartitionEpoch:
				moved++
			}
		}
	}
	return moved, kept, failed, firstErr
}

// logDirCollector reports the data directory's health at scrape time.
type logDirCollector struct {
	b       *Broker
	offline *prometheus.Desc
}

func newLogDirCollector(b *Broker) *logDirCollector {
	return &logDirCollector{b: b, offline: prometheus.NewDesc("sluice_offline_log_directory_count",
		"Log directories offline after a failed write or fsync (Kafka's OfflineLogDirectoryCount); this broker has one.", nil, nil)}
}

func (c *logDirCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.offline }

func (c *logDirCollector) Collect(ch chan<- prometheus.Metric) {
	n := 0.0
	if c.b.logDirFailed() {
		n = 1
	}
	ch <- prometheus.MustNewConstMetric(c.offline, prometheus.GaugeValue, n)
}

// storageFS is the file system the partition logs use: the operating
// system's, or, with Config.TestFaultInjection, the same behind a
// vfs.ErrorFS that serveFaults arms.
func (b *Broker) storageFS() vfs.FS {
	if !b.cfg.TestFaultInjection {
		return vfs.OS()
	}
	b.faults = vfs.NewErrorFS(vfs.OS())
	return b.faults
}

// serveFaults is the test-only fault endpoint, registered on the HTTP
// listener only with Config.TestFaultInjection:
//
//	POST   /debug/faults?op=sync|write|create&errno=EIO|ENOSPC[&match=s]
//	       every later call of op (on a path containing s) fails
//	DELETE /debug/faults
//	       removes every rule
//
// It lets process-level tests fail a real broker's fsync or make its disk
// look full at a chosen moment.
func (b *Broker) serveFaults(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodDelete:
		b.faults.Reset()
		return
	case http.MethodPost:
	default:
		http.Error(w, "POST or DELETE", http.StatusMethodNotAllowed)
		return
	}
	ops := map[string]vfs.Op{"sync": vfs.OpSync, "write": vfs.OpWrite, "create": vfs.OpCreate}
	errnos := map[string]error{"EIO": syscall.EIO, "ENOSPC": syscall.ENOSPC}
	op, okOp := ops[r.URL.Query().Get("op")]
	errno, okErr := errnos[r.URL.Query().Get("errno")]
	if !okOp || !okErr {
		http.Error(w, "want op=sync|write|create and errno=EIO|ENOSPC", http.StatusBadRequest)
		return
	}
	rule := vfs.Rule{Op: op, Nth: 1, Sticky: true, Err: errno}
	if s := r.URL.Query().Get("match"); s != "" {
		rule.Match = func(path string) bool { return strings.Contains(path, s) }
	}
	b.faults.Add(rule)
	b.log.Warn("test fault injection armed", "op", r.URL.Query().Get("op"), "errno", r.URL.Query().Get("errno"))
}

// isDiskFull reports whether err is a full disk (ENOSPC), for logging.
func isDiskFull(err error) bool { return errors.Is(err, syscall.ENOSPC) }
