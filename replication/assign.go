package replication

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
)

// BrokerInfo is what replica placement needs to know about a broker.
type BrokerInfo struct {
	ID int32
	// Rack is broker.rack; empty when unset.
	Rack string
}

// AssignOptions tunes AssignReplicas.
type AssignOptions struct {
	// FirstPartition is the id of the first partition to place: 0 for a
	// new topic, the current partition count when partitions are added
	// (CreatePartitions). With the StartIndex and ReplicaShift used at
	// creation the new partitions continue the topic's pattern exactly;
	// Kafka's CreatePartitions uses the broker index of partition 0's
	// leader for both.
	FirstPartition int32
	// StartIndex and ReplicaShift are Kafka's two random choices: where in
	// the broker list partition 0's leader goes, and the initial distance
	// between a partition's leader and its second replica. Negative values
	// are drawn from Rand; tests pin them to reproduce a placement.
	StartIndex, ReplicaShift int
	// Rand supplies the random choices; nil means both are 0.
	Rand *rand.Rand
}

// AssignReplicas places partitions*replicationFactor replicas on brokers
// the way Kafka's AdminUtils.assignReplicasToBrokers does, so that leaders
// and followers spread evenly:
//
//   - Brokers are ordered by id. Partition p's first replica (its
//     preferred leader) is broker (p + StartIndex) mod n; the others follow
//     at increasing distances starting at 1 + ReplicaShift, and the shift
//     grows by one every n partitions, so the same pairs of brokers do not
//     always share partitions.
//   - When every broker has a rack, the broker list is first interleaved
//     rack by rack (racks in name order, brokers by id within a rack), and
//     a replica is skipped if its rack, or the broker itself, already holds
//     one while some rack, or broker, holds none. Every partition then
//     spans min(replicationFactor, racks) racks. If only some brokers have
//     a rack, racks are ignored (Kafka's RackAwareMode.Safe).
//
// The result has one replica list per partition, FirstPartition first. It
// fails with kerr.InvalidPartitions, kerr.InvalidReplicationFactor or
// kerr.InvalidRequest (duplicate broker ids).
func AssignReplicas(brokers []BrokerInfo, partitions int32, replicationFactor int16, opts AssignOptions) ([][]int32, error) {
	n := len(brokers)
	switch {
	case partitions <= 0:
		return nil, fmt.Errorf("replication: %d partitions: %w", partitions, kerr.InvalidPartitions)
	case replicationFactor <= 0:
		return nil, fmt.Errorf("replication: replication factor %d: %w", replicationFactor, kerr.InvalidReplicationFactor)
	case int(replicationFactor) > n:
		return nil, fmt.Errorf("replication: replication factor %d larger than %d available brokers: %w",
			replicationFactor, n, kerr.InvalidReplicationFactor)
	}
	sorted := slices.SortedFunc(slices.Values(brokers), func(a, b BrokerInfo) int { return cmp.Compare(a.ID, b.ID) })
	for i := 1; i < n; i++ {
		if sorted[i].ID == sorted[i-1].ID {
			return nil, fmt.Errorf("replication: broker %d listed twice: %w", sorted[i].ID, kerr.InvalidRequest)
		}
	}
	order, racks := sorted, 0
	if allHaveRacks(sorted) {
		order, racks = interleaveRacks(sorted)
	}
	start, shift := opts.StartIndex, opts.ReplicaShift
	if start < 0 {
		start = randomIndex(opts.Rand, n)
	}
	if shift < 0 {
		shift = randomIndex(opts.Rand, n)
	}
	out := make([][]int32, 0, min(partitions, 1<<12))
	for i := range int(partitions) {
		p := int(max(opts.FirstPartition, 0)) + i
		first, pshift := (p+start)%n, shift+p/n
		if racks > 0 {
			out = append(out, placeRackAware(order, racks, first, pshift, int(replicationFactor)))
		} else {
			out = append(out, place(order, first, pshift, int(replicationFactor)))
		}
	}
	return out, nil
}

// replicaIndex is the broker index of a partition's (k+2)-th candidate:
// at distance 1 + (shift + k) mod (n - 1) from its first replica, which
// never lands on the first replica itself.
func replicaIndex(first, shift, k, n int) int {
	return (first + 1 + (shift+k)%(n-1)) % n
}

func place(order []BrokerInfo, first, shift, rf int) []int32 {
	ids := []int32{order[first].ID}
	for k := range rf - 1 {
		ids = append(ids, order[replicaIndex(first, shift, k, len(order))].ID)
	}
	return ids
}

func placeRackAware(order []BrokerInfo, racks, first, shift, rf int) []int32 {
	n := len(order)
	ids := []int32{order[first].ID}
	usedRacks := []string{order[first].Rack}
	for k := 0; len(ids) < rf; k++ {
		b := order[replicaIndex(first, shift*racks, k, n)]
		rackOK := !slices.Contains(usedRacks, b.Rack) || len(usedRacks) == racks
		brokerOK := !slices.Contains(ids, b.ID) || len(ids) == n
		if rackOK && brokerOK {
			ids = append(ids, b.ID)
			if !slices.Contains(usedRacks, b.Rack) {
				usedRacks = append(usedRacks, b.Rack)
			}
		}
	}
	return ids
}

func allHaveRacks(brokers []BrokerInfo) bool {
	for _, b := range brokers {
		if b.Rack == "" {
			return false
		}
	}
	return true
}

// interleaveRacks lists brokers rack by rack in turn (racks in name order,
// brokers by id within a rack) and counts the racks; sorted is by id.
func interleaveRacks(sorted []BrokerInfo) ([]BrokerInfo, int) {
	byRack := map[string][]BrokerInfo{}
	for _, b := range sorted {
		byRack[b.Rack] = append(byRack[b.Rack], b)
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for r := range byRack {
			if !yield(r) {
				return
			}
		}
	})
	out := make([]BrokerInfo, 0, len(sorted))
	for i := 0; len(out) < len(sorted); i++ {
		for _, r := range names {
			if i < len(byRack[r]) {
				out = append(out, byRack[r][i])
			}
		}
	}
	return out, len(names)
}

func randomIndex(r *rand.Rand, n int) int {
	if r == nil {
		return 0
	}
	return r.IntN(n)
}
