package storage

import (
	"errors"
	"fmt"
)

var (
	// ErrOffsetOutOfRange is returned when a read, DeleteRecordsBefore or
	// similar names an offset outside [LogStartOffset, LogEndOffset]. The
	// broker maps it to OFFSET_OUT_OF_RANGE.
	ErrOffsetOutOfRange = errors.New("storage: offset out of range")
	// ErrOutOfOrderSequence is returned by Append when an idempotent
	// producer's first sequence does not follow the last one stored for its
	// producer id and epoch, or a new epoch does not start at 0. Maps to
	// OUT_OF_ORDER_SEQUENCE_NUMBER.
	ErrOutOfOrderSequence = errors.New("storage: out of order sequence number")
	// ErrInvalidProducerEpoch is returned by Append when the batch's producer
	// epoch is older than the newest one stored for its producer id (a
	// zombie producer). Maps to INVALID_PRODUCER_EPOCH.
	ErrInvalidProducerEpoch = errors.New("storage: invalid producer epoch")
	// ErrUnknownProducerID is what brokers before Kafka 2.5 returned for a
	// non-zero first sequence from a producer without stored state. Append
	// follows KIP-360 and accepts such batches, so it does not return this
	// error; it exists so callers can map it if a stricter mode is added.
	ErrUnknownProducerID = errors.New("storage: unknown producer id")
	// ErrFenced is returned by every Append and Sync after a write or fsync
	// of the log failed: the page cache may hold data that never reached the
	// disk, so nothing appended since the last good fsync may be
	// acknowledged. Reads keep working. Close and reopen the log to recover.
	ErrFenced = errors.New("storage: log fenced after an I/O error")
	// ErrClosed is returned by operations on a closed or deleted log or
	// store.
	ErrClosed = errors.New("storage: closed")
	// ErrInvalidBatch is returned by Append when the bytes are not exactly
	// one v2 record batch. Callers are expected to run batch.Check first.
	ErrInvalidBatch = errors.New("storage: invalid batch")
	// ErrOffsetMismatch is returned by a follower Append (AssignOffsets
	// false) whose batch does not start at the log end offset.
	ErrOffsetMismatch = errors.New("storage: batch base offset is not the log end offset")
	// ErrInvalidTopic is returned by Store for topic names that cannot be
	// used as a directory name (empty, ".", "..", too long or containing
	// characters outside [a-zA-Z0-9._-]) and for negative partitions.
	ErrInvalidTopic = errors.New("storage: invalid topic name or partition")
	// errCheckpoint marks an unreadable checkpoint file; recovery falls back
	// to a safe default and never returns it.
	errCheckpoint = errors.New("storage: bad checkpoint file")
)

// CorruptionError reports damaged data inside a file: the batch at byte
// position Offset of Path failed validation with Err (a batch.Err* value or
// an offset-ordering problem). Recovery returns it from Open only with
// Options.StrictRecovery; otherwise it truncates there, logs it and records
// it in the RecoveryReport.
type CorruptionError struct {
	Path   string
	Offset int64
	Err    error
}

// Error names the file, the byte position and the cause.
func (e *CorruptionError) Error() string {
	return fmt.Sprintf("storage: corruption in %s at byte %d: %v", e.Path, e.Offset, e.Err)
}

// Unwrap returns the cause, so errors.Is(err, batch.ErrCorrupt) works.
func (e *CorruptionError) Unwrap() error { return e.Err }
