package broker

// UpdateFeatures: v0-2.
//
// KIP-584, KIP-778 (upgrade types, v1), KIP-1022 (v2: no per-feature
// results). Any broker serves it: the new levels are written to etcd with
// compare-and-swap and every broker applies them through its watch
// (features.go). As Kafka's FeatureControlManager, the update is all or
// nothing: the first invalid feature fails the request with
// INVALID_UPDATE_VERSION and Kafka's message, nothing is written; a
// downgrade needs upgrade type 2 (safe) or 3 (unsafe), v0's
// AllowDowngrade meaning safe; level 0 turns a feature off. validate_only
// (v1+) checks without writing. A feature named twice is INVALID_REQUEST.
// The work is bounded: the request stops at its first error, and at most
// one update per supported feature can pass.

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/metadata"
)

// Kafka's FeatureUpdate.UpgradeType codes.
const (
	upgradeTypeUpgrade         int8 = 1
	upgradeTypeSafeDowngrade   int8 = 2
	upgradeTypeUnsafeDowngrade int8 = 3
)

func (b *Broker) updateFeaturesAPI() api {
	return api{key: 57, min: 0, max: 2, handle: b.handleUpdateFeatures}
}

func (b *Broker) handleUpdateFeatures(ctx context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.UpdateFeaturesRequest)
	resp := req.ResponseKind().(*kmsg.UpdateFeaturesResponse)
	resp.ErrorCode, resp.ErrorMessage = b.updateFeatures(ctx, req)
	if resp.ErrorCode == 0 && req.Version < 2 {
		for _, u := range req.FeatureUpdates {
			res := kmsg.NewUpdateFeaturesResponseResult()
			res.Feature = u.Feature
			resp.Results = append(resp.Results, res)
		}
	}
	return resp, nil
}

// updateFeatures validates and stores the request's levels, retrying a
// few times when another update raced it.
func (b *Broker) updateFeatures(ctx context.Context, req *kmsg.UpdateFeaturesRequest) (int16, *string) {
	for attempt := 0; attempt < 5; attempt++ {
		cur, err := b.meta.Features(ctx)
		if err != nil {
			return kerr.FeatureUpdateFailed.Code, kmsg.StringPtr(err.Error())
		}
		next, code, msg := b.nextFeatureLevels(req, cur.Levels)
		if code != 0 || req.ValidateOnly || len(req.FeatureUpdates) == 0 {
			return code, msg
		}
		stored, err := b.meta.SetFeatures(ctx, metadata.FinalizedFeatures{Levels: next, Revision: cur.Revision})
		if errors.Is(err, metadata.ErrConflict) {
			continue
		}
		if err != nil {
			return kerr.FeatureUpdateFailed.Code, kmsg.StringPtr(err.Error())
		}
		b.features.apply(stored)
		b.log.Info("finalized features updated", "levels", stored.Levels, "epoch", stored.Revision)
		return 0, nil
	}
	return kerr.FeatureUpdateFailed.Code, kmsg.StringPtr(errFeatureConflict.Error())
}

// nextFeatureLevels applies the request's updates to the stored levels.
func (b *Broker) nextFeatureLevels(req *kmsg.UpdateFeaturesRequest, stored map[string]int16) (map[string]int16, int16, *string) {
	defs := map[string]featureDef{}
	for _, d := range featureDefs() {
		defs[d.name] = d
	}
	next := copyLevels(stored)
	seen := map[string]bool{}
	for _, u := range req.FeatureUpdates {
		if seen[u.Feature] {
			return nil, kerr.InvalidRequest.Code, kmsg.StringPtr("Feature " + u.Feature + " was specified more than once.")
		}
		seen[u.Feature] = true
		level, typ := u.MaxVersionLevel, u.UpgradeType
		if req.Version == 0 {
			typ = upgradeTypeUpgrade
			if u.AllowDowngrade {
				typ = upgradeTypeSafeDowngrade
				if level < 1 {
					level = 0 // v0: a level below 1 deletes the feature
				}
			}
		}
		d, known := defs[u.Feature]
		current := d.def // a feature never finalized is at its default
		if l, ok := stored[u.Feature]; ok {
			current = l
		}
		if reason := featureUpdateRefusal(b.cfg.NodeID, d, known, current, level, typ); reason != "" {
			msg := fmt.Sprintf("Invalid update version %d for feature %s. %s", level, u.Feature, reason)
			return nil, kerr.InvalidUpdateVersion.Code, kmsg.StringPtr(msg)
		}
		next[u.Feature] = level
	}
	return next, 0, nil
}

// featureUpdateRefusal is why Kafka's FeatureControlManager refuses to
// move a feature from current to level with upgrade type typ, or "".
func featureUpdateRefusal(node int32, d featureDef, known bool, current, level int16, typ int8) string {
	switch {
	case typ != upgradeTypeUpgrade && typ != upgradeTypeSafeDowngrade && typ != upgradeTypeUnsafeDowngrade:
		return "The controller does not support the given upgrade type."
	case level < 0:
		return "A feature version cannot be less than 0."
	case !known:
		return fmt.Sprintf("Broker %d does not support this feature.", node)
	case level > d.max:
		return fmt.Sprintf("Broker %d only supports versions 0-%d", node, d.max)
	case level < current && typ == upgradeTypeUpgrade:
		return "Can't downgrade the version of this feature without setting the upgrade type to either safe or unsafe downgrade."
	case level > current && typ != upgradeTypeUpgrade:
		return "Can't downgrade to a newer version."
	}
	return ""
}

func copyLevels(m map[string]int16) map[string]int16 {
	out := make(map[string]int16, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
