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
package share
