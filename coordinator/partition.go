package coordinator

import (
	"math"
	"unicode/utf16"
)

// PartitionFor returns the partition of an internal topic that owns key (a
// group id in __consumer_offsets, a transactional id in __transaction_state):
// Utils.abs(key.hashCode) % numPartitions, exactly as Kafka's
// GroupCoordinator.partitionFor and TransactionStateManager.partitionFor
// compute it, so a Sluice broker and a Kafka broker agree on which partition
// (and hence which coordinator) a key lives on. Kafka's Utils.abs maps Integer.MIN_VALUE to 0 rather than leaving it
// negative. numPartitions <= 0 yields 0.
func PartitionFor(key string, numPartitions int32) int32 {
	if numPartitions <= 0 {
		return 0
	}
	h := javaStringHashCode(key)
	if h == math.MinInt32 {
		h = 0
	} else if h < 0 {
		h = -h
	}
	return h % numPartitions
}

// javaStringHashCode is java.lang.String.hashCode: s[0]*31^(n-1) + ... over
// the UTF-16 code units of the string, in wrapping int32 arithmetic. Kafka
// decodes group ids from UTF-8; invalid bytes become U+FFFD, which is also
// what ranging over a Go string yields.
func javaStringHashCode(s string) int32 {
	var h int32
	for _, r := range s {
		if r >= 0x10000 {
			hi, lo := utf16.EncodeRune(r)
			h = 31*h + hi
			h = 31*h + lo
			continue
		}
		h = 31*h + r
	}
	return h
}
