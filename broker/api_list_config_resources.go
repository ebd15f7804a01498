package broker

// ListConfigResources: v0-1.
//
// KIP-1000 (v0, then ListClientMetricsResources: client-metrics resources
// only) and KIP-1142 (v1: the resource types to list, every supported one
// when empty). It is how Kafka 4.1+ tools find the groups with configs
// (kafka-configs.sh --describe --entity-type groups without a name).
// Topics lists every topic, brokers the live brokers, groups those with
// group configs (group_config.go). Sluice has no client-metrics
// resources (KIP-714 telemetry is not collected) and no dynamic broker
// loggers, so those types list nothing. An unknown type is
// INVALID_REQUEST; a type named twice is listed once.

import (
	"context"
	"sort"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) listConfigResourcesAPI() api {
	return api{key: 74, min: 0, max: 1, handle: b.handleListConfigResources}
}

func (b *Broker) handleListConfigResources(_ context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.ListConfigResourcesRequest)
	resp := req.ResponseKind().(*kmsg.ListConfigResourcesResponse)
	if req.Version == 0 {
		return resp, nil // client-metrics resources only: none
	}
	want := map[kmsg.ConfigResourceType]bool{}
	for _, t := range req.ResourceTypes {
		switch typ := kmsg.ConfigResourceType(t); typ {
		case kmsg.ConfigResourceTypeTopic, kmsg.ConfigResourceTypeBroker, kmsg.ConfigResourceTypeBrokerLogger,
			kmsg.ConfigResourceTypeClientMetrics, kmsg.ConfigResourceTypeGroupConfig:
			want[typ] = true
		default:
			resp.ErrorCode = kerr.InvalidRequest.Code
			return resp, nil
		}
	}
	all := len(want) == 0
	add := func(typ kmsg.ConfigResourceType, name string) {
		cr := kmsg.NewListConfigResourcesResponseConfigResource()
		cr.Name, cr.Type = name, int8(typ)
		resp.ConfigResources = append(resp.ConfigResources, cr)
	}
	if all || want[kmsg.ConfigResourceTypeTopic] {
		for _, ts := range b.topics.all() {
			add(kmsg.ConfigResourceTypeTopic, ts.meta().Name)
		}
	}
	if all || want[kmsg.ConfigResourceTypeBroker] {
		for _, br := range b.liveBrokers() {
			add(kmsg.ConfigResourceTypeBroker, strconv.Itoa(int(br.NodeID)))
		}
	}
	if all || want[kmsg.ConfigResourceTypeGroupConfig] {
		for _, g := range b.groupCfg.groups() {
			add(kmsg.ConfigResourceTypeGroupConfig, g)
		}
	}
	return resp, nil
}

// groups lists the groups with configs, sorted.
func (g *groupConfigs) groups() []string {
	g.mu.RLock()
	out := make([]string, 0, len(g.mu.records))
	for name := range g.mu.records {
		out = append(out, name)
	}
	g.mu.RUnlock()
	sort.Strings(out)
	return out
}
