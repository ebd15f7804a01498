package storage

import (
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicedev/sluice/protocol/batch"
	"github.com/sluicedev/sluice/storage/vfs"
)

// AppendOptions says how Append treats a batch.
type AppendOptions struct {
	// LeaderEpoch is stamped into PartitionLeaderEpoch when AssignOffsets
	// is set; a new epoch is recorded in the leader-epoch cache. Followers
	// keep the epoch the leader stamped.
	LeaderEpoch int32
	// AssignOffsets is true on the leader: offsets are assigned under the
	// append lock. A follower passes false and the batch's own base offset
	// must equal the log end offset (ErrOffsetMismatch otherwise); producer
	// state is then recorded but not validated, as for Kafka's
	// AppendOrigin.REPLICATION.
	AssignOffsets bool
	// LogAppendTime, when > 0, marks the batch LogAppendTime with this
	// timestamp (message.timestamp.type=LogAppendTime).
	LogAppendTime int64
	// RequireVerification makes a leader append of a transactional batch
	// that starts its producer's transaction in this log fail with
	// ErrInvalidTxnState unless Verification is the producer's current
	// guard (transaction.partition.verification.enable, KIP-890).
	RequireVerification bool
	// Verification is the guard BeginVerification returned.
	Verification VerificationGuard
}

// AppendResult describes a successful Append.
type AppendResult struct {
	BaseOffset, LastOffset int64
	// LogAppendTime is the timestamp stamped on the batch, or -1.
	LogAppendTime  int64
	LogStartOffset int64
	// Duplicate is set when the batch repeats one of the producer's last 5
	// batches: nothing was written and the offsets are the original's.
	Duplicate bool
	// NeedsSync is set when flush.messages requires an fsync (Sync through
	// LastOffset) before the append may be acknowledged.
	NeedsSync bool
}

// RecoveryReport describes what Open found and repaired.
type RecoveryReport struct {
	// Clean is true when the previous Close completed (the recovery point
	// equalled the recovered log end) and nothing had to be dropped.
	Clean bool
	// ScannedSegments were read batch by batch with CRC checks.
	ScannedSegments int
	// TruncatedBytes is how much invalid data was dropped: torn or corrupt
	// tails plus any segments deleted after a corrupt one.
	TruncatedBytes int64
	// DeletedSegments counts segments removed because they followed
	// corruption or lay beyond a truncated log.
	DeletedSegments int
	// RebuiltIndexes counts segments whose .index/.timeindex were missing
	// or damaged and were rebuilt.
	RebuiltIndexes int
	// Corruption is the first damage found in a segment other than the
	// last one; such damage is logged at error level.
	Corruption *CorruptionError
}

// Log is one partition's log: a directory of segments plus checkpoints.
// All methods are safe for concurrent use. Appends serialize on the log's
// mutex; reads take it only to snapshot the segment list and then read
// files without it, so they never wait for an fsync.
type Log struct {
	dir       string
	topic     string
	partition int32
	fs        vfs.FS
	clock     func() time.Time
	onSync    func(time.Duration) // optional fsync latency observer
	onFence   func(error)         // optional log-directory failure hook
	logger    *slog.Logger
	strict    bool
	recovery  RecoveryReport
	store     *Store // owner, if opened through a Store

	// flushMu serializes fsync rounds, checkpoint writes, truncation,
	// retention and Close. Lock order: flushMu before mu.
	flushMu sync.Mutex
	// gc elects the single flusher of a group commit; a leaf lock.
	gc struct {
		sync.Mutex
		running bool
		done    chan struct{} // closed when the running round ends
	}
	syncedTo atomic.Int64  // every offset below is durable
	leo      atomic.Int64  // mirror of mu.leo for lock-free checks
	fenced   atomic.Bool   // mirror of mu.fenceErr != nil
	closed   atomic.Bool   // mirror of mu.closed
	truncGen atomic.Uint64 // bumped whenever bytes already written may change
	hw       atomic.Int64  // high watermark as last set or clamped, -1 unknown; see highwatermark.go
	hwDirty  atomic.Bool   // hw changed since its checkpoint was last written
	cleaner  cleanerState  // log compaction; see compact.go
	logStart atomic.Int64  // mirror of mu.lso for lock-free readers
	// txns tracks ongoing and unreplicated transactions for the last
	// stable offset; its own leaf lock (see txntrack.go).
	txns txnTracker
	// aborted counts the entries of every segment's aborted-transaction
	// index, so AbortedTransactions answers logs without any at once.
	aborted atomic.Int64

	mu struct {
		sync.Mutex
		cfg         Config
		segs        []*segment // sorted by base; the last is active
		leo         int64
		lso         int64
		epochs      epochCache
		epochsDirty bool // epochs changed since last written
		producers   producerState
		unflushed   int64 // records appended since the last flush round began
		lastFlush   time.Time
		changed     chan struct{}
		watched     bool                         // someone holds changed; close it on the next change
		watchers    map[chan<- struct{}]struct{} // Watch registrations; each gets a token per change
		fenceErr    error
		closed      bool
		dirDirty    bool    // directory entries changed since the last SyncDir
		recoveryPt  int64   // last recovery point written
		hwWritten   int64   // last high watermark written (or read at Open), -1 if none
		snapshots   []int64 // offsets of producer snapshot files, ascending
		// durableSnap is the offset a flush round is writing a durable
		// snapshot at (-1 none); a roll there leaves the file to it.
		durableSnap int64
	}
}

// Dir is the partition directory.
func (l *Log) Dir() string { return l.dir }

// Topic and Partition are parsed from the directory name
// "<topic>-<partition>"; Partition is -1 if the name has another form.
func (l *Log) Topic() string { return l.topic }

// Partition is the partition number from the directory name, or -1.
func (l *Log) Partition() int32 { return l.partition }

// Recovery reports what Open had to repair.
func (l *Log) Recovery() RecoveryReport { return l.recovery }

// parsePartitionDir splits "<topic>-<partition>".
func parsePartitionDir(name string) (string, int32, bool) {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 || i == len(name)-1 {
		return "", -1, false
	}
	digits := name[i+1:]
	for _, c := range digits {
		if c < '0' || c > '9' {
			return "", -1, false
		}
	}
	p, err := strconv.ParseInt(digits, 10, 32)
	if err != nil {
		return "", -1, false
	}
	return name[:i], int32(p), true
}

func newLog(dir string, opts Options) *Log {
	opts = opts.withDefaults()
	l := &Log{dir: filepath.Clean(dir), fs: opts.FS, clock: opts.Clock, strict: opts.StrictRecovery, onSync: opts.OnSync, onFence: opts.OnFence}
	var ok bool
	if l.topic, l.partition, ok = parsePartitionDir(filepath.Base(l.dir)); !ok {
		l.topic, l.partition = "", -1
	}
	l.logger = opts.Logger.With("dir", l.dir)
	l.gc.done = make(chan struct{})
	l.mu.cfg = opts.Config
	l.mu.producers = newProducerState()
	l.mu.changed = make(chan struct{})
	l.mu.lastFlush = l.clock()
	l.hw.Store(-1)
	l.logStart.Store(0)
	l.mu.hwWritten = -1
	l.mu.durableSnap = -1
	l.cleaner.init(opts)
	return l
}

// Append writes one record batch, already validated by batch.Check, at the
// end of the log. On the leader path it assigns offsets and may rewrite
// b's BaseOffset, PartitionLeaderEpoch and (for LogAppendTime) its
// attributes, MaxTimestamp and CRC in place. Producer idempotence is
// checked inside the append critical section. The data is in the page
// cache when Append returns; call Sync before acknowledging when
// NeedsSync is set (or acks require durability).
func (l *Log) Append(b []byte, o AppendOptions) (AppendResult, error) {
	h, err := batch.ParseHeader(b)
	if err != nil || h.Magic != batch.Magic || h.Length < batch.HeaderSize-12 || h.Size() != len(b) ||
		h.LastOffsetDelta < 0 || h.NumRecords < 0 {
		return AppendResult{}, fmt.Errorf("%w: %d bytes do not hold exactly one v2 batch", ErrInvalidBatch, len(b))
	}
	var mk marker
	if h.Control() && h.ProducerID >= 0 {
		if mk, err = parseMarker(b, &h); err != nil && o.AssignOffsets {
			return AppendResult{}, err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return AppendResult{}, err
	}
	res := AppendResult{LogAppendTime: -1, LogStartOffset: l.mu.lso}
	if o.AssignOffsets {
		if h.ProducerID >= 0 {
			dup, isDup, err := l.mu.producers.check(h)
			if err != nil {
				return AppendResult{}, err
			}
			if isDup {
				res.BaseOffset, res.LastOffset, res.Duplicate = dup.BaseOffset, dup.LastOffset, true
				res.NeedsSync = l.mu.cfg.FlushMessages != math.MaxInt64 && dup.LastOffset >= l.syncedTo.Load()
				return res, nil
			}
			if err := l.mu.producers.checkTxn(h, mk, o); err != nil {
				return AppendResult{}, err
			}
		}
		h.BaseOffset, h.PartitionLeaderEpoch = l.mu.leo, o.LeaderEpoch
		batch.SetBaseOffset(b, h.BaseOffset)
		batch.SetPartitionLeaderEpoch(b, h.PartitionLeaderEpoch)
	} else if h.BaseOffset != l.mu.leo {
		return AppendResult{}, fmt.Errorf("%w: batch at %d, log end offset %d", ErrOffsetMismatch, h.BaseOffset, l.mu.leo)
	}
	if o.LogAppendTime > 0 {
		batch.SetLogAppendTime(b, o.LogAppendTime)
		h.MaxTimestamp, res.LogAppendTime = o.LogAppendTime, o.LogAppendTime
	}
	if err := l.writeLocked(b, &h, mk); err != nil {
		return AppendResult{}, err
	}
	res.BaseOffset, res.LastOffset = h.BaseOffset, h.LastOffset()
	res.NeedsSync = l.mu.unflushed >= l.mu.cfg.FlushMessages
	return res, nil
}

// writeLocked rolls if needed, writes b and updates all in-memory state;
// mk is b's marker when b is a control batch. Any I/O error fences the
// log.
func (l *Log) writeLocked(b []byte, h *batch.Header, mk marker) error {
	now := l.clock()
	if err := l.maybeRollLocked(h, now); err != nil {
		return l.fenceLocked(err)
	}
	seg := l.mu.segs[len(l.mu.segs)-1]
	pos := seg.size
	if _, err := seg.log.Write(b); err != nil {
		return l.fenceLocked(fmt.Errorf("append to %s: %w", seg.logPath, err))
	}
	seg.trackBatch(h, pos, int64(l.mu.cfg.IndexIntervalBytes), now.UnixMilli())
	seg.dirty = true
	// Producer and transaction state change before the new log end
	// offset is published: a lock-free LastStableOffset that sees the
	// new end also sees a transaction this batch started.
	if h.ProducerID >= 0 {
		if err := l.applyTxnLocked(seg, l.mu.producers.update(*h, mk), h.ProducerID); err != nil {
			return l.fenceLocked(err)
		}
	}
	l.mu.leo = h.NextOffset()
	l.leo.Store(l.mu.leo)
	if l.mu.epochs.assign(h.PartitionLeaderEpoch, h.BaseOffset) {
		l.mu.epochsDirty = true
	}
	l.mu.unflushed += int64(h.NumRecords)
	l.notifyLocked()
	return nil
}

// applyTxnLocked keeps the transaction tracker in step with what an
// append did to producer pid's transaction, and indexes an aborted one in
// seg, the segment holding its marker.
func (l *Log) applyTxnLocked(seg *segment, ev txnEvent, pid int64) error {
	switch {
	case ev.started:
		l.txns.start(ev.first)
	case ev.ended:
		lso := l.txns.end(ev.first, ev.last)
		if !ev.aborted {
			return nil
		}
		created, err := seg.txn.append(l.fs, AbortedTxn{ProducerID: pid, FirstOffset: ev.first, LastOffset: ev.last, LastStableOffset: lso})
		if created {
			l.mu.dirDirty = true
		}
		if err != nil {
			return err
		}
		l.aborted.Add(1)
	}
	return nil
}

// maybeRollLocked starts a new segment when the batch would overflow
// segment.bytes, the active segment is older than segment.ms, or the
// batch's offsets no longer fit the int32 relative offsets of the indexes
// (Kafka's LogSegment.shouldRoll). An empty segment never rolls.
func (l *Log) maybeRollLocked(h *batch.Header, now time.Time) error {
	seg := l.mu.segs[len(l.mu.segs)-1]
	if seg.size == 0 {
		return nil
	}
	cfg := l.mu.cfg
	if seg.size+int64(h.Size()) > cfg.SegmentBytes || !seg.fitsRelative(h.LastOffset()) ||
		(cfg.rollMs() > 0 && now.UnixMilli()-seg.rollTs > cfg.rollMs()) {
		return l.rollLocked()
	}
	return nil
}

// rollLocked closes the active segment and creates a new one at the log
// end offset. Nothing is fsynced here; the next flush round syncs the old
// segment, its indexes and the directory. A producer-state snapshot is
// written (unsynced, checksummed) so recovery rescans at most one segment.
func (l *Log) rollLocked() error {
	old := l.mu.segs[len(l.mu.segs)-1]
	if err := old.deactivate(); err != nil {
		return err
	}
	seg, err := openSegmentFiles(l.fs, l.dir, l.mu.leo, true)
	if err != nil {
		return err
	}
	seg.resetActive()
	l.mu.segs = append(l.mu.segs, seg)
	l.mu.dirDirty = true
	if l.mu.leo == l.mu.durableSnap {
		return nil // a flush round is writing this snapshot durably
	}
	if err := l.writeSnapshotLocked(false); err != nil {
		l.logger.Warn("storage: producer snapshot at roll failed", "err", err)
	}
	return nil
}

// writableLocked returns why the log cannot take writes, if it cannot.
func (l *Log) writableLocked() error {
	if l.mu.fenceErr != nil {
		return fmt.Errorf("%w: %w", ErrFenced, l.mu.fenceErr)
	}
	if l.mu.closed {
		return ErrClosed
	}
	return nil
}

// fenceLocked makes every later Append and Sync fail. The first cause is
// kept and logged once.
func (l *Log) fenceLocked(cause error) error {
	if l.mu.fenceErr == nil {
		l.mu.fenceErr = cause
		l.fenced.Store(true)
		l.logger.Error("storage: log fenced after I/O error; appends refused until reopened", "err", cause)
		l.notifyLocked()
		if l.onFence != nil {
			l.onFence(cause)
		}
	}
	return fmt.Errorf("%w: %w", ErrFenced, cause)
}

func (l *Log) fence(cause error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fenceLocked(cause)
}

// notifyLocked wakes Changed waiters. A new channel is only made when
// someone took the old one, so appends without waiters do not allocate.
func (l *Log) notifyLocked() {
	for c := range l.mu.watchers {
		poke(c)
	}
	if l.mu.watched && !l.mu.closed {
		close(l.mu.changed)
		l.mu.changed = make(chan struct{})
		l.mu.watched = false
	}
}

// Changed returns a channel that is closed at the next append, truncation,
// log start offset change, fence or close. Fetch long-polls select on it
// and then call Changed again.
func (l *Log) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mu.watched = true
	return l.mu.changed
}

// Watch registers c to receive a token at every later append, truncation,
// log start offset change, fence or close, until Unwatch. The send never
// blocks: c should be buffered with room for one token, and a token already
// waiting in it stands for any number of changes. This lets one fetch wait
// on many partitions through a single channel, registered once per
// partition, instead of selecting over one channel per partition. A closed
// log sends the token at once.
func (l *Log) Watch(c chan<- struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		poke(c)
		return
	}
	if l.mu.watchers == nil {
		l.mu.watchers = map[chan<- struct{}]struct{}{}
	}
	l.mu.watchers[c] = struct{}{}
}

// Unwatch removes a Watch registration; it is a no-op for a channel not
// registered.
func (l *Log) Unwatch(c chan<- struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.mu.watchers, c)
}

// poke sends a token to c unless one is already waiting there.
func poke(c chan<- struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// LogStartOffset is the first offset readers may fetch.
func (l *Log) LogStartOffset() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.lso
}

// LogEndOffset is the offset the next appended batch will get.
func (l *Log) LogEndOffset() int64 { return l.leo.Load() }

// SyncedOffset is the offset below which everything is known durable.
func (l *Log) SyncedOffset() int64 { return l.syncedTo.Load() }

// Size is the total size in bytes of the segment files.
func (l *Log) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int64
	for _, s := range l.mu.segs {
		n += s.size
	}
	return n
}

// Segments returns the base offsets of the segments, oldest first.
func (l *Log) Segments() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]int64, len(l.mu.segs))
	for i, s := range l.mu.segs {
		out[i] = s.base
	}
	return out
}

// Config returns the settings in force (with defaults filled in).
func (l *Log) Config() Config {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.cfg
}

// SetConfig replaces the topic settings; they apply from the next
// operation.
func (l *Log) SetConfig(c Config) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mu.cfg = c.normalized()
}

// LatestEpoch is the newest leader epoch in the epoch cache, or -1.
func (l *Log) LatestEpoch() int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.epochs.latest()
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch with KIP-101/279
// semantics: for epoch E it returns the largest cached epoch <= E and the
// start offset of the next higher epoch, or the log end offset when E is
// the latest epoch. It returns (-1, -1) (UNDEFINED_EPOCH,
// UNDEFINED_EPOCH_OFFSET) when E is -1, above the latest epoch, or below
// the earliest cached one.
func (l *Log) EndOffsetForEpoch(epoch int32) (leaderEpoch int32, endOffset int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.epochs.endOffsetFor(epoch, l.mu.leo)
}

// ExpireProducers drops idempotent producer state idle for longer than
// producer.id.expiration.ms and returns how many producers it dropped. A
// producer with an ongoing transaction is never dropped (its marker must
// find the transaction), and verification guards older than the same
// setting are forgotten (Kafka's removeExpiredProducers).
func (l *Log) ExpireProducers(now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.producers.expire(now.UnixMilli() - l.mu.cfg.ProducerIDExpirationMs)
}
