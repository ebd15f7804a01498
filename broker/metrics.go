package broker

import (
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// metrics are the broker's Prometheus series, all prefixed sluice_ and
// registered on the broker's own registry.
type metrics struct {
	requests         *prometheus.CounterVec
	requestErrors    *prometheus.CounterVec
	requestLatency   *prometheus.HistogramVec
	unsupportedReqs  *prometheus.CounterVec
	badRequests      prometheus.Counter
	panics           prometheus.Counter
	connections      prometheus.Gauge
	connectionsTotal prometheus.Counter
	bytesIn          *prometheus.CounterVec
	recordsIn        *prometheus.CounterVec
	bytesOut         *prometheus.CounterVec
	recordsOut       *prometheus.CounterVec
	producedRejected *prometheus.CounterVec
	fetchWait        prometheus.Histogram
	fsync            prometheus.Histogram

	// Admission control.
	connectionsRejected *prometheus.CounterVec
	acceptThrottle      prometheus.Counter

	// Replication counters; the gauges are computed at scrape time by
	// replicationCollector.
	isrShrinks, isrExpands            prometheus.Counter
	leaderElections, uncleanElections prometheus.Counter
	truncations                       prometheus.Counter
	replicatedBytes                   *prometheus.CounterVec
	replicatedRecords                 *prometheus.CounterVec

	// perAPI caches the children of requests and requestLatency for each
	// (key, version) seen, and perTopic those of the per-topic byte and
	// record counters, so that the hot path does not hash label values on
	// every request.
	perAPI   [maxCachedKey + 1][maxCachedVersion + 1]atomic.Pointer[apiSeries]
	perTopic sync.Map // topic name -> *topicSeries
}

// Bounds of the (key, version) cache; requests beyond them are counted
// through the label lookup as before.
const (
	maxCachedKey     = 127
	maxCachedVersion = 31
)

// apiSeries are the request series of one (API key, version).
type apiSeries struct {
	requests prometheus.Counter
	latency  prometheus.Observer
}

// topicSeries are the traffic series of one topic.
type topicSeries struct {
	bytesIn, recordsIn, bytesOut, recordsOut prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, b *Broker) *metrics {
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_requests_total",
			Help: "Requests handled, by API and version."}, []string{"api", "version"}),
		requestErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_request_errors_total",
			Help: "Error codes returned in responses, by API and Kafka error name."}, []string{"api", "error"}),
		requestLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_request_duration_seconds",
			Help:    "Time from a request being decoded to its response being written, by API.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2.5, 14)}, []string{"api"}),
		unsupportedReqs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_unsupported_requests_total",
			Help: "Requests with an unknown API key or unsupported version (the connection is closed)."}, []string{"key", "version"}),
		badRequests: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_bad_requests_total",
			Help: "Connections closed for malformed, oversized or undecodable requests."}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_request_panics_total",
			Help: "Panics recovered while serving a request; each closed its connection and was logged with its stack."}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_connections",
			Help: "Open client connections."}),
		connectionsTotal: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_connections_total",
			Help: "Client connections accepted."}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_bytes_in_total",
			Help: "Record batch bytes appended, by topic."}, []string{"topic"}),
		recordsIn: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_records_in_total",
			Help: "Records appended, by topic."}, []string{"topic"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_bytes_out_total",
			Help: "Record batch bytes returned by fetches, by topic."}, []string{"topic"}),
		recordsOut: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_records_out_total",
			Help: "Records returned by fetches, by topic."}, []string{"topic"}),
		producedRejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_produce_rejected_total",
			Help: "Produced batches rejected by validation, by topic."}, []string{"topic"}),
		fetchWait: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sluice_fetch_wait_seconds",
			Help: "Time fetch long polls waited for data.", Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12)}),
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sluice_fsync_duration_seconds",
			Help: "Duration of log fsyncs.", Buckets: prometheus.ExponentialBuckets(0.00005, 2.5, 14)}),
	}
	m.isrShrinks = prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_isr_shrinks_total",
		Help: "ISR changes of partitions led here that removed replicas (the leader's own proposals and the controller's)."})
	m.isrExpands = prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_isr_expands_total",
		Help: "ISR changes of partitions led here that added replicas."})
	m.leaderElections = prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_leader_elections_total",
		Help: "Leader changes written by this broker (as controller, in controlled shutdown or for ElectLeaders)."})
	m.uncleanElections = prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_unclean_leader_elections_total",
		Help: "Leaders elected from outside the ISR by this broker."})
	m.truncations = prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_follower_truncations_total",
		Help: "Follower logs truncated to match their leader (KIP-101, KIP-279)."})
	m.replicatedBytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_replicated_bytes_total",
		Help: "Record batch bytes appended by followers here, by topic."}, []string{"topic"})
	m.replicatedRecords = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_replicated_records_total",
		Help: "Records appended by followers here, by topic."}, []string{"topic"})
	m.connectionsRejected = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_connections_rejected_total",
		Help: "New connections closed at once for being over a limit, by reason (max_connections, max_connections_per_ip)."}, []string{"reason"})
	m.acceptThrottle = prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_connection_accept_throttle_seconds_total",
		Help: "Time the acceptor was paused by max.connection.creation.rate; new connections wait in the listen backlog meanwhile."})
	m.connectionsRejected.WithLabelValues(rejectMaxConns) // both series exist from the start
	m.connectionsRejected.WithLabelValues(rejectPerIP)
	f(m.connectionsRejected)
	f(m.acceptThrottle)
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sluice_request_memory_bytes",
		Help: "Bytes of requests (and fetched data held for responses) counted against queued.max.request.bytes."},
		func() float64 { return float64(b.queued.bytes.inUse()) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sluice_request_memory_limit_bytes",
		Help: "queued.max.request.bytes: the request memory budget (0 when unlimited)."},
		func() float64 { return float64(max(b.settings.limits.Load().queuedBytes, 0)) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sluice_queued_requests",
		Help: "Requests read and not yet answered, counted against queued.max.requests."},
		func() float64 { return float64(b.queued.requests.inUse()) }))
	for _, c := range []prometheus.Collector{m.isrShrinks, m.isrExpands, m.leaderElections, m.uncleanElections,
		m.truncations, m.replicatedBytes, m.replicatedRecords, newReplicationCollector(b)} {
		f(c)
	}
	for _, c := range []prometheus.Collector{m.requests, m.requestErrors, m.requestLatency, m.unsupportedReqs, m.badRequests, m.panics,
		m.connections, m.connectionsTotal, m.bytesIn, m.recordsIn, m.bytesOut, m.recordsOut, m.producedRejected, m.fetchWait, m.fsync,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&partitionCollector{b: b}} {
		f(c)
	}
	return m
}

// unknownLabel buckets label values a client chooses that name nothing
// Sluice knows (API keys, versions), so that a client cycling through
// them cannot create an unbounded set of series.
const unknownLabel = "unknown"

// kmsgUnknownName is what kmsg.NameForKey answers for a key it lacks.
var kmsgUnknownName = kmsg.NameForKey(-1)

// apiName is the label of an API key: its Kafka name, or "unknown".
func apiName(key int16) string {
	if n := kmsg.NameForKey(key); n != "" && n != kmsgUnknownName {
		return n
	}
	return unknownLabel
}

// versionLabel is the label of a request version: the number within the
// range any Kafka API has reached (0-31), else "unknown".
func versionLabel(version int16) string {
	if version < 0 || version > maxCachedVersion {
		return unknownLabel
	}
	return strconv.Itoa(int(version))
}

func (m *metrics) observeRequest(key, version int16, d time.Duration) {
	s := m.apiSeries(key, version)
	s.requests.Inc()
	s.latency.Observe(d.Seconds())
}

// apiSeries returns the cached series of (key, version), creating them on
// first use.
func (m *metrics) apiSeries(key, version int16) *apiSeries {
	cacheable := key >= 0 && key <= maxCachedKey && version >= 0 && version <= maxCachedVersion
	if cacheable {
		if s := m.perAPI[key][version].Load(); s != nil {
			return s
		}
	}
	name := apiName(key)
	s := &apiSeries{
		requests: m.requests.WithLabelValues(name, versionLabel(version)),
		latency:  m.requestLatency.WithLabelValues(name),
	}
	if cacheable {
		m.perAPI[key][version].Store(s) // a racing store holds the same children
	}
	return s
}

// topicSeries returns the cached traffic series of topic.
func (m *metrics) topicSeries(topic string) *topicSeries {
	if s, ok := m.perTopic.Load(topic); ok {
		return s.(*topicSeries)
	}
	s := &topicSeries{
		bytesIn:    m.bytesIn.WithLabelValues(topic),
		recordsIn:  m.recordsIn.WithLabelValues(topic),
		bytesOut:   m.bytesOut.WithLabelValues(topic),
		recordsOut: m.recordsOut.WithLabelValues(topic),
	}
	actual, _ := m.perTopic.LoadOrStore(topic, s)
	return actual.(*topicSeries)
}

// unsupported counts a request with an unknown key or version. Its labels
// are bounded: unknown keys are "unknown", and versions beyond 31 too.
func (m *metrics) unsupported(key, version int16) {
	k := unknownLabel
	if apiName(key) != unknownLabel {
		k = strconv.Itoa(int(key))
	}
	m.unsupportedReqs.WithLabelValues(k, versionLabel(version)).Inc()
}

// forgetTopic deletes the per-topic series of a deleted topic, so topics
// created and deleted over time do not accumulate series.
func (m *metrics) forgetTopic(topic string) {
	m.perTopic.Delete(topic)
	for _, v := range []*prometheus.CounterVec{m.bytesIn, m.recordsIn, m.bytesOut, m.recordsOut,
		m.producedRejected, m.replicatedBytes, m.replicatedRecords} {
		v.DeleteLabelValues(topic)
	}
}

func (m *metrics) observeFsync(d time.Duration) { m.fsync.Observe(d.Seconds()) }

func (m *metrics) produced(topic string, bytes, records int) {
	s := m.topicSeries(topic)
	s.bytesIn.Add(float64(bytes))
	s.recordsIn.Add(float64(records))
}

func (m *metrics) fetched(topic string, bytes, records int) {
	s := m.topicSeries(topic)
	s.bytesOut.Add(float64(bytes))
	s.recordsOut.Add(float64(records))
}

// countErrors counts every non-zero ErrorCode field in a response. Produce
// and Fetch responses, which are the bulk of the traffic and can be large,
// are walked directly; every other API is walked with reflection, skipping
// byte slices, so it needs no per-handler code.
func (m *metrics) countErrors(key int16, resp kmsg.Response) {
	switch r := resp.(type) {
	case *kmsg.ProduceResponse:
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				m.countError(key, r.Topics[i].Partitions[j].ErrorCode)
			}
		}
	case *fetchReply:
		m.countFetchErrors(key, r.FetchResponse)
	case *kmsg.FetchResponse:
		m.countFetchErrors(key, r)
	default:
		walkErrorCodes(reflect.ValueOf(resp), func(code int16) { m.countError(key, code) })
	}
}

func (m *metrics) countFetchErrors(key int16, r *kmsg.FetchResponse) {
	m.countError(key, r.ErrorCode)
	for i := range r.Topics {
		for j := range r.Topics[i].Partitions {
			m.countError(key, r.Topics[i].Partitions[j].ErrorCode)
		}
	}
}

// countError counts one error code (0 is no error) under its Kafka name.
func (m *metrics) countError(key, code int16) {
	if code == 0 {
		return
	}
	name := strconv.Itoa(int(code))
	if e := kerr.ErrorForCode(code); e != nil {
		if ke, ok := e.(*kerr.Error); ok {
			name = ke.Message
		}
	}
	m.requestErrors.WithLabelValues(apiName(key), name).Inc()
}

func walkErrorCodes(v reflect.Value, fn func(int16)) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkErrorCodes(v.Elem(), fn)
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < v.NumField(); i++ {
			f := v.Field(i)
			if t.Field(i).Name == "ErrorCode" && f.Kind() == reflect.Int16 {
				if c := int16(f.Int()); c != 0 {
					fn(c)
				}
				continue
			}
			if f.Kind() == reflect.Slice || f.Kind() == reflect.Struct || f.Kind() == reflect.Pointer {
				walkErrorCodes(f, fn)
			}
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.Struct {
			return
		}
		for i := 0; i < v.Len(); i++ {
			walkErrorCodes(v.Index(i), fn)
		}
	}
}

// partitionCollector reports per-partition gauges at scrape time, so nothing
// is updated on the append path.
type partitionCollector struct{ b *Broker }

var (
	descLogEnd   = prometheus.NewDesc("sluice_log_end_offset", "Log end offset, by partition.", []string{"topic", "partition"}, nil)
	descLogStart = prometheus.NewDesc("sluice_log_start_offset", "Log start offset, by partition.", []string{"topic", "partition"}, nil)
	descLogSize  = prometheus.NewDesc("sluice_log_size_bytes", "Bytes on disk of a partition's segments.", []string{"topic", "partition"}, nil)
)

func (c *partitionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descLogEnd
	ch <- descLogStart
	ch <- descLogSize
}

func (c *partitionCollector) Collect(ch chan<- prometheus.Metric) {
	if c.b.topics == nil {
		return
	}
	for _, ts := range c.b.topics.all() {
		for _, p := range ts.partitions() {
			if p == nil {
				continue
			}
			lbl := []string{ts.meta().Name, strconv.Itoa(int(p.index))}
			ch <- prometheus.MustNewConstMetric(descLogEnd, prometheus.GaugeValue, float64(p.log.LogEndOffset()), lbl...)
			ch <- prometheus.MustNewConstMetric(descLogStart, prometheus.GaugeValue, float64(p.log.LogStartOffset()), lbl...)
			ch <- prometheus.MustNewConstMetric(descLogSize, prometheus.GaugeValue, float64(p.log.Size()), lbl...)
		}
	}
}

// replicated counts what a follower appended.
func (m *metrics) replicated(topic string, bytes, records int) {
	m.replicatedBytes.WithLabelValues(topic).Add(float64(bytes))
	m.replicatedRecords.WithLabelValues(topic).Add(float64(records))
}
