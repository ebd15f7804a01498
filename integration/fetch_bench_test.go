package integration

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// BenchmarkFetchRound is one consumer fetch round over 1,000 idle
// partitions on a real broker over loopback, as a full fetch (every
// partition named and answered each round, what a client without sessions
// does) and as an incremental KIP-227 fetch (nothing named, nothing
// answered). Compare the two ns/op:
//
//	go test -run '^$' -bench FetchRound -benchtime 2000x ./integration/
func BenchmarkFetchRound(b *testing.B) {
	const partitions = 1000
	ib := startBroker(b, nil)
	createTopic(b, ib.addr(), "bench-fetch", partitions, nil)
	all := make([]int32, partitions)
	for i := range all {
		all[i] = int32(i)
	}
	// Wait until every partition answers without error, so both cases
	// measure the same steady state.
	fc := dialFetchConn(b, ib.addr())
	waitFor(b, time.Minute, func() error {
		resp := fc.do(fetchReq(12, "bench-fetch", [16]byte{}, 0, -1, all...)).(*kmsg.FetchResponse)
		for _, p := range responseParts(resp) {
			if p.ErrorCode != 0 {
				return errorf("partition %d: error %d", p.Partition, p.ErrorCode)
			}
		}
		return nil
	})

	b.Run("full", func(b *testing.B) {
		req := fetchReq(12, "bench-fetch", [16]byte{}, 0, -1, all...)
		b.ReportAllocs()
		for b.Loop() {
			resp := fc.do(req).(*kmsg.FetchResponse)
			if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != partitions {
				b.Fatalf("full fetch carried %d topics", len(resp.Topics))
			}
		}
	})
	b.Run("incremental", func(b *testing.B) {
		full := fc.do(fetchReq(12, "bench-fetch", [16]byte{}, 0, 0, all...)).(*kmsg.FetchResponse)
		if full.SessionID == 0 {
			b.Fatal("no session")
		}
		epoch := int32(1)
		b.ReportAllocs()
		for b.Loop() {
			resp := fc.do(fetchReq(12, "bench-fetch", [16]byte{}, full.SessionID, epoch)).(*kmsg.FetchResponse)
			if resp.ErrorCode != 0 || len(resp.Topics) != 0 {
				b.Fatalf("incremental fetch: error %d, %d topics", resp.ErrorCode, len(resp.Topics))
			}
			epoch++
		}
	})
}
