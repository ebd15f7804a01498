package integration

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"math"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// copies is how often an attack repeats one entry: about 1-3 MiB of
// request for most APIs.
const copies = 100_000

// roundTrip sends req on a new connection and decodes the answer. The
// broker must answer within 20 s.
func roundTrip(t *testing.T, addr string, req kmsg.Request) kmsg.Response {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("attacker")).AppendRequest(nil, req, 42)
	if _, err := c.Write(frame); err != nil {
		t.Fatalf("write %T of %d bytes: %v", req, len(frame), err)
	}
	br := bufio.NewReader(c)
	var size [4]byte
	if _, err := io.ReadFull(br, size[:]); err != nil {
		t.Fatalf("%T of %d bytes: no answer: %v", req, len(frame), err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(br, body); err != nil {
		t.Fatalf("%T: short answer: %v", req, err)
	}
	if corr := int32(binary.BigEndian.Uint32(body)); corr != 42 {
		t.Fatalf("%T: correlation id %d", req, corr)
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	body = body[4:]
	if resp.IsFlexible() && resp.Key() != 18 {
		body = body[1:] // empty response header tags
	}
	if err := resp.ReadFrom(body); err != nil {
		t.Fatalf("%T answer does not decode: %v", req, err)
	}
	return resp
}

// wellBehaved produces a record with a franz-go producer and reads it back
// with a franz-go consumer group, proving the broker still serves.
type wellBehaved struct {
	t        *testing.T
	producer *kgo.Client
	consumer *kgo.Client
	n        int
}

func (w *wellBehaved) check(after string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w.n++
	want := "after " + after + " " + strconv.Itoa(w.n)
	if err := w.producer.ProduceSync(ctx, &kgo.Record{Value: []byte(want)}).FirstErr(); err != nil {
		w.t.Fatalf("after %s: produce: %v", after, err)
	}
	for {
		fs := w.consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			w.t.Fatalf("after %s: record %q not consumed: %v", after, want, err)
		}
		found := false
		fs.EachRecord(func(r *kgo.Record) { found = found || string(r.Value) == want })
		if found {
			return
		}
	}
}

func TestRepetitionAttacksBrokerKeepsServing(t *testing.T) {
	t.Parallel()
	p := startProc(t, "--log-level", "warn", "--set", "group.initial.rebalance.delay.ms=0")
	addr := p.addr
	createTopic(t, addr, "rep", 2, nil)
	createTopic(t, addr, "victim", 1, nil)
	w := &wellBehaved{t: t,
		producer: client(t, addr, kgo.DefaultProduceTopic("rep"), kgo.RecordPartitioner(kgo.ManualPartitioner())),
		consumer: client(t, addr, kgo.ConsumeTopics("rep"), kgo.ConsumerGroup("repgroup"), kgo.FetchMaxWait(200*time.Millisecond)),
	}
	w.check("start")
	baseGoroutines := p.metric(t, "go_goroutines")
	if baseGoroutines <= 0 {
		t.Fatal("no go_goroutines metric")
	}

	str := kmsg.StringPtr
	attacks := []struct {
		name  string
		req   func() kmsg.Request
		check func(t *testing.T, resp kmsg.Response)
	}{
		{"Metadata 100k copies of a topic", func() kmsg.Request {
			r := kmsg.NewPtrMetadataRequest()
			r.Version = 12
			for range copies {
				r.Topics = append(r.Topics, kmsg.MetadataRequestTopic{Topic: str("rep")})
			}
			return r
		}, func(t *testing.T, resp kmsg.Response) {
			if n := len(resp.(*kmsg.MetadataResponse).Topics); n != 1 {
				t.Fatalf("%d topics answered, want 1", n)
			}
		}},
		{"CreateTopics 50k copies and 2^31-1 partitions", func() kmsg.Request {
			r := kmsg.NewPtrCreateTopicsRequest()
			r.Version = 7
			r.TimeoutMillis = 5000
			for range copies / 2 {
				ct := kmsg.NewCreateTopicsRequestTopic()
				ct.Topic, ct.NumPartitions, ct.ReplicationFactor = "dup", 1, 1
				r.Topics = append(r.Topics, ct)
			}
			ct := kmsg.NewCreateTopicsRequestTopic()
			ct.Topic, ct.NumPartitions, ct.ReplicationFactor = "huge", math.MaxInt32, 1
			r.Topics = append(r.Topics, ct)
			return r
		}, func(t *testing.T, resp kmsg.Response) {
			ts := resp.(*kmsg.CreateTopicsResponse).Topics
			if len(ts) != 2 || ts[0].Topic != "dup" || ts[0].ErrorCode != kerr.InvalidRequest.Code || ts[1].ErrorCode != kerr.PolicyViolation.Code {
				t.Fatalf("answered %d topics (%+v), want dup INVALID_REQUEST once and huge POLICY_VIOLATION", len(ts), ts[:min(len(ts), 2)])
			}
		}},
		{"CreatePartitions 100k copies and a count of 2^31-1", func() kmsg.Request {
			r := kmsg.NewPtrCreatePartitionsRequest()
			r.TimeoutMillis = 5000
			for range copies {
				r.Topics = append(r.Topics, kmsg.CreatePartitionsRequestTopic{Topic: "victim", Count: 3})
			}
			r.Topics = append(r.Topics, kmsg.CreatePartitionsRequestTopic{Topic: "rep", Count: math.MaxInt32})
			return r
		}, func(t *testing.T, resp kmsg.Response) {
			ts := resp.(*kmsg.CreatePartitionsResponse).Topics
			if len(ts) != 2 || ts[0].ErrorCode != kerr.InvalidRequest.Code || ts[1].ErrorCode != kerr.PolicyViolation.Code {
				t.Fatalf("answered %+v, want victim INVALID_REQUEST once and rep POLICY_VIOLATION", ts[:min(len(ts), 2)])
			}
		}},
		{"DeleteTopics 100k copies", func() kmsg.Request {
			r := kmsg.NewPtrDeleteTopicsRequest()
			r.Version = 6
			r.TimeoutMillis = 5000
			for range copies {
				r.Topics = append(r.Topics, kmsg.DeleteTopicsRequestTopic{Topic: str("victim")})
			}
			return r
		}, func(t *testing.T, resp kmsg.Response) {
			ts := resp.(*kmsg.DeleteTopicsResponse).Topics
			if len(ts) != 1 || ts[0].ErrorCode != kerr.InvalidRequest.Code {
				t.Fatalf("answered %d topics, want victim INVALID_REQUEST once", len(ts))
			}
		}},
		{"DescribeConfigs 100k copies", func() kmsg.Request {
			r := kmsg.NewPtrDescribeConfigsRequest()
			r.Version = 4
			r.IncludeDocumentation, r.IncludeSynonyms = true, true
			for range copies {
				r.Resources = append(r.Resources, kmsg.DescribeConfigsRequestResource{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "rep"})
			}
			return r
		}, func(t *testing.T, resp kmsg.Response) {
			if rs := resp.(*kmsg.DescribeConfigsResponse).Resources; len(rs) != 1 || len(rs[0].Configs) == 0 {
				t.Fatalf("answered %d resources, want 1", len(rs))
			}
		}},
		{"IncrementalAlterConfigs 100k copies", func() kmsg.Request {
			r := kmsg.NewPtrIncrementalAlterConfigsRequest()
			for range copies {
				r.Resources = append(r.Resources, kmsg.IncrementalAlterConfigsRequestResource{
					ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "rep",
					Configs: []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: "retention.ms", Value: str("1000")}},
				})
			}
			return r
		}, func(t *testing.T, resp kmsg.Response) {
			if rs := resp.(*kmsg.IncrementalAlterConfigsResponse).Resources; len(rs) != 1 || rs[0].ErrorCode != kerr.InvalidRequest.Code {
				t.Fatalf("answered %d resources, want rep INVALID_REQUEST once", len(rs))
			}
		}},
		{"AlterConfigs 100k copies", func() kmsg.Request {
			r := kmsg.NewPtrAlterConfigsRequest()
			for range copies {
				r.Resources = append(r.Resources, kmsg.AlterConfigsRequestResource{
					ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "rep",
					Configs: []kmsg.AlterConfigsRequestResourceConfig{{Name: "retention.ms", Value: str("1000")}},
				})
			}
			return r
		}, func(t *testing.T, resp kmsg.Response) {
			if rs := resp.(*kmsg.AlterConfigsResponse).Resources; len(rs) != 1 || rs[0].ErrorCode != kerr.InvalidRequest.Code {
				t.Fatalf("answered %d resources, want rep INVALID_REQUEST once", len(rs))
			}
		}},
		{"ListOffsets 100k copies", func() kmsg.Request {
			r := kmsg.NewPtrListOffsetsRequest()
			r.Version = 8
			rt := kmsg.ListOffsetsRequestTopic{Topic: "rep"}
			for range copies {
				rt.Partitions = append(rt.Partitions, kmsg.ListOffsetsRequestTopicPartition{Partition: 0, Timestamp: 1, CurrentLeaderEpoch: -1})
			}
			r.Topics = append(r.Topics, rt)
			return r
		}, func(t *testing.T, resp kmsg.Response) {
			ps := resp.(*kmsg.ListOffsetsResponse).Topics[0].Partitions
			if len(ps) != 1 || ps[0].ErrorCode != kerr.InvalidRequest.Code {
				t.Fatalf("answered %d partitions, want partition 0 INVALID_REQUEST once", len(ps))
			}
		}},
		{"DeleteRecords 100k copies", func() kmsg.Request {
			r := kmsg.NewPtrDeleteRecordsRequest()
			r.TimeoutMillis = 5000
			rt := kmsg.DeleteRecordsRequestTopic{Topic: "rep"}
			for range copies {
				rt.Partitions = append(rt.Partitions, kmsg.DeleteRecordsRequestTopicPartition{Partition: 1, Offset: 0})
			}
			r.Topics = append(r.Topics, rt)
			return r
		}, func(t *testing.T, resp kmsg.Response) {
			if ts := resp.(*kmsg.DeleteRecordsResponse).Topics; len(ts) != 1 || len(ts[0].Partitions) != 1 || ts[0].Partitions[0].ErrorCode != 0 {
				t.Fatalf("answered %+v, want partition 1 once", ts)
			}
		}},
		{"OffsetForLeaderEpoch 100k copies", func() kmsg.Request {
			r := kmsg.NewPtrOffsetForLeaderEpochRequest()
			r.Version = 4
			r.ReplicaID = -1
			rt := kmsg.OffsetForLeaderEpochRequestTopic{Topic: "rep"}
			for range copies {
				rt.Partitions = append(rt.Partitions, kmsg.OffsetForLeaderEpochRequestTopicPartition{Partition: 0, CurrentLeaderEpoch: -1, LeaderEpoch: 0})
			}
			r.Topics = append(r.Topics, rt)
			return r
		}, func(t *testing.T, resp kmsg.Response) {
			if ts := resp.(*kmsg.OffsetForLeaderEpochResponse).Topics; len(ts) != 1 {
				t.Fatalf("answered %d topics", len(ts))
			}
		}},
		{"ElectLeaders 100k copies", func() kmsg.Request {
			r := kmsg.NewPtrElectLeadersRequest()
			r.Version = 2
			r.TimeoutMillis = 5000
			rt := kmsg.ElectLeadersRequestTopic{Topic: "rep"}
			for range copies {
				rt.Partitions = append(rt.Partitions, 0)
			}
			r.Topics = append(r.Topics, rt)
			return r
		}, func(t *testing.T, resp kmsg.Response) {
			if ts := resp.(*kmsg.ElectLeadersResponse).Topics; len(ts) != 1 || len(ts[0].Partitions) != 1 {
				t.Fatalf("answered %+v, want partition 0 once", ts)
			}
		}},
		{"Produce 10k batches to one partition", func() kmsg.Request {
			rt := kmsg.ProduceRequestTopic{Topic: "rep"}
			for i := range copies / 10 {
				rt.Partitions = append(rt.Partitions, kmsg.ProduceRequestTopicPartition{Partition: 1, Records: buildBatch(-1, -1, -1, "dup"+strconv.Itoa(i))})
			}
			r := produceRequest("rep", 1, 5000, nil)
			r.Version = 9
			r.Topics = []kmsg.ProduceRequestTopic{rt}
			return r
		}, func(t *testing.T, resp kmsg.Response) {
			ts := resp.(*kmsg.ProduceResponse).Topics
			if len(ts) != 1 || len(ts[0].Partitions) != 1 || ts[0].Partitions[0].ErrorCode != 0 {
				t.Fatalf("answered %+v, want partition 1 once", ts)
			}
		}},
		{"Fetch 70k copies of a partition, waiting", func() kmsg.Request {
			r := kmsg.NewPtrFetchRequest()
			r.Version = 12
			r.ReplicaID, r.MaxWaitMillis, r.MinBytes, r.MaxBytes = -1, 300, 1<<30, 1<<20
			r.SessionEpoch = -1
			rt := kmsg.FetchRequestTopic{Topic: "rep"}
			end := endOffset(t, w.producer, "rep") // nothing to read: the fetch waits
			for range 70_000 {                     // past the 65,536 select cases a wait once built
				rt.Partitions = append(rt.Partitions, kmsg.FetchRequestTopicPartition{Partition: 0, FetchOffset: end, CurrentLeaderEpoch: -1, LastFetchedEpoch: -1, LogStartOffset: -1, PartitionMaxBytes: 1 << 20})
			}
			r.Topics = append(r.Topics, rt)
			return r
		}, func(t *testing.T, resp kmsg.Response) {
			r := resp.(*kmsg.FetchResponse)
			if r.ErrorCode != 0 || len(r.Topics) == 0 {
				t.Fatalf("fetch: error %d, %d topics", r.ErrorCode, len(r.Topics))
			}
			for _, p := range r.Topics[0].Partitions[:1] {
				if p.ErrorCode != 0 || len(p.RecordBatches) != 0 {
					t.Fatalf("fetch at the end: error %d, %d bytes", p.ErrorCode, len(p.RecordBatches))
				}
			}
		}},
		{"FindCoordinator 100k keys", func() kmsg.Request {
			r := kmsg.NewPtrFindCoordinatorRequest()
			r.Version = 4
			for range copies {
				r.CoordinatorKeys = append(r.CoordinatorKeys, "repgroup")
			}
			return r
		}, func(t *testing.T, resp kmsg.Response) {
			if cs := resp.(*kmsg.FindCoordinatorResponse).Coordinators; len(cs) != 1 || cs[0].ErrorCode != 0 {
				t.Fatalf("answered %d keys, want the one listed", len(cs))
			}
		}},
		{"OffsetCommit 100k copies of a partition", func() kmsg.Request {
			r := kmsg.NewPtrOffsetCommitRequest()
			r.Version = 8
			r.Group, r.Generation = "offs", -1
			rt := kmsg.OffsetCommitRequestTopic{Topic: "rep"}
			for i := range copies {
				rt.Partitions = append(rt.Partitions, kmsg.OffsetCommitRequestTopicPartition{Partition: 0, Offset: int64(i), LeaderEpoch: -1, Metadata: str("m")})
			}
			r.Topics = append(r.Topics, rt)
			return r
		}, func(t *testing.T, resp kmsg.Response) {
			ps := resp.(*kmsg.OffsetCommitResponse).Topics[0].Partitions
			if len(ps) != copies || ps[copies-1].ErrorCode != 0 {
				t.Fatalf("answered %d partitions, want all %d", len(ps), copies)
			}
		}},
		{"OffsetFetch 100k copies of a group", func() kmsg.Request {
			r := kmsg.NewPtrOffsetFetchRequest()
			r.Version = 8
			for range copies {
				r.Groups = append(r.Groups, kmsg.OffsetFetchRequestGroup{Group: "offs"})
			}
			return r
		}, func(t *testing.T, resp kmsg.Response) {
			gs := resp.(*kmsg.OffsetFetchResponse).Groups
			if len(gs) != 1 || len(gs[0].Topics) != 1 || gs[0].Topics[0].Partitions[0].Offset != copies-1 {
				t.Fatalf("answered %d groups (%+v), want offs once with offset %d", len(gs), gs[:min(len(gs), 1)], copies-1)
			}
		}},
		{"OffsetFetch 100k copies of a partition", func() kmsg.Request {
			r := kmsg.NewPtrOffsetFetchRequest()
			r.Version = 7
			r.Group = "offs"
			r.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "rep", Partitions: make([]int32, copies)}}
			return r
		}, func(t *testing.T, resp kmsg.Response) {
			if ts := resp.(*kmsg.OffsetFetchResponse).Topics; len(ts) != 1 || len(ts[0].Partitions) != 1 {
				t.Fatalf("answered %+v, want partition 0 once", ts)
			}
		}},
		{"OffsetDelete 100k copies", func() kmsg.Request {
			r := kmsg.NewPtrOffsetDeleteRequest()
			r.Group = "offs"
			rt := kmsg.OffsetDeleteRequestTopic{Topic: "rep"}
			for range copies {
				rt.Partitions = append(rt.Partitions, kmsg.OffsetDeleteRequestTopicPartition{Partition: 0})
			}
			r.Topics = append(r.Topics, rt)
			return r
		}, func(t *testing.T, resp kmsg.Response) {
			if r := resp.(*kmsg.OffsetDeleteResponse); r.ErrorCode != 0 {
				t.Fatalf("error %d", r.ErrorCode)
			}
		}},
		{"DescribeGroups 100k copies", func() kmsg.Request {
			r := kmsg.NewPtrDescribeGroupsRequest()
			r.Version = 5
			for range copies {
				r.Groups = append(r.Groups, "repgroup")
			}
			return r
		}, func(t *testing.T, resp kmsg.Response) {
			if gs := resp.(*kmsg.DescribeGroupsResponse).Groups; len(gs) != 1 || len(gs[0].Members) != 1 {
				t.Fatalf("answered %d groups, want repgroup once with its member", len(gs))
			}
		}},
		{"ConsumerGroupDescribe 100k copies", func() kmsg.Request {
			r := kmsg.NewPtrConsumerGroupDescribeRequest()
			for range copies {
				r.Groups = append(r.Groups, "repgroup")
			}
			return r
		}, func(t *testing.T, resp kmsg.Response) {
			if gs := resp.(*kmsg.ConsumerGroupDescribeResponse).Groups; len(gs) != 1 {
				t.Fatalf("answered %d groups, want 1", len(gs))
			}
		}},
		{"DeleteGroups 100k copies", func() kmsg.Request {
			r := kmsg.NewPtrDeleteGroupsRequest()
			r.Version = 2
			for range copies {
				r.Groups = append(r.Groups, "offs")
			}
			return r
		}, func(t *testing.T, resp kmsg.Response) {
			if gs := resp.(*kmsg.DeleteGroupsResponse).Groups; len(gs) != 1 || gs[0].ErrorCode != 0 {
				t.Fatalf("answered %+v, want offs deleted once", gs[:min(len(gs), 2)])
			}
		}},
		{"LeaveGroup 100k members", func() kmsg.Request {
			r := kmsg.NewPtrLeaveGroupRequest()
			r.Version = 5
			r.Group = "repgroup" // the well-behaved consumer's group
			for range copies {
				r.Members = append(r.Members, kmsg.LeaveGroupRequestMember{MemberID: "nobody"})
			}
			return r
		}, func(t *testing.T, resp kmsg.Response) {
			r := resp.(*kmsg.LeaveGroupResponse)
			if r.ErrorCode != 0 || len(r.Members) != 1 || r.Members[0].ErrorCode != kerr.UnknownMemberID.Code {
				t.Fatalf("answered error %d and %d members, want the one listed, UNKNOWN_MEMBER_ID", r.ErrorCode, len(r.Members))
			}
		}},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			a.check(t, roundTrip(t, addr, a.req()))
			w.t = t
			w.check(a.name)
			assertServing(t, p, baseGoroutines)
		})
	}

	// Auto-creation is bounded like CreateTopics: with num.partitions at
	// 2^31-1 a Metadata for a new topic creates nothing (it used to try to
	// place 2^31-1 partitions), and the next Metadata answers as before.
	t.Run("Metadata auto-creating 2^31-1 partitions", func(t *testing.T) {
		setNum := func(v string) {
			r := kmsg.NewPtrIncrementalAlterConfigsRequest()
			r.Resources = []kmsg.IncrementalAlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeBroker,
				Configs: []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: "num.partitions", Value: str(v)}}}}
			if rs := roundTrip(t, addr, r).(*kmsg.IncrementalAlterConfigsResponse).Resources; len(rs) != 1 || rs[0].ErrorCode != 0 {
				t.Fatalf("set num.partitions=%s: %+v", v, rs)
			}
		}
		setNum(strconv.Itoa(math.MaxInt32))
		defer setNum("1")
		r := kmsg.NewPtrMetadataRequest()
		r.Version = 12
		r.AllowAutoTopicCreation = true
		r.Topics = []kmsg.MetadataRequestTopic{{Topic: str("auto-huge")}, {Topic: str("rep")}}
		ts := roundTrip(t, addr, r).(*kmsg.MetadataResponse).Topics
		if len(ts) != 2 || ts[0].ErrorCode != kerr.UnknownTopicOrPartition.Code || len(ts[0].Partitions) != 0 || ts[1].ErrorCode != 0 {
			t.Fatalf("answered %d topics: %+v", len(ts), ts)
		}
		w.t = t
		w.check("auto-creation")
		assertServing(t, p, baseGoroutines)
	})

	// Protocol checks stay linear: a member listing 100k protocols (50k
	// distinct) joins a group whose member lists as many, the one protocol
	// they share last in both lists.
	t.Run("JoinGroup 100k protocols", func(t *testing.T) {
		join := func(member, prefix string) *kmsg.JoinGroupRequest {
			r := kmsg.NewPtrJoinGroupRequest()
			r.Version = 9
			r.Group, r.MemberID, r.ProtocolType = "joiners", member, "consumer"
			r.SessionTimeoutMillis, r.RebalanceTimeoutMillis = 10000, 10000
			for i := range copies {
				r.Protocols = append(r.Protocols, kmsg.JoinGroupRequestProtocol{Name: prefix + strconv.Itoa(i%(copies/2)), Metadata: []byte("m")})
			}
			r.Protocols = append(r.Protocols, kmsg.JoinGroupRequestProtocol{Name: "shared"})
			return r
		}
		first := roundTrip(t, addr, join("", "a")).(*kmsg.JoinGroupResponse)
		if first.ErrorCode != kerr.MemberIDRequired.Code {
			t.Fatalf("first join: error %d", first.ErrorCode)
		}
		resp := roundTrip(t, addr, join(first.MemberID, "a")).(*kmsg.JoinGroupResponse)
		if resp.ErrorCode != 0 || resp.Protocol == nil || *resp.Protocol != "a0" || len(resp.Members) != 1 {
			t.Fatalf("join: error %d, protocol %v, %d members", resp.ErrorCode, resp.Protocol, len(resp.Members))
		}
		// The leader's SyncGroup repeats its own assignment 100k times:
		// the last one is its assignment.
		sync := kmsg.NewPtrSyncGroupRequest()
		sync.Version = 5
		sync.Group, sync.MemberID, sync.Generation = "joiners", first.MemberID, resp.Generation
		sync.ProtocolType, sync.Protocol = str("consumer"), resp.Protocol
		for i := range copies {
			sync.GroupAssignment = append(sync.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: first.MemberID, MemberAssignment: []byte(strconv.Itoa(i))})
		}
		if sr := roundTrip(t, addr, sync).(*kmsg.SyncGroupResponse); sr.ErrorCode != 0 || string(sr.MemberAssignment) != strconv.Itoa(copies-1) {
			t.Fatalf("sync: error %d, assignment %q", sr.ErrorCode, sr.MemberAssignment)
		}
		second := roundTrip(t, addr, join("", "b")).(*kmsg.JoinGroupResponse)
		if second.ErrorCode != kerr.MemberIDRequired.Code {
			t.Fatalf("second member's join: error %d, want MEMBER_ID_REQUIRED", second.ErrorCode)
		}
		odd := join("", "c")
		odd.Protocols = odd.Protocols[:len(odd.Protocols)-1]
		if r := roundTrip(t, addr, odd).(*kmsg.JoinGroupResponse); r.ErrorCode != kerr.InconsistentGroupProtocol.Code {
			t.Fatalf("join sharing no protocol: error %d, want INCONSISTENT_GROUP_PROTOCOL", r.ErrorCode)
		}
		w.t = t
		w.check("JoinGroup")
		assertServing(t, p, baseGoroutines)
	})
	// A KIP-848 member subscribing to one topic named 100k times, then
	// heartbeating while claiming to own one partition 100k times.
	t.Run("ConsumerGroupHeartbeat 100k copies", func(t *testing.T) {
		hb := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		hb.Group, hb.MemberEpoch, hb.RebalanceTimeoutMillis = "cg848", 0, 10000
		hb.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		for range copies {
			hb.SubscribedTopicNames = append(hb.SubscribedTopicNames, "rep")
		}
		r := roundTrip(t, addr, hb).(*kmsg.ConsumerGroupHeartbeatResponse)
		if r.ErrorCode != 0 || r.MemberID == nil {
			t.Fatalf("join: error %d %v", r.ErrorCode, r.ErrorMessage)
		}
		owned := kmsg.ConsumerGroupHeartbeatRequestTopic{}
		if r.Assignment != nil && len(r.Assignment.Topics) > 0 {
			owned.TopicID = r.Assignment.Topics[0].TopicID
		}
		for range copies {
			owned.Partitions = append(owned.Partitions, 0)
		}
		next := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		next.Group, next.MemberID, next.MemberEpoch, next.RebalanceTimeoutMillis = "cg848", *r.MemberID, r.MemberEpoch, -1
		next.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{owned}
		if r2 := roundTrip(t, addr, next).(*kmsg.ConsumerGroupHeartbeatResponse); r2.ErrorCode != 0 && r2.ErrorCode != kerr.FencedMemberEpoch.Code {
			t.Fatalf("heartbeat: error %d %v", r2.ErrorCode, r2.ErrorMessage)
		}
		d := kmsg.NewPtrConsumerGroupDescribeRequest()
		d.Groups = []string{"cg848"}
		if gs := roundTrip(t, addr, d).(*kmsg.ConsumerGroupDescribeResponse).Groups; len(gs) != 1 || len(gs[0].Members) != 1 || len(gs[0].Members[0].SubscribedTopics) != 1 {
			t.Fatalf("described %+v, want one member subscribed to rep once", gs)
		}
		w.t = t
		w.check("ConsumerGroupHeartbeat")
		assertServing(t, p, baseGoroutines)
	})
}

// assertServing checks the broker process is alive and its goroutines and
// memory have not multiplied.
func assertServing(t *testing.T, p *proc, base float64) {
	t.Helper()
	select {
	case err := <-p.exited:
		p.exited <- err
		t.Fatalf("broker exited: %v\n%s", err, p.output())
	default:
	}
	if n := p.metric(t, "sluice_request_panics_total"); n != 0 {
		t.Fatalf("%v panics while serving requests\n%s", n, p.output())
	}
	if g := p.metric(t, "go_goroutines"); g > base+200 {
		t.Fatalf("broker runs %v goroutines, %v before the attacks", g, base)
	}
	// Each attack is a few MiB of request; answering it must not take
	// orders of magnitude more.
	if rss := p.metric(t, "process_resident_memory_bytes"); rss > 1<<30 {
		t.Fatalf("broker resident memory %.0f MiB", rss/(1<<20))
	}
}
