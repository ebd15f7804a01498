package integration

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// throttleHook counts the throttles a client is told about (KIP-219).
type throttleHook struct {
	count  atomic.Int64
	max    atomic.Int64 // ms
	before atomic.Int64 // throttles applied before the response (pre-KIP-219)
}

func (h *throttleHook) OnBrokerThrottle(_ kgo.BrokerMetadata, d time.Duration, after bool) {
	h.count.Add(1)
	if !after {
		h.before.Add(1)
	}
	for {
		cur := h.max.Load()
		if d.Milliseconds() <= cur || h.max.CompareAndSwap(cur, d.Milliseconds()) {
			return
		}
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func clientQuota(key string, value float64, entity ...kadm.ClientQuotaEntityComponent) kadm.AlterClientQuotaEntry {
	return kadm.AlterClientQuotaEntry{Entity: entity, Ops: []kadm.AlterClientQuotaOp{{Key: key, Value: value}}}
}

func clientIDPart(name string) kadm.ClientQuotaEntityComponent {
	if name == "" {
		return kadm.ClientQuotaEntityComponent{Type: "client-id"}
	}
	return kadm.ClientQuotaEntityComponent{Type: "client-id", Name: kadm.StringPtr(name)}
}

// setQuota alters one quota and fails the test on any error.
func setQuota(t *testing.T, adm *kadm.Client, entries ...kadm.AlterClientQuotaEntry) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := adm.AlterClientQuotas(ctx, entries)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("alter %v: %v %s", r.Entity, r.Err, r.ErrMessage)
		}
	}
}

// quotaMetric reads one sluice_quota_* series of a client-id entity from
// the broker's registry; -1 when absent.
func quotaMetric(t *testing.T, ib *inproc, name, typ, clientID string) float64 {
	t.Helper()
	fams, err := ib.b.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			lbl := map[string]string{}
			for _, l := range m.GetLabel() {
				lbl[l.GetName()] = l.GetValue()
			}
			if lbl["type"] == typ && lbl["client_id"] == clientID && lbl["user"] == "" {
				if g := m.GetGauge(); g != nil {
					return g.GetValue()
				}
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

// waitQuotaApplied waits until the broker enforces limit for the entity.
func waitQuotaApplied(t *testing.T, ib *inproc, typ, clientID string, limit float64) {
	t.Helper()
	waitFor(t, 10*time.Second, func() error {
		if v := quotaMetric(t, ib, "sluice_quota_limit", typ, clientID); v != limit {
			return errors.New("quota not applied yet")
		}
		return nil
	})
}

// TestQuotaProduceFetchHeldToQuota runs a producer offering three times its
// producer_byte_rate and a consumer that could read far more than three
// times its consumer_byte_rate for 20 s: both are held within 15% of their
// quota, are told throttle_time_ms, and see no errors. The broker runs
// quota.window.num=10 so the 20 s span is two whole quota periods (see
// broker/quota: within a period a throttled client alternates between a
// burst and waits, so only whole periods measure the quota itself).
func TestQuotaProduceFetchHeldToQuota(t *testing.T) {
	const (
		quota    = 256 << 10
		recSize  = 8 << 10
		duration = 20 * time.Second
	)
	ib := startBroker(t, map[string]string{"quota.window.num": "10"})
	createTopic(t, ib.addr(), "quota-produce", 1, nil)
	createTopic(t, ib.addr(), "quota-fetch", 1, nil)

	// Enough data for the consumer to read at three times its quota.
	// Uncompressed, so that the bytes counted by the clients are the bytes
	// the quotas count, and in small batches: a fetch returns at least one
	// whole batch, and the quota is only as fine as the fetches.
	fill := client(t, ib.addr(), kgo.ClientID("prefill"), kgo.DefaultProduceTopic("quota-fetch"),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerBatchMaxBytes(64<<10))
	value := randomBytes(recSize) // incompressible, so bytes on the wire are what is counted
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for range 3 * quota * int(duration/time.Second) / recSize {
		fill.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("prefill: %v", err)
			}
		})
	}
	if err := fill.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	adm := admin(t, ib.addr())
	setQuota(t, adm,
		clientQuota("producer_byte_rate", quota, clientIDPart("quota-producer")),
		clientQuota("consumer_byte_rate", quota, clientIDPart("quota-consumer")))
	waitQuotaApplied(t, ib, "producer_byte_rate", "quota-producer", quota)
	waitQuotaApplied(t, ib, "consumer_byte_rate", "quota-consumer", quota)

	var pHook, cHook throttleHook
	prod := client(t, ib.addr(), kgo.ClientID("quota-producer"), kgo.DefaultProduceTopic("quota-produce"), kgo.WithHooks(&pHook),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	cons := client(t, ib.addr(), kgo.ClientID("quota-consumer"), kgo.ConsumeTopics("quota-fetch"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(64<<10), kgo.FetchMaxPartitionBytes(64<<10),
		kgo.WithHooks(&cHook))

	start := time.Now()
	end := start.Add(duration)
	var wg sync.WaitGroup
	var produced, consumed int64
	wg.Add(2)
	go func() { // paced at 3x the quota; a throttled send is not caught up
		defer wg.Done()
		interval := time.Second * recSize / (3 * quota)
		next := start
		for {
			if d := time.Until(next); d > 0 {
				time.Sleep(d) // pacing the offered load, not waiting for a condition
			}
			if !time.Now().Before(end) {
				return
			}
			if err := prod.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
				t.Errorf("produce: %v", err)
				return
			}
			if time.Now().Before(end) {
				produced += recSize
			}
			if next = next.Add(interval); next.Before(time.Now()) {
				next = time.Now()
			}
		}
	}()
	go func() {
		defer wg.Done()
		pctx, pcancel := context.WithDeadline(ctx, end)
		defer pcancel()
		for pctx.Err() == nil {
			fs := cons.PollFetches(pctx)
			fs.EachError(func(_ string, _ int32, err error) {
				if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
					t.Errorf("fetch: %v", err)
				}
			})
			fs.EachRecord(func(r *kgo.Record) {
				if time.Now().Before(end) {
					consumed += int64(len(r.Value))
				}
			})
		}
	}()
	wg.Wait()
	for name, c := range map[string]struct {
		bytes int64
		hook  *throttleHook
	}{"producer": {produced, &pHook}, "consumer": {consumed, &cHook}} {
		rate := float64(c.bytes) / duration.Seconds()
		t.Logf("%s: %.0f B/s against a quota of %d (%.3f), %d throttles, longest %d ms", name, rate, quota, rate/quota, c.hook.count.Load(), c.hook.max.Load())
		if math.Abs(rate-quota)/quota > 0.15 {
			t.Errorf("%s held at %.0f B/s, want within 15%% of %d", name, rate, quota)
		}
		if c.hook.count.Load() == 0 {
			t.Errorf("%s was never told throttle_time_ms", name)
		}
	}
	for typ, id := range map[string]string{"producer_byte_rate": "quota-producer", "consumer_byte_rate": "quota-consumer"} {
		if v := quotaMetric(t, ib, "sluice_quota_throttle_seconds_total", typ, id); v <= 0 {
			t.Errorf("%s throttle seconds metric = %v, want > 0", typ, v)
		}
		if v := quotaMetric(t, ib, "sluice_quota_usage_total", typ, id); v < quota*duration.Seconds()*0.8 {
			t.Errorf("%s usage metric = %v bytes, want about %v", typ, v, quota*duration.Seconds())
		}
	}
}

// TestQuotaAlterAppliesLive changes a producer's quota while it produces:
// a raised quota stops the throttling, a lowered one brings it back.
func TestQuotaAlterAppliesLive(t *testing.T) {
	ib := startBroker(t, nil)
	createTopic(t, ib.addr(), "quota-live", 1, nil)
	adm := admin(t, ib.addr())
	var hook throttleHook
	cl := client(t, ib.addr(), kgo.ClientID("quota-live"), kgo.DefaultProduceTopic("quota-live"), kgo.WithHooks(&hook))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	value := randomBytes(250_000)
	produce := func() {
		t.Helper()
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}

	// 250 kB over the 10 s minimum window is 25 kB/s: throttled 2.5 s.
	setQuota(t, adm, clientQuota("producer_byte_rate", 20_000, clientIDPart("quota-live")))
	waitQuotaApplied(t, ib, "producer_byte_rate", "quota-live", 20_000)
	produce()
	if hook.count.Load() != 1 || hook.max.Load() < 2000 || hook.max.Load() > 3000 {
		t.Fatalf("at 20 kB/s: %d throttles, longest %d ms; want one of about 2500 ms", hook.count.Load(), hook.max.Load())
	}

	setQuota(t, adm, clientQuota("producer_byte_rate", 1e9, clientIDPart("quota-live")))
	waitQuotaApplied(t, ib, "producer_byte_rate", "quota-live", 1e9)
	produce()
	produce()
	if n := hook.count.Load(); n != 1 {
		t.Fatalf("after raising the quota: %d throttles, want still 1", n)
	}

	setQuota(t, adm, clientQuota("producer_byte_rate", 20_000, clientIDPart("quota-live")))
	waitQuotaApplied(t, ib, "producer_byte_rate", "quota-live", 20_000)
	produce() // answered at once; the throttle is the client's to wait out
	if n := hook.count.Load(); n != 2 {
		t.Fatalf("after lowering the quota: %d throttles, want 2", n)
	}
}

// TestQuotaAdminRoundTrip alters and describes quotas with kadm: match
// types, strict, validate-only, removal, and Kafka's error codes.
func TestQuotaAdminRoundTrip(t *testing.T) {
	ib := startBroker(t, nil)
	adm := admin(t, ib.addr())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	alice := kadm.ClientQuotaEntityComponent{Type: "user", Name: kadm.StringPtr("alice")}
	setQuota(t, adm,
		kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{clientIDPart("a")}, Ops: []kadm.AlterClientQuotaOp{
			{Key: "producer_byte_rate", Value: 1024}, {Key: "request_percentage", Value: 50}}},
		clientQuota("consumer_byte_rate", 2048, clientIDPart("")),
		clientQuota("producer_byte_rate", 10, alice, clientIDPart("a")))
	if res, err := adm.ValidateAlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{clientQuota("producer_byte_rate", 1, clientIDPart("b"))}); err != nil || res[0].Err != nil {
		t.Fatalf("validate only: %v %+v", err, res)
	}

	describe := func(strict bool, comps ...kadm.DescribeClientQuotaComponent) map[string]string {
		t.Helper()
		qs, err := adm.DescribeClientQuotas(ctx, strict, comps)
		if err != nil {
			t.Fatalf("describe %+v: %v", comps, err)
		}
		out := map[string]string{}
		for _, q := range qs {
			var vals []string
			for _, v := range q.Values {
				vals = append(vals, v.String())
			}
			out[q.Entity.String()] = strings.Join(vals, ",")
		}
		return out
	}
	exactA := kadm.DescribeClientQuotaComponent{Type: "client-id", MatchName: kadm.StringPtr("a")}
	anyClient := kadm.DescribeClientQuotaComponent{Type: "client-id", MatchType: kmsg.QuotasMatchTypeAny}
	cases := []struct {
		strict bool
		comps  []kadm.DescribeClientQuotaComponent
		want   []string
	}{
		{false, []kadm.DescribeClientQuotaComponent{exactA}, []string{"{client-id=a}", "{user=alice, client-id=a}"}},
		{true, []kadm.DescribeClientQuotaComponent{exactA}, []string{"{client-id=a}"}},
		{false, []kadm.DescribeClientQuotaComponent{{Type: "client-id", MatchType: kmsg.QuotasMatchTypeDefault}}, []string{"{client-id=<default>}"}},
		{true, []kadm.DescribeClientQuotaComponent{anyClient}, []string{"{client-id=<default>}", "{client-id=a}"}},
		{false, []kadm.DescribeClientQuotaComponent{{Type: "user", MatchType: kmsg.QuotasMatchTypeAny}}, []string{"{user=alice, client-id=a}"}},
		{false, nil, []string{"{client-id=<default>}", "{client-id=a}", "{user=alice, client-id=a}"}},
	}
	for _, c := range cases {
		got := describe(c.strict, c.comps...)
		if len(got) != len(c.want) {
			t.Errorf("describe strict=%v %+v = %v, want %v", c.strict, c.comps, got, c.want)
			continue
		}
		for _, w := range c.want {
			if _, ok := got[w]; !ok {
				t.Errorf("describe strict=%v %+v = %v, want %v", c.strict, c.comps, got, c.want)
			}
		}
	}
	if got := describe(true, exactA)["{client-id=a}"]; got != "producer_byte_rate=1024.000000,request_percentage=50.000000" {
		t.Errorf("client a values %q", got)
	}

	bad := []kadm.AlterClientQuotaEntry{
		clientQuota("producer_byte_rate", 1.5, clientIDPart("c")),
		clientQuota("producer_byte_rate", -1, clientIDPart("c")),
		clientQuota("no_such_quota", 1, clientIDPart("c")),
		clientQuota("producer_byte_rate", 1, kadm.ClientQuotaEntityComponent{Type: "client-id", Name: kadm.StringPtr("")}),
		clientQuota("producer_byte_rate", 1, kadm.ClientQuotaEntityComponent{Type: "group", Name: kadm.StringPtr("g")}),
		clientQuota("connection_creation_rate", 1, kadm.ClientQuotaEntityComponent{Type: "ip", Name: kadm.StringPtr("127.0.0.1")}),
		{Entity: kadm.ClientQuotaEntity{clientIDPart("c")}, Ops: []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: 1}, {Key: "producer_byte_rate", Value: 2}}},
	}
	res, err := adm.AlterClientQuotas(ctx, bad)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if !errors.Is(r.Err, kerr.InvalidRequest) {
			t.Errorf("bad alteration %d (%v): %v %q, want INVALID_REQUEST", i, bad[i], r.Err, r.ErrMessage)
		}
	}
	if _, err := adm.DescribeClientQuotas(ctx, false, []kadm.DescribeClientQuotaComponent{{Type: "client-id", MatchType: kmsg.QuotasMatchTypeExact}}); !errors.Is(err, kerr.InvalidRequest) {
		t.Errorf("exact match without a name: %v, want INVALID_REQUEST", err)
	}
	if _, err := adm.DescribeClientQuotas(ctx, false, []kadm.DescribeClientQuotaComponent{{Type: "group", MatchType: kmsg.QuotasMatchTypeAny}}); !errors.Is(err, kerr.UnsupportedVersion) {
		t.Errorf("unknown entity type: %v, want UNSUPPORTED_VERSION", err)
	}

	setQuota(t, adm, kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{clientIDPart("a")}, Ops: []kadm.AlterClientQuotaOp{
		{Key: "producer_byte_rate", Remove: true}, {Key: "request_percentage", Remove: true}}})
	if got := describe(true, exactA); len(got) != 0 {
		t.Errorf("after removing every key: %v", got)
	}
	if got := describe(false); len(got) != 2 {
		t.Errorf("remaining entities %v, want the default and alice's (validate-only stored nothing)", got)
	}
	// The broker applies what it stored (the watch) and exposes it.
	waitQuotaApplied(t, ib, "consumer_byte_rate", "<default>", 2048)
}

// TestQuotaControllerMutationThrottled creates topics beyond a client's
// controller_mutation_rate (KIP-599): from CreateTopics v6 the topic is
// refused with THROTTLING_QUOTA_EXCEEDED and a throttle time; v5 is served
// and throttled; DeleteTopics counts the deleted partitions.
func TestQuotaControllerMutationThrottled(t *testing.T) {
	ib := startBroker(t, nil)
	setQuota(t, admin(t, ib.addr()), clientQuota("controller_mutation_rate", 1, clientIDPart("quota-admin")))
	waitQuotaApplied(t, ib, "controller_mutation_rate", "quota-admin", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	create := func(cl *kgo.Client, name string, partitions int32) *kmsg.CreateTopicsResponse {
		t.Helper()
		req := kmsg.NewPtrCreateTopicsRequest()
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, 1
		req.Topics = append(req.Topics, rt)
		req.TimeoutMillis = 10000
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		return resp
	}
	cl := client(t, ib.addr(), kgo.ClientID("quota-admin"))
	// The bucket holds (11-1) windows of 1/s: 10 partitions. A request may
	// take it below zero; the next is refused until it refills.
	if resp := create(cl, "mut-1", 12); resp.Topics[0].ErrorCode != 0 || resp.ThrottleMillis != 0 {
		t.Fatalf("first topic: error %d, throttle %d", resp.Topics[0].ErrorCode, resp.ThrottleMillis)
	}
	resp := create(cl, "mut-2", 1)
	if resp.Topics[0].ErrorCode != kerr.ThrottlingQuotaExceeded.Code || resp.ThrottleMillis < 1000 || resp.ThrottleMillis > 2000 {
		t.Fatalf("second topic: error %d, throttle %d ms; want THROTTLING_QUOTA_EXCEEDED with about 2000 ms", resp.Topics[0].ErrorCode, resp.ThrottleMillis)
	}

	// CreateTopics v5 predates KIP-599: accepted, then throttled.
	v5 := kversion.Stable()
	v5.SetMaxKeyVersion(19, 5)
	old := client(t, ib.addr(), kgo.ClientID("quota-admin"), kgo.MaxVersions(v5))
	if resp := create(old, "mut-3", 1); resp.Topics[0].ErrorCode != 0 || resp.ThrottleMillis <= 0 {
		t.Fatalf("v5 topic: error %d, throttle %d; want created and throttled", resp.Topics[0].ErrorCode, resp.ThrottleMillis)
	}

	del := kmsg.NewPtrDeleteTopicsRequest()
	dt := kmsg.NewDeleteTopicsRequestTopic()
	dt.Topic = kmsg.StringPtr("mut-1")
	del.Topics, del.TopicNames, del.TimeoutMillis = append(del.Topics, dt), []string{"mut-1"}, 10000
	dresp, err := del.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if dresp.Topics[0].ErrorCode != kerr.ThrottlingQuotaExceeded.Code || dresp.ThrottleMillis <= 0 {
		t.Fatalf("delete over quota: error %d, throttle %d", dresp.Topics[0].ErrorCode, dresp.ThrottleMillis)
	}
	// Other clients are not limited.
	createTopic(t, ib.addr(), "mut-free", 20, nil)
	md, err := admin(t, ib.addr()).ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if md.Has("mut-2") || !md.Has("mut-1") || !md.Has("mut-3") || !md.Has("mut-free") {
		t.Fatalf("topics %v: want mut-1, mut-3 and mut-free, not mut-2", md.Names())
	}
}

// TestQuotaOldVersionResponseDelayed produces with Produce v5, which
// predates KIP-219: the client does not back off by itself, so the broker
// holds the throttled response back for the throttle time, as Kafka did.
func TestQuotaOldVersionResponseDelayed(t *testing.T) {
	ib := startBroker(t, nil)
	createTopic(t, ib.addr(), "quota-old", 1, nil)
	setQuota(t, admin(t, ib.addr()), clientQuota("producer_byte_rate", 20_000, clientIDPart("quota-old")))
	waitQuotaApplied(t, ib, "producer_byte_rate", "quota-old", 20_000)
	v5 := kversion.Stable()
	v5.SetMaxKeyVersion(0, 5)
	var hook throttleHook
	cl := client(t, ib.addr(), kgo.ClientID("quota-old"), kgo.DefaultProduceTopic("quota-old"), kgo.MaxVersions(v5),
		kgo.WithHooks(&hook), kgo.ProducerBatchCompression(kgo.NoCompression()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	// 250 kB over the 10 s minimum window: 25 kB/s, throttled 2.5 s.
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: randomBytes(250_000)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if hook.before.Load() != 1 || hook.max.Load() < 2000 {
		t.Fatalf("throttles %d (%d before the response), longest %d ms; want one of about 2500 ms before the response",
			hook.count.Load(), hook.before.Load(), hook.max.Load())
	}
	if took < time.Duration(hook.max.Load())*time.Millisecond-200*time.Millisecond {
		t.Fatalf("v5 response after %v, want it held back for the %d ms throttle", took, hook.max.Load())
	}
}

// TestQuotaRequestPercentageThrottles sets a request_percentage far below
// what even one request's handling takes: the next request is answered,
// with a throttle time (KIP-124).
func TestQuotaRequestPercentageThrottles(t *testing.T) {
	ib := startBroker(t, nil)
	setQuota(t, admin(t, ib.addr()), clientQuota("request_percentage", 1e-9, clientIDPart("quota-cpu")))
	waitQuotaApplied(t, ib, "request_percentage", "quota-cpu", 1e-9)
	var hook throttleHook
	cl := client(t, ib.addr(), kgo.ClientID("quota-cpu"), kgo.WithHooks(&hook))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ThrottleMillis <= 0 || hook.count.Load() == 0 {
		t.Fatalf("metadata throttle %d ms, %d throttles seen; want throttled", resp.ThrottleMillis, hook.count.Load())
	}
	if v := quotaMetric(t, ib, "sluice_quota_throttled_responses_total", "request_percentage", "quota-cpu"); v < 1 {
		t.Fatalf("throttled responses metric %v", v)
	}
}

// TestQuotaMutesConnection plays a client that ignores throttle_time_ms
// and pipelines its next request: the throttled response arrives at once,
// the next one only after the throttle time, because the broker reads
// nothing from the connection meanwhile (KIP-219).
func TestQuotaMutesConnection(t *testing.T) {
	ib := startBroker(t, nil)
	createTopic(t, ib.addr(), "quota-mute", 1, nil)
	// The raw header's client id is "test" (badinput_test.go).
	setQuota(t, admin(t, ib.addr()), clientQuota("producer_byte_rate", 20_000, clientIDPart("test")))
	waitQuotaApplied(t, ib, "producer_byte_rate", "test", 20_000)
	conn, err := net.Dial("tcp", ib.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := produceRequest("quota-mute", 1, 5000, buildBatch(-1, -1, -1, string(randomBytes(250_000))))
	req.Version = 7
	produce := frame(req.AppendTo(header(0, 7, 1)))
	apiVersions := frame(header(18, 0, 2))
	start := time.Now()
	if _, err := conn.Write(append(produce, apiVersions...)); err != nil {
		t.Fatal(err)
	}
	read := func() (int32, []byte, time.Duration) {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		var size [4]byte
		if _, err := io.ReadFull(conn, size[:]); err != nil {
			t.Fatal(err)
		}
		body := make([]byte, binary.BigEndian.Uint32(size[:]))
		if _, err := io.ReadFull(conn, body); err != nil {
			t.Fatal(err)
		}
		return int32(binary.BigEndian.Uint32(body)), body[4:], time.Since(start)
	}
	corr, body, first := read()
	resp := kmsg.NewPtrProduceResponse()
	resp.Version = 7
	if err := resp.ReadFrom(body); err != nil || corr != 1 {
		t.Fatalf("produce response corr %d: %v", corr, err)
	}
	throttle := time.Duration(resp.ThrottleMillis) * time.Millisecond
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 || throttle < 2*time.Second {
		t.Fatalf("produce: error %d, throttle %v; want accepted with about 2.5 s", code, throttle)
	}
	if first > throttle/2 {
		t.Fatalf("throttled response took %v: it must be sent at once", first)
	}
	corr, _, second := read()
	if corr != 2 || second < throttle-100*time.Millisecond {
		t.Fatalf("pipelined request %d answered after %v, want after the %v throttle", corr, second, throttle)
	}
}
