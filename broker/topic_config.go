package broker

import (
	"math"
	"strconv"
	"strings"

	"github.com/sluicedev/sluice/protocol"
	"github.com/sluicedev/sluice/storage"
)

// topicConfig is one topic's settings resolved into typed values. It is
// built whole whenever the topic's etcd record or the broker settings that
// default it change (applyTopic, reloadDynamicConfigs), so the produce path
// and the controller read plain fields and never parse strings. Replaced
// whole, never changed in place.
type topicConfig struct {
	storage storage.Config
	// produce is the produce check of the topic but for the clock:
	// produceRulesOf fills in validate.Now per request.
	produce         produceRules
	minInsync       int
	uncleanElection bool
}

// resolvedValues are a topic's effective settings by name, as
// settings.topicValues resolves them.
type resolvedValues map[string]string

// int64 parses a resolved integer setting. Values were validated against
// the registry when set; one that does not parse (a hand-edited etcd
// record) falls back to the registry's default, the single source of
// defaults.
func (v resolvedValues) int64(reg *configRegistry, name string) int64 {
	if n, err := strconv.ParseInt(v[name], 10, 64); err == nil {
		return n
	}
	n, _ := strconv.ParseInt(reg.topic[name].def, 10, 64)
	return n
}

func (v resolvedValues) float(reg *configRegistry, name string) float64 {
	if f, err := strconv.ParseFloat(v[name], 64); err == nil {
		return f
	}
	f, _ := strconv.ParseFloat(reg.topic[name].def, 64)
	return f
}

// resolveTopic resolves a topic's settings (override, broker synonyms,
// registry default) into a topicConfig.
func (s *settings) resolveTopic(overrides map[string]string) *topicConfig {
	v := resolvedValues(s.topicValues(overrides))
	sc := v.storageConfig(s.reg)
	sc.ProducerIDExpirationMs = s.brokerInt64("producer.id.expiration.ms", 0)
	return &topicConfig{
		storage:         sc,
		produce:         v.produceRules(s.reg),
		minInsync:       int(v.int64(s.reg, "min.insync.replicas")),
		uncleanElection: v["unclean.leader.election.enable"] == "true",
	}
}

// storageConfig turns resolved topic settings into the storage layer's view.
func (v resolvedValues) storageConfig(reg *configRegistry) storage.Config {
	num := func(k string) int64 { return v.int64(reg, k) }
	policy, err := storage.ParseCleanupPolicy(v["cleanup.policy"])
	if err != nil {
		policy, _ = storage.ParseCleanupPolicy(reg.topic["cleanup.policy"].def)
	}
	ratio := v.float(reg, "min.cleanable.dirty.ratio")
	// storage reads zero as "default": a real zero is passed as negative.
	zeroAsNegative := func(n int64) int64 {
		if n == 0 {
			return -1
		}
		return n
	}
	if ratio == 0 {
		ratio = -1
	}
	return storage.Config{
		CleanupPolicy:          policy,
		DeleteRetentionMs:      zeroAsNegative(num("delete.retention.ms")),
		MinCompactionLagMs:     num("min.compaction.lag.ms"),
		MaxCompactionLagMs:     num("max.compaction.lag.ms"),
		MinCleanableDirtyRatio: ratio,
		SegmentBytes:           num("segment.bytes"),
		SegmentMs:              num("segment.ms"),
		RetentionMs:            num("retention.ms"),
		RetentionBytes:         num("retention.bytes"),
		FlushMessages:          num("flush.messages"),
		FlushMs:                num("flush.ms"),
		IndexIntervalBytes:     int32(num("index.interval.bytes")),
		MaxMessageBytes:        int32(num("max.message.bytes")),
	}
}

// produceRules resolves the produce check of a topic, all but the clock.
func (v resolvedValues) produceRules(reg *configRegistry) produceRules {
	num := func(k string) int64 { return v.int64(reg, k) }
	r := produceRules{maxMessageBytes: num("max.message.bytes")}
	r.validate.MaxDecompressed = int(min(max(r.maxMessageBytes*maxDecompressedFactor, 1<<20), 1<<30))
	r.validate.RequireKeys = strings.Contains(v["cleanup.policy"], "compact")
	r.logAppendTime = v["message.timestamp.type"] == "LogAppendTime"
	r.validate.LogAppendTime = r.logAppendTime
	if !r.logAppendTime {
		before, after := num("message.timestamp.before.max.ms"), num("message.timestamp.after.max.ms")
		if before != math.MaxInt64 || after != math.MaxInt64 {
			r.validate.CheckTimestamps = true
			r.validate.BeforeMaxMs, r.validate.AfterMaxMs = before, after
		}
	}
	switch v["compression.type"] {
	case "uncompressed":
		r.recompress, r.codec = true, protocol.CodecNone
	case "gzip":
		r.recompress, r.codec = true, protocol.CodecGzip
		r.level = int(num("compression.gzip.level"))
	case "snappy":
		r.recompress, r.codec = true, protocol.CodecSnappy
	case "lz4":
		r.recompress, r.codec = true, protocol.CodecLZ4
		r.level = int(num("compression.lz4.level"))
	case "zstd":
		r.recompress, r.codec = true, protocol.CodecZstd
		r.level = int(num("compression.zstd.level"))
	}
	return r
}
