package integration

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// waitShareMembers waits until ShareGroupDescribe lists n members of group,
// each assigned partition 0 of topic (a share group's partitions are
// shared by all its members).
func waitShareMembers(t testing.TB, adm *kadm.Client, group, topic string, n int) kadm.DescribedShareGroup {
	t.Helper()
	var out kadm.DescribedShareGroup
	waitFor(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ds, err := adm.DescribeShareGroups(ctx, group)
		if err != nil {
			return err
		}
		d := ds[group]
		if d.Err != nil {
			return d.Err
		}
		if len(d.Members) != n {
			return fmt.Errorf("group %s has %d members, want %d", group, len(d.Members), n)
		}
		for _, m := range d.Members {
			if ps := m.Assignment[topic]; len(ps) != 1 {
				return fmt.Errorf("member %s (%s) is assigned %v", m.MemberID, m.ClientID, m.Assignment)
			}
		}
		out = d
		return nil
	})
	return out
}

// TestShareFiveMembersAcceptEveryRecordOnce runs five franz-go share
// consumers of one group on a one-partition topic. Each holds its first
// records until every member has some (so each one demonstrably gets a
// share of the partition), then all accept what they get: every record is
// delivered once, with delivery count 1, and the share-partition start
// offset reaches the end of the log (everything acknowledged).
func TestShareFiveMembersAcceptEveryRecordOnce(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, shareBrokerSettings())
	addr := ib.addr()
	const topic, group, n, members = "share-five", "share-five-g", 100, 5
	createTopic(t, addr, topic, 1, nil)
	cl := client(t, addr)
	adm := kadm.NewClient(cl)
	// The default lock (30 s) outlasts the first records' hold.
	shareGroupConfigs(t, cl, group, "share.auto.offset.reset", "earliest")

	cls := make([]*kgo.Client, members)
	for i := range cls {
		cls[i] = shareClient(t, []string{addr}, group, []string{topic},
			kgo.ShareMaxRecords(5), kgo.ClientID(fmt.Sprintf("share-five-%d", i)))
	}
	waitShareMembers(t, adm, group, topic, members)
	produceEach(t, cl, topic, seqValues("five", n)...)

	var (
		mu        sync.Mutex
		delivered = map[string][]string{} // value -> members it was delivered to
		perMember = make([]int, members)
		holding   = make(chan int, members)
		allHold   = make(chan struct{})
		done      = make(chan struct{})
		finish    = sync.OnceFunc(func() { close(done) })
	)
	go func() {
		seen := map[int]bool{}
		for len(seen) < members {
			select {
			case i := <-holding:
				seen[i] = true
			case <-done:
				return
			}
		}
		close(allHold)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i, c := range cls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := true
			for ctx.Err() == nil {
				select {
				case <-done:
					if err := c.FlushAcks(ctx); err != nil {
						t.Errorf("member %d: flush acks: %v", i, err)
					}
					return
				default:
				}
				recs, errs := pollShare(t, c, 500*time.Millisecond)
				for _, err := range errs {
					t.Errorf("member %d: %v", i, err)
				}
				if len(recs) == 0 {
					continue
				}
				mu.Lock()
				for _, r := range recs {
					v := string(r.Value)
					delivered[v] = append(delivered[v], fmt.Sprintf("member %d (delivery %d)", i, r.DeliveryCount()))
					if r.DeliveryCount() != 1 {
						t.Errorf("member %d: %q at offset %d has delivery count %d, want 1", i, v, r.Offset, r.DeliveryCount())
					}
				}
				perMember[i] += len(recs)
				complete := len(delivered) == n
				mu.Unlock()
				if first {
					// Hold the first records (acquired by this member)
					// until every member has acquired some.
					first = false
					holding <- i
					select {
					case <-allHold:
					case <-ctx.Done():
						t.Errorf("member %d: not every member got records within the deadline", i)
						return
					}
				}
				for _, r := range recs {
					r.Ack(kgo.AckAccept)
				}
				if complete {
					finish()
				}
			}
		}()
	}
	wg.Wait()
	finish()
	mu.Lock()
	defer mu.Unlock()
	for i, k := range perMember {
		if k == 0 {
			t.Errorf("member %d got no records (per member: %v)", i, perMember)
		}
	}
	for _, v := range seqValues("five", n) {
		if got := delivered[v]; len(got) != 1 {
			t.Errorf("%q delivered %d times: %v", v, len(got), got)
		}
	}
	t.Logf("records per member: %v", perMember)
	waitShareStartOffset(t, adm, group, topic, 0, n, 15*time.Second)
}

// TestShareCrashedMembersRecordsRedelivered has one member hang with
// records acquired (its sockets stay open, nothing moves: a stuck
// process) and another die right after acquiring some (its sockets
// close, as for kill -9). A third member then gets all of them: the dead
// member's records as soon as the broker notices, the hung member's only
// once their acquisition lock (shareLockMillis) has run out, each with
// delivery count 2, and accepts every record exactly once.
func TestShareCrashedMembersRecordsRedelivered(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, shareBrokerSettings())
	addr := ib.addr()
	const topic, group, n = "share-crash", "share-crash-g", 12
	createTopic(t, addr, topic, 1, nil)
	cl := client(t, addr)
	adm := kadm.NewClient(cl)
	shareGroupDefaults(t, cl, group)
	produceEach(t, cl, topic, seqValues("crash", n)...)

	// acquire polls a member until it gets records and returns them.
	acquire := func(name string, c *kgo.Client) []string {
		var vals []string
		waitFor(t, 20*time.Second, func() error {
			recs, _ := pollShare(t, c, 500*time.Millisecond)
			for _, r := range recs {
				if r.DeliveryCount() != 1 {
					t.Errorf("%s: %q has delivery count %d on its first delivery", name, r.Value, r.DeliveryCount())
				}
				vals = append(vals, string(r.Value))
			}
			if len(vals) == 0 {
				return fmt.Errorf("%s got no records", name)
			}
			return nil
		})
		return vals
	}
	hungDialer, deadDialer := newCutDialer(), newCutDialer()
	strict := []kgo.Opt{kgo.ShareMaxRecords(4), kgo.ShareMaxRecordsStrict()}
	hung := hungShareClient(t, []string{addr}, group, []string{topic}, hungDialer, strict...)
	hungVals := acquire("hung member", hung)
	hungDialer.freeze()
	hungAt := time.Now()
	dead := hungShareClient(t, []string{addr}, group, []string{topic}, deadDialer, strict...)
	deadVals := acquire("dead member", dead)
	deadDialer.kill()
	t.Logf("hung member holds %v, dead member held %v", hungVals, deadVals)
	for _, v := range deadVals {
		if slices.Contains(hungVals, v) {
			t.Fatalf("%q acquired by two members at once", v)
		}
	}

	survivor := shareClient(t, []string{addr}, group, []string{topic})
	accepted := map[string]int{}
	waitFor(t, 30*time.Second, func() error {
		recs, errs := pollShare(t, survivor, 500*time.Millisecond)
		for _, err := range errs {
			t.Errorf("survivor: %v", err)
		}
		for _, r := range recs {
			v := string(r.Value)
			accepted[v]++
			held := slices.Contains(hungVals, v) || slices.Contains(deadVals, v)
			switch dc := r.DeliveryCount(); {
			case held && dc != 2:
				t.Errorf("survivor: %q, held by a crashed member, has delivery count %d, want 2", v, dc)
			case !held && dc != 1 && dc != 2:
				// 2 if a crashed member's client had fetched it
				// unseen by the test.
				t.Errorf("survivor: %q has delivery count %d, want 1", v, dc)
			}
			if slices.Contains(hungVals, v) {
				if since := time.Since(hungAt); since < shareLockMillis*time.Millisecond/2 {
					t.Errorf("%q of the hung member redelivered %v after it hung, before its %d ms lock could expire", v, since, shareLockMillis)
				}
			}
			r.Ack(kgo.AckAccept)
		}
		if len(accepted) < n {
			return fmt.Errorf("survivor accepted %d of %d records", len(accepted), n)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := survivor.FlushAcks(ctx); err != nil {
		t.Fatalf("flush acks: %v", err)
	}
	for v, k := range accepted {
		if k != 1 {
			t.Errorf("survivor got %q %d times", v, k)
		}
	}
	waitShareStartOffset(t, adm, group, topic, 0, n, 15*time.Second)
}

// TestShareRedeliveryBackoff releases a record under Sluice's redelivery
// backoff (group config share.record.redelivery.backoff.ms): it comes back,
// with delivery count 2, no sooner than the backoff after the release.
func TestShareRedeliveryBackoff(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, shareBrokerSettings())
	addr := ib.addr()
	const topic, group = "share-backoff", "share-backoff-g"
	const backoff = 1500 * time.Millisecond
	createTopic(t, addr, topic, 1, nil)
	cl := client(t, addr)
	shareGroupDefaults(t, cl, group, shareBackoffConfig, itoa(int(backoff/time.Millisecond)))
	produceEach(t, cl, topic, "bounce")

	c := shareClient(t, []string{addr}, group, []string{topic})
	var rec *kgo.Record
	waitFor(t, 20*time.Second, func() error {
		recs, _ := pollShare(t, c, 500*time.Millisecond)
		if len(recs) == 0 {
			return fmt.Errorf("no record yet")
		}
		rec = recs[0]
		return nil
	})
	if rec.DeliveryCount() != 1 {
		t.Fatalf("first delivery has delivery count %d", rec.DeliveryCount())
	}
	released := time.Now()
	rec.Ack(kgo.AckRelease)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.FlushAcks(ctx); err != nil {
		t.Fatalf("flush the release: %v", err)
	}
	waitFor(t, 20*time.Second, func() error {
		recs, _ := pollShare(t, c, 200*time.Millisecond)
		if len(recs) == 0 {
			return fmt.Errorf("not redelivered after %v", time.Since(released))
		}
		rec = recs[0]
		return nil
	})
	since := time.Since(released)
	if string(rec.Value) != "bounce" || rec.DeliveryCount() != 2 {
		t.Errorf("redelivered %q with delivery count %d, want \"bounce\" with 2", rec.Value, rec.DeliveryCount())
	}
	if since < backoff {
		t.Errorf("released record redelivered %v after its release, before the %v backoff", since, backoff)
	}
	t.Logf("redelivered %v after the release (backoff %v)", since, backoff)
	rec.Ack(kgo.AckAccept)
	if err := c.FlushAcks(ctx); err != nil {
		t.Fatalf("flush the accept: %v", err)
	}
}

// shareBackoffConfig is the group config of Sluice's redelivery backoff
// (the initial delay).
const shareBackoffConfig = "share.record.redelivery.backoff.ms"
