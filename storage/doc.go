// Package storage keeps partition logs on disk in Apache Kafka's layout:
// one directory per partition holding segment files of record batches,
// sparse offset and time indexes, and small checkpoint files. It recovers
// from crashes at Open, applies retention, tracks idempotent producers and
// the leader-epoch cache, and makes appends durable with group-committed
// fsyncs. All file access goes through the storage/vfs seam.
//
// Storage stores batches as opaque bytes plus the fixed v2 header (package
// protocol/batch); it never decodes records and imports neither kmsg nor
// etcd.
//
// # Directory layout
//
//	<data dir>/
//	  <topic>-<partition>/                    one Log
//	    00000000000000000000.log              segment: batches, base offset 0
//	    00000000000000000000.index            its sparse offset index
//	    00000000000000000000.timeindex        its sparse time index
//	    00000000000000001234.log              next segment, base offset 1234
//	    00000000000000001234.snapshot         producer state as of offset 1234
//	    log-start-offset-checkpoint
//	    recovery-point-offset-checkpoint
//	    high-watermark-checkpoint             once a high watermark was set
//	    leader-epoch-checkpoint
//	    cleaner-offset-checkpoint             compacted topics only
//	    cleaner-swap-checkpoint               only while a compaction swap runs
//	    <base>.{log,index,timeindex}.cleaned  a compaction pass's new segment
//	    <base>.{log,index,timeindex}.swap     ... staged for the swap
//	  <topic>-<partition>.<n>.deleted/        being removed after DeleteTopic
//
// Segment names are the base offset (the first offset the segment may
// hold) zero-padded to 20 digits so they sort by offset. The last segment
// is the active one; only it is appended to. Segments are contiguous: each
// base offset equals the previous segment's end offset. (In a compacted
// log the last batch of a segment may end before the next segment's base:
// the batches in between were compacted away. The next base is still that
// segment's end.)
//
// # Segment file (.log)
//
// Record batches (magic 2) concatenated with nothing in between, byte for
// byte as Kafka stores them and as Fetch returns them. See package
// protocol/batch for the 61-byte header; its CRC-32C covers everything from
// Attributes on, so each batch is self-checking. Offsets increase strictly
// from batch to batch; they are contiguous unless the log was compacted.
//
// # Offset index (.index), 8-byte entries, big endian
//
//	offset  size  field
//	     0     4  relative offset: last offset of the batch - segment base
//	     4     4  position: byte offset of that batch in the .log file
//
// An entry is added before a batch once more than index.interval.bytes were
// appended since the previous entry (Kafka's LogSegment.append). To find
// offset X: take the last entry with relative offset <= X - base and scan
// batch headers forward from its position.
//
// # Time index (.timeindex), 12-byte entries, big endian
//
//	offset  size  field
//	     0     8  timestamp: largest batch MaxTimestamp so far in the segment
//	     8     4  relative offset of the last offset of the batch holding it
//
// Added together with offset index entries, and once more when the segment
// is closed, whenever the largest timestamp grew. The last entry of a
// closed segment is its largest timestamp (used by retention.ms).
//
// The indexes of the active segment live in memory and are written to
// their files when the segment rolls or the log closes; the files of closed
// segments are read with ReadAt. Indexes are never trusted blindly: a
// reader that finds an entry not naming the batch at its position scans
// from the segment start.
//
// # Checkpoint files (text)
//
//	<file name> 1              header: the file's own name and version 1
//	<n>                        number of rows
//	<a> [<b>]                  n rows of decimal int64s
//	crc32c <8 hex digits>      CRC-32C (Castagnoli) of all bytes above
//
// log-start-offset-checkpoint, recovery-point-offset-checkpoint and
// high-watermark-checkpoint hold one row with one offset;
// leader-epoch-checkpoint holds "epoch start-offset" rows. Every
// checkpoint is replaced atomically: write "<name>.tmp", fsync it, rename
// it over "<name>", fsync the directory. A file that is missing or fails
// its checksum is ignored with a warning (a lost epoch cache makes
// recovery rescan every segment to rebuild it; a lost high watermark is
// unknown, -1, until the replication layer sets it again).
//
// high-watermark-checkpoint is Kafka's replication-offset-checkpoint, one
// per partition: the high watermark given to Log.SetHighWatermark, clamped
// to [log start, log end] when written. It is written when it changed, by
// each Store maintenance pass (about once a second; Kafka's
// replica.high.watermark.checkpoint.interval.ms) and by Close, not on the
// append or Sync path, so it usually lags the in-memory value. At Open it
// is clamped to the recovered log: down to the log end offset when
// recovery cut the log below it, up to the log start offset. A truncation
// or recovery that leaves the file above the new log end rewrites it at
// once, so it never covers offsets appended after the cut.
//
// cleaner-offset-checkpoint (arity 2) holds "first-dirty compacted-to"
// in its first row, then one "end time-ms" row per recent compaction pass
// (see Log compaction below). cleaner-swap-checkpoint (arity 2) holds one
// "base end" row per segment a committed pass is swapping in.
//
// # Producer snapshot (<offset>.snapshot), binary, big endian
//
//	size  field
//	   4  magic "SPS1"
//	   8  offset: the state covers every batch below it
//	   4  number of producers, then per producer, sorted by id:
//	   8    producer id
//	   2    producer epoch
//	   8    MaxTimestamp of its newest batch (for producer.id.expiration.ms)
//	   1    n (<= 5), then n times, oldest first:
//	  24      first sequence int32, last sequence int32,
//	          base offset int64, last offset int64
//	   4  CRC-32C of everything above
//
// Written at every roll (without fsync; the checksum rejects a torn file)
// and durably at Close; the newest two are kept.
//
// # Crash guarantees
//
//   - Every offset below one passed to a successful Sync (or covered by
//     Flush or Close) survives a crash. Nothing else is promised for data
//     that was only appended.
//   - A failed write or fsync fences the log (ErrFenced): nothing appended
//     after the last successful fsync is ever acknowledged. Reopen to
//     recover.
//   - After a crash the log is a prefix of what was appended: whole valid
//     batches, contiguous offsets (except gaps compaction made), no bytes
//     that were never written.
//   - DeleteRecordsBefore and TruncateTo return only once their effect is
//     durable; retention persists the new log start offset before it
//     deletes files.
//   - The leader-epoch checkpoint is written in a flush round before the
//     data is fsynced, so durable data always has its epochs on disk.
//   - A crash can only leave an older, lower high watermark: the last one
//     written, clamped to the recovered log, so never above the recovered
//     log end offset; values set after that write are lost and relearned
//     from the leader. (The older value can exceed the last one set only
//     if the HW moved backwards without a truncation, over records still
//     in the log: a truncation below the file's value rewrites it first.)
//
// # Log compaction (cleanup.policy=compact)
//
// Kafka's log cleaner (LogCleaner, KIP-58, KIP-354), enabled by a
// RecordFilter in Options (storage never decodes records itself). A pass
// (Log.Compact; Store.Maintain runs one for the log with the highest
// dirty ratio once it reaches min.cleanable.dirty.ratio, or whose oldest
// dirty record is older than max.compaction.lag.ms) works on the closed
// segments from the log start up to the first one not eligible: the active
// segment, or the first dirty segment whose newest record is younger than
// min.compaction.lag.ms. It
//
//  1. maps every key of the dirty range, [first-dirty, end), to the offset
//     of its latest record (two 64-bit hashes per key, at most
//     CleanerBufferBytes/48 keys; a full map ends the range early, at a
//     batch boundary);
//  2. rewrites every eligible segment below end, grouping neighbours whose
//     total size fits segment.bytes into one output segment named after
//     the first. A record stays if its key is null, or no later record of
//     its key was mapped; a tombstone (null value) additionally only until
//     delete.retention.ms after the pass that first compacted it (the
//     pass rows of the checkpoint). Control batches and the newest batch of
//     every live idempotent producer are kept whole. Batches whose records
//     all stay are copied byte for byte; thinned ones are rebuilt by the
//     filter with their base offset, LastOffsetDelta, producer fields,
//     attributes and timestamps unchanged. Offsets never change; a batch
//     left empty disappears, leaving a gap. A group left empty is merged
//     into a neighbour, so no two consecutive segments are empty;
//  3. writes each output as <base>.*.cleaned and fsyncs it, then, with
//     flushMu held and after checking that retention or truncation did
//     not change those segments meanwhile, commits: the cleaner checkpoint
//     raising compacted-to (durably removing a stale swap manifest),
//     ".cleaned" renamed to ".swap" and the directory fsynced, then
//     cleaner-swap-checkpoint written atomically: the commit point. The
//     replaced segments' files are removed and the index swaps renamed
//     into place, the directory fsynced, the ".log.swap" files renamed over
//     the old segment files, the directory fsynced; the in-memory segment
//     list is switched under Log.mu, and the checkpoint records the new
//     first-dirty offset and the pass.
//
// Readers hold references to the segments they read, so a reader that
// found an old segment keeps reading its (unlinked or replaced) files and
// never sees a mix. Appends only touch the active segment and are never
// blocked by a pass; flush rounds, retention and truncation wait only for
// the swap. At Open, before anything else, recovery deletes ".cleaned"
// files and ".swap" files of an uncommitted pass, and completes a committed
// one: for each manifest row whose ".log.swap" still exists it removes the
// originals in [base, end) and renames the swap into place (its indexes
// are rebuilt). A crash thus leaves either every old or every new segment
// of a pass. Like the checkpoint files, this relies on rename(2) replacing
// its target atomically. Below compacted-to a segment may end before the
// next one starts; recovery does not take that for data lost in a crash
// (every such segment was fsynced by the cleaner). Truncation lowers the
// checkpoint first. With cleanup.policy=compact only, retention.ms and
// retention.bytes delete nothing; "compact,delete" applies both, and
// segment.ms is capped by max.compaction.lag.ms so the active segment
// cannot hold records past it.
//
// # The high watermark bounds retention and compaction
//
// Once a high watermark is known (set, or read at Open), records at or
// above it may still be truncated by the replication layer, so neither
// retention nor the cleaner touches them: retention deletes a segment
// only when the next segment's base is at or below the HW (Kafka's
// UnifiedLog.deleteOldSegments), whatever retention.ms or retention.bytes
// say, and a compaction pass only maps and rewrites segments that end at
// or below it (Kafka's cleaner stops at min(high watermark, last stable
// offset, active segment base)); a pass whose range the HW dropped into
// meanwhile is dropped at commit. A Log whose HW was never known (-1),
// such as one used without replication, is not bounded.
//
// # Recovery (Open)
//
// Segments wholly below the recovery point were fsynced in full: they get
// only an index sanity check (a missing or damaged index is rebuilt by
// scanning that segment). The segment holding the recovery point, every
// later one, and always the last one are read batch by batch with
// batch.Check, rebuilding their indexes and the tail of the epoch cache.
//
//   - Torn, zero-filled or corrupt bytes at the end of the last segment are
//     truncated away at the last valid batch and fsynced; the byte count is
//     logged and reported in RecoveryReport.TruncatedBytes.
//   - Damage in a scanned segment that is not the last one is reported
//     loudly: logged at error level with a *CorruptionError{Path, Offset},
//     also in RecoveryReport.Corruption. By default the log is then
//     truncated there and every later segment deleted, as Kafka's LogLoader
//     does (the damage lies beyond the last known fsync, so a replica can
//     refill it, and refusing to start would take the partition offline).
//     With Options.StrictRecovery, Open fails with the *CorruptionError
//     instead and changes nothing.
//   - A segment whose base is beyond the previous segment's end (its file
//     survived a crash but earlier data did not) is dropped with everything
//     after it. Segments wholly below the log start offset are deleted.
//   - Producer state is loaded from the newest valid snapshot and completed
//     by re-reading the batch headers after it.
//
// Recovery is idempotent: running it again, with or without another crash
// in between, yields the same log.
//
// # Concurrency and lock order
//
// Store and Log are safe for concurrent use. Locks, always taken in this
// order and never in reverse:
//
//	Store.cleaning    one compacting Maintain at a time
//	Store.mu          the partition map; never held during a Log's I/O,
//	                  except while opening a new partition
//	Log.cleaner.run   one compaction pass at a time; Close waits for it
//	Log.flushMu       one flush round, checkpoint write, retention pass,
//	                  truncation, close or compaction swap at a time
//	Log.mu            append state: segment list, log end and start offsets,
//	                  epoch cache, producer state, config, cleaner checkpoint
//	Log.gc            leaf; elects the single flusher of a group commit
//
// Appends hold Log.mu for the write system call only; fsyncs run with
// Log.mu released. SetHighWatermark takes no lock (an atomic store
// clamped against the atomic log end offset); everything that reads the
// HW for retention, compaction or its checkpoint clamps it again under
// Log.mu. Reads take Log.mu just long enough to reference the
// segments they need and then read files with ReadAt, so they never wait
// for an fsync; a reference keeps a segment's files open even if retention
// deletes it meanwhile, and a truncation counter makes readers retry if
// bytes they read were cut.
//
// # Example
//
//	st, err := storage.OpenStore("/var/lib/sluice", storage.StoreOptions{Logger: logger})
//	l, err := st.Log("orders", 0, storage.DefaultConfig())
//	res, err := l.Append(batchBytes, storage.AppendOptions{AssignOffsets: true, LeaderEpoch: 3})
//	if res.NeedsSync || acksAll {
//		err = l.Sync(ctx, res.LastOffset)
//	}
//	l.SetHighWatermark(hw) // from the replication layer; persisted by Run
//	blob, err := l.Read(fetchOffset, maxBytes, l.HighWatermark())
//	go st.Run(ctx)
//	defer st.Close()
package storage
