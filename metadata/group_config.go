package metadata

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
)

// ErrInvalidGroupConfig is returned by SetGroupConfig for an empty group
// name: Kafka refuses default group resources ("Default group resources are
// not allowed.").
var ErrInvalidGroupConfig = errors.New("metadata: invalid group config")

// GroupConfig is the dynamic config record of one group: Kafka's GROUP
// config resource (KIP-848, KIP-932), altered with IncrementalAlterConfigs
// and applied by every broker. The values are Kafka-named strings; the
// broker validates them before it stores them.
type GroupConfig struct {
	Group string
	// Configs holds the group's overrides; never nil when returned by a
	// store. A group without overrides has no record.
	Configs map[string]string
	// Revision is the store revision of the record's last write, 0 when it
	// does not exist. Pass it back unchanged to SetGroupConfig for
	// compare-and-swap.
	Revision int64
}

// GroupConfigEvent is one change seen by WatchGroupConfigs. A delete
// carries the record's last configs.
type GroupConfigEvent struct {
	Type     EventType
	Config   GroupConfig
	Snapshot bool // as in TopicEvent; the snapshot is in key order
}

// groupConfigKey is the group's key below "groupconfigs/": the path-escaped
// name, so that it holds no '/'.
func groupConfigKey(group string) string { return url.PathEscape(group) }

func parseGroupConfigKey(k string) (string, error) {
	g, err := url.PathUnescape(k)
	if err != nil || g == "" {
		return "", fmt.Errorf("group config key %q: %w", k, ErrInvalidGroupConfig)
	}
	return g, nil
}

func encodeGroupConfig(c GroupConfig) ([]byte, error) { return json.Marshal(c.Configs) }

func decodeGroupConfig(key string, b []byte, rev int64) (GroupConfig, error) {
	g, err := parseGroupConfigKey(key)
	if err != nil {
		return GroupConfig{}, err
	}
	c := GroupConfig{Group: g, Revision: rev}
	if err := json.Unmarshal(b, &c.Configs); err != nil {
		return GroupConfig{}, fmt.Errorf("decode group config %q: %w", key, err)
	}
	if c.Configs == nil {
		c.Configs = map[string]string{}
	}
	return c, nil
}

func cloneGroupConfig(c GroupConfig) GroupConfig {
	c.Configs = maps.Clone(c.Configs)
	if c.Configs == nil {
		c.Configs = map[string]string{}
	}
	return c
}

// FinalizedFeatures are the cluster's finalized feature levels (KIP-584):
// the levels an operator set with UpdateFeatures. A feature absent from
// Levels has never been set and is at the broker's default level; a level
// of 0 is stored (a feature turned off is not the same as one never set).
type FinalizedFeatures struct {
	// Levels maps a feature name to its finalized level; never nil when
	// returned by a store.
	Levels map[string]int16
	// Revision is the store revision of the last write, 0 when no level
	// was ever set. It only grows, so brokers report it as Kafka's
	// FinalizedFeaturesEpoch. Pass it back unchanged to SetFeatures for
	// compare-and-swap.
	Revision int64
}

// FeaturesEvent is one change seen by WatchFeatures: the finalized levels
// after it.
type FeaturesEvent struct {
	Features FinalizedFeatures
	Snapshot bool // as in TopicEvent
}

func decodeFeatures(b []byte, rev int64) (FinalizedFeatures, error) {
	f := FinalizedFeatures{Revision: rev}
	if err := json.Unmarshal(b, &f.Levels); err != nil {
		return FinalizedFeatures{}, fmt.Errorf("decode finalized features: %w", err)
	}
	if f.Levels == nil {
		f.Levels = map[string]int16{}
	}
	return f, nil
}

func cloneFeatures(f FinalizedFeatures) FinalizedFeatures {
	f.Levels = maps.Clone(f.Levels)
	if f.Levels == nil {
		f.Levels = map[string]int16{}
	}
	return f
}
