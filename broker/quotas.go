package broker

// Client quotas: the broker's quota.Manager, kept in step with the quota
// records in etcd, and what the request path does with it (KIP-13 byte
// rates, KIP-124 request percentage, KIP-219 throttling, KIP-599 controller
// mutations).
//
// Every request of a client is measured against its request_percentage
// (handler time, not long-poll waits or fsync waits); produce request bytes
// against producer_byte_rate (Kafka counts the whole request); fetch
// response bytes against consumer_byte_rate. Follower fetches are exempt,
// as replication is in Kafka, and acks=0 produces are exempt from the
// request quota. A response that broke a quota is sent at once with
// throttle_time_ms (the largest of the throttles earned), then the
// connection reads nothing more until that time has passed; for versions
// older than KIP-219's the response itself is held back for that time, as
// Kafka did before 2.0. A throttled fetch is answered empty and its bytes
// are not counted (Kafka's getThrottledResponse), and fetches are capped at
// what the quota allows in (quota.window.num - 1) windows.

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/broker/quota"
	"github.com/sluicedev/sluice/metadata"
)

// quotaService is the broker's quota manager and the signal that ends
// every connection's mute at shutdown.
type quotaService struct {
	*quota.Manager
	draining chan struct{}
	once     sync.Once
}

// endMutes lets muted connections read again, so shutdown drains them at
// once instead of waiting out their throttles.
func (s *quotaService) endMutes() { s.once.Do(func() { close(s.draining) }) }

// quotaState is a request's client quota accounting.
type quotaState struct {
	size      int           // request frame bytes, for producer_byte_rate
	waited    time.Duration // long-poll time, not counted as handling time
	done      bool          // the handler already accounted for the request
	mutations *quota.Mutations
	// muteUntil is when the connection may read again; zero if the
	// request was not throttled.
	muteUntil time.Time
}

// startQuotas builds the quota manager from the quota.window.* settings and
// registers its metrics.
func (b *Broker) startQuotas() {
	secs := func(name string) time.Duration {
		return time.Duration(b.settings.brokerInt64(name, 1)) * time.Second
	}
	b.quotas = &quotaService{draining: make(chan struct{})}
	b.quotas.Manager = quota.New(quota.Config{
		Samples:           int(b.settings.brokerInt64("quota.window.num", 11)),
		Window:            secs("quota.window.size.seconds"),
		ControllerSamples: int(b.settings.brokerInt64("controller.quota.window.num", 11)),
		ControllerWindow:  secs("controller.quota.window.size.seconds"),
	})
	b.registry.MustRegister(newQuotaCollector(b.quotas.Manager))
}

// watchQuotas applies every quota record in etcd, and each later change,
// to this broker's manager until ctx ends.
func (b *Broker) watchQuotas(ctx context.Context) {
	applied := map[quota.Entity]bool{} // entities with quotas in the manager
	for first := true; ctx.Err() == nil; first = false {
		ch, err := b.meta.WatchClientQuotas(ctx)
		if err != nil {
			b.log.Warn("watching client quotas", "err", err)
			sleepCtx(ctx, time.Second)
			continue
		}
		if !first {
			b.dropDeletedQuotas(ctx, applied)
		}
		for ev := range ch {
			limits := map[quota.Type]float64{}
			if ev.Type == metadata.EventPut {
				for k, v := range ev.Quota.Values {
					if t, ok := quota.TypeForKey(k); ok {
						limits[t] = v
					}
				}
			}
			e := quotaEntity(ev.Quota.Entity)
			b.quotas.SetQuotas(e, limits)
			if len(limits) > 0 {
				applied[e] = true
			} else {
				delete(applied, e)
			}
		}
	}
}

// dropDeletedQuotas removes the entities applied before a watch restarted
// that are no longer stored: their deletion fell between the two watches.
// It runs after the new watch read its snapshot, so a deletion after that
// comes as an event, and an entity listed here is in the snapshot.
func (b *Broker) dropDeletedQuotas(ctx context.Context, applied map[quota.Entity]bool) {
	stored, err := b.meta.ClientQuotas(ctx)
	if err != nil {
		b.log.Warn("listing client quotas", "err", err)
		return
	}
	keep := map[quota.Entity]bool{}
	for _, q := range stored {
		keep[quotaEntity(q.Entity)] = true
	}
	for e := range applied {
		if !keep[e] {
			b.quotas.SetQuotas(e, nil)
			delete(applied, e)
		}
	}
}

func quotaEntity(e metadata.QuotaEntity) quota.Entity {
	return quota.Entity{User: quota.Name(e.User), ClientID: quota.Name(e.ClientID)}
}

// quotaUser is the user part of a request's quota entity: empty until
// connections authenticate (SASL), so only client-id quotas apply.
func (r *request) quotaUser() string { return "" }

// handlingTime is the time the request spent being handled so far, long
// polls excluded.
func (r *request) handlingTime() time.Duration {
	return max(time.Since(r.start)-r.q.waited, 0)
}

// throttleRequest runs after a handler: it records the request against the
// client's request and produce quotas (unless the handler did, as Fetch
// does), merges a controller mutation throttle, and throttles the response.
func (b *Broker) throttleRequest(r *request) {
	if r.q.done {
		return
	}
	user, client := r.quotaUser(), r.hdr.ClientID
	var buf [2]quota.Usage // no allocation per request
	usages := buf[:0]
	pr, isProduce := r.req.(*kmsg.ProduceRequest)
	if isProduce {
		usages = append(usages, b.quotas.Record(quota.Produce, user, client, float64(r.q.size)))
	}
	if !isProduce || pr.Acks != 0 {
		usages = append(usages, b.quotas.Record(quota.Request, user, client, quota.Percent(r.handlingTime())))
	}
	var mutation time.Duration
	if r.q.mutations != nil {
		mutation = r.q.mutations.Throttle()
	}
	throttle := mutation
	for _, u := range usages {
		throttle = max(throttle, u.Throttle)
	}
	winner := false // the throttle is counted against the quota that set it
	credit := func(d time.Duration) time.Duration {
		if winner || d != throttle || d == 0 {
			return 0
		}
		winner = true
		return d
	}
	if r.q.mutations != nil {
		r.q.mutations.Done(credit(mutation))
	}
	for _, u := range usages {
		u.Keep(credit(u.Throttle))
	}
	b.setThrottle(r, r.resp, throttle)
}

// clampFetch caps a client fetch at what its consumer_byte_rate allows in
// the quota's measuring span, as Kafka caps fetch.max.bytes, so that one
// response never earns more than that span's throttle.
func (b *Broker) clampFetch(r *request, req *kmsg.FetchRequest) {
	limit, ok := b.quotas.MaxInWindow(quota.Fetch, r.quotaUser(), r.hdr.ClientID)
	if !ok {
		return
	}
	capBytes := int32(min(limit, math.MaxInt32))
	req.MaxBytes = max(min(req.MaxBytes, capBytes), 1)
	req.MinBytes = min(req.MinBytes, req.MaxBytes)
}

// throttleFetch records a client fetch response against the client's
// consumer_byte_rate and request quotas. Within them it returns out; else
// it releases out and returns an empty response carrying the throttle, and
// the bytes are taken back out of the measured rate.
func (b *Broker) throttleFetch(r *request, out *fetchReply) kmsg.Response {
	r.q.done = true
	user, client := r.quotaUser(), r.hdr.ClientID
	fu := b.quotas.Record(quota.Fetch, user, client, float64(out.recordBytes()))
	ru := b.quotas.Record(quota.Request, user, client, quota.Percent(r.handlingTime()))
	throttle := max(fu.Throttle, ru.Throttle)
	if throttle == 0 {
		fu.Keep(0)
		ru.Keep(0)
		return out
	}
	if fu.Throttle >= ru.Throttle {
		fu.Drop(throttle)
		ru.Keep(0)
	} else {
		fu.Drop(0)
		ru.Keep(throttle)
	}
	empty := kmsg.NewPtrFetchResponse()
	empty.Version = out.Version
	empty.SessionID = out.SessionID
	out.release()
	b.setThrottle(r, empty, throttle)
	return empty
}

// recordBytes is the size of the record batches in the response.
func (f *fetchReply) recordBytes() int64 {
	var n int64
	for i := range f.Topics {
		for j := range f.Topics[i].Partitions {
			n += int64(len(f.Topics[i].Partitions[j].RecordBatches))
		}
	}
	for i := range f.out {
		if f.out[i].data == nil {
			n += f.out[i].span.Len
		}
	}
	return n
}

// setThrottle puts throttle into resp and mutes the connection for it.
// For a version that predates KIP-219 (the client does not back off by
// itself) the response is also held back that long.
func (b *Broker) setThrottle(r *request, resp kmsg.Response, throttle time.Duration) {
	if throttle <= 0 {
		return
	}
	ms := int32(min(throttle.Milliseconds(), math.MaxInt32))
	after := true
	if tr, ok := resp.(kmsg.ThrottleResponse); ok {
		_, after = tr.Throttle()
	}
	if sr, ok := resp.(kmsg.SetThrottleResponse); ok {
		sr.SetThrottle(ms)
	}
	until := time.Now().Add(throttle)
	r.q.muteUntil = until
	if !after {
		prev, c := r.finish, r.conn
		r.finish = func(ctx context.Context) {
			if prev != nil {
				prev(ctx)
			}
			c.flushBeforeWait()
			sleepCtx(ctx, time.Until(until))
		}
	}
}

// mutationQuota starts the KIP-599 accounting of a CreateTopics,
// CreatePartitions or DeleteTopics request; strict versions are refused
// while the quota is exhausted, older ones throttled.
func (b *Broker) mutationQuota(r *request, strict bool) *quota.Mutations {
	q := b.quotas.Mutations(r.quotaUser(), r.hdr.ClientID, strict)
	r.q.mutations = q
	return q
}

// admitMutations records n partition mutations, or returns
// THROTTLING_QUOTA_EXCEEDED for a strict request over its quota.
func admitMutations(q *quota.Mutations, n int32) (int16, *string) {
	if q == nil || q.Record(int(n)) == nil {
		return 0, nil
	}
	return kerr.ThrottlingQuotaExceeded.Code, kmsg.StringPtr(kerr.ThrottlingQuotaExceeded.Description)
}

// quotaCollector reports the configured quotas and what they measured at
// scrape time. Its series exist only for entities an operator configured,
// never per client id a client chose.
type quotaCollector struct {
	m                                   *quota.Manager
	limit, usage, throttle, throttledCt *prometheus.Desc
}

func newQuotaCollector(m *quota.Manager) *quotaCollector {
	lbl := []string{"type", "user", "client_id"}
	return &quotaCollector{
		m: m,
		limit: prometheus.NewDesc("sluice_quota_limit",
			"Configured client quota, by quota key and entity (<default> for a default part, empty for an absent one).", lbl, nil),
		usage: prometheus.NewDesc("sluice_quota_usage_total",
			"What was measured against a quota: bytes (producer_byte_rate, consumer_byte_rate), percent-seconds of handling time (request_percentage) or partition mutations (controller_mutation_rate); its rate is the entity's byte rate.", lbl, nil),
		throttle: prometheus.NewDesc("sluice_quota_throttle_seconds_total",
			"Throttle time given to clients because of a quota.", lbl, nil),
		throttledCt: prometheus.NewDesc("sluice_quota_throttled_responses_total",
			"Responses throttled because of a quota.", lbl, nil),
	}
}

func (c *quotaCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.limit
	ch <- c.usage
	ch <- c.throttle
	ch <- c.throttledCt
}

func (c *quotaCollector) Collect(ch chan<- prometheus.Metric) {
	part := func(n quota.Name) string {
		if n.Default {
			return "<default>"
		}
		return n.Name
	}
	for _, s := range c.m.Stats() {
		lbl := []string{s.Type.Key(), part(s.Entity.User), part(s.Entity.ClientID)}
		ch <- prometheus.MustNewConstMetric(c.limit, prometheus.GaugeValue, s.Limit, lbl...)
		ch <- prometheus.MustNewConstMetric(c.usage, prometheus.CounterValue, s.Recorded, lbl...)
		ch <- prometheus.MustNewConstMetric(c.throttle, prometheus.CounterValue, s.Throttled, lbl...)
		ch <- prometheus.MustNewConstMetric(c.throttledCt, prometheus.CounterValue, float64(s.Count), lbl...)
	}
}
