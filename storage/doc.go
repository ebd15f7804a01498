// Package storage keeps partition logs on disk in Apache Kafka's layout:
// one directory per partition holding segment files of record batches,
// sparse offset and time indexes, and small checkpoint files. It recovers
// from crashes at Open, applies retention, tracks idempotent and
// transactional producers (KIP-98: ongoing transactions, markers, the last
// stable offset and an aborted-transaction index per segment) and the
// leader-epoch cache, and makes appends durable with group-committed
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
//	    00000000000000000000.txnindex         its aborted transactions, once it has any
//	    00000000000000001234.log              next segment, base offset 1234
//	    00000000000000001234.snapshot         producer state as of offset 1234
//	    log-start-offset-checkpoint
//	    recovery-point-offset-checkpoint
//	    high-watermark-checkpoint             once a high watermark was set
//	    leader-epoch-checkpoint
//	    cleaner-offset-checkpoint             compacted topics only
//	    cleaner-swap-checkpoint               only while a compaction swap runs
//	    <base>.{log,index,timeindex,txnindex}.cleaned  a compaction pass's new segment
//	    <base>.{log,index,timeindex,txnindex}.swap     ... staged for the swap
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
// # Aborted-transaction index (.txnindex), 34-byte entries, big endian
//
// Kafka's TransactionIndex, byte for byte (AbortedTxn):
//
//	offset  size  field
//	     0     2  version: 0
//	     2     8  producer id
//	    10     8  first offset: the transaction's first batch in this log
//	    18     8  last offset: the offset of its ABORT marker
//	    26     8  last stable offset once the abort was appended: the
//	              first offset of the earliest transaction then still
//	              ongoing, or last offset + 1
//
// An entry is appended (write system call under Log.mu, fsynced by the
// next flush round with the segment) to the active segment's file when an
// ABORT marker ends a transaction that has batches in this log; a marker
// for a producer with no ongoing transaction adds nothing. Entries are in
// marker order, so each lives in the segment holding its marker. The file
// is created with the segment's first entry (segments without aborted
// transactions have none, as in Kafka) and goes with its segment
// (retention, DeleteRecords, truncation, deletion); TruncateTo drops the
// entries whose marker it cuts and fsyncs the file. The active segment's
// entries are also held in memory (up to 32768), closed segments' are read
// with ReadAt. AbortedTransactions(from, to) starts at the segment holding
// from, skips segments by an in-memory summary (entry count, smallest
// first offset, last entry) and stops at the first entry whose last
// stable offset reaches to, as Kafka's collectAbortedTxns does.
//
// At Open every file is validated (whole entries, version 0, first <= last
// offset, markers strictly increasing and inside the segment). A file
// that fails is never trusted past its valid entries; see Recovery below.
//
// # Transactions and the last stable offset
//
// Per producer id the log keeps (Kafka's ProducerStateEntry) its epoch,
// its last five batches' sequences, the first offset of its ongoing
// transaction (-1 none) and the coordinator epoch of its newest marker
// (-1 none). A transactional batch from a producer with no ongoing
// transaction starts one at its base offset; a COMMIT or ABORT control
// batch (parsed by batch.ParseMarker; other control record types are
// ignored) ends it. On the leader path (AssignOffsets) Append refuses a
// marker from an older producer epoch (ErrInvalidProducerEpoch) or an
// older coordinator epoch (ErrCoordinatorFenced), a non-transactional
// batch from a producer inside a transaction (ErrInvalidTxnState), and,
// with RequireVerification, a batch that would start a transaction
// without the producer's current verification guard (ErrInvalidTxnState,
// KIP-890). BeginVerification hands out the guard (kept per producer until
// a batch of the producer consumes it, a marker voids it, or
// producer.id.expiration.ms passes). Follower appends and recovery apply
// the same state changes without these checks. ExpireProducers and a
// moving log start never drop a producer with an ongoing transaction.
//
// LSO = max(log start offset, min(HW, first offset of every ongoing
// transaction, first offset of every completed transaction whose marker is
// at or above the HW)); without a known HW the log end offset replaces the
// HW and completed transactions do not count (Kafka's
// UnifiedLog.lastStableOffset and ProducerStateManager.firstUnstableOffset).
// The ongoing and unreplicated transactions are kept in offset order by a
// txnTracker with its own leaf lock (see Concurrency), so LastStableOffset
// takes neither Log.mu nor allocates: memory is one entry per ongoing
// transaction (at most one per producer) plus the completed ones the HW
// has not passed (at most 16384; past that the oldest two merge, which only
// holds the LSO back longer).
//
// Retention, DeleteRecordsBefore (ErrBeyondStableOffset above the LSO) and
// compaction never pass the LSO; AdvanceLogStartOffset, a follower
// following its leader's log start, may, and a transaction that then
// began below the log start holds the LSO at the log start until its
// marker arrives.
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
//	   4  magic "SPS2"
//	   8  offset: the state covers every batch below it
//	   4  number of producers, then per producer, sorted by id:
//	   8    producer id
//	   2    producer epoch
//	   8    MaxTimestamp of its newest batch (for producer.id.expiration.ms)
//	   4    coordinator epoch of its newest marker, -1 if none
//	   8    first offset of its ongoing transaction, -1 if none
//	   1    n (<= 5), then n times, oldest first:
//	  24      first sequence int32, last sequence int32,
//	          base offset int64, last offset int64
//	   4  number of completed transactions whose markers were not yet
//	      below the high watermark, then each, in marker order:
//	  16    first offset int64, marker offset int64
//	   4  CRC-32C of everything above
//
// Version 1 ("SPS1", written before transactions) lacks the two per
// producer transaction fields and the completed-transaction list; it is
// still read, as producers without transactions. Snapshots are written at
// every roll (without fsync; the checksum rejects a torn file), durably
// whenever a flush round moves the recovery point (at the new point, just
// before the point is written) or a truncation lowers it, and durably at
// Close. The newest two are kept, and the newest one at or below the
// recovery point, from which recovery replays.
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
//   - Every recovery point has a durable producer snapshot at or below it
//     and no lower than the first segment: a flush round writes one when
//     it moves the point, and retention or DeleteRecords that would delete
//     segments while the point lags behind the new first segment run a
//     flush round first (at most once per such pass).
//   - Aborted-transaction entries whose markers are below the recovery
//     point are durable (the flush round fsyncs a segment's .txnindex with
//     it); later ones are rebuilt from the batches at Open.
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
//     pass rows of the checkpoint). Records of aborted transactions (per
//     the .txnindex entries overlapping the pass, which also keeps them out
//     of the key map of step 1) are removed. A COMMIT or ABORT marker stays
//     while its transaction has records left; the first pass that finds it
//     alone stamps it with a KIP-534 delete horizon (attributes bit 6,
//     FirstTimestamp = now + delete.retention.ms, record timestamps
//     unchanged), and a pass after the horizon drops it, so a consumer that
//     read part of a transaction still finds its marker (Kafka's two-phase
//     marker removal). Other control batches, the newest batch of every
//     live idempotent producer (even of an aborted transaction, whose
//     marker and index entry then stay too) and a live producer's newest
//     marker of its current epoch are kept whole. Each output segment's
//     .txnindex holds the entries of the ABORT markers it keeps whose
//     transactions still have records. Batches whose records
//     all stay are copied byte for byte; thinned ones are rebuilt by the
//     filter with their base offset, LastOffsetDelta, producer fields,
//     attributes and timestamps unchanged. Offsets never change; a batch
//     left empty disappears, leaving a gap. A group left empty is merged
//     into a neighbour, so no two consecutive segments are empty;
//  3. writes each output as <base>.*.cleaned (always with a .txnindex,
//     possibly empty) and fsyncs it, then, with
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
// originals in [base, end) and renames the swap into place (its offset and
// time indexes are rebuilt; its .txnindex is kept: a remaining
// "<base>.txnindex.swap" is the new one and is renamed into place,
// otherwise the file under the final name already is). A crash thus leaves
// either every old or every new segment of a pass. Like the checkpoint files, this relies on rename(2) replacing
// its target atomically. Below compacted-to a segment may end before the
// next one starts; recovery does not take that for data lost in a crash
// (every such segment was fsynced by the cleaner). Truncation lowers the
// checkpoint first. With cleanup.policy=compact only, retention.ms and
// retention.bytes delete nothing; "compact,delete" applies both, and
// segment.ms is capped by max.compaction.lag.ms so the active segment
// cannot hold records past it.
//
// # The high watermark and the last stable offset bound retention and compaction
//
// Once a high watermark is known (set, or read at Open), records at or
// above it may still be truncated by the replication layer, and records at
// or above the last stable offset belong to transactions not yet decided
// (or decided by markers still above the HW), so neither retention nor
// the cleaner touches them: retention deletes a segment only when the next
// segment's base is at or below the LSO (Kafka's
// UnifiedLog.deleteOldSegments stops at the HW), whatever retention.ms or
// retention.bytes say, and a compaction pass only maps and rewrites
// segments that end at or below it (Kafka's cleaner stops at min(high
// watermark, last stable offset, active segment base)); a pass whose range
// the bound dropped into meanwhile is dropped at commit. In a Log whose HW
// was never known (-1), such as one used without replication, only the
// first offset of the earliest ongoing transaction bounds them.
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
//   - Producer state (ongoing transactions and completed ones above the
//     HW included) is loaded from the newest valid snapshot at or below
//     the recovery point and completed by re-reading the batch headers
//     after it, parsing markers. That replay also rebuilds the
//     aborted-transaction entries of every marker at or above the recovery
//     point (the part of the log recovery scans); below it the validated
//     .txnindex files are kept. A file torn at its tail (a partial entry,
//     zeros, or entries past its segment's recovered end) in a segment
//     that held data past the recovery point keeps its valid entries; one
//     damaged otherwise is rebuilt after its valid entries, from a
//     snapshot that early or by replaying the whole log. A missing file
//     means no entries, as in Kafka.
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
//	                  epoch cache, producer state, config, cleaner checkpoint,
//	                  segments' aborted-transaction indexes
//	Log.txns.mu       leaf: ongoing and unreplicated transactions; taken
//	                  under Log.mu by appends, truncation and snapshots, and
//	                  alone by LastStableOffset
//	Log.gc            leaf; elects the single flusher of a group commit
//
// Appends hold Log.mu for the write system call only (and the
// .txnindex write of an ABORT marker); fsyncs run with Log.mu released.
// SetHighWatermark takes no lock (an atomic store clamped against the
// atomic log end offset); everything that reads the HW for retention,
// compaction or its checkpoint clamps it again under Log.mu.
// LastStableOffset reads the atomic log end offset, HW and log start
// offset and, only while transactions are in flight, the tracker under
// its leaf lock; an append records a transaction it starts before it
// publishes the new log end offset, so an LSO computed from that end
// offset accounts for the transaction. Reads take Log.mu just long enough to reference the
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
//	// read_committed: up to the LSO, with the aborted transactions read.
//	lso := l.LastStableOffset()
//	sp, scratch, err := l.ReadSpan(fetchOffset, maxBytes, lso, scratch)
//	aborted, err := l.AppendAbortedTransactions(buf[:0], fetchOffset, sp.NextOffset)
//	go st.Run(ctx)
//	defer st.Close()
package storage
