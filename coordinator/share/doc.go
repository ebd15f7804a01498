// Package share is the share-partition state machine of KIP-932 (queues
// for Kafka): for one share group on one topic-partition, the in-flight
// window of records between the share-partition start offset and end
// offset, each Available, Acquired (by one member, until its lock
// expires), Acknowledged, Archiving (KIP-1191: waiting for its dead-letter
// write) or Archived, with its delivery count.
//
// It has no sockets, files, goroutines or clock of its own: the broker
// reads the log, passes the batches in, persists State through the share
// coordinator, writes dead letters, and arms a timer for NextDeadline.
//
// # Record states
//
//	offset new to the window (in a log read)
//	  |
//	  |-- control or aborted batch, or absent (compacted) -----> ARCHIVED
//	  |
//	  v  Acquire: count+1, locked until now+LockDuration
//	ACQUIRED <------------------------------------------+
//	  |  Renew: locked until now+LockDuration            |
//	  |                                                  |
//	  |-- Accept ---------------------------> ACKNOWLEDGED
//	  |-- Gap -------------------------------> ARCHIVED  |
//	  |-- Release, lock expiry, member gone:             | Acquire (backoff
//	  |     count < limit -------------------> AVAILABLE-+ over): count+1
//	  |                  (NotBefore = now+backoff) |
//	  |     count = limit --+                      | absent from the log -> ARCHIVED
//	  |-- Reject -----------+                      | count at a lowered limit --+
//	                        v                                                  |
//	          dead-letter topic ? ARCHIVING : ARCHIVED  <----------------------+
//	                        |
//	                        +-- DeadLettered (the DLQ write is durable) --> ARCHIVED
//
// ACKNOWLEDGED and ARCHIVED are done; the start offset (SPSO) moves past
// the leading run of done records and the window forgets them. ARCHIVING
// is not done: it holds the start offset until its dead-letter write.
//
// # Invariants
//
//   - The window is [StartOffset, end): one entry per offset, so its memory
//     is bounded by its span. Acquire adds a record only while the records
//     not yet done (Available, Acquired, Archiving) number fewer than
//     MaxRecordLocks, and never lets the span exceed four times
//     MaxRecordLocks; when the window is full and nothing in it is
//     Available, FetchOffset says so and Acquire does nothing. Records
//     inside a full window can still be acquired again. (Kafka bounds the
//     span, endOffset - startOffset + 1, by MaxRecordLocks itself, so
//     members that acknowledge ahead of the one holding the window's head
//     wait for it; Sluice lets them go on.)
//   - A record is Acquired by at most one member; only that member's acks
//     change it; an Acknowledged record is never acquired again.
//   - The delivery count only grows, by one per acquisition, and never
//     passes DeliveryLimit: a failed delivery (release, lock expiry, member
//     gone) at the limit archives the record (or dead-letters it), and an
//     Available record already at the limit (the limit was lowered) is
//     archived instead of acquired.
//   - Acknowledge validates every batch and every offset first and changes
//     nothing when it returns an error. Its work is the request's size plus
//     the part of the window the batches overlap; no loop runs over a
//     range the request names but the window does not hold.
//   - Offsets below StartOffset are done. An offset a log read proves absent
//     (compacted away: between two batches of one read, or before the first
//     one from the offset the read started at) is archived.
//   - State shows Acquired records as Available with their delivery count
//     (an acquisition does not survive a restart), so New(cfg, State())
//     delivers again what was acquired; Version grows with every change
//     State would show (a lock renewal or a release without backoff shows
//     none).
//
// # Beyond and unlike Kafka
//
//   - Backoff (Sluice): a failed delivery makes the record Available only at
//     NotBefore = now + Initial*Multiplier^(count-1) (capped at Max), kept
//     in State. It applies to every failed delivery: Release acks, lock
//     expiry and a member's records released when its session ends (a
//     poison record that crashes its consumer must not go straight to the
//     next one). Expire ends backoffs whose time came (NextDeadline includes
//     them) so the broker's timer can wake waiting fetches.
//   - Archiving and the dead-letter cursor (KIP-1191, with Sluice's
//     idempotent producer cursor): Reject, and failures at the delivery
//     limit, go to Archiving when the group has a dead-letter topic.
//     State does not carry the reason: after a restart an Archiving record
//     below the delivery limit is reported Rejected, one at the limit as
//     out of deliveries. Turning the dead-letter topic off archives the
//     waiting records.
//   - Kafka acquires the offsets between the log batches it read (and the
//     client acks them as gaps); this package archives offsets a read
//     proves absent at once and delivers only the offsets inside batches.
//     Offsets inside a batch whose records compaction removed are delivered
//     in the acquired range and acked by the client as gaps, as in Kafka. A
//     Gap ack for an offset the member does not hold is ignored.
//   - Control and aborted (read_committed) batches are archived at
//     acquisition, as Kafka's acquisition filter does.
//   - Offsets of an ack below StartOffset are skipped, as Kafka 4.2 skips
//     them; a batch reaching past the window end is INVALID_REQUEST, as
//     Kafka answers. A Renew is accepted here wherever it appears; whether
//     the request may carry it (ShareAcknowledge/ShareFetch IsRenewAck) is
//     the broker's check, with ValidateAcks(acks, AckReject).
//   - Isolation of failing records, as Kafka 4.2 does it (KAFKA-17541):
//     from half the delivery limit (rounded up, at least 2) deliveries on,
//     a record is acquired only at the head of a group of at most
//     batch size >> (count - that + 1) records; on its last attempt (limit
//     above 2) it goes alone. A poison record then takes few others with
//     it to the delivery limit.
//   - A member's records released when its session ends keep the delivery
//     count of their acquisition (Kafka 4.2, KAFKA-19972; 4.1 decremented
//     it).
//   - AdvanceLogStart drops every record below the log start, Archiving
//     ones too: their payload is gone, so no dead letter can be written.
//   - Stats.OldestAvailable is when the oldest Available record in the
//     window became available: its release, lock expiry or backoff end
//     (in the future while the backoff lasts: clamp the age at zero);
//     after New, the first clock reading (the time is not durable).
//     Records past the window end (not yet read) are not counted: their
//     age comes from the log's timestamps.
//   - Config values zero or below take Kafka's defaults (30s lock, delivery
//     limit 5, 2000 record locks).
package share
