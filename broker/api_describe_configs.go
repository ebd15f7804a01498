package broker

// DescribeConfigs: v0-4.
//
// Topic resources list every topic setting with its effective value and
// source (topic override, dynamic broker, static broker, default); broker
// resources (this broker's id, or "" for the cluster-wide defaults) list the
// broker settings; group resources (type 32, KIP-848/KIP-932) list the group
// configs, each the group's own value or the broker setting behind it
// (group_config.go). Synonyms (v1+, KIP-226) show the whole resolution chain;
// config types and documentation come with v3 (KIP-569). Broker loggers
// (resource type 8) are not supported and get INVALID_REQUEST. A resource
// named more than once is described once: answering every copy would turn a
// small request into a response hundreds of times its size.

import (
	"context"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) describeConfigsAPI() api {
	return api{key: 32, min: 0, max: 4, handle: b.handleDescribeConfigs}
}

func (b *Broker) handleDescribeConfigs(_ context.Context, r *request) (kmsg.Response, error) {
	req := r.req.(*kmsg.DescribeConfigsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	var once onceSet
	for _, rr := range req.Resources {
		if !once.first(string(rune(rr.ResourceType)) + rr.ResourceName) {
			continue // a repeated resource is described once
		}
		res := kmsg.NewDescribeConfigsResponseResource()
		res.ResourceType, res.ResourceName = rr.ResourceType, rr.ResourceName
		want := map[string]bool{}
		for _, n := range rr.ConfigNames {
			want[n] = true
		}
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			b.describeTopicConfigs(req, rr, want, &res)
		case kmsg.ConfigResourceTypeBroker:
			b.describeBrokerConfigs(req, rr, want, &res)
		case kmsg.ConfigResourceTypeGroupConfig:
			b.describeGroupConfigs(req, rr, want, &res)
		default:
			res.ErrorCode = kerr.InvalidRequest.Code
			res.ErrorMessage = kmsg.StringPtr("unsupported resource type")
		}
		resp.Resources = append(resp.Resources, res)
	}
	return resp, nil
}

func (b *Broker) describeTopicConfigs(req *kmsg.DescribeConfigsRequest, rr kmsg.DescribeConfigsRequestResource, want map[string]bool, res *kmsg.DescribeConfigsResponseResource) {
	if err := validTopicName(rr.ResourceName); err != nil {
		res.ErrorCode, res.ErrorMessage = kerr.InvalidTopicException.Code, kmsg.StringPtr(err.Error())
		return
	}
	ts := b.topics.get(rr.ResourceName)
	if ts == nil {
		res.ErrorCode = kerr.UnknownTopicOrPartition.Code
		return
	}
	for _, name := range b.settings.reg.topicOrder {
		if len(want) > 0 && !want[name] {
			continue
		}
		d := b.settings.reg.topic[name]
		rv := b.settings.topic(name, ts.meta().Configs)
		res.Configs = append(res.Configs, describeEntry(req, d, rv, false))
	}
}

func (b *Broker) describeBrokerConfigs(req *kmsg.DescribeConfigsRequest, rr kmsg.DescribeConfigsRequestResource, want map[string]bool, res *kmsg.DescribeConfigsResponseResource) {
	if rr.ResourceName != "" && rr.ResourceName != strconv.Itoa(int(b.cfg.NodeID)) {
		res.ErrorCode, res.ErrorMessage = kerr.InvalidRequest.Code, kmsg.StringPtr("broker configs must be described on the broker itself")
		return
	}
	for _, name := range b.settings.reg.brokerOrder {
		if len(want) > 0 && !want[name] {
			continue
		}
		d := b.settings.reg.broker[name]
		rv := b.settings.broker(name)
		if name == "node.id" || name == "broker.id" {
			rv = resolved{value: strconv.Itoa(int(b.cfg.NodeID)), source: kmsg.ConfigSourceStaticBrokerConfig}
		}
		if rv.value == "" && rv.synonyms == nil {
			e := describeEntry(req, d, rv, d.readOnly)
			e.Value = nil
			res.Configs = append(res.Configs, e)
			continue
		}
		res.Configs = append(res.Configs, describeEntry(req, d, rv, d.readOnly))
	}
}

func describeEntry(req *kmsg.DescribeConfigsRequest, d *configDef, rv resolved, readOnly bool) kmsg.DescribeConfigsResponseResourceConfig {
	c := kmsg.NewDescribeConfigsResponseResourceConfig()
	c.Name = d.name
	c.Value = kmsg.StringPtr(rv.value)
	c.ReadOnly = readOnly
	c.Source = rv.source
	c.IsDefault = rv.source == kmsg.ConfigSourceDefaultConfig
	c.ConfigType = kmsg.ConfigType(d.typ)
	if req.IncludeSynonyms {
		c.ConfigSynonyms = rv.synonyms
	}
	if req.IncludeDocumentation {
		c.Documentation = kmsg.StringPtr(d.doc)
	}
	return c
}
