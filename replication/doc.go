// Package replication is the core of Sluice's ISR replication: the leader
// and follower state machines of one partition and the controller's
// decisions, all pure and deterministic. Nothing here starts a goroutine,
// touches the network or the disk, or reads a clock: each event goes in as
// a method call carrying the time, and comes out as a Ready value saying
// what to persist, what to send and what to answer (the pattern of
// etcd-io/raft's Node.Ready). A driver in package broker owns the sockets,
// the storage.Log and the etcd records, and feeds this package.
//
// It imports only the standard library and kerr (for Kafka error codes).
//
// # Pieces
//
//	Leader      one per partition led here: high watermark, ISR shrink and
//	            expand proposals, acks=all completion, the leader side of
//	            follower fetches (divergence detection)
//	Follower    one per partition followed here: what to fetch next, and
//	            what to truncate, append and publish for each answer
//	Reconcile, ControlledShutdown, ElectPreferredLeader, ApplyISRChange,
//	NewPartitionState, AssignReplicas
//	            controller decisions over the etcd partition records
//
// # Leader and follower interplay
//
//	producer                leader (Leader)                    follower (Follower)
//	   │ Produce acks=-1        │                                      │
//	   ├───────────────────────>│ CheckProduce: ISR < min.isr?         │
//	   │                        │   -> NOT_ENOUGH_REPLICAS             │
//	   │                        │ append to log; LogAppended           │
//	   │                        │ WaitForAcks(id, last, deadline)      │
//	   │                        │                                      │ Next -> Fetch{offset=LEO,
//	   │                        │<─────────────────────────────────────┤   lastFetchedEpoch, leaderEpoch}
//	   │                        │ FollowerFetch:                       │
//	   │                        │  epoch check (FENCED/UNKNOWN)        │
//	   │                        │  divergence? -> DivergingEpoch ─────>│ HandleFetch -> Truncate
//	   │                        │  else record follower LEO,           │
//	   │                        │  maybe expand ISR, advance HW        │
//	   │                        │  read [offset, LEO) ────────────────>│ HandleFetch -> Append
//	   │                        │                                      │ Appended -> HW = min(leaderHW, LEO)
//	   │                        │ next fetch shows follower LEO ≥ last │
//	   │<───────────────────────┤  -> HW passes last: Acks{id, nil}    │
//	   │                        │ Tick: follower lagging > lag.max ->  │
//	   │                        │  ISRChange ──> controller (etcd CAS) │
//	   │                        │  ISRChangeResult / Update <── watch  │
//
// # Invariants
//
//   - The ISR always contains the leader and is never empty. The HW is the
//     smallest log end offset over the maximal ISR (the committed ISR plus
//     replicas a pending expansion adds, KIP-497) and over caught-up
//     followers eligible to join; it never moves backwards on a Leader, and
//     it never stops between the previous leader's HW and the offset where
//     this leader epoch began.
//   - Every offset below a leader's HW is present, identical, in the log of
//     every ISR member, and with clean elections in every future leader.
//     The simulation test checks this (and the rest of this list) across
//     random crashes, lease expiries, elections, lost and late messages.
//   - At most one ISR change is in flight per partition. It takes effect
//     only when the controller's compare-and-swap accepts it; a proposal
//     built from an older record (leader or partition epoch) is rejected.
//   - A follower appends only after the leader confirmed, in the same
//     fetch, that its log matches up to the fetch offset (same last epoch,
//     and the leader's end of that epoch not before the fetch offset), so
//     a follower log is always a prefix of its leader's after a good fetch
//     and truncation never removes committed offsets.
//   - Leader epochs grow on every leader change (including to and from
//     offline); partition epochs on every record change.
//
// # Where each rule comes from
//
//	HW advance, maximal ISR, caught-up wait  Partition.maybeIncrementLeaderHW, KIP-497
//	ISR expand (HW and epoch start)          Partition.maybeExpandIsr / isFollowerInSync
//	ISR shrink (lastCaughtUpTime)            Partition.maybeShrinkIsr, Replica.isCaughtUp
//	pending change, AlterPartition errors    Partition.handleAlterPartitionError, KIP-497
//	acks=all, NOT_ENOUGH_REPLICAS(_AFTER_APPEND)
//	                                         Partition.appendRecordsToLeader,
//	                                         checkEnoughReplicasReachOffset, DelayedProduce
//	fetch epoch checks                       KIP-320 (FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH)
//	DivergingEpoch                           KIP-320 / Fetch v12 (KIP-595), Partition.readRecords
//	OffsetForLeaderEpoch, truncation         KIP-101, KIP-279, AbstractFetcherThread
//	follower HW and log start                ReplicaFetcherThread.processPartitionData
//	election, last ISR member kept           KRaft PartitionChangeBuilder (no KIP-966 ELR)
//	ineligible replicas, partition epoch     KIP-841
//	replica placement                        AdminUtils.assignReplicasToBrokers
//
// Where Sluice differs from Kafka's Partition: the Leader answers its own
// epoch's entry in the epoch cache (Kafka writes it into the cache at
// election); a new leader's HW jumps straight from the old HW to at least
// the epoch start instead of creeping towards it (the KRaft leader's rule
// in spirit, without KRaft's extra requirement of a record written in the
// new epoch, since ISR leaders write none); the HW advances even when the
// ISR is below min.insync.replicas (Kafka 3; KIP-966 stops it), so acks=all
// waiters get NOT_ENOUGH_REPLICAS_AFTER_APPEND rather than a timeout; and a
// shutting-down leader with no eligible successor keeps leading until it
// stops.
//
// # Driving the state machines
//
// Every method returns a Ready value (LeaderReady, FollowerReady) that the
// driver applies before the next call on the same partition.
//
//	Leader (partition led here; Kafka's Partition as leader)
//	  record names us leader     l, rd, err := NewLeader(cfg, log, state, hw, now)
//	  record changes (watch)     rd, err := l.Update(state, now)
//	  produce                    err := l.CheckProduce(acks); append; rd := l.LogAppended(now)
//	                             acks=-1: rd := l.WaitForAcks(id, lastOffset, deadline, now)
//	  follower fetch             dec, rd := l.FollowerFetch(req); read [offset, LEO) unless
//	                             dec.Err or dec.DivergingEpoch; answer with dec's HW, log start
//	  OffsetForLeaderEpoch       ee, err := l.EndOffsetForEpoch(currentEpoch, epoch)
//	  ListOffsets (clients)      err := l.CheckListOffsets()
//	  timer (~100ms)             rd := l.Tick(now)
//	  AlterPartition outcome     rd := l.ISRChangeResult(change, storedState, err, now)
//	  broker view changes        l.SetIneligible(ids); config change: l.SetMinInsyncReplicas(n)
//	  LeaderReady                publish HighWatermark when HighWatermarkAdvanced (wake
//	                             fetches, checkpoint later); answer Acks; send ISRChange to
//	                             the controller; Resigned: become a Follower
//
//	Follower (partition followed here; ReplicaFetcherThread)
//	  record names another       rd, err := f.BecomeFollower(leader, epoch, hw, now)
//	  fetcher loop               req := f.Next(now); send by req.Kind; on no answer
//	                             f.RequestFailed(req, now)
//	  answers                    f.HandleFetch / HandleEpochEnd / HandleLeaderOffsets
//	  FollowerReady              Truncate (TruncateTo or TruncateFullyAndStartAt), then
//	                             Append the response's records and call f.Appended(),
//	                             then publish HighWatermark, DeleteRecordsBefore(LogStartOffset)
//
//	Controller (whoever holds the etcd election)
//	  broker lost/returned       Reconcile(state, view, unclean) for every partition
//	  controlled shutdown        ControlledShutdown(state, broker, view)
//	  preferred election         ElectPreferredLeader(state, view)
//	  AlterPartition from leader ApplyISRChange(state, change, view)
//	  new topic / partitions     AssignReplicas, then NewPartitionState per partition
//	  each result                write with compare-and-swap if PartitionEpoch changed;
//	                             on a conflict re-read and decide again
//
// A broker that restarts must not resume leading at the leader epoch it
// had: whatever it lost from its page cache may already be on followers,
// and a write in the same epoch at the same offsets would not be detected
// as a divergence. Treat a new registration of a node id (a new broker
// epoch) as a loss followed by a return, so Reconcile bumps the leader
// epoch of every partition it led, as KRaft does by fencing a restarted
// broker.
//
// # Concurrency
//
// None of the types is safe for concurrent use. The driver calls a
// partition's Leader or Follower under the partition's lock and applies the
// returned Ready before releasing it.
package replication
