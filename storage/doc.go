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
//	    leader-epoch-checkpoint
//	  <topic>-<partition>.<n>.deleted/        being removed after DeleteTopic
//
// Segment names are the base offset (the first offset the segment may
// hold) zero-padded to 20 digits so they sort by offset. The last segment
// is the active one; only it is appended to. Segments are contiguous: each
// base offset equals the previous segment's end offset.
//
// # Segment file (.log)
//
// Record batches (magic 2) concatenated with nothing in between, byte for
// byte as Kafka stores them and as Fetch returns them. See package
// protocol/batch for the 61-byte header; its CRC-32C covers everything from
// Attributes on, so each batch is self-checking. Offsets increase strictly
// from batch to batch.
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
// log-start-offset-checkpoint and recovery-point-offset-checkpoint hold one
// row with one offset; leader-epoch-checkpoint holds "epoch start-offset"
// rows. Every checkpoint is replaced atomically: write "<name>.tmp",
// fsync it, rename it over "<name>", fsync the directory. A file that is
// missing or fails its checksum is ignored with a warning (a lost epoch
// cache makes recovery rescan every segment to rebuild it).
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
//     batches, contiguous offsets, no bytes that were never written.
//   - DeleteRecordsBefore and TruncateTo return only once their effect is
//     durable; retention persists the new log start offset before it
//     deletes files.
//   - The leader-epoch checkpoint is written in a flush round before the
//     data is fsynced, so durable data always has its epochs on disk.
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
//	Store.mu      the partition map; never held during a Log's I/O, except
//	              while opening a new partition
//	Log.flushMu   one flush round, checkpoint write, retention pass,
//	              truncation or close at a time
//	Log.mu        append state: segment list, log end and start offsets,
//	              epoch cache, producer state, config
//	Log.gc        leaf; elects the single flusher of a group commit
//
// Appends hold Log.mu for the write system call only; fsyncs run with
// Log.mu released. Reads take Log.mu just long enough to reference the
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
//	blob, err := l.Read(fetchOffset, maxBytes, highWatermark)
//	go st.Run(ctx)
//	defer st.Close()
package storage
