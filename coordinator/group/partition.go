package group

import "github.com/sluicedev/sluice/coordinator"

// PartitionFor returns the __consumer_offsets partition that owns groupID,
// exactly as Kafka's GroupCoordinator.partitionFor computes it (see
// coordinator.PartitionFor), so Sluice and Kafka agree on where a group lives.
func PartitionFor(groupID string, numPartitions int32) int32 {
	return coordinator.PartitionFor(groupID, numPartitions)
}
