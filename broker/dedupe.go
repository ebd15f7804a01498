package broker

// Repeated entries in requests. Kafka clients never list the same topic,
// partition, group or resource twice in one request, but a hostile or buggy
// one can, and a 1 MiB request holds some 100,000 copies of one entry. No
// request may cost more than its distinct entries need: work done per entry
// (etcd writes, log reads, elections) is done once per distinct entry, and
// where answering every copy would multiply the response (a topic's
// partitions, a resource's configs) each distinct entry is answered once.
// Where Kafka answers repeats with an error (CreateTopics, DeleteTopics,
// CreatePartitions, AlterConfigs, ListOffsets) the same error is given,
// once per repeated entry.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/internal/uniq"
)

// maxRecordsPerUserOp bounds the records one CreateTopics or
// CreatePartitions may write: a topic, each of its partitions and each of
// its configs count one. Kafka's controller refuses a request that would
// write more (QuorumController.MAX_RECORDS_PER_USER_OP) with
// POLICY_VIOLATION; here it also keeps a request from asking for billions
// of partitions, which no etcd transaction or memory could hold.
const maxRecordsPerUserOp = 10000

// errTooLargeOp is Kafka's message for a request over maxRecordsPerUserOp.
const errTooLargeOp = "Unable to perform excessively large batch operation."

// policyViolationTooLarge is the code and message every topic of a request
// over maxRecordsPerUserOp gets.
func policyViolationTooLarge() (int16, *string) {
	return kerr.PolicyViolation.Code, kmsg.StringPtr(errTooLargeOp)
}

// tp names a partition of a topic, as a map key.
type tp struct {
	topic     string
	partition int32
}

// repeated returns the names that occur more than once in names, or nil
// when there are none. It allocates only when it must look beyond a handful
// of entries, so the common one-topic request stays cheap.
func repeated(n int, name func(int) string) map[string]bool {
	if n < 2 {
		return nil
	}
	var dup map[string]bool
	if n <= 8 {
		for i := 1; i < n; i++ {
			for j := 0; j < i; j++ {
				if name(i) == name(j) {
					if dup == nil {
						dup = map[string]bool{}
					}
					dup[name(i)] = true
					break
				}
			}
		}
		return dup
	}
	seen := make(map[string]bool, uniq.SizeHint(n))
	for i := 0; i < n; i++ {
		s := name(i)
		if seen[s] {
			if dup == nil {
				dup = map[string]bool{}
			}
			dup[s] = true
		}
		seen[s] = true
	}
	return dup
}

// onceSet tells the first occurrence of a name from the later ones.
type onceSet map[string]bool

// first reports whether name is seen for the first time.
func (s *onceSet) first(name string) bool {
	if (*s)[name] {
		return false
	}
	if *s == nil {
		*s = map[string]bool{}
	}
	(*s)[name] = true
	return true
}

// partList describes the topics of a request and their partitions: n
// topics, topic i named topic(i) with count(i) partitions, partition k of
// topic i being part(i, k).
type partList struct {
	n     int
	topic func(i int) string
	count func(i int) int
	part  func(i, k int) int32
}

// hasRepeated reports whether some topic or some partition of a topic
// occurs more than once (a repeated topic counts even when its entries name
// different partitions: merging them is then harmless). It is on the
// Produce path, so it allocates nothing for up to eight topics whose
// partitions come in increasing order, as clients send them.
func (l partList) hasRepeated() bool {
	if repeated(l.n, l.topic) != nil {
		return true
	}
	for i := 0; i < l.n; i++ {
		if partitionsRepeat(l.count(i), func(k int) int32 { return l.part(i, k) }) {
			return true
		}
	}
	return false
}

// partitionsRepeat reports whether some of the n partitions part(0..n-1)
// of one topic repeats.
func partitionsRepeat(n int, part func(k int) int32) bool {
	if n < 2 {
		return false
	}
	increasing := true
	for k := 1; k < n && increasing; k++ {
		increasing = part(k) > part(k-1)
	}
	if increasing {
		return false
	}
	if n <= 8 {
		for a := 1; a < n; a++ {
			for b := 0; b < a; b++ {
				if part(a) == part(b) {
					return true
				}
			}
		}
		return false
	}
	const maxBitset = 1 << 20 // partition numbers a bitset covers
	top := int32(0)
	for k := 0; k < n; k++ {
		p := part(k)
		if p < 0 || p >= maxBitset {
			top = -1
			break
		}
		top = max(top, p)
	}
	if top >= 0 {
		bits := make([]uint64, top/64+1)
		for k := 0; k < n; k++ {
			p := part(k)
			if bits[p/64]&(1<<(p%64)) != 0 {
				return true
			}
			bits[p/64] |= 1 << (p % 64)
		}
		return false
	}
	seen := make(map[int32]struct{}, uniq.SizeHint(n))
	for k := 0; k < n; k++ {
		if _, ok := seen[part(k)]; ok {
			return true
		}
		seen[part(k)] = struct{}{}
	}
	return false
}

// repeated returns the partitions that occur more than once, nil if none.
func (l partList) repeated() map[tp]bool {
	if !l.hasRepeated() {
		return nil
	}
	seen := map[tp]bool{}
	dup := map[tp]bool{}
	for i := 0; i < l.n; i++ {
		name := l.topic(i)
		for k := 0; k < l.count(i); k++ {
			key := tp{name, l.part(i, k)}
			if seen[key] {
				dup[key] = true
			}
			seen[key] = true
		}
	}
	return dup
}

// mergeLastWins folds repeated topics and partitions of a request into one
// entry each, keeping the order of first appearance and the content of the
// last appearance, as Kafka's per-partition maps do for Produce and
// DeleteRecords. T is a topic entry, P a partition entry.
func mergeLastWins[T, P any](topics []T, name func(*T) string, parts func(*T) *[]P, index func(*P) int32) []T {
	byTopic := make(map[string]int, uniq.SizeHint(len(topics)))
	at := map[tp]int{}
	var out []T
	for i := range topics {
		t := &topics[i]
		n := name(t)
		k, ok := byTopic[n]
		if !ok {
			k = len(out)
			byTopic[n] = k
			var fresh T = *t
			*parts(&fresh) = nil
			out = append(out, fresh)
		}
		dst := parts(&out[k])
		for _, p := range *parts(t) {
			key := tp{n, index(&p)}
			if j, ok := at[key]; ok {
				(*dst)[j] = p
				continue
			}
			at[key] = len(*dst)
			*dst = append(*dst, p)
		}
	}
	return out
}
