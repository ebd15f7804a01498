package broker

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicedev/sluice/metadata"
)

// Leadership comes from the partition records in etcd (partition_states.go);
// the hosted partition's replica (replica.go) says whether this broker
// leads it now.

// leaderOf is the partition's leader according to its record, or -1 when
// it is offline or has no record yet.
func (b *Broker) leaderOf(m metadata.Topic, p int32) int32 {
	if st, ok := b.partitionState(m.Name, p); ok {
		return st.Leader
	}
	return -1
}

// minInsync is the topic's min.insync.replicas.
func (ts *topicState) minInsync() int {
	return ts.config().minInsync
}

// errUnknownPartition answers for a partition that no longer exists.
var errUnknownPartition = kerr.UnknownTopicOrPartition

// Topic names follow Kafka's rules (org.apache.kafka.common.internals.Topic).
const maxTopicNameLen = 249

var errInvalidTopicName = errors.New("invalid topic name")

func validTopicName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: the empty string", errInvalidTopicName)
	case name == "." || name == "..":
		return fmt.Errorf("%w: %q", errInvalidTopicName, name)
	case len(name) > maxTopicNameLen:
		return fmt.Errorf("%w: longer than %d characters", errInvalidTopicName, maxTopicNameLen)
	}
	for _, c := range []byte(name) {
		ok := c == '.' || c == '_' || c == '-' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
		if !ok {
			return fmt.Errorf("%w: %q contains characters other than ASCII alphanumerics, '.', '_' and '-'", errInvalidTopicName, name)
		}
	}
	return nil
}

// isInternalTopic names the topics only the broker writes.
func isInternalTopic(name string) bool {
	return name == "__consumer_offsets" || name == "__transaction_state" || name == shareStateTopic
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
