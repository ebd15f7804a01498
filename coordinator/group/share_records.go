package group

// The __consumer_offsets record of share groups (see doc.go, "Records in
// __consumer_offsets"). Kafka writes its share groups as record types 9-15
// (ShareGroupPartitionMetadata ... ShareGroupStatePartitionMetadata) in its
// own flexible encoding; Sluice writes one Sluice-private record per share
// group, type 0x7F02, next to its KIP-848 records, and ignores Kafka's
// types as it does for consumer groups. Members are not persisted (Kafka's
// loader does not restore share members either): after a load the group is
// Empty with its epoch and last subscribed topics, and members heartbeating
// with their old epoch get UNKNOWN_MEMBER_ID and join again.

import "time"

// keyShareGroup is the record type of a share group's metadata record.
const keyShareGroup int16 = 0x7F02

// shareGroupRecord is the decoded value of a keyShareGroup record.
type shareGroupRecord struct {
	epoch      int32
	subscribed []string
}

func shareGroupKey(group string) []byte {
	var e enc
	e.int16(keyShareGroup)
	e.str(group)
	return e.b
}

// shareGroupValue encodes v0: int16 version=0 | int32 group epoch |
// int32 n, n x string subscribed topic.
func shareGroupValue(sg *shareGroup) []byte {
	var e enc
	e.int16(0)
	e.int32(sg.epoch)
	e.int32(int32(len(sg.subscribed)))
	for _, t := range sg.subscribed {
		e.str(t)
	}
	return e.b
}

func decodeShareGroupValue(b []byte) (shareGroupRecord, error) {
	d := dec{b: b}
	var r shareGroupRecord
	if v := d.int16(); v != 0 && d.err == nil {
		return r, errShortRecord
	}
	r.epoch = d.int32()
	for range d.count(2) {
		r.subscribed = append(r.subscribed, d.str())
	}
	return r, d.done()
}

func replayShareGroup(r Record, get func(string) *replayedGroup) (string, error) {
	d := dec{b: r.Key[2:]}
	id := d.str()
	if err := d.done(); err != nil {
		return "", err
	}
	rg := get(id)
	rg.share = nil
	if r.Value == nil {
		return id, nil
	}
	v, err := decodeShareGroupValue(r.Value)
	if err != nil {
		return "", err
	}
	rg.share = &v
	return id, nil
}

// buildShareLocked restores a share group from its record: Empty, at its
// epoch, with its last subscribed topics.
func (c *Coordinator) buildShareLocked(g *group, rg *replayedGroup, _ time.Time) {
	c.toShareLocked(g)
	g.persistedShare = true
	g.sg.epoch = rg.share.epoch
	g.sg.subscribed = rg.share.subscribed
	// A share group has no committed offsets and no other kind's records;
	// any left by a lost tombstone are erased on its next write.
	if rg.classic != nil {
		g.persistedClassic, g.dirty = true, true
	}
	if rg.consumer != nil || len(rg.members) > 0 {
		g.persistedConsumer, g.dirty = true, true
		for id := range rg.members {
			g.memberTombstones = append(g.memberTombstones, id)
		}
	}
}

// snapshotShareLocked is snapshotLocked for a share group.
func snapshotShareLocked(g *group, s *snapshot) {
	sg := g.sg
	if sg.dirty {
		s.records = append(s.records, Record{Key: shareGroupKey(g.id), Value: shareGroupValue(sg)})
		s.share, s.dirtyGroup, sg.dirty = 1, true, false
	}
	if g.persistedClassic {
		s.records = append(s.records, Record{Key: groupMetadataKey(g.id)})
		s.classic = 0
	}
	for _, id := range g.memberTombstones {
		s.records = append(s.records, Record{Key: consumerMemberKey(g.id, id)})
	}
	s.memberTombstones, g.memberTombstones = g.memberTombstones, nil
	if g.persistedConsumer {
		s.records = append(s.records, Record{Key: consumerGroupKey(g.id)})
		s.consumer = 0
	}
}
