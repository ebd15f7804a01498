// Package txn is Sluice's transaction coordinator: Kafka's
// TransactionCoordinator (KIP-98, KIP-360, KIP-447, KIP-664, KIP-890) for the
// __transaction_state partitions this broker leads, as a component with no
// sockets and no files of its own, built like package group.
//
// It implements InitProducerId for transactional producers, AddPartitionsToTxn
// (v0-3 from clients, v4-5 from partition leaders verifying or adding a
// partition, KIP-890), AddOffsetsToTxn, EndTxn (transaction versions 0/1 and
// 2), DescribeTransactions and ListTransactions. Each handler takes the
// decoded kmsg request and returns the kmsg response with Kafka's error codes;
// it never returns a Go error. Each lives in its own file whose header lists
// versions and KIPs.
//
// The broker owns everything around it: it forwards requests (after
// authorization), implements Persister by appending to __transaction_state
// with acks=all, MarkerWriter by sending WriteTxnMarkers to partition
// leaders, and ProducerIDs with the cluster's producer id blocks; it answers
// FindCoordinator (key type 1) with PartitionFor, and calls
// BeginLoad/LoadFrom/Unload as leadership of __transaction_state partitions
// moves, passing the partition's leader epoch as the coordinator epoch. A
// request for an id whose partition is not loaded gets NOT_COORDINATOR; while
// it loads, COORDINATOR_LOAD_IN_PROGRESS; after Close,
// COORDINATOR_NOT_AVAILABLE.
//
// # States
//
// One state machine per transactional id (Kafka's TransactionState; the
// number is what __transaction_state stores):
//
//	          InitProducerId (new id: a new producer id, epoch 0;
//	          known id: epoch + 1, or a new producer id at the exhausted epoch)
//	(none) ---------------------------------> Empty(0) <----------------------------+
//	                                            |                                  |
//	          AddPartitionsToTxn, AddOffsetsToTxn, produce v12 (v5 add)            |
//	                                            v                                  |
//	              +------------------------ Ongoing(1) -----------------------+     |
//	              | EndTxn(commit)              |                             |     |
//	              v                             | EndTxn(abort), timeout,     |     |
//	      PrepareCommit(2)                      | InitProducerId of another   |     |
//	              | markers written             | instance (fencing)          |     |
//	              v                             v                             |     |
//	      CompleteCommit(4)             PrepareAbort(3) <-- EndTxn v5 abort   |     |
//	              |                             | markers    with nothing     |     |
//	              |                             v            ongoing          |     |
//	              |                     CompleteAbort(5)                      |     |
//	              +----------------+------------+                             |     |
//	                               | AddPartitions (next transaction) --------+     |
//	                               +-- InitProducerId ------------------------------+
//	Dead(6): an id idle for transactional.id.expiration.ms, in Empty or
//	         Complete*, is tombstoned and forgotten (never written as a state).
//	PrepareEpochFence(7): Kafka's in-memory marker for a fence under way;
//	         Sluice goes straight to PrepareAbort (never written).
//
// With transaction version 2 (EndTxn v5) every EndTxn bumps the epoch: the
// Prepare* record carries epoch+1, the markers carry it, and the response
// gives it to the client. Under versions 0/1 the epoch only changes in
// InitProducerId. The coordinator's own aborts (timeouts, fencing) follow
// version 2, the level Sluice finalizes: one bump, carried by the markers,
// which fences the producer. Epochs stop at Short.MaxValue-1 for clients:
// the bump after that rotates to a new producer id with epoch 0, in
// InitProducerId directly, at the end of a transaction through the
// NextProducerId field (Prepare* at epoch MaxValue names it; Complete*
// switches to it).
//
// # Records in __transaction_state
//
// Kafka's own schemas (kmsg.TxnMetadataKey, kmsg.TxnMetadataValue), so
// Kafka's tools read Sluice's log and a log Kafka wrote loads here. Integers
// are big-endian; the value is a flexible version (compact strings and
// arrays, tagged fields).
//
//	key   (TransactionLogKey v0):   int16 version=0 | string transactional id
//	value (TransactionLogValue v1): int16 version=1 | int64 producer id |
//	      int16 producer epoch | int32 timeout ms | int8 state |
//	      compact array? partitions: (compact string topic | compact array
//	        int32 partition | tags) -- null in Empty, [] in Complete* |
//	      int64 last update ms | int64 start ms (-1: none) |
//	      tags: 0 previous producer id (default -1), 1 next producer id
//	        (default -1), 2 client transaction version (default 0)
//	tombstone: the key with a null value, for an expired id
//
// Every transition writes one record for its id; the record is the whole
// state, so LoadFrom keeps the last per key. Records of other key versions,
// values that do not parse or name the Dead state as a value are skipped (a
// Dead value deletes, as a tombstone does); the load log line counts them.
// Kafka does not write the last epoch either: after a load it is -1, so a
// KIP-360 retry that crosses a coordinator move is fenced, as in Kafka.
//
// # Durability
//
// Every transition is decided under the lock from the durable state,
// marks the id pending (Kafka's pendingState), and is handed to the
// partition's writer. Only once Persist returned nil is the new state
// applied to memory; a failed write clears the pending mark and leaves
// memory as it was, and the client gets Kafka's mapping of the error (see
// Persister). While an id is pending, requests that would change it get
// CONCURRENT_TRANSACTIONS, which clients retry. An id seen for the first
// time exists only as pending until its first record is durable.
//
// EndTxn's outcome is decided once Prepare* is durable. The markers follow
// in the background (MarkerWriter), then Complete* is written; the id stays
// pending meanwhile. EndTxn is answered when Complete* is durable, or
// Config.CompletionWait after Prepare* at the latest (Kafka answers at
// Prepare*, and the client's next transaction then meets
// CONCURRENT_TRANSACTIONS, or under transaction version 2 produce retries,
// until the markers are in; with the wait it normally meets neither). A failed marker write or Complete* write is retried
// with a backoff on the clock (100ms doubling to 10s) while the partition
// stays loaded. A MarkerWriter error wrapping ErrCoordinatorFenced stops the
// completion: a newer coordinator owns the transaction, so this one leaves
// it in Prepare* (requests get CONCURRENT_TRANSACTIONS) until the broker
// unloads the partition.
//
// # What MarkerWriter does with WriteTxnMarkers errors
//
// Per partition, as Kafka's TransactionMarkerRequestCompletionHandler:
//
//	NONE                                     written
//	NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS(_AFTER_APPEND),
//	REQUEST_TIMED_OUT, KAFKA_STORAGE_ERROR,
//	a connection error                       retry (with the current leader) until ctx ends
//	UNKNOWN_TOPIC_OR_PARTITION               done if the topic or partition no longer
//	                                         exists, else retry (stale metadata)
//	UNSUPPORTED_FOR_MESSAGE_FORMAT,
//	UNSUPPORTED_VERSION                      done: the producer cannot have written there
//	TRANSACTION_COORDINATOR_FENCED,
//	INVALID_PRODUCER_EPOCH                   return an error wrapping ErrCoordinatorFenced
//	COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR,
//	COORDINATOR_LOAD_IN_PROGRESS (from the
//	group coordinator's CompleteTxn)         retry, as NOT_LEADER_OR_FOLLOWER
//	anything else (CORRUPT_MESSAGE,
//	MESSAGE_TOO_LARGE, ...)                  return a plain error: the coordinator
//	                                         logs it and calls again later
//
// # Loading
//
// BeginLoad installs a fresh, loading state for the partition (dropping an
// older one) and waits for the writes and marker writes the older one had
// in flight; LoadFrom
// replays the log without the lock, then, if the token is still current,
// serves the ids: every PrepareCommit or PrepareAbort has its markers
// written again with the new coordinator epoch and then Complete*, and every
// Ongoing transaction already past its timeout is aborted at once. Unload
// drops the partition, cancels its writes and marker writes (requests
// waiting for them get NOT_COORDINATOR) and waits for them to return, so
// Persist and WriteMarkers must return soon after their context ends.
//
// # Timers
//
// Driven by Config.Clock: every AbortTimedOutInterval, Ongoing transactions
// with start+timeout < now and nothing pending are aborted (one log line
// each, Stats.TimedOut); every RemoveExpiredInterval, ids in Empty or
// Complete* not updated for IDExpiration are tombstoned.
//
// # Concurrency
//
// A Coordinator is safe for concurrent use by any number of connections.
//   - One mutex (Coordinator.mu) guards all state. It is never held while
//     calling Persist, MarkerWriter, ProducerIDs or TopicPartitions, or
//     while a handler waits. There is no other lock in the package, so
//     there is no lock order to keep.
//   - Each loaded partition has one writer goroutine: it takes the queued
//     writes (up to 512 KiB), persists them as one batch (writes queued
//     while a batch is in flight share the next: group commit), and applies
//     the outcome under the lock. So Persist calls for one partition never
//     overlap and the log and memory see transitions in the same order.
//   - Marker writes run on goroutines, at most 64 at once; more wait in a
//     queue. Background producer id allocations (a timed-out transaction at
//     an exhausted epoch) run on goroutines too. Every goroutine and timer
//     callback is tracked: dropping a partition (Unload, BeginLoad) cancels
//     and waits for the goroutines of its load, Close for all of them.
//   - A handler waiting for its write returns COORDINATOR_NOT_AVAILABLE if
//     its context ends first; the write goes on and is applied as usual.
//   - Persister, MarkerWriter, ProducerIDs and TopicPartitions must not
//     call into the Coordinator.
//
// # Hostile input
//
// Every list in a request is reduced to its distinct entries before any
// work: a partition named twice in AddPartitionsToTxn, a transactional id
// twice in a v4+ batch or in DescribeTransactions, a state or producer id
// twice in a ListTransactions filter is looked up and answered once, and no
// memory is allocated per repeat (maps are sized by uniq.SizeHint).
// Topic existence is asked once per distinct topic. ListTransactions
// patterns are bounded (1 KiB, 1000 compiled instructions) and matched
// without the lock, stopping when the request's context ends.
//
// # Differences from Kafka
//
//   - A failed write never changes memory. Kafka bumps the epoch in memory
//     before a fencing write and remembers a failed one (hasFailedEpochFence);
//     here the old producer stays unfenced until a fence is durable, and the
//     new instance's retry fences it then.
//   - Writes to a partition are batched (group commit) instead of one
//     append per transition.
//   - The coordinator's own aborts bump the epoch once (Kafka 4.0 bumped it
//     twice under transaction version 2, fixed by KAFKA-19367) and rotate
//     the producer id when it is exhausted (KAFKA-20090).
//   - A verify-only AddPartitionsToTxn v4 gets INVALID_TXN_STATE for a
//     partition outside the transaction, v5 TRANSACTION_ABORTABLE (Kafka 4
//     gives TRANSACTION_ABORTABLE to both; v5 is the version that added it).
//   - An AddPartitionsToTxn naming no partition is answered without writing.
//   - A repeated transactional id in an AddPartitionsToTxn v4+ batch keeps
//     its first entry only.
//   - Transactions loaded in Prepare* are completed by marker writes the
//     coordinator tracks per transaction; Kafka batches markers per broker.
//   - Ongoing transactions past their timeout are aborted as soon as their
//     partition loads, not at the next scan.
//   - ListTransactions bounds the pattern's size and sorts its answer by
//     transactional id.
//   - InitProducerId v6 (KIP-939, two-phase commit) is not supported.
//   - EndTxn waits for the markers (Config.CompletionWait) before it
//     answers; Kafka answers at Prepare*.
//
// # Example
//
//	c, err := txn.New(txn.Config{
//		Persister:       txnTopic,  // appends to __transaction_state, acks=all
//		Markers:         markers,   // WriteTxnMarkers to partition leaders
//		ProducerIDs:     pids.Next, // cluster-wide producer id blocks
//		TopicPartitions: topics.PartitionCount,
//		Logger:          log,
//	})
//	...
//	token := c.BeginLoad(p, leaderEpoch) // became leader of __transaction_state-p
//	err := c.LoadFrom(token, stream(p))  // replay its log, one record at a time
//	...
//	resp := c.EndTxn(ctx, req.(*kmsg.EndTxnRequest))
package txn
