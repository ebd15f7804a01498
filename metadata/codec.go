package metadata

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Records are stored as JSON so that an operator can read them with
// etcdctl. Field names are part of the on-disk format: add fields, never
// rename them.

type topicRecord struct {
	ID                string            `json:"id"`
	Partitions        int32             `json:"partitions"`
	ReplicationFactor int16             `json:"replication_factor"`
	Replicas          [][]int32         `json:"replicas,omitempty"`
	Configs           map[string]string `json:"configs,omitempty"`
}

type brokerRecord struct {
	NodeID int32  `json:"node_id"`
	Host   string `json:"host"`
	Port   int32  `json:"port"`
	Rack   string `json:"rack,omitempty"`
	// Incarnation identifies the broker's data directory; see Broker.
	Incarnation string `json:"incarnation,omitempty"`
}

type partitionRecord struct {
	Leader         int32   `json:"leader"`
	LeaderEpoch    int32   `json:"leader_epoch"`
	ISR            []int32 `json:"isr"`
	PartitionEpoch int32   `json:"partition_epoch"`
}

func encodeTopic(t Topic) ([]byte, error) {
	return json.Marshal(topicRecord{
		ID:                FormatUUID(t.ID),
		Partitions:        t.Partitions,
		ReplicationFactor: t.ReplicationFactor,
		Replicas:          t.Replicas,
		Configs:           t.Configs,
	})
}

func decodeTopic(name string, b []byte, rev int64) (Topic, error) {
	var r topicRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return Topic{}, fmt.Errorf("decode topic %q: %w", name, err)
	}
	id, err := ParseUUID(r.ID)
	if err != nil {
		return Topic{}, fmt.Errorf("decode topic %q: %w", name, err)
	}
	t := Topic{
		Name:              name,
		ID:                id,
		Partitions:        r.Partitions,
		ReplicationFactor: r.ReplicationFactor,
		Replicas:          r.Replicas,
		Configs:           r.Configs,
		Revision:          rev,
	}
	if t.Configs == nil {
		t.Configs = map[string]string{}
	}
	return t, nil
}

// encodeBroker leaves Broker.Epoch out: it is the key's mod revision,
// which the store assigns on every write and cannot be known in advance.
func encodeBroker(b Broker) ([]byte, error) {
	return json.Marshal(brokerRecord{
		NodeID: b.NodeID, Host: b.Host, Port: b.Port, Rack: b.Rack, Incarnation: b.Incarnation,
	})
}

// decodeBroker decodes a broker record whose key was last written at
// revision rev, which becomes the Epoch.
func decodeBroker(b []byte, rev int64) (Broker, error) {
	var r brokerRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return Broker{}, fmt.Errorf("decode broker: %w", err)
	}
	return Broker{
		NodeID: r.NodeID, Host: r.Host, Port: r.Port, Rack: r.Rack, Incarnation: r.Incarnation,
		Epoch: rev,
	}, nil
}

func encodePartition(s PartitionState) ([]byte, error) {
	isr := s.ISR
	if isr == nil {
		isr = []int32{}
	}
	return json.Marshal(partitionRecord{
		Leader: s.Leader, LeaderEpoch: s.LeaderEpoch, ISR: isr, PartitionEpoch: s.PartitionEpoch,
	})
}

func decodePartition(topic string, p int32, b []byte, rev int64) (PartitionState, error) {
	var r partitionRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return PartitionState{}, fmt.Errorf("decode partition %s-%d: %w", topic, p, err)
	}
	return PartitionState{
		Topic: topic, Partition: p,
		Leader: r.Leader, LeaderEpoch: r.LeaderEpoch, ISR: r.ISR, PartitionEpoch: r.PartitionEpoch,
		Revision: rev,
	}, nil
}

// validName rejects names that would escape their key prefix. Kafka's own
// topic-name rules (legal characters, length) are enforced by the broker.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}

func validateTopic(t Topic) error {
	switch {
	case !validName(t.Name):
		return fmt.Errorf("topic name %q: %w", t.Name, ErrInvalidTopic)
	case t.Partitions < 0:
		return fmt.Errorf("topic %q: %d partitions: %w", t.Name, t.Partitions, ErrInvalidTopic)
	case len(t.Replicas) > 0 && len(t.Replicas) != int(t.Partitions):
		return fmt.Errorf("topic %q: %d replica lists for %d partitions: %w",
			t.Name, len(t.Replicas), t.Partitions, ErrInvalidTopic)
	}
	return nil
}

// prepareCreate validates t and returns the copy to store, with an id.
func prepareCreate(t Topic) (Topic, error) {
	if err := validateTopic(t); err != nil {
		return Topic{}, err
	}
	t = normalizeTopic(t)
	if t.ID == ([16]byte{}) {
		id, err := NewTopicID()
		if err != nil {
			return Topic{}, err
		}
		t.ID = id
	}
	return t, nil
}

func prepareUpdate(t Topic) (Topic, error) {
	if err := validateTopic(t); err != nil {
		return Topic{}, err
	}
	if t.ID == ([16]byte{}) {
		return Topic{}, fmt.Errorf("update topic %q without id: %w", t.Name, ErrInvalidTopic)
	}
	return normalizeTopic(t), nil
}

// normalizeTopic returns a deep copy of t in the form a JSON round trip
// produces (no empty replica list), so Memory and Etcd return equal values.
func normalizeTopic(t Topic) Topic {
	t = t.Clone()
	if len(t.Replicas) == 0 {
		t.Replicas = nil
	}
	return t
}

func validatePartition(s PartitionState) error {
	if !validName(s.Topic) || s.Partition < 0 {
		return fmt.Errorf("partition %q-%d: %w", s.Topic, s.Partition, ErrInvalidTopic)
	}
	return nil
}

func clonePartition(s PartitionState) PartitionState {
	s.ISR = slices.Clone(s.ISR)
	if s.ISR == nil {
		s.ISR = []int32{}
	}
	return s
}

func cloneConfigs(m map[string]string) map[string]string {
	c := maps.Clone(m)
	if c == nil {
		c = map[string]string{}
	}
	return c
}

// NewTopicID returns a random version-4 UUID usable as a topic id. Like
// Kafka's Uuid.randomUuid it never returns the reserved zero and one ids,
// nor an id whose base64 form starts with '-' (which command-line tools
// would take for a flag).
func NewTopicID() ([16]byte, error) {
	for {
		var id [16]byte
		if _, err := rand.Read(id[:]); err != nil {
			return id, fmt.Errorf("metadata: random topic id: %w", err)
		}
		id[6] = id[6]&0x0f | 0x40 // version 4
		id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
		if !reservedUUID(id) && !strings.HasPrefix(FormatUUID(id), "-") {
			return id, nil
		}
	}
}

func reservedUUID(id [16]byte) bool {
	var one [16]byte
	one[15] = 1
	return id == [16]byte{} || id == one
}

// FormatUUID renders an id the way Kafka prints topic and cluster ids:
// URL-safe base64 without padding (22 characters).
func FormatUUID(id [16]byte) string {
	return base64.RawURLEncoding.EncodeToString(id[:])
}

// ParseUUID is the inverse of FormatUUID.
func ParseUUID(s string) ([16]byte, error) {
	var id [16]byte
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("metadata: malformed uuid %q", s)
	}
	copy(id[:], b)
	return id, nil
}
