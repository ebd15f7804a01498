package protocol

import (
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/protocol/batch"
)

// BenchmarkProduceValidate measures what record validation adds to the
// produce path for a batch of 64 records of 1 KiB: "check" is the header
// and CRC check the append path did before (batch.Check), "validate" adds
// the walk over every record (decompressing as it goes). The ns/op ratio
// validate/check is the cost of validation; bench/run.sh prints it.
func BenchmarkProduceValidate(b *testing.B) {
	c := NewCodecs()
	for _, codec := range []int8{CodecNone, CodecLZ4, CodecZstd} {
		recs := make([]kmsg.Record, 64)
		for i := range recs {
			val := bytes.Repeat([]byte{byte('a' + i%26)}, 1024)
			val[i%1024] = byte(i) // not wholly uniform
			recs[i] = kmsg.Record{OffsetDelta: int32(i), Key: []byte("key"), Value: val}
		}
		raw, err := BuildBatch(c, codec, 0, recs, DefaultBatchOptions())
		if err != nil {
			b.Fatal(err)
		}
		b.Run(codecName(codec)+"/check", func(b *testing.B) {
			b.SetBytes(64 << 10)
			b.ReportAllocs()
			for range b.N {
				if _, err := batch.Check(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(codecName(codec)+"/validate", func(b *testing.B) {
			v := Validator{Codecs: c}
			b.SetBytes(64 << 10)
			b.ReportAllocs()
			for range b.N {
				if _, err := batch.Check(raw); err != nil {
					b.Fatal(err)
				}
				if _, err := v.Validate(raw, ValidateOptions{MaxDecompressed: 64 << 20}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
