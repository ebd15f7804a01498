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

// TestShareGroupAdminLifecycle drives a share group through the admin
// APIs with kadm: ShareGroupDescribe shows its members, their
// subscriptions and assignments; ListGroups with the "share" type filter
// lists it (and the "consumer" filter does not); DeleteGroups refuses it
// while it has members and deletes it when empty, after which a new group
// of that id starts again from share.auto.offset.reset;
// AlterShareGroupOffsets (refused while members are active) moves its
// start offset, which DescribeShareGroupOffsets reports and the next member
// starts from; DeleteShareGroupOffsets drops the topic's state, so the next
// member starts from share.auto.offset.reset again.
func TestShareGroupAdminLifecycle(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, shareBrokerSettings())
	addr := ib.addr()
	const topic, group, n = "share-admin", "share-admin-g", 10
	createTopic(t, addr, topic, 1, nil)
	cl := client(t, addr)
	adm := kadm.NewClient(cl)
	shareGroupConfigs(t, cl, group, "share.auto.offset.reset", "earliest")
	produceEach(t, cl, topic, seqValues("adm", n)...)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	a := shareClient(t, []string{addr}, group, []string{topic}, kgo.ClientID("admin-a"))
	b := shareClient(t, []string{addr}, group, []string{topic}, kgo.ClientID("admin-b"))
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
	consumers, err := adm.ListGroupsByType(ctx, []string{"consumer", "classic"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := consumers[group]; ok {
		t.Errorf("ListGroups type filter consumer,classic lists the share group %s", group)
	}

	if r, err := adm.DeleteGroup(ctx, group); err == nil && r.Err == nil {
		t.Fatalf("DeleteGroups deleted a share group with two members")
	} else if !errors.Is(r.Err, kerr.NonEmptyGroup) {
		t.Errorf("DeleteGroups of a share group with members: %v / %v, want NON_EMPTY_GROUP", err, r.Err)
	}
	if _, err := adm.AlterShareGroupOffsets(ctx, group, kadm.Offsets{topic: {0: {Topic: topic, Partition: 0, At: 3}}}); !errors.Is(err, kerr.NonEmptyGroup) {
		t.Errorf("AlterShareGroupOffsets of a group with members: %v, want NON_EMPTY_GROUP", err)
	}

	// b leaves (releasing whatever its client fetched ahead), a consumes
	// everything.
	b.Close()
	waitShareMembers(t, adm, group, topic, 1)
	acceptShare(t, a, n)
	waitShareStartOffset(t, adm, group, topic, 0, n, 15*time.Second)
	closeShare(t, adm, a, group)

	// Delete the empty group: it is gone, and a new group of the same id
	// reads from the start again.
	if r, err := adm.DeleteGroup(ctx, group); err != nil || r.Err != nil {
		t.Fatalf("DeleteGroups of the empty share group: %v / %v", err, r.Err)
	}
	listed, err = adm.ListGroupsByType(ctx, []string{"share"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := listed[group]; ok {
		t.Errorf("ListGroups lists %s after DeleteGroups", group)
	}
	shareGroupConfigs(t, cl, group, "share.auto.offset.reset", "earliest")
	c := shareClient(t, []string{addr}, group, []string{topic})
	if offs := acceptShare(t, c, n); len(offs) > 0 && slices.Min(offs) != 0 {
		t.Errorf("the re-created group started at %d, want 0 (earliest)", slices.Min(offs))
	}
	closeShare(t, adm, c, group)

	// Alter the start offset of the empty group and read from there.
	produceEach(t, cl, topic, seqValues("adm2", 5)...) // offsets 10-14
	resps, err := adm.AlterShareGroupOffsets(ctx, group, kadm.Offsets{topic: {0: {Topic: topic, Partition: 0, At: 12}}})
	if err != nil || resps.Error() != nil {
		t.Fatalf("AlterShareGroupOffsets: %v / %v", err, resps.Error())
	}
	waitShareStartOffset(t, adm, group, topic, 0, 12, 15*time.Second)
	c = shareClient(t, []string{addr}, group, []string{topic})
	if offs := acceptShare(t, c, 3); !slices.Equal(sortedCopy(offs), []int64{12, 13, 14}) {
		t.Errorf("after altering the start offset to 12 the group got offsets %v, want 12-14", offs)
	}
	closeShare(t, adm, c, group)

	// Delete the topic's share state: the next member starts from
	// share.auto.offset.reset (earliest) again.
	dresps, err := adm.DeleteShareGroupOffsets(ctx, group, topic)
	if err != nil || dresps.Error() != nil {
		t.Fatalf("DeleteShareGroupOffsets: %v / %v", err, dresps.Error())
	}
	if so, err := shareStartOffset(ctx, adm, group, topic, 0); err != nil || so != -1 {
		t.Errorf("DescribeShareGroupOffsets after DeleteShareGroupOffsets: start offset %d, %v; want no state", so, err)
	}
	c = shareClient(t, []string{addr}, group, []string{topic})
	if offs := acceptShare(t, c, n+5); len(offs) > 0 && slices.Min(offs) != 0 {
		t.Errorf("after DeleteShareGroupOffsets the group started at %d, want 0 (earliest)", slices.Min(offs))
	}
}

func sortedCopy(s []int64) []int64 {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
