// Package coordinator holds what Sluice's coordinators share: the Clock they
// measure every timeout with (so their tests drive a FakeClock instead of
// sleeping), and PartitionFor, Kafka's placement of a group or transactional
// id on a partition of its internal topic.
//
// The coordinators themselves are its subpackages: group (consumer groups,
// __consumer_offsets) and txn (transactions, __transaction_state). Like
// them, this package imports only the standard library.
package coordinator
