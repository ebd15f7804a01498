package group

// Repeated entries in requests. No request may cost more than its distinct
// entries need: a group id, partition or protocol listed many times is
// looked up, written and answered once. Where answering every copy would
// multiply the response (a described group's members, a group's committed
// offsets), each distinct entry is answered once; work done per entry
// (records written to __consumer_offsets) is done once per distinct entry.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/internal/uniq"
)

// uniqueProtocols drops repeats of a protocol name, keeping the first, which
// is the one a member's metadata is read from (Kafka's member keeps its
// protocols keyed by name).
func uniqueProtocols(ps []kmsg.JoinGroupRequestProtocol) []kmsg.JoinGroupRequestProtocol {
	return uniq.By(ps, func(p kmsg.JoinGroupRequestProtocol) string { return p.Name })
}

// uniqueFetchTopics merges repeated topics of an OffsetFetch and drops
// repeated partitions, keeping the order of first appearance. nil stays
// nil (every committed partition).
func uniqueFetchTopics(ts []fetchTopic) []fetchTopic {
	if ts == nil {
		return nil
	}
	total := 0
	for _, t := range ts {
		total += len(t.partitions)
	}
	if len(ts) < 2 && total < 2 {
		return ts
	}
	type key struct {
		topic string
		p     int32
	}
	byTopic := make(map[string]int, uniq.SizeHint(len(ts)))
	seen := make(map[key]struct{}, uniq.SizeHint(total))
	out := make([]fetchTopic, 0, uniq.SizeHint(len(ts)))
	for _, t := range ts {
		k, ok := byTopic[t.topic]
		if !ok {
			k = len(out)
			byTopic[t.topic] = k
			out = append(out, fetchTopic{topic: t.topic, partitions: []int32{}})
		}
		for _, p := range t.partitions {
			if _, ok := seen[key{t.topic, p}]; ok {
				continue
			}
			seen[key{t.topic, p}] = struct{}{}
			out[k].partitions = append(out[k].partitions, p)
		}
	}
	return out
}

// uniqueLeaving drops repeats of a leaving member (the same member id and
// instance id), keeping the first: each is answered once, as an answer per
// copy would be many times the size of the request.
func uniqueLeaving(ms []kmsg.LeaveGroupRequestMember) []kmsg.LeaveGroupRequestMember {
	return uniq.By(ms, func(m kmsg.LeaveGroupRequestMember) string {
		if m.InstanceID != nil {
			return "\x01" + *m.InstanceID + "\x00" + m.MemberID
		}
		return "\x00" + m.MemberID
	})
}
