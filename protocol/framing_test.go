package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// sized returns body prefixed with a 4-byte big-endian size.
func sized(size int32, body []byte) []byte {
	out := binary.BigEndian.AppendUint32(nil, uint32(size))
	return append(out, body...)
}

func TestFrameRead(t *testing.T) {
	t.Parallel()
	body := bytes.Repeat([]byte("abcdefgh"), 40_000) // 320 KB, several chunks
	tests := []struct {
		name    string
		in      []byte
		max     int32
		buf     []byte
		reader  func(io.Reader) io.Reader
		want    []byte
		wantErr error
	}{
		{name: "empty stream is EOF", in: nil, max: 100, wantErr: io.EOF},
		{name: "small", in: sized(3, []byte("abc")), max: 100, want: []byte("abc")},
		{name: "zero size", in: sized(0, nil), max: 100, want: []byte{}},
		{name: "exactly max", in: sized(3, []byte("abc")), max: 3, want: []byte("abc")},
		{name: "large in chunks", in: sized(int32(len(body)), body), max: 1 << 20, want: body},
		{name: "one byte reads", in: sized(int32(len(body)), body), max: 1 << 20, want: body, reader: iotest.OneByteReader},
		{name: "reuses buffer", in: sized(3, []byte("abc")), max: 100, buf: make([]byte, 7, 16), want: []byte("abc")},
		{name: "grows small buffer", in: sized(int32(len(body)), body), max: 1 << 20, buf: make([]byte, 0, 10), want: body},
		{name: "oversize", in: sized(101, make([]byte, 101)), max: 100, wantErr: ErrFrameTooLarge},
		{name: "negative", in: sized(-1, nil), max: 100, wantErr: ErrInvalidFrame},
		{name: "torn size", in: []byte{0, 0}, max: 100, wantErr: io.ErrUnexpectedEOF},
		{name: "torn body", in: sized(10, []byte("abc")), max: 100, wantErr: io.ErrUnexpectedEOF},
		{name: "torn body in reused buffer", in: sized(10, []byte("abc")), max: 100, buf: make([]byte, 0, 64), wantErr: io.ErrUnexpectedEOF},
		{name: "reader error", in: sized(10, []byte("abc")), max: 100, wantErr: iotest.ErrTimeout, reader: iotest.TimeoutReader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var r io.Reader = bytes.NewReader(tt.in)
			if tt.reader != nil {
				r = tt.reader(r)
			}
			got, err := ReadFrame(r, tt.max, tt.buf)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if got != nil {
					t.Fatalf("got %d bytes with error", len(got))
				}
				return
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("got %d bytes, want %d", len(got), len(tt.want))
			}
			if cap(tt.buf) >= len(tt.want) && len(tt.want) > 0 && &got[0] != &tt.buf[:1][0] {
				t.Fatal("buffer with enough capacity was not reused")
			}
		})
	}
}

func TestFrameConsecutive(t *testing.T) {
	t.Parallel()
	stream := append(sized(2, []byte("ab")), sized(3, []byte("cde"))...)
	r := bytes.NewReader(stream)
	var buf []byte
	for _, want := range []string{"ab", "cde"} {
		got, err := ReadFrame(r, 10, buf)
		if err != nil || string(got) != want {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
		buf = got[:0]
	}
	if _, err := ReadFrame(r, 10, buf); !errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("after last frame: %v, want io.EOF", err)
	}
}

// TestFrameAllocationBound checks the point of ReadFrame: a peer announcing
// a large frame and sending little costs little.
func TestFrameAllocationBound(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		announce int32
		send     int
	}{
		{"10 of 100MB", 100 << 20, 10},
		{"1MB of 100MB", 100 << 20, 1 << 20},
		{"chunk+1 of 1GB", 1 << 30, FrameChunk + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := sized(tt.announce, make([]byte, tt.send))
			buf, err := readFrame(bytes.NewReader(in), 1<<30, nil)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("err = %v", err)
			}
			if len(buf) != tt.send {
				t.Fatalf("read %d bytes, sent %d", len(buf), tt.send)
			}
			if limit := frameCapLimit(0, tt.send); cap(buf) > limit {
				t.Fatalf("capacity %d after %d bytes received, limit %d", cap(buf), tt.send, limit)
			}
		})
	}
}

// frameCapLimit is the most capacity readFrame may hold after receiving
// received bytes into a buffer that started with capacity initial.
func frameCapLimit(initial, received int) int {
	return max(initial, 2*received+FrameChunk)
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 3, 'a', 'b', 'c'}, int32(100), 0)
	f.Add([]byte{0, 0, 0, 3, 'a'}, int32(100), 8)
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff, 1, 2, 3}, int32(1<<30), 0)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, int32(100), 0)
	f.Add(sized(200_000, make([]byte, 150_000)), int32(1<<20), 4096)
	f.Fuzz(func(t *testing.T, in []byte, maxSize int32, bufCap int) {
		bufCap = min(max(bufCap, 0), 1<<20)
		buf, err := readFrame(bytes.NewReader(in), maxSize, make([]byte, 0, bufCap))
		received := max(len(in)-4, 0)
		if cap(buf) > frameCapLimit(bufCap, received) {
			t.Fatalf("capacity %d for %d bytes received (initial %d)", cap(buf), received, bufCap)
		}
		if len(in) < 4 {
			if err == nil {
				t.Fatal("no error on a torn size")
			}
			return
		}
		size := int32(binary.BigEndian.Uint32(in))
		switch {
		case size < 0 || size > maxSize:
			if err == nil {
				t.Fatalf("size %d, max %d: no error", size, maxSize)
			}
		case int(size) > received:
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("torn frame: %v", err)
			}
		default:
			if err != nil || !bytes.Equal(buf, in[4:4+size]) {
				t.Fatalf("frame of %d: %v", size, err)
			}
			// Round trip: writing the body back with its size reproduces the input prefix.
			if !bytes.Equal(sized(size, buf), in[:4+size]) {
				t.Fatal("round trip differs")
			}
		}
	})
}

// randomFetchResponse builds a Fetch response at version v whose partitions
// carry record data of sizes on both sides of spliceMin, and every other
// field kmsg encodes at some version (error messages, aborted transactions,
// tagged fields) set to something.
func randomFetchResponse(rng *rand.Rand, v int16) *kmsg.FetchResponse {
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = v
	resp.ThrottleMillis = rng.Int32N(100)
	resp.ErrorCode = int16(rng.IntN(2))
	for ti := range 1 + rng.IntN(3) {
		t := kmsg.NewFetchResponseTopic()
		t.Topic = fmt.Sprintf("topic-%d-%d", ti, rng.IntN(1000))
		t.TopicID = [16]byte{byte(ti), 1, 2, 3}
		for pi := range rng.IntN(5) {
			p := kmsg.NewFetchResponseTopicPartition()
			p.Partition = int32(pi)
			p.ErrorCode = int16(rng.IntN(2))
			p.HighWatermark, p.LastStableOffset, p.LogStartOffset = rng.Int64(), rng.Int64(), -1
			if rng.IntN(4) == 0 {
				a := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
				a.ProducerID, a.FirstOffset = 7, 9
				p.AbortedTransactions = append(p.AbortedTransactions, a)
			}
			if rng.IntN(4) == 0 {
				p.DivergingEpoch.Epoch, p.DivergingEpoch.EndOffset = 3, 100
			}
			size := []int{0, 1, 100, 4095, 4096, 70000, 200000}[rng.IntN(7)]
			p.RecordBatches = make([]byte, size)
			for i := range p.RecordBatches {
				p.RecordBatches[i] = byte(rng.IntN(256))
			}
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	return resp
}

func TestFrameFetchResponseSplicedMatchesWhole(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 7))
	var dst []byte
	var cuts []int
	for v := int16(4); v <= kmsg.NewPtrFetchResponse().MaxVersion(); v++ {
		for range 50 {
			resp := randomFetchResponse(rng, v)
			spliceMin := []int{1, 4096, 1 << 20}[rng.IntN(3)]
			want := AppendResponse(nil, 42, resp)
			// Left-out partitions' RecordBatches must not be used: hide
			// them, keeping the real bytes aside as the payloads.
			var payloads [][]byte
			left := map[[2]int]int{}
			for i, tp := range resp.Topics {
				for j := range tp.Partitions {
					if p := &tp.Partitions[j]; len(p.RecordBatches) >= spliceMin {
						left[[2]int{i, j}] = len(p.RecordBatches)
						payloads = append(payloads, p.RecordBatches)
						p.RecordBatches = nil
					}
				}
			}
			external := func(ti, pi int) (int, bool) {
				n, ok := left[[2]int{ti, pi}]
				return n, ok
			}
			var ok bool
			dst, cuts, ok = AppendFetchResponse(dst[:0], 42, resp, external, cuts[:0])
			if !ok || len(cuts) != len(payloads) {
				t.Fatalf("v%d: ok %v, %d cuts for %d payloads", v, ok, len(cuts), len(payloads))
			}
			var got []byte
			prev := 0
			for k, c := range cuts {
				got = append(append(got, dst[prev:c]...), payloads[k]...)
				prev = c
			}
			got = append(got, dst[prev:]...)
			if !bytes.Equal(got, want) {
				t.Fatalf("v%d spliceMin %d: pieces join to %d bytes that differ from the %d AppendResponse writes", v, spliceMin, len(got), len(want))
			}
			for _, tp := range resp.Topics {
				for _, p := range tp.Partitions {
					if p.RecordBatches == nil {
						continue
					}
					if len(p.RecordBatches) >= spliceMin {
						t.Fatalf("v%d: partition records not restored", v)
					}
				}
			}
		}
	}
}

func TestFrameSpliceMarkersRejectsMissingMarker(t *testing.T) {
	t.Parallel()
	marker := bytes.Repeat([]byte{0xAB}, 16)
	frame := append(binary.BigEndian.AppendUint32(nil, 0), 1, 2, 3, 4, 5, 6, 7, 8)
	if _, ok := spliceMarkers(frame, marker, []int{1}, false, nil); ok {
		t.Fatal("a frame without the marker was accepted")
	}
	// The marker without the length prefix kmsg writes for 16 bytes.
	frame = append(binary.BigEndian.AppendUint32(nil, 0), append([]byte{0, 0, 0, 15}, marker...)...)
	before := bytes.Clone(frame)
	if _, ok := spliceMarkers(frame, marker, []int{1}, false, nil); ok {
		t.Fatal("a marker after the wrong length prefix was accepted")
	}
	if !bytes.Equal(frame, before) {
		t.Fatal("a rejected frame was modified")
	}
}
