package group

// Encoding of the records this package writes to __consumer_offsets. The
// classic records use Kafka's own schemas through kmsg, so Kafka tooling can
// read them; the KIP-848 records use a Sluice encoding documented in doc.go
// ("Record formats"), because kmsg has no ConsumerGroup* record types.

import (
	"encoding/binary"
	"errors"
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Key versions (the leading int16 of every key, which Kafka uses as the
// record type).
const (
	keyOffsetCommitV0 int16 = 0 // OffsetCommitKey, written by Kafka < 0.9
	keyOffsetCommit   int16 = 1 // OffsetCommitKey
	keyGroupMetadata  int16 = 2 // GroupMetadataKey
	// Sluice-private record types for KIP-848 groups, far above the types
	// Kafka assigns (Kafka readers skip unknown types).
	keyConsumerGroup  int16 = 0x7F00
	keyConsumerMember int16 = 0x7F01
)

// errShortRecord reports a __consumer_offsets record that ends early or has
// an impossible length; Load skips such records.
var errShortRecord = errors.New("coordinator: malformed __consumer_offsets record")

func offsetKey(group, topic string, partition int32) []byte {
	k := kmsg.OffsetCommitKey{Version: keyOffsetCommit, Group: group, Topic: topic, Partition: partition}
	return k.AppendTo(nil)
}

// offsetValue encodes o as OffsetCommitValue v3, or v1 when the commit
// carried an explicit retention (the only version with ExpireTimestamp), as
// Kafka does.
func offsetValue(o committedOffset) []byte {
	v := kmsg.NewOffsetCommitValue()
	v.Version = 3
	v.LeaderEpoch = o.leaderEpoch
	if o.expireTime >= 0 {
		v.Version = 1
		v.ExpireTimestamp = o.expireTime
	}
	v.Offset = o.offset
	v.Metadata = o.metadata
	v.CommitTimestamp = o.commitTime
	return v.AppendTo(nil)
}

func groupMetadataKey(group string) []byte {
	k := kmsg.GroupMetadataKey{Version: keyGroupMetadata, Group: group}
	return k.AppendTo(nil)
}

// classicValue encodes g as GroupMetadataValue v3 (KIP-345), the version
// Kafka 2.3+ writes. Only the chosen protocol's metadata is kept per member.
func classicValue(g *group) []byte {
	v := kmsg.NewGroupMetadataValue()
	v.Version = 3
	v.ProtocolType = g.protocolType
	v.Generation = g.generation
	if len(g.members) > 0 {
		v.Protocol = kmsg.StringPtr(g.protocol)
		v.Leader = kmsg.StringPtr(g.leader)
	}
	v.CurrentStateTimestamp = -1
	if !g.stateSince.IsZero() {
		v.CurrentStateTimestamp = g.stateSince.UnixMilli()
	}
	for _, m := range g.ordered() {
		vm := kmsg.NewGroupMetadataValueMember()
		vm.MemberID = m.id
		vm.InstanceID = m.instanceID
		vm.ClientID = m.clientID
		vm.ClientHost = m.clientHost
		vm.RebalanceTimeoutMillis = millis(m.rebalanceTimeout)
		vm.SessionTimeoutMillis = millis(m.sessionTimeout)
		vm.Subscription = m.metadataFor(g.protocol)
		vm.Assignment = m.assignment
		v.Members = append(v.Members, vm)
	}
	return v.AppendTo(nil)
}

func consumerGroupKey(group string) []byte {
	var e enc
	e.int16(keyConsumerGroup)
	e.str(group)
	return e.b
}

func consumerMemberKey(group, memberID string) []byte {
	var e enc
	e.int16(keyConsumerMember)
	e.str(group)
	e.str(memberID)
	return e.b
}

// consumerGroupRecord is the decoded value of a keyConsumerGroup record.
type consumerGroupRecord struct {
	epoch, targetEpoch int32
	assignor           string
	topics             []topicMeta
}

func consumerGroupValue(cg *consumerGroup) []byte {
	var e enc
	e.int16(0)
	e.int32(cg.epoch)
	e.int32(cg.targetEpoch)
	e.str(cg.assignor)
	e.int32(int32(len(cg.topics)))
	for _, name := range sortedKeys(cg.topics) {
		t := cg.topics[name]
		e.str(t.name)
		e.b = append(e.b, t.id[:]...)
		e.int32(t.partitions)
	}
	return e.b
}

func decodeConsumerGroupValue(b []byte) (consumerGroupRecord, error) {
	d := dec{b: b}
	var r consumerGroupRecord
	if v := d.int16(); v != 0 && d.err == nil {
		return r, errShortRecord
	}
	r.epoch = d.int32()
	r.targetEpoch = d.int32()
	r.assignor = d.str()
	n := d.count(22)
	for range n {
		var t topicMeta
		t.name = d.str()
		t.id = d.uuid()
		t.partitions = d.int32()
		r.topics = append(r.topics, t)
	}
	return r, d.done()
}

func consumerMemberValue(m *cmember) []byte {
	var e enc
	e.int16(0)
	e.nstr(m.instanceID)
	e.nstr(m.rackID)
	e.str(m.clientID)
	e.str(m.clientHost)
	e.int32(m.epoch)
	e.int32(m.prevEpoch)
	e.b = append(e.b, byte(m.state))
	e.int32(millis(m.rebalanceTimeout))
	e.str(m.assignor)
	e.str(m.regex)
	e.int32(int32(len(m.topics)))
	for _, t := range m.topics {
		e.str(t)
	}
	assigned := sortedParts(m.assigned)
	e.int32(int32(len(assigned)))
	for _, tp := range assigned {
		e.tp(tp)
		e.int32(m.assigned[tp])
	}
	for _, set := range []partSet{m.revoking, m.target} {
		ps := sortedParts(set)
		e.int32(int32(len(ps)))
		for _, tp := range ps {
			e.tp(tp)
		}
	}
	return e.b
}

func decodeConsumerMemberValue(id string, b []byte) (*cmember, error) {
	d := dec{b: b}
	if v := d.int16(); v != 0 && d.err == nil {
		return nil, errShortRecord
	}
	m := newCMember(id)
	m.instanceID = d.nstr()
	m.rackID = d.nstr()
	m.clientID = d.str()
	m.clientHost = d.str()
	m.epoch = d.int32()
	m.prevEpoch = d.int32()
	m.state = memberState(d.int8())
	m.rebalanceTimeout = time.Duration(d.int32()) * time.Millisecond
	m.assignor = d.str()
	m.regex = d.str()
	for range d.count(2) {
		m.topics = append(m.topics, d.str())
	}
	for range d.count(24) {
		tp := d.tp()
		m.assigned[tp] = d.int32()
	}
	for _, set := range []partSet{m.revoking, m.target} {
		for range d.count(20) {
			set[d.tp()] = struct{}{}
		}
	}
	return m, d.done()
}

// enc appends big-endian fields in Kafka's classic (non-flexible) style:
// int16-length strings, -1 for null.
type enc struct{ b []byte }

func (e *enc) int16(v int16) { e.b = binary.BigEndian.AppendUint16(e.b, uint16(v)) }
func (e *enc) int32(v int32) { e.b = binary.BigEndian.AppendUint32(e.b, uint32(v)) }

func (e *enc) str(s string) {
	if len(s) > math.MaxInt16 {
		s = s[:math.MaxInt16]
	}
	e.int16(int16(len(s)))
	e.b = append(e.b, s...)
}

func (e *enc) nstr(s *string) {
	if s == nil {
		e.int16(-1)
		return
	}
	e.str(*s)
}

func (e *enc) tp(tp tpid) {
	e.b = append(e.b, tp.id[:]...)
	e.int32(tp.p)
}

// dec reads what enc writes. The first failure sticks in err and every later
// read returns zero values, so decoders read straight through and check once.
type dec struct {
	b   []byte
	err error
}

func (d *dec) take(n int) []byte {
	if d.err != nil || n < 0 || len(d.b) < n {
		d.err = errShortRecord
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *dec) int8() int8 {
	if b := d.take(1); b != nil {
		return int8(b[0])
	}
	return 0
}

func (d *dec) int16() int16 {
	if b := d.take(2); b != nil {
		return int16(binary.BigEndian.Uint16(b))
	}
	return 0
}

func (d *dec) int32() int32 {
	if b := d.take(4); b != nil {
		return int32(binary.BigEndian.Uint32(b))
	}
	return 0
}

func (d *dec) str() string {
	n := d.int16()
	if n < 0 {
		d.err = errShortRecord
		return ""
	}
	return string(d.take(int(n)))
}

func (d *dec) nstr() *string {
	n := d.int16()
	if n < 0 || d.err != nil {
		return nil
	}
	s := string(d.take(int(n)))
	return &s
}

func (d *dec) uuid() (id [16]byte) {
	copy(id[:], d.take(16))
	return id
}

func (d *dec) tp() tpid {
	id := d.uuid()
	return tpid{id: id, p: d.int32()}
}

// count reads an array length and checks that the rest of the input can
// hold that many elements of at least minSize bytes, so a corrupt length
// cannot make the decoder loop or allocate without bound.
func (d *dec) count(minSize int) int {
	n := d.int32()
	if n < 0 || (minSize > 0 && int64(n)*int64(minSize) > int64(len(d.b))) {
		d.err = errShortRecord
		return 0
	}
	if d.err != nil {
		return 0
	}
	return int(n)
}

func (d *dec) done() error {
	if d.err == nil && len(d.b) != 0 {
		return errShortRecord
	}
	return d.err
}
