package integration

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// acceptShare polls c, accepting everything, until it has received n
// records, and returns their offsets in delivery order; it fails the test
// on more than n within a short grace period after the n-th.
func acceptShare(t testing.TB, c *kgo.Client, n int) []int64 {
	t.Helper()
	var offs []int64
	waitFor(t, 30*time.Second, func() error {
		recs, errs := pollShare(t, c, 500*time.Millisecond)
		for _, err := range errs {
			t.Errorf("share consumer: %v", err)
		}
		for _, r := range recs {
			offs = append(offs, r.Offset)
			r.Ack(kgo.AckAccept)
		}
		if len(offs) < n {
			return fmt.Errorf("received %d of %d records", len(offs), n)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.FlushAcks(ctx); err != nil {
		t.Fatalf("flush acks: %v", err)
	}
	if len(offs) != n {
		t.Errorf("received %d records, want %d: offsets %v", len(offs), n, offs)
	}
	return offs
}

// closeShare closes a share consumer (leaving the group) and waits until
// the group has no members.
func closeShare(t testing.TB, adm *kadm.Client, c *kgo.Client, group string) {
	t.Helper()
	c.Close()
	waitFor(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ds, err := adm.DescribeShareGroups(ctx, group)
		if err != nil {
			return err
		}
		if d := ds[group]; d.Err != nil || len(d.Members) != 0 {
			return fmt.Errorf("group %s: %v, %d members", group, d.Err, len(d.Members))
		}
		return nil
	})
}

// shareAdminSetup starts a broker with a one-partition topic holding n
// records and a share group reading from the earliest offset.
func shareAdminSetup(t *testing.T, topic, group string, n int) (addr string, cl *kgo.Client, adm *kadm.Client) {
	t.Helper()
	ib := startBroker(t, shareBrokerSettings())
	addr = ib.addr()
	createTopic(t, addr, topic, 1, nil)
	cl = client(t, addr)
	adm = kadm.NewClient(cl)
	shareGroupConfigs(t, cl, group, "share.auto.offset.reset", "earliest")
	produceEach(t, cl, topic, seqValues(topic, n)...)
	return addr, cl, adm
}

// TestShareGroupDescribeListAndBusyRefusals checks a share group of two
// franz-go members through kadm: ShareGroupDescribe shows both members
// (client ids, subscriptions, epochs) each assigned the partition, in
// state Stable; ListGroups with the "share" type filter lists it as a
// share group and the "consumer"/"classic" filters do not; DeleteGroups
// and AlterShareGroupOffsets refuse it with NON_EMPTY_GROUP while it has
// members.
func TestShareGroupDescribeListAndBusyRefusals(t *testing.T) {
	t.Parallel()
	const topic, group, n = "share-describe", "share-describe-g", 4
	addr, _, adm := shareAdminSetup(t, topic, group, n)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	shareClient(t, []string{addr}, group, []string{topic}, kgo.ClientID("admin-a"))
	shareClient(t, []string{addr}, group, []string{topic}, kgo.ClientID("admin-b"))
	d := waitShareMembers(t, adm, group, topic, 2)
	var clientIDs []string
	for _, m := range d.Members {
		clientIDs = append(clientIDs, m.ClientID)
		if !slices.Equal(m.SubscribedTopicNames, []string{topic}) {
			t.Errorf("member %s subscribed to %v, want [%s]", m.ClientID, m.SubscribedTopicNames, topic)
		}
		if m.MemberEpoch <= 0 {
			t.Errorf("member %s has epoch %d", m.ClientID, m.MemberEpoch)
		}
	}
	slices.Sort(clientIDs)
	if !slices.Equal(clientIDs, []string{"admin-a", "admin-b"}) {
		t.Errorf("described members %v, want admin-a and admin-b", clientIDs)
	}
	if d.GroupState != "Stable" {
		t.Errorf("group state %q with two assigned members, want Stable", d.GroupState)
	}

	listed, err := adm.ListGroupsByType(ctx, []string{"share"})
	if err != nil {
		t.Fatal(err)
	}
	if lg, ok := listed[group]; !ok || lg.GroupType != "share" {
		t.Errorf("ListGroups type filter share: %v, want %s of type share", listed, group)
	}
	others, err := adm.ListGroupsByType(ctx, []string{"consumer", "classic"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := others[group]; ok {
		t.Errorf("ListGroups type filter consumer,classic lists the share group %s", group)
	}

	r, err := adm.DeleteGroup(ctx, group)
	if !errors.Is(err, kerr.NonEmptyGroup) && !errors.Is(r.Err, kerr.NonEmptyGroup) {
		t.Errorf("DeleteGroups of a share group with members: %v / %v, want NON_EMPTY_GROUP", err, r.Err)
	}
	if _, err := adm.AlterShareGroupOffsets(ctx, group, kadm.Offsets{topic: {0: {Topic: topic, Partition: 0, At: 1}}}); !errors.Is(err, kerr.NonEmptyGroup) {
		t.Errorf("AlterShareGroupOffsets of a group with members: %v, want NON_EMPTY_GROUP", err)
	}
	listed, err = adm.ListGroupsByType(ctx, []string{"share"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := listed[group]; !ok {
		t.Errorf("the share group is gone after a refused DeleteGroups")
	}
}

// TestShareGroupDeletedStartsOver consumes a topic with a share group,
// deletes the (empty) group with DeleteGroups, and starts a group of the
// same id: it is gone from ListGroups in between, and the new group reads
// the topic again from share.auto.offset.reset (earliest), not from where
// the deleted one stopped.
func TestShareGroupDeletedStartsOver(t *testing.T) {
	t.Parallel()
	const topic, group, n = "share-deleted", "share-deleted-g", 6
	addr, cl, adm := shareAdminSetup(t, topic, group, n)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	c := shareClient(t, []string{addr}, group, []string{topic})
	acceptShare(t, c, n)
	waitShareStartOffset(t, adm, group, topic, 0, n, 15*time.Second)
	closeShare(t, adm, c, group)

	if r, err := adm.DeleteGroup(ctx, group); err != nil || r.Err != nil {
		t.Fatalf("DeleteGroups of the empty share group: %v / %v", err, r.Err)
	}
	listed, err := adm.ListGroupsByType(ctx, []string{"share"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := listed[group]; ok {
		t.Errorf("ListGroups lists %s after DeleteGroups", group)
	}
	// Whether or not the group's configs went with it, set them again.
	shareGroupConfigs(t, cl, group, "share.auto.offset.reset", "earliest")
	c = shareClient(t, []string{addr}, group, []string{topic})
	if offs := acceptShare(t, c, n); !slices.Equal(sortedCopy(offs), offsetsRange(0, n)) {
		t.Errorf("the re-created group got offsets %v, want 0-%d again (earliest)", offs, n-1)
	}
}

// TestShareGroupOffsetsAlterDescribeDelete moves an empty share group's
// start offset with AlterShareGroupOffsets: DescribeShareGroupOffsets
// reports it and the next member starts there; then
// DeleteShareGroupOffsets drops the topic's share state: Describe no
// longer reports it and the next member starts from
// share.auto.offset.reset (earliest) again.
func TestShareGroupOffsetsAlterDescribeDelete(t *testing.T) {
	t.Parallel()
	const topic, group, n = "share-offsets", "share-offsets-g", 8
	addr, _, adm := shareAdminSetup(t, topic, group, n)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// A member consumes the first two records, so the group and its share
	// state exist, and leaves.
	c := shareClient(t, []string{addr}, group, []string{topic}, kgo.ShareMaxRecords(2), kgo.ShareMaxRecordsStrict())
	acceptShare(t, c, 2)
	waitShareStartOffset(t, adm, group, topic, 0, 2, 15*time.Second)
	closeShare(t, adm, c, group)

	resps, err := adm.AlterShareGroupOffsets(ctx, group, kadm.Offsets{topic: {0: {Topic: topic, Partition: 0, At: 5}}})
	if err != nil || resps.Error() != nil {
		t.Fatalf("AlterShareGroupOffsets: %v / %v", err, resps.Error())
	}
	waitShareStartOffset(t, adm, group, topic, 0, 5, 15*time.Second)
	c = shareClient(t, []string{addr}, group, []string{topic})
	if offs := acceptShare(t, c, n-5); !slices.Equal(sortedCopy(offs), offsetsRange(5, n)) {
		t.Errorf("after altering the start offset to 5 the group got offsets %v, want 5-%d", offs, n-1)
	}
	closeShare(t, adm, c, group)

	dresps, err := adm.DeleteShareGroupOffsets(ctx, group, topic)
	if err != nil || dresps.Error() != nil {
		t.Fatalf("DeleteShareGroupOffsets: %v / %v", err, dresps.Error())
	}
	if so, err := shareStartOffset(ctx, adm, group, topic, 0); err != nil || so != -1 {
		t.Errorf("DescribeShareGroupOffsets after DeleteShareGroupOffsets: start offset %d, %v; want no state", so, err)
	}
	c = shareClient(t, []string{addr}, group, []string{topic})
	if offs := acceptShare(t, c, n); !slices.Equal(sortedCopy(offs), offsetsRange(0, n)) {
		t.Errorf("after DeleteShareGroupOffsets the group got offsets %v, want 0-%d (earliest)", offs, n-1)
	}
}

// offsetsRange lists the offsets from up to (not including) to.
func offsetsRange(from, to int64) []int64 {
	var out []int64
	for o := from; o < to; o++ {
		out = append(out, o)
	}
	return out
}

func sortedCopy(s []int64) []int64 {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
