package storage

import (
	"io"
	"log/slog"
	"math"
	"time"

	"github.com/sluicedev/sluice/storage/vfs"
)

// Kafka defaults for topic configs.
const (
	defaultSegmentBytes           = 1 << 30
	defaultSegmentMs              = 7 * 24 * 60 * 60 * 1000
	defaultRetentionMs            = 7 * 24 * 60 * 60 * 1000
	defaultIndexIntervalBytes     = 4096
	defaultMaxMessageBytes        = 1048588
	defaultProducerIDExpirationMs = 24 * 60 * 60 * 1000
)

// Config holds the topic-level settings a Log obeys; the comments give the
// Kafka config names. Zero fields take the Kafka default (see
// DefaultConfig), except SegmentMs, where 0 means never roll by age. Use
// RetentionMs/RetentionBytes = -1 for unlimited and math.MaxInt64 for
// FlushMessages/FlushMs to never flush by count/time (also the default).
type Config struct {
	SegmentBytes       int64 // segment.bytes (default 1 GiB, at most math.MaxInt32)
	SegmentMs          int64 // segment.ms (DefaultConfig: 7 days); 0 or negative = never by age
	RetentionMs        int64 // retention.ms (default 7 days; -1 = unlimited)
	RetentionBytes     int64 // retention.bytes (default -1 = unlimited)
	FlushMessages      int64 // flush.messages (default math.MaxInt64 = never by count)
	FlushMs            int64 // flush.ms (default math.MaxInt64 = never by time)
	IndexIntervalBytes int32 // index.interval.bytes (default 4096)
	MaxMessageBytes    int32 // max.message.bytes (not enforced by storage; the broker does)
	// ProducerIDExpirationMs is producer.id.expiration.ms (default 1 day):
	// idempotent producer state idle for longer is dropped by
	// ExpireProducers, after which the producer is treated as new.
	ProducerIDExpirationMs int64

	// Log compaction (see compact.go). Compaction also needs a
	// RecordFilter in Options/StoreOptions.
	CleanupPolicy          CleanupPolicy // cleanup.policy (default CleanupDelete)
	DeleteRetentionMs      int64         // delete.retention.ms (default 1 day); negative means 0
	MinCompactionLagMs     int64         // min.compaction.lag.ms (default 0)
	MaxCompactionLagMs     int64         // max.compaction.lag.ms (default math.MaxInt64 = none)
	MinCleanableDirtyRatio float64       // min.cleanable.dirty.ratio (default 0.5); negative means 0
}

// DefaultConfig returns Kafka's defaults.
func DefaultConfig() Config {
	return Config{
		SegmentBytes:           defaultSegmentBytes,
		SegmentMs:              defaultSegmentMs,
		RetentionMs:            defaultRetentionMs,
		RetentionBytes:         -1,
		FlushMessages:          math.MaxInt64,
		FlushMs:                math.MaxInt64,
		IndexIntervalBytes:     defaultIndexIntervalBytes,
		MaxMessageBytes:        defaultMaxMessageBytes,
		ProducerIDExpirationMs: defaultProducerIDExpirationMs,
		CleanupPolicy:          CleanupDelete,
		DeleteRetentionMs:      defaultDeleteRetentionMs,
		MaxCompactionLagMs:     math.MaxInt64,
		MinCleanableDirtyRatio: defaultMinCleanableDirtyRatio,
	}
}

// normalized fills zero fields with defaults and clamps SegmentBytes so
// byte positions fit the int32 index entries.
func (c Config) normalized() Config {
	d := DefaultConfig()
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = d.SegmentBytes
	}
	c.SegmentBytes = min(c.SegmentBytes, math.MaxInt32)
	if c.RetentionMs == 0 || c.RetentionMs < -1 {
		c.RetentionMs = d.RetentionMs
	}
	if c.RetentionBytes == 0 || c.RetentionBytes < -1 {
		c.RetentionBytes = d.RetentionBytes
	}
	if c.FlushMessages <= 0 {
		c.FlushMessages = d.FlushMessages
	}
	if c.FlushMs <= 0 {
		c.FlushMs = d.FlushMs
	}
	if c.IndexIntervalBytes <= 0 {
		c.IndexIntervalBytes = d.IndexIntervalBytes
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = d.MaxMessageBytes
	}
	if c.ProducerIDExpirationMs <= 0 {
		c.ProducerIDExpirationMs = d.ProducerIDExpirationMs
	}
	return c.normalizedCompaction(d)
}

// Options configures Open.
type Options struct {
	Config Config
	// FS is the file system; nil means vfs.OS().
	FS vfs.FS
	// Clock returns the current time for segment.ms, retention and
	// LogAppendTime decisions made inside storage; nil means time.Now.
	Clock func() time.Time
	// Logger receives recovery reports and I/O failures, never per-append
	// messages; nil discards.
	Logger *slog.Logger
	// StrictRecovery makes Open fail with a *CorruptionError when a segment
	// other than the last one is damaged, instead of truncating the log
	// there (Kafka's behaviour and the default). Use it when an operator
	// would rather inspect the files than lose data silently.
	StrictRecovery bool
	// OnSync, when set, is told how long each flush round's data fsyncs
	// took (for a latency metric); it must not block.
	OnSync func(time.Duration)
	// OnFence, when set, is told the cause the first time the log is
	// fenced by a failed write or fsync, so the owner can treat the
	// directory as failed (Kafka's log directory failure) instead of
	// waiting for the next append to find out. It is called with the log's
	// lock held and must not block or call back into the log.
	OnFence func(cause error)
	// Filter gives the log cleaner record-level access for
	// cleanup.policy=compact (the broker passes protocol.RecordFilter);
	// nil disables compaction.
	Filter RecordFilter
	// CleanerBufferBytes bounds the offset map of one compaction pass
	// (log.cleaner.dedupe.buffer.size); 0 means 128 MiB.
	CleanerBufferBytes int64
}

func (o Options) withDefaults() Options {
	if o.FS == nil {
		o.FS = vfs.OS()
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	o.Config = o.Config.normalized()
	return o
}
