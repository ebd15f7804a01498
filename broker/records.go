package broker

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/protocol"
)

// maxDecodedBatch bounds decompression when the broker itself must look
// inside a batch (timestamp lookups), against compression bombs.
const maxDecodedBatch = 64 << 20

func (b *Broker) decodeRecords(one []byte) (kmsg.RecordBatch, []kmsg.Record, error) {
	return protocol.DecodeRecords(one, b.codecs, maxDecodedBatch)
}
