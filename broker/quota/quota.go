package quota

import (
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Type is a kind of client quota.
type Type int

// The quota types, in the order of Kafka's ClientQuotaType.
const (
	// Produce limits produce request bytes per second (producer_byte_rate).
	Produce Type = iota
	// Fetch limits fetch response bytes per second (consumer_byte_rate).
	Fetch
	// Request limits request handling time, as a percentage of one thread
	// (request_percentage: 100 is one thread's worth).
	Request
	// ControllerMutation limits partitions created or deleted per second
	// (controller_mutation_rate, KIP-599).
	ControllerMutation
	numTypes
)

var typeKeys = [numTypes]string{"producer_byte_rate", "consumer_byte_rate", "request_percentage", "controller_mutation_rate"}

// Key is the type's Kafka quota key, as DescribeClientQuotas and
// AlterClientQuotas name it.
func (t Type) Key() string { return typeKeys[t] }

// TypeForKey returns the type of a Kafka quota key; false for keys this
// package does not enforce.
func TypeForKey(key string) (Type, bool) {
	for t, k := range typeKeys {
		if k == key {
			return Type(t), true
		}
	}
	return 0, false
}

// Name is one part of an Entity: absent (zero), <default>, or a name.
type Name struct {
	Default bool
	Name    string
}

func (n Name) set() bool { return n.Default || n.Name != "" }

// Entity is whom a quota is configured for; see the package documentation.
type Entity struct {
	User, ClientID Name
}

// ErrThrottled is returned by Mutations.Record when a strict request finds
// the controller mutation quota exhausted (THROTTLING_QUOTA_EXCEEDED).
var ErrThrottled = errors.New("quota: throttling quota exceeded")

// Config configures a Manager. Zero fields take Kafka's defaults.
type Config struct {
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Samples and Window are quota.window.num (default 11) and
	// quota.window.size.seconds (default 1 s), for the byte-rate and
	// request quotas.
	Samples int
	Window  time.Duration
	// ControllerSamples and ControllerWindow are
	// controller.quota.window.num and controller.quota.window.size.seconds
	// (defaults 11 and 1 s), for the controller mutation quota.
	ControllerSamples int
	ControllerWindow  time.Duration
}

// Manager measures client usage against the configured quotas. Safe for
// concurrent use.
type Manager struct {
	now     func() time.Time
	samples [numTypes]int
	window  [numTypes]int64 // ms
	// active mirrors mu.count so that requests of a type without quotas
	// (the common case) cost one atomic load, not a shared lock.
	active [numTypes]atomic.Int32

	mu struct {
		sync.RWMutex
		quotas    map[Entity]*configured
		count     [numTypes]int // entities with a quota of each type
		sensors   [numTypes]map[tags]*sensor
		lastSweep int64
	}
}

// configured is one entity's quotas and the statistics of what they
// measured.
type configured struct {
	limits [numTypes]float64 // 0: no quota of that type
	stats  [numTypes]*stats
}

// tags identify what one sensor measures, Kafka's (user, client-id) metric
// tags: an empty part means the usage is shared across it.
type tags struct{ user, clientID string }

type sensor struct {
	mu     sync.Mutex
	rate   sampledRate
	bucket tokenBucket
	used   int64 // ms of the last record
}

type stats struct {
	mu        sync.Mutex
	recorded  float64
	throttled float64 // seconds
	count     int64
}

// New returns a Manager without quotas.
func New(cfg Config) *Manager {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Samples <= 0 {
		cfg.Samples = 11
	}
	if cfg.Window <= 0 {
		cfg.Window = time.Second
	}
	if cfg.ControllerSamples <= 0 {
		cfg.ControllerSamples = 11
	}
	if cfg.ControllerWindow <= 0 {
		cfg.ControllerWindow = time.Second
	}
	m := &Manager{now: cfg.Now}
	for t := range numTypes {
		m.samples[t], m.window[t] = cfg.Samples, cfg.Window.Milliseconds()
		m.mu.sensors[t] = map[tags]*sensor{}
	}
	m.samples[ControllerMutation], m.window[ControllerMutation] = cfg.ControllerSamples, cfg.ControllerWindow.Milliseconds()
	m.mu.quotas = map[Entity]*configured{}
	return m
}

func (m *Manager) nowMs() int64 { return m.now().UnixMilli() }

// SetQuotas replaces the quotas of e: limits holds one value per type, and
// a type without a positive value has no quota. Empty limits remove the
// entity. Usage measured so far is kept, as Kafka keeps its sensors when a
// quota changes.
func (m *Manager) SetQuotas(e Entity, limits map[Type]float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.mu.quotas[e]
	if c == nil {
		c = &configured{}
	}
	for t := range numTypes {
		was := c.limits[t] > 0
		v := limits[t]
		if math.IsNaN(v) || v <= 0 {
			v = 0
		}
		c.limits[t] = v
		switch {
		case v > 0 && !was:
			m.mu.count[t]++
			c.stats[t] = &stats{}
		case v == 0 && was:
			m.mu.count[t]--
			c.stats[t] = nil
		}
		m.active[t].Store(int32(m.mu.count[t]))
	}
	if c.limits == ([numTypes]float64{}) {
		delete(m.mu.quotas, e)
		return
	}
	m.mu.quotas[e] = c
}

// resolution is the quota that applies to a request for one type.
type resolution struct {
	tags  tags
	limit float64
	stats *stats
}

// resolveLocked finds the quota of type t for (user, clientID), as Kafka's
// DefaultQuotaCallback: first which tags the usage is measured under, then
// the most specific quota for those tags.
func (m *Manager) resolveLocked(t Type, user, clientID string) (resolution, bool) {
	if m.mu.count[t] == 0 {
		return resolution{}, false
	}
	has := func(e Entity) bool {
		c := m.mu.quotas[e]
		return c != nil && c.limits[t] > 0
	}
	u, du := Name{Name: user}, Name{Default: true}
	c, dc := Name{Name: clientID}, Name{Default: true}
	tg := tags{clientID: clientID}
	if user != "" {
		switch {
		case has(Entity{u, c}), has(Entity{u, dc}):
			tg = tags{user, clientID}
		case has(Entity{User: u}):
			tg = tags{user: user}
		case has(Entity{du, c}), has(Entity{du, dc}):
			tg = tags{user, clientID}
		case has(Entity{User: du}):
			tg = tags{user: user}
		}
	}
	var order []Entity
	tu, tc := Name{Name: tg.user}, Name{Name: tg.clientID}
	switch {
	case tg.user != "" && tg.clientID != "":
		order = []Entity{{tu, tc}, {tu, dc}, {du, tc}, {du, dc}}
	case tg.user != "":
		order = []Entity{{User: tu}, {User: du}}
	case tg.clientID != "":
		order = []Entity{{ClientID: tc}, {ClientID: dc}}
	}
	for _, e := range order {
		if q := m.mu.quotas[e]; q != nil && q.limits[t] > 0 {
			return resolution{tags: tg, limit: q.limits[t], stats: q.stats[t]}, true
		}
	}
	return resolution{}, false
}

// resolve returns the applicable quota and its sensor (created on first
// use), or false when no quota applies.
func (m *Manager) resolve(t Type, user, clientID string, now int64) (resolution, *sensor, bool) {
	if m.active[t].Load() == 0 {
		return resolution{}, nil, false
	}
	m.mu.RLock()
	res, ok := m.resolveLocked(t, user, clientID)
	var s *sensor
	if ok {
		s = m.mu.sensors[t][res.tags]
	}
	m.mu.RUnlock()
	if !ok || s != nil {
		return res, s, ok
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweepLocked(now)
	if s = m.mu.sensors[t][res.tags]; s == nil {
		s = &sensor{used: now}
		m.mu.sensors[t][res.tags] = s
	}
	return res, s, true
}

// sweepLocked deletes the sensors unused for Samples*Window, at most once
// per the shortest such span.
func (m *Manager) sweepLocked(now int64) {
	span := int64(m.samples[Produce]) * m.window[Produce]
	if now-m.mu.lastSweep < span {
		return
	}
	m.mu.lastSweep = now
	for t := range numTypes {
		idle := int64(m.samples[t]) * m.window[t]
		for k, s := range m.mu.sensors[t] {
			s.mu.Lock()
			stale := now-s.used >= idle
			s.mu.Unlock()
			if stale {
				delete(m.mu.sensors[t], k)
			}
		}
	}
}

// Usage is a value recorded against a quota, and the throttle it earned.
// The caller settles it once with Keep or Drop.
type Usage struct {
	// Throttle is how long the client must wait for its rate to come back
	// to the quota; 0 when within it or when no quota applies.
	Throttle time.Duration
	m        *Manager
	t        Type
	s        *sensor
	st       *stats
	value    float64
}

// Record records value (bytes, or Percent(handling time)) of type t for
// (user, clientID) and computes the throttle time: Kafka's
// (rate-quota)/quota*window, rounded to the millisecond, when the rate
// including value exceeds the quota.
func (m *Manager) Record(t Type, user, clientID string, value float64) Usage {
	if m.active[t].Load() == 0 {
		return Usage{}
	}
	now := m.nowMs()
	res, s, ok := m.resolve(t, user, clientID, now)
	if !ok {
		return Usage{}
	}
	n, w := m.samples[t], m.window[t]
	s.mu.Lock()
	s.used = now
	s.rate.record(value, now, n, w)
	rate, size := s.rate.measure(now, n, w)
	s.mu.Unlock()
	u := Usage{m: m, t: t, s: s, st: res.stats, value: value}
	if rate > res.limit {
		// Capped at what throttle_time_ms (int32) can carry.
		ms := min(math.Round((rate-res.limit)/res.limit*float64(size)), math.MaxInt32)
		u.Throttle = time.Duration(ms) * time.Millisecond
	}
	return u
}

// Keep settles u: the value stays recorded and counts in the statistics,
// and applied (the throttle the client was given, the largest of the
// quotas it broke) is counted as throttle time.
func (u Usage) Keep(applied time.Duration) {
	if u.st == nil {
		return
	}
	u.st.add(u.value, applied)
}

// Drop settles u by taking its value back out of the measured rate, as
// Kafka un-records a throttled fetch whose data is not sent; applied is
// counted as throttle time.
func (u Usage) Drop(applied time.Duration) {
	if u.s == nil {
		return
	}
	now := u.m.nowMs()
	u.s.mu.Lock()
	u.s.rate.record(-u.value, now, u.m.samples[u.t], u.m.window[u.t])
	u.s.mu.Unlock()
	if u.st != nil {
		u.st.add(0, applied)
	}
}

func (s *stats) add(value float64, throttle time.Duration) {
	s.mu.Lock()
	s.recorded += value
	if throttle > 0 {
		s.throttled += throttle.Seconds()
		s.count++
	}
	s.mu.Unlock()
}

// Percent converts request handling time into the unit of the request
// quota: percent of one thread for one second (10 ms is 1).
func Percent(d time.Duration) float64 { return float64(d) * 100 / float64(time.Second) }

// MaxInWindow is the largest value of type t that (user, clientID) can use
// without being throttled even from an idle start:
// quota*(Samples-1)*Window. Fetches are capped at it, as Kafka caps
// fetch.max.bytes, so one response never earns an unbounded throttle.
// False when no quota applies.
func (m *Manager) MaxInWindow(t Type, user, clientID string) (float64, bool) {
	if m.active[t].Load() == 0 {
		return 0, false
	}
	m.mu.RLock()
	res, ok := m.resolveLocked(t, user, clientID)
	m.mu.RUnlock()
	if !ok {
		return 0, false
	}
	return res.limit * float64(m.samples[t]-1) * float64(m.window[t]) / 1000, true
}

// EntityStats is what one configured entity's quota of one type measured,
// for metrics.
type EntityStats struct {
	Entity Entity
	Type   Type
	Limit  float64
	// Recorded is the total value measured against the quota (bytes, or
	// percent-seconds of handling time, or partition mutations).
	Recorded float64
	// Throttled is the total throttle time given, and Count how many
	// responses were throttled.
	Throttled float64
	Count     int64
}

// Stats lists every configured quota with its totals.
func (m *Manager) Stats() []EntityStats {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]EntityStats, 0, len(m.mu.quotas))
	for e, c := range m.mu.quotas {
		for t := range numTypes {
			st := c.stats[t]
			if st == nil {
				continue
			}
			st.mu.Lock()
			out = append(out, EntityStats{Entity: e, Type: t, Limit: c.limits[t], Recorded: st.recorded, Throttled: st.throttled, Count: st.count})
			st.mu.Unlock()
		}
	}
	return out
}

// sensorCount is the number of live sensors, for tests.
func (m *Manager) sensorCount() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	n := 0
	for t := range numTypes {
		n += len(m.mu.sensors[t])
	}
	return n
}
