package replication

import (
	"errors"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

func ps(leader int32, leaderEpoch LeaderEpoch, partitionEpoch int32, replicas, isr []int32) PartitionState {
	return PartitionState{Leader: leader, LeaderEpoch: leaderEpoch, PartitionEpoch: partitionEpoch, Replicas: replicas, ISR: isr}
}

func ids(v ...int32) []int32 { return v }

func checkState(t *testing.T, got, want PartitionState) {
	t.Helper()
	if got.Leader != want.Leader || got.LeaderEpoch != want.LeaderEpoch ||
		got.PartitionEpoch != want.PartitionEpoch || !slices.Equal(got.ISR, want.ISR) ||
		!slices.Equal(got.Replicas, want.Replicas) {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestReplicaControllerReconcile(t *testing.T) {
	t.Parallel()
	r123 := ids(1, 2, 3)
	cases := []struct {
		name    string
		in      PartitionState
		view    ClusterView
		unclean bool
		want    PartitionState
	}{
		{"leader lost: first live isr member leads",
			ps(1, 4, 9, r123, r123), ClusterView{Live: ids(2, 3)}, false, ps(2, 5, 10, r123, ids(2, 3))},
		{"follower lost: leaves the isr, leader epoch unchanged",
			ps(1, 4, 9, r123, r123), ClusterView{Live: ids(1, 2)}, false, ps(1, 4, 10, r123, ids(1, 2))},
		{"nothing to do",
			ps(1, 4, 9, r123, ids(1, 2)), ClusterView{Live: r123}, false, ps(1, 4, 9, r123, ids(1, 2))},
		{"assignment order decides among the isr",
			ps(3, 1, 1, ids(3, 1, 2), ids(3, 1, 2)), ClusterView{Live: ids(1, 2)}, false,
			ps(1, 2, 2, ids(3, 1, 2), ids(1, 2))},
		{"last isr member lost, unclean off: offline, isr keeps it",
			ps(1, 4, 9, r123, ids(1)), ClusterView{Live: ids(2, 3)}, false, ps(NoLeader, 5, 10, r123, ids(1))},
		{"last isr member lost, unclean on: first live replica leads alone",
			ps(1, 4, 9, r123, ids(1)), ClusterView{Live: ids(2, 3)}, true, ps(2, 5, 10, r123, ids(2))},
		{"every isr member lost at once: all of them stay",
			ps(1, 4, 9, r123, ids(1, 2)), ClusterView{Live: ids(3)}, false, ps(NoLeader, 5, 10, r123, ids(1, 2))},
		{"offline partition: an isr member returns and leads",
			ps(NoLeader, 5, 10, r123, ids(1)), ClusterView{Live: ids(1)}, false, ps(1, 6, 11, r123, ids(1))},
		{"offline partition: a non-isr replica returns, unclean off",
			ps(NoLeader, 5, 10, r123, ids(1)), ClusterView{Live: ids(2)}, false, ps(NoLeader, 5, 10, r123, ids(1))},
		{"offline partition: a non-isr replica returns, unclean on",
			ps(NoLeader, 5, 10, r123, ids(1)), ClusterView{Live: ids(3)}, true, ps(3, 6, 11, r123, ids(3))},
		{"nothing live at all, unclean on: stays offline",
			ps(NoLeader, 5, 10, r123, ids(1)), ClusterView{}, true, ps(NoLeader, 5, 10, r123, ids(1))},
		{"shutting-down leader hands over and leaves the isr",
			ps(1, 4, 9, r123, r123), ClusterView{Live: r123, ShuttingDown: ids(1)}, false, ps(2, 5, 10, r123, ids(2, 3))},
		{"shutting-down sole isr member keeps leading",
			ps(1, 4, 9, r123, ids(1)), ClusterView{Live: r123, ShuttingDown: ids(1)}, false, ps(1, 4, 9, r123, ids(1))},
		{"shutting-down brokers are not elected",
			ps(NoLeader, 5, 10, r123, ids(1, 2)), ClusterView{Live: ids(1, 2), ShuttingDown: ids(1)}, false,
			ps(2, 6, 11, r123, ids(2))},
		{"shutting-down brokers are not elected uncleanly",
			ps(NoLeader, 5, 10, r123, ids(1)), ClusterView{Live: ids(2, 3), ShuttingDown: ids(2)}, true,
			ps(3, 6, 11, r123, ids(3))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := Reconcile(c.in, c.view, c.unclean)
			if err != nil {
				t.Fatal(err)
			}
			checkState(t, got, c.want)
		})
	}
}

func TestReplicaControllerRejectsInvalidState(t *testing.T) {
	t.Parallel()
	bad := []PartitionState{
		ps(1, 0, 0, nil, nil),
		ps(1, 0, 0, ids(1, 2), ids(2)),
		ps(1, 0, 0, ids(1, 2), ids(1, 3)),
		ps(1, 0, 0, ids(1, 1), ids(1)),
		ps(1, -1, 0, ids(1, 2), ids(1)),
	}
	for _, p := range bad {
		if _, err := Reconcile(p, ClusterView{Live: ids(1, 2)}, false); !errors.Is(err, ErrInvalidState) {
			t.Errorf("Reconcile(%s) error = %v, want ErrInvalidState", p, err)
		}
		if _, err := ElectPreferredLeader(p, ClusterView{Live: ids(1, 2)}); !errors.Is(err, ErrInvalidState) {
			t.Errorf("ElectPreferredLeader(%s) error = %v, want ErrInvalidState", p, err)
		}
		if _, err := ApplyISRChange(p, ISRChange{Leader: 1, ISR: ids(1)}, ClusterView{Live: ids(1, 2)}); !errors.Is(err, ErrInvalidState) {
			t.Errorf("ApplyISRChange(%s) error = %v, want ErrInvalidState", p, err)
		}
	}
}

func TestReplicaControllerControlledShutdown(t *testing.T) {
	t.Parallel()
	r123 := ids(1, 2, 3)
	live := ClusterView{Live: r123}
	cases := []struct {
		name   string
		in     PartitionState
		broker int32
		want   PartitionState
	}{
		{"leader moves away", ps(1, 2, 3, r123, r123), 1, ps(2, 3, 4, r123, ids(2, 3))},
		{"follower leaves the isr", ps(1, 2, 3, r123, r123), 3, ps(1, 2, 4, r123, ids(1, 2))},
		{"sole isr member stays until it stops", ps(1, 2, 3, r123, ids(1)), 1, ps(1, 2, 3, r123, ids(1))},
		{"not in the isr: nothing to do", ps(1, 2, 3, r123, ids(1, 2)), 3, ps(1, 2, 3, r123, ids(1, 2))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := ControlledShutdown(c.in, c.broker, live)
			if err != nil {
				t.Fatal(err)
			}
			checkState(t, got, c.want)
		})
	}
}

func TestReplicaControllerPreferredElection(t *testing.T) {
	t.Parallel()
	r123 := ids(1, 2, 3)
	cases := []struct {
		name    string
		in      PartitionState
		view    ClusterView
		want    PartitionState
		wantErr error
	}{
		{"moves back to the preferred replica", ps(2, 3, 5, r123, r123), ClusterView{Live: r123},
			ps(1, 4, 6, r123, r123), nil},
		{"already preferred", ps(1, 3, 5, r123, r123), ClusterView{Live: r123},
			ps(1, 3, 5, r123, r123), kerr.ElectionNotNeeded},
		{"preferred not in the isr", ps(2, 3, 5, r123, ids(2, 3)), ClusterView{Live: r123},
			ps(2, 3, 5, r123, ids(2, 3)), kerr.PreferredLeaderNotAvailable},
		{"preferred down", ps(2, 3, 5, r123, r123), ClusterView{Live: ids(2, 3)},
			ps(2, 3, 5, r123, r123), kerr.PreferredLeaderNotAvailable},
		{"preferred shutting down", ps(2, 3, 5, r123, r123), ClusterView{Live: r123, ShuttingDown: ids(1)},
			ps(2, 3, 5, r123, r123), kerr.PreferredLeaderNotAvailable},
		{"offline partition", ps(NoLeader, 3, 5, r123, ids(1)), ClusterView{Live: r123},
			ps(1, 4, 6, r123, ids(1)), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := ElectPreferredLeader(c.in, c.view)
			if !errors.Is(err, c.wantErr) || (err == nil) != (c.wantErr == nil) {
				t.Fatalf("error = %v, want %v", err, c.wantErr)
			}
			checkState(t, got, c.want)
		})
	}
}

func TestReplicaControllerApplyISRChange(t *testing.T) {
	t.Parallel()
	r123 := ids(1, 2, 3)
	stored := ps(1, 4, 9, r123, ids(1, 2))
	live := ClusterView{Live: r123}
	change := func(leader int32, le LeaderEpoch, pe int32, isr ...int32) ISRChange {
		return ISRChange{Leader: leader, LeaderEpoch: le, PartitionEpoch: pe, ISR: isr}
	}
	cases := []struct {
		name    string
		c       ISRChange
		view    ClusterView
		want    PartitionState
		wantErr error
	}{
		{"shrink", change(1, 4, 9, 1), live, ps(1, 4, 10, r123, ids(1)), nil},
		{"expand, kept in assignment order", change(1, 4, 9, 3, 1, 2), live, ps(1, 4, 10, r123, r123), nil},
		{"same isr: unchanged", change(1, 4, 9, 2, 1), live, stored, nil},
		{"stale partition epoch", change(1, 4, 8, 1), live, stored, kerr.InvalidUpdateVersion},
		{"stale leader epoch", change(1, 3, 9, 1), live, stored, kerr.FencedLeaderEpoch},
		{"newer leader epoch", change(1, 5, 9, 1), live, stored, kerr.NotController},
		{"newer partition epoch", change(1, 4, 10, 1), live, stored, kerr.NotController},
		{"not from the leader", change(2, 4, 9, 2), live, stored, kerr.InvalidRequest},
		{"without the leader", change(1, 4, 9, 2), live, stored, kerr.InvalidRequest},
		{"empty", change(1, 4, 9), live, stored, kerr.InvalidRequest},
		{"duplicates", change(1, 4, 9, 1, 2, 2), live, stored, kerr.InvalidRequest},
		{"not a replica", change(1, 4, 9, 1, 7), live, stored, kerr.InvalidRequest},
		{"adds a dead replica", change(1, 4, 9, 1, 2, 3), ClusterView{Live: ids(1, 2)}, stored, kerr.IneligibleReplica},
		{"adds a shutting-down replica", change(1, 4, 9, 1, 2, 3), ClusterView{Live: r123, ShuttingDown: ids(3)},
			stored, kerr.IneligibleReplica},
		{"the leader itself may be shutting down", change(1, 4, 9, 1), ClusterView{Live: r123, ShuttingDown: ids(1)},
			ps(1, 4, 10, r123, ids(1)), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := ApplyISRChange(stored, c.c, c.view)
			if !errors.Is(err, c.wantErr) || (err == nil) != (c.wantErr == nil) {
				t.Fatalf("error = %v, want %v", err, c.wantErr)
			}
			checkState(t, got, c.want)
		})
	}
}

func TestReplicaControllerNewPartitionState(t *testing.T) {
	t.Parallel()
	got, err := NewPartitionState(ids(3, 1, 2), ClusterView{Live: ids(1, 2, 3)})
	if err != nil {
		t.Fatal(err)
	}
	checkState(t, got, ps(3, 0, 0, ids(3, 1, 2), ids(3, 1, 2)))

	got, err = NewPartitionState(ids(3, 1, 2), ClusterView{Live: ids(1, 2), ShuttingDown: ids(1)})
	if err != nil {
		t.Fatal(err)
	}
	checkState(t, got, ps(2, 0, 0, ids(3, 1, 2), ids(2)))

	if _, err := NewPartitionState(ids(1, 2), ClusterView{Live: ids(3)}); !errors.Is(err, kerr.InvalidReplicationFactor) {
		t.Fatalf("no live replica: error = %v", err)
	}
	if _, err := NewPartitionState(ids(1, 1), ClusterView{Live: ids(1)}); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("duplicate replicas: error = %v", err)
	}
}

// TestReplicaControllerDoesNotAliasInput checks that returned records never share
// slices with the input, so callers may keep and modify both.
func TestReplicaControllerDoesNotAliasInput(t *testing.T) {
	t.Parallel()
	in := ps(1, 0, 0, ids(1, 2, 3), ids(1, 2, 3))
	out, err := Reconcile(in, ClusterView{Live: ids(2, 3)}, false)
	if err != nil {
		t.Fatal(err)
	}
	out.ISR[0], out.Replicas[0] = 99, 99
	if in.ISR[0] != 1 || in.Replicas[0] != 1 {
		t.Fatalf("input modified through the result: %s", in)
	}
}
