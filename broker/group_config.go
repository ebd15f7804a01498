package broker

// Group configs: Kafka's GROUP config resource (type 32; KIP-848, KIP-932,
// KIP-1240, KIP-1191) in DescribeConfigs, AlterConfigs and
// IncrementalAlterConfigs, as Kafka's GroupConfig validates them, stored
// per group in etcd (metadata.GroupConfig) and followed by every broker
// through a watch. Each group's configs are resolved once into a typed
// groupSettings over the broker's share and consumer settings, so the
// request path reads a map under a read lock.
//
// Kafka keeps a group's configs when the group is deleted (they name a
// group id, not a group's incarnation); deleteGroupConfigs is there for an
// explicit removal.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/coordinator/share"
	"github.com/sluicedev/sluice/metadata"
)

// groupSettings are one group's settings: its group configs over the
// broker defaults, each within the broker's min/max bounds.
type groupSettings struct {
	ShareAutoOffsetReset         string // "latest", "earliest" or "by_duration:<ISO-8601>"
	ShareIsolationLevel          int8   // 0 read_uncommitted, 1 read_committed
	ShareRecordLockDuration      time.Duration
	ShareDeliveryCountLimit      int16
	SharePartitionMaxRecordLocks int
	ShareHeartbeatInterval       time.Duration
	ShareSessionTimeout          time.Duration
	ConsumerHeartbeatInterval    time.Duration
	ConsumerSessionTimeout       time.Duration
	// ConsumerOwn says which of the two the group sets itself (heartbeat,
	// session); the KIP-848 coordinator uses only those, and its own
	// broker-wide values otherwise.
	ConsumerOwn   [2]bool
	DLQTopic      string // errors.deadletterqueue.topic.name, "" for none
	DLQCopyRecord bool   // errors.deadletterqueue.copy.record.enable
	ShareBackoff  share.Backoff
}

const streamsInert = inertPrefix + "streams groups (KIP-1071) are not implemented; the value is stored and described."

// groupConfigDefs are the configs of the GROUP resource, with Kafka's
// static defaults and the broker settings that supply their defaults.
func groupConfigDefs() []configDef {
	syn := func(name string) []synonym { return []synonym{{name, 1}} }
	return []configDef{
		{name: "consumer.heartbeat.interval.ms", typ: typeInt, def: "5000", synonyms: syn("group.consumer.heartbeat.interval.ms"), validate: atLeast(1),
			doc: "The heartbeat interval given to the members of a consumer group."},
		{name: "consumer.session.timeout.ms", typ: typeInt, def: "45000", synonyms: syn("group.consumer.session.timeout.ms"), validate: atLeast(1),
			doc: "The timeout to detect client failures when using the consumer group protocol."},
		{name: "errors.deadletterqueue.copy.record.enable", typ: typeBoolean, def: "false",
			doc: "Whether a dead-letter record carries the original key, value and headers, or only the context headers."},
		{name: "errors.deadletterqueue.topic.name", typ: typeString, def: "",
			doc: "The dead-letter topic of this share group; blank for none. It must start with errors.deadletterqueue.topic.name.prefix and have errors.deadletterqueue.group.enable=true."},
		{name: "share.auto.offset.reset", typ: typeString, def: "latest", validate: validShareAutoOffsetReset,
			doc: "Where a share-partition starts: latest, earliest, or by_duration:<ISO-8601 duration> before now."},
		{name: "share.delivery.count.limit", typ: typeInt, def: "5", synonyms: syn("group.share.delivery.count.limit"), validate: atLeast(1),
			doc: "Deliveries of a record after which it is archived (or dead-lettered)."},
		{name: "share.heartbeat.interval.ms", typ: typeInt, def: "5000", synonyms: syn("group.share.heartbeat.interval.ms"), validate: atLeast(1),
			doc: "The heartbeat interval given to the members of a share group."},
		{name: "share.isolation.level", typ: typeString, def: "read_uncommitted", validate: oneOf("read_uncommitted", "read_committed"),
			doc: "read_committed delivers only committed transactional records; read_uncommitted delivers all records."},
		{name: "share.partition.max.record.locks", typ: typeInt, def: "2000", synonyms: syn("group.share.partition.max.record.locks"), validate: atLeast(1),
			doc: "Most records of one share-partition acquired at once."},
		{name: "share.record.lock.duration.ms", typ: typeInt, def: "30000", synonyms: syn("group.share.record.lock.duration.ms"), validate: atLeast(1000),
			doc: "How long acquired records stay locked to their consumer."},
		{name: "share.record.redelivery.backoff.ms", typ: typeLong, def: "0", synonyms: syn("group.share.record.redelivery.backoff.ms"), validate: atLeast(0),
			doc: "Sluice: delay before a released or lock-expired record is delivered again after its first failed delivery; 0 turns the backoff off."},
		{name: "share.record.redelivery.backoff.max.ms", typ: typeLong, def: "60000", synonyms: syn("group.share.record.redelivery.backoff.max.ms"), validate: atLeast(0),
			doc: "Sluice: longest redelivery backoff."},
		{name: "share.record.redelivery.backoff.multiplier", typ: typeDouble, def: "2.0", synonyms: syn("group.share.record.redelivery.backoff.multiplier"), validate: between(1, 1000),
			doc: "Sluice: factor by which the redelivery backoff grows with each failed delivery."},
		{name: "share.session.timeout.ms", typ: typeInt, def: "45000", synonyms: syn("group.share.session.timeout.ms"), validate: atLeast(1),
			doc: "The timeout to detect client failures of share group members."},
		{name: "streams.heartbeat.interval.ms", typ: typeInt, def: "5000", synonyms: syn("group.streams.heartbeat.interval.ms"), validate: atLeast(1), doc: streamsInert},
		{name: "streams.num.standby.replicas", typ: typeInt, def: "0", synonyms: syn("group.streams.num.standby.replicas"), validate: atLeast(0), doc: streamsInert},
		{name: "streams.session.timeout.ms", typ: typeInt, def: "45000", synonyms: syn("group.streams.session.timeout.ms"), validate: atLeast(1), doc: streamsInert},
	}
}

// isoDuration is the subset of ISO-8601 durations Java's Duration.parse
// reads without signs: PnDTnHnMn.nS, at least one part, T only before a
// time part.
var isoDuration = regexp.MustCompile(`^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:\.(\d{1,9}))?S)?)?$`)

// parseISODuration parses a non-negative ISO-8601 duration as Kafka's
// share.auto.offset.reset by_duration: takes it.
func parseISODuration(v string) (time.Duration, error) {
	m := isoDuration.FindStringSubmatch(strings.ToUpper(v))
	if m == nil || v == "P" || strings.HasSuffix(strings.ToUpper(v), "T") || (m[1] == "" && m[2] == "" && m[3] == "" && m[4] == "") {
		return 0, fmt.Errorf("%q is not an ISO-8601 duration (PnDTnHnMn.nS)", v)
	}
	var d time.Duration
	for i, unit := range []time.Duration{24 * time.Hour, time.Hour, time.Minute, time.Second} {
		if m[i+1] == "" {
			continue
		}
		n, err := strconv.ParseInt(m[i+1], 10, 64)
		if err != nil || n > int64((math.MaxInt64-d)/unit) {
			return 0, fmt.Errorf("duration %q is too long", v)
		}
		d += time.Duration(n) * unit
	}
	if m[5] != "" {
		frac := m[5] + strings.Repeat("0", 9-len(m[5]))
		ns, _ := strconv.ParseInt(frac, 10, 64)
		if time.Duration(ns) > math.MaxInt64-d {
			return 0, fmt.Errorf("duration %q is too long", v)
		}
		d += time.Duration(ns)
	}
	return d, nil
}

// shareResetDuration is the duration of a "by_duration:<ISO-8601>"
// share.auto.offset.reset, false for latest and earliest.
func shareResetDuration(v string) (time.Duration, bool) {
	rest, ok := strings.CutPrefix(v, "by_duration:")
	if !ok {
		return 0, false
	}
	d, err := parseISODuration(rest)
	return d, err == nil
}

func validShareAutoOffsetReset(v string) error {
	switch v {
	case "latest", "earliest":
		return nil
	}
	rest, ok := strings.CutPrefix(v, "by_duration:")
	if !ok {
		return fmt.Errorf("value %q is not one of latest, earliest, by_duration:PnDTnHnMn.nS", v)
	}
	if strings.HasPrefix(rest, "-") {
		return fmt.Errorf("negative duration %q is not allowed", rest)
	}
	_, err := parseISODuration(rest)
	return err
}

// groupConfigs holds every group's stored configs and their resolution.
type groupConfigs struct {
	reg   map[string]*configDef
	order []string // sorted names, for DescribeConfigs

	mu struct {
		sync.RWMutex
		records  map[string]metadata.GroupConfig
		resolved map[string]groupSettings
		defaults groupSettings
	}
}

func newGroupConfigs() *groupConfigs {
	g := &groupConfigs{reg: map[string]*configDef{}}
	for _, d := range groupConfigDefs() {
		d := d
		g.reg[d.name] = &d
		g.order = append(g.order, d.name)
	}
	sort.Strings(g.order)
	g.mu.records = map[string]metadata.GroupConfig{}
	g.mu.resolved = map[string]groupSettings{}
	return g
}

// groupSettings resolves group's configs over the broker defaults; cheap,
// called per request (resolved when configs or broker settings change).
func (b *Broker) groupSettings(group string) groupSettings {
	g := b.groupCfg
	g.mu.RLock()
	defer g.mu.RUnlock()
	if s, ok := g.mu.resolved[group]; ok {
		return s
	}
	return g.mu.defaults
}

// refresh re-resolves every group after the broker settings changed.
func (g *groupConfigs) refresh(s *settings) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mu.defaults = g.resolve(s, nil)
	for name, rec := range g.mu.records {
		g.mu.resolved[name] = g.resolve(s, rec.Configs)
	}
}

// replaceAll installs the complete set of stored records (at start-up and
// before each watch).
func (g *groupConfigs) replaceAll(s *settings, recs []metadata.GroupConfig) {
	g.mu.Lock()
	g.mu.records = make(map[string]metadata.GroupConfig, len(recs))
	for _, r := range recs {
		g.mu.records[r.Group] = r
	}
	g.mu.resolved = make(map[string]groupSettings, len(recs))
	g.mu.Unlock()
	g.refresh(s)
}

// apply installs one record (Configs empty: deleted) unless a newer one is
// already installed.
func (g *groupConfigs) apply(s *settings, rec metadata.GroupConfig, deleted bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	cur, ok := g.mu.records[rec.Group]
	if deleted || len(rec.Configs) == 0 {
		if ok && cur.Revision <= rec.Revision {
			delete(g.mu.records, rec.Group)
			delete(g.mu.resolved, rec.Group)
		}
		return
	}
	if ok && cur.Revision > rec.Revision {
		return
	}
	g.mu.records[rec.Group] = rec
	g.mu.resolved[rec.Group] = g.resolve(s, rec.Configs)
}

// overrides returns a group's stored configs (a copy).
func (g *groupConfigs) overrides(group string) map[string]string {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return copyMap(g.mu.records[group].Configs)
}

// has reports whether the group's overrides set name.
func has(over map[string]string, name string) bool {
	_, ok := over[name]
	return ok
}

// value is a group config's effective value given the group's overrides.
func (g *groupConfigs) value(s *settings, name string, over map[string]string) resolved {
	d := g.reg[name]
	if v, ok := over[name]; ok {
		rv := resolved{value: v, source: kmsg.ConfigSourceGroupConfig}
		rv.synonyms = append([]kmsg.DescribeConfigsResponseResourceConfigConfigSynonym{{Name: name, Value: kmsg.StringPtr(v), Source: kmsg.ConfigSourceGroupConfig}}, g.brokerChain(s, d)...)
		return rv
	}
	chain := g.brokerChain(s, d)
	for _, c := range chain {
		if c.Value != nil && *c.Value != "" {
			return resolved{value: *c.Value, source: c.Source, synonyms: chain}
		}
	}
	def := kmsg.DescribeConfigsResponseResourceConfigConfigSynonym{Name: name, Value: kmsg.StringPtr(d.def), Source: kmsg.ConfigSourceDefaultConfig}
	return resolved{value: d.def, source: kmsg.ConfigSourceDefaultConfig, synonyms: []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym{def}}
}

// brokerChain is the resolution chain of the broker setting that supplies
// d's default (dynamic, static, default), for DescribeConfigs synonyms.
func (g *groupConfigs) brokerChain(s *settings, d *configDef) []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym {
	if len(d.synonyms) == 0 {
		return nil
	}
	return s.broker(d.synonyms[0].name).synonyms
}

// resolve computes a group's typed settings; values outside the broker's
// current bounds are clamped (KIP-1240: the bounds are enforced at use as
// well as when a config is set, since they can change later).
func (g *groupConfigs) resolve(s *settings, over map[string]string) groupSettings {
	sh := s.share.Load()
	str := func(name string) string { return g.value(s, name, over).value }
	num := func(name string) int64 {
		n, _ := strconv.ParseInt(str(name), 10, 64)
		return n
	}
	ms := func(name string, lo, hi time.Duration) time.Duration {
		return clampDuration(time.Duration(num(name))*time.Millisecond, lo, hi)
	}
	mult, err := strconv.ParseFloat(str("share.record.redelivery.backoff.multiplier"), 64)
	if err != nil || mult < 1 {
		mult = sh.Backoff.Multiplier
	}
	gs := groupSettings{
		ShareAutoOffsetReset:         str("share.auto.offset.reset"),
		ShareRecordLockDuration:      ms("share.record.lock.duration.ms", sh.MinRecordLockDuration, sh.MaxRecordLockDuration),
		ShareDeliveryCountLimit:      int16(clampInt(num("share.delivery.count.limit"), int64(sh.MinDeliveryCountLimit), int64(sh.MaxDeliveryCountLimit))),
		SharePartitionMaxRecordLocks: int(clampInt(num("share.partition.max.record.locks"), int64(sh.MinPartitionMaxRecordLocks), int64(sh.MaxPartitionMaxRecordLocks))),
		ShareHeartbeatInterval:       ms("share.heartbeat.interval.ms", sh.MinHeartbeatInterval, sh.MaxHeartbeatInterval),
		ShareSessionTimeout:          ms("share.session.timeout.ms", sh.MinSessionTimeout, sh.MaxSessionTimeout),
		ConsumerHeartbeatInterval:    ms("consumer.heartbeat.interval.ms", sh.MinConsumerHeartbeatInterval, sh.MaxConsumerHeartbeatInterval),
		ConsumerSessionTimeout:       ms("consumer.session.timeout.ms", sh.MinConsumerSessionTimeout, sh.MaxConsumerSessionTimeout),
		ConsumerOwn:                  [2]bool{has(over, "consumer.heartbeat.interval.ms"), has(over, "consumer.session.timeout.ms")},
		DLQTopic:                     str("errors.deadletterqueue.topic.name"),
		DLQCopyRecord:                str("errors.deadletterqueue.copy.record.enable") == "true",
		ShareBackoff: share.Backoff{
			Initial:    time.Duration(num("share.record.redelivery.backoff.ms")) * time.Millisecond,
			Max:        time.Duration(num("share.record.redelivery.backoff.max.ms")) * time.Millisecond,
			Multiplier: mult,
		},
	}
	if str("share.isolation.level") == "read_committed" {
		gs.ShareIsolationLevel = 1
	}
	if gs.ShareBackoff.Max < gs.ShareBackoff.Initial {
		gs.ShareBackoff.Max = gs.ShareBackoff.Initial
	}
	return gs
}

// clampDuration bounds d by [lo, hi]; a bound of zero or an inverted
// pair (a misconfigured broker) is ignored.
func clampDuration(d, lo, hi time.Duration) time.Duration {
	return time.Duration(clampInt(int64(d), int64(lo), int64(hi)))
}

func clampInt(n, lo, hi int64) int64 {
	if lo > 0 && n < lo {
		n = lo
	}
	if hi > 0 && hi >= lo && n > hi {
		n = hi
	}
	return n
}

// groupBound is one KIP-1240 rule: a group config must lie within the
// broker's min and max settings.
type groupBound struct {
	name, minName, maxName string
	min, max               func(*shareBrokerSettings) int64
}

func groupBounds() []groupBound {
	ms := func(f func(*shareBrokerSettings) time.Duration) func(*shareBrokerSettings) int64 {
		return func(s *shareBrokerSettings) int64 { return f(s).Milliseconds() }
	}
	return []groupBound{
		{"consumer.heartbeat.interval.ms", "group.consumer.min.heartbeat.interval.ms", "group.consumer.max.heartbeat.interval.ms",
			ms(func(s *shareBrokerSettings) time.Duration { return s.MinConsumerHeartbeatInterval }),
			ms(func(s *shareBrokerSettings) time.Duration { return s.MaxConsumerHeartbeatInterval })},
		{"consumer.session.timeout.ms", "group.consumer.min.session.timeout.ms", "group.consumer.max.session.timeout.ms",
			ms(func(s *shareBrokerSettings) time.Duration { return s.MinConsumerSessionTimeout }),
			ms(func(s *shareBrokerSettings) time.Duration { return s.MaxConsumerSessionTimeout })},
		{"share.heartbeat.interval.ms", "group.share.min.heartbeat.interval.ms", "group.share.max.heartbeat.interval.ms",
			ms(func(s *shareBrokerSettings) time.Duration { return s.MinHeartbeatInterval }),
			ms(func(s *shareBrokerSettings) time.Duration { return s.MaxHeartbeatInterval })},
		{"share.session.timeout.ms", "group.share.min.session.timeout.ms", "group.share.max.session.timeout.ms",
			ms(func(s *shareBrokerSettings) time.Duration { return s.MinSessionTimeout }),
			ms(func(s *shareBrokerSettings) time.Duration { return s.MaxSessionTimeout })},
		{"share.record.lock.duration.ms", "group.share.min.record.lock.duration.ms", "group.share.max.record.lock.duration.ms",
			ms(func(s *shareBrokerSettings) time.Duration { return s.MinRecordLockDuration }),
			ms(func(s *shareBrokerSettings) time.Duration { return s.MaxRecordLockDuration })},
		{"share.delivery.count.limit", "group.share.min.delivery.count.limit", "group.share.max.delivery.count.limit",
			func(s *shareBrokerSettings) int64 { return int64(s.MinDeliveryCountLimit) },
			func(s *shareBrokerSettings) int64 { return int64(s.MaxDeliveryCountLimit) }},
		{"share.partition.max.record.locks", "group.share.min.partition.max.record.locks", "group.share.max.partition.max.record.locks",
			func(s *shareBrokerSettings) int64 { return int64(s.MinPartitionMaxRecordLocks) },
			func(s *shareBrokerSettings) int64 { return int64(s.MaxPartitionMaxRecordLocks) }},
	}
}

// validate checks a group's complete new set of configs as Kafka's
// GroupConfig.validate does, with its messages; the error is what the
// client sees with INVALID_CONFIG.
func (g *groupConfigs) validate(s *settings, next map[string]string) error {
	names := make([]string, 0, len(next))
	for k := range next {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		d, ok := g.reg[k]
		if !ok {
			return fmt.Errorf("Unknown group config name: %s", k)
		}
		if err := d.check(next[k]); err != nil {
			return fmt.Errorf("Invalid value %s for configuration %s: %v", next[k], k, err)
		}
	}
	sh := s.share.Load()
	for _, r := range groupBounds() {
		v, ok := next[r.name]
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		if n < r.min(sh) {
			return fmt.Errorf("%s must be greater than or equal to %s", r.name, r.minName)
		}
		if n > r.max(sh) {
			return fmt.Errorf("%s must be less than or equal to %s", r.name, r.maxName)
		}
	}
	eff := func(name string) int64 {
		n, _ := strconv.ParseInt(g.value(s, name, next).value, 10, 64)
		return n
	}
	for _, p := range [][2]string{
		{"consumer.session.timeout.ms", "consumer.heartbeat.interval.ms"},
		{"share.session.timeout.ms", "share.heartbeat.interval.ms"},
	} {
		_, a := next[p[0]]
		_, b := next[p[1]]
		if (a || b) && eff(p[0]) <= eff(p[1]) {
			return fmt.Errorf("%s must be greater than %s", p[0], p[1])
		}
	}
	_, a := next["share.record.redelivery.backoff.ms"]
	_, b := next["share.record.redelivery.backoff.max.ms"]
	if (a || b) && eff("share.record.redelivery.backoff.max.ms") < eff("share.record.redelivery.backoff.ms") {
		return errors.New("share.record.redelivery.backoff.max.ms must be greater than or equal to share.record.redelivery.backoff.ms")
	}
	if t := next["errors.deadletterqueue.topic.name"]; t != "" {
		if err := validTopicName(t); err != nil {
			return fmt.Errorf("Invalid value %s for configuration errors.deadletterqueue.topic.name: %v", t, err)
		}
		if !strings.HasPrefix(t, sh.DLQTopicPrefix) {
			return fmt.Errorf("errors.deadletterqueue.topic.name must start with %q (errors.deadletterqueue.topic.name.prefix)", sh.DLQTopicPrefix)
		}
	}
	return nil
}

// alterGroupConfigs applies mutate to a group's configs with
// compare-and-swap, retried a few times on conflict. The change is
// installed here at once and on the other brokers through their watch.
func (b *Broker) alterGroupConfigs(ctx context.Context, group string, mutate configMutation, validateOnly bool) (int16, *string) {
	if group == "" {
		return kerr.InvalidRequest.Code, kmsg.StringPtr("Default group resources are not allowed.")
	}
	for attempt := 0; attempt < 5; attempt++ {
		cur, err := b.meta.GroupConfig(ctx, group)
		if err != nil {
			return kerr.UnknownServerError.Code, kmsg.StringPtr(err.Error())
		}
		next, code, msg := mutate(copyMap(cur.Configs))
		if code != 0 {
			return code, msg
		}
		if err := b.groupCfg.validate(b.settings, next); err != nil {
			return kerr.InvalidConfig.Code, kmsg.StringPtr(err.Error())
		}
		if validateOnly {
			return 0, nil
		}
		stored, err := b.meta.SetGroupConfig(ctx, metadata.GroupConfig{Group: group, Configs: next, Revision: cur.Revision})
		if errors.Is(err, metadata.ErrConflict) {
			continue
		}
		if err != nil {
			return kerr.UnknownServerError.Code, kmsg.StringPtr(err.Error())
		}
		if len(next) == 0 {
			stored.Revision = cur.Revision
		}
		b.groupCfg.apply(b.settings, stored, len(next) == 0)
		return 0, nil
	}
	return kerr.ConcurrentTransactions.Code, kmsg.StringPtr("the group's configs kept changing concurrently; retry")
}

// deleteGroupConfigs removes every config of group (for a caller that
// deletes the group and wants its configs gone too; Kafka keeps them).
func (b *Broker) deleteGroupConfigs(ctx context.Context, group string) error {
	if group == "" {
		return nil
	}
	code, msg := b.alterGroupConfigs(ctx, group, func(map[string]string) (map[string]string, int16, *string) {
		return map[string]string{}, 0, nil
	}, false)
	if code != 0 {
		m := ""
		if msg != nil {
			m = *msg
		}
		return fmt.Errorf("delete configs of group %q: %w: %s", group, kerr.ErrorForCode(code), m)
	}
	return nil
}

// describeGroupConfigs lists every group config with its effective value
// for the group (its own override, else the broker's setting).
func (b *Broker) describeGroupConfigs(req *kmsg.DescribeConfigsRequest, rr kmsg.DescribeConfigsRequestResource, want map[string]bool, res *kmsg.DescribeConfigsResponseResource) {
	if rr.ResourceName == "" {
		res.ErrorCode, res.ErrorMessage = kerr.InvalidRequest.Code, kmsg.StringPtr("Group name must not be empty")
		return
	}
	over := b.groupCfg.overrides(rr.ResourceName)
	for _, name := range b.groupCfg.order {
		if len(want) > 0 && !want[name] {
			continue
		}
		res.Configs = append(res.Configs, describeEntry(req, b.groupCfg.reg[name], b.groupCfg.value(b.settings, name, over), false))
	}
}

// loadGroupConfigs reads every group's configs (start-up, and before each
// watch so that groups deleted while no watch ran are forgotten).
func (b *Broker) loadGroupConfigs(ctx context.Context) error {
	recs, err := b.meta.GroupConfigs(ctx)
	if err != nil {
		return fmt.Errorf("read group configs: %w", err)
	}
	b.groupCfg.replaceAll(b.settings, recs)
	return nil
}

// watchGroupConfigs applies group configs altered through any broker.
func (b *Broker) watchGroupConfigs(ctx context.Context) {
	b.keepWatching(ctx, "group configs", func() error {
		if err := b.loadGroupConfigs(ctx); err != nil {
			return err
		}
		ch, err := b.meta.WatchGroupConfigs(ctx)
		if err != nil {
			return err
		}
		for ev := range ch {
			b.groupCfg.apply(b.settings, ev.Config, ev.Type == metadata.EventDelete)
		}
		return nil
	})
}
