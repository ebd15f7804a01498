package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// finalizedFeatures asks broker id for its ApiVersions and returns the
// finalized feature levels, the epoch and the advertised API keys.
func finalizedFeatures(ctx context.Context, cl *kgo.Client, id int) (map[string]int16, int64, map[int16]bool, error) {
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 3
	req.ClientSoftwareName, req.ClientSoftwareVersion = "sluice-test", "1"
	resp, err := req.RequestWith(ctx, cl.Broker(id))
	if err != nil {
		return nil, 0, nil, err
	}
	if resp.ErrorCode != 0 {
		return nil, 0, nil, kerr.ErrorForCode(resp.ErrorCode)
	}
	levels := map[string]int16{}
	for _, f := range resp.FinalizedFeatures {
		levels[f.Name] = f.MaxVersionLevel
	}
	keys := map[int16]bool{}
	for _, k := range resp.ApiKeys {
		keys[k.ApiKey] = true
	}
	supported := map[string]int16{}
	for _, f := range resp.SupportedFeatures {
		supported[f.Name] = f.MaxVersion
	}
	if supported["share.version"] != 1 || supported["group.version"] != 1 || supported["transaction.version"] != 2 {
		return nil, 0, nil, fmt.Errorf("broker %d supported features %v", id, supported)
	}
	return levels, resp.FinalizedFeaturesEpoch, keys, nil
}

// Feature flags as Kafka 4: share.version, group.version and
// transaction.version are finalized by default; UpdateFeatures through one
// broker downgrades share.version to 0 and back, every broker reports the
// new level and a larger epoch, and invalid updates are refused with
// Kafka's error codes.
func TestFeaturesFinalizedAndUpdated(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2)
	cl := c.client()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	var epoch0 int64
	for _, id := range []int{1, 2} {
		levels, epoch, keys, err := finalizedFeatures(ctx, cl, id)
		if err != nil {
			t.Fatal(err)
		}
		if levels["share.version"] != 1 || levels["group.version"] != 1 || levels["transaction.version"] != 2 {
			t.Fatalf("broker %d finalized features %v", id, levels)
		}
		if !keys[57] || !keys[68] {
			t.Fatalf("broker %d does not advertise UpdateFeatures or ConsumerGroupHeartbeat", id)
		}
		epoch0 = epoch
	}

	// A downgrade without a downgrade type is refused, and so is a level
	// beyond the supported range or an unknown feature; nothing changes.
	for _, bad := range []kadm.FeatureUpdate{
		{Feature: "share.version", MaxVersionLevel: 0, UpgradeType: 1},
		{Feature: "transaction.version", MaxVersionLevel: 3, UpgradeType: 1},
		{Feature: "metadata.version", MaxVersionLevel: 27, UpgradeType: 1},
	} {
		req := kmsg.NewPtrUpdateFeaturesRequest()
		req.Version = 1
		u := kmsg.NewUpdateFeaturesRequestFeatureUpdate()
		u.Feature, u.MaxVersionLevel, u.UpgradeType = bad.Feature, bad.MaxVersionLevel, bad.UpgradeType
		req.FeatureUpdates = append(req.FeatureUpdates, u)
		resp, err := req.RequestWith(ctx, cl.Broker(1))
		if err != nil {
			t.Fatal(err)
		}
		if resp.ErrorCode != kerr.InvalidUpdateVersion.Code || resp.ErrorMessage == nil || len(resp.Results) != 0 {
			t.Errorf("%+v: %v %v results %d, want INVALID_UPDATE_VERSION", bad, kerr.ErrorForCode(resp.ErrorCode), derefOr(resp.ErrorMessage, ""), len(resp.Results))
		}
	}
	// validate_only checks without storing.
	res, err := adm.UpdateFeatures(ctx, true, kadm.FeatureUpdate{Feature: "share.version", MaxVersionLevel: 0, UpgradeType: 2})
	if err != nil || res.Error() != nil {
		t.Fatalf("validate only: %v %v", err, res)
	}
	if levels, _, _, err := finalizedFeatures(ctx, cl, 2); err != nil || levels["share.version"] != 1 {
		t.Fatalf("after validate_only: %v %v", levels, err)
	}

	// Downgrade share.version to 0 through broker 1: broker 2 reports it
	// unfinalized, with a larger epoch, and stops advertising share APIs.
	res, err = adm.UpdateFeatures(ctx, false, kadm.FeatureUpdate{Feature: "share.version", MaxVersionLevel: 0, UpgradeType: 2})
	if err != nil || res.Error() != nil {
		t.Fatalf("downgrade: %v %v", err, res)
	}
	start := time.Now()
	var epoch1 int64
	waitFor(t, 10*time.Second, func() error {
		levels, epoch, keys, err := finalizedFeatures(ctx, cl, 2)
		if err != nil {
			return err
		}
		if _, ok := levels["share.version"]; ok || epoch <= epoch0 || levels["transaction.version"] != 2 {
			return fmt.Errorf("broker 2: levels %v epoch %d (before %d)", levels, epoch, epoch0)
		}
		for _, k := range []int16{76, 77, 78, 79} {
			if keys[k] {
				return fmt.Errorf("broker 2 advertises share API %d with share.version 0", k)
			}
		}
		epoch1 = epoch
		return nil
	})
	t.Logf("broker 2 saw share.version 0 after %v", time.Since(start))

	// And back up to 1.
	res, err = adm.UpdateFeatures(ctx, false, kadm.FeatureUpdate{Feature: "share.version", MaxVersionLevel: 1, UpgradeType: 1})
	if err != nil || res.Error() != nil {
		t.Fatalf("upgrade: %v %v", err, res)
	}
	waitFor(t, 10*time.Second, func() error {
		for _, id := range []int{1, 2} {
			levels, epoch, _, err := finalizedFeatures(ctx, cl, id)
			if err != nil {
				return err
			}
			if levels["share.version"] != 1 || epoch <= epoch1 {
				return fmt.Errorf("broker %d: levels %v epoch %d (before %d)", id, levels, epoch, epoch1)
			}
		}
		return nil
	})

	// Restarted, a broker reads the finalized levels back.
	if _, err := adm.UpdateFeatures(ctx, false, kadm.FeatureUpdate{Feature: "group.version", MaxVersionLevel: 0, UpgradeType: 2}); err != nil {
		t.Fatal(err)
	}
	p := c.procs[2]
	if err := p.stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	p.restart()
	c.waitBrokers(2)
	waitFor(t, 20*time.Second, func() error {
		levels, _, keys, err := finalizedFeatures(ctx, cl, 2)
		if err != nil {
			return err
		}
		if _, ok := levels["group.version"]; ok || keys[68] || levels["share.version"] != 1 {
			return fmt.Errorf("restarted broker 2: levels %v, ConsumerGroupHeartbeat advertised %v", levels, keys[68])
		}
		return nil
	})
}
