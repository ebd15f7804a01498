package replication

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

func brokers(ids ...int32) []BrokerInfo {
	out := make([]BrokerInfo, len(ids))
	for i, id := range ids {
		out[i] = BrokerInfo{ID: id}
	}
	return out
}

// TestReplicaAssignKafkaPlacement reproduces placements from Kafka's own
// tests (AdminZkClientTest.testReplicaAssignment and
// AdminRackAwareTest.testGetRackAlternatedBrokerListAndAssignReplicasToBrokers),
// with the random start index and shift pinned to 0.
func TestReplicaAssignKafkaPlacement(t *testing.T) {
	t.Parallel()
	racked := []BrokerInfo{
		{0, "rack1"}, {1, "rack3"}, {2, "rack3"}, {3, "rack2"}, {4, "rack2"}, {5, "rack1"},
	}
	cases := []struct {
		name       string
		brokers    []BrokerInfo
		partitions int32
		rf         int16
		want       [][]int32
	}{
		{"round robin", brokers(4, 3, 2, 1, 0), 10, 3, [][]int32{
			{0, 1, 2}, {1, 2, 3}, {2, 3, 4}, {3, 4, 0}, {4, 0, 1},
			{0, 2, 3}, {1, 3, 4}, {2, 4, 0}, {3, 0, 1}, {4, 1, 2},
		}},
		{"rack aware", racked, 7, 3, [][]int32{
			{0, 3, 1}, {3, 1, 5}, {1, 5, 4}, {5, 4, 2}, {4, 2, 0}, {2, 0, 3}, {0, 4, 2},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := AssignReplicas(c.brokers, c.partitions, c.rf, AssignOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("got  %v\nwant %v", got, c.want)
			}
		})
	}
}

func TestReplicaAssignContinuesForNewPartitions(t *testing.T) {
	t.Parallel()
	all, err := AssignReplicas(brokers(0, 1, 2, 3, 4), 10, 3, AssignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	more, err := AssignReplicas(brokers(0, 1, 2, 3, 4), 4, 3, AssignOptions{FirstPartition: 6})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(more) != fmt.Sprint(all[6:]) {
		t.Fatalf("partitions 6-9 placed as %v, want %v", more, all[6:])
	}
}

func TestReplicaAssignErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		brokers    []BrokerInfo
		partitions int32
		rf         int16
		want       error
	}{
		{"no partitions", brokers(1, 2), 0, 1, kerr.InvalidPartitions},
		{"zero replication factor", brokers(1, 2), 1, 0, kerr.InvalidReplicationFactor},
		{"more replicas than brokers", brokers(1, 2), 1, 3, kerr.InvalidReplicationFactor},
		{"no brokers", nil, 1, 1, kerr.InvalidReplicationFactor},
		{"duplicate broker", brokers(1, 2, 1), 1, 1, kerr.InvalidRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if _, err := AssignReplicas(c.brokers, c.partitions, c.rf, AssignOptions{}); !errors.Is(err, c.want) {
				t.Fatalf("error = %v, want %v", err, c.want)
			}
		})
	}
}

// TestReplicaAssignProperties checks random clusters: every partition
// gets distinct brokers, spans as many racks as it can, and leadership is
// spread evenly (each broker leads partitions/brokers rounded up or down).
func TestReplicaAssignProperties(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 7))
	for range 500 {
		n := 1 + rng.IntN(9)
		racks := rng.IntN(4) // 0: no racks
		var bs []BrokerInfo
		for i := range n {
			b := BrokerInfo{ID: int32(100 + 3*i)}
			if racks > 0 {
				b.Rack = fmt.Sprintf("r%d", rng.IntN(racks))
			}
			bs = append(bs, b)
		}
		partitions := int32(1 + rng.IntN(30))
		rf := int16(1 + rng.IntN(n))
		got, err := AssignReplicas(bs, partitions, rf, AssignOptions{StartIndex: -1, ReplicaShift: -1, Rand: rng})
		if err != nil {
			t.Fatal(err)
		}
		checkPlacement(t, bs, got, int(partitions), int(rf))
	}
}

func checkPlacement(t *testing.T, bs []BrokerInfo, got [][]int32, partitions, rf int) {
	t.Helper()
	rackOf := map[int32]string{}
	distinctRacks := map[string]bool{}
	for _, b := range bs {
		rackOf[b.ID] = b.Rack
		distinctRacks[b.Rack] = true
	}
	leaders := map[int32]int{}
	if len(got) != partitions {
		t.Fatalf("%d replica lists for %d partitions", len(got), partitions)
	}
	for p, replicas := range got {
		if len(replicas) != rf || hasDuplicates(replicas) {
			t.Fatalf("partition %d: replicas %v (rf %d)", p, replicas, rf)
		}
		racks := map[string]bool{}
		for _, id := range replicas {
			if _, ok := rackOf[id]; !ok {
				t.Fatalf("partition %d: unknown broker %d", p, id)
			}
			racks[rackOf[id]] = true
		}
		if bs[0].Rack != "" && len(racks) != min(rf, len(distinctRacks)) {
			t.Fatalf("partition %d: %v spans %d racks, want %d (brokers %v)", p, replicas, len(racks),
				min(rf, len(distinctRacks)), bs)
		}
		leaders[replicas[0]]++
	}
	lo, hi := partitions/len(bs), (partitions+len(bs)-1)/len(bs)
	for _, b := range bs {
		if c := leaders[b.ID]; c < lo || c > hi {
			t.Fatalf("broker %d leads %d partitions, want %d-%d: %v", b.ID, c, lo, hi, got)
		}
	}
}
