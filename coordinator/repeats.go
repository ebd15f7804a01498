package coordinator

// Repeated entries in requests. No request may cost more than its distinct
// entries need: a group id, partition or protocol listed many times is
// looked up, written and answered once. Where answering every copy would
// multiply the response (a described group's members, a group's committed
// offsets), each distinct entry is answered once; work done per entry
// (records written to __consumer_offsets) is done once per distinct entry.

import "github.com/twmb/franz-go/pkg/kmsg"

// uniqueStrings returns ss without repeats, first occurrences in order. It
// returns ss itself when nothing repeats and ss is short.
func uniqueStrings(ss []string) []string {
	if len(ss) < 2 {
		return ss
	}
	seen := make(map[string]struct{}, sizeHint(len(ss)))
	out := ss[:0:0]
	for _, s := range ss {
		if _, ok := seen[s]; ok {
			continue
		}
		seen[s] = struct{}{}
		out = append(out, s)
	}
	return out
}

// uniqueProtocols drops repeats of a protocol name, keeping the first, which
// is the one a member's metadata is read from (Kafka's member keeps its
// protocols keyed by name).
func uniqueProtocols(ps []kmsg.JoinGroupRequestProtocol) []kmsg.JoinGroupRequestProtocol {
	if len(ps) < 2 {
		return ps
	}
	seen := make(map[string]struct{}, sizeHint(len(ps)))
	out := make([]kmsg.JoinGroupRequestProtocol, 0, sizeHint(len(ps)))
	for _, p := range ps {
		if _, ok := seen[p.Name]; ok {
			continue
		}
		seen[p.Name] = struct{}{}
		out = append(out, p)
	}
	return out
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
	byTopic := make(map[string]int, sizeHint(len(ts)))
	seen := make(map[key]struct{}, sizeHint(total))
	out := make([]fetchTopic, 0, sizeHint(len(ts)))
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

// sizeHint sizes a map for the distinct entries of a list of n: n itself
// up to a point, since a hostile list is mostly repeats and a map sized for
// millions of entries would itself be the balloon.
func sizeHint(n int) int { return min(n, 1024) }

// uniqueLeaving drops repeats of a leaving member (the same member id and
// instance id), keeping the first: each is answered once, as an answer per
// copy would be many times the size of the request.
func uniqueLeaving(ms []kmsg.LeaveGroupRequestMember) []kmsg.LeaveGroupRequestMember {
	if len(ms) < 2 {
		return ms
	}
	seen := make(map[string]struct{}, sizeHint(len(ms)))
	out := ms[:0:0]
	for _, m := range ms {
		k := "\x00" + m.MemberID
		if m.InstanceID != nil {
			k = "\x01" + *m.InstanceID + "\x00" + m.MemberID
		}
		if _, ok := seen[k]; ok {
			continue
		}
		seen[k] = struct{}{}
		out = append(out, m)
	}
	return out
}
