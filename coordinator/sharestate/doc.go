// Package sharestate is Sluice's share coordinator: the durable state of
// share-partitions (KIP-932), Kafka's ShareCoordinator, for the
// __share_group_state partitions this broker leads, as a component with no
// sockets and no files of its own, built like packages group and txn.
//
// A share-partition (a share group reading one topic-partition, share.Key)
// is served by the leader of its topic-partition, which keeps the in-flight
// window in memory (package share) and stores its durable part
// (share.State) here, keyed by Kafka's coordinator key
// "group:topicId:partition" (CoordinatorKey) hashed onto
// share.coordinator.state.topic.num.partitions partitions (PartitionFor).
//
// It implements InitializeShareGroupState (key 83), ReadShareGroupState
// (84), WriteShareGroupState (85, v0-1), DeleteShareGroupState (86) and
// ReadShareGroupStateSummary (87, v0-1). Each handler takes the decoded
// kmsg request and returns the kmsg response with Kafka's error codes per
// partition; none returns a Go error.
//
// The broker owns everything around it: it routes the requests of
// partition leaders (in process or from peers), implements Persister by
// appending to __share_group_state with acks=all, and calls
// BeginLoad/LoadFrom/Unload as leadership of __share_group_state
// partitions moves. A key whose partition is not loaded gets
// NOT_COORDINATOR; while it loads, COORDINATOR_LOAD_IN_PROGRESS; after
// Close, COORDINATOR_NOT_AVAILABLE.
//
// # Semantics
//
//   - State epoch: raised by InitializeShareGroupState (which must name a
//     newer one: AlterShareGroupOffsets), it fences writes of an older one
//     (FENCED_STATE_EPOCH), so a partition leader that missed the change
//     reads the new state. A write naming a newer state epoch replaces the
//     state whole.
//   - Leader epoch: the partition leader's epoch. A write or read naming an
//     older one than stored gets FENCED_LEADER_EPOCH (-1 names none and is
//     not checked). A read naming a newer one records it (one update
//     record) before answering, so the previous leader's writes are fenced
//     from then on, as Kafka 4's readStateAndMaybeUpdateLeaderEpoch.
//   - Write: the sent batches replace the stored ones over the offsets
//     they cover (Kafka's PersisterStateBatchCombiner), and offsets below
//     the new start offset are dropped (-1 or a lower start offset: kept).
//     Sent batches that overlap each other are resolved by first offset,
//     the later-starting one winning from its first offset. Adjacent runs
//     with equal state, delivery count and NotBefore are joined.
//   - Delete tombstones both keys of a share-partition.
//
// # Records in __share_group_state
//
// The fields of Kafka's share-coordinator schemas (ShareSnapshotKey/Value,
// ShareUpdateKey/Value) as first written for KIP-932, with the key's
// leading int16 naming the record type as Kafka's coordinator records do.
// Released Kafka versions added fields to these values, so Kafka's tools
// are not expected to read this log, nor Sluice a log Kafka wrote.
// Integers are big-endian; values are flexible (compact arrays, tagged
// fields).
//
//	key    int16 type (0 snapshot, 1 update) | string group id (int16 length) |
//	       uuid topic id | int32 partition
//	snapshot value (v0):
//	       int16 version=0 | uint16 snapshot epoch | int32 state epoch |
//	       int32 leader epoch | int64 start offset |
//	       compact array state batches: (int64 first offset | int64 last offset |
//	         int8 delivery state | int16 delivery count |
//	         tags: 0x5100 NotBefore) |
//	       tags: 0x5101 dead-letter producer
//	update value (v0):
//	       int16 version=0 | uint16 snapshot epoch | int32 leader epoch |
//	       int64 start offset (-1: unchanged) | state batches as above | tags as above
//	tombstone: a key with a null value
//
// Sluice's tagged fields (ignored by Kafka's decoders):
//
//	0x5100 (TagNotBefore)   on a state batch: the end of its redelivery
//	                        backoff, unix ms, unsigned varint
//	0x5101 (TagDeadLetter)  on a share-partition: int64 producer id |
//	                        int16 producer epoch | int32 next sequence
//
// The same tags travel on the batches and partitions of
// Read/WriteShareGroupState (WritePartition, StateFromRead).
//
// Unlike Kafka, whose update records hold only the batches of one write,
// every update record holds everything changed since the key's snapshot
// (the leader epoch, the start offset if it moved, the merged batches and
// the dead-letter producer), so a compacted log that kept only the latest
// snapshot and the latest update of a key rebuilds the same state. A
// write is a snapshot when the key is new, its state epoch changed, it is
// the Config.SnapshotEvery-th update since the snapshot, or the delta grew
// as large as the state (at least 16 batches): the records of a key stay
// bounded by about twice its state. An update names its snapshot's epoch;
// a load skips an update of another snapshot epoch (one compaction left
// behind a newer snapshot).
//
// # Durability and concurrency
//
// One mutex (Coordinator.mu) guards all state; it is never held while
// calling Persist or while a handler waits. Each loaded partition has one
// writer goroutine: it takes the queued operations, decides each against
// the durable state as the earlier operations of the same batch leave it
// (validation and fencing happen here, so concurrent writers of one key
// are ordered), persists their records as one Persist (group commit, up
// to 512 KiB), and only then installs the new states. A failed Persist
// changes nothing in memory; its callers get NOT_COORDINATOR or
// COORDINATOR_NOT_AVAILABLE, which partition leaders retry. Installed
// entries are never modified, so reads copy nothing under the lock.
// Unload and BeginLoad cancel the writer and wait for it.
//
// # Hostile input
//
// A (topic id, partition) named twice in a request is answered once. A
// write with more than Config.MaxBatches batches, or whose merge would
// store more, gets INVALID_REQUEST, as do negative or reversed offsets,
// unknown delivery states, negative delivery counts, bad tag values, a
// start offset below -1, an empty group id, a zero topic id and a negative
// partition. The record decoder allocates no more batches than the bytes
// can hold.
//
// # Differences from Kafka
//
//   - Update records are cumulative since the snapshot (above), and the
//     topic is compacted; Kafka prunes its delete-policy topic instead.
//   - The coordinator does not check that the topic and partition exist
//     (Kafka answers UNKNOWN_TOPIC_OR_PARTITION from its metadata image);
//     the broker checks before it sends.
//   - The v1 delivery complete count of a write is recomputed from the
//     batches rather than stored as sent.
//
// # Example
//
//	c, err := sharestate.New(sharestate.Config{Persister: stateTopic})
//	token := c.BeginLoad(p)                    // became leader of __share_group_state-p
//	err = c.LoadFrom(token, stream(p))         // replay its log
//	resp := c.WriteShareGroupState(ctx, req)   // from a partition leader
package sharestate
