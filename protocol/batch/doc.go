// Package batch is a zero-copy view over a Kafka v2 record batch (magic 2,
// KIP-98): it parses and validates the fixed 61-byte header, checks the
// CRC-32C, patches the fields a broker rewrites, and splits a blob of
// concatenated batches. It never decodes or decompresses records; that is the
// job of package protocol. It imports nothing outside the standard library so
// that storage can depend on it without pulling in kmsg.
//
// # Layout
//
// All integers are big endian. Offsets are byte positions from the start of
// the batch.
//
//	offset  size  field                 covered by CRC  rewritten by the broker
//	------  ----  --------------------  --------------  ------------------------
//	     0     8  BaseOffset            no              SetBaseOffset (leader)
//	     8     4  Length                no              -
//	    12     4  PartitionLeaderEpoch  no              SetPartitionLeaderEpoch
//	    16     1  Magic (= 2)           no              -
//	    17     4  CRC (CRC-32C)         no              SetLogAppendTime
//	    21     2  Attributes            yes             SetLogAppendTime (bit 3)
//	    23     4  LastOffsetDelta       yes             -
//	    27     8  FirstTimestamp        yes             -
//	    35     8  MaxTimestamp          yes             SetLogAppendTime
//	    43     8  ProducerID            yes             -
//	    51     2  ProducerEpoch         yes             -
//	    53     4  BaseSequence          yes             -
//	    57     4  NumRecords            yes             -
//	    61     -  records (maybe compressed)  yes       -
//
// Length counts the bytes after the Length field, so a whole batch is
// 12 + Length bytes. The CRC covers everything from Attributes to the end of
// the batch, which is why the leader can assign offsets and stamp its epoch
// without recomputing it (Kafka's DefaultRecordBatch does the same).
//
// Attributes: bits 0-2 compression codec, bit 3 timestamp type
// (1 = LogAppendTime), bit 4 transactional, bit 5 control, bit 6 delete
// horizon set (KIP-534: FirstTimestamp is then the time after which the log
// cleaner may drop the batch's tombstones, or a control batch itself; see
// Header.DeleteHorizon and SetDeleteHorizon).
//
// # Control batches (transaction markers)
//
// A control batch (bit 5) is never compressed and holds one record, laid
// out as every v2 record (varints are zigzag, as in protobuf's sint):
//
//	varint  length of the rest of the record
//	int8    attributes (unused)
//	varint  timestamp delta      (from FirstTimestamp)
//	varint  offset delta
//	varint  key length, then the key, a ControlRecordKey:
//	          int16 version (0; later versions only append fields)
//	          int16 type: 0 ABORT, 1 COMMIT (other values: other control
//	                records, e.g. KRaft's; ParseMarker reports
//	                ErrUnknownControlType so callers ignore them)
//	varint  value length, then the value, an EndTxnMarker:
//	          int16 version (0)
//	          int32 coordinator epoch
//	varint  header count, then the headers (none in practice)
//
// ParseMarker reads it without kmsg, bounds-checking every length.
//
// # Invariants
//
// Check accepts b only when b is exactly one batch: Length matches len(b),
// magic is 2, the CRC matches, and LastOffsetDelta and NumRecords are not
// negative. No function in this package panics on any input; functions that
// write into b (Set*) require len(b) >= HeaderSize and do nothing otherwise.
//
// # Example
//
//	for len(blob) > 0 {
//		b, rest, err := batch.Next(blob)
//		if err != nil {
//			return err // batch.ErrShort: the tail is torn
//		}
//		h, err := batch.Check(b)
//		if err != nil {
//			return err
//		}
//		_ = h.LastOffset()
//		blob = rest
//	}
package batch
