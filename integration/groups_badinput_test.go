package integration

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestGroupBadInput sends group requests a broken or hostile client might:
// each gets Kafka's error code, and the group and broker stay healthy.
func TestGroupBadInput(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, groupSettings)
	createTopic(t, ib.addr(), "gbad", 2, nil)
	cl := client(t, ib.addr())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// A healthy member keeps working throughout.
	good := startMember(t, ib.addr(), "g-bad", "gbad")
	waitFor(t, 30*time.Second, func() error {
		if good.partitions() != 2 {
			return errorf("healthy member has %d partitions", good.partitions())
		}
		return nil
	})

	commit := func(group, member string, gen int32) int16 {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.MemberID, req.Generation = group, member, gen
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = "gbad"
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Offset = 1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	if code := commit("g-bad", "no-such-member", 1); code != kerr.UnknownMemberID.Code {
		t.Errorf("commit from an unknown member: %v", kerr.ErrorForCode(code))
	}
	// Find the real member's id and generation, then commit with a stale one.
	dreq := kmsg.NewPtrDescribeGroupsRequest()
	dreq.Groups = []string{"g-bad"}
	dresp, err := dreq.RequestWith(ctx, cl)
	if err != nil || len(dresp.Groups) != 1 || len(dresp.Groups[0].Members) != 1 {
		t.Fatalf("describe: %v %+v", err, dresp)
	}
	memberID := dresp.Groups[0].Members[0].MemberID
	if code := commit("g-bad", memberID, 9999); code != kerr.IllegalGeneration.Code {
		t.Errorf("commit with a wrong generation: %v", kerr.ErrorForCode(code))
	}

	// Huge member metadata and a 250 KB group id are answered, not fatal.
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.ProtocolType = strings.Repeat("g", 250<<10), "consumer"
	join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = 6000, 6000
	proto := kmsg.NewJoinGroupRequestProtocol()
	proto.Name, proto.Metadata = "range", bytes.Repeat([]byte{0xff}, 512<<10)
	join.Protocols = append(join.Protocols, proto)
	jresp, err := join.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("join with a 250 KB group id: %v", err)
	}
	if jresp.ErrorCode != kerr.MemberIDRequired.Code && jresp.ErrorCode != 0 && jresp.ErrorCode != kerr.InvalidGroupID.Code {
		t.Errorf("join with a 250 KB group id and 512 KB metadata: %v", kerr.ErrorForCode(jresp.ErrorCode))
	}

	// A client that sends half a JoinGroup and hangs up.
	conn, err := net.Dial("tcp", ib.addr())
	if err != nil {
		t.Fatal(err)
	}
	half := kmsg.NewPtrJoinGroupRequest()
	half.Group = "g-bad"
	body := half.AppendTo(append(header(11, 5, 1), 0, 0))
	_, _ = conn.Write(binary.BigEndian.AppendUint32(nil, uint32(len(body))))
	_, _ = conn.Write(body[:len(body)/2])
	conn.Close()

	// The healthy member still owns everything and new records flow.
	produceN(t, ib.addr(), "gbad", 0, 50, kgo.ProducerBatchCompression(kgo.NoCompression()))
	waitAllConsumed(t, 50, good)
	if good.partitions() != 2 {
		t.Fatalf("healthy member lost partitions: %d", good.partitions())
	}
}
