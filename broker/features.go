package broker

// Feature flags as Kafka 4 has them (KIP-584, KIP-1022): the features this
// broker supports, each with the range of levels it can run at, and the
// cluster's finalized level of each, which UpdateFeatures changes and
// ApiVersions v3+ reports (kafka-features.sh describe reads it there).
// Finalized levels live in etcd (metadata.FinalizedFeatures); every broker
// follows them through a watch, so a change applies cluster-wide within
// the watch's latency. A feature never set is at its default level, as a
// freshly formatted Kafka 4.2 cluster is.
//
// metadata.version and kraft.version are not listed: they version KRaft's
// metadata log and controller quorum, which Sluice does not have (its
// metadata is in etcd), so any level reported would be a claim nothing
// backs, and upgrading or downgrading it could not change anything.
// Clients gate on API versions and on the features below, not on
// metadata.version. streams.version is absent as streams groups
// (KIP-1071) are not implemented.

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/metadata"
)

// featureDef is one supported feature: levels 0 to max, at def when never
// finalized by an operator.
type featureDef struct {
	name string
	max  int16
	def  int16
	// apis are the API keys served only at a level of at least 1; they are
	// left out of ApiVersions below it, as Kafka hides them.
	apis []int16
}

// Feature names.
const (
	featureGroupVersion       = "group.version"
	featureShareVersion       = "share.version"
	featureTransactionVersion = "transaction.version"
)

// featureDefs are the features Sluice supports, as Kafka 4.2 defines
// them: group.version 1 is the KIP-848 consumer protocol; share.version 1
// share groups (KIP-932), on by default as in Kafka 4.2; transaction.version
// 2 KIP-890 part 2 (clients add partitions through produce v12 and
// TxnOffsetCommit v5, and EndTxn v5 bumps epochs).
func featureDefs() []featureDef {
	return []featureDef{
		{name: featureGroupVersion, max: 1, def: 1, apis: []int16{68, 69}},
		{name: featureShareVersion, max: 1, def: 1, apis: []int16{76, 77, 78, 79, 90, 91, 92}},
		{name: featureTransactionVersion, max: 2, def: 2},
	}
}

// featureState is one immutable view of the finalized levels.
type featureState struct {
	stored metadata.FinalizedFeatures // as read from etcd
	levels map[string]int16           // every supported feature's level
	hidden map[int16]bool             // API keys of features below level 1
}

// featureLevels holds the current featureState.
type featureLevels struct {
	cur atomic.Pointer[featureState]
}

func newFeatureLevels() *featureLevels {
	f := &featureLevels{}
	f.cur.Store(newFeatureState(metadata.FinalizedFeatures{Levels: map[string]int16{}}))
	return f
}

func newFeatureState(stored metadata.FinalizedFeatures) *featureState {
	st := &featureState{stored: stored, levels: map[string]int16{}, hidden: map[int16]bool{}}
	for _, d := range featureDefs() {
		lvl, ok := stored.Levels[d.name]
		if !ok || lvl < 0 || lvl > d.max {
			lvl = d.def
		}
		st.levels[d.name] = lvl
		if lvl < 1 {
			for _, k := range d.apis {
				st.hidden[k] = true
			}
		}
	}
	return st
}

// apply installs stored unless a newer revision is installed already.
func (f *featureLevels) apply(stored metadata.FinalizedFeatures) {
	for {
		old := f.cur.Load()
		if stored.Revision < old.stored.Revision {
			return
		}
		if f.cur.CompareAndSwap(old, newFeatureState(stored)) {
			return
		}
	}
}

// featureLevel is the finalized level of a supported feature (0 for an
// unknown one).
func (b *Broker) featureLevel(name string) int16 { return b.features.cur.Load().levels[name] }

// shareEnabled reports whether the finalized share.version is >= 1.
func (b *Broker) shareEnabled() bool { return b.featureLevel(featureShareVersion) >= 1 }

// apiHidden reports whether key belongs to a feature finalized below 1.
func (b *Broker) apiHidden(key int16) bool { return b.features.cur.Load().hidden[key] }

// fillFeatures lists the supported and finalized features (ApiVersions
// v3+). A feature at level 0 is supported but not finalized, as Kafka
// reports it; the epoch is the etcd revision of the last change (0 before
// any), so it only grows.
func (b *Broker) fillFeatures(resp *kmsg.ApiVersionsResponse) {
	if resp.Version < 3 {
		return
	}
	st := b.features.cur.Load()
	for _, d := range featureDefs() {
		sf := kmsg.NewApiVersionsResponseSupportedFeature()
		sf.Name, sf.MinVersion, sf.MaxVersion = d.name, 0, d.max
		resp.SupportedFeatures = append(resp.SupportedFeatures, sf)
		if lvl := st.levels[d.name]; lvl > 0 {
			ff := kmsg.NewApiVersionsResponseFinalizedFeature()
			ff.Name, ff.MinVersionLevel, ff.MaxVersionLevel = d.name, lvl, lvl
			resp.FinalizedFeatures = append(resp.FinalizedFeatures, ff)
		}
	}
	resp.FinalizedFeaturesEpoch = st.stored.Revision
}

// loadFeatures reads the finalized levels (start-up, and before each watch).
func (b *Broker) loadFeatures(ctx context.Context) error {
	f, err := b.meta.Features(ctx)
	if err != nil {
		return fmt.Errorf("read finalized features: %w", err)
	}
	b.features.apply(f)
	return nil
}

// watchFeatures applies feature levels finalized through any broker.
func (b *Broker) watchFeatures(ctx context.Context) {
	b.keepWatching(ctx, "features", func() error {
		if err := b.loadFeatures(ctx); err != nil {
			return err
		}
		ch, err := b.meta.WatchFeatures(ctx)
		if err != nil {
			return err
		}
		for ev := range ch {
			b.features.apply(ev.Features)
		}
		return nil
	})
}

// errFeatureConflict is returned by setFeatureLevels when the levels kept
// changing concurrently.
var errFeatureConflict = errors.New("broker: finalized features kept changing concurrently")
