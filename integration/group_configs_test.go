package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupConfigAlter sends one IncrementalAlterConfigs for a group resource
// to broker id and returns its error code and message.
func groupConfigAlter(ctx context.Context, t *testing.T, cl *kgo.Client, id int, group string, validateOnly bool, ops ...kmsg.IncrementalAlterConfigsRequestResourceConfig) (int16, string) {
	t.Helper()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	req.ValidateOnly = validateOnly
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName, res.Configs = kmsg.ConfigResourceTypeGroupConfig, group, ops
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(ctx, cl.Broker(id))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Resources) != 1 {
		t.Fatalf("IncrementalAlterConfigs answered %d resources", len(resp.Resources))
	}
	return resp.Resources[0].ErrorCode, derefOr(resp.Resources[0].ErrorMessage, "")
}

func setOp(name, value string) kmsg.IncrementalAlterConfigsRequestResourceConfig {
	op := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	op.Name, op.Op, op.Value = name, kmsg.IncrementalAlterConfigOpSet, kmsg.StringPtr(value)
	return op
}

func deleteOp(name string) kmsg.IncrementalAlterConfigsRequestResourceConfig {
	op := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	op.Name, op.Op = name, kmsg.IncrementalAlterConfigOpDelete
	return op
}

// describeGroupConfigs asks broker id for a group's configs.
func describeGroupConfigs(ctx context.Context, cl *kgo.Client, id int, group string) (map[string]describedConfig, error) {
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.IncludeSynonyms, req.IncludeDocumentation = true, true
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeGroupConfig, group
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(ctx, cl.Broker(id))
	if err != nil {
		return nil, err
	}
	if len(resp.Resources) != 1 || resp.Resources[0].ErrorCode != 0 {
		return nil, fmt.Errorf("describe group %q: %+v", group, resp.Resources)
	}
	out := map[string]describedConfig{}
	for _, c := range resp.Resources[0].Configs {
		out[c.Name] = describedConfig{value: c.Value, source: c.Source, readOnly: c.ReadOnly, typ: c.ConfigType, doc: derefOr(c.Documentation, "")}
	}
	return out, nil
}

// waitGroupConfig waits until broker id describes name of group as want
// from source.
func waitGroupConfig(ctx context.Context, t *testing.T, cl *kgo.Client, id int, group, name, want string, source kmsg.ConfigSource) {
	t.Helper()
	waitFor(t, 10*time.Second, func() error {
		got, err := describeGroupConfigs(ctx, cl, id, group)
		if err != nil {
			return err
		}
		c := got[name]
		if c.value == nil || *c.value != want || c.source != source {
			return fmt.Errorf("broker %d: %s of %s = %s (%v), want %s (%v)", id, name, group, derefOr(c.value, "<nil>"), c.source, want, source)
		}
		return nil
	})
}

// Group configs (Kafka's GROUP resource, KIP-848/KIP-932/KIP-1240) are set
// through one broker, seen by another, validated against the broker's
// bounds, replaced by the legacy AlterConfigs, deleted back to the broker
// defaults, and follow a change of those defaults.
func TestGroupConfigsAlterDescribe(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	cl := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const group = "orders"

	// Every Kafka 4.2 group config (and Sluice's backoff) is described,
	// with its default, on a group nobody configured.
	fresh, err := describeGroupConfigs(ctx, cl, 2, group)
	if err != nil {
		t.Fatal(err)
	}
	for name, def := range map[string]string{
		"consumer.session.timeout.ms": "45000", "consumer.heartbeat.interval.ms": "5000",
		"share.session.timeout.ms": "45000", "share.heartbeat.interval.ms": "5000",
		"share.record.lock.duration.ms": "30000", "share.auto.offset.reset": "latest",
		"share.isolation.level": "read_uncommitted", "share.delivery.count.limit": "5",
		"share.partition.max.record.locks": "2000", "streams.num.standby.replicas": "0",
		"errors.deadletterqueue.topic.name": "", "errors.deadletterqueue.copy.record.enable": "false",
		"share.record.redelivery.backoff.ms": "0", "share.record.redelivery.backoff.max.ms": "60000",
		"share.record.redelivery.backoff.multiplier": "2.0",
	} {
		got, ok := fresh[name]
		if !ok || got.value == nil || *got.value != def || got.doc == "" {
			t.Errorf("fresh group: %s = %+v, want %q with documentation", name, got, def)
		}
	}

	// Set through broker 1; broker 3 sees it.
	code, msg := groupConfigAlter(ctx, t, cl, 1, group, false,
		setOp("share.record.lock.duration.ms", "20000"), setOp("share.auto.offset.reset", "by_duration:PT1H"),
		setOp("errors.deadletterqueue.topic.name", "dlq.orders"))
	if code != 0 {
		t.Fatalf("set: %v %s", kerr.ErrorForCode(code), msg)
	}
	start := time.Now()
	waitGroupConfig(ctx, t, cl, 3, group, "share.record.lock.duration.ms", "20000", kmsg.ConfigSourceGroupConfig)
	t.Logf("broker 3 saw the change after %v", time.Since(start))
	waitGroupConfig(ctx, t, cl, 3, group, "share.auto.offset.reset", "by_duration:PT1H", kmsg.ConfigSourceGroupConfig)
	if got := listConfigGroups(ctx, t, cl, 3); len(got) != 1 || got[0] != group {
		t.Fatalf("ListConfigResources lists groups %v, want [%s]", got, group)
	}

	// The dead-letter topic opts in with KIP-1191's topic config.
	c.createTopic("dlq.orders", 1, 1, map[string]*string{"errors.deadletterqueue.group.enable": kmsg.StringPtr("true")})
	waitFor(t, 10*time.Second, func() error {
		req := kmsg.NewPtrDescribeConfigsRequest()
		rr := kmsg.NewDescribeConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, "dlq.orders"
		rr.ConfigNames = []string{"errors.deadletterqueue.group.enable"}
		req.Resources = append(req.Resources, rr)
		resp, err := req.RequestWith(ctx, cl.Broker(2))
		if err != nil {
			return err
		}
		if len(resp.Resources) != 1 || len(resp.Resources[0].Configs) != 1 || derefOr(resp.Resources[0].Configs[0].Value, "") != "true" {
			return fmt.Errorf("dlq.orders described as %+v", resp.Resources)
		}
		return nil
	})

	// Invalid values are refused with Kafka's messages and change nothing.
	for _, bad := range []struct {
		op   kmsg.IncrementalAlterConfigsRequestResourceConfig
		code int16
		msg  string
	}{
		{setOp("share.record.lock.duration.ms", "1000"), kerr.InvalidConfig.Code, "share.record.lock.duration.ms must be greater than or equal to group.share.min.record.lock.duration.ms"},
		{setOp("share.delivery.count.limit", "50"), kerr.InvalidConfig.Code, "share.delivery.count.limit must be less than or equal to group.share.max.delivery.count.limit"},
		{setOp("share.isolation.level", "maybe"), kerr.InvalidConfig.Code, "share.isolation.level"},
		{setOp("share.auto.offset.reset", "by_duration:-PT1H"), kerr.InvalidConfig.Code, "negative"},
		{setOp("errors.deadletterqueue.topic.name", "payments"), kerr.InvalidConfig.Code, `must start with "dlq."`},
		{setOp("group.share.delivery.count.limit", "3"), kerr.InvalidConfig.Code, "Unknown group config name: group.share.delivery.count.limit"},
	} {
		code, msg := groupConfigAlter(ctx, t, cl, 2, group, false, bad.op)
		if code != bad.code || !strings.Contains(msg, bad.msg) {
			t.Errorf("%s=%s: %v %q, want %v containing %q", bad.op.Name, *bad.op.Value, kerr.ErrorForCode(code), msg, kerr.ErrorForCode(bad.code), bad.msg)
		}
	}
	if code, msg := groupConfigAlter(ctx, t, cl, 1, "", false, setOp("share.delivery.count.limit", "3")); code != kerr.InvalidRequest.Code {
		t.Errorf("empty group name: %v %s, want INVALID_REQUEST", kerr.ErrorForCode(code), msg)
	}
	// validate_only checks without storing.
	if code, msg := groupConfigAlter(ctx, t, cl, 1, group, true, setOp("share.delivery.count.limit", "3")); code != 0 {
		t.Fatalf("validate only: %v %s", kerr.ErrorForCode(code), msg)
	}
	got, err := describeGroupConfigs(ctx, cl, 1, group)
	if err != nil {
		t.Fatal(err)
	}
	if v := got["share.delivery.count.limit"]; *v.value != "5" || v.source == kmsg.ConfigSourceGroupConfig {
		t.Fatalf("validate_only stored share.delivery.count.limit: %+v", v)
	}
	if v := got["share.record.lock.duration.ms"]; *v.value != "20000" {
		t.Fatalf("a refused alter changed share.record.lock.duration.ms: %s", *v.value)
	}

	// The legacy AlterConfigs replaces the whole set.
	legacy := kmsg.NewPtrAlterConfigsRequest()
	lr := kmsg.NewAlterConfigsRequestResource()
	lr.ResourceType, lr.ResourceName = kmsg.ConfigResourceTypeGroupConfig, group
	lc := kmsg.NewAlterConfigsRequestResourceConfig()
	lc.Name, lc.Value = "share.isolation.level", kmsg.StringPtr("read_committed")
	lr.Configs = append(lr.Configs, lc)
	legacy.Resources = append(legacy.Resources, lr)
	lresp, err := legacy.RequestWith(ctx, cl.Broker(2))
	if err != nil || lresp.Resources[0].ErrorCode != 0 {
		t.Fatalf("AlterConfigs: %v %+v", err, lresp)
	}
	waitGroupConfig(ctx, t, cl, 1, group, "share.isolation.level", "read_committed", kmsg.ConfigSourceGroupConfig)
	waitGroupConfig(ctx, t, cl, 1, group, "share.record.lock.duration.ms", "30000", kmsg.ConfigSourceDefaultConfig)

	// DELETE returns a config to the broker's default, which follows a
	// dynamic change of the broker setting.
	if code, msg := groupConfigAlter(ctx, t, cl, 3, group, false, deleteOp("share.isolation.level")); code != 0 {
		t.Fatalf("delete: %v %s", kerr.ErrorForCode(code), msg)
	}
	waitGroupConfig(ctx, t, cl, 2, group, "share.isolation.level", "read_uncommitted", kmsg.ConfigSourceDefaultConfig)
	waitFor(t, 10*time.Second, func() error {
		if got := listConfigGroups(ctx, t, cl, 2); len(got) != 0 {
			return fmt.Errorf("a group without configs is still listed: %v", got)
		}
		return nil
	})
	balter := kmsg.NewPtrIncrementalAlterConfigsRequest()
	br := kmsg.NewIncrementalAlterConfigsRequestResource()
	br.ResourceType, br.ResourceName = kmsg.ConfigResourceTypeBroker, ""
	br.Configs = append(br.Configs, setOp("group.share.record.lock.duration.ms", "25000"))
	balter.Resources = append(balter.Resources, br)
	bresp, err := balter.RequestWith(ctx, cl.Broker(1))
	if err != nil || bresp.Resources[0].ErrorCode != 0 {
		t.Fatalf("alter broker default: %v %+v", err, bresp)
	}
	waitGroupConfig(ctx, t, cl, 3, group, "share.record.lock.duration.ms", "25000", kmsg.ConfigSourceDynamicDefaultBrokerConfig)
}

// listConfigGroups asks broker id which groups have configs
// (ListConfigResources v1, KIP-1142).
func listConfigGroups(ctx context.Context, t *testing.T, cl *kgo.Client, id int) []string {
	t.Helper()
	req := kmsg.NewPtrListConfigResourcesRequest()
	req.Version = 1
	req.ResourceTypes = []int8{int8(kmsg.ConfigResourceTypeGroupConfig)}
	resp, err := req.RequestWith(ctx, cl.Broker(id))
	if err != nil || resp.ErrorCode != 0 {
		t.Fatalf("ListConfigResources: %v %+v", err, resp)
	}
	var out []string
	for _, r := range resp.ConfigResources {
		if r.Type != int8(kmsg.ConfigResourceTypeGroupConfig) {
			t.Fatalf("asked for groups, got type %d", r.Type)
		}
		out = append(out, r.Name)
	}
	return out
}
