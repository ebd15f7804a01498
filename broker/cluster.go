package broker

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicedev/sluice/metadata"
)

// Leadership on a single broker: every hosted partition is led here, with
// leader epoch 0 and an in-sync replica set of one. The replicated cluster
// replaces these with etcd's partition state.

// isLeader reports whether this broker leads partition p of ts.
func (b *Broker) isLeader(ts *topicState, p int32) bool {
	if ts.partition(p) == nil {
		return false
	}
	return b.leaderOf(ts.meta, p) == b.cfg.NodeID
}

// leaderOf is the partition's leader: the first assigned replica.
func (b *Broker) leaderOf(m metadata.Topic, p int32) int32 {
	if int(p) < len(m.Replicas) && len(m.Replicas[p]) > 0 {
		return m.Replicas[p][0]
	}
	return b.cfg.NodeID
}

// replicasOf lists the partition's replicas.
func (b *Broker) replicasOf(m metadata.Topic, p int32) []int32 {
	if int(p) < len(m.Replicas) && len(m.Replicas[p]) > 0 {
		return m.Replicas[p]
	}
	return []int32{b.cfg.NodeID}
}

// inSyncReplicas is the size of the partition's ISR.
func (b *Broker) inSyncReplicas(ts *topicState, p int32) int {
	if ts.partition(p) == nil {
		return 0
	}
	return 1
}

// minInsync is the topic's min.insync.replicas.
func (b *Broker) minInsync(ts *topicState) int {
	return int(atoiDefault(ts.value("min.insync.replicas"), 1))
}

// leaderEpoch is the partition's current leader epoch.
func (p *partition) leaderEpoch() int32 { return 0 }

// highWatermark is the offset below which records are visible to consumers.
func (p *partition) highWatermark() int64 { return p.log.LogEndOffset() }

// checkLeaderEpoch fences requests that name a leader epoch (KIP-320): an
// older epoch is FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH; -1
// skips the check.
func (p *partition) checkLeaderEpoch(requested int32) int16 {
	cur := p.leaderEpoch()
	switch {
	case requested < 0 || requested == cur:
		return 0
	case requested < cur:
		return kerr.FencedLeaderEpoch.Code
	default:
		return kerr.UnknownLeaderEpoch.Code
	}
}

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
	return name == "__consumer_offsets" || name == "__transaction_state"
}

func atoiDefault(s string, def int64) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return def
	}
	return n
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
