package broker

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/protocol"
)

// FuzzBrokerRequest drives the whole request path of a running broker (an
// embedded etcd, real files, a real TCP connection): each input picks an
// advertised API and version and fills a kmsg request of it from the fuzz
// bytes, with adversarial values (huge repetition of one entry, empty,
// negative and extreme numbers, long and invalid names, null and garbage
// bytes, the ids of real topics). The broker may answer or close the
// connection; afterwards it must still answer ApiVersions and Metadata on
// another connection. A panic anywhere in the broker fails the run, also
// one the connection contained (sluice_request_panics_total).
func FuzzBrokerRequest(f *testing.F) {
	fb := startFuzzBroker(f)
	keys := fb.b.table.keys
	for i := range keys {
		// Every API at its lowest and highest version: one with small
		// lists and values, one with a huge repetition of one entry.
		f.Add([]byte{byte(i), 0, 150, 1, 2, 150, 6, 1, 0, 0, 9, 1})
		f.Add([]byte{byte(i), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 5, 5, 5, 5})
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Up to three requests on one connection, so that a request can
		// use what an earlier one returned (a member id, a generation, a
		// producer id: see learn).
		fl := &filler{data: data, budget: 80_000, fb: fb}
		for range 3 {
			if len(fl.data) < 2 {
				break
			}
			a := fb.b.table.byKey[keys[int(fl.next())%len(keys)]]
			lo := a.min
			if a.listFromV0 {
				lo = 0
			}
			req := kmsg.RequestForKey(a.key)
			req.SetVersion(lo + int16(int(fl.next())%int(a.max-lo+1)))
			fl.fill(reflect.ValueOf(req).Elem(), 0)
			fb.send(t, req)
			if n := fb.panics(t); n > fb.seenPanics {
				fb.seenPanics = n
				t.Fatalf("a panic while serving %T v%d (see the broker log: SLUICE_TEST_LOG=1)", req, req.GetVersion())
			}
		}
		fb.checkAlive(t)
	})
}

// fuzzBroker is the broker a fuzz worker runs and its connections.
type fuzzBroker struct {
	b       *Broker
	topicID [16]byte // of the topic "fz"
	batch   []byte   // a valid record batch
	fz      net.Conn // the connection fuzzed requests go to; nil once closed
	corr    int32
	format  *kmsg.RequestFormatter
	// learned are ids and numbers from earlier answers, for later
	// requests: member ids, generations and epochs, producer ids.
	learnedIDs  []string
	learnedNums []int64
	// panicReg holds only the broker's panic counter; seenPanics is its
	// value when last checked.
	panicReg   *prometheus.Registry
	seenPanics float64
}

func startFuzzBroker(f *testing.F) *fuzzBroker {
	ctx, cancel := context.WithCancel(context.Background())
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("SLUICE_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	b, err := New(ctx, Config{
		NodeID: 1, Listen: "127.0.0.1:0", DataDir: f.TempDir(), HTTPListen: "127.0.0.1:0",
		EmbeddedEtcdClientAddr: "127.0.0.1:0", EmbeddedEtcdPeerAddr: "127.0.0.1:0",
		Settings: map[string]string{"group.initial.rebalance.delay.ms": "0"},
		Logger:   logger,
	})
	if err != nil {
		cancel()
		f.Fatalf("start broker: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	fb := &fuzzBroker{b: b, format: kmsg.NewRequestFormatter(kmsg.FormatterClientID("fuzz")), panicReg: prometheus.NewRegistry()}
	fb.panicReg.MustRegister(b.metrics.panics)
	f.Cleanup(func() {
		if fb.fz != nil {
			fb.fz.Close()
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				f.Errorf("broker Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			f.Error("broker did not stop within 30 s")
		}
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.DefaultProduceTopic("fz"))
	if err != nil {
		f.Fatal(err)
	}
	defer cl.Close()
	cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
	defer ccancel()
	created, err := kadm.NewClient(cl).CreateTopic(cctx, 2, 1, nil, "fz")
	if err == nil {
		err = created.Err
	}
	if err != nil {
		f.Fatalf("create topic: %v", err)
	}
	fb.topicID = created.ID
	for i := range 4 {
		if err := cl.ProduceSync(cctx, &kgo.Record{Partition: int32(i % 2), Value: []byte("v")}).FirstErr(); err != nil {
			f.Fatalf("produce: %v", err)
		}
	}
	opts := protocol.DefaultBatchOptions()
	opts.FirstTimestamp, opts.MaxTimestamp = time.Now().UnixMilli(), time.Now().UnixMilli()
	fb.batch, err = protocol.BuildBatch(b.codecs, protocol.CodecNone, 0, []kmsg.Record{{Value: []byte("fuzz")}}, opts)
	if err != nil {
		f.Fatal(err)
	}
	return fb
}

// send writes req on the fuzz connection and reads its answer, if any, for
// a short while. A broker that closes the connection has answered too; one
// still waiting (a long poll, a parked join) is left behind by closing it.
func (fb *fuzzBroker) send(t *testing.T, req kmsg.Request) {
	if fb.fz == nil {
		c, err := net.Dial("tcp", fb.b.Addr())
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		fb.fz = c
	}
	fb.corr++
	frame := fb.format.AppendRequest(nil, req, fb.corr)
	_ = fb.fz.SetDeadline(time.Now().Add(300 * time.Millisecond))
	_, err := fb.fz.Write(frame)
	var body []byte
	if err == nil {
		body, err = readFrame(fb.fz)
	}
	if err != nil {
		fb.fz.Close()
		fb.fz = nil
		return
	}
	if resp, err := decodeResponse(req, body); err == nil {
		fb.learn(resp)
	}
}

// learn keeps the ids an answer handed out, a few of each.
func (fb *fuzzBroker) learn(resp kmsg.Response) {
	id := func(s string) {
		if s != "" {
			fb.learnedIDs = append(fb.learnedIDs[max(len(fb.learnedIDs)-7, 0):], s)
		}
	}
	num := func(n int64) { fb.learnedNums = append(fb.learnedNums[max(len(fb.learnedNums)-7, 0):], n) }
	switch r := resp.(type) {
	case *kmsg.JoinGroupResponse:
		id(r.MemberID)
		id(r.LeaderID)
		num(int64(r.Generation))
	case *kmsg.ConsumerGroupHeartbeatResponse:
		if r.MemberID != nil {
			id(*r.MemberID)
		}
		num(int64(r.MemberEpoch))
	case *kmsg.InitProducerIDResponse:
		num(r.ProducerID)
		num(int64(r.ProducerEpoch))
	}
}

// decodeResponse decodes a response frame (correlation id onward) to req.
func decodeResponse(req kmsg.Request, body []byte) (kmsg.Response, error) {
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if len(body) < 4 {
		return nil, io.ErrUnexpectedEOF
	}
	body = body[4:]
	if resp.IsFlexible() && resp.Key() != 18 {
		if len(body) < 1 {
			return nil, io.ErrUnexpectedEOF
		}
		body = body[1:] // empty header tags
	}
	return resp, resp.ReadFrom(body)
}

// checkAlive asks a new connection for ApiVersions and Metadata and checks
// both answers decode.
func (fb *fuzzBroker) checkAlive(t *testing.T) {
	c, err := net.DialTimeout("tcp", fb.b.Addr(), 5*time.Second)
	if err != nil {
		t.Fatalf("broker no longer accepts connections: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	av := kmsg.NewPtrApiVersionsRequest()
	av.Version = 3
	av.ClientSoftwareName, av.ClientSoftwareVersion = "fuzz", "1"
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 12
	md.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("fz")}}
	for i, req := range []kmsg.Request{av, md} {
		if _, err := c.Write(fb.format.AppendRequest(nil, req, int32(i))); err != nil {
			t.Fatalf("write %T: %v", req, err)
		}
		body, err := readFrame(br)
		if err != nil {
			t.Fatalf("broker did not answer %T: %v", req, err)
		}
		if len(body) < 4 || int32(binary.BigEndian.Uint32(body)) != int32(i) {
			t.Fatalf("%T: bad correlation id", req)
		}
		resp, err := decodeResponse(req, body)
		if err != nil {
			t.Fatalf("%T answer does not decode: %v", req, err)
		}
		switch r := resp.(type) {
		case *kmsg.ApiVersionsResponse:
			if r.ErrorCode != 0 || len(r.ApiKeys) == 0 {
				t.Fatalf("ApiVersions answered error %d with %d keys", r.ErrorCode, len(r.ApiKeys))
			}
		case *kmsg.MetadataResponse:
			if len(r.Brokers) != 1 || len(r.Topics) != 1 {
				t.Fatalf("Metadata answered %d brokers and %d topics", len(r.Brokers), len(r.Topics))
			}
		}
	}
}

// panics reads sluice_request_panics_total, through a registry of its own
// so that nothing else is gathered.
func (fb *fuzzBroker) panics(t *testing.T) float64 {
	mfs, err := fb.panicReg.Gather()
	if err != nil || len(mfs) != 1 || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("gather sluice_request_panics_total: %v", err)
	}
	return mfs[0].GetMetric()[0].GetCounter().GetValue()
}

func readFrame(r io.Reader) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > 256<<20 {
		return nil, fmt.Errorf("response of %d bytes", n)
	}
	body := make([]byte, n)
	_, err := io.ReadFull(r, body)
	return body, err
}

// filler fills kmsg structs from fuzz bytes. budget bounds the list
// entries of one request and size (roughly its encoded bytes) its total,
// so every request stays a few MiB at most.
type filler struct {
	data   []byte
	budget int
	size   int
	fb     *fuzzBroker
}

// maxFuzzRequest is what size may reach; a repeated entry is repeated
// only as often as fits.
const maxFuzzRequest = 4 << 20

func (f *filler) next() byte {
	if len(f.data) == 0 {
		return 0
	}
	b := f.data[0]
	f.data = f.data[1:]
	return b
}

func (f *filler) u64() uint64 {
	var v uint64
	for range 8 {
		v = v<<8 | uint64(f.next())
	}
	return v
}

var fuzzNames = []string{"fz", "fz", "", "g", "nope", "__consumer_offsets", strings.Repeat("x", 300), "bad/name", "..", "fz-new"}

func (f *filler) str() string {
	c := f.next()
	if c >= 0xe0 && c < 0xf0 && len(f.fb.learnedIDs) > 0 {
		return f.fb.learnedIDs[int(c)%len(f.fb.learnedIDs)]
	}
	if int(c) < 3*len(fuzzNames) {
		return fuzzNames[int(c)%len(fuzzNames)]
	}
	n := int(f.next()) % 40
	if c == 0xff && f.size+40000 < maxFuzzRequest {
		n = 40000 // a long string
	}
	f.size += n
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + f.next()%26
	}
	return string(b)
}

func (f *filler) int(bits int) int64 {
	switch c := f.next(); c % 12 {
	case 0:
		return 0
	case 1:
		return 1
	case 2:
		return -1
	case 3:
		return 2
	case 4:
		return int64(uint64(1)<<(bits-1) - 1) // max
	case 5:
		return -int64(uint64(1) << (bits - 1)) // min
	case 6:
		return int64(f.next() % 8)
	case 7:
		return -2
	case 8:
		return int64(f.next()) * 1000
	case 9:
		if n := len(f.fb.learnedNums); n > 0 {
			return f.fb.learnedNums[int(f.next())%n]
		}
		return 0
	default:
		return int64(f.u64())
	}
}

// count picks a list length: mostly small, sometimes a huge repetition.
func (f *filler) count() (n int, repeat bool) {
	switch c := f.next(); {
	case c < 100:
		return int(c % 4), false
	case c < 200:
		return 1, false
	case c < 230:
		return 100, true
	case c < 250:
		return 5000, true
	case c < 255:
		return 20000, true
	default:
		return 70000, true // past 65,536, where per-entry select cases once crashed Fetch
	}
}

func (f *filler) fill(v reflect.Value, depth int) {
	f.size += 2
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < v.NumField(); i++ {
			name := t.Field(i).Name
			if name == "Version" || name == "UnknownTags" || !v.Field(i).CanSet() {
				continue
			}
			if name == "Records" && v.Field(i).Kind() == reflect.Slice {
				v.Field(i).SetBytes(f.records())
				continue
			}
			f.fill(v.Field(i), depth+1)
		}
	case reflect.Bool:
		v.SetBool(f.next()&1 == 1)
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(f.int(v.Type().Bits()))
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(f.int(v.Type().Bits())))
	case reflect.Float32, reflect.Float64:
		v.SetFloat([]float64{0, 1, -1, math.NaN(), math.Inf(1), 1e300}[f.next()%6])
	case reflect.String:
		v.SetString(f.str())
	case reflect.Array:
		if v.Len() == 16 && v.Type().Elem().Kind() == reflect.Uint8 {
			switch f.next() % 3 {
			case 0: // zero
			case 1:
				reflect.Copy(v, reflect.ValueOf(f.fb.topicID[:]))
			default:
				for i := range 16 {
					v.Index(i).SetUint(uint64(f.next()))
				}
			}
			return
		}
		for i := 0; i < v.Len(); i++ {
			f.fill(v.Index(i), depth+1)
		}
	case reflect.Pointer:
		if f.next()%4 == 0 || depth > 12 {
			v.SetZero()
			return
		}
		p := reflect.New(v.Type().Elem())
		f.fill(p.Elem(), depth+1)
		v.Set(p)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes(f.bytes())
			return
		}
		n, repeat := f.count()
		if n == 0 && f.next()&1 == 0 {
			v.SetZero() // null
			return
		}
		if n > f.budget || depth > 12 || f.size >= maxFuzzRequest {
			n, repeat = min(n, 1, f.budget), false
		}
		before := f.size
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := 0; i < n; i++ {
			if repeat && i > 0 {
				// The same entry again, as often as the size allows.
				each := max(f.size-before, 1)
				n = max(min(n, 1+(maxFuzzRequest-f.size)/each), 1)
				f.size += (n - 1) * each
				f.budget -= n
				s = s.Slice(0, n)
				for j := 1; j < n; j++ {
					s.Index(j).Set(s.Index(0))
				}
				break
			}
			f.budget--
			f.fill(s.Index(i), depth+1)
		}
		v.Set(s)
	}
}

func (f *filler) bytes() []byte {
	switch c := f.next(); c % 5 {
	case 0:
		return nil
	case 1:
		return []byte{}
	case 2:
		n := min(int(f.next())<<10, max(maxFuzzRequest-f.size, 0)) // zeros, up to 255 KiB
		f.size += n
		return make([]byte, n)
	default:
		b := make([]byte, int(f.next()%64))
		f.size += len(b)
		for i := range b {
			b[i] = f.next()
		}
		return b
	}
}

// records is a Produce partition's records: a valid batch, one with a byte
// changed, or bytes.
func (f *filler) records() []byte {
	f.size += len(f.fb.batch)
	switch c := f.next(); c % 4 {
	case 0:
		return f.fb.batch
	case 1:
		b := append([]byte(nil), f.fb.batch...)
		b[int(f.next())%len(b)] ^= f.next() | 1
		return b
	default:
		return f.bytes()
	}
}
