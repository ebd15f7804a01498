package storage

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// RecordFilter is the record-level access log compaction needs. Storage
// itself only understands batch headers (it never imports kmsg), so the
// broker passes protocol.RecordFilter, which has this method set, through
// Options.Filter or StoreOptions.Filter.
type RecordFilter interface {
	// Records calls fn for every record of one batch (decompressing as
	// needed), in offset order. key is nil for a null key and is only
	// valid during the call; tombstone reports a null value.
	Records(batch []byte, fn func(offset int64, key []byte, tombstone bool, timestamp int64)) error
	// Rewrite returns the batch with only the records whose offset keep()
	// accepts, keeping base offset, producer id/epoch/base sequence,
	// partition leader epoch, attributes (codec, timestamp type,
	// transactional/control flags) and a valid CRC; nil if no record
	// remains. The result must not alias batch.
	Rewrite(batch []byte, keep func(offset int64) bool) ([]byte, error)
}

// CleanupPolicy is Kafka's cleanup.policy: a set of CleanupDelete
// (retention.ms and retention.bytes delete old segments) and
// CleanupCompact (the log cleaner keeps only the latest record per key).
// The zero value means the default, CleanupDelete.
type CleanupPolicy uint8

// Cleanup policies; "compact,delete" is CleanupCompact|CleanupDelete.
const (
	CleanupDelete CleanupPolicy = 1 << iota
	CleanupCompact
)

// ErrInvalidCleanupPolicy is returned by ParseCleanupPolicy for a value
// that is not a comma-separated list of "delete" and "compact".
var ErrInvalidCleanupPolicy = errors.New("storage: invalid cleanup.policy")

// ErrCompactionDisabled is returned by Log.Compact when the log has no
// RecordFilter (Options.Filter), without which records cannot be read.
var ErrCompactionDisabled = errors.New("storage: compaction disabled: no record filter")

// ParseCleanupPolicy parses a cleanup.policy value as Kafka writes it:
// "delete", "compact", or both separated by a comma, in either order.
func ParseCleanupPolicy(s string) (CleanupPolicy, error) {
	var p CleanupPolicy
	for _, part := range strings.Split(s, ",") {
		switch strings.TrimSpace(part) {
		case "delete":
			p |= CleanupDelete
		case "compact":
			p |= CleanupCompact
		default:
			return 0, fmt.Errorf("%w: %q", ErrInvalidCleanupPolicy, s)
		}
	}
	return p, nil
}

// String returns the policy in Kafka's spelling ("compact,delete" for
// both).
func (p CleanupPolicy) String() string {
	switch p {
	case 0, CleanupDelete:
		return "delete"
	case CleanupCompact:
		return "compact"
	case CleanupCompact | CleanupDelete:
		return "compact,delete"
	default:
		return fmt.Sprintf("CleanupPolicy(%d)", uint8(p))
	}
}

func (p CleanupPolicy) compacts() bool { return p&CleanupCompact != 0 }

// Kafka defaults for the compaction settings.
const (
	defaultDeleteRetentionMs      = 24 * 60 * 60 * 1000
	defaultMinCleanableDirtyRatio = 0.5
	defaultCleanerBufferBytes     = 128 << 20
	// offsetMapEntryBytes is what one key costs in the offset map (a
	// 16-byte hash and an 8-byte offset plus Go map overhead); it turns
	// CleanerBufferBytes into a key count.
	offsetMapEntryBytes = 48
	// cleanerBackoff is how long Store maintenance leaves a log alone after
	// a failed compaction pass, so a damaged batch is not retried (and
	// logged) every second.
	cleanerBackoff = 30 * time.Second
)

// normalizedCompaction fills the compaction fields of c with defaults.
// Negative DeleteRetentionMs and MinCleanableDirtyRatio are kept as given
// (they mean 0), so normalizing twice changes nothing.
func (c Config) normalizedCompaction(d Config) Config {
	if c.CleanupPolicy&(CleanupDelete|CleanupCompact) == 0 {
		c.CleanupPolicy = d.CleanupPolicy
	}
	c.CleanupPolicy &= CleanupDelete | CleanupCompact
	if c.DeleteRetentionMs == 0 {
		c.DeleteRetentionMs = d.DeleteRetentionMs
	}
	if c.MinCompactionLagMs < 0 {
		c.MinCompactionLagMs = 0
	}
	if c.MaxCompactionLagMs <= 0 {
		c.MaxCompactionLagMs = d.MaxCompactionLagMs
	}
	if c.MinCleanableDirtyRatio == 0 || math.IsNaN(c.MinCleanableDirtyRatio) {
		c.MinCleanableDirtyRatio = d.MinCleanableDirtyRatio
	}
	return c
}

// rollMs is the segment age that forces a roll: segment.ms, lowered to
// max.compaction.lag.ms on compacted topics so the active segment, which is
// never cleaned, cannot hold records past that lag (Kafka's
// LogConfig.maxSegmentMs).
func (c Config) rollMs() int64 {
	ms := c.SegmentMs
	if c.CleanupPolicy.compacts() && c.MaxCompactionLagMs > 0 && c.MaxCompactionLagMs < math.MaxInt64 &&
		(ms <= 0 || c.MaxCompactionLagMs < ms) {
		ms = c.MaxCompactionLagMs
	}
	return ms
}

// CompactResult describes one compaction pass; it is the zero value when
// there was nothing to compact or the pass was dropped because retention
// or truncation changed the log meanwhile (it is retried later).
type CompactResult struct {
	// Segments is how many segments the pass read and rewrote (its cleaned
	// range); OutputSegments how many replaced them.
	Segments, OutputSegments int
	// BytesBefore and BytesAfter are the cleaned range's size.
	BytesBefore, BytesAfter int64
	// RecordsRemoved counts superseded records and expired tombstones.
	RecordsRemoved int64
	// FirstDirtyOffset is the cleaner checkpoint after the pass: records
	// below it have been compacted against every later key.
	FirstDirtyOffset int64
}

// cleanerState is a Log's compaction state. run is taken before flushMu
// (lock order: cleaner.run, flushMu, mu); ck is guarded by Log.mu and only
// changed with flushMu held as well.
type cleanerState struct {
	run     sync.Mutex   // one pass at a time
	stop    atomic.Bool  // set by Close and abandon; a running pass gives up
	retryAt atomic.Int64 // unix ms before which Store maintenance skips the log
	filter  RecordFilter
	maxKeys int
	ck      cleanerCheckpoint
}

func (c *cleanerState) init(o Options) {
	c.filter = o.Filter
	buf := o.CleanerBufferBytes
	if buf <= 0 {
		buf = defaultCleanerBufferBytes
	}
	c.maxKeys = int(max(buf/offsetMapEntryBytes, 1))
}

// stopCleaner makes a running compaction pass give up and waits for it;
// later passes return ErrClosed.
func (l *Log) stopCleaner() {
	l.cleaner.stop.Store(true)
	l.cleaner.run.Lock() // waits for a running pass to give up
	l.cleaner.run.Unlock()
}

// Compact runs one compaction pass now, whatever the dirty ratio, if the
// log's cleanup.policy includes compact (otherwise it does nothing). It
// rewrites the closed segments from the log start up to the first segment
// not yet eligible (the active one, one with records newer than
// min.compaction.lag.ms, or one holding an offset at or above the last
// stable offset; see EnforceRetention for the bound without a known high
// watermark), keeping for every key only its latest record,
// tombstones until delete.retention.ms after they were first compacted,
// records with a null key and the last batch of every live idempotent
// producer. Records of aborted transactions are removed; a transaction
// marker stays while its transaction has records left, then, once a pass
// finds it alone, for delete.retention.ms more (Kafka's two-phase marker
// removal: the pass stamps the batch with a KIP-534 delete horizon). Offsets never change. Readers keep working
// throughout and never see a half-written segment; a crash at any point
// leaves either the old or the new segments (see doc.go). Store.Maintain
// calls it for the dirtiest log.
func (l *Log) Compact(now time.Time) (CompactResult, error) {
	if l.cleaner.filter == nil {
		return CompactResult{}, ErrCompactionDisabled
	}
	l.cleaner.run.Lock()
	defer l.cleaner.run.Unlock()
	if l.cleaner.stop.Load() {
		return CompactResult{}, ErrClosed
	}
	p, err := l.plan(now, true)
	if err != nil || p == nil {
		return CompactResult{}, err
	}
	defer p.release()
	return l.runPlan(p)
}

// cleanPlan is a compaction pass worked out under Log.mu: the segments to
// read (with references held) and everything the pass needs from the
// log's state, so the heavy work runs without locks.
type cleanPlan struct {
	cfg   Config
	nowMs int64
	// views are the closed segments from the one holding the log start
	// offset up to (not including) next, the first one not eligible.
	views []segView
	next  *segment
	// dirty is the index in views of the segment holding firstDirty, or
	// len(views) when nothing is dirty.
	dirty      int
	firstDirty int64
	// horizon: tombstones below it were compacted more than
	// delete.retention.ms ago and may go.
	horizon int64
	// lastOfProducer maps each live producer id to the last offset of its
	// newest batch, which is kept for idempotence state.
	lastOfProducer map[int64]int64
	// markerEpoch maps each live producer whose newest batch is a marker
	// (no data batch since its epoch changed) to that epoch: its markers
	// of that epoch are kept, as they carry the producer's epoch (Kafka's
	// isBatchLastRecordOfProducer).
	markerEpoch map[int64]int16
	// txnOf are the aborted-transaction indexes of views, in step.
	txnOf []txnIndexView
	// txnViews are the aborted-transaction indexes of every segment from
	// the first planned one on that may name a transaction with records in
	// the pass, with references held; runPlan reads them into aborted.
	txnViews []txnSegView
	aborted  []AbortedTxn // sorted by FirstOffset
	gen      uint64       // Log.truncGen when planned
}

func (p *cleanPlan) release() {
	for _, v := range p.views {
		v.seg.release()
	}
	for _, v := range p.txnViews {
		v.seg.release()
	}
	p.views, p.txnViews = nil, nil
}

// readAborted loads the aborted transactions that may have records in the
// planned segments, without locks.
func (p *cleanPlan) readAborted() error {
	start, end := p.views[0].base, p.next.base
	for _, v := range p.txnViews {
		var err error
		if p.aborted, _, err = v.v.collect(p.aborted, start, end); err != nil {
			return &CorruptionError{Path: v.seg.txn.path, Offset: 0, Err: err}
		}
	}
	slices.SortFunc(p.aborted, func(a, b AbortedTxn) int { return cmp.Compare(a.FirstOffset, b.FirstOffset) })
	return nil
}

// segEnd is the first offset after views[i]: the next segment's base.
func (p *cleanPlan) segEnd(i int) int64 {
	if i+1 < len(p.views) {
		return p.views[i+1].base
	}
	return p.next.base
}

// cleanRange locates a pass in the segment list: segs[s0:u] are the
// closed segments from the one holding the log start offset up to the
// first one not eligible (the active segment, one with records newer
// than min.compaction.lag.ms, or one holding an offset at or above the
// high watermark), and segs[d] holds firstDirty.
type cleanRange struct {
	s0, d, u               int
	firstDirty             int64
	hasDirty               bool
	cleanBytes, dirtyBytes int64
}

func (l *Log) cleanRangeLocked(nowMs int64) cleanRange {
	cfg, segs := l.mu.cfg, l.mu.segs
	fd := l.cleaner.ck.firstDirty
	if fd < l.mu.lso || fd > l.mu.leo {
		fd = l.mu.lso // as Kafka, a checkpoint out of range restarts at the log start
	}
	r := cleanRange{s0: l.segIndexLocked(l.mu.lso), d: l.segIndexLocked(fd), firstDirty: fd}
	// Records at or above the high watermark may still be truncated away,
	// and those at or above the last stable offset belong to transactions
	// not yet decided (or whose markers may still be truncated), so they
	// neither supersede older ones nor get rewritten (Kafka's cleaner stops
	// at min(high watermark, last stable offset, active segment base)).
	// The bound can have dropped below earlier passes.
	bound := l.stableBoundLocked()
	r.u = r.d
	for r.u > r.s0 && segs[r.u].base > bound {
		r.u--
	}
	for r.u < len(segs)-1 && segs[r.u+1].base <= bound &&
		(cfg.MinCompactionLagMs <= 0 || l.largestTs(segs[r.u]) <= nowMs-cfg.MinCompactionLagMs) {
		r.u++
	}
	r.hasDirty = segs[r.u].base > fd
	if !r.hasDirty {
		r.d = r.u
	}
	for i := r.s0; i < r.u; i++ {
		if i < r.d {
			r.cleanBytes += segs[i].size
		} else {
			r.dirtyBytes += segs[i].size
		}
	}
	return r
}

// plan captures a pass. It returns nil when the policy does not compact or
// there is nothing to clean (with force, a pass over an all-clean range
// still runs, to drop expired tombstones).
func (l *Log) plan(now time.Time, force bool) (*cleanPlan, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return nil, err
	}
	cfg := l.mu.cfg
	if !cfg.CleanupPolicy.compacts() {
		return nil, nil
	}
	nowMs := now.UnixMilli()
	r := l.cleanRangeLocked(nowMs)
	if r.u == r.s0 || (!r.hasDirty && !force) {
		return nil, nil
	}
	segs := l.mu.segs
	p := &cleanPlan{cfg: cfg, nowMs: nowMs, next: segs[r.u], firstDirty: r.firstDirty, dirty: r.d - r.s0,
		gen: l.truncGen.Load(), horizon: l.cleaner.ck.horizon(nowMs - max(cfg.DeleteRetentionMs, 0))}
	for _, s := range segs[r.s0:r.u] {
		p.views = append(p.views, s.viewLocked())
		p.txnOf = append(p.txnOf, s.txn.view())
	}
	for _, s := range segs[r.s0:] {
		if s.txn.n > 0 && s.txn.minFirst < p.next.base {
			s.acquire()
			p.txnViews = append(p.txnViews, txnSegView{seg: s, v: s.txn.view()})
		}
	}
	p.lastOfProducer = make(map[int64]int64, len(l.mu.producers.m))
	p.markerEpoch = map[int64]int16{}
	for id, e := range l.mu.producers.m {
		if e.N > 0 {
			p.lastOfProducer[id] = e.Recent[e.N-1].LastOffset
		} else {
			p.markerEpoch[id] = e.Epoch
		}
	}
	return p, nil
}

// cleanability reports the log's dirty ratio and whether Store
// maintenance should compact it: the ratio reaches
// min.cleanable.dirty.ratio, or the oldest dirty record is older than
// max.compaction.lag.ms (KIP-354, judged by the MaxTimestamp of the first
// dirty batch).
func (l *Log) cleanability(now time.Time) (ratio float64, due bool) {
	nowMs := now.UnixMilli()
	l.mu.Lock()
	cfg := l.mu.cfg
	if l.writableLocked() != nil || !cfg.CleanupPolicy.compacts() {
		l.mu.Unlock()
		return 0, false
	}
	r := l.cleanRangeLocked(nowMs)
	if r.dirtyBytes == 0 {
		l.mu.Unlock()
		return 0, false
	}
	ratio = float64(r.dirtyBytes) / float64(r.cleanBytes+r.dirtyBytes)
	lag := cfg.MaxCompactionLagMs
	if ratio >= max(cfg.MinCleanableDirtyRatio, 0) || lag <= 0 || lag == math.MaxInt64 {
		l.mu.Unlock()
		return ratio, ratio >= max(cfg.MinCleanableDirtyRatio, 0)
	}
	v := l.mu.segs[r.d].viewLocked()
	l.mu.Unlock()
	defer v.seg.release()
	pos, _, err := v.off.lookupOffset(r.firstDirty - v.base)
	if err != nil {
		pos = 0
	}
	sc := newScanner(v.seg.log, pos, v.end, false, 4096)
	for sc.next() {
		if sc.h.LastOffset() >= r.firstDirty {
			return ratio, sc.h.MaxTimestamp >= 0 && nowMs-sc.h.MaxTimestamp > lag
		}
	}
	return ratio, false
}

// compactOne runs one compaction pass on the log that needs it most, as
// Kafka's LogCleaner picks the "filthiest" log: among logs whose dirty
// ratio reaches min.cleanable.dirty.ratio or whose oldest dirty record is
// past max.compaction.lag.ms, the one with the highest ratio. Only one
// Maintain call compacts at a time.
func (s *Store) compactOne(now time.Time) {
	if s.opts.Filter == nil || !s.cleaning.TryLock() {
		return
	}
	defer s.cleaning.Unlock()
	var best *Log
	bestRatio := -1.0
	for _, l := range s.Logs() {
		if l.cleaner.filter == nil || now.UnixMilli() < l.cleaner.retryAt.Load() {
			continue
		}
		if ratio, due := l.cleanability(now); due && ratio > bestRatio {
			best, bestRatio = l, ratio
		}
	}
	if best == nil {
		return
	}
	res, err := best.Compact(now)
	if err != nil {
		if !errors.Is(err, ErrClosed) && !errors.Is(err, ErrFenced) {
			best.cleaner.retryAt.Store(now.Add(cleanerBackoff).UnixMilli())
			s.logger.Warn("storage: compaction failed", "topic", best.topic, "partition", best.partition, "err", err)
		}
		return
	}
	s.logger.Debug("storage: compacted", "topic", best.topic, "partition", best.partition,
		"segments", res.Segments, "bytes_before", res.BytesBefore, "bytes_after", res.BytesAfter,
		"records_removed", res.RecordsRemoved, "first_dirty_offset", res.FirstDirtyOffset)
}
