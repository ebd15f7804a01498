// Package txn is Sluice's transaction coordinator: Kafka's
// TransactionCoordinator (KIP-98, KIP-360, KIP-447, KIP-664, KIP-890) for the
// __transaction_state partitions this broker leads, as a component with no
// sockets and no files of its own, built like package group.
//
// SKELETON: the exported API is the contract the broker is written against;
// the package documentation (states, record formats, concurrency) comes
// with the implementation.
package txn
