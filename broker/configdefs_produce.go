package broker

import (
	"fmt"
	"strconv"

	"github.com/sluicedev/sluice/protocol"
)

// compressionTypes are the values Kafka accepts for compression.type, on
// topics and the broker.
var compressionTypes = []string{"producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"}

// produceTopicConfigDefs are the KIP-390 compression levels of a topic,
// defaulted from the broker settings of the same name.
func produceTopicConfigDefs() []configDef {
	return []configDef{
		{name: "compression.gzip.level", typ: typeInt, def: strconv.Itoa(protocol.GzipLevelDefault), synonyms: []synonym{{"compression.gzip.level", 1}},
			validate: gzipLevel, doc: "Level used when compression.type=gzip recompresses: 1-9, or -1 for the codec's default (6)."},
		{name: "compression.lz4.level", typ: typeInt, def: strconv.Itoa(protocol.LZ4LevelDefault), synonyms: []synonym{{"compression.lz4.level", 1}},
			validate: intRange(protocol.LZ4LevelMin, protocol.LZ4LevelMax), doc: "Level used when compression.type=lz4 recompresses: 1-17 (levels above 9 compress as 9)."},
		{name: "compression.zstd.level", typ: typeInt, def: strconv.Itoa(protocol.ZstdLevelDefault), synonyms: []synonym{{"compression.zstd.level", 1}},
			validate: intRange(protocol.ZstdLevelMin, protocol.ZstdLevelMax), doc: "Level used when compression.type=zstd recompresses: -131072 to 22."},
	}
}

// produceConfigDefs are the broker defaults of the KIP-390 levels.
func produceConfigDefs() []configDef {
	return []configDef{
		{name: "compression.gzip.level", typ: typeInt, def: strconv.Itoa(protocol.GzipLevelDefault), validate: gzipLevel, doc: "Default compression.gzip.level of topics."},
		{name: "compression.lz4.level", typ: typeInt, def: strconv.Itoa(protocol.LZ4LevelDefault), validate: intRange(protocol.LZ4LevelMin, protocol.LZ4LevelMax), doc: "Default compression.lz4.level of topics."},
		{name: "compression.zstd.level", typ: typeInt, def: strconv.Itoa(protocol.ZstdLevelDefault), validate: intRange(protocol.ZstdLevelMin, protocol.ZstdLevelMax), doc: "Default compression.zstd.level of topics."},
	}
}

func intRange(lo, hi int64) func(string) error {
	return func(v string) error {
		n, _ := strconv.ParseInt(v, 10, 64)
		if n < lo || n > hi {
			return fmt.Errorf("value %s must be between %d and %d", v, lo, hi)
		}
		return nil
	}
}

// gzipLevel is Kafka's GzipCompression level validator: 1-9 or -1.
func gzipLevel(v string) error {
	if v == strconv.Itoa(protocol.GzipLevelDefault) {
		return nil
	}
	return intRange(protocol.GzipLevelMin, protocol.GzipLevelMax)(v)
}
