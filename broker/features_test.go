package broker

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/metadata"
)

func featureBroker() *Broker { return &Broker{features: newFeatureLevels(), cfg: Config{NodeID: 3}} }

func TestFeaturesDefaultsAndApiVersions(t *testing.T) {
	t.Parallel()
	b := featureBroker()
	if !b.shareEnabled() || b.featureLevel(featureTransactionVersion) != 2 || b.featureLevel(featureGroupVersion) != 1 {
		t.Fatalf("defaults: share %v, levels %v", b.shareEnabled(), b.features.cur.Load().levels)
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 3
	b.fillFeatures(resp)
	fin := map[string]int16{}
	for _, f := range resp.FinalizedFeatures {
		fin[f.Name] = f.MaxVersionLevel
	}
	if len(resp.SupportedFeatures) != 3 || fin["share.version"] != 1 || fin["group.version"] != 1 || fin["transaction.version"] != 2 {
		t.Fatalf("supported %+v finalized %+v", resp.SupportedFeatures, resp.FinalizedFeatures)
	}

	b.features.apply(metadata.FinalizedFeatures{Levels: map[string]int16{"share.version": 0}, Revision: 40})
	if b.shareEnabled() || !b.apiHidden(78) || b.apiHidden(68) {
		t.Fatalf("share.version 0: enabled %v, ShareFetch hidden %v", b.shareEnabled(), b.apiHidden(78))
	}
	resp = kmsg.NewPtrApiVersionsResponse()
	resp.Version = 4
	b.fillFeatures(resp)
	if resp.FinalizedFeaturesEpoch != 40 || len(resp.FinalizedFeatures) != 2 {
		t.Fatalf("epoch %d finalized %+v", resp.FinalizedFeaturesEpoch, resp.FinalizedFeatures)
	}
	// An older revision arriving late changes nothing.
	b.features.apply(metadata.FinalizedFeatures{Levels: map[string]int16{}, Revision: 39})
	if b.shareEnabled() {
		t.Fatal("a stale revision was applied")
	}
	resp = kmsg.NewPtrApiVersionsResponse()
	resp.Version = 2
	b.fillFeatures(resp)
	if len(resp.SupportedFeatures) != 0 {
		t.Fatal("features reported below v3")
	}
}

func TestFeaturesUpdateRules(t *testing.T) {
	t.Parallel()
	b := featureBroker()
	upd := func(name string, level int16, typ int8) kmsg.UpdateFeaturesRequestFeatureUpdate {
		u := kmsg.NewUpdateFeaturesRequestFeatureUpdate()
		u.Feature, u.MaxVersionLevel, u.UpgradeType = name, level, typ
		return u
	}
	for _, tc := range []struct {
		name    string
		version int16
		stored  map[string]int16
		updates []kmsg.UpdateFeaturesRequestFeatureUpdate
		code    int16
		msg     string
		want    map[string]int16
	}{
		{"safe downgrade", 1, nil, []kmsg.UpdateFeaturesRequestFeatureUpdate{upd("share.version", 0, 2)}, 0, "", map[string]int16{"share.version": 0}},
		{"unsafe downgrade", 2, nil, []kmsg.UpdateFeaturesRequestFeatureUpdate{upd("transaction.version", 1, 3)}, 0, "", map[string]int16{"transaction.version": 1}},
		{"downgrade as upgrade", 1, nil, []kmsg.UpdateFeaturesRequestFeatureUpdate{upd("share.version", 0, 1)}, kerr.InvalidUpdateVersion.Code,
			"Invalid update version 0 for feature share.version. Can't downgrade the version of this feature without setting the upgrade type to either safe or unsafe downgrade.", nil},
		{"upgrade", 1, map[string]int16{"share.version": 0}, []kmsg.UpdateFeaturesRequestFeatureUpdate{upd("share.version", 1, 1)}, 0, "", map[string]int16{"share.version": 1}},
		{"upgrade as downgrade", 1, map[string]int16{"share.version": 0}, []kmsg.UpdateFeaturesRequestFeatureUpdate{upd("share.version", 1, 2)}, kerr.InvalidUpdateVersion.Code, "Can't downgrade to a newer version.", nil},
		{"same level", 1, nil, []kmsg.UpdateFeaturesRequestFeatureUpdate{upd("group.version", 1, 1)}, 0, "", map[string]int16{"group.version": 1}},
		{"beyond supported", 1, nil, []kmsg.UpdateFeaturesRequestFeatureUpdate{upd("transaction.version", 3, 1)}, kerr.InvalidUpdateVersion.Code, "Broker 3 only supports versions 0-2", nil},
		{"unknown feature", 1, nil, []kmsg.UpdateFeaturesRequestFeatureUpdate{upd("metadata.version", 27, 1)}, kerr.InvalidUpdateVersion.Code, "does not support this feature", nil},
		{"negative", 1, nil, []kmsg.UpdateFeaturesRequestFeatureUpdate{upd("share.version", -1, 2)}, kerr.InvalidUpdateVersion.Code, "cannot be less than 0", nil},
		{"bad upgrade type", 1, nil, []kmsg.UpdateFeaturesRequestFeatureUpdate{upd("share.version", 1, 7)}, kerr.InvalidUpdateVersion.Code, "upgrade type", nil},
		{"duplicate", 1, nil, []kmsg.UpdateFeaturesRequestFeatureUpdate{upd("share.version", 1, 1), upd("share.version", 1, 1)}, kerr.InvalidRequest.Code, "more than once", nil},
		{"all or nothing", 1, nil, []kmsg.UpdateFeaturesRequestFeatureUpdate{upd("share.version", 0, 2), upd("nope", 1, 1)}, kerr.InvalidUpdateVersion.Code, "nope", nil},
	} {
		req := kmsg.NewPtrUpdateFeaturesRequest()
		req.Version, req.FeatureUpdates = tc.version, tc.updates
		next, code, msg := b.nextFeatureLevels(req, tc.stored)
		if code != tc.code || (tc.msg != "" && (msg == nil || !strings.Contains(*msg, tc.msg))) {
			t.Errorf("%s: code %d msg %v, want %d %q", tc.name, code, msg, tc.code, tc.msg)
			continue
		}
		for k, v := range tc.want {
			if next[k] != v {
				t.Errorf("%s: %s = %d, want %d", tc.name, k, next[k], v)
			}
		}
	}
	// v0: AllowDowngrade with a level below 1 removes the feature (level 0).
	req := kmsg.NewPtrUpdateFeaturesRequest()
	u := kmsg.NewUpdateFeaturesRequestFeatureUpdate()
	u.Feature, u.MaxVersionLevel, u.AllowDowngrade = "share.version", -1, true
	req.FeatureUpdates = []kmsg.UpdateFeaturesRequestFeatureUpdate{u}
	if next, code, msg := b.nextFeatureLevels(req, nil); code != 0 || next["share.version"] != 0 {
		t.Fatalf("v0 deletion: %v %d %v", next, code, msg)
	}
}

// UpdateFeatures through the handler: stored with compare-and-swap in the
// metadata store, applied at once, v2 without per-feature results, and a
// refused update leaves the store untouched.
func TestFeaturesUpdateHandler(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := metadata.NewMemory()
	t.Cleanup(func() { _ = store.Close() })
	b := featureBroker()
	b.meta, b.log = store, slog.New(slog.DiscardHandler)
	send := func(version int16, validateOnly bool, name string, level int16, typ int8) *kmsg.UpdateFeaturesResponse {
		t.Helper()
		req := kmsg.NewPtrUpdateFeaturesRequest()
		req.Version, req.ValidateOnly = version, validateOnly
		u := kmsg.NewUpdateFeaturesRequestFeatureUpdate()
		u.Feature, u.MaxVersionLevel, u.UpgradeType = name, level, typ
		req.FeatureUpdates = append(req.FeatureUpdates, u)
		resp, err := b.handleUpdateFeatures(ctx, &request{req: req})
		if err != nil {
			t.Fatal(err)
		}
		return resp.(*kmsg.UpdateFeaturesResponse)
	}
	if r := send(1, true, "share.version", 0, 2); r.ErrorCode != 0 || len(r.Results) != 1 || r.Results[0].Feature != "share.version" {
		t.Fatalf("validate only: %+v", r)
	}
	if f, _ := store.Features(ctx); f.Revision != 0 || !b.shareEnabled() {
		t.Fatalf("validate only stored %+v", f)
	}
	if r := send(2, false, "share.version", 0, 2); r.ErrorCode != 0 || len(r.Results) != 0 {
		t.Fatalf("v2 downgrade: %+v", r)
	}
	f, _ := store.Features(ctx)
	if f.Revision == 0 || f.Levels["share.version"] != 0 || b.shareEnabled() || b.features.cur.Load().stored.Revision != f.Revision {
		t.Fatalf("after downgrade: stored %+v, share enabled %v", f, b.shareEnabled())
	}
	if r := send(1, false, "share.version", 2, 1); r.ErrorCode != kerr.InvalidUpdateVersion.Code || len(r.Results) != 0 {
		t.Fatalf("beyond range: %+v", r)
	}
	if g, _ := store.Features(ctx); g.Revision != f.Revision {
		t.Fatalf("a refused update was stored: %+v", g)
	}
	if r := send(0, false, "share.version", 1, 0); r.ErrorCode != 0 || !b.shareEnabled() {
		t.Fatalf("v0 upgrade: %+v, enabled %v", r, b.shareEnabled())
	}
}

func TestListConfigResourcesUnknownType(t *testing.T) {
	t.Parallel()
	b := featureBroker()
	b.groupCfg = newGroupConfigs()
	req := kmsg.NewPtrListConfigResourcesRequest()
	req.Version = 1
	req.ResourceTypes = []int8{32, 99}
	resp, err := b.handleListConfigResources(context.Background(), &request{req: req})
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.(*kmsg.ListConfigResourcesResponse); r.ErrorCode != kerr.InvalidRequest.Code || len(r.ConfigResources) != 0 {
		t.Fatalf("unknown type: %+v", r)
	}
}
