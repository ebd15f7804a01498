package broker

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestShareGroupMembershipAPIs drives ShareGroupHeartbeat,
// ShareGroupDescribe, ListGroups and DeleteGroups of a share group through
// a running broker.
func TestShareGroupMembershipAPIs(t *testing.T) {
	t.Parallel()
	b := startTestBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 3, 1, nil, "sq"); err != nil {
		t.Fatal(err)
	}
	const member = "5c0b5a1e-0000-4000-8000-000000000001"
	hb := func(epoch int32, topics []string) *kmsg.ShareGroupHeartbeatResponse {
		t.Helper()
		for {
			req := kmsg.NewPtrShareGroupHeartbeatRequest()
			req.Version = 1
			req.GroupID, req.MemberID, req.MemberEpoch, req.SubscribedTopicNames = "sg", member, epoch, topics
			resp, err := req.RequestWith(ctx, cl)
			if err != nil {
				t.Fatal(err)
			}
			switch resp.ErrorCode {
			case kerr.CoordinatorLoadInProgress.Code, kerr.NotCoordinator.Code, kerr.CoordinatorNotAvailable.Code:
				time.Sleep(10 * time.Millisecond) // the offsets topic is being created
				continue
			}
			return resp
		}
	}
	resp := hb(0, []string{"sq"})
	if resp.ErrorCode != 0 || resp.MemberEpoch != 1 || resp.Assignment == nil || len(resp.Assignment.TopicPartitions) != 1 ||
		len(resp.Assignment.TopicPartitions[0].Partitions) != 3 || resp.HeartbeatIntervalMillis != 5000 {
		t.Fatalf("join: %+v", resp)
	}

	dreq := kmsg.NewPtrShareGroupDescribeRequest()
	dreq.Version = 1
	dreq.GroupIDs = []string{"sg"}
	dresp, err := dreq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if g := dresp.Groups[0]; g.ErrorCode != 0 || g.GroupState != "Stable" || len(g.Members) != 1 || g.Members[0].MemberID != member ||
		g.Members[0].Assignment.TopicPartitions[0].Topic != "sq" {
		t.Fatalf("describe: %+v", g)
	}

	lreq := kmsg.NewPtrListGroupsRequest()
	lreq.Version = 5
	lreq.TypesFilter = []string{"share"}
	lresp, err := lreq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(lresp.Groups) != 1 || lresp.Groups[0].Group != "sg" || lresp.Groups[0].GroupType != "share" {
		t.Fatalf("list: %+v", lresp.Groups)
	}

	del := func() int16 {
		t.Helper()
		req := kmsg.NewPtrDeleteGroupsRequest()
		req.Version = 2
		req.Groups = []string{"sg", "sg"}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Groups) != 1 {
			t.Fatalf("delete answered %d groups for one distinct id", len(resp.Groups))
		}
		return resp.Groups[0].ErrorCode
	}
	if code := del(); code != kerr.NonEmptyGroup.Code {
		t.Fatalf("delete with a member: code %d", code)
	}
	if resp := hb(-1, nil); resp.ErrorCode != 0 || resp.MemberEpoch != -1 {
		t.Fatalf("leave: %+v", resp)
	}
	if info, code := b.coord.ShareGroup("sg"); code != 0 || !info.Empty || len(info.Topics) != 1 || info.Topics[0] != "sq" {
		t.Fatalf("ShareGroup after leave: %+v code %d", info, code)
	}
	if code := del(); code != 0 {
		t.Fatalf("delete empty share group: code %d", code)
	}
	if _, code := b.coord.ShareGroup("sg"); code != kerr.GroupIDNotFound.Code {
		t.Fatalf("ShareGroup after delete: code %d", code)
	}
}
