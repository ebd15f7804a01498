package integration

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// rawShareMember is a share-group member speaking the protocol with raw
// kmsg requests over its own connections: ShareGroupHeartbeat to join,
// ShareFetch and ShareAcknowledge (one connection, as a share session is
// tied to it) with a session epoch it tracks itself.
type rawShareMember struct {
	t       *testing.T
	cl      *kgo.Client
	node    int32
	group   string
	id      string
	topicID [16]byte
	epoch   int32 // the next share session epoch to send
}

// newMemberID returns a client-generated member id as KIP-932's clients
// make them (a base64url UUID).
func newMemberID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// joinRawShareMember joins group with a subscription to topic and waits
// until partition 0 of it is assigned. node is the partition's leader.
func joinRawShareMember(t *testing.T, addr string, node int32, group, topic string, topicID [16]byte) *rawShareMember {
	t.Helper()
	m := &rawShareMember{t: t, cl: client(t, addr), node: node, group: group, id: newMemberID(), topicID: topicID}
	var memberEpoch int32
	waitFor(t, 30*time.Second, func() error {
		req := kmsg.NewPtrShareGroupHeartbeatRequest()
		req.GroupID, req.MemberID, req.MemberEpoch = group, m.id, memberEpoch
		req.SubscribedTopicNames = []string{topic}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := req.RequestWith(ctx, m.cl)
		if err != nil {
			return err
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return fmt.Errorf("ShareGroupHeartbeat: %w", err)
		}
		memberEpoch = resp.MemberEpoch
		if resp.Assignment == nil {
			return fmt.Errorf("member %s: no assignment yet (epoch %d)", m.id, memberEpoch)
		}
		for _, tp := range resp.Assignment.TopicPartitions {
			if tp.TopicID == topicID && slices.Contains(tp.Partitions, 0) {
				return nil
			}
		}
		return fmt.Errorf("member %s assigned %+v", m.id, resp.Assignment.TopicPartitions)
	})
	return m
}

func (m *rawShareMember) request(req kmsg.Request) kmsg.Response {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := m.cl.Broker(int(m.node)).Request(ctx, req)
	if err != nil {
		m.t.Fatalf("%T: %v", req, err)
	}
	return resp
}

// advance moves the session epoch on after an answer without a
// request-level error, as clients do.
func (m *rawShareMember) advance() {
	if m.epoch == 1<<31-1 {
		m.epoch = 1
	} else {
		m.epoch++
	}
}

// shareFetchReq is a ShareFetch of partition 0 at epoch acquiring at most
// maxRecords (record_limit mode), carrying acks.
func (m *rawShareMember) shareFetchReq(epoch int32, maxRecords int32, acks ...kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch) *kmsg.ShareFetchRequest {
	req := kmsg.NewPtrShareFetchRequest()
	req.GroupID, req.MemberID, req.ShareSessionEpoch = kmsg.StringPtr(m.group), kmsg.StringPtr(m.id), epoch
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 500, 1, 1<<20
	req.MaxRecords, req.BatchSize, req.ShareAcquireMode = maxRecords, maxRecords, 1
	rt := kmsg.NewShareFetchRequestTopic()
	rt.TopicID = m.topicID
	rp := kmsg.NewShareFetchRequestTopicPartition()
	rp.Partition, rp.PartitionMaxBytes = 0, 1<<20
	rp.AcknowledgementBatches = acks
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// acquired is a record offset with the delivery count it was acquired with.
type acquired struct {
	offset int64
	count  int16
}

// fetch sends ShareFetch requests in the member's session until one
// acquires records, and returns them.
func (m *rawShareMember) fetch(maxRecords int32) []acquired {
	m.t.Helper()
	var out []acquired
	waitFor(m.t, 20*time.Second, func() error {
		resp := m.request(m.shareFetchReq(m.epoch, maxRecords)).(*kmsg.ShareFetchResponse)
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			m.t.Fatalf("ShareFetch at epoch %d: %v", m.epoch, err)
		}
		m.advance()
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
					return fmt.Errorf("ShareFetch partition %d: %w", rp.Partition, err)
				}
				for _, ar := range rp.AcquiredRecords {
					for o := ar.FirstOffset; o <= ar.LastOffset; o++ {
						out = append(out, acquired{o, ar.DeliveryCount})
					}
				}
			}
		}
		if len(out) == 0 {
			return fmt.Errorf("member %s acquired nothing", m.id)
		}
		return nil
	})
	return out
}

// ackBatch is one acknowledgement batch.
func ackBatch(first, last int64, types ...int8) kmsg.ShareAcknowledgeRequestTopicPartitionAcknowledgementBatch {
	b := kmsg.NewShareAcknowledgeRequestTopicPartitionAcknowledgementBatch()
	b.FirstOffset, b.LastOffset, b.AcknowledgeTypes = first, last, types
	return b
}

// acknowledge sends ShareAcknowledge at epoch for batches of partition 0 of
// topicID and returns the request-level and the partition-level error
// codes. The member's epoch moves on when the request-level code is 0.
func (m *rawShareMember) acknowledgeAt(epoch int32, topicID [16]byte, batches ...kmsg.ShareAcknowledgeRequestTopicPartitionAcknowledgementBatch) (top, part int16) {
	m.t.Helper()
	req := kmsg.NewPtrShareAcknowledgeRequest()
	req.GroupID, req.MemberID, req.ShareSessionEpoch = kmsg.StringPtr(m.group), kmsg.StringPtr(m.id), epoch
	rt := kmsg.NewShareAcknowledgeRequestTopic()
	rt.TopicID = topicID
	rp := kmsg.NewShareAcknowledgeRequestTopicPartition()
	rp.AcknowledgementBatches = batches
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := m.request(req).(*kmsg.ShareAcknowledgeResponse)
	if resp.ErrorCode != 0 {
		return resp.ErrorCode, 0
	}
	if epoch == m.epoch {
		m.advance()
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if t.TopicID == topicID && p.Partition == 0 {
				return 0, p.ErrorCode
			}
		}
	}
	m.t.Fatalf("ShareAcknowledge answer without partition 0 of the topic: %+v", resp.Topics)
	return 0, 0
}

func (m *rawShareMember) acknowledge(batches ...kmsg.ShareAcknowledgeRequestTopicPartitionAcknowledgementBatch) (top, part int16) {
	m.t.Helper()
	return m.acknowledgeAt(m.epoch, m.topicID, batches...)
}

func codeName(code int16) string {
	if code == 0 {
		return "NONE"
	}
	return kerr.ErrorForCode(code).Error()
}

// offsetsOf lists the offsets of acquired records.
func offsetsOf(as []acquired) []int64 {
	var out []int64
	for _, a := range as {
		out = append(out, a.offset)
	}
	return out
}

// TestShareBadAcknowledgementsKafkaErrorsStateUnchanged sends, as raw
// requests, the acknowledgements a broken or hostile share consumer might:
// for records it did not acquire, for another member's records, for
// offsets outside the in-flight window, malformed batches, a share session
// epoch out of order, epoch 0, a member without a session, an unknown
// topic id. Each gets Kafka's error code (as Kafka's SharePartitionManager,
// KafkaApis.validateAcknowledgementBatches and SharePartition answer it),
// applies nothing (an acknowledgement request is all or nothing), and
// afterwards the members consume exactly the records they should: their
// acquisitions are intact, the released record comes back with delivery
// count 2, and the share-partition start offset reaches the end.
func TestShareBadAcknowledgementsKafkaErrorsStateUnchanged(t *testing.T) {
	t.Parallel()
	ib := startBroker(t, shareBrokerSettings())
	addr := ib.addr()
	const topic, group, n = "share-bad", "share-bad-g", 10
	createTopic(t, addr, topic, 1, nil)
	cl := client(t, addr)
	adm := kadm.NewClient(cl)
	// The default lock (30 s) outlasts the test: no acquisition expires.
	shareGroupConfigs(t, cl, group, "share.auto.offset.reset", "earliest")
	produceEach(t, cl, topic, seqValues("bad", n)...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	topicID := [16]byte(md.Topics[topic].ID)
	node := md.Topics[topic].Partitions[0].Leader

	m1 := joinRawShareMember(t, addr, node, group, topic, topicID)
	m2 := joinRawShareMember(t, addr, node, group, topic, topicID)
	got1 := m1.fetch(3)
	if !slices.Equal(offsetsOf(got1), []int64{0, 1, 2}) {
		t.Fatalf("member 1 acquired %v, want offsets 0-2 (record_limit mode, 3 records)", got1)
	}
	got2 := m2.fetch(3)
	if !slices.Equal(offsetsOf(got2), []int64{3, 4, 5}) {
		t.Fatalf("member 2 acquired %v, want offsets 3-5", got2)
	}
	// A valid release of offset 1 makes it Available again, inside the
	// window.
	if top, part := m1.acknowledge(ackBatch(1, 1, 2)); top != 0 || part != 0 {
		t.Fatalf("releasing offset 1: %s / %s", codeName(top), codeName(part))
	}

	const (
		accept, release, reject = 1, 2, 3
	)
	invalidRecordState := kerr.InvalidRecordState.Code
	invalidRequest := kerr.InvalidRequest.Code
	cases := []struct {
		name    string
		batches []kmsg.ShareAcknowledgeRequestTopicPartitionAcknowledgementBatch
		want    int16
	}{
		{"accept a record not acquired (released, Available)", mkBatches(ackBatch(1, 1, accept)), invalidRecordState},
		{"accept another member's record", mkBatches(ackBatch(3, 3, accept)), invalidRecordState},
		{"reject another member's records", mkBatches(ackBatch(3, 5, reject)), invalidRecordState},
		{"own record and another member's (all or nothing)", mkBatches(ackBatch(0, 0, accept), ackBatch(4, 4, accept)), invalidRecordState},
		{"own records spanning a record not acquired", mkBatches(ackBatch(0, 2, accept)), invalidRecordState},
		{"offsets past the in-flight window", mkBatches(ackBatch(50, 52, accept)), invalidRequest},
		{"own record and offsets past the window", mkBatches(ackBatch(0, 0, accept), ackBatch(40, 40, accept)), invalidRequest},
		{"LastOffset before FirstOffset", mkBatches(ackBatch(2, 0, accept)), invalidRequest},
		{"overlapping batches", mkBatches(ackBatch(0, 2, accept), ackBatch(1, 1, accept)), invalidRequest},
		{"batches out of order", mkBatches(ackBatch(2, 2, accept), ackBatch(0, 0, accept)), invalidRequest},
		{"more types than offsets", mkBatches(ackBatch(0, 0, accept, accept)), invalidRequest},
		{"fewer types than offsets", mkBatches(ackBatch(0, 2, accept, release)), invalidRequest},
		{"no types", mkBatches(ackBatch(0, 0)), invalidRequest},
		{"unknown acknowledge type", mkBatches(ackBatch(0, 0, 9)), invalidRequest},
		{"negative acknowledge type", mkBatches(ackBatch(0, 0, -1)), invalidRequest},
	}
	for _, c := range cases {
		top, part := m1.acknowledge(c.batches...)
		if top != 0 || part != c.want {
			t.Errorf("%s: request %s, partition %s; want NONE, %s", c.name, codeName(top), codeName(part), codeName(c.want))
		}
	}

	// Session errors: answered for the whole request, epoch unchanged.
	epoch := m1.epoch
	if top, _ := m1.acknowledgeAt(epoch+3, topicID, ackBatch(0, 0, accept)); top != kerr.InvalidShareSessionEpoch.Code {
		t.Errorf("ShareAcknowledge with an epoch ahead of the session: %s, want INVALID_SHARE_SESSION_EPOCH", codeName(top))
	}
	if epoch > 1 {
		if top, _ := m1.acknowledgeAt(epoch-1, topicID, ackBatch(0, 0, accept)); top != kerr.InvalidShareSessionEpoch.Code {
			t.Errorf("ShareAcknowledge with a stale epoch: %s, want INVALID_SHARE_SESSION_EPOCH", codeName(top))
		}
	}
	if top, _ := m1.acknowledgeAt(0, topicID, ackBatch(0, 0, accept)); top != kerr.InvalidShareSessionEpoch.Code {
		t.Errorf("ShareAcknowledge with epoch 0: %s, want INVALID_SHARE_SESSION_EPOCH", codeName(top))
	}
	resp := m1.request(m1.shareFetchReq(epoch+3, 3)).(*kmsg.ShareFetchResponse)
	if resp.ErrorCode != kerr.InvalidShareSessionEpoch.Code {
		t.Errorf("ShareFetch with an epoch ahead of the session: %s, want INVALID_SHARE_SESSION_EPOCH", codeName(resp.ErrorCode))
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if len(rp.AcquiredRecords) > 0 {
				t.Errorf("ShareFetch with a bad epoch acquired %+v", rp.AcquiredRecords)
			}
		}
	}
	if m1.epoch != epoch {
		t.Fatalf("the session epoch moved on a session error")
	}
	stranger := &rawShareMember{t: t, cl: client(t, addr), node: node, group: group, id: newMemberID(), topicID: topicID, epoch: 1}
	if top, _ := stranger.acknowledge(ackBatch(0, 0, accept)); top != kerr.ShareSessionNotFound.Code {
		t.Errorf("ShareAcknowledge of a member without a session: %s, want SHARE_SESSION_NOT_FOUND", codeName(top))
	}
	if r := stranger.request(stranger.shareFetchReq(1, 3)).(*kmsg.ShareFetchResponse); r.ErrorCode != kerr.ShareSessionNotFound.Code {
		t.Errorf("ShareFetch at epoch 1 of a member without a session: %s, want SHARE_SESSION_NOT_FOUND", codeName(r.ErrorCode))
	}
	// A ShareFetch opening a session (epoch 0) may not carry
	// acknowledgements (Kafka: INVALID_REQUEST), and opens nothing.
	ack := kmsg.NewShareFetchRequestTopicPartitionAcknowledgementBatch()
	ack.FirstOffset, ack.LastOffset, ack.AcknowledgeTypes = 0, 0, []int8{accept}
	if r := stranger.request(stranger.shareFetchReq(0, 3, ack)).(*kmsg.ShareFetchResponse); r.ErrorCode != kerr.InvalidRequest.Code {
		t.Errorf("ShareFetch opening a session with acknowledgements: %s, want INVALID_REQUEST", codeName(r.ErrorCode))
	}
	if top, _ := stranger.acknowledge(ackBatch(0, 0, accept)); top != kerr.ShareSessionNotFound.Code {
		t.Errorf("ShareAcknowledge after a refused session opening: %s, want SHARE_SESSION_NOT_FOUND", codeName(top))
	}
	var unknownTopic [16]byte
	_, _ = rand.Read(unknownTopic[:])
	if top, part := m1.acknowledgeAt(m1.epoch, unknownTopic, ackBatch(0, 0, accept)); top != 0 || part != kerr.UnknownTopicID.Code {
		t.Errorf("ShareAcknowledge for an unknown topic id: %s / %s, want NONE / UNKNOWN_TOPIC_ID", codeName(top), codeName(part))
	}

	// Nothing changed: m1 still holds 0 and 2, m2 holds 3-5, 1 is
	// Available with one delivery behind it.
	if top, part := m1.acknowledge(ackBatch(0, 0, accept), ackBatch(2, 2, accept)); top != 0 || part != 0 {
		t.Errorf("member 1 accepting its records 0 and 2 after the bad requests: %s / %s", codeName(top), codeName(part))
	}
	if top, part := m2.acknowledge(ackBatch(3, 5, accept)); top != 0 || part != 0 {
		t.Errorf("member 2 accepting its records 3-5 after the bad requests: %s / %s", codeName(top), codeName(part))
	}
	seen := map[int64]int16{}
	for len(seen) < n-5 {
		got := m1.fetch(3)
		for _, a := range got {
			if _, dup := seen[a.offset]; dup || a.offset < 1 || a.offset == 2 || (a.offset >= 3 && a.offset <= 5) {
				t.Fatalf("member 1 acquired offset %d (acquired now: %v, before: %v)", a.offset, got, seen)
			}
			seen[a.offset] = a.count
		}
		var batches []kmsg.ShareAcknowledgeRequestTopicPartitionAcknowledgementBatch
		for _, a := range got {
			batches = append(batches, ackBatch(a.offset, a.offset, accept))
		}
		if top, part := m1.acknowledge(batches...); top != 0 || part != 0 {
			t.Fatalf("accepting %v: %s / %s", got, codeName(top), codeName(part))
		}
	}
	for o, c := range seen {
		want := int16(1)
		if o == 1 {
			want = 2
		}
		if c != want {
			t.Errorf("offset %d acquired with delivery count %d, want %d", o, c, want)
		}
	}
	waitShareStartOffset(t, adm, group, topic, 0, n, 15*time.Second)
}

func mkBatches(bs ...kmsg.ShareAcknowledgeRequestTopicPartitionAcknowledgementBatch) []kmsg.ShareAcknowledgeRequestTopicPartitionAcknowledgementBatch {
	return bs
}
