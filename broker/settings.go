package broker

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// settings holds the broker's Kafka-named settings: the static ones given at
// start-up (--set) and the dynamic ones altered at run time and kept in etcd.
// It resolves a topic's effective configuration the way Kafka's LogConfig
// does: topic override, then each broker synonym (dynamic before static), then
// the built-in default.
type settings struct {
	reg *configRegistry
	// limits are the admission settings, resolved again whenever the
	// settings change.
	limits atomic.Pointer[limits]
	// share holds the share-group settings, resolved like limits
	// (group_config_defs.go).
	share atomic.Pointer[shareBrokerSettings]

	mu struct {
		sync.RWMutex
		static  map[string]string
		dynamic map[string]string // this broker's own dynamic settings
		// dynamicDefault holds the cluster-wide dynamic defaults, which
		// a broker's own dynamic settings override.
		dynamicDefault map[string]string
	}
}

// newSettings validates the static settings: an unknown name or a bad value is
// a start-up error.
func newSettings(static map[string]string) (*settings, error) {
	s := &settings{reg: newConfigRegistry()}
	for k, v := range static {
		d, ok := s.reg.broker[k]
		if !ok {
			return nil, fmt.Errorf("unknown broker setting %q", k)
		}
		if err := d.check(v); err != nil {
			return nil, fmt.Errorf("broker setting %s: %w", k, err)
		}
	}
	s.mu.static = copyMap(static)
	s.mu.dynamic = map[string]string{}
	s.mu.dynamicDefault = map[string]string{}
	s.limits.Store(resolveLimits(s))
	s.share.Store(resolveShareSettings(s))
	return s, nil
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// setDynamic replaces the dynamic broker settings (from etcd): this
// broker's own and the cluster-wide defaults.
func (s *settings) setDynamic(mine, clusterDefault map[string]string) {
	s.mu.Lock()
	s.mu.dynamic = copyMap(mine)
	s.mu.dynamicDefault = copyMap(clusterDefault)
	s.mu.Unlock()
	s.limits.Store(resolveLimits(s))
	s.share.Store(resolveShareSettings(s))
}

// broker resolves a broker setting.
func (s *settings) broker(name string) resolved {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.brokerLocked(name)
}

func (s *settings) brokerLocked(name string) resolved {
	d := s.reg.broker[name]
	var syn []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym
	add := func(v string, src configSource) {
		syn = append(syn, kmsg.DescribeConfigsResponseResourceConfigConfigSynonym{Name: name, Value: kmsg.StringPtr(v), Source: src})
	}
	if v, ok := s.mu.dynamic[name]; ok {
		add(v, kmsg.ConfigSourceDynamicBrokerConfig)
	}
	if v, ok := s.mu.dynamicDefault[name]; ok {
		add(v, kmsg.ConfigSourceDynamicDefaultBrokerConfig)
	}
	if v, ok := s.mu.static[name]; ok {
		add(v, kmsg.ConfigSourceStaticBrokerConfig)
	}
	if d != nil && d.def != "" {
		add(d.def, kmsg.ConfigSourceDefaultConfig)
	}
	if len(syn) == 0 {
		return resolved{source: kmsg.ConfigSourceDefaultConfig}
	}
	return resolved{value: *syn[0].Value, source: syn[0].Source, synonyms: syn}
}

// brokerInt64 is broker() parsed as an integer; unset settings give def.
func (s *settings) brokerInt64(name string, def int64) int64 {
	r := s.broker(name)
	n, err := strconv.ParseInt(r.value, 10, 64)
	if err != nil {
		return def
	}
	return n
}

func (s *settings) brokerBool(name string) bool { return s.broker(name).value == "true" }

// brokerMillis reads a broker setting in milliseconds as a duration.
func (s *settings) brokerMillis(name string, def int64) time.Duration {
	return time.Duration(s.brokerInt64(name, def)) * time.Millisecond
}

// topic resolves a topic setting given the topic's own overrides.
func (s *settings) topic(name string, overrides map[string]string) resolved {
	d := s.reg.topic[name]
	var syn []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym
	add := func(n, v string, src configSource) {
		syn = append(syn, kmsg.DescribeConfigsResponseResourceConfigConfigSynonym{Name: n, Value: kmsg.StringPtr(v), Source: src})
	}
	if v, ok := overrides[name]; ok {
		add(name, v, kmsg.ConfigSourceDynamicTopicConfig)
	}
	s.mu.RLock()
	for _, sy := range d.synonyms {
		if v, ok := s.mu.dynamic[sy.name]; ok {
			add(sy.name, scale(v, sy.factor), kmsg.ConfigSourceDynamicBrokerConfig)
		}
	}
	for _, sy := range d.synonyms {
		if v, ok := s.mu.dynamicDefault[sy.name]; ok {
			add(sy.name, scale(v, sy.factor), kmsg.ConfigSourceDynamicDefaultBrokerConfig)
		}
	}
	for _, sy := range d.synonyms {
		if v, ok := s.mu.static[sy.name]; ok {
			add(sy.name, scale(v, sy.factor), kmsg.ConfigSourceStaticBrokerConfig)
		}
	}
	s.mu.RUnlock()
	add(name, d.def, kmsg.ConfigSourceDefaultConfig)
	return resolved{value: *syn[0].Value, source: syn[0].Source, synonyms: syn}
}

func scale(v string, factor int64) string {
	if factor == 1 {
		return v
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return v
	}
	if n > math.MaxInt64/factor || n < math.MinInt64/factor {
		return strconv.FormatInt(math.MaxInt64, 10)
	}
	return strconv.FormatInt(n*factor, 10)
}

// topicValues resolves every topic setting.
func (s *settings) topicValues(overrides map[string]string) map[string]string {
	out := make(map[string]string, len(s.reg.topicOrder))
	for _, n := range s.reg.topicOrder {
		out[n] = s.topic(n, overrides).value
	}
	return out
}

// validateTopicConfigs checks names and values of topic overrides. The error
// message is what the client sees with INVALID_CONFIG.
func (s *settings) validateTopicConfigs(m map[string]string) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		d, ok := s.reg.topic[k]
		if !ok {
			return fmt.Errorf("unknown topic config name: %s", k)
		}
		if err := d.check(m[k]); err != nil {
			return fmt.Errorf("invalid value for %s: %w", k, err)
		}
	}
	return nil
}
