package broker

import (
	"errors"

	"github.com/sluicedev/sluice/coordinator/share"
)

// TEMPORARY STUBS for the integrator to delete: engineer D's
// broker/share_fetch*.go defines these (docs/share-groups-contract.md).

// errNoSharePartition is the stub's answer: no share-partition is loaded.
var errNoSharePartition = errors.New("broker: share-partition not loaded (stub)")

// withSharePartition runs f on k's share-partition under its lock; false
// when this broker does not hold it (stub: never).
func (b *Broker) withSharePartition(k share.Key, f func(p *share.Partition)) bool { return false }

// completeDeadLetters applies share.Partition.DeadLettered(offsets, seqs)
// and persists the share-partition's state (stub: always fails).
func (b *Broker) completeDeadLetters(k share.Key, offsets []int64, seqs int32) error {
	return errNoSharePartition
}
