// Package group is Sluice's consumer-group coordinator: Kafka's group
// coordinator for the __consumer_offsets partitions this broker leads, as a
// component with no sockets and no files of its own.
//
// It implements the classic group protocol (JoinGroup, SyncGroup, Heartbeat,
// LeaveGroup, with KIP-345 static membership and KIP-394 member ids), the
// KIP-848 consumer protocol (ConsumerGroupHeartbeat, ConsumerGroupDescribe,
// with the server-side "uniform" and "range" assignors), committed offsets
// (OffsetCommit, OffsetFetch, OffsetDelete, KIP-211 expiry), transactional
// offsets (TxnOffsetCommit, with KIP-447 fencing and KIP-890 verification,
// and CompleteTxn for the transaction markers), KIP-932 share-group
// membership (ShareGroupHeartbeat, ShareGroupDescribe, with the "simple"
// share assignor; record delivery is the partition leaders', see
// coordinator/share) and group administration (DescribeGroups, ListGroups,
// DeleteGroups). Each handler takes the
// decoded kmsg request and returns the kmsg response with Kafka's error
// codes filled in; it never returns a Go error. Each lives in its own file
// whose header lists versions and KIPs.
//
// The broker owns everything around it: it forwards requests, implements
// Persister by appending to __consumer_offsets with acks=all (PersistTxn as
// a transactional batch of the producer), implements TxnVerifier by asking
// the transaction coordinator, answers FindCoordinator with PartitionFor
// (Kafka's exact hash, so Sluice and Kafka agree on where a group lives),
// calls BeginLoad/Load/Unload as leadership of __consumer_offsets
// partitions moves, and writes every transaction marker bound for a
// __consumer_offsets partition through CompleteTxn. A request for a group
// whose partition is not loaded gets NOT_COORDINATOR; while it loads,
// COORDINATOR_LOAD_IN_PROGRESS; after Close, COORDINATOR_NOT_AVAILABLE.
//
// # Classic group states
//
//	                a member joins
//	Empty -----------------------------------> PreparingRebalance <-----------+
//	  ^  <------------------------------------   |                            |
//	  |     the join phase ends with nobody      | every member rejoined (or  |
//	  |                                          | the rebalance timeout      |
//	  |                                          | dropped those that did     |
//	  |                                          | not); generation + 1       |
//	  |                                          v                            |
//	  |                                 CompletingRebalance ------------------+
//	  |                                          |         a member joins,    |
//	  |   the leader's SyncGroup assignment      |         leaves, expires,   |
//	  |   is durable; everyone gets theirs       |         changes protocols, |
//	  |                                          v         misses SyncGroup,  |
//	  |                                       Stable -------------------------+
//	  |                                                    or the write fails
//	  +---> Dead: DeleteGroups, or an Empty group lost its last offset to
//	        expiry. A dead group is forgotten; its records are tombstoned.
//
// Generations only grow. A member whose session lapses (no Heartbeat,
// JoinGroup, SyncGroup or OffsetCommit for session.timeout.ms) is removed,
// except while it is parked in JoinGroup or SyncGroup. The join phase lasts
// until every member (and every member id handed out with
// MEMBER_ID_REQUIRED) has joined, or the largest rebalance timeout of the
// members passes; a Stable group's members learn of a rebalance from
// REBALANCE_IN_PROGRESS on Heartbeat. Protocol selection is Kafka's vote
// among the protocols every member supports.
//
// # KIP-848 groups
//
// A KIP-848 group has a group epoch, bumped whenever a member joins or
// leaves, a subscription or assignor changes, or the metadata of a
// subscribed topic changes (checked on every heartbeat). Each bump computes
// a new target assignment. Every member then reconciles on its own
// heartbeats:
//
//	Stable ---- the group epoch moves past the member's ----+
//	  ^                                                      v
//	  |                                 holds partitions outside its target?
//	  |                                   | yes                       | no
//	  |                                   v                           |
//	  |              Unrevoked: keeps its epoch until its             |
//	  |              heartbeat stops listing them, which frees them --+
//	  |                                                               v
//	  |                          epoch := target epoch; takes every target
//	  |                          partition no other member holds
//	  |                                   | all taken     | some still held
//	  +-----------------------------------+               v
//	  |                               Unreleased: takes them on later
//	  +------------------------------ heartbeats as they are freed
//
// A partition is held by the member it is assigned to, and stays held while
// that member revokes it; it is handed to a new member only once freed, so no
// partition is ever held by two members. A member that does not revoke
// within its rebalance timeout, or misses its session
// (group.consumer.session.timeout.ms), is removed. Epoch -1 leaves; a static
// member's epoch -2 parks it with its assignment until its session ends, and
// a new process with the same group.instance.id takes that assignment over
// without a rebalance.
//
// # Share groups (KIP-932)
//
// A share group is a third kind beside classic and KIP-848 groups, with
// its own group epoch, bumped when a member joins, leaves or expires, a
// subscription changes, or a subscribed topic's metadata changes. Each bump
// recomputes the assignment at once; a partition may be assigned to several
// members (ceil(members/partitions) each), since the partition leader hands
// out records, not partitions, to share consumers. There is no revocation:
// a member moves to the group epoch and its new assignment on its next
// heartbeat. States are Empty and Stable. Session timeout, heartbeat
// interval and the size limit come from Config.ShareSettings per group.
//
// Share groups never change kind: ShareGroupHeartbeat on a classic or
// consumer group, and ConsumerGroupHeartbeat on a share group, get
// GROUP_ID_NOT_FOUND; JoinGroup on a share group INCONSISTENT_GROUP_PROTOCOL;
// OffsetCommit, TxnOffsetCommit, OffsetFetch and OffsetDelete on a share
// group GROUP_ID_NOT_FOUND (Kafka's ShareGroup.validateOffset*). An empty
// share group stays until DeleteGroups (offset expiry never removes it);
// ShareGroup reports its last subscribed topics so the broker can delete its
// share state with it.
//
// # Records in __consumer_offsets
//
// Keys start with an int16 record type (Kafka calls it the key version).
// Strings in Sluice records are an int16 length and bytes (-1: null); all
// integers are big-endian.
//
//	type    key                          value                           written
//	------  ---------------------------  ------------------------------  ----------------------------------
//	0, 1    OffsetCommitKey v1           OffsetCommitValue v3 (v1 when   each acknowledged commit, also
//	        group, topic, partition      a v2-v4 commit set retention)   transactional ones; nil by
//	                                                                     OffsetDelete, DeleteGroups, expiry
//	2       GroupMetadataKey v2: group   GroupMetadataValue v3           classic: the leader's assignment,
//	                                                                     becoming Empty, a static member
//	                                                                     replaced; nil when deleted
//	0x7F00  type, group                  Sluice consumer group, v0       KIP-848 group epoch, target epoch,
//	                                                                     assignor or topic metadata changed
//	0x7F01  type, group, member id       Sluice consumer member, v0      any change of the member; nil when
//	                                                                     it leaves or the group is deleted
//	0x7F02  type, group                  Sluice share group, v0          share group epoch bumped; nil when
//	                                                                     the group is deleted
//
// The Sluice values (kmsg has no ConsumerGroup* record types):
//
//	consumer group v0: int16 version=0 | int32 group epoch |
//	    int32 target assignment epoch | string assignor |
//	    int32 n, n x (string topic | 16-byte topic id | int32 partitions)
//	consumer member v0: int16 version=0 | string? instance id |
//	    string? rack id | string client id | string client host |
//	    int32 member epoch | int32 previous member epoch |
//	    int8 state (0 stable, 1 unrevoked, 2 unreleased) |
//	    int32 rebalance timeout ms | string server assignor | string regex |
//	    int32 n, n x string subscribed topic |
//	    int32 n, n x (16-byte topic id | int32 partition | int32 epoch)  assigned |
//	    int32 n, n x (16-byte topic id | int32 partition)                revoking |
//	    int32 n, n x (16-byte topic id | int32 partition)                target
//	share group v0: int16 version=0 | int32 group epoch |
//	    int32 n, n x string subscribed topic (the members' union; kept
//	    when the last member leaves)
//
// Share members are not persisted (Kafka's loader keeps none either; its
// share record types 9-15 are ignored like its KIP-848 ones): a loaded
// share group is Empty at its epoch, and members that heartbeat with their
// old epoch get UNKNOWN_MEMBER_ID and join again.
//
// TxnOffsetCommit writes the same offset records in a transactional batch
// of the producer. A transaction marker (a control batch) has no record of
// this package's: the RecordSource yields it as a Record with Marker and
// ProducerID set.
//
// Load replays a partition in log order: later records replace earlier ones
// and nil values delete. Records of other types (Kafka's own KIP-848
// records) are ignored; records that do not parse are skipped and counted
// in the load log line. A group whose classic and KIP-848 records are both
// live (a switch of kind whose tombstone was lost) loads as KIP-848 and
// tombstones the other on its next write.
//
// # Transactional offsets
//
// Offsets of a transactional batch are pending, per group, producer id and
// partition, until a marker of that producer follows in the same partition:
// COMMIT makes each the committed offset unless the partition's committed
// offset was written after it (Kafka compares the two records' log
// offsets, so the outcome survives compaction), ABORT drops them. An offset
// tombstone drops every producer's pending offset for the partition too
// (OffsetDelete, DeleteGroups: the marker then brings nothing back).
// Pending offsets still open when a load ends stay pending; their markers
// come later through CompleteTxn. A marker of a producer with nothing
// pending changes nothing.
//
// Memory keeps the same order: every offset record applied gets the next
// position of its partition (a load numbers the records it replays, and
// later writes continue from there; writes to one partition are
// serialized), and a COMMIT compares positions. OffsetFetch with
// require_stable answers UNSTABLE_OFFSET_COMMIT for a partition with a
// pending offset of any producer, or a commit still being written; without
// it, the last committed offset. A pending offset keeps its partition's
// committed offset from expiring and its group from being deleted by
// expiry; a committed transactional offset ages from its TxnOffsetCommit,
// whose time its record carries. DeleteGroups does not wait for pending
// offsets (Kafka neither): it tombstones their partitions.
//
// # Durability
//
// OffsetCommit, OffsetDelete and DeleteGroups answer after Persist returned
// nil, TxnOffsetCommit after PersistTxn did (its offsets are then pending,
// not committed), and CompleteTxn applies a marker to memory only after its
// write returned nil; on an error every affected partition or group gets
// the mapped code (Kafka's mapping: COORDINATOR_NOT_AVAILABLE,
// NOT_COORDINATOR, INVALID_COMMIT_OFFSET_SIZE; see txn_offset_commit.go
// for TxnOffsetCommit's). A classic generation's assignment is written
// before any SyncGroup is answered; if that fails the members get the error
// and the group rebalances. KIP-848 heartbeats that change the group answer
// after the change is written. Changes made by timers (sessions expiring,
// a group turning Empty) are written in the background; a failed background
// write is logged and retried with the group's next change, and a reload in
// between brings back the previous generation, whose members then expire.
// Memory can be ahead of the log after a failed metadata write (never for
// offsets): the answer carries an error and clients retry.
//
// # Concurrency
//
// A Coordinator is safe for concurrent use by any number of connections.
//   - One mutex (Coordinator.mu) guards all group state. It is never held
//     while calling Persist or while a handler waits.
//   - JoinGroup and SyncGroup park on a channel until their phase completes;
//     ctx ending releases the caller (the member stays parked, as in Kafka,
//     and is dropped by the rebalance or sync deadline). Unload answers parked
//     requests NOT_COORDINATOR, Close COORDINATOR_NOT_AVAILABLE.
//   - Writes to one __consumer_offsets partition are serialized by a
//     per-partition mutex held from building the records to applying the
//     result, so the log and memory agree on their order. Lock order: the
//     partition's write mutex, then Coordinator.mu. Persist calls for one
//     partition never overlap; calls for different partitions may.
//   - CompleteTxn holds the partition's write mutex across the marker
//     write and applies the marker before releasing it, so no offset write
//     of the partition can fall between the marker in the log and the
//     marker in memory. TxnVerifier is called with no lock held; a marker
//     of the producer written to the partition meanwhile makes the commit
//     verify again, so its offsets never land after a marker of the
//     transaction the verification saw (KIP-890's verification guard).
//   - Group metadata is written as a snapshot taken under the write mutex,
//     so concurrent changes to one group coalesce into one write and the
//     log always ends with the newest state.
//   - Each group has at most one clock timer, armed for its earliest
//     deadline; a firing handles every deadline that has passed. Handling is
//     keyed on deadlines stored in the group, so late or duplicate callbacks
//     are harmless. Close waits for callbacks that are running.
//   - Persister, TxnVerifier, TopicMetadata, ListTopics and CompleteTxn's
//     write must not call into the Coordinator; TopicMetadata and
//     ListTopics are called with the lock held.
//   - Requests must not alias buffers the broker reuses after the handler
//     returns (decode with ReadFrom, not UnsafeReadFrom); byte slices that
//     are kept are copied anyway.
//
// # Differences from Kafka
//
//   - A ConsumerGroupHeartbeat with a non-zero epoch for a group this
//     coordinator does not know gets UNKNOWN_MEMBER_ID, not
//     GROUP_ID_NOT_FOUND, so clients rejoin after a coordinator move.
//   - A known KIP-848 member that joins again with epoch 0 starts over
//     (its partitions are freed and reassigned) instead of being fenced.
//   - OffsetCommit from a KIP-848 member with an older epoch is accepted for
//     partitions it already held at that epoch (as KIP-1251 proposes).
//   - Only empty groups change between classic and KIP-848; there is no
//     online migration of a group with members.
//   - A ShareGroupHeartbeat with a non-zero epoch for an unknown group gets
//     UNKNOWN_MEMBER_ID, not GROUP_ID_NOT_FOUND, as for KIP-848 groups; a
//     known share member that joins again with epoch 0 starts over instead
//     of being fenced.
//   - Share members are not written to __consumer_offsets, so a reloaded
//     share group is Empty (and deletable) until its members rejoin.
//   - Writes are one Persist per change, not batched across groups; the
//     "uniform" assignor is sticky but not rack-aware; "range" is not sticky.
//   - CompleteTxn writes a marker whether or not the partition is loaded
//     here, and applies a marker written while the partition loads when the
//     load completes; Kafka's coordinator refuses markers for a shard it
//     has not loaded, and the transaction coordinator retries.
//   - A marker that races a TxnOffsetCommit's verification makes it verify
//     again (at most three times, then COORDINATOR_LOAD_IN_PROGRESS);
//     Kafka invalidates the verification guard in the log instead.
//   - TxnOffsetCommit is checked for NOT_COORDINATOR and
//     COORDINATOR_LOAD_IN_PROGRESS, and unknown topics, before it is
//     verified; Kafka verifies first. A negative producer id gets
//     INVALID_PRODUCER_ID_MAPPING even without a TxnVerifier.
//   - An oversized TxnOffsetCommit write gets INVALID_COMMIT_OFFSET_SIZE, as
//     OffsetCommit does (the old coordinator's mapping); Kafka 4's
//     coordinator answers UNKNOWN_SERVER_ERROR.
//
// # Example
//
//	c, err := group.New(group.Config{
//		Persister:             offsetsTopic, // appends to __consumer_offsets, acks=all
//		Logger:                log,
//		InitialRebalanceDelay: group.DefaultInitialRebalanceDelay,
//		TopicMetadata:         topics.Lookup,
//	})
//	...
//	token := c.BeginLoad(p)            // became leader of __consumer_offsets-p
//	err := c.LoadFrom(token, stream(p)) // replay its log, one record at a time
//	...
//	ctx = group.WithClient(ctx, hdr.ClientID, conn.RemoteAddr().String())
//	resp := c.JoinGroup(ctx, req.(*kmsg.JoinGroupRequest))
//	...
//	// WriteTxnMarkers for __consumer_offsets-p:
//	err = c.CompleteTxn(ctx, p, m.ProducerID, m.Committed, func(ctx context.Context) error {
//		return appendMarker(ctx, p, m) // the control batch, acks=all
//	})
package group
