package group

// Server-side assignors for KIP-848 groups (group.consumer.assignors). Both
// are pure functions of the members' subscriptions, the topic metadata and,
// for "uniform", the previous target assignment.

import (
	"bytes"
	"cmp"
	"slices"
)

// The server-side assignor names a KIP-848 member may ask for.
const (
	AssignorUniform = "uniform"
	AssignorRange   = "range"
)

// assignInput is what an assignor sees.
type assignInput struct {
	members []string                   // sorted member ids
	subs    map[string]map[string]bool // member -> subscribed topic names (resolved ones only)
	topics  map[string]topicMeta       // name -> metadata
	prev    map[string]partSet         // previous target, for stickiness
}

func assign(name string, in assignInput) map[string]partSet {
	if name == AssignorRange {
		return assignRange(in)
	}
	return assignUniform(in)
}

// assignUniform spreads partitions evenly and stickily: a member keeps every
// partition of its previous target that still exists and that it still
// subscribes to, unowned partitions go to the least-loaded subscriber, and
// partitions then move from a member to a subscriber holding at least two
// fewer until no such move exists. With identical subscriptions that leaves
// every member with floor(N/M) or ceil(N/M) partitions.
func assignUniform(in assignInput) map[string]partSet {
	out := make(map[string]partSet, len(in.members))
	for _, id := range in.members {
		out[id] = make(partSet)
	}
	byID := make(map[[16]byte]topicMeta, len(in.topics))
	for _, t := range in.topics {
		byID[t.id] = t
	}
	owner := make(map[tpid]string)
	for _, id := range in.members {
		for _, tp := range sortedParts(in.prev[id]) {
			t, ok := byID[tp.id]
			if !ok || tp.p < 0 || tp.p >= t.partitions || !in.subs[id][t.name] {
				continue
			}
			if _, taken := owner[tp]; taken {
				continue
			}
			owner[tp] = id
			out[id][tp] = struct{}{}
		}
	}
	for _, name := range sortedKeys(in.topics) {
		t := in.topics[name]
		for p := range t.partitions {
			tp := tpid{id: t.id, p: p}
			if _, ok := owner[tp]; ok {
				continue
			}
			if best := leastLoaded(in, out, name, ""); best != "" {
				owner[tp] = best
				out[best][tp] = struct{}{}
			}
		}
	}
	for moved := true; moved; {
		moved = false
		for _, a := range byLoadDesc(in.members, out) {
			parts := sortedParts(out[a])
			for i := len(parts) - 1; i >= 0; i-- {
				tp := parts[i]
				b := leastLoaded(in, out, byID[tp.id].name, a)
				if b == "" || len(out[b])+1 >= len(out[a]) {
					continue
				}
				delete(out[a], tp)
				out[b][tp] = struct{}{}
				moved = true
			}
		}
	}
	return out
}

// leastLoaded returns the subscriber of topic holding the fewest partitions
// (first in member order on ties), skipping skip.
func leastLoaded(in assignInput, out map[string]partSet, topic, skip string) string {
	best := ""
	for _, id := range in.members {
		if id == skip || !in.subs[id][topic] {
			continue
		}
		if best == "" || len(out[id]) < len(out[best]) {
			best = id
		}
	}
	return best
}

func byLoadDesc(members []string, out map[string]partSet) []string {
	ms := slices.Clone(members)
	slices.SortStableFunc(ms, func(a, b string) int { return cmp.Compare(len(out[b]), len(out[a])) })
	return ms
}

// assignRange gives each topic's subscribers contiguous partition ranges in
// member order, the first N mod M members one extra, like Kafka's range
// assignor. It is not sticky.
func assignRange(in assignInput) map[string]partSet {
	out := make(map[string]partSet, len(in.members))
	for _, id := range in.members {
		out[id] = make(partSet)
	}
	for _, name := range sortedKeys(in.topics) {
		t := in.topics[name]
		var subs []string
		for _, id := range in.members {
			if in.subs[id][name] {
				subs = append(subs, id)
			}
		}
		if len(subs) == 0 {
			continue
		}
		per, extra := int(t.partitions)/len(subs), int(t.partitions)%len(subs)
		p := int32(0)
		for i, id := range subs {
			n := per
			if i < extra {
				n++
			}
			for range n {
				out[id][tpid{id: t.id, p: p}] = struct{}{}
				p++
			}
		}
	}
	return out
}

// sortedParts returns s ordered by topic id, then partition.
func sortedParts[V any](s map[tpid]V) []tpid {
	out := make([]tpid, 0, len(s))
	for tp := range s {
		out = append(out, tp)
	}
	slices.SortFunc(out, compareTP)
	return out
}

func compareTP(a, b tpid) int {
	if c := bytes.Compare(a.id[:], b.id[:]); c != 0 {
		return c
	}
	return cmp.Compare(a.p, b.p)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
