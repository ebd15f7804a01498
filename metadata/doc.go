// Package metadata holds Sluice's cluster metadata: the cluster id, live
// brokers, topics with their replica assignments and configs, dynamic broker
// configs, per-partition leadership records and the controller election. It
// is the only package that imports the etcd client; everything it hands out
// is plain Go values.
//
// # Implementations
//
// Store is implemented by Etcd (NewEtcd, against any etcd v3.4+ cluster)
// and by Memory (NewMemory, for unit tests of other packages). Both pass
// the same conformance suite, so code tested against Memory behaves the
// same against etcd: the same sentinel errors, revisions that grow with
// every write, compare-and-swap, watch snapshots and event order. What
// Memory cannot do by itself is lose a lease; ExpireBroker and
// ExpireController simulate that.
//
// StartEmbedded runs a single-member etcd inside the process, for one-node
// deployments, development and tests (package metadata/etcdtest wraps it
// and the external etcd binary for tests).
//
// # Key layout
//
// Every key starts with the configured prefix (default "/sluice"), so
// several clusters can share one etcd. Values are JSON (readable with
// etcdctl); fields may be added but never renamed.
//
//	<prefix>/cluster/id                 cluster id: a random UUID in Kafka's base64 form
//	                                    (22 chars), created once by create-if-absent
//	<prefix>/brokers/<node id>          {"node_id":1,"host":"h","port":9092,"rack":"r1",
//	                                     "incarnation":"..."}
//	                                    attached to the broker's lease: it vanishes
//	                                    when the broker stops renewing it; its mod
//	                                    revision is the broker epoch (not stored)
//	<prefix>/topics/<name>              {"id":"<base64 uuid>","partitions":3,
//	                                     "replication_factor":2,
//	                                     "replicas":[[1,2],[2,3],[3,1]],
//	                                     "configs":{"retention.ms":"1000"}}
//	<prefix>/partitions/<name>/<p>      {"leader":1,"leader_epoch":4,"isr":[1,2],
//	                                     "partition_epoch":9}
//	<prefix>/configs/brokers/<node id>  {"log.retention.ms":"5"}: dynamic broker
//	                                    configs; node id -1 holds cluster-wide defaults
//	<prefix>/quotas/client-id/<c>       {"producer_byte_rate":1048576}: client quotas
//	<prefix>/quotas/user/<u>            of one entity; <u> and <c> are "<default>"
//	<prefix>/quotas/user/<u>/client-id/<c> or the path-escaped name (so a name
//	                                    holds no '/' and never reads as the default);
//	                                    written with compare-and-swap, deleted when
//	                                    the entity has no quota left
//	<prefix>/groupconfigs/<group>       {"share.record.lock.duration.ms":"20000"}:
//	                                    one group's configs (Kafka's GROUP resource);
//	                                    the name path-escaped; compare-and-swap;
//	                                    deleted when no config is left
//	<prefix>/features/finalized         {"share.version":0}: finalized feature
//	                                    levels set by UpdateFeatures (CAS); its mod
//	                                    revision is the finalized-features epoch
//	<prefix>/controller/<lease hex>     node id of a controller candidate (etcd
//	                                    concurrency election: oldest key wins)
//
// Node ids and partition numbers are written in decimal; topic names are
// stored verbatim (Kafka's legal characters contain no '/').
//
// # Invariants
//
//   - Revision: every Topic and PartitionState carries the etcd mod
//     revision of its last write. UpdateTopic and SetPartitionState succeed
//     only if the stored revision still equals the one given (0 meaning
//     "absent" for SetPartitionState) and fail with ErrConflict otherwise;
//     the caller re-reads and retries.
//   - Topic ids are random UUIDv4 (crypto/rand) assigned by CreateTopic when
//     zero, never the reserved zero or one ids; a re-created topic gets a
//     new id, which is how brokers tell incarnations apart (KIP-516).
//   - DeleteTopic removes the topic and its partition records in one
//     transaction; CreateTopic also clears any stale partition records.
//   - A node id is registered at most once: RegisterBroker is a
//     create-if-absent put under a fresh lease and fails with
//     ErrBrokerIDInUse while a previous registration's lease lives. A broker
//     restarted after a crash may have to retry for up to one TTL.
//   - Broker epoch (Registration.Epoch, Broker.Epoch) and controller epoch
//     (Leadership.Epoch) are store revisions, so a later registration or
//     election always has a larger epoch than every earlier one. The broker
//     epoch is the mod revision of the broker key, so Brokers and
//     WatchBrokers report exactly the Registration.Epoch of the registration
//     that wrote the record; a takeover by the same Incarnation rewrites the
//     key and so gets a new, larger epoch, which is how other brokers tell a
//     restart from a registration that stayed.
//   - Registration.ValidUntil never overstates the lease: it is the send time
//     of the last successful renewal (or of the grant) plus the TTL the
//     server granted, and the server's TTL cannot start running before the
//     request was sent. Renewals go out every TTL/3, retried until that
//     deadline; when it passes, or the server reports the lease gone, the
//     registration ends with ErrLeaseLost.
//
// # Watches
//
// WatchTopics, WatchBrokers and WatchPartitions first send one EventPut per
// existing record (Snapshot set; ordered by key, except that partition
// states come by topic name, then partition number), then every change in
// commit order; deletes carry the record's last value and revision.
// WatchPartitions follows the state records of every topic at once, so the
// deletion of a topic arrives as one delete per partition that had a state.
// If the etcd watch stream breaks (history compacted, leader lost), the
// watcher re-reads the prefix and sends the difference from what it had
// delivered, so a consumer applying events in order always converges on the
// store's state. The channel is closed when the caller's ctx ends or the
// store is closed; a consumer that stops reading stalls only its own watch.
//
// # Concurrency
//
// Stores are safe for concurrent use. Every background goroutine (lease
// keepalives, watches) is owned by the store and waited for by Close.
// Registration and Leadership own their keepalive: Lost() closes when the
// lease is gone (Err: ErrLeaseLost) or after Close (Err: ErrClosed). Close
// on the store closes its registrations and leaderships first.
// Registration.ValidUntil is an atomic load, cheap enough to check before
// every leader-only action.
//
// # Example
//
//	e, err := metadata.StartEmbedded(ctx, metadata.EmbeddedConfig{
//		Dir: filepath.Join(dataDir, "etcd"), ClientAddr: "127.0.0.1:2379", PeerAddr: "127.0.0.1:2380",
//	})
//	...
//	s, err := metadata.NewEtcd(ctx, metadata.EtcdConfig{Endpoints: e.Endpoints()})
//	reg, err := s.RegisterBroker(ctx, metadata.Broker{NodeID: 1, Host: "127.0.0.1", Port: 9092}, 0)
//	t, err := s.CreateTopic(ctx, metadata.Topic{Name: "orders", Partitions: 3, ReplicationFactor: 1,
//		Replicas: [][]int32{{1}, {1}, {1}}})
//	select {
//	case <-reg.Lost(): // stop serving as a cluster member, register again
//	case <-ctx.Done():
//	}
package metadata
